//! Google Cloud Storage through its JSON API for every write.
//!
//! object_store's GCS client writes through GCS's XML API (PUT, XML multipart uploads, DELETE,
//! copy with `x-goog-copy-source`). This store keeps that client for what it does on both
//! real GCS and the emulators (ranged GET, HEAD, listings) and for its credential handling (a
//! service-account key signs every request with an RS256 JWT, application default credentials,
//! the instance metadata server), and sends the writes through the JSON API instead:
//!
//! - `put`: one media upload, `POST /upload/storage/v1/b/{bucket}/o?uploadType=media`;
//!   [`PutMode::Create`] is `ifGenerationMatch=0`, [`PutMode::Update`] the generation.
//! - multipart: one resumable upload session (`uploadType=resumable`). GCS takes a session's
//!   bytes in order, in chunks of a multiple of 256 KiB but the last, so each part waits for
//!   the one before it, sends the largest such multiple it holds and hands the rest (and the
//!   offset the server confirmed) on; `complete` sends the rest with the total size.
//!   Parts still go out while the next ones are read: only their sending is in order.
//! - delete: `DELETE /storage/v1/b/{bucket}/o/{object}`.
//! - copy: `rewriteTo` (repeated with its token until done), `ifGenerationMatch=0` for
//!   [`CopyMode::Create`].
//!
//! Hand-written on reqwest rather than a second storage crate (opendal's `services-gcs`): it
//! keeps object_store's credential providers (one token cache for reads and writes), the
//! workspace's one HTTP/TLS stack, and the error types the store's retry layer classifies.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::gcp::{GcpCredentialProvider, GoogleCloudStorage};
use object_store::path::Path;
use object_store::{
    CopyMode, CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta,
    ObjectStore, PutMode, PutMultipartOptions, PutOptions, PutPayload, PutResult, UploadPart,
};
use tokio::sync::oneshot;

const STORE: &str = "GCS";

/// GCS takes a resumable upload's bytes in multiples of this (all chunks but the last).
const CHUNK: usize = 256 << 10;

/// How much of an error body goes into the error message.
const BODY_IN_ERROR: usize = 400;

/// Google's default endpoint (object_store's, for the XML API too).
pub(crate) const DEFAULT_BASE_URL: &str = "https://storage.googleapis.com";

#[derive(Debug, thiserror::Error)]
enum GcsError {
    /// The service answered with an error status.
    #[error("{what}: {message}")]
    Status {
        what: String,
        message: String,
        #[source]
        source: reqwest::Error,
    },
    /// No answer (connection, timeout, body).
    #[error("{what}")]
    Request {
        what: String,
        #[source]
        source: reqwest::Error,
    },
    /// An answer that does not say what the JSON API says it must.
    #[error("{what}: {message}")]
    Protocol { what: String, message: String },
}

fn generic(err: GcsError) -> object_store::Error {
    object_store::Error::Generic {
        store: STORE,
        source: Box::new(err),
    }
}

/// The JSON API's object resource (the fields used here).
#[derive(Debug, serde::Deserialize)]
struct ObjectResource {
    #[serde(default)]
    etag: Option<String>,
    #[serde(default)]
    generation: Option<String>,
}

/// A rewrite's answer: `done`, or a token to call again with.
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct RewriteResponse {
    done: bool,
    #[serde(default)]
    rewrite_token: Option<String>,
}

/// Percent-encodes everything but RFC 3986's unreserved characters (object names go into
/// the JSON API's paths, where `/` must be `%2F`, and into query strings).
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// What the client needs to send a request (shared with the uploads it starts).
#[derive(Debug)]
struct Client {
    http: reqwest::Client,
    /// `https://storage.googleapis.com` or an endpoint's root, without a trailing `/`.
    base: String,
    bucket: String,
    /// object_store's provider; `None` for unsigned requests.
    credentials: Option<GcpCredentialProvider>,
}

impl Client {
    async fn authorize(
        &self,
        request: reqwest::RequestBuilder,
    ) -> object_store::Result<reqwest::RequestBuilder> {
        let Some(credentials) = &self.credentials else {
            return Ok(request);
        };
        let credential = credentials.get_credential().await?;
        Ok(if credential.bearer.is_empty() {
            request
        } else {
            request.bearer_auth(&credential.bearer)
        })
    }

    fn object_url(&self, location: &Path) -> String {
        format!(
            "{}/storage/v1/b/{}/o/{}",
            self.base,
            encode(&self.bucket),
            encode(location.as_ref())
        )
    }

    fn upload_url(&self, location: &Path, upload_type: &str) -> String {
        format!(
            "{}/upload/storage/v1/b/{}/o?uploadType={upload_type}&name={}",
            self.base,
            encode(&self.bucket),
            encode(location.as_ref())
        )
    }

    /// Sends `request`; an error status becomes the matching object_store error for `location`.
    async fn send(
        &self,
        request: reqwest::RequestBuilder,
        location: &Path,
        what: impl Fn() -> String,
    ) -> object_store::Result<reqwest::Response> {
        let response = self
            .authorize(request)
            .await?
            .send()
            .await
            .map_err(|source| {
                generic(GcsError::Request {
                    what: what(),
                    source,
                })
            })?;
        check(response, location, what).await
    }
}

/// Passes a success (or a 308 of a resumable upload) through; turns an error status into
/// the object_store error a caller tests for (not found, exists, precondition).
async fn check(
    response: reqwest::Response,
    location: &Path,
    what: impl Fn() -> String,
) -> object_store::Result<reqwest::Response> {
    let status = response.status();
    if status.is_success() || status.as_u16() == 308 {
        return Ok(response);
    }
    let Some(source) = response.error_for_status_ref().err() else {
        return Ok(response);
    };
    let body = response.text().await.unwrap_or_default();
    let message = error_message(status.as_u16(), &body);
    let err = Box::new(GcsError::Status {
        what: what(),
        message,
        source,
    });
    let path = location.to_string();
    Err(match status.as_u16() {
        404 => object_store::Error::NotFound { path, source: err },
        412 => object_store::Error::Precondition { path, source: err },
        _ => object_store::Error::Generic {
            store: STORE,
            source: err,
        },
    })
}

/// `status 403: <GCS's message>` from a JSON API error body (or the start of any other body).
fn error_message(status: u16, body: &str) -> String {
    let message = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            v.pointer("/error/message")
                .and_then(|m| m.as_str())
                .map(str::to_string)
        })
        .unwrap_or_else(|| body.trim().chars().take(BODY_IN_ERROR).collect());
    if message.is_empty() {
        format!("status {status}")
    } else {
        format!("status {status}: {message}")
    }
}

async fn object_resource(
    response: reqwest::Response,
    what: impl Fn() -> String,
) -> object_store::Result<PutResult> {
    let body = response.bytes().await.map_err(|source| {
        generic(GcsError::Request {
            what: what(),
            source,
        })
    })?;
    let resource: ObjectResource = serde_json::from_slice(&body).map_err(|e| {
        generic(GcsError::Protocol {
            what: what(),
            message: format!("the answer is not an object resource: {e}"),
        })
    })?;
    Ok(PutResult {
        e_tag: resource.etag,
        version: resource.generation,
        extensions: Default::default(),
    })
}

/// A GCS bucket: reads through object_store's client, writes through the JSON API.
#[derive(Debug)]
pub(crate) struct GcsStore {
    reads: GoogleCloudStorage,
    client: Arc<Client>,
}

impl GcsStore {
    /// `reads` is the configured object_store client, whose credentials sign the writes too
    /// (none when `anonymous`); `base` the service's root URL.
    pub(crate) fn new(
        reads: GoogleCloudStorage,
        bucket: &str,
        base: Option<&str>,
        anonymous: bool,
        allow_http: bool,
    ) -> Result<GcsStore, reqwest::Error> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(300))
            .pool_max_idle_per_host(64)
            .https_only(!allow_http)
            // A resumable upload's `308 Resume Incomplete` is an answer, not a redirect.
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        let credentials = (!anonymous).then(|| Arc::clone(reads.credentials()));
        Ok(GcsStore {
            reads,
            client: Arc::new(Client {
                http,
                base: base
                    .unwrap_or(DEFAULT_BASE_URL)
                    .trim_end_matches('/')
                    .to_string(),
                bucket: bucket.to_string(),
                credentials,
            }),
        })
    }
}

impl fmt::Display for GcsStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "GoogleCloudStorage(JSON API writes; {})",
            self.client.bucket
        )
    }
}

#[async_trait]
impl ObjectStore for GcsStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        let client = &self.client;
        let mut url = client.upload_url(location, "media");
        match &opts.mode {
            PutMode::Overwrite => {}
            PutMode::Create => url.push_str("&ifGenerationMatch=0"),
            PutMode::Update(version) => {
                let generation = version.version.as_deref().ok_or_else(|| {
                    object_store::Error::NotSupported {
                        source: "a conditional update on GCS needs the object's generation".into(),
                    }
                })?;
                url.push_str(&format!("&ifGenerationMatch={}", encode(generation)));
            }
        }
        let what = || format!("uploading gs://{}/{location}", client.bucket);
        let request = client
            .http
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .body(Bytes::from(payload));
        let response = match client.send(request, location, what).await {
            Err(object_store::Error::Precondition { path, source })
                if matches!(opts.mode, PutMode::Create) =>
            {
                return Err(object_store::Error::AlreadyExists { path, source });
            }
            other => other?,
        };
        object_resource(response, what).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        _opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        let client = &self.client;
        let what = || format!("starting an upload to gs://{}/{location}", client.bucket);
        let request = client
            .http
            .post(client.upload_url(location, "resumable"))
            .header("X-Upload-Content-Type", "application/octet-stream")
            .header(reqwest::header::CONTENT_LENGTH, "0");
        let response = client.send(request, location, what).await?;
        let session = response
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .ok_or_else(|| {
                generic(GcsError::Protocol {
                    what: what(),
                    message: "the answer has no Location (session URI)".into(),
                })
            })?;
        let (first, start) = oneshot::channel();
        // The first part starts at 0 with nothing carried over.
        let _ = first.send(Ok(Tail::default()));
        Ok(Box::new(ResumableUpload {
            session: Arc::new(Session {
                client: Arc::clone(client),
                uri: session,
                location: location.clone(),
            }),
            last: Some(start),
        }))
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.reads.get_opts(location, options).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        let client = Arc::clone(&self.client);
        locations
            .map(move |location| {
                let client = Arc::clone(&client);
                async move {
                    let location = location?;
                    let what = || format!("deleting gs://{}/{location}", client.bucket);
                    let request = client.http.delete(client.object_url(&location));
                    client.send(request, &location, what).await?;
                    Ok(location)
                }
            })
            .buffered(10)
            .boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.reads.list(prefix)
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.reads.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.reads.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        let client = &self.client;
        let what = || format!("copying gs://{0}/{from} to gs://{0}/{to}", client.bucket);
        let base = format!(
            "{}/rewriteTo/b/{}/o/{}",
            client.object_url(from),
            encode(&client.bucket),
            encode(to.as_ref())
        );
        let mut token: Option<String> = None;
        loop {
            let mut query = Vec::new();
            if matches!(options.mode, CopyMode::Create) {
                query.push("ifGenerationMatch=0".to_string());
            }
            if let Some(token) = &token {
                query.push(format!("rewriteToken={}", encode(token)));
            }
            let url = if query.is_empty() {
                base.clone()
            } else {
                format!("{base}?{}", query.join("&"))
            };
            let request = client
                .http
                .post(url)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body("{}");
            let response = match client.send(request, to, what).await {
                Err(object_store::Error::Precondition { path, source })
                    if matches!(options.mode, CopyMode::Create) =>
                {
                    return Err(object_store::Error::AlreadyExists { path, source });
                }
                Err(object_store::Error::NotFound { source, .. }) => {
                    return Err(object_store::Error::NotFound {
                        path: from.to_string(),
                        source,
                    });
                }
                other => other?,
            };
            let body = response.bytes().await.map_err(|source| {
                generic(GcsError::Request {
                    what: what(),
                    source,
                })
            })?;
            let answer: RewriteResponse = serde_json::from_slice(&body).map_err(|e| {
                generic(GcsError::Protocol {
                    what: what(),
                    message: format!("the answer is not a rewrite response: {e}"),
                })
            })?;
            if answer.done {
                return Ok(());
            }
            match answer.rewrite_token {
                Some(next) => token = Some(next),
                None => {
                    return Err(generic(GcsError::Protocol {
                        what: what(),
                        message: "an unfinished rewrite without a rewriteToken".into(),
                    }));
                }
            }
        }
    }
}

/// Where a resumable upload stands after a part: the offset the server holds and the bytes
/// past it not sent yet (less than [`CHUNK`] unless the server kept less than it was sent).
#[derive(Debug, Default)]
struct Tail {
    offset: u64,
    carry: Bytes,
}

/// What a part hands to the next: its tail, or why the upload cannot go on.
type Handoff = Result<Tail, String>;

#[derive(Debug)]
struct Session {
    client: Arc<Client>,
    /// The session URI (it authorizes the upload's requests by itself).
    uri: String,
    location: Path,
}

impl Session {
    fn what(&self) -> String {
        format!(
            "uploading gs://{}/{} (resumable)",
            self.client.bucket, self.location
        )
    }

    /// Sends `data` at `offset`: the whole object's last chunk when `total` is given. Returns
    /// how many bytes the server holds, and the object when it is complete.
    async fn send_chunk(
        &self,
        offset: u64,
        data: Bytes,
        total: Option<u64>,
    ) -> object_store::Result<(u64, Option<PutResult>)> {
        let len = data.len() as u64;
        let total_text = total.map_or_else(|| "*".to_string(), |t| t.to_string());
        let range = if len == 0 {
            format!("bytes */{total_text}")
        } else {
            format!("bytes {offset}-{}/{total_text}", offset + len - 1)
        };
        let mut request = self
            .client
            .http
            .put(&self.uri)
            .header(reqwest::header::CONTENT_RANGE, range);
        request = if len == 0 {
            // GCS wants the length said even when there is nothing (`411` otherwise).
            request.header(reqwest::header::CONTENT_LENGTH, "0")
        } else {
            request.body(data)
        };
        let response = self
            .client
            .send(request, &self.location, || self.what())
            .await?;
        if response.status().as_u16() == 308 {
            // `Range: bytes=0-N`: the server holds N + 1 bytes; none when absent.
            let held = match response.headers().get(reqwest::header::RANGE) {
                None => 0,
                Some(value) => value
                    .to_str()
                    .ok()
                    .and_then(|v| v.rsplit('-').next())
                    .and_then(|end| end.trim().parse::<u64>().ok())
                    .map(|end| end + 1)
                    .ok_or_else(|| {
                        generic(GcsError::Protocol {
                            what: self.what(),
                            message: format!("a Range it cannot read: {value:?}"),
                        })
                    })?,
            };
            return Ok((held, None));
        }
        let result = object_resource(response, || self.what()).await?;
        Ok((offset + len, Some(result)))
    }

    /// One part: everything held after `tail`'s offset but the part of a chunk at the end.
    async fn part(&self, tail: Tail, data: PutPayload) -> object_store::Result<Tail> {
        let mut joined = BytesMut::with_capacity(tail.carry.len() + data.content_length());
        joined.extend_from_slice(&tail.carry);
        for chunk in &data {
            joined.extend_from_slice(chunk);
        }
        let joined = joined.freeze();
        let whole = joined.len() / CHUNK * CHUNK;
        if whole == 0 {
            return Ok(Tail {
                offset: tail.offset,
                carry: joined,
            });
        }
        let (held, _) = self
            .send_chunk(tail.offset, joined.slice(..whole), None)
            .await?;
        if held < tail.offset || held > tail.offset + whole as u64 {
            return Err(generic(GcsError::Protocol {
                what: self.what(),
                message: format!(
                    "the server holds {held} bytes after a chunk of {} at {}",
                    whole, tail.offset
                ),
            }));
        }
        let kept = usize::try_from(held - tail.offset).unwrap_or(whole);
        Ok(Tail {
            offset: held,
            carry: joined.slice(kept..),
        })
    }
}

/// A resumable upload session as a [`MultipartUpload`].
struct ResumableUpload {
    session: Arc<Session>,
    /// The last part's hand-off (the session's start before any part).
    last: Option<oneshot::Receiver<Handoff>>,
}

impl fmt::Debug for ResumableUpload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResumableUpload")
            .field("location", &self.session.location)
            .finish_non_exhaustive()
    }
}

/// Waits for the previous part's hand-off.
async fn previous(
    session: &Session,
    before: Option<oneshot::Receiver<Handoff>>,
) -> Result<Tail, String> {
    match before {
        None => Err(format!(
            "{}: the upload was already finished",
            session.what()
        )),
        Some(rx) => match rx.await {
            Ok(handoff) => handoff,
            Err(_) => Err(format!(
                "{}: an earlier part was dropped before it was sent",
                session.what()
            )),
        },
    }
}

#[async_trait]
impl MultipartUpload for ResumableUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        let session = Arc::clone(&self.session);
        let before = self.last.take();
        let (tx, rx) = oneshot::channel();
        self.last = Some(rx);
        Box::pin(async move {
            let tail = match previous(&session, before).await {
                Ok(tail) => tail,
                Err(message) => {
                    let _ = tx.send(Err(message.clone()));
                    return Err(generic(GcsError::Protocol {
                        what: session.what(),
                        message,
                    }));
                }
            };
            match session.part(tail, data).await {
                Ok(tail) => {
                    let _ = tx.send(Ok(tail));
                    Ok(())
                }
                Err(err) => {
                    let _ = tx.send(Err(format!("an earlier part failed: {err}")));
                    Err(err)
                }
            }
        })
    }

    async fn complete(&mut self) -> object_store::Result<PutResult> {
        let session = Arc::clone(&self.session);
        let tail = previous(&session, self.last.take())
            .await
            .map_err(|message| {
                generic(GcsError::Protocol {
                    what: session.what(),
                    message,
                })
            })?;
        let total = tail.offset + tail.carry.len() as u64;
        match session
            .send_chunk(tail.offset, tail.carry, Some(total))
            .await?
        {
            (_, Some(result)) => Ok(result),
            (held, None) => Err(generic(GcsError::Protocol {
                what: session.what(),
                message: format!("the server holds {held} of {total} bytes after the last chunk"),
            })),
        }
    }

    async fn abort(&mut self) -> object_store::Result<()> {
        self.last = None;
        let session = &self.session;
        // GCS answers a cancelled session 499; anything but a transport failure is done.
        session
            .client
            .http
            .delete(&session.uri)
            .send()
            .await
            .map_err(|source| {
                generic(GcsError::Request {
                    what: format!("cancelling {}", session.what()),
                    source,
                })
            })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_names_are_encoded_whole_for_json_api_paths() {
        assert_eq!(encode("a/b c+d.tar~_-"), "a%2Fb%20c%2Bd.tar~_-");
        assert_eq!(encode("ü"), "%C3%BC");
    }

    #[test]
    fn error_bodies_give_googles_message_or_their_start() {
        let body =
            r#"{"error":{"code":403,"message":"x@y does not have storage.objects.create access"}}"#;
        assert_eq!(
            error_message(403, body),
            "status 403: x@y does not have storage.objects.create access"
        );
        assert_eq!(
            error_message(400, "invalid uploadType"),
            "status 400: invalid uploadType"
        );
        assert_eq!(error_message(500, ""), "status 500");
    }
}
