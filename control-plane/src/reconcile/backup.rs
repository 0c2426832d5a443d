//! The Backup reconciler: triggered by Backup changes, by agent reports on its actions and by
//! its planner's requeue hints; reads through `shell::observe::backup`, decides with
//! `plan::backup::plan` (ARCHITECTURE.md §K1.2, §K2), writes through `shell::execute`.

use std::sync::Arc;
use std::time::Instant;

use cairn_api::backup::{Backup, BackupPhase};
use futures::Stream;
use jiff::Timestamp;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};

use super::common::{self, Error};
use crate::plan::backup;
use crate::shell::Context;
use crate::shell::observe::{self, Source};

/// Reconciles one Backup.
#[tracing::instrument(skip_all, fields(backup.uid = %backup.uid().unwrap_or_default(), backup = %format!("{}/{}", backup.namespace().unwrap_or_default(), backup.name_any())))]
pub async fn reconcile(backup: Arc<Backup>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let observed = observe::backup(&ctx, &backup, Source::Cache).await?;
    let mut plan = backup::plan(&observed, Timestamp::now());
    let fails = |plan: &crate::plan::Plan<cairn_api::backup::BackupStatus>| {
        plan.status.as_ref().and_then(|s| s.phase) == Some(BackupPhase::Failed)
            && backup.status.as_ref().and_then(|s| s.phase) != Some(BackupPhase::Failed)
    };
    if fails(&plan) {
        // A cache may lag the API (a policy applied a moment before its Backup): confirm a
        // failure with a fresh read before writing it.
        let fresh = observe::backup(&ctx, &backup, Source::Api).await?;
        plan = backup::plan(&fresh, Timestamp::now());
    }
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
    if observed_continuous(&backup) {
        let status = plan.status.as_ref().or(backup.status.as_ref());
        let running = backup.metadata.deletion_timestamp.is_none()
            && status.and_then(|s| s.phase) == Some(BackupPhase::Running);
        let stalled = status
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| {
                c.iter().find(|c| {
                    c.type_ == cairn_api::well_known::conditions::backup::CONDITION_ARCHIVE_STALLED
                })
            })
            .is_some_and(|c| c.status == "True");
        let end = status
            .and_then(|s| s.time_range.as_ref())
            .and_then(|r| r.end.as_ref())
            .map(|t| t.0.as_second());
        ctx.metrics.continuous(
            &backup.namespace().unwrap_or_default(),
            &backup.name_any(),
            running,
            stalled,
            end,
        );
    }
    let api: Api<Backup> =
        Api::namespaced(ctx.client.clone(), &backup.namespace().unwrap_or_default());
    let action = common::apply(
        &ctx,
        "Backup",
        started,
        &api,
        &backup,
        backup.status.as_ref(),
        plan,
    )
    .await?;
    if let Some((bytes, seconds)) = completed {
        ctx.metrics
            .backup_bytes
            .inc_by(u64::try_from(bytes).unwrap_or(0));
        ctx.metrics.backup_seconds.observe(seconds);
    }
    Ok(action)
}

/// Whether the Backup is continuous (its `backup-type` label).
fn observed_continuous(backup: &Backup) -> bool {
    backup
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(cairn_api::well_known::label::BACKUP_TYPE))
        .is_some_and(|t| t == "Continuous")
}

/// Runs the Backup controller until `shutdown`.
pub async fn run(
    ctx: Arc<Context>,
    owners: impl Stream<Item = ObjectRef<Backup>> + Send + 'static,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let api: Api<Backup> = Api::all(ctx.client.clone());
    common::run(ctx, api, owners, shutdown, reconcile, |_, err, ctx| {
        common::retry("Backup", err, &ctx)
    })
    .await;
}

/// Whether an owner reference from an agent report names a Backup.
pub fn backup_ref(kind: &str, namespace: &str, name: &str) -> Option<ObjectRef<Backup>> {
    (kind == Backup::kind(&())).then(|| ObjectRef::new(name).within(namespace))
}
