//! Where datasafed's operations go. Each subcommand is written once against [`Backend`];
//! `Direct` talks to storage itself, and the control-plane issue adds a variant that talks
//! to the node agent's storage socket.

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
            Mode::Dedup { .. } => {
                anyhow::bail!(
                    "the deduplicating repository (DATASAFED_KOPIA_REPO_ROOT) is not available in this build"
                )
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
