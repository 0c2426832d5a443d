//! Fills packs and uploads them, several at a time, sealing each on a blocking thread.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use super::blobref::BlobRef;
use super::id::Id;
use super::index::PackRecord;
use super::pack::{BlobType, PackBuilder, pack_key};
use super::repository::Repository;
use crate::{Error, ErrorKind, Result};

/// The packs of one writer session: data packs and metadata packs (content lists and trees)
/// are filled separately (docs/FORMAT.md §5.3).
#[derive(Debug)]
pub(crate) struct Packer {
    repo: Repository,
    data: Mutex<Option<PackBuilder>>,
    metadata: Mutex<Option<PackBuilder>>,
    uploads: Mutex<Vec<JoinHandle<Result<PackRecord>>>>,
    completed: Mutex<Vec<PackRecord>>,
    permits: Arc<Semaphore>,
    uploaded: Arc<AtomicU64>,
}

impl Packer {
    pub(crate) fn new(repo: Repository) -> Packer {
        let uploads = repo.options().pack_uploads.max(1);
        Packer {
            repo,
            data: Mutex::new(None),
            metadata: Mutex::new(None),
            uploads: Mutex::new(Vec::new()),
            completed: Mutex::new(Vec::new()),
            permits: Arc::new(Semaphore::new(uploads)),
            uploaded: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Bytes of packs uploaded so far.
    pub(crate) fn uploaded_bytes(&self) -> u64 {
        self.uploaded.load(Ordering::Relaxed)
    }

    /// Adds a blob; uploads the pack when it is full (waiting when uploads are saturated).
    pub(crate) async fn add(
        &self,
        kind: BlobType,
        id: Id,
        payload: &[u8],
        compressed: bool,
        raw_len: u32,
    ) -> Result<BlobRef> {
        let data_size = self.repo.config().pack_size as usize;
        let (open, capacity, pack_size) = match kind {
            BlobType::Data => (&self.data, data_size + (1 << 20), data_size),
            // Metadata is about 1 % of the data: smaller packs, grown rather than reserved.
            BlobType::Content | BlobType::Tree => (&self.metadata, 1 << 20, data_size / 4),
        };
        let (r, full) = {
            let mut current = open.lock().unwrap_or_else(|e| e.into_inner());
            let builder = current.get_or_insert_with(|| PackBuilder::new(capacity));
            let r = builder.add(kind, id, payload, compressed, raw_len);
            let full = if builder.len() >= pack_size {
                current.take()
            } else {
                None
            };
            (r, full)
        };
        if let Some(builder) = full {
            self.upload(builder).await?;
        }
        Ok(r)
    }

    async fn upload(&self, builder: PackBuilder) -> Result<()> {
        self.reap()?;
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| Error::new(ErrorKind::Backend, "pack uploads were shut down"))?;
        let repo = self.repo.clone();
        let uploaded = self.uploaded.clone();
        let handle = tokio::spawn(async move {
            let keys = repo.keys().clone();
            let (id, bytes, summary) = tokio::task::spawn_blocking(move || builder.seal(&keys))
                .await
                .map_err(|e| Error::new(ErrorKind::Io, "sealing a pack failed").with_source(e))?;
            let len = bytes.len() as u64;
            repo.store().put(&pack_key(&id), bytes).await?;
            uploaded.fetch_add(len, Ordering::Relaxed);
            drop(permit);
            Ok(PackRecord { id, summary })
        });
        self.uploads
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(handle);
        Ok(())
    }

    /// Collects finished uploads; fails fast if one failed.
    fn reap(&self) -> Result<()> {
        use futures::FutureExt;
        let finished: Vec<JoinHandle<Result<PackRecord>>> = {
            let mut uploads = self.uploads.lock().unwrap_or_else(|e| e.into_inner());
            let (done, running): (Vec<_>, Vec<_>) =
                uploads.drain(..).partition(|h| h.is_finished());
            *uploads = running;
            done
        };
        for mut handle in finished {
            match (&mut handle).now_or_never() {
                Some(Ok(Ok(record))) => self
                    .completed
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(record),
                Some(Ok(Err(e))) => return Err(e),
                Some(Err(join)) => {
                    return Err(
                        Error::new(ErrorKind::Io, "a pack upload task failed").with_source(join)
                    );
                }
                None => self
                    .uploads
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(handle),
            }
        }
        Ok(())
    }

    /// Uploads the last packs and waits for every upload; returns the committed packs.
    pub(crate) async fn finish(&self) -> Result<Vec<PackRecord>> {
        for open in [&self.data, &self.metadata] {
            let last = open.lock().unwrap_or_else(|e| e.into_inner()).take();
            if let Some(builder) = last
                && !builder.is_empty()
            {
                self.upload(builder).await?;
            }
        }
        let handles: Vec<_> =
            std::mem::take(&mut *self.uploads.lock().unwrap_or_else(|e| e.into_inner()));
        let mut records =
            std::mem::take(&mut *self.completed.lock().unwrap_or_else(|e| e.into_inner()));
        let mut first_error = None;
        for handle in handles {
            match handle.await {
                Ok(Ok(record)) => records.push(record),
                Ok(Err(e)) => {
                    first_error.get_or_insert(e);
                }
                Err(join) => {
                    first_error.get_or_insert(
                        Error::new(ErrorKind::Io, "a pack upload task failed").with_source(join),
                    );
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(records),
        }
    }
}
