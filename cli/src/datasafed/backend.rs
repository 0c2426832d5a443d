//! Where datasafed's operations go. Each subcommand is written once against [`Backend`];
//! `Direct` talks to storage itself, and the control-plane issue adds a variant that talks
//! to the node agent's storage socket.

use cairn_repo::dedup::{DedupFiles, InitOptions, Repository};
use cairn_repo::{PlainRepo, RepoFiles, Store};

use super::settings::{Mode, Settings};

/// The destination of datasafed operations.
#[derive(Debug, Clone)]
pub enum Backend {
    /// Straight to storage with the credentials of the config file.
    Direct(RepoFiles),
}

impl Backend {
    /// Connects according to the settings.
    pub async fn connect(settings: &Settings) -> anyhow::Result<Backend> {
        let store = Store::open(&settings.storage)?;
        let files = match &settings.mode {
            Mode::Plain { encryption } => RepoFiles::Plain(PlainRepo::new(
                store.sub(&settings.base_path),
                encryption.clone(),
            )),
            Mode::Dedup {
                root,
                password,
                maintenance,
            } => {
                // Like datasafed with kopia, the repository is created on first use.
                let repo =
                    Repository::open_or_init(store.sub(root), password, InitOptions::default())
                        .await
                        .map_err(|e| {
                            anyhow::Error::new(e)
                                .context(format!("opening the deduplicating repository at /{root}"))
                        })?;
                RepoFiles::Dedup(DedupFiles::new(repo, &settings.base_path, *maintenance)?)
            }
        };
        Ok(Backend::Direct(files))
    }

    /// The repository operations.
    pub fn files(&self) -> &RepoFiles {
        match self {
            Backend::Direct(files) => files,
        }
    }
}
