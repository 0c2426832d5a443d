//! One reconcile's bookkeeping of restore actions: an action is recorded `Processing` in
//! `status.actions.<stage>[]` and placed on a node before it is dispatched, and the agent's
//! result (or the loss of its agent) completes or fails the entry (ARCHITECTURE.md §K1.5, §K4.2).

use std::collections::BTreeMap;
use std::time::Duration;

use cairn_api::action::ActionErrorMode;
use cairn_api::restore::{
    Restore, RestoreActionStatus, RestoreStage, RestoreStatus, RestoreStatusAction,
};
use cairn_proto::agent::v1 as pb;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::Observed;
use super::placement::{Placement, Placements};
use super::request::Request;
use super::sets::Sets;
use crate::plan::action::{
    self, ActionKind, Dedup, Scope, Step, Workload, failure_reason, grant, lost_message, step,
    to_wire,
};
use crate::plan::ids::action_id;
use crate::plan::intent::Intent;

/// One restore action as this reconcile derives it.
#[derive(Debug, Clone, PartialEq)]
pub struct Work {
    pub stage: RestoreStage,
    /// `prepareData-<set>` or `postReady-<step>`.
    pub name: String,
    /// `Job/<job>` or `Pod/<pod>` (exec actions): with `name`, identifies the status entry.
    pub object_key: String,
    pub placement: Placement,
    pub kind: Workload,
    pub on_error: ActionErrorMode,
    /// The target pod, for exec actions and postReady jobs.
    pub pod: Option<Pod>,
    /// Claims to create (if absent) before the action runs.
    pub claims: Vec<serde_json::Value>,
}

/// Where an action stands after this reconcile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Finished (completed, or failed with `onError: Continue`); `just` when in this reconcile.
    Done { just: bool },
    /// Failed, and the stage fails with it.
    Failed,
    /// Running on its agent.
    Running,
    /// Not started: no connected agent can run it.
    Unplaced,
}

/// The mutable state of one reconcile.
pub struct Run<'a> {
    pub o: &'a Observed,
    /// The set being restored (the Restore's own backup outside the stages' loops).
    pub req: &'a Request<'a>,
    /// Every set, in order.
    pub sets: &'a Sets<'a>,
    pub now: Timestamp,
    pub status: RestoreStatus,
    pub intents: Vec<Intent>,
    pub placements: Placements,
    /// Annotations to set (besides placements).
    pub annotations: BTreeMap<String, Option<String>>,
    /// Reconcile again after at most this long.
    pub requeue: Option<Duration>,
}

/// `"<key>" is processing` and KubeBlocks' other default messages.
pub fn processing_message(key: &str) -> String {
    format!("\"{key}\" is processing")
}

fn success_message(key: &str) -> String {
    format!("successfully processed the \"{key}\"")
}

fn failure_message(key: &str, reason: &str) -> String {
    let base = format!(
        "\"{key}\" is failed, you can describe it or logs the ownered pod to get more information"
    );
    if reason.is_empty() {
        base
    } else {
        format!("{base}: {reason}")
    }
}

/// The action id of a status entry.
pub fn entry_id(restore_uid: &str, name: &str, object_key: &str) -> String {
    action_id(restore_uid, name, object_key)
}

/// The action id of the entry `name`/`object_key` of backup set `backup`: an entry of the
/// Restore's own backup has [`entry_id`]; one of another set (a base, a parent) has the backup
/// in its name, so that exec steps of two sets in the same pod differ.
pub fn set_entry_id(restore: &Restore, name: &str, object_key: &str, backup: &str) -> String {
    let uid = restore.metadata.uid.as_deref().unwrap_or_default();
    if backup.is_empty() || backup == restore.spec.backup.name {
        entry_id(uid, name, object_key)
    } else {
        entry_id(uid, &format!("{name}@{backup}"), object_key)
    }
}

/// The action id of a status entry, whichever set it belongs to.
pub fn status_entry_id(restore: &Restore, entry: &RestoreStatusAction) -> String {
    set_entry_id(restore, &entry.name, &entry.object_key, &entry.backup_name)
}

/// The entries of a stage.
pub fn entries_mut(
    status: &mut RestoreStatus,
    stage: RestoreStage,
) -> &mut Vec<RestoreStatusAction> {
    let actions = status.actions.get_or_insert_with(Default::default);
    match stage {
        RestoreStage::PrepareData => actions.prepare_data.get_or_insert_with(Vec::new),
        RestoreStage::PostReady => actions.post_ready.get_or_insert_with(Vec::new),
    }
}

/// The entries of a stage, read-only.
pub fn entries(status: &RestoreStatus, stage: RestoreStage) -> &[RestoreStatusAction] {
    let Some(actions) = status.actions.as_ref() else {
        return &[];
    };
    match stage {
        RestoreStage::PrepareData => actions.prepare_data.as_deref().unwrap_or_default(),
        RestoreStage::PostReady => actions.post_ready.as_deref().unwrap_or_default(),
    }
}

impl Run<'_> {
    /// The Restore's uid.
    pub fn uid(&self) -> String {
        self.o.restore.metadata.uid.clone().unwrap_or_default()
    }

    /// Asks for another look after `after` at the latest.
    pub fn requeue_within(&mut self, after: Duration) {
        self.requeue = Some(self.requeue.map_or(after, |r| r.min(after)));
    }

    fn entry_index(&self, stage: RestoreStage, name: &str, key: &str) -> Option<usize> {
        let backup = &self.req.backup_name;
        entries(&self.status, stage)
            .iter()
            .position(|e| e.name == name && e.object_key == key && e.backup_name == *backup)
    }

    /// Moves one action forward: record, place, dispatch, or apply its result.
    pub fn advance(&mut self, work: &Work) -> Outcome {
        let index = self.entry_index(work.stage, &work.name, &work.object_key);
        if let Some(outcome) = index.and_then(|i| self.settled(work.stage, i, work.on_error)) {
            return outcome;
        }
        let node = self.placements.place(
            &work.object_key,
            &work.placement,
            &self.o.agents,
            &self.o.nodes,
        );
        let (index, node) = match (index, node) {
            (Some(i), Some(node)) => (i, node),
            (None, Some(node)) => (self.record(work, &node), node),
            (Some(i), None) => return self.follow(work.stage, i, work.on_error),
            (None, None) => return Outcome::Unplaced,
        };
        if let Some(outcome) = self.follow_entry(work.stage, index, work.on_error, &node) {
            return outcome;
        }
        for claim in &work.claims {
            let name = claim["metadata"]["name"].as_str().unwrap_or_default();
            let exists = self
                .o
                .claims
                .iter()
                .any(|c| c.metadata.name.as_deref() == Some(name));
            if !exists {
                self.intents.push(Intent::Create {
                    object: claim.clone(),
                });
            }
        }
        let action = self.wire_action(work);
        self.intents.push(Intent::Dispatch {
            node,
            action: Box::new(action),
        });
        self.requeue_within(self.o.settings.poll);
        Outcome::Running
    }

    /// Applies the result of an action whose entry exists but which this reconcile no longer
    /// derives (its pod went away): never dispatched again, only finished.
    pub fn follow(
        &mut self,
        stage: RestoreStage,
        index: usize,
        on_error: ActionErrorMode,
    ) -> Outcome {
        if let Some(outcome) = self.settled(stage, index, on_error) {
            return outcome;
        }
        let key = entries(&self.status, stage)[index].object_key.clone();
        let node = self
            .placements
            .recorded(&key)
            .unwrap_or_default()
            .to_string();
        self.follow_entry(stage, index, on_error, &node)
            .unwrap_or_else(|| {
                self.requeue_within(self.o.settings.poll);
                Outcome::Running
            })
    }

    /// The outcome of an entry that already finished.
    fn settled(
        &self,
        stage: RestoreStage,
        index: usize,
        on_error: ActionErrorMode,
    ) -> Option<Outcome> {
        match entries(&self.status, stage)[index].status {
            Some(RestoreActionStatus::Completed) => Some(Outcome::Done { just: false }),
            Some(RestoreActionStatus::Failed) => Some(failed_outcome(on_error, false)),
            _ => None,
        }
    }

    /// Applies the agent's report or the loss of its node to a Processing entry.
    fn follow_entry(
        &mut self,
        stage: RestoreStage,
        index: usize,
        on_error: ActionErrorMode,
        node: &str,
    ) -> Option<Outcome> {
        let entry = entries(&self.status, stage)[index].clone();
        let id = status_entry_id(&self.o.restore, &entry);
        let now = self.now;
        let entry = &mut entries_mut(&mut self.status, stage)[index];
        match step(&self.o.agents, &id, Some(node), now) {
            Step::Succeeded(report) => {
                entry.status = Some(RestoreActionStatus::Completed);
                entry.message = Some(success_message(&entry.object_key));
                entry.end_time = Some(Time(report.finished_at.unwrap_or(now)));
                self.intents.push(Intent::Acknowledge { action_id: id });
                Some(Outcome::Done { just: true })
            }
            Step::Failed(report) => {
                let reason = failure_reason(report, "the action failed");
                entry.status = Some(RestoreActionStatus::Failed);
                entry.message = Some(failure_message(&entry.object_key, &reason));
                entry.end_time = Some(Time(report.finished_at.unwrap_or(now)));
                let event = format!("{} ({}) failed: {reason}", entry.name, entry.object_key);
                self.intents.push(Intent::Acknowledge { action_id: id });
                self.intents
                    .push(Intent::warning("RestoreActionFailed", event));
                Some(failed_outcome(on_error, true))
            }
            Step::NodeLost { lost_for } => {
                let reason = format!(
                    "{}; the action's outcome is unknown",
                    lost_message(node, lost_for)
                );
                entry.status = Some(RestoreActionStatus::Failed);
                entry.message = Some(failure_message(&entry.object_key, &reason));
                entry.end_time = Some(Time(now));
                let event = format!("{} ({}) failed: {reason}", entry.name, entry.object_key);
                self.intents
                    .push(Intent::warning("RestoreActionFailed", event));
                Some(failed_outcome(on_error, true))
            }
            Step::NotDispatched | Step::Running(_) => None,
        }
    }

    /// Adds the Processing entry for `work`; returns its index.
    fn record(&mut self, work: &Work, node: &str) -> usize {
        let now = self.now;
        let list = entries_mut(&mut self.status, work.stage);
        list.push(RestoreStatusAction {
            name: work.name.clone(),
            backup_name: self.req.backup_name.clone(),
            object_key: work.object_key.clone(),
            message: Some(processing_message(&work.object_key)),
            status: Some(RestoreActionStatus::Processing),
            start_time: Some(Time(now)),
            end_time: None,
        });
        let index = list.len() - 1;
        let namespace = self
            .o
            .restore
            .metadata
            .namespace
            .clone()
            .unwrap_or_default();
        let event = match &work.kind {
            Workload::Job(job) => Intent::normal(
                "CreateRestoreJob",
                format!(
                    "created job {namespace}/{} for {} on node {node}",
                    job.metadata.name.as_deref().unwrap_or_default(),
                    work.name
                ),
            ),
            // Restores never take snapshots; named for completeness.
            Workload::VolumeSnapshot { .. } => Intent::normal(
                "CreateVolumeSnapshot",
                format!("creating volume snapshots for {}", work.name),
            ),
            Workload::VolumeMove(_) => Intent::normal(
                "RestoreVolumeData",
                format!(
                    "restoring {} from the backup's repository copy on node {node}",
                    work.object_key
                ),
            ),
            Workload::Exec { .. } => Intent::normal(
                "RunRestoreExec",
                format!(
                    "running {} in pod {namespace}/{}",
                    work.name,
                    work.pod
                        .as_ref()
                        .and_then(|p| p.metadata.name.as_deref())
                        .unwrap_or_default()
                ),
            ),
        };
        self.intents.push(event);
        index
    }

    /// The wire action for `work`.
    pub fn wire_action(&self, work: &Work) -> pb::Action {
        let mut kind = work.kind.kind(|| self.grant().unwrap_or_default(), None);
        // A set with no repository (a volume snapshot backup) gives its Jobs no storage.
        if let (ActionKind::Job { storage, .. }, None) = (&mut kind, self.req.access) {
            *storage = None;
        }
        to_wire(
            &set_entry_id(
                &self.o.restore,
                &work.name,
                &work.object_key,
                &self.req.backup_name,
            ),
            &work.name,
            owner(self.o),
            work.pod.as_ref(),
            kind,
        )
    }

    /// Read-only access to the backup, its siblings and the links of its chain; `None` when
    /// the set has no repository.
    pub fn grant(&self) -> Option<pb::StorageGrant> {
        let access = self.req.access?;
        let read_only = self.req.read_only();
        // A Mount repository's PVC is the one in the Restore's namespace (§5.3 step 9).
        let namespace = self.o.restore.metadata.namespace.as_deref();
        let status = self.req.backup.status.as_ref();
        let config = status.and_then(|s| s.encryption_config.as_ref());
        let passphrase = self.req.passphrase.as_deref();
        Some(grant(
            access,
            namespace.unwrap_or_default(),
            Scope {
                read_write: "",
                read_only: &read_only,
                encryption: config.zip(passphrase),
                dedup: status
                    .and_then(|s| s.kopia_repo_path.as_deref())
                    .map(|root| Dedup::new(root, passphrase)),
            },
        ))
    }
}

fn failed_outcome(on_error: ActionErrorMode, just: bool) -> Outcome {
    match on_error {
        ActionErrorMode::Continue => Outcome::Done { just },
        ActionErrorMode::Fail => Outcome::Failed,
    }
}

/// The Restore as the owner of its actions.
pub fn owner(o: &Observed) -> pb::ObjectRef {
    action::owner("Restore", &o.restore.metadata)
}
