//! `cairnctl repo init`.

use std::process::ExitCode;

use cairn_repo::CipherKind;
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
    let created = Repository::init(repo.store()?, &repo.password()?, options).await?;
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
