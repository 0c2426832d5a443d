//! `cairnctl repo init`.

use std::process::ExitCode;

use anyhow::Context;
use cairn_repo::CipherKind;
use cairn_repo::config::BackendConfig;
use cairn_repo::dedup::{InitOptions, Repository};

use super::open::{RepoArgs, print_json};

/// Arguments of `init`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// aes-256-gcm or chacha20-poly1305.
    #[arg(long, default_value = "aes-256-gcm")]
    pub cipher: String,
    /// Label of the first key.
    #[arg(long, default_value = "initial")]
    pub label: String,
}

/// Runs `init`.
pub async fn run(repo: &RepoArgs, args: Args) -> anyhow::Result<ExitCode> {
    let options = InitOptions {
        cipher: CipherKind::parse(&args.cipher)?,
        key_label: args.label,
        ..InitOptions::default()
    };
    let password = repo.password()?;
    // A local repository's directory is made when missing, as restic and borg do.
    let (config, _) = repo.storage()?;
    let made = match &config.backend {
        BackendConfig::Local { root } if std::fs::symlink_metadata(root).is_err() => {
            std::fs::create_dir_all(root)
                .with_context(|| format!("creating the repository directory {}", root.display()))?;
            Some(root.clone())
        }
        _ => None,
    };
    if let Some(dir) = &made
        && !repo.json
    {
        println!("created directory {}", dir.display());
    }
    let created = match Repository::init(repo.store()?, &password, options).await {
        Ok(created) => created,
        Err(e) => {
            // A failed init leaves no empty directory behind it.
            if let Some(dir) = &made {
                let _ = std::fs::remove_dir(dir);
            }
            return Err(e.into());
        }
    };
    if repo.json {
        print_json(&serde_json::json!({ "id": created.config().id, "key": created.key_id() }))?;
    } else {
        println!(
            "created repository {} at {}",
            created.config().id.short(),
            created.store().describe("")
        );
    }
    Ok(ExitCode::SUCCESS)
}
