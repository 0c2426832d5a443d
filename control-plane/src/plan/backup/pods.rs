//! Running: each pod's actions in order (preBackup, backupData, postBackup), pods and targets in
//! parallel, through the action engine ([`crate::plan::action`]). An action is written `Running`
//! before it is dispatched to the agent on its pod's node; the agent's result completes or fails
//! it, and a node lost for longer than the grace period fails it (ARCHITECTURE.md §K2.2).

use cairn_api::action::ActionErrorMode;
use cairn_api::backup::{ActionPhase, ActionStatus, ActionType, Backup, BackupStatus};
use cairn_proto::agent::v1 as pb;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::actions::{self, PlannedAction};
use super::request::Request;
use super::{Observed, backup_info, owner, snapshot};
use crate::plan::action::{
    self, ActionKind, Dedup, InfoFile, Scope, Step, VolumeMovement, Workload, failure_reason,
    lost_message, step, to_wire,
};
use crate::plan::agent_view::ReportedAction;
use crate::plan::ids::action_id;
use crate::plan::intent::Intent;
use crate::plan::restore::placement::{Placement, Placements};

/// Where a pod's actions stand after this reconcile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PodProgress {
    /// Every action finished (completed, or failed with `onError: Continue`).
    Done,
    /// An action is running.
    Waiting,
    /// An action with `onError: Fail` failed; the pod's later actions never run.
    Failed,
}

/// Where one action stands after this reconcile.
pub(super) enum Outcome {
    Done,
    Failed,
    Running,
}

/// One reconcile's walk over the pods' action lists.
pub(super) struct Walk<'a> {
    pub o: &'a Observed,
    pub request: &'a Request<'a>,
    pub now: Timestamp,
    pub status: BackupStatus,
    pub intents: Vec<Intent>,
    /// Actions running, or finished in this reconcile: their bytes count in the progress.
    pub counted: Vec<String>,
    /// Where the Jobs that need not run on their target pod's node were dispatched
    /// (annotation `cairn.io/backup-nodes`), so that a re-derived plan sends them to the same agent.
    pub placements: Placements,
}

impl Walk<'_> {
    /// Moves one pod's action list forward as far as the agents' reports allow.
    pub(super) fn pod(&mut self, list: &[PlannedAction], pod: &Pod) -> PodProgress {
        for planned in list {
            let outcome = if planned.backup_data && self.request.continuous {
                self.archive(planned, pod)
            } else {
                self.action(planned, pod)
            };
            match outcome {
                Outcome::Done => {}
                Outcome::Failed if planned.on_error == ActionErrorMode::Continue => {}
                Outcome::Failed => return PodProgress::Failed,
                Outcome::Running => return PodProgress::Waiting,
            }
        }
        PodProgress::Done
    }

    /// Records, dispatches or applies the result of one action.
    fn action(&mut self, planned: &PlannedAction, pod: &Pod) -> Outcome {
        let now = self.now;
        let pod_name = pod.metadata.name.clone().unwrap_or_default();
        let pod_node = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .unwrap_or_default();
        let uid = self.o.backup.metadata.uid.as_deref().unwrap_or_default();
        let id = action_id(uid, &planned.name, &pod_name);
        let node = if planned.pinned {
            pod_node
        } else {
            // Any node with a connected agent, the target's first; remembered once chosen. With
            // no agent connected, the target's node (the action waits there like a pinned one).
            self.placements
                .place(
                    &id,
                    &Placement::Preferably(pod_node.clone()),
                    &self.o.agents,
                    &[],
                )
                .unwrap_or(pod_node)
        };
        let entry = status_entry(
            &mut self.status,
            &planned.name,
            &pod_name,
            action_type(planned),
        );
        match entry.phase {
            Some(ActionPhase::Completed) => return Outcome::Done,
            Some(ActionPhase::Failed) => return Outcome::Failed,
            _ => {}
        }
        match step(&self.o.agents, &id, Some(&node), now) {
            Step::Succeeded(report) => {
                complete_entry(entry, report, pod, now);
                if let Workload::VolumeSnapshot { .. } = planned.work
                    && let Err(reason) = snapshot::record(
                        entry,
                        report.backup_info_json.as_deref().unwrap_or("{}"),
                        pod.metadata.namespace.as_deref().unwrap_or_default(),
                    )
                {
                    self.intents
                        .push(Intent::warning("InvalidSnapshotReport", reason));
                }
                self.counted.push(id.clone());
                self.intents.push(Intent::Acknowledge { action_id: id });
                if let Workload::VolumeMove(movement) = &planned.work {
                    self.record_move(movement, report, pod);
                }
                if planned.backup_data
                    && planned.work.is_job()
                    && let Some(info) = &report.backup_info_json
                    && let Err(reason) = backup_info::merge(&mut self.status, info)
                {
                    self.intents
                        .push(Intent::warning("InvalidBackupInfo", reason));
                }
                return Outcome::Done;
            }
            Step::Failed(report) => {
                let reason = failure_reason(report, "the action failed");
                fail_entry(entry, reason.clone(), report.job_name.clone(), pod, now);
                self.intents.push(Intent::Acknowledge { action_id: id });
                self.intents.push(Intent::warning(
                    "ActionFailed",
                    format!("action {} on pod {pod_name} failed: {reason}", planned.name),
                ));
                if let Workload::VolumeMove(movement) = &planned.work {
                    self.intents
                        .extend(snapshot::move_leftovers(&movement.volumes));
                }
                return Outcome::Failed;
            }
            Step::NodeLost { lost_for } => {
                let reason = format!(
                    "{}; the action's outcome is unknown",
                    lost_message(&node, lost_for)
                );
                fail_entry(entry, reason, None, pod, now);
                if let Workload::VolumeMove(movement) = &planned.work {
                    self.intents
                        .extend(snapshot::move_leftovers(&movement.volumes));
                }
                return Outcome::Failed;
            }
            Step::NotDispatched | Step::Running(_) => {}
        }
        if entry.phase != Some(ActionPhase::Running) {
            entry.phase = Some(ActionPhase::Running);
            entry.start_timestamp = Some(Time(now));
        }
        let sized;
        let planned = match &planned.work {
            Workload::VolumeMove(movement) => {
                sized = PlannedAction {
                    work: Workload::VolumeMove(snapshot::sized(movement, &self.status, &pod_name)),
                    ..planned.clone()
                };
                &sized
            }
            _ => planned,
        };
        let action = to_action(self.o, self.request, planned, &id, pod);
        self.intents.push(Intent::Dispatch {
            node,
            action: Box::new(action),
        });
        self.counted.push(id);
        Outcome::Running
    }
}

impl Walk<'_> {
    /// A completed data movement: its copies go into `status.volumeSnapshotCopies`, and the
    /// snapshots are deleted when the policy asks (§K2.5a).
    fn record_move(&mut self, movement: &VolumeMovement, report: &ReportedAction, pod: &Pod) {
        let pod_name = pod.metadata.name.clone().unwrap_or_default();
        match snapshot::record_move(
            &mut self.status,
            report.backup_info_json.as_deref().unwrap_or("{}"),
            &pod_name,
            &movement.volumes,
        ) {
            Ok(names) => {
                if snapshot::delete_after_move(self.request.policy) {
                    self.intents.extend(snapshot::delete_moved(
                        self.o.backup.metadata.namespace.clone(),
                        &names,
                    ));
                }
            }
            Err(reason) => self
                .intents
                .push(Intent::warning("InvalidVolumeMoveReport", reason)),
        }
    }
}

/// The status entry for an action on a pod, created as New if missing.
pub(super) fn status_entry<'s>(
    status: &'s mut BackupStatus,
    name: &str,
    pod: &str,
    action_type: ActionType,
) -> &'s mut ActionStatus {
    let actions = status.actions.get_or_insert_with(Vec::new);
    let found = actions
        .iter()
        .position(|a| a.name.as_deref() == Some(name) && a.target_pod_name.as_deref() == Some(pod));
    let index = match found {
        Some(index) => index,
        None => {
            actions.push(ActionStatus {
                name: Some(name.into()),
                target_pod_name: Some(pod.into()),
                phase: Some(ActionPhase::New),
                action_type: Some(action_type),
                ..Default::default()
            });
            actions.len() - 1
        }
    };
    &mut actions[index]
}

pub(super) fn action_type(action: &PlannedAction) -> ActionType {
    match action.work {
        Workload::Job(_) => ActionType::Job,
        Workload::Exec { .. } | Workload::VolumeSnapshot { .. } | Workload::VolumeMove(_) => {
            ActionType::None
        }
    }
}

fn job_ref(pod: &Pod, job: Option<String>) -> Option<ObjectReference> {
    job.filter(|j| !j.is_empty()).map(|name| ObjectReference {
        api_version: Some("batch/v1".into()),
        kind: Some("Job".into()),
        name: Some(name),
        namespace: pod.metadata.namespace.clone(),
        ..Default::default()
    })
}

fn complete_entry(entry: &mut ActionStatus, report: &ReportedAction, pod: &Pod, now: Timestamp) {
    entry.phase = Some(ActionPhase::Completed);
    if entry.start_timestamp.is_none() {
        entry.start_timestamp = Some(Time(report.started_at.unwrap_or(now)));
    }
    entry.completion_timestamp = Some(Time(report.finished_at.unwrap_or(now)));
    entry.failure_reason = None;
    if let Some(job) = job_ref(pod, report.job_name.clone()) {
        entry.object_ref = Some(job);
    }
    if let Some(info) = report.backup_info_json.as_deref() {
        backup_info::record_in_entry(entry, info);
    }
}

fn fail_entry(
    entry: &mut ActionStatus,
    reason: String,
    job: Option<String>,
    pod: &Pod,
    now: Timestamp,
) {
    entry.phase = Some(ActionPhase::Failed);
    if entry.start_timestamp.is_none() {
        entry.start_timestamp = Some(Time(now));
    }
    entry.completion_timestamp = Some(Time(now));
    entry.failure_reason = Some(reason);
    if let Some(job) = job_ref(pod, job) {
        entry.object_ref = Some(job);
    }
}

/// Builds the wire action for a planned action: a Job writes to the backup's path and reads its
/// siblings; every Job has the shared info file, which the agent reads for backupData.
fn to_action(
    o: &Observed,
    request: &Request<'_>,
    planned: &PlannedAction,
    id: &str,
    pod: &Pod,
) -> pb::Action {
    let info = InfoFile {
        volume: actions::MANAGER_VOLUME.into(),
        file: actions::INFO_FILE.into(),
        collect: planned.backup_data,
    };
    let kind = match (&planned.work, request.access) {
        // A snapshot backup's hook Jobs reach no repository (one that moves its data has one,
        // reached only by its data movement action).
        (Workload::Job(job), _) if request.access.is_none() || request.snapshot.is_some() => {
            ActionKind::Job {
                job: job.clone(),
                storage: None,
                info: Some(info),
            }
        }
        (Workload::VolumeMove(_), _) => {
            planned.work.kind(|| grant(request, &o.backup, false), None)
        }
        (work, _) => work.kind(|| grant(request, &o.backup, true), Some(info)),
    };
    to_wire(id, &planned.name, owner(&o.backup), Some(pod), kind)
}

/// What the backup's actions may reach in the repository: its own path read-write and, with
/// `siblings`, its siblings and the paths of its chain (parent, ancestors, base) read-only: an
/// incremental action pulls its parent's state, and never writes there.
pub(super) fn grant(request: &Request<'_>, backup: &Backup, siblings: bool) -> pb::StorageGrant {
    let mut read_only = Vec::new();
    if siblings {
        read_only.push(request.root_path.clone());
        for path in request.parent.iter().flat_map(|p| p.paths()) {
            if !read_only.contains(&path) {
                read_only.push(path);
            }
        }
    }
    let none = action::RepoAccess::default();
    action::grant(
        request.access.unwrap_or(&none),
        backup.metadata.namespace.as_deref().unwrap_or_default(),
        Scope {
            read_write: &request.backup_path,
            read_only: &read_only,
            encryption: request.encryption.zip(request.passphrase.as_deref()),
            dedup: request
                .kopia_repo_path
                .as_deref()
                .map(|root| Dedup::new(root, request.passphrase.as_deref())),
        },
    )
}
