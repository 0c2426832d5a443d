//! The ActionSet and BackupPolicy reconcilers: validation, phase and message
//! (ARCHITECTURE.md §K1.1, §K1.3; `plan::actionset`, `plan::backup_policy`).

use std::sync::Arc;
use std::time::Instant;

use cairn_api::actionset::ActionSet;
use cairn_api::backup_policy::BackupPolicy;
use futures::stream;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::Action;

use super::common::{self, Error};
use crate::plan::{actionset, backup_policy};
use crate::shell::Context;

/// Reconciles one ActionSet.
#[tracing::instrument(skip_all, fields(actionset = %obj.name_any()))]
pub async fn reconcile_actionset(obj: Arc<ActionSet>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let plan = actionset::plan(&actionset::Observed {
        actionset: (*obj).clone(),
    });
    let api: Api<ActionSet> = Api::all(ctx.client.clone());
    common::apply(
        &ctx,
        "ActionSet",
        started,
        &api,
        &obj,
        obj.status.as_ref(),
        plan,
    )
    .await
}

/// Reconciles one BackupPolicy.
#[tracing::instrument(skip_all, fields(policy = %format!("{}/{}", obj.namespace().unwrap_or_default(), obj.name_any())))]
pub async fn reconcile_policy(obj: Arc<BackupPolicy>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let plan = backup_policy::plan(&backup_policy::Observed {
        policy: (*obj).clone(),
    });
    let api: Api<BackupPolicy> =
        Api::namespaced(ctx.client.clone(), &obj.namespace().unwrap_or_default());
    common::apply(
        &ctx,
        "BackupPolicy",
        started,
        &api,
        &obj,
        obj.status.as_ref(),
        plan,
    )
    .await
}

/// Runs both controllers until `shutdown`.
pub async fn run(ctx: Arc<Context>, shutdown: tokio_util::sync::CancellationToken) {
    let actionsets = common::run(
        ctx.clone(),
        ctx.caches.actionsets.controller(),
        stream::pending(),
        {
            let token = shutdown.clone();
            async move { token.cancelled().await }
        },
        reconcile_actionset,
        |_, err, ctx| common::retry("ActionSet", err, &ctx),
    );
    let policies = common::run(
        ctx.clone(),
        ctx.caches.policies.controller(),
        stream::pending(),
        async move { shutdown.cancelled().await },
        reconcile_policy,
        |_, err, ctx| common::retry("BackupPolicy", err, &ctx),
    );
    tokio::join!(actionsets, policies);
}
