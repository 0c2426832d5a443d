//! The store: every byte of the repository goes through here, on top of `object_store`, with
//! retries, bounded parallelism, streaming multipart uploads and parallel ranged downloads
//! (docs/FORMAT.md §2.3).

mod build;
pub(crate) mod direct_io;
mod gcs;
pub mod local;
mod retry;
mod staging;
mod transfer;

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use backon::Retryable;
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use jiff::Timestamp;
use object_store::path::Path;
use object_store::{GetOptions, GetRange, ObjectMeta, ObjectStore, ObjectStoreExt, PutPayload};
use tokio::sync::Semaphore;

pub use retry::RetryOptions;
pub use staging::{STALE_STAGING, is_older as staging_is_older, is_staging_name};
pub use transfer::Part;

use crate::config::StorageConfig;
use crate::{Error, ErrorKind, Result};

/// Default multipart part size (and the largest buffer one upload holds).
pub const DEFAULT_PART_SIZE: u64 = 16 << 20;
const MIN_PART_SIZE: u64 = 5 << 20;
const MAX_PART_SIZE: u64 = 512 << 20;

/// Limits of one store client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransferOptions {
    /// Bytes per multipart part.
    pub part_size: u64,
    /// Parts of one upload in flight at once.
    pub upload_parallelism: usize,
    /// Bytes per ranged read of a download.
    pub range_size: u64,
    /// Ranges of one download in flight at once.
    pub download_parallelism: usize,
    /// Requests in flight at once over the whole client.
    pub max_requests: usize,
    /// Retries of the repository layer.
    pub retry: RetryOptions,
}

impl Default for TransferOptions {
    fn default() -> Self {
        TransferOptions {
            part_size: DEFAULT_PART_SIZE,
            upload_parallelism: 4,
            range_size: 8 << 20,
            download_parallelism: 4,
            max_requests: 32,
            retry: RetryOptions::default(),
        }
    }
}

/// An object listed in a store, with its key relative to the store root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Key relative to the store root (`a/b/c`).
    pub key: String,
    /// Size in bytes.
    pub size: u64,
    /// Last modification time, as the store reports it.
    pub modified: Timestamp,
}

/// One level of a listing: objects and sub-directories (keys relative to the store root).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DirListing {
    /// Objects directly in the directory.
    pub objects: Vec<ObjectInfo>,
    /// Sub-directories (keys without a trailing `/`).
    pub dirs: Vec<String>,
}

/// A cheap-to-clone handle on a store: the client, the key prefix and the limits.
#[derive(Clone)]
pub struct Store {
    inner: Arc<dyn ObjectStore>,
    prefix: String,
    local_root: Option<Arc<local::LocalRoot>>,
    options: TransferOptions,
    permits: Arc<Semaphore>,
    description: String,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("store", &self.description)
            .field("prefix", &self.prefix)
            .finish()
    }
}

impl Store {
    /// Connects to the store a configuration names (no request is made yet).
    pub fn open(config: &StorageConfig) -> Result<Store> {
        let built = build::build_object_store(config)?;
        let mut options = TransferOptions::default();
        if let Some(part) = config.part_size {
            options.part_size = part.clamp(MIN_PART_SIZE, MAX_PART_SIZE);
        }
        let description = match &config.backend {
            crate::config::BackendConfig::Local { root } => format!("local {}", root.display()),
            _ => format!("{} {}", config.type_name(), built.store),
        };
        Ok(Store {
            inner: built.store,
            prefix: built.prefix,
            local_root: built.local_root,
            permits: Arc::new(Semaphore::new(options.max_requests)),
            options,
            description,
        })
    }

    /// Wraps an existing `object_store` client (tests share one `InMemory` between opens).
    pub fn from_object_store(store: Arc<dyn ObjectStore>) -> Store {
        let options = TransferOptions::default();
        Store {
            description: store.to_string(),
            inner: store,
            prefix: String::new(),
            local_root: None,
            permits: Arc::new(Semaphore::new(options.max_requests)),
            options,
        }
    }

    /// The same store with different limits.
    pub fn with_options(mut self, options: TransferOptions) -> Store {
        self.permits = Arc::new(Semaphore::new(options.max_requests.max(1)));
        self.options = options;
        self
    }

    /// The limits in force.
    pub fn options(&self) -> &TransferOptions {
        &self.options
    }

    /// A view of this store rooted at `sub` (keys are relative to it).
    pub fn sub(&self, sub: &str) -> Store {
        let mut store = self.clone();
        store.prefix = join_keys(&self.prefix, sub);
        store
    }

    /// Whether this is a local directory (the only store with real directories).
    pub fn is_local(&self) -> bool {
        self.local_root.is_some()
    }

    fn path(&self, key: &str) -> Result<Path> {
        let full = join_keys(&self.prefix, key);
        Path::parse(&full).map_err(|e| {
            Error::invalid(format!("{key:?} is not a valid object path")).with_source(e)
        })
    }

    fn relative(&self, location: &Path) -> String {
        let full = location.as_ref();
        if self.prefix.is_empty() {
            return full.to_string();
        }
        full.strip_prefix(&self.prefix)
            .map(|rest| rest.trim_start_matches('/').to_string())
            .unwrap_or_else(|| full.to_string())
    }

    fn info(&self, meta: &ObjectMeta) -> ObjectInfo {
        ObjectInfo {
            key: self.relative(&meta.location),
            size: meta.size,
            modified: Timestamp::new(
                meta.last_modified.timestamp(),
                meta.last_modified.timestamp_subsec_nanos() as i32,
            )
            .unwrap_or(Timestamp::UNIX_EPOCH),
        }
    }

    /// Runs `op` with a request permit and the retry policy, mapping the final error.
    async fn call<T, F, Fut>(&self, what: &(dyn Fn() -> String + Send + Sync), op: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = object_store::Result<T>>,
    {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| Error::new(ErrorKind::Backend, "store client is shut down"))?;
        op.retry(self.options.retry.backoff())
            .sleep(tokio::time::sleep)
            .when(retry::is_transient)
            .notify(|err, delay| {
                tracing::debug!(error = %err, ?delay, "retrying store request");
            })
            .await
            .map_err(|e| map_store_error(what(), e))
    }

    /// Writes a whole object from memory (retried; the payload is replayable).
    pub async fn put(&self, key: &str, data: Bytes) -> Result<()> {
        let path = self.path(key)?;
        let payload = PutPayload::from(data);
        self.call(&|| format!("writing {}", self.describe(key)), || {
            self.inner.put(&path, payload.clone())
        })
        .await
        .map(|_| ())
    }

    /// Reads a whole object into memory (for small objects: metadata, headers).
    pub async fn get(&self, key: &str) -> Result<Bytes> {
        let path = self.path(key)?;
        self.call(&|| format!("reading {}", self.describe(key)), || async {
            self.inner.get(&path).await?.bytes().await
        })
        .await
    }

    /// Reads `range` of an object.
    pub async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes> {
        let path = self.path(key)?;
        let bytes = self
            .call(
                &|| {
                    format!(
                        "reading bytes {}..{} of {}",
                        range.start,
                        range.end,
                        self.describe(key)
                    )
                },
                || self.inner.get_range(&path, range.clone()),
            )
            .await?;
        if bytes.len() as u64 != range.end - range.start {
            return Err(Error::corrupt(format!(
                "{} is shorter than expected: asked for bytes {}..{}, got {}",
                self.describe(key),
                range.start,
                range.end,
                bytes.len()
            )));
        }
        Ok(bytes)
    }

    /// Reads `range` of an object that will not be read again soon (a restore's pack
    /// ranges): on a local store without the page cache where the file system allows it
    /// (`LocalRoot::read_range_uncached`), elsewhere like [`Store::get_range`].
    pub async fn get_range_once(&self, key: &str, range: Range<u64>) -> Result<Bytes> {
        let Some((root, parts)) = self.local_parts(key)? else {
            return self.get_range(key, range).await;
        };
        let what = || {
            format!(
                "reading bytes {}..{} of {}",
                range.start,
                range.end,
                self.describe(key)
            )
        };
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| Error::new(ErrorKind::Backend, "store client is shut down"))?;
        let wanted = range.clone();
        let read = tokio::task::spawn_blocking(move || {
            root.read_range_uncached(&as_strs(&parts), &wanted)
        })
        .await
        .map_err(|e| Error::new(ErrorKind::Io, what()).with_source(e))?;
        match read {
            Ok(bytes) => Ok(bytes),
            // As `get_range` says of an object that ends before the range does.
            Err(local::LocalError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::UnexpectedEof =>
            {
                Err(Error::corrupt(format!(
                    "{} is shorter than expected: asked for bytes {}..{} ({source})",
                    self.describe(key),
                    range.start,
                    range.end
                )))
            }
            Err(e) if e.is_refusal() => Err(local_error(what(), e)),
            Err(local::LocalError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                Err(Error::new(ErrorKind::NotFound, what()).with_source(source))
            }
            Err(e) => {
                let transient = e.is_transient();
                Err(Error::new(ErrorKind::Backend, what())
                    .with_source(e)
                    .transient(transient))
            }
        }
    }

    /// Reads the last `len` bytes of an object; returns them and the object's size.
    pub async fn get_suffix(&self, key: &str, len: u64) -> Result<(Bytes, u64)> {
        let path = self.path(key)?;
        self.call(
            &|| format!("reading the last {len} bytes of {}", self.describe(key)),
            || async {
                let options = GetOptions {
                    range: Some(GetRange::Suffix(len)),
                    ..Default::default()
                };
                let result = match self.inner.get_opts(&path, options).await {
                    // Azure Blob has no suffix ranges (`bytes=-N`): ask for the size, then
                    // read the tail as an offset range.
                    Err(object_store::Error::NotSupported { .. }) => {
                        let size = self.inner.head(&path).await?.size;
                        let start = size.saturating_sub(len);
                        if start == size {
                            return Ok((Bytes::new(), size));
                        }
                        let bytes = self.inner.get_range(&path, start..size).await?;
                        return Ok((bytes, size));
                    }
                    other => other?,
                };
                let size = result.meta.size;
                Ok((result.bytes().await?, size))
            },
        )
        .await
    }

    /// Size and time of an object, or `None` if it does not exist.
    pub async fn head(&self, key: &str) -> Result<Option<ObjectInfo>> {
        let path = self.path(key)?;
        match self
            .call(&|| format!("looking up {}", self.describe(key)), || {
                self.inner.head(&path)
            })
            .await
        {
            Ok(meta) => Ok(Some(self.info(&meta))),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Deletes an object. Deleting a missing object is not an error (S3 does not say
    /// either), so deletions can be retried.
    pub async fn delete(&self, key: &str) -> Result<()> {
        let path = self.path(key)?;
        match self
            .call(&|| format!("deleting {}", self.describe(key)), || {
                self.inner.delete(&path)
            })
            .await
        {
            Err(e) if e.kind() != ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// One level of the tree under `dir` (empty = the root).
    pub async fn list_dir(&self, dir: &str) -> Result<DirListing> {
        let path = self.path(dir)?;
        let prefix = if path.as_ref().is_empty() {
            None
        } else {
            Some(path)
        };
        let listing = self
            .call(&|| format!("listing {}", self.describe(dir)), || {
                self.inner.list_with_delimiter(prefix.as_ref())
            })
            .await?;
        let own_key = join_keys("", dir);
        let dirs: Vec<String> = listing
            .common_prefixes
            .iter()
            .map(|p| self.relative(p))
            .collect();
        // Some stores (SeaweedFS, S3 consoles) keep zero-byte `dir/` marker objects; they are
        // the directory, not a file.
        let objects = listing
            .objects
            .iter()
            .map(|m| self.info(m))
            .filter(|o| !(o.size == 0 && (dirs.contains(&o.key) || o.key == own_key)))
            .collect();
        Ok(DirListing { objects, dirs })
    }

    /// Every object under `dir`, recursively, as a stream (the listing of a large repository
    /// is never held whole).
    pub fn list_stream(&self, dir: &str) -> BoxStream<'static, Result<ObjectInfo>> {
        let path = match self.path(dir) {
            Ok(p) => p,
            Err(e) => return futures::stream::once(async move { Err(e) }).boxed(),
        };
        let this = self.clone();
        let what = self.describe(dir);
        let prefix = if path.as_ref().is_empty() {
            None
        } else {
            Some(path)
        };
        self.inner
            .list(prefix.as_ref())
            .map(move |item| match item {
                Ok(meta) => Ok(this.info(&meta)),
                Err(e) => Err(map_store_error(format!("listing {what}"), e)),
            })
            .boxed()
    }

    /// Every object under `dir`, recursively (for small trees).
    pub async fn list_all(&self, dir: &str) -> Result<Vec<ObjectInfo>> {
        let mut out = Vec::new();
        let mut stream = self.list_stream(dir);
        while let Some(item) = stream.next().await {
            match item {
                Ok(info) => out.push(info),
                Err(e) if e.kind() == ErrorKind::NotFound => break,
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// Creates a directory (local stores only; object stores have no directories). No
    /// symbolic link is followed on the way.
    pub async fn mkdir(&self, dir: &str) -> Result<()> {
        if let Some((root, parts)) = self.local_parts(dir)? {
            let what = self.describe(dir);
            tokio::task::spawn_blocking(move || root.mkdir(&as_strs(&parts)))
                .await
                .map_err(|e| {
                    Error::new(ErrorKind::Io, format!("creating directory {what}")).with_source(e)
                })?
                .map_err(|e| local_error(format!("creating directory {what}"), e))?;
        }
        Ok(())
    }

    /// Removes an empty directory: a real one on local stores, the directory marker object
    /// (if any) elsewhere. `Ok(false)` if a local directory did not exist.
    pub async fn rmdir(&self, dir: &str) -> Result<bool> {
        let Some((root, parts)) = self.local_parts(dir)? else {
            if !dir.is_empty() {
                self.delete(dir).await?;
            }
            return Ok(true);
        };
        let what = self.describe(dir);
        tokio::task::spawn_blocking(move || root.rmdir(&as_strs(&parts)))
            .await
            .map_err(|e| {
                Error::new(ErrorKind::Io, format!("removing directory {what}")).with_source(e)
            })?
            .map_err(|e| local_error(format!("removing directory {what}"), e))
    }

    /// The confined root and the path segments of a key on a local store.
    fn local_parts(&self, key: &str) -> Result<Option<(Arc<local::LocalRoot>, Vec<String>)>> {
        let Some(root) = &self.local_root else {
            return Ok(None);
        };
        let full = join_keys(&self.prefix, key);
        if full.split('/').any(|s| s == "..") {
            return Err(Error::invalid(format!("{key:?} escapes the store root")));
        }
        let parts = full
            .split('/')
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect();
        Ok(Some((Arc::clone(root), parts)))
    }

    /// The key as a user would recognise it in messages (`s3 bucket/prefix/key`).
    pub fn describe(&self, key: &str) -> String {
        let full = join_keys(&self.prefix, key);
        match &self.local_root {
            Some(root) => root.path().join(full).display().to_string(),
            None => full,
        }
    }
}

/// Joins two `/`-separated keys, dropping empty segments.
pub(crate) fn join_keys(a: &str, b: &str) -> String {
    a.split('/')
        .chain(b.split('/'))
        .filter(|s| !s.is_empty() && *s != ".")
        .collect::<Vec<_>>()
        .join("/")
}

fn as_strs(parts: &[String]) -> Vec<&str> {
    parts.iter().map(String::as_str).collect()
}

/// Maps a local store's error to ours: a refusal (a symbolic link, a special file) is invalid
/// input, an I/O error keeps its kind.
fn local_error(what: String, err: local::LocalError) -> Error {
    let kind = match &err {
        local::LocalError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
            ErrorKind::NotFound
        }
        local::LocalError::Io { .. } => ErrorKind::Io,
        _ => ErrorKind::InvalidInput,
    };
    let transient = err.is_transient();
    Error::new(kind, what).with_source(err).transient(transient)
}

/// Maps an `object_store` error to ours, keeping it as the source (a local store's own error
/// directly, without `object_store`'s wrapping).
pub(crate) fn map_store_error(what: String, err: object_store::Error) -> Error {
    let err = match err {
        object_store::Error::Generic { store, source } if store == local::STORE_NAME => {
            match source.downcast::<local::LocalError>() {
                Ok(local) if local.is_refusal() => return local_error(what, *local),
                Ok(local) => {
                    let transient = local.is_transient();
                    return Error::new(ErrorKind::Backend, what)
                        .with_source(*local)
                        .transient(transient);
                }
                Err(source) => object_store::Error::Generic { store, source },
            }
        }
        object_store::Error::NotFound { path, source } => {
            match source.downcast::<local::LocalError>() {
                Ok(local) => return Error::new(ErrorKind::NotFound, what).with_source(*local),
                Err(source) => object_store::Error::NotFound { path, source },
            }
        }
        other => other,
    };
    let transient = retry::is_transient(&err);
    let kind = match &err {
        object_store::Error::NotFound { .. } => ErrorKind::NotFound,
        object_store::Error::InvalidPath { .. } => ErrorKind::InvalidInput,
        object_store::Error::NotSupported { .. } | object_store::Error::NotImplemented { .. } => {
            ErrorKind::Unsupported
        }
        _ => ErrorKind::Backend,
    };
    Error::new(kind, what).with_source(err).transient(transient)
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::memory::InMemory;

    #[test]
    fn join_keys_drops_empty_segments() {
        assert_eq!(join_keys("", "a//b/"), "a/b");
        assert_eq!(join_keys("root/", "/x"), "root/x");
        assert_eq!(join_keys("", ""), "");
    }

    #[tokio::test]
    async fn sub_stores_see_keys_relative_to_their_prefix() {
        let store = Store::from_object_store(Arc::new(InMemory::new()));
        let sub = store.sub("base/path");
        sub.put("dir/file", Bytes::from_static(b"hello"))
            .await
            .expect("put");
        assert_eq!(
            store.get("base/path/dir/file").await.expect("get"),
            Bytes::from_static(b"hello")
        );
        let listing = sub.list_dir("dir").await.expect("list");
        assert_eq!(listing.objects.len(), 1);
        assert_eq!(listing.objects[0].key, "dir/file");
        let all = sub.list_all("").await.expect("list all");
        assert_eq!(all[0].key, "dir/file");
        assert!(sub.head("missing").await.expect("head").is_none());
        sub.delete("missing")
            .await
            .expect("deleting a missing object is fine");
    }

    /// Ranges read past the page cache (`O_DIRECT`, aligned inside) are the bytes an
    /// ordinary read returns, at any offset, on the disk's file system and on tmpfs; a range
    /// past the end is damage, a missing object is not found.
    #[tokio::test]
    async fn ranges_read_once_are_the_bytes_of_an_ordinary_read() {
        let mut dirs = vec![tempfile::tempdir().expect("tempdir")];
        if std::path::Path::new("/dev/shm").is_dir() {
            dirs.push(tempfile::tempdir_in("/dev/shm").expect("tempdir on tmpfs"));
        }
        for dir in &dirs {
            let url = format!("file://{}", dir.path().display());
            let store =
                Store::open(&crate::config::parse_storage_url(&url).expect("url")).expect("store");
            assert!(store.is_local());
            let size: u64 = (3 << 20) + 123;
            let data: Vec<u8> = (0..size).map(|i| (i * 7 + i / 4096) as u8).collect();
            store
                .put("data/ab/pack", Bytes::from(data.clone()))
                .await
                .expect("put");
            for range in [
                0..10,
                4095..4097,
                5000..(2 << 20) + 17,
                size - 7..size,
                0..size,
                4096..8192,
                100..100,
            ] {
                let once = store
                    .get_range_once("data/ab/pack", range.clone())
                    .await
                    .expect("read once");
                assert_eq!(
                    once.as_ref(),
                    &data[range.start as usize..range.end as usize],
                    "{range:?} in {}",
                    dir.path().display()
                );
            }
            let err = store
                .get_range_once("data/ab/pack", size - 1..size + 1)
                .await
                .expect_err("past the end");
            assert_eq!(err.kind(), ErrorKind::Corrupt, "{err}");
            assert!(err.to_string().contains("shorter than expected"), "{err}");
            let err = store
                .get_range_once("data/ab/none", 0..1)
                .await
                .expect_err("missing");
            assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
        }
    }

    #[tokio::test]
    async fn a_missing_object_is_not_found_and_names_the_key() {
        let store = Store::from_object_store(Arc::new(InMemory::new()));
        let err = store.get("nope/x").await.expect_err("missing");
        assert_eq!(err.kind(), ErrorKind::NotFound);
        assert_eq!(err.to_string(), "reading nope/x");
    }
}
