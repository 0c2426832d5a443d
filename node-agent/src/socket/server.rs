//! The storage socket server: the tonic `cairn.datasafed.v1.Storage` service on a unix socket
//! at `<dir>/storage.sock` (docs/PROTOCOL.md §3).
//!
//! # Expected flow
//! 1. [`SocketServer::bind`] creates the directory, replaces a stale socket left by a previous
//!    agent, binds, and opens the socket to every uid (mode 0666): action containers run as
//!    root or not, and the bearer token, not the uid, is the authentication.
//! 2. Every call resolves its `authorization: Bearer` token to a [`Grant`], checks the path
//!    against the grant ([`Access`](super::access::Access)), opens the grant's repository on
//!    first use and runs the operation inside a span naming the action (never the token).
//! 3. Transfers stream: `Put` feeds the request's chunks to the engine's streaming writer as an
//!    `AsyncRead` (gRPC flow control bounds what is in flight), `Get` sends the engine's output
//!    in chunks of at most [`CHUNK_SIZE`] (a plain repository's stored bytes still compressed
//!    when the client decompresses itself; it reports the bytes with `ReportPulled`), `List`
//!    streams entries.
//! 4. [`SocketServer::run`] ends when `shutdown` resolves, and removes the socket file.
//!
//! # Errors
//! Failures become `Status` in `status.rs` only: unknown token `UNAUTHENTICATED`, a path
//! outside the grant `PERMISSION_DENIED`, a missing file `NOT_FOUND`, and so on.

use std::future::Future;
use std::io;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use cairn_proto::datasafed::transport;
use cairn_proto::datasafed::v1::put_request::Msg;
use cairn_proto::datasafed::v1::storage_server::{Storage, StorageServer};
use cairn_proto::datasafed::v1::{
    DataChunk, Entry, GetRequest, ListRequest, MkdirRequest, MkdirResponse, PulledAck,
    PulledReport, PutRequest, PutResponse, RemoveRequest, RemoveResponse, StatRequest,
    StatResponse,
};
use cairn_repo::{Compression, RepoFiles};
use futures::StreamExt;
use tokio::net::UnixListener;
use tokio::sync::mpsc;
use tokio_stream::wrappers::{ReceiverStream, UnixListenerStream};
use tokio_util::io::{ReaderStream, StreamReader};
use tonic::{Request, Response, Status, Streaming};
use tracing::{Instrument, Span};

use super::access::Operation;
use super::endpoint::StorageIdentity;
use super::grants::{Grant, Grants};
use super::status::CallError;
use super::wire;
use crate::runtime::job::SOCKET_FILE;

/// The largest data chunk `Get` sends (and `datasafed push` sends).
pub const CHUNK_SIZE: usize = 1 << 20;

/// Why the socket could not be served.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The socket directory could not be created.
    #[error("creating the storage socket directory {}", .path.display())]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Something that is not a socket is in the way.
    #[error("{} exists and is not a socket; refusing to replace it", .path.display())]
    NotASocket {
        /// The socket path.
        path: PathBuf,
    },
    /// A stale socket could not be removed.
    #[error("removing the stale storage socket {}", .path.display())]
    RemoveStale {
        /// The socket path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Binding failed.
    #[error("binding the storage socket {}", .path.display())]
    Bind {
        /// The socket path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The socket could not be opened to every uid.
    #[error("setting mode 0666 on the storage socket {}", .path.display())]
    Permissions {
        /// The socket path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The TCP endpoint could not be bound.
    #[error("binding the storage endpoint on {addr}")]
    BindTcp {
        /// The listen address.
        addr: std::net::SocketAddr,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The endpoint's TLS settings were refused.
    #[error("configuring TLS on the storage endpoint")]
    Tls(#[source] tonic::transport::Error),
    /// The gRPC server of the TCP endpoint failed.
    #[error("serving the storage endpoint on {addr}")]
    ServeTcp {
        /// The listen address.
        addr: std::net::SocketAddr,
        /// The cause.
        #[source]
        source: tonic::transport::Error,
    },
    /// The gRPC server failed.
    #[error("serving the storage socket {}", .path.display())]
    Serve {
        /// The socket path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: tonic::transport::Error,
    },
}

/// Mode 0666 on the socket, without following a link: action pods can write the socket's
/// directory, and a link swapped in after `bind` must not make the agent (root) open its
/// target to every uid.
fn open_to_every_uid(path: &Path) -> io::Result<()> {
    cairn_repo::backend::local::set_mode_no_follow(path, 0o666)
}

/// A bound storage socket, ready to [`run`](SocketServer::run).
#[derive(Debug)]
pub struct SocketServer {
    listener: UnixListener,
    path: PathBuf,
}

impl SocketServer {
    /// Binds `<dir>/storage.sock` (must be called inside a tokio runtime).
    pub fn bind(dir: &Path) -> Result<SocketServer, ServeError> {
        std::fs::create_dir_all(dir).map_err(|source| ServeError::CreateDir {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = dir.join(SOCKET_FILE);
        match std::fs::symlink_metadata(&path) {
            Ok(meta) if meta.file_type().is_socket() => {
                std::fs::remove_file(&path).map_err(|source| ServeError::RemoveStale {
                    path: path.clone(),
                    source,
                })?;
            }
            Ok(_) => return Err(ServeError::NotASocket { path }),
            Err(_) => {}
        }
        let listener = UnixListener::bind(&path).map_err(|source| ServeError::Bind {
            path: path.clone(),
            source,
        })?;
        open_to_every_uid(&path).map_err(|source| ServeError::Permissions {
            path: path.clone(),
            source,
        })?;
        Ok(SocketServer { listener, path })
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Serves `grants` until `shutdown` resolves, then removes the socket file.
    pub async fn run(
        self,
        grants: Grants,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), ServeError> {
        let SocketServer { listener, path } = self;
        tracing::info!(socket = %path.display(), "serving the storage socket");
        let result = tonic::transport::Server::builder()
            .add_service(StorageServer::new(StorageService { grants }))
            .serve_with_incoming_shutdown(UnixListenerStream::new(listener), shutdown)
            .await;
        if let Err(err) = std::fs::remove_file(&path) {
            tracing::debug!(socket = %path.display(), error = %err, "storage socket already gone");
        }
        result.map_err(|source| ServeError::Serve { path, source })
    }
}

/// The storage service on a TCP port with TLS (docs/PROTOCOL.md §3.1), ready to
/// [`run`](EndpointServer::run).
#[derive(Debug)]
pub struct EndpointServer {
    listener: tokio::net::TcpListener,
    addr: std::net::SocketAddr,
    identity: StorageIdentity,
}

impl EndpointServer {
    /// Binds `listen` (port 0 picks a free port; [`local_addr`](Self::local_addr) says which).
    pub async fn bind(
        listen: std::net::SocketAddr,
        identity: StorageIdentity,
    ) -> Result<EndpointServer, ServeError> {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|source| ServeError::BindTcp {
                addr: listen,
                source,
            })?;
        let addr = listener
            .local_addr()
            .map_err(|source| ServeError::BindTcp {
                addr: listen,
                source,
            })?;
        Ok(EndpointServer {
            listener,
            addr,
            identity,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> std::net::SocketAddr {
        self.addr
    }

    /// Serves `grants` until `shutdown` resolves.
    pub async fn run(
        self,
        grants: Grants,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), ServeError> {
        let EndpointServer {
            listener,
            addr,
            identity,
        } = self;
        tracing::info!(%addr, "serving the storage endpoint (TLS)");
        tonic::transport::Server::builder()
            .tls_config(identity.server_tls())
            .map_err(ServeError::Tls)?
            .add_service(StorageServer::new(StorageService { grants }))
            .serve_with_incoming_shutdown(
                tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
                shutdown,
            )
            .await
            .map_err(|source| ServeError::ServeTcp { addr, source })
    }
}

/// Binds `<dir>/storage.sock` and serves `grants` on it until `shutdown` resolves.
pub async fn serve(
    dir: &Path,
    grants: Grants,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    SocketServer::bind(dir)?.run(grants, shutdown).await
}

/// The `Storage` service over a grants registry.
#[derive(Debug, Clone)]
struct StorageService {
    grants: Grants,
}

impl StorageService {
    /// The grant of the call's bearer token.
    fn authorize<T>(&self, request: &Request<T>, rpc: &'static str) -> Result<Arc<Grant>, Status> {
        let token = request
            .metadata()
            .get("authorization")
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.trim().split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim());
        let refused = match token {
            None => CallError::MissingToken,
            Some(token) => match self.grants.lookup(token) {
                Some(grant) => return Ok(grant),
                None => CallError::UnknownToken,
            },
        };
        tracing::warn!(rpc, reason = %refused, "storage call refused");
        crate::metrics::metrics().request(rpc, refused.code());
        Err(refused.into())
    }
}

/// The span of one call: the action and repository, never the token.
fn call_span(grant: &Grant, rpc: &'static str) -> Span {
    let span = tracing::info_span!("storage", action.id = %grant.action_id(), repo = %grant.repo_name(), rpc);
    crate::telemetry::join_action(&span, grant.action_id());
    span
}

/// Runs one call's work in its span and turns its failure into a logged `Status`.
async fn in_span<T>(
    grant: &Grant,
    rpc: &'static str,
    work: impl Future<Output = Result<T, CallError>>,
) -> Result<T, Status> {
    async {
        match work.await {
            Ok(value) => {
                tracing::debug!("storage call done");
                crate::metrics::metrics().request(rpc, tonic::Code::Ok);
                Ok(value)
            }
            Err(err) => Err(counted(rpc, err)),
        }
    }
    .instrument(call_span(grant, rpc))
    .await
}

/// Counts a failed call (and a storage error when the repository failed it), then logs it.
fn counted(rpc: &'static str, err: CallError) -> Status {
    let metrics = crate::metrics::metrics();
    metrics.request(rpc, err.code());
    if matches!(err, CallError::Repository(_) | CallError::Open(_)) {
        metrics.storage_error(rpc);
    }
    logged(err)
}

fn logged(err: CallError) -> Status {
    let status = Status::from(err);
    tracing::warn!(code = ?status.code(), message = status.message(), "storage call failed");
    status
}

/// A `Put` data message as bytes for the engine's reader; anything else breaks the upload
/// (the engine then stores nothing).
fn put_data(message: Result<PutRequest, Status>) -> io::Result<Bytes> {
    match message {
        Ok(PutRequest {
            msg: Some(Msg::Data(data)),
        }) => Ok(Bytes::from(data)),
        Ok(PutRequest {
            msg: Some(Msg::Header(_)),
        }) => Err(io::Error::other(Status::invalid_argument(
            "a Put sent a second PutHeader after its first",
        ))),
        Ok(PutRequest { msg: None }) => Err(io::Error::other(Status::invalid_argument(
            "a Put sent an empty message",
        ))),
        Err(status) => Err(io::Error::other(status)),
    }
}

async fn put(grant: &Grant, mut stream: Streaming<PutRequest>) -> Result<PutResponse, CallError> {
    let header = match stream.message().await.map_err(CallError::Receive)? {
        Some(PutRequest {
            msg: Some(Msg::Header(header)),
        }) => header,
        _ => {
            return Err(CallError::Protocol(
                "the first message of a Put must be its PutHeader",
            ));
        }
    };
    let key = grant.access().check(Operation::Write, &header.path)?;
    let compression = wire::compression(&header.compression)?;
    let repository = grant.repository().await?;
    let reader = StreamReader::new(stream.map(put_data));
    let summary = repository
        .put(&key, reader, compression, grant.inbound_progress())
        .await?;
    tracing::debug!(path = %key, bytes_in = summary.bytes_in, bytes_stored = summary.bytes_stored, "pushed");
    crate::metrics::metrics().moved("push", summary.bytes_in);
    Ok(PutResponse {
        bytes: summary.bytes_in,
    })
}

/// What a `Get` sends.
#[derive(Debug, Clone, Copy)]
enum Transfer {
    /// The engine's output, decompressed with the request's decompression (if any).
    Decoded(Option<Compression>),
    /// A plain repository's stored bytes (decrypted), still compressed with this: the client
    /// asked to decompress them itself, which moves that work out of the agent and sends a
    /// fraction of the bytes through TLS.
    StillCompressed(Compression),
}

impl Transfer {
    fn of(repository: &RepoFiles, request: &GetRequest) -> Result<Transfer, CallError> {
        let decompression = wire::compression(&request.decompression)?;
        Ok(match (decompression, repository) {
            (Some(compression), RepoFiles::Plain(_)) if request.client_decompresses => {
                Transfer::StillCompressed(compression)
            }
            // A deduplicating repository stores chunks compressed on their own, not the
            // pushed stream: its output is the raw stream either way.
            _ => Transfer::Decoded(decompression),
        })
    }
}

/// Streams the engine's output for `key` into `chunks`, then the failure if there was one.
async fn send_file(
    grant: Arc<Grant>,
    repository: RepoFiles,
    key: String,
    transfer: Transfer,
    chunks: mpsc::Sender<Result<DataChunk, Status>>,
) {
    let (writer, reader) = tokio::io::duplex(CHUNK_SIZE);
    let (decompression, progress) = match transfer {
        Transfer::Decoded(decompression) => (decompression, grant.outbound_progress()),
        // The client counts what it decompresses and reports it (`ReportPulled`).
        Transfer::StillCompressed(_) => (None, cairn_repo::progress::no_progress()),
    };
    let read = repository.get(&key, writer, decompression, progress);
    let forward = async {
        let mut data = ReaderStream::with_capacity(reader, CHUNK_SIZE);
        while let Some(Ok(bytes)) = data.next().await {
            let chunk = DataChunk { data: bytes.into() };
            if chunks.send(Ok(chunk)).await.is_err() {
                // The client went away; dropping the reader stops the engine.
                return;
            }
        }
    };
    let (result, ()) = tokio::join!(read, forward);
    match result {
        Ok(summary) => {
            tracing::debug!(path = %key, bytes_out = summary.bytes_out, "pulled");
            crate::metrics::metrics().moved("pull", summary.bytes_out);
        }
        Err(err) => {
            let _ = chunks.send(Err(counted("get-stream", err.into()))).await;
        }
    }
}

#[tonic::async_trait]
impl Storage for StorageService {
    async fn put(
        &self,
        request: Request<Streaming<PutRequest>>,
    ) -> Result<Response<PutResponse>, Status> {
        let grant = self.authorize(&request, "put")?;
        in_span(&grant, "put", put(&grant, request.into_inner()))
            .await
            .map(Response::new)
    }

    type GetStream = ReceiverStream<Result<DataChunk, Status>>;

    async fn get(&self, request: Request<GetRequest>) -> Result<Response<Self::GetStream>, Status> {
        let grant = self.authorize(&request, "get")?;
        let request = request.into_inner();
        let (key, transfer, repository) = in_span(&grant, "get", async {
            let key = grant.access().check(Operation::Read, &request.path)?;
            let repository = grant.repository().await?.clone();
            let transfer = Transfer::of(&repository, &request)?;
            Ok((key, transfer, repository))
        })
        .await?;
        let (tx, rx) = mpsc::channel(4);
        let span = call_span(&grant, "get");
        tokio::spawn(send_file(grant, repository, key, transfer, tx).instrument(span));
        let mut response = Response::new(ReceiverStream::new(rx));
        if let Transfer::StillCompressed(compression) = transfer
            && let Ok(name) = compression.name().parse()
        {
            response
                .metadata_mut()
                .insert(transport::CONTENT_COMPRESSION, name);
        }
        Ok(response)
    }

    async fn report_pulled(
        &self,
        request: Request<PulledReport>,
    ) -> Result<Response<PulledAck>, Status> {
        let grant = self.authorize(&request, "report-pulled")?;
        grant.outbound_progress().add(request.into_inner().bytes);
        Ok(Response::new(PulledAck {}))
    }

    type ListStream = tokio_stream::Iter<std::vec::IntoIter<Result<Entry, Status>>>;

    async fn list(
        &self,
        request: Request<ListRequest>,
    ) -> Result<Response<Self::ListStream>, Status> {
        let grant = self.authorize(&request, "list")?;
        let request = request.into_inner();
        let entries = in_span(&grant, "list", async {
            let key = grant.access().check(Operation::Read, &request.path)?;
            let options = wire::list_options(&request)?;
            let repository = grant.repository().await?;
            Ok(repository.list(&key, &options).await?)
        })
        .await?;
        let entries: Vec<Result<Entry, Status>> =
            entries.into_iter().map(|e| Ok(wire::entry(e))).collect();
        Ok(Response::new(tokio_stream::iter(entries)))
    }

    async fn stat(&self, request: Request<StatRequest>) -> Result<Response<StatResponse>, Status> {
        let grant = self.authorize(&request, "stat")?;
        let request = request.into_inner();
        in_span(&grant, "stat", async {
            let key = grant.access().check(Operation::Read, &request.path)?;
            let repository = grant.repository().await?;
            Ok(wire::stat(repository.stat(&key).await?))
        })
        .await
        .map(Response::new)
    }

    async fn remove(
        &self,
        request: Request<RemoveRequest>,
    ) -> Result<Response<RemoveResponse>, Status> {
        let grant = self.authorize(&request, "remove")?;
        let request = request.into_inner();
        in_span(&grant, "remove", async {
            let key = grant.access().check(Operation::Write, &request.path)?;
            let repository = grant.repository().await?;
            if request.dir_only {
                repository.rmdir(&key).await?;
            } else {
                let removed = repository.remove(&key, request.recursive).await?;
                tracing::debug!(path = %key, removed, "removed");
            }
            Ok(RemoveResponse {})
        })
        .await
        .map(Response::new)
    }

    async fn mkdir(
        &self,
        request: Request<MkdirRequest>,
    ) -> Result<Response<MkdirResponse>, Status> {
        let grant = self.authorize(&request, "mkdir")?;
        let request = request.into_inner();
        in_span(&grant, "mkdir", async {
            let key = grant.access().check(Operation::Write, &request.path)?;
            grant.repository().await?.mkdir(&key).await?;
            Ok(MkdirResponse {})
        })
        .await
        .map(Response::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn the_socket_mode_is_never_set_through_a_link() {
        let dir = tempfile::tempdir().expect("tempdir");
        let secret = dir.path().join("shadow");
        std::fs::write(&secret, b"x").expect("write");
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let link = dir.path().join(SOCKET_FILE);
        std::os::unix::fs::symlink(&secret, &link).expect("symlink");
        assert!(open_to_every_uid(&link).is_err(), "a link is refused");
        let mode = std::fs::metadata(&secret)
            .expect("stat")
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600, "the link's target kept its mode");

        let socket = dir.path().join("real.sock");
        let _listener = std::os::unix::net::UnixListener::bind(&socket).expect("bind");
        open_to_every_uid(&socket).expect("chmod the socket");
        let mode = std::fs::symlink_metadata(&socket)
            .expect("stat")
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o666);
    }
}
