//! An in-memory object store that runs a test's hook before each request: to delay reads,
//! count them, record their order or refuse writes, as a slow, failing or busy store would.

use std::fmt;

use async_trait::async_trait;
use futures::stream::BoxStream;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult,
};

/// What a test does before a request reaches the store. An error is the request's answer.
#[async_trait]
pub trait StoreHook: fmt::Debug + Send + Sync + 'static {
    /// Before a write (a single put or the start of a multipart upload).
    async fn put(&self, _location: &Path) -> object_store::Result<()> {
        Ok(())
    }
    /// Before a read, whole or ranged.
    async fn get(&self, _location: &Path, _options: &GetOptions) -> object_store::Result<()> {
        Ok(())
    }
    /// Before a listing, recursive or by delimiter.
    fn list(&self, _prefix: Option<&Path>) {}
}

/// [`InMemory`] behind a [`StoreHook`]; the hook stays reachable as `hook` for assertions.
#[derive(Debug, Default)]
pub struct HookedStore<H> {
    inner: InMemory,
    pub hook: H,
}

impl<H: StoreHook> HookedStore<H> {
    pub fn new(hook: H) -> Self {
        Self {
            inner: InMemory::new(),
            hook,
        }
    }
}

impl<H> fmt::Display for HookedStore<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HookedStore")
    }
}

#[async_trait]
impl<H: StoreHook> ObjectStore for HookedStore<H> {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.hook.put(location).await?;
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.hook.put(location).await?;
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.hook.get(location, &options).await?;
        self.inner.get_opts(location, options).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.hook.list(prefix);
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.hook.list(prefix);
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}
