//! `/metrics`, `/healthz` and `/readyz` of the agent over plain HTTP (`--health-listen`).
//!
//! - `/healthz` (liveness): 200 while the storage socket is serving and the session with the
//!   control plane runs, connected or reconnecting (a control plane that is down is not the
//!   agent's fault: restarting the agent would not help, so liveness does not depend on it).
//! - `/readyz` (readiness): 200 while the socket is serving and a session with the control
//!   plane is open; the body says why not otherwise.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;

/// What the probes look at, set by the parts they describe.
#[derive(Clone, Debug, Default)]
pub struct Vitals {
    inner: Arc<VitalsInner>,
}

#[derive(Debug, Default)]
struct VitalsInner {
    socket: AtomicBool,
    session: AtomicBool,
    connected: AtomicBool,
}

impl Vitals {
    /// Records whether the storage socket is serving.
    pub fn set_socket(&self, serving: bool) {
        self.inner.socket.store(serving, Ordering::SeqCst);
    }

    /// Records whether the session task runs (connected or reconnecting).
    pub fn set_session(&self, running: bool) {
        self.inner.session.store(running, Ordering::SeqCst);
    }

    /// Records whether a session with the control plane is open.
    pub fn set_connected(&self, connected: bool) {
        self.inner.connected.store(connected, Ordering::SeqCst);
        crate::metrics::metrics()
            .session_connected
            .set(i64::from(connected));
    }

    /// Why the agent is not alive, if it is not.
    pub fn liveness_problem(&self) -> Option<&'static str> {
        if !self.inner.socket.load(Ordering::SeqCst) {
            Some("the storage socket is not serving")
        } else if !self.inner.session.load(Ordering::SeqCst) {
            Some("the session with the control plane has stopped")
        } else {
            None
        }
    }

    /// Why the agent is not ready, if it is not.
    pub fn readiness_problem(&self) -> Option<&'static str> {
        self.liveness_problem().or_else(|| {
            (!self.inner.connected.load(Ordering::SeqCst))
                .then_some("not connected to the control plane (reconnecting)")
        })
    }
}

/// Serves the health endpoints on `listener` until `shutdown`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    vitals: Vitals,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/metrics", get(metrics_text))
        .route("/healthz", get(live))
        .route("/readyz", get(ready))
        .with_state(vitals);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

/// Binds `addr` for [`serve`].
pub async fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await
}

async fn metrics_text() -> impl IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        crate::metrics::metrics().render(),
    )
}

async fn live(State(vitals): State<Vitals>) -> impl IntoResponse {
    match vitals.liveness_problem() {
        None => (StatusCode::OK, "ok"),
        Some(problem) => (StatusCode::SERVICE_UNAVAILABLE, problem),
    }
}

async fn ready(State(vitals): State<Vitals>) -> impl IntoResponse {
    match vitals.readiness_problem() {
        None => (StatusCode::OK, "connected"),
        Some(problem) => (StatusCode::SERVICE_UNAVAILABLE, problem),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_agent_is_alive_while_reconnecting_but_ready_only_when_connected() {
        let vitals = Vitals::default();
        assert_eq!(
            vitals.liveness_problem(),
            Some("the storage socket is not serving")
        );
        vitals.set_socket(true);
        vitals.set_session(true);
        assert_eq!(vitals.liveness_problem(), None);
        assert_eq!(
            vitals.readiness_problem(),
            Some("not connected to the control plane (reconnecting)")
        );
        vitals.set_connected(true);
        assert_eq!(vitals.readiness_problem(), None);
        vitals.set_session(false);
        assert_eq!(
            vitals.liveness_problem(),
            Some("the session with the control plane has stopped")
        );
        assert!(vitals.readiness_problem().is_some());
    }
}
