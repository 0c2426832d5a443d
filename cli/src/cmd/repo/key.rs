//! `cairnctl repo key add|remove|list`.

use std::path::PathBuf;
use std::process::ExitCode;

use cairn_repo::KdfParams;
use cairn_repo::dedup::Id;
use clap::Subcommand;

use super::open::{RepoArgs, print_json, read_password};

/// `key` subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Add a password (new key file wrapping the same master key).
    Add {
        /// Read the new password from this file instead of CAIRN_REPO_NEW_PASSWORD.
        #[arg(long)]
        new_password_file: Option<PathBuf>,
        /// A label for the key.
        #[arg(long, default_value = "")]
        label: String,
    },
    /// Remove a key by id (not the last one, not the one in use).
    Remove {
        /// Key id (or unique prefix).
        id: String,
    },
    /// List keys.
    List,
}

/// Runs `key`.
pub async fn run(repo: &RepoArgs, command: Command) -> anyhow::Result<ExitCode> {
    let opened = repo.open().await?;
    match command {
        Command::Add {
            new_password_file,
            label,
        } => {
            let password = read_password(new_password_file.as_ref(), "CAIRN_REPO_NEW_PASSWORD")?;
            let id = opened
                .add_key(&password, KdfParams::REPOSITORY, &label)
                .await?;
            if repo.json {
                print_json(&serde_json::json!({ "id": id }))?;
            } else {
                println!("added key {}", id.short());
            }
        }
        Command::Remove { id } => {
            // Damaged key files too, so what `check` reports can be removed.
            let matches: Vec<Id> = opened
                .key_ids()
                .await?
                .into_iter()
                .filter(|k| k.to_hex().starts_with(&id.to_ascii_lowercase()))
                .collect();
            let [target] = matches.as_slice() else {
                anyhow::bail!("{} keys match {id:?}", matches.len());
            };
            opened.remove_key(target).await?;
            if !repo.json {
                println!("removed key {}", target.short());
            }
        }
        Command::List => {
            let keys = opened.list_keys().await?;
            if repo.json {
                let list: Vec<_> = keys
                    .iter()
                    .map(|(id, k)| serde_json::json!({ "id": id, "label": k.label, "host": k.host, "created": k.created, "current": *id == opened.key_id() }))
                    .collect();
                print_json(&list)?;
            } else {
                for (id, k) in &keys {
                    let current = if *id == opened.key_id() { "*" } else { " " };
                    println!(
                        "{current} {} {:<12} {:<16} {}",
                        id.short(),
                        k.label,
                        k.host,
                        k.created
                    );
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
