//! Routes agent hub events to the reconcilers of the objects that own the actions.

use std::sync::Arc;

use cairn_api::backup::Backup;
use cairn_api::backup_repo::BackupRepo;
use cairn_api::restore::Restore;
use futures::Stream;
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use kube::runtime::reflector::ObjectRef;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::dispatch::HubEvent;
use crate::shell::Context;

/// Reconcile triggers by owner kind.
pub struct Triggers {
    pub backups: mpsc::UnboundedReceiver<ObjectRef<Backup>>,
    pub restores: mpsc::UnboundedReceiver<ObjectRef<Restore>>,
    /// BackupRepos (pre-checks).
    pub repos: mpsc::UnboundedReceiver<ObjectRef<BackupRepo>>,
    /// PersistentVolumeClaims being populated (their populate Jobs).
    pub claims: mpsc::UnboundedReceiver<ObjectRef<PersistentVolumeClaim>>,
}

/// Spawns the router; it ends with `stop` or when the hub is dropped.
pub fn spawn(ctx: Arc<Context>, stop: CancellationToken) -> Triggers {
    let (backups_tx, backups) = mpsc::unbounded_channel();
    let (restores_tx, restores) = mpsc::unbounded_channel();
    let (repos_tx, repos) = mpsc::unbounded_channel();
    let (claims_tx, claims) = mpsc::unbounded_channel();
    let mut events = ctx.dispatcher.events();
    tokio::spawn(async move {
        loop {
            let event = tokio::select! {
                _ = stop.cancelled() => break,
                event = events.recv() => event,
            };
            let event = match event {
                Ok(event) => event,
                Err(RecvError::Lagged(missed)) => {
                    tracing::warn!(
                        missed,
                        "reconcile triggers fell behind agent events; requeues will catch up"
                    );
                    continue;
                }
                Err(RecvError::Closed) => break,
            };
            let owners: Vec<(String, String, String)> = match &event {
                HubEvent::Result {
                    owner: Some(owner), ..
                } => vec![(
                    owner.kind.clone(),
                    owner.namespace.clone(),
                    owner.name.clone(),
                )],
                HubEvent::Result { state, .. } => ctx
                    .owner_of(&state.action_id)
                    .map(to_triple)
                    .into_iter()
                    .collect(),
                // Progress only moves a count: the planners write it on their own interval
                // (they requeue while an action runs), so a report costs no reconcile.
                HubEvent::Progress { .. } => Vec::new(),
                HubEvent::Accepted { action_id, .. } => {
                    ctx.owner_of(action_id).map(to_triple).into_iter().collect()
                }
                // The owners of the node's actions: a lost agent starts their grace period, a
                // returning one brings their outcome.
                HubEvent::Connected { node, .. } | HubEvent::Disconnected { node, .. } => {
                    let mut owners: Vec<_> = ctx
                        .dispatcher
                        .actions_on(node)
                        .iter()
                        .filter_map(|id| ctx.owner_of(id))
                        .map(to_triple)
                        .collect();
                    owners.sort();
                    owners.dedup();
                    owners
                }
            };
            let mut sent = true;
            for (kind, namespace, name) in owners {
                sent &= if let Some(reference) = super::backup::backup_ref(&kind, &namespace, &name)
                {
                    backups_tx.send(reference).is_ok()
                } else if let Some(reference) =
                    super::restore::restore_ref(&kind, &namespace, &name)
                {
                    restores_tx.send(reference).is_ok()
                } else if kind == "BackupRepo" {
                    repos_tx.send(ObjectRef::new(&name)).is_ok()
                } else if let Some(reference) = super::populate::claim_ref(&kind, &namespace, &name)
                {
                    claims_tx.send(reference).is_ok()
                } else {
                    true
                };
            }
            if !sent {
                break;
            }
        }
    });
    Triggers {
        backups,
        restores,
        repos,
        claims,
    }
}

fn to_triple(reference: k8s_openapi::api::core::v1::ObjectReference) -> (String, String, String) {
    (
        reference.kind.unwrap_or_default(),
        reference.namespace.unwrap_or_default(),
        reference.name.unwrap_or_default(),
    )
}

/// A receiver as a stream.
pub fn stream<T: Send + 'static>(rx: mpsc::UnboundedReceiver<T>) -> impl Stream<Item = T> {
    tokio_stream::wrappers::UnboundedReceiverStream::new(rx)
}
