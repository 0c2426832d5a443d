//! Plain repositories: named files under a base path, optionally compressed and sealed in
//! an AEAD stream, exactly what KubeBlocks' datasafed scripts expect (docs/FORMAT.md §3).
//!
//! This is the small async API the node agent serves over its storage socket: put from an
//! `AsyncRead`, get into an `AsyncWrite`, list, stat, remove, mkdir, rmdir.

mod list;
pub mod path;
pub(crate) mod pipe;

use std::io::{BufReader, Read, Write};

use futures::{StreamExt, TryStreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio_util::io::SyncIoBridge;

pub use list::{Entry, EntryFilter, ListOptions, SortBy, StatSummary, sort};
pub use path::normalize;

use crate::backend::{ObjectInfo, Store};
use crate::codec::compression::Compression;
use crate::codec::legacy_cfb::{self, CfbKey, CfbReader};
use crate::codec::sealed_stream::{OpenReader, SealWriter, StreamKey};
use crate::progress::SharedProgress;
use crate::{Error, ErrorKind, Result};
use pipe::{CopyError, PartWriter, StreamReader, UploadStopped, copy_with_progress};

/// What a put did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PutSummary {
    /// Bytes read from the source.
    pub bytes_in: u64,
    /// Bytes stored (after compression and encryption).
    pub bytes_stored: u64,
}

/// What a get did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GetSummary {
    /// Bytes read from the store.
    pub bytes_read: u64,
    /// Bytes written to the destination (after decryption and decompression).
    pub bytes_out: u64,
}

/// A plain repository: a store view rooted at the base path, plus optional encryption.
#[derive(Debug, Clone)]
pub struct PlainRepo {
    store: Store,
    encryption: Option<StreamKey>,
}

impl PlainRepo {
    /// A repository over `store` (already rooted at the base path).
    pub fn new(store: Store, encryption: Option<StreamKey>) -> PlainRepo {
        PlainRepo { store, encryption }
    }

    /// The underlying store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Stores everything read from `reader` at `path`, compressed with `compression` and
    /// encrypted when the repository has a key. Memory use is bounded by the part size; a
    /// failed source or upload never leaves a partial object.
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
        let key = path::normalize(path)?;
        if key.is_empty() {
            return Err(Error::invalid(
                "cannot push to the repository root (empty path)",
            ));
        }
        let part_size = self.store.options().part_size as usize;
        let (tx, rx) = mpsc::channel(2);
        let encryption = self.encryption.clone();
        let encode = tokio::task::spawn_blocking(move || {
            let mut source = SyncIoBridge::new(reader);
            let sink = PartWriter::new(tx.clone(), part_size);
            encode(&mut source, sink, compression, encryption.as_ref(), |n| {
                progress.add(n)
            })
        });
        let upload = self.store.put_parts(&key, rx);
        let (encoded, uploaded) = tokio::join!(encode, upload);
        let encoded = encoded.map_err(|e| {
            Error::new(ErrorKind::Io, "the compression thread failed").with_source(e)
        })?;
        match (encoded, uploaded) {
            (Ok(bytes_in), Ok(bytes_stored)) => {
                // Staging files of earlier pushes of this path that were killed (local
                // stores): nothing else would ever see them.
                if let Err(e) = self
                    .store
                    .sweep_staging(&key, crate::backend::STALE_STAGING)
                    .await
                {
                    tracing::warn!(error = %e, "removing stale staging files of {key} failed");
                }
                Ok(PutSummary {
                    bytes_in,
                    bytes_stored,
                })
            }
            (Err(EncodeError::UploadStopped), Err(upload)) => Err(upload),
            (Err(EncodeError::UploadStopped), Ok(_)) => Err(Error::new(
                ErrorKind::Backend,
                format!("uploading {}", self.store.describe(&key)),
            )),
            (Err(EncodeError::Failed(e)), _) => {
                Err(e.context(format!("pushing {}", self.store.describe(&key))))
            }
            (Ok(_), Err(upload)) => Err(upload),
        }
    }

    /// Writes the file at `path` into `writer`, decrypted when the repository has a key and
    /// decompressed with `decompression`. Every byte written was authenticated first.
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
        let key = path::normalize(path)?;
        let mut name = self.store.describe(&key);
        let mut sealing = match &self.encryption {
            Some(key) => Sealing::Cairn(key.clone()),
            None => Sealing::None,
        };
        let (size, stream) = match self.store.download(&key).await {
            Ok(found) => found,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                // KubeBlocks' datasafed stored the file encrypted as `P.enc` (FORMAT.md §3.3.1).
                let legacy = self.encryption.as_ref().and_then(StreamKey::cfb);
                match legacy {
                    Some(cfb) if !key.is_empty() => {
                        let enc = format!("{key}{}", legacy_cfb::SUFFIX);
                        match self.store.download(&enc).await {
                            Ok(found) => {
                                name = self.store.describe(&enc);
                                sealing = Sealing::Cfb(cfb);
                                found
                            }
                            Err(e) if e.kind() == ErrorKind::NotFound => {
                                return Err(Error::not_found(format!(
                                    "{path} does not exist (nor {path}{})",
                                    legacy_cfb::SUFFIX
                                )));
                            }
                            Err(e) => return Err(e),
                        }
                    }
                    _ => return Err(Error::not_found(format!("{path} does not exist"))),
                }
            }
            Err(e) => return Err(e),
        };
        progress.set_total(size);
        let handle = tokio::runtime::Handle::current();
        let decode = tokio::task::spawn_blocking(move || -> Result<GetSummary> {
            let mut source = StreamReader::new(stream, handle);
            let mut sink = SyncIoBridge::new(writer);
            let bytes_out = decode(&mut source, &mut sink, decompression, sealing, &name, |n| {
                progress.add(n)
            })?;
            sink.flush()
                .and_then(|()| sink.shutdown())
                .map_err(|e| Error::from_io(format!("writing {name} to its destination"), e))?;
            Ok(GetSummary {
                bytes_read: source.bytes_read,
                bytes_out,
            })
        });
        decode.await.map_err(|e| {
            Error::new(ErrorKind::Io, "the decompression thread failed").with_source(e)
        })?
    }

    /// Lists `path` (a file: itself; a directory: its entries, as deep as the options say).
    pub async fn list(&self, path: &str, options: &ListOptions) -> Result<Vec<Entry>> {
        let filter = options.filter()?;
        let entries = self.walk(path, options.depth()).await?;
        Ok(filter.apply(entries))
    }

    /// Sums the subtree at `path` (or the single file).
    pub async fn stat(&self, path: &str) -> Result<StatSummary> {
        let mut summary = StatSummary::default();
        for entry in self.walk(path, usize::MAX).await? {
            summary.add(&entry);
        }
        Ok(summary)
    }

    /// Entries at or below `path`, `depth` levels deep, paths shown as the user typed them.
    async fn walk(&self, path: &str, depth: usize) -> Result<Vec<Entry>> {
        let key = path::normalize(path)?;
        let single = match self.file(&key).await? {
            Some(info) => Some((info.size, info)),
            None => match self.legacy_object(&key).await? {
                Some(info) => Some((info.size.saturating_sub(legacy_cfb::OVERHEAD), info)),
                None => None,
            },
        };
        if let Some((size, info)) = single {
            return Ok(vec![Entry {
                path: path.to_string(),
                name: key.rsplit('/').next().unwrap_or(&key).to_string(),
                is_dir: false,
                size,
                modified: Some(info.modified),
            }]);
        }
        let mut out = Vec::new();
        let mut pending = vec![(key.clone(), 1usize)];
        while let Some((dir, level)) = pending.pop() {
            let listing = match self.store.list_dir(&dir).await {
                Ok(listing) => listing,
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            for object in listing.objects {
                out.push(self.entry(path, &key, &object.key, false, Some(&object)));
            }
            for sub in listing.dirs {
                out.push(self.entry(path, &key, &sub, true, None));
                if level < depth {
                    pending.push((sub, level + 1));
                }
            }
        }
        Ok(out)
    }

    fn entry(
        &self,
        listed: &str,
        base: &str,
        key: &str,
        is_dir: bool,
        info: Option<&ObjectInfo>,
    ) -> Entry {
        let relative = key
            .strip_prefix(base)
            .map(|r| r.trim_start_matches('/'))
            .unwrap_or(key);
        let mut size = info.map_or(0, |i| i.size);
        let mut relative = relative;
        let mut name = key.rsplit('/').next().unwrap_or(key);
        // A KubeBlocks CFB file shows as the file that was pushed (FORMAT.md §3.3.1).
        if !is_dir
            && self.reads_legacy_cfb()
            && let (Some(r), Some(n)) = (
                relative.strip_suffix(legacy_cfb::SUFFIX),
                name.strip_suffix(legacy_cfb::SUFFIX),
            )
            && !n.is_empty()
        {
            relative = r;
            name = n;
            size = size.saturating_sub(legacy_cfb::OVERHEAD);
        }
        Entry {
            path: path::display(listed, relative),
            name: name.to_string(),
            is_dir,
            size,
            modified: info.map(|i| i.modified),
        }
    }

    /// Whether the configured algorithm is a KubeBlocks CFB name, so `.enc` objects are
    /// KubeBlocks' encrypted files (FORMAT.md §3.3.1).
    fn reads_legacy_cfb(&self) -> bool {
        self.encryption
            .as_ref()
            .is_some_and(|k| k.legacy_cfb.is_some())
    }

    /// The object `key.enc` when KubeBlocks' CFB files are read and it is a file.
    async fn legacy_object(&self, key: &str) -> Result<Option<ObjectInfo>> {
        if key.is_empty() || !self.reads_legacy_cfb() {
            return Ok(None);
        }
        self.file(&format!("{key}{}", legacy_cfb::SUFFIX)).await
    }

    /// Removes a file, or with `recursive` everything under a directory (then empty local
    /// directories). Removing a missing path recursively succeeds; without `recursive` it is
    /// `NotFound`, and a directory is `InvalidInput`. Returns the number of objects deleted.
    pub async fn remove(&self, path: &str, recursive: bool) -> Result<u64> {
        let key = path::normalize(path)?;
        if self.file(&key).await?.is_some() {
            self.store.delete(&key).await?;
            return Ok(1);
        }
        if self.legacy_object(&key).await?.is_some() {
            self.store
                .delete(&format!("{key}{}", legacy_cfb::SUFFIX))
                .await?;
            return Ok(1);
        }
        if !recursive {
            let listing = self.store.list_dir(&key).await.unwrap_or_default();
            if !listing.objects.is_empty() || !listing.dirs.is_empty() {
                return Err(Error::invalid(format!(
                    "{path} is a directory (use rm -r to remove it)"
                )));
            }
            return Err(Error::not_found(format!("{path} does not exist")));
        }
        let keys: Vec<String> = self
            .store
            .list_stream(&key)
            .try_filter_map(|info| async move { Ok(Some(info.key)) })
            .try_collect::<Vec<_>>()
            .await
            .or_else(|e| {
                if e.kind() == ErrorKind::NotFound {
                    Ok(Vec::new())
                } else {
                    Err(e)
                }
            })?;
        let store = self.store.clone();
        let count = keys.len() as u64;
        futures::stream::iter(keys)
            .map(|k| {
                let store = store.clone();
                async move { store.delete(&k).await }
            })
            .buffer_unordered(16)
            .try_collect::<Vec<()>>()
            .await?;
        // Staging files of killed pushes below the path (local stores; listings never show
        // them): removing the path removes them too, whatever their age.
        self.store
            .sweep_staging(&key, std::time::Duration::ZERO)
            .await?;
        self.remove_empty_dirs(&key).await?;
        Ok(count)
    }

    /// Removes the (now empty) directory tree at `key`, deepest first: real directories on
    /// local stores, directory marker objects elsewhere.
    async fn remove_empty_dirs(&self, key: &str) -> Result<()> {
        let mut dirs = vec![key.to_string()];
        let mut index = 0;
        while index < dirs.len() {
            let listing = match self.store.list_dir(&dirs[index]).await {
                Ok(l) => l,
                Err(e) if e.kind() == ErrorKind::NotFound => DirListing::default(),
                Err(e) => return Err(e),
            };
            dirs.extend(listing.dirs);
            index += 1;
        }
        for dir in dirs.iter().rev() {
            if dir.is_empty() {
                continue;
            }
            self.store.rmdir(dir).await?;
        }
        Ok(())
    }

    /// The object at `key` if it is a file. A zero-byte object with entries below it is a
    /// directory marker (SeaweedFS, S3 consoles), not a file.
    async fn file(&self, key: &str) -> Result<Option<ObjectInfo>> {
        if key.is_empty() {
            return Ok(None);
        }
        let Some(info) = self.store.head(key).await? else {
            return Ok(None);
        };
        if info.size == 0 {
            let listing = self.store.list_dir(key).await?;
            if !listing.objects.is_empty() || !listing.dirs.is_empty() {
                return Ok(None);
            }
        }
        Ok(Some(info))
    }

    /// Removes an empty directory; a directory with entries is an error.
    pub async fn rmdir(&self, path: &str) -> Result<()> {
        let key = path::normalize(path)?;
        if self.file(&key).await?.is_some() {
            return Err(Error::invalid(format!("{path} is a file, not a directory")));
        }
        let listing = self.store.list_dir(&key).await?;
        if !listing.objects.is_empty() || !listing.dirs.is_empty() {
            return Err(Error::invalid(format!("directory {path} is not empty")));
        }
        if !key.is_empty() {
            self.store.rmdir(&key).await?;
        }
        Ok(())
    }

    /// Creates a directory (a real one on local stores; object stores have none).
    pub async fn mkdir(&self, path: &str) -> Result<()> {
        let key = path::normalize(path)?;
        self.store.mkdir(&key).await
    }
}

use crate::backend::DirListing;

/// Why the encoding side of a put stopped.
enum EncodeError {
    /// The uploader went away (its error is the one to report).
    UploadStopped,
    /// Reading the source or encoding failed.
    Failed(Error),
}

/// source → [compress] → [seal] → parts. Returns the bytes read from the source.
fn encode(
    source: &mut dyn Read,
    sink: PartWriter,
    compression: Option<Compression>,
    encryption: Option<&StreamKey>,
    on_bytes: impl FnMut(u64),
) -> std::result::Result<u64, EncodeError> {
    let abort = sink.sender();
    let err = match encode_inner(source, sink, compression, encryption, on_bytes) {
        Ok(n) => return Ok(n),
        Err(CopyError::Write(e)) if is_upload_stopped(&e) => {
            return Err(EncodeError::UploadStopped);
        }
        Err(CopyError::Read(e)) => Error::from_io("reading the data to push", e),
        Err(CopyError::Write(e)) => Error::from_io("compressing or encrypting the data to push", e),
    };
    // The uploader must abort rather than complete a truncated object.
    let _ = abort.blocking_send(Err(Error::new(err.kind(), err.message().to_string())));
    Err(EncodeError::Failed(err))
}

fn encode_inner(
    source: &mut dyn Read,
    sink: PartWriter,
    compression: Option<Compression>,
    encryption: Option<&StreamKey>,
    on_bytes: impl FnMut(u64),
) -> std::result::Result<u64, CopyError> {
    let w = CopyError::Write;
    let read = match (compression, encryption) {
        (None, None) => {
            let mut sink = sink;
            let n = copy_with_progress(source, &mut sink, on_bytes)?;
            sink.finish().map_err(w)?;
            n
        }
        (Some(c), None) => {
            let mut enc = c.encoder(sink).map_err(w)?;
            let n = copy_with_progress(source, &mut enc, on_bytes)?;
            enc.finish().map_err(w)?.finish().map_err(w)?;
            n
        }
        (None, Some(key)) => {
            let mut seal = SealWriter::new(sink, key).map_err(|e| w(e.into_io()))?;
            let n = copy_with_progress(source, &mut seal, on_bytes)?;
            seal.finish().map_err(w)?.finish().map_err(w)?;
            n
        }
        (Some(c), Some(key)) => {
            let seal = SealWriter::new(sink, key).map_err(|e| w(e.into_io()))?;
            let mut enc = c.encoder(seal).map_err(w)?;
            let n = copy_with_progress(source, &mut enc, on_bytes)?;
            enc.finish()
                .map_err(w)?
                .finish()
                .map_err(w)?
                .finish()
                .map_err(w)?;
            n
        }
    };
    Ok(read)
}

fn is_upload_stopped(e: &std::io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<UploadStopped>())
}

/// stored bytes → [open] → [decompress] → sink. Returns the bytes written.
/// How a stored object is encrypted.
enum Sealing {
    /// Not at all.
    None,
    /// Cairn's segmented AEAD stream (FORMAT.md §3.3).
    Cairn(StreamKey),
    /// KubeBlocks' AES-CFB (`P.enc`, FORMAT.md §3.3.1).
    Cfb(CfbKey),
}

fn decode(
    source: &mut StreamReader,
    sink: &mut dyn Write,
    decompression: Option<Compression>,
    sealing: Sealing,
    name: &str,
    on_bytes: impl FnMut(u64),
) -> Result<u64> {
    let map = |e: CopyError| match e {
        CopyError::Write(e) => Error::from_io(format!("writing {name} to its destination"), e),
        CopyError::Read(e) => {
            let err = Error::from_io(format!("reading {name}"), e);
            if err.kind() == ErrorKind::Io && decompression.is_some() {
                Error::corrupt(format!(
                    "decompressing {name}: the data is not in the expected format or is damaged"
                ))
                .with_source(err)
            } else {
                err
            }
        }
    };
    let read_err = |e: std::io::Error| map(CopyError::Read(e));
    let written = match (decompression, sealing) {
        (None, Sealing::None) => copy_with_progress(source, sink, on_bytes).map_err(map)?,
        (Some(c), Sealing::None) => {
            let mut dec = c.decoder(source).map_err(read_err)?;
            copy_with_progress(&mut dec, sink, on_bytes).map_err(map)?
        }
        (None, Sealing::Cfb(key)) => {
            let mut open = CfbReader::new(source, key);
            copy_with_progress(&mut open, sink, on_bytes).map_err(map)?
        }
        (Some(c), Sealing::Cfb(key)) => {
            let mut dec = c
                .decoder(BufReader::with_capacity(
                    1 << 16,
                    CfbReader::new(source, key),
                ))
                .map_err(read_err)?;
            copy_with_progress(&mut dec, sink, on_bytes).map_err(map)?
        }
        (None, Sealing::Cairn(key)) => {
            let mut open = OpenReader::new(source, &key.passphrase, name)?;
            copy_with_progress(&mut open, sink, on_bytes).map_err(map)?
        }
        (Some(c), Sealing::Cairn(key)) => {
            let open = OpenReader::new(source, &key.passphrase, name)?;
            let mut dec = c
                .decoder(BufReader::with_capacity(1 << 16, open))
                .map_err(read_err)?;
            copy_with_progress(&mut dec, sink, on_bytes).map_err(map)?
        }
    };
    Ok(written)
}
