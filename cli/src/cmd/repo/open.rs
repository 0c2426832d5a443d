//! Where the repository is and how to unlock it: `--repo URL` or `-c datasafed.conf`,
//! password from `CAIRN_REPO_PASSWORD` or `--password-file`.

use std::path::PathBuf;

use anyhow::{Context, bail};
use cairn_repo::config::{Secret, redact_url};
use cairn_repo::dedup::Repository;
use cairn_repo::{StorageConfig, Store, parse_datasafed_config, parse_storage_url};

/// Options shared by every `cairnctl repo` command.
#[derive(Debug, Clone, clap::Args)]
pub struct RepoArgs {
    /// Repository URL: file:///path, s3://bucket/prefix?endpoint=..&region=..&path_style=true&allow_http=true, gs://, az://, memory://
    #[arg(long, global = true, env = "CAIRN_REPO", conflicts_with = "config")]
    pub repo: Option<String>,
    /// A datasafed config file ([storage] section) instead of --repo.
    #[arg(short = 'c', long = "config", global = true)]
    pub config: Option<PathBuf>,
    /// With -c: the repository's path inside that storage.
    #[arg(long, global = true, default_value = "")]
    pub path: String,
    /// Read the password from this file (first line) instead of CAIRN_REPO_PASSWORD.
    #[arg(long, global = true)]
    pub password_file: Option<PathBuf>,
    /// Print machine-readable JSON instead of text and progress bars.
    #[arg(long, global = true)]
    pub json: bool,
}

impl RepoArgs {
    /// The store rooted at the repository.
    pub fn store(&self) -> anyhow::Result<Store> {
        let (config, sub) = self.storage()?;
        let store = Store::open(&config)?;
        Ok(if sub.is_empty() {
            store
        } else {
            store.sub(sub)
        })
    }

    /// The storage configuration and the repository's path inside it.
    pub fn storage(&self) -> anyhow::Result<(StorageConfig, &str)> {
        Ok(match (&self.repo, &self.config) {
            (Some(url), _) => (
                parse_storage_url(url)
                    .with_context(|| format!("parsing --repo {}", redact_url(url)))?,
                "",
            ),
            (None, Some(file)) => {
                let text = std::fs::read_to_string(file)
                    .with_context(|| format!("reading {}", file.display()))?;
                (
                    parse_datasafed_config(&text)
                        .with_context(|| format!("parsing {}", file.display()))?,
                    self.path.as_str(),
                )
            }
            (None, None) => {
                bail!("name the repository with --repo URL (or CAIRN_REPO) or -c datasafed.conf")
            }
        })
    }

    /// The password: `--password-file`, else `CAIRN_REPO_PASSWORD`.
    pub fn password(&self) -> anyhow::Result<Secret> {
        read_password(self.password_file.as_ref(), "CAIRN_REPO_PASSWORD")
    }

    /// Opens the repository.
    pub async fn open(&self) -> anyhow::Result<Repository> {
        let store = self.store()?;
        let password = self.password()?;
        Ok(Repository::open(store, &password).await?)
    }
}

/// Reads a password from a file (first line) or an environment variable.
pub fn read_password(file: Option<&PathBuf>, env: &str) -> anyhow::Result<Secret> {
    let text = match file {
        Some(path) => std::fs::read_to_string(path)
            .with_context(|| format!("reading the password file {}", path.display()))?,
        None => std::env::var(env)
            .with_context(|| format!("no password: set {env} or pass a password file"))?,
    };
    let line = text.lines().next().unwrap_or("").to_string();
    if line.is_empty() {
        bail!("the password is empty");
    }
    Ok(Secret::new(line))
}

/// Prints a value as pretty JSON.
pub fn print_json<T: serde::Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}
