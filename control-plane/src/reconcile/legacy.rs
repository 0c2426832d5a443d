//! The BackupTool and RestoreJob reconcilers: KubeBlocks' old API converted on the fly
//! (ARCHITECTURE.md §K1.8; `plan::legacy`).

use std::sync::Arc;
use std::time::Instant;

use cairn_api::actionset::ActionSet;
use cairn_api::legacy::backup_tool::BackupTool;
use cairn_api::legacy::restore_job::RestoreJob;
use cairn_api::restore::Restore;
use futures::stream;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::Action;

use super::common::{self, Error};
use crate::plan::legacy;
use crate::shell::Context;
use crate::shell::observe::ObserveError;

fn read(what: String) -> impl FnOnce(kube::Error) -> Error {
    move |source| {
        Error::Observe(ObserveError::Read {
            what,
            source: Box::new(source),
        })
    }
}

/// Reconciles one BackupTool.
#[tracing::instrument(skip_all, fields(backuptool = %obj.name_any()))]
pub async fn reconcile_backup_tool(
    obj: Arc<BackupTool>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    let started = Instant::now();
    let name = obj.name_any();
    let existing = Api::<ActionSet>::all(ctx.client.clone())
        .get_opt(&name)
        .await
        .map_err(read(format!("ActionSet {name}")))?;
    let plan = legacy::backup_tool(&obj, existing.as_ref());
    let api: Api<BackupTool> = Api::all(ctx.client.clone());
    common::apply(&ctx, "BackupTool", started, &api, &obj, None::<&()>, plan).await
}

/// Reconciles one RestoreJob.
#[tracing::instrument(skip_all, fields(restorejob = %format!("{}/{}", obj.namespace().unwrap_or_default(), obj.name_any())))]
pub async fn reconcile_restore_job(
    obj: Arc<RestoreJob>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    let started = Instant::now();
    let name = obj.name_any();
    let namespace = obj.namespace().unwrap_or_default();
    let existing = Api::<Restore>::namespaced(ctx.client.clone(), &namespace)
        .get_opt(&name)
        .await
        .map_err(read(format!("Restore {namespace}/{name}")))?;
    let plan = legacy::restore_job(&obj, existing.as_ref());
    let api: Api<RestoreJob> = Api::namespaced(ctx.client.clone(), &namespace);
    common::apply(&ctx, "RestoreJob", started, &api, &obj, None::<&()>, plan).await
}

/// Runs both controllers until `shutdown`.
pub async fn run(ctx: Arc<Context>, shutdown: tokio_util::sync::CancellationToken) {
    let tools = common::run(
        ctx.clone(),
        common::uncached::<BackupTool>(&ctx),
        stream::pending(),
        {
            let token = shutdown.clone();
            async move { token.cancelled().await }
        },
        reconcile_backup_tool,
        |_, err, ctx| common::retry("BackupTool", err, &ctx),
    );
    let jobs = common::run(
        ctx.clone(),
        common::uncached::<RestoreJob>(&ctx),
        stream::pending(),
        async move { shutdown.cancelled().await },
        reconcile_restore_job,
        |_, err, ctx| common::retry("RestoreJob", err, &ctx),
    );
    tokio::join!(tools, jobs);
}
