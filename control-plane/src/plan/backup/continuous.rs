//! Continuous backups (ARCHITECTURE.md §K2.9, §K6.3): a Backup whose ActionSet is Continuous runs
//! its backupData as a long-running archiver, a StatefulSet of one replica supervised by the
//! agent of the target pod's node, for as long as its schedule entry is enabled.
//!
//! # Expected flow
//! 1. Only a BackupSchedule creates one (label `backup-schedule`); New resolves it as any Backup
//!    and records the backupData action as a `StatefulSet` action.
//! 2. Running: the archiver action is dispatched (idempotent by id) every reconcile; the agent's
//!    progress carries the backup info file as it changes, which is merged into the status
//!    (`timeRange`, `totalSize`, `extras`) and the action's entry. The Backup has no
//!    `expiration` while it runs.
//! 3. When the schedule entry is disabled, the schedule or the policy is gone: the archiver is
//!    cancelled (the agent deletes its StatefulSet), every action is Completed with
//!    `availableReplicas: 0`, and the Backup is Completed with its duration and expiration.
//! 4. A Completed continuous Backup whose entry is enabled again is reopened (Completed →
//!    Running): a new run of the archiver starts and the time range goes on.
//!
//! # Guarantees
//! - An archiver's action id is derived from its entry's name, pod and the start of its run
//!   ([`archiver_id`]), so a reopened Backup runs a new action and never meets the ended one.
//! - A lost node does not end the archiving: the action is re-assigned when its agent is back
//!   (the time range shows any gap); only an archiver the agent reports ended fails the Backup.
//!
//! # Departures from KubeBlocks
//! - KubeBlocks reopens a Completed continuous Backup from the BackupSchedule controller; Cairn's
//!   Backup planner does it when it sees the entry enabled (the Backup is looked at again every
//!   `continuous_recheck`).

use cairn_api::actionset::BackupType;
use cairn_api::backup::{
    ActionPhase, ActionStatus, ActionType, ArchiveGap, BackupPhase, BackupStatus,
};
use cairn_api::backup_schedule::{BackupSchedule, SchedulePolicy};
use cairn_api::parse::{cron, restore_time};
use cairn_api::well_known;
use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetSpec};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{EnvVar, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, Time};

use super::actions::{self, PlannedAction};
use super::pods::{Outcome, Walk, status_entry};
use super::{Observed, backup_info, elapsed, expiration, owner};
use crate::plan::action::{ActionKind, InfoFile, Step, failure_reason, step, to_wire};
use crate::plan::backup_repo::conditions;
use crate::plan::env::{merge, var};
use crate::plan::ids::action_id;
use crate::plan::intent::{Intent, Plan};
use crate::plan::time::go_duration_text;
use cairn_api::well_known::conditions::backup::{
    CONDITION_ARCHIVE_GAP, CONDITION_ARCHIVE_STALLED, CONDITION_ARCHIVER_RESTARTING,
    REASON_ADVANCING, REASON_CRASHING, REASON_NEW_WINDOW, REASON_NO_GAP, REASON_NOT_ADVANCING,
    REASON_STABLE,
};

/// Restarts from which an archiver counts as crashing repeatedly.
pub const CRASHING_RESTARTS: u32 = 3;
/// Archive intervals `timeRange.end` may stay still before the archiving counts as stalled.
pub const STALL_INTERVALS: u64 = 3;

/// Whether the Backup is continuous: its ActionSet says so, or (the ActionSet gone) its label.
pub fn is_continuous(o: &Observed) -> bool {
    match &o.actionset {
        Some(actionset) => actionset.spec.backup_type == BackupType::Continuous,
        None => {
            o.backup
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(well_known::label::BACKUP_TYPE))
                .map(String::as_str)
                == Some("Continuous")
        }
    }
}

/// `DP_ARCHIVE_INTERVAL` for a cron expression (§7.3): always with the `s` suffix; an expression
/// that does not parse gets KubeBlocks' default, `60s`.
pub fn archive_interval(cron_expression: &str) -> String {
    let seconds = cron::parse(cron_expression)
        .map(|c| c.archive_interval_seconds())
        .unwrap_or(60);
    format!("{seconds}s")
}

/// `DP_TTL_SECONDS`: the retention in whole seconds, when there is one.
pub fn ttl_seconds(retention: &str) -> Option<u64> {
    crate::plan::time::retention(retention)
        .ok()
        .flatten()
        .map(|d| d.as_secs())
        .filter(|s| *s > 0)
}

/// The schedule's enabled entry for `method`, if there is one.
pub fn enabled_entry<'a>(schedule: &'a BackupSchedule, method: &str) -> Option<&'a SchedulePolicy> {
    schedule
        .spec
        .schedules
        .iter()
        .find(|e| e.backup_method == method && e.enabled == Some(true))
}

/// The name of the schedule that created the Backup (its `backup-schedule` label).
pub fn schedule_label(o: &Observed) -> Option<&str> {
    o.backup
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(well_known::label::BACKUP_SCHEDULE))
        .map(String::as_str)
        .filter(|s| !s.is_empty())
}

/// Why the archiving must end now (§1.2 Running step 2), if it must.
pub(super) fn end_reason(o: &Observed) -> Option<String> {
    let policy = &o.backup.spec.backup_policy_name;
    if o.policy.is_none() {
        return Some(format!("backup policy {policy} no longer exists"));
    }
    let name = schedule_label(o).unwrap_or_default();
    let Some(schedule) = &o.schedule else {
        return Some(format!("backup schedule {name} no longer exists"));
    };
    if schedule.metadata.deletion_timestamp.is_some() {
        return Some(format!("backup schedule {name} is being deleted"));
    }
    let method = &o.backup.spec.backup_method;
    if enabled_entry(schedule, method).is_none() {
        return Some(format!(
            "backup schedule {name} has no enabled schedule for method {method}"
        ));
    }
    None
}

/// The env a continuous archiver adds (§2.10): `DP_ARCHIVE_INTERVAL` and, with a retention,
/// `DP_TTL_SECONDS`; nothing when the schedule entry is not found.
pub(super) fn archiver_env(o: &Observed) -> Vec<EnvVar> {
    let Some(entry) = o
        .schedule
        .as_ref()
        .and_then(|s| enabled_entry(s, &o.backup.spec.backup_method))
    else {
        return Vec::new();
    };
    let mut env = vec![var(
        "DP_ARCHIVE_INTERVAL",
        archive_interval(&entry.cron_expression),
    )];
    let retention = o
        .backup
        .spec
        .retention_period
        .as_deref()
        .unwrap_or_default();
    if let Some(ttl) = ttl_seconds(retention) {
        env.push(var("DP_TTL_SECONDS", ttl.to_string()));
    }
    env
}

/// The StatefulSet's name (§2.10): the Backup's, or `dp-backup-<target>-<backup>` when the target
/// is named; at most 52 characters (room for the revision hash label), without a trailing `-`.
pub fn statefulset_name(backup: &str, target: &str) -> String {
    let name = if target.is_empty() {
        backup.to_string()
    } else {
        format!("dp-backup-{target}-{backup}")
    };
    let cut: String = name.chars().take(52).collect();
    cut.strip_suffix('-').map(str::to_string).unwrap_or(cut)
}

/// The digest of an archiver's StatefulSet as the planner built it (its
/// [`well_known::annotation::ARCHIVER_SPEC_DIGEST`] left out): BLAKE3 of its JSON, 32 hex
/// characters. Every field that reaches the archiver's pod (env such as `DP_TTL_SECONDS`,
/// image, command, volumes) is in it, and nothing that changes between reconciles.
pub fn spec_digest(set: &StatefulSet) -> String {
    let mut plain = set.clone();
    if let Some(annotations) = plain.metadata.annotations.as_mut() {
        annotations.remove(well_known::annotation::ARCHIVER_SPEC_DIGEST);
        if annotations.is_empty() {
            plain.metadata.annotations = None;
        }
    }
    let json = serde_json::to_vec(&plain).unwrap_or_default();
    blake3::hash(&json).to_hex()[..32].to_string()
}

/// The archiver's StatefulSet, from the backupData Job the planner built (§2.10): the same
/// labels (also its selector), owner and pod template, with `restartPolicy: Always`, one
/// replica and the archiver env appended to the first container; annotated with its
/// [`spec_digest`] (ARCHITECTURE.md §K2.9: a changed spec restarts the archiver).
pub fn statefulset(job: &Job, name: &str, extra_env: &[EnvVar]) -> StatefulSet {
    let mut set = plain_statefulset(job, name, extra_env);
    let digest = spec_digest(&set);
    set.metadata
        .annotations
        .get_or_insert_with(Default::default)
        .insert(well_known::annotation::ARCHIVER_SPEC_DIGEST.into(), digest);
    set
}

fn plain_statefulset(job: &Job, name: &str, extra_env: &[EnvVar]) -> StatefulSet {
    let labels = job.metadata.labels.clone().unwrap_or_default();
    let mut template = job.spec.clone().unwrap_or_default().template;
    if let Some(pod) = template.spec.as_mut() {
        pod.restart_policy = Some("Always".into());
        if let Some(container) = pod.containers.first_mut() {
            merge(
                container.env.get_or_insert_with(Vec::new),
                extra_env.to_vec(),
            );
        }
    }
    template
        .metadata
        .get_or_insert_with(ObjectMeta::default)
        .labels = Some(labels.clone());
    StatefulSet {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: job.metadata.namespace.clone(),
            labels: Some(labels.clone()),
            owner_references: job.metadata.owner_references.clone(),
            ..Default::default()
        },
        spec: Some(StatefulSetSpec {
            replicas: Some(1),
            selector: LabelSelector {
                match_labels: Some(labels),
                match_expressions: None,
            },
            template,
            ..Default::default()
        }),
        status: None,
    }
}

/// How long `timeRange.end` may stay still: the setting, else [`STALL_INTERVALS`] archive
/// intervals (`DP_ARCHIVE_INTERVAL`, 60 s when unknown).
pub fn stall_threshold(o: &Observed, archiver_env: &[EnvVar]) -> std::time::Duration {
    if let Some(after) = o.settings.continuous_stall_after {
        return after;
    }
    let interval = archiver_env
        .iter()
        .find(|e| e.name == "DP_ARCHIVE_INTERVAL")
        .and_then(|e| e.value.as_deref())
        .and_then(|v| v.trim_end_matches('s').parse::<u64>().ok())
        .unwrap_or(60);
    std::time::Duration::from_secs(interval.saturating_mul(STALL_INTERVALS))
}

/// The id of an archiver run: its entry's name and pod, and the second its run started.
pub fn archiver_id(owner_uid: &str, entry: &ActionStatus) -> String {
    let start = entry
        .start_timestamp
        .as_ref()
        .map(|t| t.0.as_second())
        .unwrap_or_default();
    action_id(
        owner_uid,
        &format!("{}@{start}", entry.name.as_deref().unwrap_or_default()),
        entry.target_pod_name.as_deref().unwrap_or_default(),
    )
}

/// The id of any action entry of a Backup (an archiver's has its run in it).
pub fn entry_id(owner_uid: &str, entry: &ActionStatus) -> String {
    if entry.action_type == Some(ActionType::StatefulSet) {
        archiver_id(owner_uid, entry)
    } else {
        action_id(
            owner_uid,
            entry.name.as_deref().unwrap_or_default(),
            entry.target_pod_name.as_deref().unwrap_or_default(),
        )
    }
}

fn node_of(o: &Observed, pod: &str) -> Option<String> {
    o.pods
        .iter()
        .find(|p| p.metadata.name.as_deref() == Some(pod))
        .and_then(|p| p.spec.as_ref()?.node_name.clone())
        .filter(|n| !n.is_empty())
}

impl Walk<'_> {
    /// One reconcile of a pod's archiver: started (or run again after a reopen), dispatched
    /// again (idempotent), and its info file, as the agent last read it, merged into the status.
    pub(super) fn archive(&mut self, planned: &PlannedAction, pod: &Pod) -> Outcome {
        let now = self.now;
        let pod_name = pod.metadata.name.clone().unwrap_or_default();
        let node = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .unwrap_or_default();
        let uid = self.o.backup.metadata.uid.clone().unwrap_or_default();
        let entry = status_entry(
            &mut self.status,
            &planned.name,
            &pod_name,
            ActionType::StatefulSet,
        );
        if entry.phase == Some(ActionPhase::Failed) {
            return Outcome::Failed;
        }
        if entry.phase != Some(ActionPhase::Running) {
            entry.phase = Some(ActionPhase::Running);
            entry.start_timestamp = Some(Time(now));
            entry.completion_timestamp = None;
            entry.failure_reason = None;
            entry.available_replicas = None;
        }
        let id = archiver_id(&uid, entry);
        let started = entry.start_timestamp.as_ref().map_or(now, |t| t.0);
        let mut info = None;
        let mut restarts = (0, None);
        match step(&self.o.agents, &id, Some(&node), now) {
            Step::Running(report) => {
                info = report.backup_info_json.clone();
                restarts = (report.restarts, report.last_failure.clone());
                if let Some(json) = &info {
                    backup_info::record_in_entry(entry, json);
                }
                entry.available_replicas = Some(1);
            }
            Step::Succeeded(report) | Step::Failed(report) => {
                // The agent never ends an archiver by itself unless it cannot run it.
                let reason = failure_reason(report, "the archiver ended while it should run");
                entry.phase = Some(ActionPhase::Failed);
                entry.completion_timestamp = Some(Time(now));
                entry.failure_reason = Some(reason.clone());
                entry.available_replicas = Some(0);
                self.intents.push(Intent::Acknowledge { action_id: id });
                self.intents.push(Intent::warning(
                    "ActionFailed",
                    format!(
                        "archiver {} on pod {pod_name} ended: {reason}",
                        planned.name
                    ),
                ));
                return Outcome::Failed;
            }
            // A lost node keeps its archiver: it is re-assigned when the agent is back.
            Step::NodeLost { .. } | Step::NotDispatched => {}
        }
        let mut new_gap = None;
        if let Some(json) = info {
            match merge_archive_info(&mut self.status, &json) {
                Ok(gap) => new_gap = gap,
                Err(reason) => self
                    .intents
                    .push(Intent::warning("InvalidBackupInfo", reason)),
            }
        }
        self.watch_archiving(started, restarts);
        self.watch_gaps(new_gap);
        let action = self.archiver_action(planned, &id, pod);
        self.intents.push(Intent::Dispatch {
            node,
            action: Box::new(action),
        });
        self.counted.push(id);
        Outcome::Running
    }

    /// The conditions a user watches (Cairn extension): `ArchiveStalled` when `timeRange.end`
    /// (or, before the first one, the run's start) is older than the stall threshold, and
    /// `ArchiverRestarting` when the archiver restarted [`CRASHING_RESTARTS`] times or more,
    /// with the agent's last failure (its reason and last log lines). Each turning True is a
    /// Warning event.
    fn watch_archiving(
        &mut self,
        started: Timestamp,
        (restarts, last_failure): (u32, Option<String>),
    ) {
        let now = self.now;
        let threshold = stall_threshold(self.o, &self.request.archiver_env);
        let since = self
            .status
            .time_range
            .as_ref()
            .and_then(|r| r.end.as_ref())
            .map_or(started, |t| t.0);
        let still = elapsed(since, now);
        let generation = self.o.backup.metadata.generation;
        let conditions = self.status.conditions.get_or_insert_with(Vec::new);
        let stalled = still > threshold;
        let update = if stalled {
            conditions::Update {
                type_: CONDITION_ARCHIVE_STALLED,
                status: conditions::Status::True,
                reason: REASON_NOT_ADVANCING,
                message: format!(
                    "timeRange.end has not advanced since {since} (for {}, more than {})",
                    go_duration_text(still),
                    go_duration_text(threshold)
                ),
            }
        } else {
            conditions::Update {
                type_: CONDITION_ARCHIVE_STALLED,
                status: conditions::Status::False,
                reason: REASON_ADVANCING,
                message: format!(
                    "timeRange.end advances (a stall is reported after {})",
                    go_duration_text(threshold)
                ),
            }
        };
        let message = update.message.clone();
        if conditions::set(conditions, update, generation, now) && stalled {
            self.intents
                .push(Intent::warning("ArchiveStalled", message));
        }
        let crashing = restarts >= CRASHING_RESTARTS;
        let known = conditions::find(conditions, CONDITION_ARCHIVER_RESTARTING).is_some();
        if !crashing && !known {
            return;
        }
        let update = if crashing {
            conditions::Update {
                type_: CONDITION_ARCHIVER_RESTARTING,
                status: conditions::Status::True,
                reason: REASON_CRASHING,
                message: format!(
                    "the archiver restarted {restarts} times; last: {}",
                    last_failure.as_deref().unwrap_or("no reason reported")
                ),
            }
        } else {
            conditions::Update {
                type_: CONDITION_ARCHIVER_RESTARTING,
                status: conditions::Status::False,
                reason: REASON_STABLE,
                message: "the archiver runs".into(),
            }
        };
        let message = update.message.clone();
        let before =
            conditions::find(conditions, CONDITION_ARCHIVER_RESTARTING).map(|c| c.message.clone());
        conditions::set(conditions, update, generation, now);
        if crashing && before.as_deref() != Some(message.as_str()) {
            self.intents
                .push(Intent::warning("ArchiverRestarting", message));
        }
    }

    /// The `ArchiveGap` condition (Cairn extension): True while `status.gaps` has a gap, with
    /// every gap in its message; a gap found now is a Warning event. Gaps trimmed away by
    /// retention turn it False.
    fn watch_gaps(&mut self, new_gap: Option<ArchiveGap>) {
        let now = self.now;
        let generation = self.o.backup.metadata.generation;
        let gaps = self.status.gaps.clone().unwrap_or_default();
        let conditions = self.status.conditions.get_or_insert_with(Vec::new);
        if gaps.is_empty() && conditions::find(conditions, CONDITION_ARCHIVE_GAP).is_none() {
            return;
        }
        let update = if gaps.is_empty() {
            conditions::Update {
                type_: CONDITION_ARCHIVE_GAP,
                status: conditions::Status::False,
                reason: REASON_NO_GAP,
                message: "the archive has no gap inside timeRange".into(),
            }
        } else {
            conditions::Update {
                type_: CONDITION_ARCHIVE_GAP,
                status: conditions::Status::True,
                reason: REASON_NEW_WINDOW,
                message: format!(
                    "the archive has {} gap(s) inside timeRange, times strictly inside cannot be restored: {}",
                    gaps.len(),
                    gaps.iter().map(gap_text).collect::<Vec<_>>().join(", ")
                ),
            }
        };
        conditions::set(conditions, update, generation, now);
        if let Some(gap) = new_gap {
            self.intents.push(Intent::warning(
                "ArchiveGap",
                format!(
                    "the archive has a gap {}: the archiver started a new window after the end it had reached (WAL or logs of that time were lost while it was down); times strictly inside cannot be restored",
                    gap_text(&gap)
                ),
            ));
        }
    }

    fn archiver_action(
        &self,
        planned: &PlannedAction,
        id: &str,
        pod: &Pod,
    ) -> cairn_proto::agent::v1::Action {
        let backup = &self.o.backup;
        let job = match &planned.work {
            crate::plan::action::Workload::Job(job) => (**job).clone(),
            crate::plan::action::Workload::Exec { .. }
            | crate::plan::action::Workload::VolumeSnapshot { .. }
            | crate::plan::action::Workload::VolumeMove(_) => Job::default(),
        };
        let target = self
            .request
            .targets
            .iter()
            .find(|t| t.pods.iter().any(|p| p.metadata.name == pod.metadata.name))
            .map(|t| t.name().to_string())
            .unwrap_or_default();
        let name = statefulset_name(backup.metadata.name.as_deref().unwrap_or_default(), &target);
        let set = statefulset(&job, &name, &self.request.archiver_env);
        let kind = ActionKind::Archiver {
            statefulset: Box::new(set),
            storage: super::pods::grant(self.request, backup, true),
            info: InfoFile {
                volume: actions::MANAGER_VOLUME.into(),
                file: actions::INFO_FILE.into(),
                collect: true,
            },
        };
        to_wire(id, &planned.name, owner(backup), Some(pod), kind)
    }
}

/// `from A to B`, for messages.
pub fn gap_text(gap: &ArchiveGap) -> String {
    format!(
        "from {} to {}",
        restore_time::format(gap.start.0),
        restore_time::format(gap.end.0)
    )
}

/// Merges an archiver's backup info file into the status, keeping the window's history
/// (ARCHITECTURE.md §K2.9, "Gaps"); returns the gap found now, if any.
/// - A reported `timeRange.start` later than the recorded `timeRange.end`: the archiver started
///   a new window after the end it had reached, so what lies between is not in the archive. It
///   is recorded in `status.gaps`, and `timeRange.start` stays where it was (what was archived
///   before the gap is still restorable).
/// - A reported start equal to the end of a recorded gap: the archiver's window since that gap;
///   the recorded start stays.
/// - Any other reported start later than the recorded one: the archive was trimmed (retention),
///   the start moves to it and the gaps before it are dropped (one it falls inside moves the
///   start to that gap's end).
pub fn merge_archive_info(
    status: &mut BackupStatus,
    info: &str,
) -> Result<Option<ArchiveGap>, String> {
    let recorded = status.time_range.clone();
    let mut gaps = status.gaps.clone().unwrap_or_default();
    backup_info::merge(status, info)?;
    let old_start = recorded.as_ref().and_then(|r| r.start.clone());
    let old_end = recorded.as_ref().and_then(|r| r.end.clone());
    let reported = status.time_range.as_ref().and_then(|r| r.start.clone());
    let mut new_gap = None;
    let mut start = reported.clone();
    if let (Some(old_start), Some(reported)) = (&old_start, &reported)
        && reported.0 > old_start.0
    {
        match &old_end {
            Some(old_end) if reported.0 > old_end.0 => {
                let gap = ArchiveGap {
                    start: old_end.clone(),
                    end: reported.clone(),
                };
                gaps.push(gap.clone());
                new_gap = Some(gap);
                start = Some(old_start.clone());
            }
            _ if gaps.iter().any(|g| g.end == *reported) => start = Some(old_start.clone()),
            _ => {
                let mut from = reported.clone();
                gaps.retain(|g| {
                    if g.start.0 >= reported.0 {
                        return true;
                    }
                    if g.end.0 > from.0 {
                        from = g.end.clone();
                    }
                    false
                });
                start = Some(from);
            }
        }
    }
    if let Some(range) = status.time_range.as_mut() {
        range.start = start;
    }
    status.gaps = (!gaps.is_empty()).then_some(gaps);
    Ok(new_gap)
}

/// Ends the archiving (§1.2 Running step 2): the archivers are cancelled, every action is
/// Completed with no replica, and the Backup is Completed.
pub(super) fn complete(
    o: &Observed,
    mut status: BackupStatus,
    reason: String,
    now: Timestamp,
) -> Plan<BackupStatus> {
    let uid = o.backup.metadata.uid.clone().unwrap_or_default();
    let mut intents = Vec::new();
    for entry in status.actions.iter_mut().flatten() {
        if matches!(
            entry.phase,
            Some(ActionPhase::Completed | ActionPhase::Failed)
        ) {
            continue;
        }
        if entry.action_type == Some(ActionType::StatefulSet)
            && entry.phase == Some(ActionPhase::Running)
            && let Some(node) = node_of(o, entry.target_pod_name.as_deref().unwrap_or_default())
        {
            intents.push(Intent::Cancel {
                node,
                action_id: archiver_id(&uid, entry),
                reason: reason.clone(),
            });
        }
        entry.phase = Some(ActionPhase::Completed);
        entry.completion_timestamp = Some(Time(now));
        entry.available_replicas = Some(0);
    }
    status.phase = Some(BackupPhase::Completed);
    status.completion_timestamp = Some(Time(now));
    if let Some(start) = &status.start_timestamp {
        status.duration = Some(crate::plan::time::go_duration_text(elapsed(start.0, now)));
    }
    status.expiration = expiration(&o.backup, &status);
    status.progress = None;
    intents.push(Intent::normal(
        "ContinuousBackupStopped",
        format!("continuous backup stopped: {reason}"),
    ));
    Plan {
        status: Some(status),
        intents,
        requeue: Some(o.settings.continuous_recheck),
    }
}

/// Reopens a Completed continuous Backup whose entry is enabled again (§6.3): Running, no
/// completion, duration or expiration, and its archivers to start a new run. `None`: not in
/// this second (look again in one).
pub(super) fn reopen(mut status: BackupStatus, now: Timestamp) -> Option<BackupStatus> {
    // A new run needs a start in a later second than the last one (its id has the second).
    let same_second = status.actions.iter().flatten().any(|a| {
        a.action_type == Some(ActionType::StatefulSet)
            && a.start_timestamp.as_ref().map(|t| t.0.as_second()) == Some(now.as_second())
    });
    if same_second {
        return None;
    }
    status.phase = Some(BackupPhase::Running);
    status.failure_reason = None;
    status.completion_timestamp = None;
    status.duration = None;
    status.expiration = None;
    for entry in status.actions.iter_mut().flatten() {
        if entry.action_type == Some(ActionType::StatefulSet) {
            entry.phase = Some(ActionPhase::New);
            entry.completion_timestamp = None;
            entry.failure_reason = None;
            entry.available_replicas = None;
        }
    }
    Some(status)
}

/// Completed continuous Backup: archivers still reported running (a Cancel lost to a restart)
/// are cancelled again.
pub(super) fn cancel_leftovers(o: &Observed, status: &BackupStatus, now: Timestamp) -> Vec<Intent> {
    let uid = o.backup.metadata.uid.clone().unwrap_or_default();
    let mut intents = Vec::new();
    for entry in status.actions.iter().flatten() {
        if entry.action_type != Some(ActionType::StatefulSet) {
            continue;
        }
        let id = archiver_id(&uid, entry);
        let Some(node) = node_of(o, entry.target_pod_name.as_deref().unwrap_or_default()) else {
            continue;
        };
        if matches!(step(&o.agents, &id, Some(&node), now), Step::Running(_)) {
            intents.push(Intent::Cancel {
                node,
                action_id: id,
                reason: "the continuous backup is completed".into(),
            });
        }
    }
    intents
}

/// What a Failed continuous Backup whose schedule entry is still enabled does next
/// (ARCHITECTURE.md §K2.9, KubeBlocks' "Failed phase": continuous backups are re-driven).
#[derive(Debug)]
pub(super) enum Redrive {
    /// It never started (no `startTimestamp`): resolved again from New.
    New(BackupStatus),
    /// It started: Running again, its archivers in a new run.
    Running(BackupStatus),
    /// Not yet: looked at again after this long.
    Later(std::time::Duration),
}

/// Re-drives a Failed continuous Backup, no sooner than `wait` after it failed (an archiver
/// that cannot run is retried at that pace, not in a tight loop): one that never started is
/// New again; one that started is reopened (as a re-enabled one, §6.3) with every failed action
/// to run again and the failure cleared.
pub(super) fn redrive(status: BackupStatus, now: Timestamp, wait: std::time::Duration) -> Redrive {
    if let Some(failed) = &status.completion_timestamp {
        let since = elapsed(failed.0, now);
        if since < wait {
            return Redrive::Later(wait - since);
        }
    }
    if status.start_timestamp.is_none() {
        let mut status = status;
        status.phase = Some(BackupPhase::New);
        status.failure_reason = None;
        status.completion_timestamp = None;
        status.duration = None;
        status.expiration = None;
        return Redrive::New(status);
    }
    match reopen(status, now) {
        Some(mut status) => {
            for entry in status.actions.iter_mut().flatten() {
                if entry.phase == Some(ActionPhase::Failed) {
                    entry.phase = Some(ActionPhase::New);
                    entry.completion_timestamp = None;
                    entry.failure_reason = None;
                }
            }
            Redrive::Running(status)
        }
        None => Redrive::Later(std::time::Duration::from_secs(1)),
    }
}
