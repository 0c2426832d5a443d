//! What every reconciler shares: its error type, carrying out a plan with metrics, the retry
//! policy, and running a controller with extra triggers.

use std::fmt::Debug;
use std::hash::Hash;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{Stream, StreamExt};
use kube::Resource;
use kube::api::Api;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::plan::{Intent, Plan};
use crate::shell::Context;
use crate::shell::execute::{ExecuteError, execute};
use crate::shell::observe::ObserveError;

/// Why a reconcile failed (it is retried).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("observing the object")]
    Observe(#[from] ObserveError),
    #[error("carrying out the object's plan")]
    Execute(#[from] ExecuteError),
}

impl Error {
    /// Label for the failure metric.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Observe(_) => "observe",
            Error::Execute(err) => err.metric_label(),
        }
    }
}

/// Carries out `plan` for `obj`, counts it, and turns its requeue hint into an `Action`.
pub async fn apply<K, S>(
    ctx: &Context,
    kind: &'static str,
    started: Instant,
    api: &Api<K>,
    obj: &K,
    current_status: Option<&S>,
    plan: Plan<S>,
) -> Result<Action, Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Serialize + Debug,
    S: Serialize,
{
    let requeue = plan.requeue;
    tracing::debug!(
        kind,
        writes_status = plan.status.is_some(),
        intents = plan.intents.len(),
        requeue_ms = requeue.map(|r| r.as_millis() as u64),
        "planned"
    );
    let dispatched = plan
        .intents
        .iter()
        .filter(|i| matches!(i, Intent::Dispatch { .. }))
        .count();
    execute(ctx, api, obj, current_status, plan).await?;
    if dispatched > 0 {
        ctx.metrics
            .actions_dispatched
            .get_or_create(&crate::metrics::KindLabel { kind: kind.into() })
            .inc_by(dispatched as u64);
    }
    ctx.metrics
        .reconciled(kind, started.elapsed().as_secs_f64());
    Ok(match requeue {
        Some(after) => Action::requeue(after),
        None => Action::await_change(),
    })
}

/// Counts the failure and retries after a short backoff.
pub fn retry(kind: &str, error: &Error, ctx: &Context) -> Action {
    ctx.metrics.failed(kind, error.metric_label());
    tracing::warn!(kind, error = %crate::shell::chain(error), "reconcile failed");
    Action::requeue(Duration::from_secs(2))
}

/// Runs a controller for `K` with extra reconcile `triggers` until `shutdown`.
pub async fn run<K, R, RFut, E>(
    ctx: Arc<Context>,
    api: Api<K>,
    triggers: impl Stream<Item = ObjectRef<K>> + Send + 'static,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
    reconcile: R,
    error_policy: E,
) where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Hash + Eq + Clone + Debug + Unpin,
    R: FnMut(Arc<K>, Arc<Context>) -> RFut,
    RFut: std::future::Future<Output = Result<Action, Error>> + Send + 'static,
    E: Fn(Arc<K>, &Error, Arc<Context>) -> Action,
{
    Controller::new(api, watcher::Config::default().any_semantic())
        .reconcile_on(triggers)
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .for_each(|_| async {})
        .await;
}
