//! The datasafed view of a deduplicating repository: every pushed stream is a snapshot
//! named by its path; `list`/`stat` show the newest snapshot of each path as a file;
//! `rm` forgets snapshots (docs/FORMAT.md §2.2, ARCHITECTURE.md §K5.6 kopia mode).

use std::collections::BTreeMap;
use std::io::Write;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::io::SyncIoBridge;

use super::backup::{BackupOptions, backup_stream};
use super::repository::Repository;
use super::restore::restore_stream;
use super::snapshot::{Snapshot, SnapshotKind};
use crate::codec::compression::Compression;
use crate::plain::{Entry, GetSummary, ListOptions, PutSummary, StatSummary, path};
use crate::progress::SharedProgress;
use crate::{Error, ErrorKind, Result};

/// Tag naming the datasafed path of a stream snapshot.
pub const PATH_TAG: &str = "datasafed.path";

/// A deduplicating repository addressed by datasafed paths under a base path.
#[derive(Debug, Clone)]
pub struct DedupFiles {
    repo: Repository,
    base: String,
    maintenance: bool,
}

impl DedupFiles {
    /// Paths are relative to `base` (normalised); `maintenance` prunes after `rm`.
    pub fn new(repo: Repository, base: &str, maintenance: bool) -> Result<DedupFiles> {
        Ok(DedupFiles {
            repo,
            base: path::normalize(base)?,
            maintenance,
        })
    }

    /// The repository.
    pub fn repo(&self) -> &Repository {
        &self.repo
    }

    fn full(&self, p: &str) -> Result<String> {
        let rel = path::normalize(p)?;
        Ok(match (self.base.is_empty(), rel.is_empty()) {
            (true, _) => rel,
            (false, true) => self.base.clone(),
            (false, false) => format!("{}/{rel}", self.base),
        })
    }

    /// The newest stream snapshot of every path (full paths, no leading `/`).
    async fn files(&self) -> Result<BTreeMap<String, Snapshot>> {
        let mut newest: BTreeMap<String, Snapshot> = BTreeMap::new();
        for s in self.repo.list_snapshots().await? {
            if s.kind != SnapshotKind::Stream {
                continue;
            }
            let Some(p) = s.tags.get(PATH_TAG).cloned() else {
                continue;
            };
            if newest.get(&p).is_none_or(|old| old.time <= s.time) {
                newest.insert(p, s);
            }
        }
        Ok(newest)
    }

    /// `push`: a stream snapshot of everything `reader` yields. The compression name is
    /// recorded (chunks are compressed anyway) and re-applied by a `pull` without `-d`.
    pub async fn put<R>(
        &self,
        p: &str,
        reader: R,
        compression: Option<Compression>,
        progress: SharedProgress,
    ) -> Result<PutSummary>
    where
        R: AsyncRead + Send + Unpin + 'static,
    {
        let full = self.full(p)?;
        if full.is_empty() {
            return Err(Error::invalid(
                "cannot push to the repository root (empty path)",
            ));
        }
        let mut options = BackupOptions::default();
        options.tags.insert(PATH_TAG.into(), full.clone());
        let snapshot = backup_stream(
            &self.repo,
            &format!("/{full}"),
            reader,
            &options,
            compression.map(|c| c.name()),
            progress,
        )
        .await
        .map_err(|e| e.context(format!("pushing {p}")))?;
        Ok(PutSummary {
            bytes_in: snapshot.root.size,
            bytes_stored: snapshot.summary.uploaded_bytes,
        })
    }

    /// `pull`: the newest snapshot of `p`, in order.
    pub async fn get<W>(
        &self,
        p: &str,
        writer: W,
        decompression: Option<Compression>,
        progress: SharedProgress,
    ) -> Result<GetSummary>
    where
        W: AsyncWrite + Send + Unpin + 'static,
    {
        let full = self.full(p)?;
        let files = self.files().await?;
        let snapshot = files
            .get(&full)
            .ok_or_else(|| Error::not_found(format!("{p} does not exist")))?;
        let recompress = match (decompression, &snapshot.stream_compression) {
            (None, Some(name)) => Some(Compression::parse(name)?),
            _ => None,
        };
        let bytes_out = match recompress {
            None => restore_stream(&self.repo, &snapshot.root, writer, progress).await?,
            Some(compression) => {
                // Give the caller the compressed stream it pushed: compress on a blocking thread.
                let (pipe_writer, pipe_reader) = tokio::io::duplex(1 << 20);
                let encoder = tokio::task::spawn_blocking(move || -> Result<u64> {
                    let mut source = SyncIoBridge::new(pipe_reader);
                    let sink = SyncIoBridge::new(writer);
                    let mut encoder = compression
                        .encoder(sink)
                        .map_err(|e| Error::io("starting the compressor", e))?;
                    let n = std::io::copy(&mut source, &mut encoder)
                        .map_err(|e| Error::io("compressing the pulled stream", e))?;
                    let mut sink = encoder
                        .finish()
                        .map_err(|e| Error::io("compressing the pulled stream", e))?;
                    sink.flush()
                        .map_err(|e| Error::io("writing the pulled stream", e))?;
                    let _ = sink.shutdown();
                    Ok(n)
                });
                let restored =
                    restore_stream(&self.repo, &snapshot.root, pipe_writer, progress).await;
                let encoded = encoder.await.map_err(|e| {
                    Error::new(ErrorKind::Io, "the compression thread failed").with_source(e)
                })?;
                let n = restored?;
                encoded?;
                n
            }
        };
        Ok(GetSummary {
            bytes_read: 0,
            bytes_out,
        })
    }

    /// Entries at or below `p`.
    async fn walk(&self, p: &str, depth: usize) -> Result<Vec<Entry>> {
        let full = self.full(p)?;
        let files = self.files().await?;
        if let Some(s) = files.get(&full) {
            return Ok(vec![Entry {
                path: p.to_string(),
                name: full.rsplit('/').next().unwrap_or(&full).to_string(),
                is_dir: false,
                size: s.root.size,
                modified: Some(s.time),
            }]);
        }
        let prefix = if full.is_empty() {
            String::new()
        } else {
            format!("{full}/")
        };
        let mut dirs = std::collections::BTreeSet::new();
        let mut out = Vec::new();
        for (name, s) in files.range(prefix.clone()..) {
            let Some(rel) = name.strip_prefix(&prefix) else {
                break;
            };
            let parts: Vec<&str> = rel.split('/').collect();
            for level in 1..parts.len() {
                if level <= depth {
                    dirs.insert(parts[..level].join("/"));
                }
            }
            if parts.len() <= depth {
                out.push(entry(p, rel, s.root.size, Some(s.time), false));
            }
        }
        for dir in dirs {
            out.push(entry(p, &dir, 0, None, true));
        }
        Ok(out)
    }

    /// `list`.
    pub async fn list(&self, p: &str, options: &ListOptions) -> Result<Vec<Entry>> {
        let filter = options.filter()?;
        Ok(filter.apply(self.walk(p, options.depth()).await?))
    }

    /// `stat`.
    pub async fn stat(&self, p: &str) -> Result<StatSummary> {
        let mut summary = StatSummary::default();
        for e in self.walk(p, usize::MAX).await? {
            summary.add(&e);
        }
        Ok(summary)
    }

    /// `rm [-r]`: forgets the snapshots of the path (or every path under it); prunes after
    /// when maintenance is on. Returns how many paths were removed.
    pub async fn remove(&self, p: &str, recursive: bool) -> Result<u64> {
        let full = self.full(p)?;
        let prefix = if full.is_empty() {
            String::new()
        } else {
            format!("{full}/")
        };
        let mut removed_paths = std::collections::BTreeSet::new();
        let mut doomed = Vec::new();
        for s in self.repo.list_snapshots().await? {
            let Some(path) = s.tags.get(PATH_TAG) else {
                continue;
            };
            let matches = *path == full || (recursive && path.starts_with(&prefix));
            if matches {
                removed_paths.insert(path.clone());
                doomed.push(s.id);
            }
        }
        if doomed.is_empty() {
            if recursive {
                return Ok(0);
            }
            let under = self.walk(p, 1).await?;
            if !under.is_empty() {
                return Err(Error::invalid(format!(
                    "{p} is a directory (use rm -r to remove it)"
                )));
            }
            return Err(Error::not_found(format!("{p} does not exist")));
        }
        if !recursive && !removed_paths.contains(&full) {
            return Err(Error::invalid(format!(
                "{p} is a directory (use rm -r to remove it)"
            )));
        }
        for id in &doomed {
            self.repo.store().delete(&Snapshot::key(id)).await?;
        }
        if self.maintenance {
            super::gc::prune(
                &self.repo,
                &super::gc::PruneOptions::default(),
                crate::progress::no_progress(),
            )
            .await?;
        }
        Ok(removed_paths.len() as u64)
    }

    /// `rmdir`: a virtual directory exists only while paths are under it.
    pub async fn rmdir(&self, p: &str) -> Result<()> {
        if !self.walk(p, 1).await?.is_empty() {
            return Err(Error::invalid(format!("directory {p} is not empty")));
        }
        Ok(())
    }

    /// `mkdir`: nothing to do (directories are virtual).
    pub async fn mkdir(&self, p: &str) -> Result<()> {
        self.full(p).map(|_| ())
    }
}

fn entry(listed: &str, rel: &str, size: u64, time: Option<jiff::Timestamp>, is_dir: bool) -> Entry {
    Entry {
        path: path::display(listed, rel),
        name: rel.rsplit('/').next().unwrap_or(rel).to_string(),
        is_dir,
        size,
        modified: time,
    }
}
