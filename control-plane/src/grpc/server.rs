//! Serving the agent service on a TCP listener through the mTLS accept loop.

use std::future::Future;
use std::time::Duration;

use tokio::net::TcpListener;

use super::hub::AgentHub;
use super::service::AgentGrpc;
use crate::tls::acceptor::tls_incoming;

/// Default agent port (PROTOCOL.md §2.1).
pub const DEFAULT_AGENT_PORT: u16 = 9443;
/// How long a client may take to complete the TLS handshake.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The agent server failed.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// tonic's server stopped with an error.
    #[error("serving the agent service")]
    Transport(#[source] tonic::transport::Error),
}

/// Serves the agent service on `listener` with `tls` (from [`cairn_certs::server_config`], or
/// [`cairn_certs::reloading_server_config`] to follow rotated files) until `shutdown`
/// completes.
///
/// Every refused connection (plaintext, no certificate, other CA, expired certificate) is
/// logged once with the peer address by the accept loop; identity and version refusals are
/// logged by the service.
pub async fn serve(
    listener: TcpListener,
    tls: impl Into<cairn_certs::ServerTls>,
    hub: AgentHub,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    let heartbeat = hub.config().heartbeat_interval;
    let incoming = tls_incoming(listener, tls, DEFAULT_HANDSHAKE_TIMEOUT);
    let sessions = hub.clone();
    // Agent streams never end by themselves, so graceful shutdown has to end them.
    let shutdown = async move {
        shutdown.await;
        sessions.close_all("the control plane is shutting down");
    };
    tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(heartbeat.max(Duration::from_secs(1))))
        .http2_keepalive_timeout(Some(
            hub.config().liveness_timeout().max(Duration::from_secs(1)),
        ))
        .add_service(AgentGrpc::new(hub).into_service())
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
        .map_err(ServeError::Transport)
}
