//! The Restore reconciler: triggered by Restore changes, agent reports on its actions and its
//! planner's requeue hints; decides with `plan::restore::plan` (ARCHITECTURE.md §K1.5, §K4).

use std::sync::Arc;
use std::time::Instant;

use cairn_api::restore::{Restore, RestorePhase};
use futures::Stream;
use jiff::Timestamp;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use tracing::Instrument;

use super::common::{self, Error};
use crate::plan::restore;
use crate::shell::Context;
use crate::shell::observe::{self, Source};

/// Reconciles one Restore, in the Restore's trace (its uid is the trace id).
pub async fn reconcile(obj: Arc<Restore>, ctx: Arc<Context>) -> Result<Action, Error> {
    let uid = obj.uid().unwrap_or_default();
    let span = tracing::info_span!("reconcile Restore", restore.uid = %uid, restore = %format!("{}/{}", obj.namespace().unwrap_or_default(), obj.name_any()));
    cairn_telemetry::join_object(&span, &uid);
    reconcile_in_span(obj, ctx).instrument(span).await
}

async fn reconcile_in_span(obj: Arc<Restore>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let observed = observe::restore(&ctx, &obj, Source::Cache).await?;
    let mut plan = restore::plan(&observed, Timestamp::now());
    let failed = |phase: Option<RestorePhase>| phase == Some(RestorePhase::Failed);
    if failed(plan.status.as_ref().and_then(|s| s.phase))
        && !failed(obj.status.as_ref().and_then(|s| s.phase))
    {
        // A cache may lag the API (a Backup or PVC created a moment before the Restore):
        // confirm a failure with a fresh read before writing it.
        let fresh = observe::restore(&ctx, &obj, Source::Api).await?;
        plan = restore::plan(&fresh, Timestamp::now());
    }
    let api: Api<Restore> =
        Api::namespaced(ctx.client.clone(), &obj.namespace().unwrap_or_default());
    let action = common::apply(
        &ctx,
        "Restore",
        started,
        &api,
        &obj,
        obj.status.as_ref(),
        plan,
    )
    .await?;
    Ok(action)
}

/// Runs the Restore controller until `shutdown`.
pub async fn run(
    ctx: Arc<Context>,
    owners: impl Stream<Item = ObjectRef<Restore>> + Send + 'static,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let controller = ctx.caches.restores.controller();
    common::run(
        ctx,
        controller,
        owners,
        shutdown,
        reconcile,
        |_, err, ctx| common::retry("Restore", err, &ctx),
    )
    .await;
}

/// Whether an owner reference from an agent report names a Restore.
pub fn restore_ref(kind: &str, namespace: &str, name: &str) -> Option<ObjectRef<Restore>> {
    (kind == Restore::kind(&())).then(|| ObjectRef::new(name).within(namespace))
}
