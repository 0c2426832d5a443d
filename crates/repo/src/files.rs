//! The datasafed operation surface over either repository kind: what `datasafed` (direct
//! mode) and the node agent's storage socket call, written once for both.

use tokio::io::{AsyncRead, AsyncWrite};

use crate::dedup::DedupFiles;
use crate::plain::{Entry, GetSummary, ListOptions, PlainRepo, PutSummary, StatSummary};
use crate::progress::SharedProgress;
use crate::{Compression, Result};

/// A repository seen as named files: a plain repository, or a deduplicating one where every
/// pushed stream is a snapshot (docs/FORMAT.md §6).
#[derive(Debug, Clone)]
pub enum RepoFiles {
    /// Named objects under a base path (KubeBlocks-compatible).
    Plain(PlainRepo),
    /// A deduplicating repository (`useKopia: true`).
    Dedup(DedupFiles),
}

impl RepoFiles {
    /// `push`: stores a stream at `path`.
    pub async fn put<R>(
        &self,
        path: &str,
        reader: R,
        compression: Option<Compression>,
        progress: SharedProgress,
    ) -> Result<PutSummary>
    where
        R: AsyncRead + Send + Unpin + 'static,
    {
        match self {
            RepoFiles::Plain(repo) => repo.put(path, reader, compression, progress).await,
            RepoFiles::Dedup(files) => files.put(path, reader, compression, progress).await,
        }
    }

    /// `pull`: writes the file at `path` into `writer`.
    pub async fn get<W>(
        &self,
        path: &str,
        writer: W,
        decompression: Option<Compression>,
        progress: SharedProgress,
    ) -> Result<GetSummary>
    where
        W: AsyncWrite + Send + Unpin + 'static,
    {
        match self {
            RepoFiles::Plain(repo) => repo.get(path, writer, decompression, progress).await,
            RepoFiles::Dedup(files) => files.get(path, writer, decompression, progress).await,
        }
    }

    /// `list`.
    pub async fn list(&self, path: &str, options: &ListOptions) -> Result<Vec<Entry>> {
        match self {
            RepoFiles::Plain(repo) => repo.list(path, options).await,
            RepoFiles::Dedup(files) => files.list(path, options).await,
        }
    }

    /// `stat`.
    pub async fn stat(&self, path: &str) -> Result<StatSummary> {
        match self {
            RepoFiles::Plain(repo) => repo.stat(path).await,
            RepoFiles::Dedup(files) => files.stat(path).await,
        }
    }

    /// `rm [-r]`; returns how many files were removed.
    pub async fn remove(&self, path: &str, recursive: bool) -> Result<u64> {
        match self {
            RepoFiles::Plain(repo) => repo.remove(path, recursive).await,
            RepoFiles::Dedup(files) => files.remove(path, recursive).await,
        }
    }

    /// `rmdir`.
    pub async fn rmdir(&self, path: &str) -> Result<()> {
        match self {
            RepoFiles::Plain(repo) => repo.rmdir(path).await,
            RepoFiles::Dedup(files) => files.rmdir(path).await,
        }
    }

    /// `mkdir`.
    pub async fn mkdir(&self, path: &str) -> Result<()> {
        match self {
            RepoFiles::Plain(repo) => repo.mkdir(path).await,
            RepoFiles::Dedup(files) => files.mkdir(path).await,
        }
    }
}
