//! What happens when a Backup is created, runs and finishes (ARCHITECTURE.md §K1.2, §K2).
//!
//! # Expected flow
//! 1. New: the policy, method, ActionSet and repository are resolved and checked, targets and
//!    pods selected (`request.rs`); an Incremental or Differential backup's parent and base are
//!    found (`parent.rs`, §2.9), its env names them and its Jobs may read their paths; the Backup gets its labels, finalizer and a status with `path`,
//!    the copied method, the targets and one `New` entry per action (`start`).
//! 2. Running: per pod, actions run in order (preBackup, backupData, postBackup), pods and
//!    targets in parallel (`pods.rs`). An action is written `Running` before it is dispatched to
//!    the agent on its pod's node; the agent's result completes or fails it, through the action
//!    engine ([`crate::plan::action`]). The backupData action's info file is merged into the
//!    status ([`backup_info`]); the agents' byte counts become `status.progress` (`progress.rs`).
//! 3. When every pod is done, `kubeblocks-backup.json` is written beside the data, and the
//!    Backup is `Completed` (`manifest.rs`), or `Failed` when an action with `onError: Fail`
//!    failed.
//! 4. Completed or Failed: late results are only acknowledged (`settled`). Deletion is
//!    [`deletion`].
//!
//! # Departures from KubeBlocks (where the API reference is followed instead)
//! - `onError: Continue` and exec `timeout` are honoured (ARCHITECTURE.md §K8 S2, S3).
//! - A repository still pre-checking is waited for instead of failing the Backup (ARCHITECTURE.md §K8 S13).
//! - No progress sidecar: the agent reads the backup info file itself and reports live bytes.

pub mod actions;
pub mod backup_info;
pub mod chain;
pub mod continuous;
pub mod deletion;
mod manifest;
pub mod parent;
pub mod path;
mod pods;
mod progress;
pub mod repo;
mod request;
pub mod snapshot;
pub mod targets;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::time::Duration;

use cairn_api::actionset::ActionSet;
use cairn_api::backup::{Backup, BackupPhase, BackupStatus};
use cairn_api::backup_policy::BackupPolicy;
use cairn_api::backup_repo::BackupRepo;
use cairn_api::backup_schedule::BackupSchedule;
use cairn_api::well_known;
use cairn_proto::agent::v1 as pb;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use self::pods::{PodProgress, Walk};
use self::repo::RepoAccess;
use self::request::{Problem, Request};
use super::action::{self, ended};
use super::agent_view::AgentView;
use super::ids::action_id;
use super::intent::{Intent, Plan};
use super::restore::placement::Placements;

pub(super) const COPIED_POD_LABELS: [&str; 3] = [
    well_known::label::INSTANCE,
    well_known::label::COMPONENT_NAME,
    well_known::label::SHARDING_NAME,
];
/// Name of the action that writes `kubeblocks-backup.json`.
pub const MANIFEST_ACTION: &str = "dp-backup-manifest";
pub const MANIFEST_FILE: &str = "kubeblocks-backup.json";
const FAILED_ACTIONS: &str =
    "there are failed actions, you can obtain the more informations in the status.actions";

/// Knobs of the Backup planner.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Minimum time between two writes of `status.progress`.
    pub progress_interval: Duration,
    /// How often a waiting Backup is looked at again.
    pub wait_requeue: Duration,
    /// How often a Completed continuous Backup is looked at again (to reopen it when its
    /// schedule entry is enabled again).
    pub continuous_recheck: Duration,
    /// How long a continuous backup's `timeRange.end` may stay still before it is reported
    /// stalled; `None`: three archive intervals.
    pub continuous_stall_after: Option<Duration>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            progress_interval: Duration::from_secs(1),
            wait_requeue: Duration::from_secs(2),
            continuous_recheck: Duration::from_secs(5),
            continuous_stall_after: None,
        }
    }
}

/// Everything the Backup planner reads.
#[derive(Debug, Clone)]
pub struct Observed {
    pub backup: Backup,
    /// The BackupPolicy named by the Backup, if it exists.
    pub policy: Option<BackupPolicy>,
    /// The ActionSet named by the method, if it exists.
    pub actionset: Option<ActionSet>,
    /// All BackupRepos (cluster-scoped; few).
    pub repos: Vec<BackupRepo>,
    /// How agents reach the resolved repository, once its reconciler has rendered it.
    pub repo_access: Option<RepoAccess>,
    /// The policy's encryption passphrase: `None` when not configured, `Some(Err)` when the
    /// Secret or key is missing.
    pub encryption_passphrase: Option<Result<String, String>>,
    /// Passphrases of the encryption secrets older backups of the policy use, by (Secret name,
    /// key), read for Incremental and Differential backups (a chain keeps its parent's
    /// encryption): `Err` when the Secret or key is missing.
    pub passphrases: BTreeMap<(String, String), Result<String, String>>,
    /// The Backups of the Backup's namespace (parents of Incremental and Differential backups).
    pub backups: Vec<Backup>,
    /// Pods of the Backup's namespace.
    pub pods: Vec<Pod>,
    /// The BackupSchedule named by the Backup's `backup-schedule` label (read for continuous
    /// backups), if it exists.
    pub schedule: Option<BackupSchedule>,
    /// PersistentVolumeClaims of the Backup's namespace (a Mount repository's PVC, the claims
    /// a snapshot backup snapshots).
    pub claims: Vec<PersistentVolumeClaim>,
    /// The volumes and VolumeSnapshotClasses a snapshot backup reads (empty otherwise).
    pub snapshot: snapshot::Inputs,
    pub agents: AgentView,
    pub settings: Settings,
}

/// Plans one reconcile of a Backup.
pub fn plan(o: &Observed, now: Timestamp) -> Plan<BackupStatus> {
    let backup = &o.backup;
    let skip = backup
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(well_known::annotation::SKIP_RECONCILIATION))
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    if skip {
        return Plan::nothing();
    }
    if backup.metadata.deletion_timestamp.is_some() {
        return deletion::plan(o, now);
    }
    let status = backup.status.clone().unwrap_or_default();
    let continuous = continuous::is_continuous(o);
    match status.phase {
        None | Some(BackupPhase::New) | Some(BackupPhase::InProgress) => start(o, status, now),
        Some(BackupPhase::Running) if continuous => match continuous::end_reason(o) {
            Some(reason) => continuous::complete(o, status, reason, now),
            None => run(o, status, now),
        },
        Some(BackupPhase::Running) => run(o, status, now),
        Some(BackupPhase::Completed) if continuous => match continuous::end_reason(o) {
            Some(_) => {
                let mut plan = settled(o, &status);
                plan.intents
                    .extend(continuous::cancel_leftovers(o, &status, now));
                plan.requeue = Some(o.settings.continuous_recheck);
                plan
            }
            None => match continuous::reopen(status, now) {
                Some(status) => {
                    let mut plan = run(o, status, now);
                    if plan.status.as_ref().and_then(|s| s.phase) == Some(BackupPhase::Running) {
                        plan.intents.push(Intent::normal(
                            "ContinuousBackupReopened",
                            "the schedule entry is enabled again: continuous backup reopened",
                        ));
                    }
                    plan
                }
                None => Plan {
                    status: None,
                    intents: Vec::new(),
                    requeue: Some(Duration::from_secs(1)),
                },
            },
        },
        // KubeBlocks re-drives a Failed continuous Backup (§1.2 "Failed phase"); Cairn does
        // while its entry is enabled, and leaves it Failed otherwise (ARCHITECTURE.md §K2.9).
        Some(BackupPhase::Failed) if continuous => match continuous::end_reason(o) {
            Some(_) => {
                let mut plan = settled(o, &status);
                plan.intents
                    .extend(continuous::cancel_leftovers(o, &status, now));
                plan
            }
            None => {
                let failure = status
                    .failure_reason
                    .clone()
                    .unwrap_or_else(|| "no reason recorded".into());
                let mut plan =
                    match continuous::redrive(status.clone(), now, o.settings.continuous_recheck) {
                        continuous::Redrive::New(status) => start(o, status, now),
                        continuous::Redrive::Running(status) => run(o, status, now),
                        continuous::Redrive::Later(wait) => {
                            let mut plan = settled(o, &status);
                            plan.requeue = Some(wait);
                            return plan;
                        }
                    };
                plan.intents.push(Intent::normal(
                    "ContinuousBackupRestarted",
                    format!(
                        "the schedule entry is still enabled: the failed continuous backup runs again (it failed: {failure})"
                    ),
                ));
                plan
            }
        },
        Some(BackupPhase::Completed) | Some(BackupPhase::Failed) => settled(o, &status),
        Some(BackupPhase::Deleting) => Plan::nothing(),
    }
}

/// New: resolve, record the plan of actions in the status, and start running.
fn start(o: &Observed, mut status: BackupStatus, now: Timestamp) -> Plan<BackupStatus> {
    let mut intents = Vec::new();
    if let Err(reason) = check_retention(&o.backup) {
        return fail(o, status, reason, now, intents);
    }
    let request = match request::resolve(o) {
        Ok(request) => request,
        Err(Problem::Wait(reason)) => {
            return Plan {
                status: None,
                intents: vec![Intent::normal("Waiting", reason)],
                requeue: Some(o.settings.wait_requeue),
            };
        }
        Err(Problem::WaitForRepoClaim { repo, claim }) => {
            return request::wait_for_repo_claim(o, &repo, &claim);
        }
        Err(Problem::Fail(reason)) => return fail(o, status, reason, now, intents),
    };
    let labels = request.label_changes(&o.backup);
    if !labels.is_empty() {
        intents.push(Intent::PatchMeta {
            labels,
            annotations: BTreeMap::new(),
        });
    }
    if !has_finalizer(&o.backup) {
        intents.push(Intent::AddFinalizer);
    }
    let mut planned = Vec::new();
    for target in &request.targets {
        for (i, pod) in target.pods.iter().enumerate() {
            match request.pod_actions(&o.backup, target, pod, i) {
                Ok(list) => planned.extend(
                    list.into_iter()
                        .map(|a| (a, pod.metadata.name.clone().unwrap_or_default())),
                ),
                Err(reason) => return fail(o, status, reason, now, intents),
            }
        }
    }
    request.record(&mut status, &planned);
    status.phase = Some(BackupPhase::Running);
    status.start_timestamp = Some(Time(now));
    status.failure_reason = None;
    // A running continuous backup has no expiration (§7.1).
    status.expiration = if request.continuous {
        None
    } else {
        expiration(&o.backup, &status)
    };
    intents.push(Intent::normal(
        "BackupStarted",
        format!(
            "backup started with method {} on {} pod(s)",
            request.method.name,
            request.targets.iter().map(|t| t.pods.len()).sum::<usize>()
        ),
    ));
    advance(o, &request, status, now, intents)
}

/// Running: re-resolve (pods from the status) and advance the actions.
fn run(o: &Observed, status: BackupStatus, now: Timestamp) -> Plan<BackupStatus> {
    match request::resolve(o) {
        Ok(request) => advance(o, &request, status, now, Vec::new()),
        Err(Problem::Wait(_)) => Plan {
            status: None,
            intents: Vec::new(),
            requeue: Some(o.settings.wait_requeue),
        },
        Err(Problem::WaitForRepoClaim { repo, claim }) => {
            request::wait_for_repo_claim(o, &repo, &claim)
        }
        Err(Problem::Fail(reason)) => fail(o, status, reason, now, Vec::new()),
    }
}

/// Moves every pod's action list forward as far as the agents' reports allow; once every pod
/// is done, writes the manifest and completes (or fails) the Backup.
fn advance(
    o: &Observed,
    request: &Request<'_>,
    status: BackupStatus,
    now: Timestamp,
    intents: Vec<Intent>,
) -> Plan<BackupStatus> {
    let mut walk = Walk {
        o,
        request,
        now,
        status,
        intents,
        counted: Vec::new(),
        placements: Placements::read_from(
            o.backup.metadata.annotations.as_ref(),
            well_known::annotation::BACKUP_NODES,
        ),
    };
    let mut outcomes = Vec::new();
    for target in &request.targets {
        for (index, pod) in target.pods.iter().enumerate() {
            let list = match request.pod_actions(&o.backup, target, pod, index) {
                Ok(list) => list,
                Err(reason) => return fail(o, walk.status, reason, now, walk.intents),
            };
            outcomes.push(walk.pod(&list, pod));
        }
    }
    let Walk {
        mut status,
        mut intents,
        counted,
        placements,
        ..
    } = walk;
    // The placements are written before the status and the dispatches (intent order).
    if let Some((key, value)) = placements.patch() {
        intents.insert(
            0,
            Intent::PatchMeta {
                labels: BTreeMap::new(),
                annotations: BTreeMap::from([(key, Some(value))]),
            },
        );
    }
    progress::update(o, &mut status, &counted, now);
    if outcomes.contains(&PodProgress::Waiting) {
        let waiting = o.settings.wait_requeue.max(Duration::from_secs(5));
        return Plan {
            status: Some(status),
            intents,
            requeue: Some(progress::next_update(o, &counted).map_or(waiting, |p| p.min(waiting))),
        };
    }
    if outcomes.contains(&PodProgress::Failed) {
        return fail(o, status, FAILED_ACTIONS.into(), now, intents);
    }
    manifest::finish(o, request, status, now, intents)
}

/// Completed or Failed: only acknowledge results that arrive late (after a restart).
fn settled(o: &Observed, status: &BackupStatus) -> Plan<BackupStatus> {
    let mut intents = Vec::new();
    let uid = o.backup.metadata.uid.clone().unwrap_or_default();
    for action in status.actions.iter().flatten() {
        let id = continuous::entry_id(&uid, action);
        if ended(&o.agents, &id) {
            intents.push(Intent::Acknowledge { action_id: id });
        }
    }
    let manifest = action_id(&uid, MANIFEST_ACTION, "");
    if ended(&o.agents, &manifest) {
        intents.push(Intent::Acknowledge {
            action_id: manifest,
        });
    }
    Plan {
        status: None,
        intents,
        requeue: None,
    }
}

/// Marks the Backup Failed with `reason` (and an event), cancelling nothing: callers decide.
pub(super) fn fail(
    o: &Observed,
    mut status: BackupStatus,
    reason: String,
    now: Timestamp,
    mut intents: Vec<Intent>,
) -> Plan<BackupStatus> {
    status.phase = Some(BackupPhase::Failed);
    status.failure_reason = Some(reason.clone());
    status.completion_timestamp = Some(Time(now));
    if let Some(start) = &status.start_timestamp {
        status.duration = Some(super::time::go_duration_text(elapsed(start.0, now)));
    }
    if status.expiration.is_none() {
        status.expiration = expiration(&o.backup, &status);
    }
    status.progress = None;
    intents.push(Intent::warning("ReconcileFailed", reason));
    Plan {
        status: Some(status),
        intents,
        requeue: None,
    }
}

pub(super) fn elapsed(from: Timestamp, to: Timestamp) -> Duration {
    Duration::try_from(to.duration_since(from)).unwrap_or_default()
}

/// A `spec.retentionPeriod` that does not parse fails the Backup before anything runs, naming
/// the field and the value (KubeBlocks keeps such a backup forever without a word, §K8 S21).
fn check_retention(backup: &Backup) -> Result<(), String> {
    let text = backup.spec.retention_period.as_deref().unwrap_or_default();
    super::time::retention(text).map(drop).map_err(|err| {
        format!(
            "spec.retentionPeriod {text:?} is not a retention period ({err}): use a number and a unit, such as 7d, 12h or 1y2mo3w; empty means no expiry"
        )
    })
}

/// `status.expiration` (§7.1): base + retention, where base is the completion time for a
/// Completed backup and the start otherwise; `None` without retention.
pub fn expiration(backup: &Backup, status: &BackupStatus) -> Option<Time> {
    let retention = backup.spec.retention_period.as_deref().unwrap_or_default();
    let period = super::time::retention(retention).ok().flatten()?;
    let base = if status.phase == Some(BackupPhase::Completed) {
        status.completion_timestamp.clone()
    } else {
        status
            .time_range
            .as_ref()
            .and_then(|r| r.start.clone())
            .or_else(|| status.start_timestamp.clone())
    }
    .or_else(|| backup.metadata.creation_timestamp.clone())?;
    let span = jiff::SignedDuration::try_from(period).ok()?;
    base.0.checked_add(span).ok().map(Time)
}

pub(super) fn has_finalizer(backup: &Backup) -> bool {
    backup
        .metadata
        .finalizers
        .iter()
        .flatten()
        .any(|f| f == well_known::FINALIZER)
}

/// The Backup as the owner of its actions.
pub fn owner(backup: &Backup) -> pb::ObjectRef {
    action::owner("Backup", &backup.metadata)
}
