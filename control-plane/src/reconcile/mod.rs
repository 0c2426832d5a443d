//! Reconcilers: one file per kind, each `observe -> plan -> execute`, plus the router that turns
//! agent reports into reconcile triggers for the objects owning the actions, and the loop that
//! runs them only while this replica leads.

pub mod actionset;
pub mod backup;
pub mod backup_repo;
pub mod common;
pub mod gc;
pub mod legacy;
pub mod populate;
pub mod restore;
pub mod schedule;
pub mod storage_provider;
pub mod triggers;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::shell::Context;

/// Runs every reconciler while `leading` is true; stops them when leadership is lost and starts
/// them again when it comes back; returns after `shutdown`.
pub async fn run_while_leading(
    ctx: Arc<Context>,
    mut leading: watch::Receiver<bool>,
    shutdown: CancellationToken,
) {
    loop {
        while !*leading.borrow() {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                changed = leading.changed() => if changed.is_err() { return },
            }
        }
        if shutdown.is_cancelled() {
            return;
        }
        tracing::info!("leading: starting reconcilers");
        let term = shutdown.child_token();
        let triggers = triggers::spawn(ctx.clone(), term.clone());
        let stopped = |token: &CancellationToken| {
            let token = token.clone();
            async move { token.cancelled().await }
        };
        let tasks = vec![
            tokio::spawn(backup::run(
                ctx.clone(),
                triggers::stream(triggers.backups),
                stopped(&term),
            )),
            tokio::spawn(restore::run(
                ctx.clone(),
                triggers::stream(triggers.restores),
                stopped(&term),
            )),
            tokio::spawn(populate::run(
                ctx.clone(),
                triggers::stream(triggers.claims),
                stopped(&term),
            )),
            tokio::spawn(schedule::run(ctx.clone(), stopped(&term))),
            tokio::spawn(gc::run(
                ctx.clone(),
                Duration::from_secs(3600),
                stopped(&term),
            )),
            tokio::spawn(backup_repo::run(
                ctx.clone(),
                triggers::stream(triggers.repos),
                stopped(&term),
            )),
            tokio::spawn(storage_provider::run(ctx.clone(), term.clone())),
            tokio::spawn(actionset::run(ctx.clone(), term.clone())),
            tokio::spawn(legacy::run(ctx.clone(), term.clone())),
        ];
        let mut lost = leading.clone();
        tokio::select! {
            _ = shutdown.cancelled() => {}
            _ = async { while lost.changed().await.is_ok() { if !*lost.borrow() { break } } } => {
                tracing::warn!("lost leadership: stopping reconcilers");
            }
        }
        term.cancel();
        for task in tasks {
            let _ = task.await;
        }
        if shutdown.is_cancelled() {
            return;
        }
    }
}
