//! Reconcilers: one file per kind, each `observe -> plan -> execute`, plus the router that turns
//! agent reports into reconcile triggers for the objects owning the actions.

pub mod backup;
pub mod triggers;

use std::sync::Arc;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::shell::Context;

/// Runs every reconciler while `leading` is true; stops them when leadership is lost and starts
/// them again when it comes back; returns after `shutdown`.
pub async fn run_while_leading(
    ctx: Arc<Context>,
    triggers: triggers::Triggers,
    mut leading: watch::Receiver<bool>,
    shutdown: CancellationToken,
) {
    let triggers::Triggers {
        backups: mut backup_rx,
        others: mut _others,
    } = triggers;
    loop {
        while !*leading.borrow() {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                changed = leading.changed() => if changed.is_err() { break },
            }
        }
        if shutdown.is_cancelled() {
            return;
        }
        tracing::info!("leading: starting reconcilers");
        let term = CancellationToken::new();
        let (backup_tx, backup_stream) = tokio::sync::mpsc::unbounded_channel();
        let forward_term = term.clone();
        let forward = tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = forward_term.cancelled() => break,
                    item = backup_rx.recv() => match item {
                        Some(item) => { let _ = backup_tx.send(item); }
                        None => break,
                    }
                }
            }
            backup_rx
        });
        let stop = term.clone();
        let backups = tokio::spawn(backup::run(
            ctx.clone(),
            triggers::stream(backup_stream),
            async move { stop.cancelled().await },
        ));
        let mut lost = leading.clone();
        tokio::select! {
            _ = shutdown.cancelled() => {}
            _ = async { while lost.changed().await.is_ok() { if !*lost.borrow() { break } } } => {
                tracing::warn!("lost leadership: stopping reconcilers");
            }
        }
        term.cancel();
        let _ = backups.await;
        match forward.await {
            Ok(rx) => backup_rx = rx,
            Err(_) => return,
        }
        if shutdown.is_cancelled() {
            return;
        }
    }
}
