//! The Backup reconciler: triggered by Backup changes, by agent reports on its actions and by
//! its planner's requeue hints; reads through `shell::observe::backup`, decides with
//! `plan::backup::plan` (ARCHITECTURE.md §K1.2, §K2), writes through `shell::execute`.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Instant;

use cairn_api::backup::{Backup, BackupPhase};
use cairn_api::well_known;
use futures::Stream;
use jiff::Timestamp;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use tracing::Instrument;

use super::common::{self, Error};
use crate::plan::backup;
use crate::shell::Context;
use crate::shell::observe::{self, Source};

/// Reconciles one Backup, in the Backup's trace (its uid is the trace id, README
/// "Observability"), so every reconcile, dispatch and agent action of it is one trace.
pub async fn reconcile(backup: Arc<Backup>, ctx: Arc<Context>) -> Result<Action, Error> {
    let uid = backup.uid().unwrap_or_default();
    let span = tracing::info_span!("reconcile Backup", backup.uid = %uid, backup = %format!("{}/{}", backup.namespace().unwrap_or_default(), backup.name_any()));
    cairn_telemetry::join_object(&span, &uid);
    reconcile_in_span(backup, ctx).instrument(span).await
}

async fn reconcile_in_span(backup: Arc<Backup>, ctx: Arc<Context>) -> Result<Action, Error> {
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
    match cairn_api::window::backup_type(&backup).as_str() {
        "Continuous" => recoverability(&ctx),
        "Full" | "Incremental" if ctx.windows_may_exist() => recoverability(&ctx),
        _ => {}
    }
    Ok(action)
}

/// Recomputes the recoverability gauges from the cached Backups and ActionSets (a Continuous,
/// Full or Incremental backup changed; ARCHITECTURE.md §K4.5).
///
/// A window needs a Continuous backup and takes its bases from that backup's namespace, so only
/// the Backups of namespaces holding a Continuous one are copied out of the cache: copying every
/// cached Backup at each reconcile of a Full one made a burst of 10,000 Backups copy them all
/// tens of thousands of times (bench/README.md, "scale"). For the same reason a Full or
/// Incremental backup recomputes them only while Continuous backups existed at the last
/// computation ([`Context::windows_may_exist`]): finding the Continuous ones scans every cached
/// Backup, at every reconcile of every Full backup.
fn recoverability(ctx: &Context) {
    let namespaces: BTreeSet<String> = ctx
        .caches
        .backups
        .labelled(well_known::label::BACKUP_TYPE, "Continuous")
        .iter()
        .filter_map(|b| b.namespace())
        .collect();
    ctx.holding_windows(!namespaces.is_empty());
    if namespaces.is_empty() {
        ctx.metrics.set_windows(&[]);
        return;
    }
    let no_base = ctx
        .caches
        .actionsets
        .all()
        .into_iter()
        .filter(|a| a.spec.restore.as_ref().and_then(|r| r.base_backup_required) == Some(false))
        .filter_map(|a| a.metadata.name.clone())
        .collect();
    let backups = ctx
        .caches
        .backups
        .filtered(|b| b.namespace().is_some_and(|ns| namespaces.contains(&ns)));
    let windows = cairn_api::window::windows(&backups, &no_base);
    ctx.metrics.set_windows(&windows);
}

/// Runs the Backup controller until `shutdown`.
pub async fn run(
    ctx: Arc<Context>,
    owners: impl Stream<Item = ObjectRef<Backup>> + Send + 'static,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let controller = ctx.caches.backups.controller();
    common::run(
        ctx,
        controller,
        owners,
        shutdown,
        reconcile,
        |_, err, ctx| common::retry("Backup", err, &ctx),
    )
    .await;
}

/// Whether an owner reference from an agent report names a Backup.
pub fn backup_ref(kind: &str, namespace: &str, name: &str) -> Option<ObjectRef<Backup>> {
    (kind == Backup::kind(&())).then(|| ObjectRef::new(name).within(namespace))
}
