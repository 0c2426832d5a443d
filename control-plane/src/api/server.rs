//! Serving the API on a TCP listener: TLS, the four services, health and reflection.

use std::future::Future;
use std::time::Duration;

use cairn_proto::api::v1::backup_service_server::BackupServiceServer;
use cairn_proto::api::v1::repository_service_server::RepositoryServiceServer;
use cairn_proto::api::v1::restore_service_server::RestoreServiceServer;
use cairn_proto::api::v1::schedule_service_server::ScheduleServiceServer;
use tokio::net::TcpListener;

use super::backups::Backups;
use super::repositories::Repositories;
use super::restores::Restores;
use super::schedules::Schedules;
use super::state::ApiState;
use crate::tls::acceptor::tls_incoming_for;

/// How long a client may take to complete the TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The API server failed.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The reflection service could not read the descriptors.
    #[error("building the reflection service")]
    Reflection(#[source] tonic_reflection::server::Error),
    /// tonic's server stopped with an error.
    #[error("serving the API")]
    Transport(#[source] tonic::transport::Error),
}

/// Serves the API on `listener` with `tls` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    tls: impl Into<cairn_certs::ServerTls>,
    state: ApiState,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<BackupServiceServer<Backups>>().await;
    health.set_serving::<RestoreServiceServer<Restores>>().await;
    health
        .set_serving::<ScheduleServiceServer<Schedules>>()
        .await;
    health
        .set_serving::<RepositoryServiceServer<Repositories>>()
        .await;
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(cairn_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(ServeError::Reflection)?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(cairn_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()
        .map_err(ServeError::Reflection)?;
    let incoming = tls_incoming_for("API client", listener, tls, HANDSHAKE_TIMEOUT);
    tonic::transport::Server::builder()
        // A call starts a trace, or continues the caller's (`traceparent` metadata).
        .trace_fn(|request| {
            let span = tracing::info_span!("api", rpc = %request.uri().path());
            if let Some(parent) = request
                .headers()
                .get("traceparent")
                .and_then(|v| v.to_str().ok())
            {
                cairn_telemetry::join(&span, parent);
            }
            span
        })
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(BackupServiceServer::new(Backups::new(state.clone())))
        .add_service(RestoreServiceServer::new(Restores::new(state.clone())))
        .add_service(ScheduleServiceServer::new(Schedules::new(state.clone())))
        .add_service(RepositoryServiceServer::new(Repositories::new(state)))
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
        .map_err(ServeError::Transport)
}
