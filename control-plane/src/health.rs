//! `/metrics`, `/healthz` and `/readyz` over plain HTTP (a cluster-internal port).
//!
//! Both probes report this replica's health, never its role (ARCHITECTURE.md, HA): every
//! healthy replica is Ready, so `kubectl rollout status`, `helm --wait` and Argo CD see a
//! healthy Deployment; agents that reach a follower are refused and retry until they land on
//! the leader (PROTOCOL.md §2.3.10).
//! - `/readyz`: 200 when the agent service is serving and the Kubernetes API answered within
//!   [`READY_API_WINDOW`]; the body says `leading` or `following`, followed by why the replica
//!   does not reconcile when it stands by for KubeBlocks' own controller (coexist.rs).
//! - `/healthz`: 200 when the agent service is serving and the API answered within
//!   [`LIVE_API_WINDOW`] (longer, so a short API outage makes the replica unready without
//!   restarting it).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::leader::Leadership;
use crate::metrics::Metrics;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;

/// `/readyz` fails when the API has not answered for this long.
pub const READY_API_WINDOW: Duration = Duration::from_secs(15);
/// `/healthz` fails when the API has not answered for this long.
pub const LIVE_API_WINDOW: Duration = Duration::from_secs(60);
/// How often the API is probed.
pub const API_PROBE_INTERVAL: Duration = Duration::from_secs(5);

/// What the probes look at, updated by the parts they describe.
#[derive(Clone, Debug, Default)]
pub struct Vitals {
    inner: Arc<VitalsInner>,
}

#[derive(Debug, Default)]
struct VitalsInner {
    agent_service: AtomicBool,
    api_answered: Mutex<Option<Instant>>,
    standing: Mutex<Option<tokio::sync::watch::Receiver<crate::coexist::Standing>>>,
}

impl Vitals {
    /// Records whether the agent service is serving.
    pub fn set_agent_service(&self, serving: bool) {
        self.inner.agent_service.store(serving, Ordering::SeqCst);
    }

    /// Records that the Kubernetes API answered now.
    pub fn api_answered(&self) {
        *self
            .inner
            .api_answered
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
    }

    /// Follows the KubeBlocks coexistence guard, whose explanation `/readyz` appends to its
    /// body (the replica stays Ready: standing by is a decision, not a fault).
    pub fn follow_standing(
        &self,
        standing: tokio::sync::watch::Receiver<crate::coexist::Standing>,
    ) {
        *self
            .inner
            .standing
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(standing);
    }

    /// Why this replica does not reconcile although healthy, if it stands by for KubeBlocks.
    pub fn standing_note(&self) -> Option<String> {
        self.inner
            .standing
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .and_then(|standing| standing.borrow().explain())
    }

    /// Why the replica is not healthy, if the API has been silent longer than `window`.
    pub fn problem(&self, window: Duration) -> Option<String> {
        if !self.inner.agent_service.load(Ordering::SeqCst) {
            return Some("the agent service is not serving".to_owned());
        }
        let answered = *self
            .inner
            .api_answered
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match answered {
            None => Some("the Kubernetes API has not answered yet".to_owned()),
            Some(at) if at.elapsed() > window => Some(format!(
                "the Kubernetes API has not answered for {} s",
                at.elapsed().as_secs()
            )),
            Some(_) => None,
        }
    }
}

/// Probes the API every [`API_PROBE_INTERVAL`] until `shutdown`.
pub async fn probe_api(
    client: kube::Client,
    vitals: Vitals,
    shutdown: tokio_util::sync::CancellationToken,
) {
    loop {
        let probe = tokio::time::timeout(API_PROBE_INTERVAL, client.apiserver_version()).await;
        match probe {
            Ok(Ok(_)) => vitals.api_answered(),
            Ok(Err(err)) => tracing::debug!(error = %err, "the Kubernetes API probe failed"),
            Err(_) => tracing::debug!("the Kubernetes API probe timed out"),
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(API_PROBE_INTERVAL) => {}
        }
    }
}

#[derive(Clone)]
struct Health {
    metrics: Arc<Metrics>,
    vitals: Vitals,
    leadership: Leadership,
}

/// Serves the health endpoints on `addr` until `shutdown`.
/// Binds the health endpoints' listener; run binds it before anything is spawned, so a port
/// already in use stops start-up with its address instead of leaving a process without
/// `/healthz` and `/metrics`.
pub async fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await
}

pub async fn serve(
    listener: tokio::net::TcpListener,
    metrics: Arc<Metrics>,
    vitals: Vitals,
    leadership: Leadership,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/metrics", get(metrics_text))
        .route("/healthz", get(live))
        .route("/readyz", get(ready))
        .with_state(Health {
            metrics,
            vitals,
            leadership,
        });
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

async fn metrics_text(State(health): State<Health>) -> impl IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        health.metrics.render(),
    )
}

fn role(health: &Health) -> &'static str {
    if health.leadership.is_leading() {
        "leading"
    } else {
        "following"
    }
}

async fn ready(State(health): State<Health>) -> impl IntoResponse {
    match health.vitals.problem(READY_API_WINDOW) {
        None => match health.vitals.standing_note() {
            Some(note) => (StatusCode::OK, format!("{}; {note}", role(&health))),
            None => (StatusCode::OK, role(&health).to_owned()),
        },
        Some(problem) => (StatusCode::SERVICE_UNAVAILABLE, problem),
    }
}

async fn live(State(health): State<Health>) -> impl IntoResponse {
    match health.vitals.problem(LIVE_API_WINDOW) {
        None => (StatusCode::OK, format!("ok ({})", role(&health))),
        Some(problem) => (StatusCode::SERVICE_UNAVAILABLE, problem),
    }
}
