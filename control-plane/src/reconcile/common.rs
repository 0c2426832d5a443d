//! What every reconciler shares: its error type, carrying out a plan with metrics, the retry
//! policy, and running a controller with extra triggers.

use std::fmt::Debug;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{Stream, StreamExt};
use kube::Resource;
use kube::api::{Api, ApiResource, DynamicObject};
use kube::runtime::controller::{self, Action, Controller};
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
    /// Whether a write was refused with 409 Conflict (it was planned from an older copy of its
    /// object than the server's).
    pub fn is_conflict(&self) -> bool {
        matches!(self, Error::Execute(err) if err.is_conflict())
    }

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

/// Runs `controller` with extra reconcile `triggers` until `shutdown`. A reconcile whose write
/// failed with a 409 Conflict (its object changed since the controller's copy was read) reads
/// the object from the API server and runs once more on that ([`on_conflict_reread`]).
pub async fn run<K, R, RFut, E>(
    ctx: Arc<Context>,
    controller: Controller<K>,
    triggers: impl Stream<Item = ObjectRef<K>> + Send + 'static,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
    reconcile: R,
    error_policy: E,
) where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    R: Fn(Arc<K>, Arc<Context>) -> RFut + Clone + Send + Sync + 'static,
    RFut: std::future::Future<Output = Result<Action, Error>> + Send + 'static,
    E: Fn(Arc<K>, &Error, Arc<Context>) -> Action,
{
    // A controller on a cache waits (`Store::wait_until_ready`) on the store the cache's own
    // readiness task waits on, and that wakes only one of several waiters: start it once the
    // caches are ready, when its wait returns at once.
    if ctx.caches.ready().await.is_err() {
        return;
    }
    controller
        .with_config(controller::Config::default().concurrency(CONCURRENCY))
        .reconcile_on(triggers)
        .graceful_shutdown_on(shutdown)
        .run(
            move |obj, ctx: Arc<Context>| {
                let reconcile = reconcile.clone();
                on_a_worker(async move {
                    let client = ctx.client.clone();
                    on_conflict_reread(&client, obj, |obj| reconcile(obj, ctx.clone())).await
                })
            },
            error_policy,
            ctx,
        )
        .for_each(|_| async {})
        .await;
}

/// How many reconciles of one kind run at once. Each holds at most one API request at a time,
/// so this also bounds the client's connections (HTTP/1: one per request in flight) and their
/// buffers, which a burst otherwise leaves behind (bench/README.md, "scale").
pub const CONCURRENCY: u16 = 32;

/// Runs `reconcile` as a task of its own and waits for it. A controller polls its reconciles
/// on its own task, so without this every reconcile of a kind (observing, planning, encoding
/// and decoding its API requests) ran on one thread at a time, however many cores: at 10,000
/// Backups the Backup controller's task was the bottleneck and dispatches waited seconds. A
/// panic in the reconcile is raised again here, as if it had run in place.
async fn on_a_worker<F>(reconcile: F) -> Result<Action, Error>
where
    F: std::future::Future<Output = Result<Action, Error>> + Send + 'static,
{
    match tokio::spawn(reconcile).await {
        Ok(outcome) => outcome,
        Err(err) if err.is_panic() => std::panic::resume_unwind(err.into_panic()),
        // Cancelled: the runtime is shutting down.
        Err(_) => Ok(Action::await_change()),
    }
}

/// A controller with its own watch and store, for the kinds no planner reads (so not in
/// `shell::cache`); a cached kind uses `Cache::controller`, which shares the cache's store.
pub fn uncached<K>(ctx: &Context) -> Controller<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    Controller::new(
        Api::all(ctx.client.clone()),
        watcher::Config::default().any_semantic(),
    )
}

/// Runs `reconcile` on `obj`; if a write failed with a 409 Conflict, reads the object from the
/// API server and, if it still exists, runs `reconcile` once more on what it read.
///
/// A 409 means the plan was made from an older copy than the server's. Retrying on the same
/// copy can only fail again until the cache catches up, so a cache that lags (a watch behind
/// under load) would turn every reconcile of the object into a failed write; the fresh read
/// makes progress whatever the cache's state, at the cost of one GET per conflict.
pub async fn on_conflict_reread<K, R, RFut>(
    client: &kube::Client,
    obj: Arc<K>,
    reconcile: R,
) -> Result<Action, Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
    R: Fn(Arc<K>) -> RFut,
    RFut: std::future::Future<Output = Result<Action, Error>>,
{
    let conflict = match reconcile(obj.clone()).await {
        Err(err) if err.is_conflict() => err,
        other => return other,
    };
    let api = api_of(client, obj.as_ref());
    let name = obj.meta().name.clone().unwrap_or_default();
    let fresh = match api.get_opt(&name).await {
        Ok(Some(fresh)) => fresh,
        // Gone: nothing is left to reconcile.
        Ok(None) => return Ok(Action::await_change()),
        // The conflict is the error worth reporting; the retry policy runs again.
        Err(_) => return Err(conflict),
    };
    let fresh: K = match fresh.try_parse() {
        Ok(fresh) => fresh,
        Err(_) => return Err(conflict),
    };
    if fresh.meta().resource_version == obj.meta().resource_version {
        return Err(conflict);
    }
    tracing::debug!(
        cached = obj.meta().resource_version.as_deref().unwrap_or_default(),
        current = fresh.meta().resource_version.as_deref().unwrap_or_default(),
        "the object changed since the cached copy was read: reconciling the current one"
    );
    reconcile(Arc::new(fresh)).await
}

/// An API for `obj`'s kind, in its namespace when it has one.
fn api_of<K: Resource<DynamicType = ()>>(client: &kube::Client, obj: &K) -> Api<DynamicObject> {
    let resource = ApiResource::erase::<K>(&());
    match obj.meta().namespace.as_deref() {
        Some(namespace) => Api::namespaced_with(client.clone(), namespace, &resource),
        None => Api::all_with(client.clone(), &resource),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::api::{Patch, PatchParams, PostParams};
    use serde_json::json;

    use super::*;
    use crate::shell::test_kube::TestKube;

    /// What a reconciler does with its copy: a write guarded by the copy's resourceVersion,
    /// failing as `execute` does when it is refused.
    async fn write_guarded(api: &Api<ConfigMap>, copy: &ConfigMap) -> Result<Action, Error> {
        let patch = json!({
            "metadata": {"resourceVersion": copy.metadata.resource_version},
            "data": {"written": "yes"},
        });
        api.patch("cm", &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(|source| {
                Error::Execute(ExecuteError::PatchStatus {
                    object: "ConfigMap default/cm".into(),
                    source: Box::new(source),
                })
            })?;
        Ok(Action::await_change())
    }

    /// ConfigMap `cm` created with `data`, then changed by someone else: the copy returned is
    /// the one the reconciler still holds (a cache that lags).
    async fn stale_copy(api: &Api<ConfigMap>, data: serde_json::Value) -> Arc<ConfigMap> {
        let created = api
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({"metadata": {"name": "cm"}, "data": data}))
                    .expect("a ConfigMap"),
            )
            .await
            .expect("create");
        api.patch(
            "cm",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"v": "2"}})),
        )
        .await
        .expect("patch");
        Arc::new(created)
    }

    #[tokio::test]
    async fn a_write_refused_for_a_stale_copy_is_planned_again_from_the_current_object() {
        let kube = TestKube::start().await;
        let api: Api<ConfigMap> = Api::namespaced(kube.client.clone(), "default");
        let stale = stale_copy(&api, json!({"v": "1"})).await;
        let direct = write_guarded(&api, &stale).await;
        assert!(
            direct.as_ref().is_err_and(Error::is_conflict),
            "the stale copy's write is refused: {direct:?}"
        );

        let runs = AtomicUsize::new(0);
        let outcome = on_conflict_reread(&kube.client, stale, |copy| {
            runs.fetch_add(1, Ordering::SeqCst);
            let api = api.clone();
            async move { write_guarded(&api, &copy).await }
        })
        .await;
        assert!(outcome.is_ok(), "{outcome:?}");
        assert_eq!(
            runs.load(Ordering::SeqCst),
            2,
            "once on the stale copy, once on the current"
        );
        let data = api.get("cm").await.expect("get").data.unwrap_or_default();
        assert_eq!(data.get("written").map(String::as_str), Some("yes"));
        assert_eq!(
            data.get("v").map(String::as_str),
            Some("2"),
            "the other write is kept"
        );
    }

    /// A reconcile busy on the CPU (planning a big object, encoding its patch) must not hold
    /// up the reconciles of other objects of its kind: at 10,000 Backups the controller's own
    /// task ran every reconcile, one at a time, and dispatches waited seconds.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn reconciles_of_different_objects_run_on_several_cores_at_once() {
        let kube = TestKube::start().await;
        let api: Api<ConfigMap> = Api::namespaced(kube.client.clone(), "default");
        for i in 0..4 {
            api.create(
                &PostParams::default(),
                &serde_json::from_value(json!({"metadata": {"name": format!("cm-{i}")}}))
                    .expect("a ConfigMap"),
            )
            .await
            .expect("create");
        }
        // (running now, most ever running at once, reconciles done)
        let seen = Arc::new(std::sync::Mutex::new((0usize, 0usize, 0usize)));
        let stop = tokio_util::sync::CancellationToken::new();
        let controller = {
            let (seen, stop) = (seen.clone(), stop.clone());
            Controller::new(api.clone(), watcher::Config::default())
                .with_config(controller::Config::default().concurrency(CONCURRENCY))
                .graceful_shutdown_on(async move { stop.cancelled().await })
                .run(
                    move |_: Arc<ConfigMap>, seen: Arc<std::sync::Mutex<(usize, usize, usize)>>| {
                        on_a_worker(async move {
                            {
                                let mut s = seen.lock().expect("lock");
                                s.0 += 1;
                                s.1 = s.1.max(s.0);
                            }
                            // Planning: CPU-bound, no await.
                            std::thread::sleep(Duration::from_millis(300));
                            let mut s = seen.lock().expect("lock");
                            s.0 -= 1;
                            s.2 += 1;
                            Ok(Action::await_change())
                        })
                    },
                    |_, _, _| Action::await_change(),
                    seen,
                )
                .for_each(|_| async {})
        };
        let controller = tokio::spawn(controller);
        let deadline = Instant::now() + Duration::from_secs(30);
        while seen.lock().expect("lock").2 < 4 {
            assert!(Instant::now() < deadline, "the 4 reconciles did not run");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        stop.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(30), controller).await;
        let most = seen.lock().expect("lock").1;
        assert!(
            most >= 2,
            "the reconciles ran one at a time ({most} at most at once)"
        );
    }

    #[tokio::test]
    async fn a_conflict_on_an_object_deleted_meanwhile_ends_the_reconcile() {
        let kube = TestKube::start().await;
        let api: Api<ConfigMap> = Api::namespaced(kube.client.clone(), "default");
        let stale = stale_copy(&api, json!({})).await;
        let outcome = on_conflict_reread(&kube.client, stale, |copy| {
            let api = api.clone();
            async move {
                let result = write_guarded(&api, &copy).await;
                api.delete("cm", &Default::default()).await.expect("delete");
                result
            }
        })
        .await;
        assert!(outcome.is_ok(), "nothing is left to reconcile: {outcome:?}");
    }
}
