//! Where datasafed's operations go. Each subcommand is written once against [`Backend`];
//! `Direct` talks to storage itself, `Socket` to the node agent's storage socket.

use cairn_repo::dedup::{DedupFiles, InitOptions, Repository};
use cairn_repo::plain::{Entry, ListOptions, StatSummary};
use cairn_repo::progress::no_progress;
use cairn_repo::{Compression, PlainRepo, RepoFiles, Store};
use tokio::io::{AsyncRead, AsyncWrite};

use super::settings::{Mode, Settings};
use super::socket::SocketClient;

/// The destination of datasafed operations.
#[derive(Debug, Clone)]
pub enum Backend {
    /// Straight to storage with the credentials of the config file.
    Direct(RepoFiles),
    /// Through the node agent's storage socket (`CAIRN_STORAGE_SOCKET`).
    Socket(SocketClient),
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

    /// `push`: stores a stream at `path`; returns the bytes read from it.
    pub async fn put<R>(
        &self,
        path: &str,
        reader: R,
        compression: Option<&str>,
    ) -> anyhow::Result<u64>
    where
        R: AsyncRead + Send + Unpin + 'static,
    {
        match self {
            Backend::Direct(files) => {
                let compression = compression.map(Compression::parse).transpose()?;
                Ok(files
                    .put(path, reader, compression, no_progress())
                    .await?
                    .bytes_in)
            }
            Backend::Socket(client) => client.put(path, reader, compression).await,
        }
    }

    /// `pull`: writes the file at `path` into `writer`.
    pub async fn get<W>(
        &self,
        path: &str,
        writer: W,
        decompression: Option<&str>,
    ) -> anyhow::Result<()>
    where
        W: AsyncWrite + Send + Unpin + 'static,
    {
        match self {
            Backend::Direct(files) => {
                let decompression = decompression.map(Compression::parse).transpose()?;
                files
                    .get(path, writer, decompression, no_progress())
                    .await?;
            }
            Backend::Socket(client) => {
                client.get(path, writer, decompression).await?;
            }
        }
        Ok(())
    }

    /// `list`.
    pub async fn list(&self, path: &str, options: &ListOptions) -> anyhow::Result<Vec<Entry>> {
        match self {
            Backend::Direct(files) => Ok(files.list(path, options).await?),
            Backend::Socket(client) => client.list(path, options).await,
        }
    }

    /// `stat`.
    pub async fn stat(&self, path: &str) -> anyhow::Result<StatSummary> {
        match self {
            Backend::Direct(files) => Ok(files.stat(path).await?),
            Backend::Socket(client) => client.stat(path).await,
        }
    }

    /// `rm [-r]`.
    pub async fn remove(&self, path: &str, recursive: bool) -> anyhow::Result<()> {
        match self {
            Backend::Direct(files) => files.remove(path, recursive).await.map(drop)?,
            Backend::Socket(client) => client.remove(path, recursive).await?,
        }
        Ok(())
    }

    /// `rmdir`.
    pub async fn rmdir(&self, path: &str) -> anyhow::Result<()> {
        match self {
            Backend::Direct(files) => Ok(files.rmdir(path).await?),
            Backend::Socket(client) => client.rmdir(path).await,
        }
    }

    /// `mkdir`.
    pub async fn mkdir(&self, path: &str) -> anyhow::Result<()> {
        match self {
            Backend::Direct(files) => Ok(files.mkdir(path).await?),
            Backend::Socket(client) => client.mkdir(path).await,
        }
    }
}
