//! The Backup reconciler: triggered by Backup changes, by agent reports on its actions and by
//! its planner's requeue hints; reads through `shell::observe::backup`, decides with
//! `plan::backup::plan` (kubeblocks-semantics §1.2, §2), writes through `shell::execute`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_api::backup::{Backup, BackupPhase};
use futures::{Stream, StreamExt};
use jiff::Timestamp;
use kube::api::Api;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};

use crate::plan::backup;
use crate::shell::Context;
use crate::shell::execute::{ExecuteError, execute};
use crate::shell::observe::{self, ObserveError};

/// Why a Backup reconcile failed (it is retried).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("observing the backup")]
    Observe(#[from] ObserveError),
    #[error("carrying out the backup's plan")]
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

/// Reconciles one Backup.
#[tracing::instrument(skip_all, fields(backup.uid = %backup.uid().unwrap_or_default(), backup = %format!("{}/{}", backup.namespace().unwrap_or_default(), backup.name_any())))]
pub async fn reconcile(backup: Arc<Backup>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let observed = observe::backup(&ctx, &backup).await?;
    let plan = backup::plan(&observed, Timestamp::now());
    let requeue = plan.requeue;
    let completed = plan
        .status
        .as_ref()
        .filter(|s| s.phase == Some(BackupPhase::Completed))
        .filter(|_| backup.status.as_ref().and_then(|s| s.phase) != Some(BackupPhase::Completed))
        .map(|s| {
            (
                s.progress.as_ref().map(|p| p.bytes_done).unwrap_or(0),
                s.start_timestamp
                    .as_ref()
                    .zip(s.completion_timestamp.as_ref())
                    .map(|(a, b)| b.0.duration_since(a.0).as_secs_f64())
                    .unwrap_or(0.0),
            )
        });
    let dispatched = plan
        .intents
        .iter()
        .filter(|i| matches!(i, crate::plan::Intent::Dispatch { .. }))
        .count();
    let api: Api<Backup> =
        Api::namespaced(ctx.client.clone(), &backup.namespace().unwrap_or_default());
    execute(&ctx, &api, &backup, backup.status.as_ref(), plan).await?;
    if let Some((bytes, seconds)) = completed {
        ctx.metrics
            .backup_bytes
            .inc_by(u64::try_from(bytes).unwrap_or(0));
        ctx.metrics.backup_seconds.observe(seconds);
    }
    if dispatched > 0 {
        ctx.metrics
            .actions_dispatched
            .get_or_create(&crate::metrics::KindLabel {
                kind: "Backup".into(),
            })
            .inc_by(dispatched as u64);
    }
    ctx.metrics
        .reconciled("Backup", started.elapsed().as_secs_f64());
    Ok(match requeue {
        Some(after) => Action::requeue(after),
        None => Action::await_change(),
    })
}

/// Retries a failed reconcile after a short backoff.
pub fn error_policy(_backup: Arc<Backup>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics.failed("Backup", error.metric_label());
    tracing::warn!(error = %crate::shell::chain(error), "backup reconcile failed");
    Action::requeue(Duration::from_secs(2))
}

/// Runs the Backup controller until `shutdown`.
pub async fn run(
    ctx: Arc<Context>,
    owners: impl Stream<Item = ObjectRef<Backup>> + Send + 'static,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let api: Api<Backup> = Api::all(ctx.client.clone());
    Controller::new(api, watcher::Config::default().any_semantic())
        .reconcile_on(owners)
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .for_each(|_| async {})
        .await;
}

/// Whether an owner reference from an agent report names a Backup.
pub fn backup_ref(kind: &str, namespace: &str, name: &str) -> Option<ObjectRef<Backup>> {
    (kind == Backup::kind(&())).then(|| ObjectRef::new(name).within(namespace))
}
