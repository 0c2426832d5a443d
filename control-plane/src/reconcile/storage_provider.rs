//! The StorageProvider reconciler, for both API groups: is the CSI driver installed
//! (ARCHITECTURE.md §K5.1; `plan::storage_provider`).

use std::sync::Arc;
use std::time::Instant;

use cairn_api::storage_provider::{LegacyStorageProvider, StorageProvider};
use futures::stream;
use jiff::Timestamp;
use k8s_openapi::api::storage::v1::CSIDriver;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::Action;

use super::common::{self, Error};
use crate::plan::storage_provider::{self, CsiDriverLookup};
use crate::shell::Context;

async fn lookup(ctx: &Context, name: Option<&str>) -> CsiDriverLookup {
    let Some(name) = name.filter(|n| !n.is_empty()) else {
        return CsiDriverLookup::Found;
    };
    match Api::<CSIDriver>::all(ctx.client.clone())
        .get_opt(name)
        .await
    {
        Ok(Some(_)) => CsiDriverLookup::Found,
        Ok(None) => CsiDriverLookup::NotFound,
        Err(err) => CsiDriverLookup::Failed(crate::shell::chain(&err)),
    }
}

/// Reconciles one `dataprotection.kubeblocks.io` StorageProvider.
#[tracing::instrument(skip_all, fields(provider = %obj.name_any()))]
pub async fn reconcile(obj: Arc<StorageProvider>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let csi = lookup(&ctx, obj.spec.csi_driver_name.as_deref()).await;
    let plan = storage_provider::plan(
        &storage_provider::Observed::current(&obj, csi),
        Timestamp::now(),
    );
    let api: Api<StorageProvider> = Api::all(ctx.client.clone());
    common::apply(
        &ctx,
        "StorageProvider",
        started,
        &api,
        &obj,
        obj.status.as_ref(),
        plan,
    )
    .await
}

/// Reconciles one deprecated `storage.kubeblocks.io` StorageProvider.
#[tracing::instrument(skip_all, fields(provider = %obj.name_any()))]
pub async fn reconcile_legacy(
    obj: Arc<LegacyStorageProvider>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    let started = Instant::now();
    let csi = lookup(&ctx, obj.spec.0.csi_driver_name.as_deref()).await;
    let plan = storage_provider::plan(
        &storage_provider::Observed::legacy(&obj, csi),
        Timestamp::now(),
    );
    let api: Api<LegacyStorageProvider> = Api::all(ctx.client.clone());
    common::apply(
        &ctx,
        "StorageProvider",
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
    let current = common::run(
        ctx.clone(),
        ctx.caches.providers.controller(),
        stream::pending(),
        {
            let token = shutdown.clone();
            async move { token.cancelled().await }
        },
        reconcile,
        |_, err, ctx| common::retry("StorageProvider", err, &ctx),
    );
    let legacy = common::run(
        ctx.clone(),
        common::uncached::<LegacyStorageProvider>(&ctx),
        stream::pending(),
        async move { shutdown.cancelled().await },
        reconcile_legacy,
        |_, err, ctx| common::retry("StorageProvider", err, &ctx),
    );
    tokio::join!(current, legacy);
}
