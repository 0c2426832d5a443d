//! Retention garbage collection: a periodic pass (not a watch, like KubeBlocks' GC controller,
//! but woken at the earliest expiration) deleting expired Completed or Failed Backups, never
//! running ones (`plan::retention`; ARCHITECTURE.md §K1.2c).

use std::sync::Arc;
use std::time::Duration;

use cairn_api::backup::Backup;
use jiff::Timestamp;
use kube::api::Api;

use crate::plan::retention;
use crate::shell::Context;

/// Runs GC passes until `shutdown`: at least every `max_interval`, and at the next expiration.
pub async fn run(
    ctx: Arc<Context>,
    max_interval: Duration,
    shutdown: impl std::future::Future<Output = ()> + Send,
) {
    tokio::pin!(shutdown);
    loop {
        let wait = match pass(&ctx).await {
            Ok(Some(next)) => Duration::try_from(next.duration_since(Timestamp::now()))
                .unwrap_or_default()
                .clamp(Duration::from_secs(1), max_interval),
            Ok(None) => max_interval,
            Err(err) => {
                tracing::warn!(error = %crate::shell::chain(&err), "retention pass failed");
                Duration::from_secs(30)
            }
        };
        tokio::select! {
            _ = &mut shutdown => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// Why a retention pass failed.
#[derive(Debug, thiserror::Error)]
enum PassError {
    #[error("reading the Backups")]
    Cache(#[from] crate::shell::cache::NotRunning),
    #[error("deleting or holding an expired Backup")]
    Delete(#[from] kube::Error),
}

/// One pass: deletes expired Backups (read from the cache); returns the next expiration.
async fn pass(ctx: &Context) -> Result<Option<Timestamp>, PassError> {
    ctx.caches.backups.ready().await?;
    let backups: Vec<Backup> = ctx.caches.backups.all();
    let plan = retention::plan(&backups, Timestamp::now());
    for intent in plan.intents {
        if let crate::plan::Intent::Delete {
            namespace, name, ..
        } = intent
        {
            let api: Api<Backup> =
                Api::namespaced(ctx.client.clone(), namespace.as_deref().unwrap_or_default());
            tracing::info!(backup = %format!("{}/{name}", namespace.as_deref().unwrap_or_default()), "deleting expired backup");
            match api.delete(&name, &Default::default()).await {
                Ok(_) => {}
                Err(kube::Error::Api(status)) if status.code == 404 => {}
                Err(err) => return Err(err.into()),
            }
        }
    }
    for hold in &plan.holds {
        keep(ctx, &backups, hold).await?;
    }
    Ok(plan.next_wake)
}

/// Annotation saying why an expired Backup is kept (a younger backup depends on it).
pub const RETENTION_HOLD_ANNOTATION: &str = "cairn.io/retention-hold";

/// Records a hold on its Backup, once: the reason in [`RETENTION_HOLD_ANNOTATION`] and, when the
/// dependent expires, `status.expiration` moved to that time.
async fn keep(ctx: &Context, backups: &[Backup], hold: &retention::Hold) -> Result<(), PassError> {
    let current = backups.iter().find(|b| {
        b.metadata.namespace.as_deref() == Some(hold.namespace.as_str())
            && b.metadata.name.as_deref() == Some(hold.name.as_str())
    });
    let noted = current
        .and_then(|b| b.metadata.annotations.as_ref())
        .and_then(|a| a.get(RETENTION_HOLD_ANNOTATION));
    if noted == Some(&hold.reason) {
        return Ok(());
    }
    let api: Api<Backup> = Api::namespaced(ctx.client.clone(), &hold.namespace);
    let params = kube::api::PatchParams::default();
    if let Some(until) = hold.until {
        let status = serde_json::json!({"status": {"expiration": until.to_string()}});
        api.patch_status(&hold.name, &params, &kube::api::Patch::Merge(status))
            .await?;
    }
    let meta =
        serde_json::json!({"metadata": {"annotations": {RETENTION_HOLD_ANNOTATION: hold.reason}}});
    api.patch(&hold.name, &params, &kube::api::Patch::Merge(meta))
        .await?;
    tracing::info!(backup = %format!("{}/{}", hold.namespace, hold.name), reason = %hold.reason, "expired backup kept for its chain");
    Ok(())
}
