//! The volume populator's reconciler: triggered by PersistentVolumeClaim changes, agent
//! reports on its Jobs and its planner's requeue hints; decides with `plan::populate::plan`
//! (ARCHITECTURE.md §K4.6). Claims that name no Restore in `spec.dataSourceRef` cost nothing.

use std::sync::Arc;
use std::time::Instant;

use futures::Stream;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use tracing::Instrument;

use super::common::{self, Error};
use crate::plan::populate;
use crate::shell::Context;
use crate::shell::observe::{self, Source};

/// Reconciles one claim, in the claim's trace (its uid is the trace id).
pub async fn reconcile(
    obj: Arc<PersistentVolumeClaim>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    if populate::source(&obj).is_none() {
        return Ok(Action::await_change());
    }
    let uid = obj.uid().unwrap_or_default();
    let span = tracing::info_span!("reconcile PersistentVolumeClaim populate", claim.uid = %uid, claim = %format!("{}/{}", obj.namespace().unwrap_or_default(), obj.name_any()));
    cairn_telemetry::join_object(&span, &uid);
    reconcile_in_span(obj, ctx).instrument(span).await
}

async fn reconcile_in_span(
    obj: Arc<PersistentVolumeClaim>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    let started = Instant::now();
    let observed = observe::populate(&ctx, &obj, Source::Cache).await?;
    let mut plan = populate::plan(&observed, Timestamp::now());
    let failed = |claim: &PersistentVolumeClaim| {
        populate::condition(claim).and_then(|c| c.reason.as_deref())
            == Some(cairn_api::well_known::conditions::populate::REASON_FAILED)
    };
    let fails = plan.status.as_ref().is_some_and(|status| {
        let mut next = (*obj).clone();
        next.status = Some(status.clone());
        failed(&next)
    });
    if fails && !failed(&obj) {
        // A cache may lag the API (a Restore created a moment before the claim): confirm a
        // failure with a fresh read before writing it.
        let fresh = observe::populate(&ctx, &obj, Source::Api).await?;
        plan = populate::plan(&fresh, Timestamp::now());
    }
    let api: Api<PersistentVolumeClaim> =
        Api::namespaced(ctx.client.clone(), &obj.namespace().unwrap_or_default());
    common::apply(
        &ctx,
        "PersistentVolumeClaim",
        started,
        &api,
        &obj,
        obj.status.as_ref(),
        plan,
    )
    .await
}

/// Runs the populator until `shutdown`.
pub async fn run(
    ctx: Arc<Context>,
    owners: impl Stream<Item = ObjectRef<PersistentVolumeClaim>> + Send + 'static,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let controller = ctx.caches.claims.controller();
    common::run(
        ctx,
        controller,
        owners,
        shutdown,
        reconcile,
        |_, err, ctx| common::retry("PersistentVolumeClaim", err, &ctx),
    )
    .await;
}

/// Whether an owner reference from an agent report names a claim (a populate Job's).
pub fn claim_ref(
    kind: &str,
    namespace: &str,
    name: &str,
) -> Option<ObjectRef<PersistentVolumeClaim>> {
    (kind == PersistentVolumeClaim::kind(&())).then(|| ObjectRef::new(name).within(namespace))
}
