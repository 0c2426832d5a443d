//! The BackupSchedule reconciler: creates each scheduled Backup itself at its cron time, with no
//! CronJobs (ARCHITECTURE.md §K1.4, §K6; `plan::schedule`). Backups it created re-trigger it.

use std::sync::Arc;
use std::time::Instant;

use cairn_api::backup::Backup;
use cairn_api::backup_schedule::BackupSchedule;
use cairn_api::well_known;
use jiff::Timestamp;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;

use super::common::{self, Error};
use crate::plan::schedule;
use crate::shell::Context;
use crate::shell::observe;

/// Reconciles one BackupSchedule.
#[tracing::instrument(skip_all, fields(schedule = %format!("{}/{}", obj.namespace().unwrap_or_default(), obj.name_any())))]
pub async fn reconcile(obj: Arc<BackupSchedule>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let observed = observe::schedule(&ctx, &obj).await?;
    let plan = schedule::plan(&observed, Timestamp::now());
    let api: Api<BackupSchedule> =
        Api::namespaced(ctx.client.clone(), &obj.namespace().unwrap_or_default());
    common::apply(
        &ctx,
        "BackupSchedule",
        started,
        &api,
        &obj,
        obj.status.as_ref(),
        plan,
    )
    .await
}

/// Runs the BackupSchedule controller until `shutdown`.
pub async fn run(
    ctx: Arc<Context>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let backups: Api<Backup> = Api::all(ctx.client.clone());
    let controller = ctx.caches.schedules.controller().watches(
        backups,
        watcher::Config::default().labels(well_known::label::BACKUP_SCHEDULE),
        |backup: Backup| {
            let namespace = backup.namespace()?;
            let schedule = backup
                .labels()
                .get(well_known::label::BACKUP_SCHEDULE)?
                .clone();
            Some(ObjectRef::new(&schedule).within(&namespace))
        },
    );
    common::run(
        ctx,
        controller,
        futures::stream::pending(),
        shutdown,
        reconcile,
        |_, err, ctx| common::retry("BackupSchedule", err, &ctx),
    )
    .await;
}
