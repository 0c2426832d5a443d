//! What happens when a BackupSchedule exists (ARCHITECTURE.md §K1.4, §K6.1, §K6.2, §K6.4): the
//! control plane itself creates each scheduled Backup at its cron time; there are no CronJobs.
//!
//! # Expected flow
//! 1. The schedule gets the finalizer and the `backup-policy` label. Its policy must exist, its
//!    schedule names be unique, its methods be in the policy and its parameters fit the methods'
//!    ActionSets (KubeBlocks' messages); otherwise `phase: Failed` + `failureReason` and a Warning
//!    event `HandleBackupScheduleFailed`. Else `phase: Available` and `observedGeneration`.
//! 2. Per enabled entry, the run due now is the latest cron fire time `t <= now` after the entry's
//!    `lastScheduleTime` (or the schedule's creation): one run, never a burst after downtime.
//!    Its Backup `<cluster or schedule>-<entry>-<t as %Y%m%d%H%M%S>` is created with the labels
//!    `autobackup` and `backup-schedule`, the method, `retentionPeriod` (default `7d`) and the
//!    parameters; it is not owned by the schedule, so deleting the schedule keeps its backups.
//! 3. The run is skipped (and says so in the entry's `failureReason`) when it is later than
//!    `startingDeadlineMinutes`, or while an earlier backup of the entry still runs
//!    (concurrencyPolicy Forbid); a skipped run stays due, as with a CronJob, until the next fire
//!    time replaces it.
//! 4. The planner requeues for the next fire time of any enabled entry (at most `max_requeue`).
//!
//! # Guarantees
//! - Crash-safe without duplicates: the Backup's name is derived from `t`, creation is
//!   create-if-absent, and `lastScheduleTime = t` is recorded only once that Backup is observed
//!   (the shell writes the status before it creates, so recording first could lose a run).
//!   A Backup deleted before the next reconcile observed it is created again.
//!
//! # Departures from KubeBlocks (where the API reference is followed instead)
//! - `status.schedules` is written (ARCHITECTURE.md §K8 S6): per entry `phase` (`Running`, or `Failed` for a
//!   method Cairn cannot back up yet), `lastScheduleTime`, `lastSuccessfulTime` (newest Completed
//!   backup of the entry) and `failureReason` (a skipped run, or the failure of the entry's newest
//!   backup). Disabled entries keep their times and have no phase.
//! - A Continuous method's entry creates and keeps one Backup named as KubeBlocks names it
//!   ([`continuous_backup_name`], §6.3) with the labels `backup-type=Continuous`, `autobackup`,
//!   `backup-schedule`, managed-by and the target's selector; the Backup planner runs its archiver
//!   while the entry is enabled, completes it when it is disabled and reopens it when it is
//!   enabled again (ARCHITECTURE.md §K2.9). Its retention is the entry's at creation.
//! - Snapshot methods create snapshot Backups like any other entry. Incremental and
//!   Differential entries create Backups without a parent, which find theirs (the newest of the
//!   chain) when they start.
//! - `startingDeadlineMinutes: 0` is treated as unset: a deadline of zero would skip every run by
//!   the reconcile's own latency.

#[cfg(test)]
#[path = "schedule_tests.rs"]
mod tests;

use std::collections::BTreeMap;
use std::time::Duration;

use cairn_api::actionset::{ActionSet, BackupType};
use cairn_api::backup::{Backup, BackupPhase, BackupSpec};
use cairn_api::backup_policy::BackupPolicy;
use cairn_api::backup_schedule::{
    BackupSchedule, BackupSchedulePhase, BackupScheduleStatus, SchedulePhase, SchedulePolicy,
    ScheduleStatus,
};
use cairn_api::parse::cron;
use cairn_api::well_known;
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

use super::intent::{Intent, Plan};

const DEFAULT_RETENTION: &str = "7d";
const FAILED_EVENT: &str = "HandleBackupScheduleFailed";

/// Knobs of the BackupSchedule planner.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// The longest time between two looks at a schedule.
    pub max_requeue: Duration,
    /// How soon to look again after asking for a Backup (to record it).
    pub create_requeue: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            max_requeue: Duration::from_secs(3600),
            create_requeue: Duration::from_secs(2),
        }
    }
}

/// Everything the BackupSchedule planner reads.
#[derive(Debug, Clone)]
pub struct Observed {
    pub schedule: BackupSchedule,
    /// The BackupPolicy named by the schedule, if it exists.
    pub policy: Option<BackupPolicy>,
    /// The ActionSets named by the policy's methods (those that exist).
    pub actionsets: Vec<ActionSet>,
    /// Backups of the schedule's namespace labelled `backup-schedule=<schedule>`.
    pub backups: Vec<Backup>,
    pub settings: Settings,
}

/// Plans one reconcile of a BackupSchedule.
pub fn plan(o: &Observed, now: Timestamp) -> Plan<BackupScheduleStatus> {
    let schedule = &o.schedule;
    let has_finalizer = schedule
        .metadata
        .finalizers
        .iter()
        .flatten()
        .any(|f| f == well_known::FINALIZER);
    if schedule.metadata.deletion_timestamp.is_some() {
        // Created Backups are not owned by the schedule and stay.
        return Plan {
            status: None,
            intents: if has_finalizer {
                vec![Intent::RemoveFinalizer]
            } else {
                Vec::new()
            },
            requeue: None,
        };
    }
    let mut intents = Vec::new();
    if !has_finalizer {
        intents.push(Intent::AddFinalizer);
    }
    let policy_name = &schedule.spec.backup_policy_name;
    let labelled = schedule
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(well_known::label::BACKUP_POLICY));
    if labelled != Some(policy_name) {
        intents.push(Intent::PatchMeta {
            labels: BTreeMap::from([(
                well_known::label::BACKUP_POLICY.to_string(),
                Some(policy_name.clone()),
            )]),
            annotations: BTreeMap::new(),
        });
    }
    let mut status = schedule.status.clone().unwrap_or_default();
    let Some(policy) = &o.policy else {
        let reason =
            format!("backuppolicies.dataprotection.kubeblocks.io \"{policy_name}\" not found");
        return failed(o, status, reason, intents);
    };
    let problems = validate(o, policy);
    if !problems.is_empty() {
        return failed(o, status, problems.join("; "), intents);
    }
    status.phase = Some(BackupSchedulePhase::Available);
    status.observed_generation = schedule.metadata.generation;
    status.failure_reason = None;

    let prefix = name_prefix(schedule, policy);
    let previous = status.schedules.clone().unwrap_or_default();
    let mut entries = BTreeMap::new();
    let mut requeue = o.settings.max_requeue;
    for entry in &schedule.spec.schedules {
        let name = entry_name(entry);
        let mut entry_status = previous.get(&name).cloned().unwrap_or_default();
        let outcome = plan_entry(o, policy, entry, &name, &prefix, &mut entry_status, now);
        if let Some(intent) = outcome.event {
            intents.push(intent);
        }
        if let Some(patch) = outcome.patch {
            intents.push(patch);
        }
        if let Some(object) = outcome.create {
            intents.push(Intent::Create { object });
            requeue = requeue.min(o.settings.create_requeue);
        }
        if let Some(next) = outcome.next_fire {
            let wait = Duration::try_from(next.duration_since(now)).unwrap_or_default();
            requeue = requeue.min(wait.max(Duration::from_secs(1)));
        }
        entries.insert(name, entry_status);
    }
    status.schedules = (!entries.is_empty()).then_some(entries);
    Plan {
        status: Some(status),
        intents,
        requeue: Some(requeue),
    }
}

/// The schedule failed validation: phase Failed, the reason, and an event when it is new.
fn failed(
    o: &Observed,
    mut status: BackupScheduleStatus,
    reason: String,
    mut intents: Vec<Intent>,
) -> Plan<BackupScheduleStatus> {
    if status.failure_reason.as_deref() != Some(reason.as_str())
        || status.phase != Some(BackupSchedulePhase::Failed)
    {
        intents.push(Intent::warning(FAILED_EVENT, reason.clone()));
    }
    status.phase = Some(BackupSchedulePhase::Failed);
    status.failure_reason = Some(reason);
    Plan {
        status: Some(status),
        intents,
        requeue: Some(o.settings.max_requeue),
    }
}

/// KubeBlocks' checks (§1.4) plus cron and retention syntax, as messages.
fn validate(o: &Observed, policy: &BackupPolicy) -> Vec<String> {
    let schedule = &o.schedule;
    let mut problems: Vec<String> = cairn_api::validate::backup_schedule(schedule)
        .into_iter()
        .chain(cairn_api::validate::schedule_against_policy(
            schedule, policy,
        ))
        .map(|p| p.message)
        .collect();
    for (i, entry) in schedule.spec.schedules.iter().enumerate() {
        let params = entry.parameters.clone().unwrap_or_default();
        if params.is_empty() {
            continue;
        }
        let prefix = format!(
            "fails to validate parameters of backupMethod {}: ",
            entry.backup_method
        );
        let Some(actionset) = actionset_of(o, policy, &entry.backup_method) else {
            problems.push(format!("{prefix}actionSet is empty"));
            continue;
        };
        let declared = actionset
            .spec
            .backup
            .as_ref()
            .and_then(|b| b.with_parameters.clone())
            .unwrap_or_default();
        let schema = actionset
            .spec
            .parameters_schema
            .as_ref()
            .and_then(|s| s.open_api_v3_schema.as_ref());
        problems.extend(
            cairn_api::validate::parameters(
                &params,
                &declared,
                schema,
                actionset.metadata.name.as_deref().unwrap_or_default(),
                &format!("spec.schedules[{i}].parameters"),
                &prefix,
            )
            .into_iter()
            .map(|p| p.message),
        );
    }
    problems
}

fn actionset_of<'a>(o: &'a Observed, policy: &BackupPolicy, method: &str) -> Option<&'a ActionSet> {
    actionset_in(&o.actionsets, policy, method)
}

fn actionset_in<'a>(
    actionsets: &'a [ActionSet],
    policy: &BackupPolicy,
    method: &str,
) -> Option<&'a ActionSet> {
    let name = policy
        .spec
        .backup_methods
        .iter()
        .find(|m| m.name == method)?
        .action_set_name
        .clone()?;
    actionsets
        .iter()
        .find(|a| a.metadata.name.as_deref() == Some(name.as_str()))
}

/// An entry's name: its `name`, else its method.
pub fn entry_name(entry: &SchedulePolicy) -> String {
    entry
        .name
        .clone()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| entry.backup_method.clone())
}

/// The cluster (the policy target's `app.kubernetes.io/instance`), else the schedule's name.
fn name_prefix(schedule: &BackupSchedule, policy: &BackupPolicy) -> String {
    policy
        .spec
        .target
        .as_ref()
        .or_else(|| policy.spec.targets.as_ref().and_then(|t| t.first()))
        .and_then(|t| t.pod_selector.as_ref())
        .and_then(|s| s.label_selector.match_labels.as_ref())
        .and_then(|l| l.get(well_known::label::INSTANCE))
        .filter(|c| !c.is_empty())
        .cloned()
        .unwrap_or_else(|| schedule.metadata.name.clone().unwrap_or_default())
}

/// The name of the Backup an entry creates for fire time `t`.
pub fn backup_name(prefix: &str, entry: &str, t: Timestamp) -> String {
    format!("{prefix}-{entry}-{}", t.strftime("%Y%m%d%H%M%S"))
}

/// The fire time encoded in the name of one of the entry's Backups.
fn fire_time_of(backup: &Backup, prefix: &str, entry: &str) -> Option<String> {
    let name = backup.metadata.name.as_deref()?;
    let stamp = name.strip_prefix(&format!("{prefix}-{entry}-"))?;
    (stamp.len() == 14 && stamp.bytes().all(|b| b.is_ascii_digit())).then(|| stamp.to_string())
}

/// What one entry asks for.
#[derive(Default)]
struct EntryOutcome {
    create: Option<serde_json::Value>,
    /// A change to an existing Backup (a continuous one's retention, §6.3).
    patch: Option<Intent>,
    event: Option<Intent>,
    next_fire: Option<Timestamp>,
}

fn plan_entry(
    o: &Observed,
    policy: &BackupPolicy,
    entry: &SchedulePolicy,
    name: &str,
    prefix: &str,
    status: &mut ScheduleStatus,
    now: Timestamp,
) -> EntryOutcome {
    let schedule_name = o.schedule.metadata.name.clone().unwrap_or_default();
    let mut own: Vec<(String, &Backup)> = o
        .backups
        .iter()
        .filter(|b| {
            b.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(well_known::label::BACKUP_SCHEDULE))
                == Some(&schedule_name)
        })
        .filter_map(|b| fire_time_of(b, prefix, name).map(|t| (t, b)))
        .collect();
    own.sort_by(|a, b| a.0.cmp(&b.0));
    if let Some(done) = own
        .iter()
        .filter_map(|(_, b)| b.status.as_ref())
        .filter(|s| s.phase == Some(BackupPhase::Completed))
        .filter_map(|s| s.completion_timestamp.clone())
        .max_by_key(|t| t.0)
    {
        status.last_successful_time = Some(done);
    }
    let newest_failure = own.last().and_then(|(_, b)| {
        let s = b.status.as_ref()?;
        (s.phase == Some(BackupPhase::Failed)).then(|| {
            format!(
                "backup {} failed: {}",
                b.metadata.name.as_deref().unwrap_or_default(),
                s.failure_reason.as_deref().unwrap_or("no reason recorded")
            )
        })
    });
    if entry.enabled != Some(true) {
        status.phase = None;
        status.failure_reason = None;
        return EntryOutcome::default();
    }
    if is_continuous(o, policy, &entry.backup_method) {
        return continuous_entry(o, policy, entry, status);
    }
    if let Some(reason) = unsupported(o, policy, &entry.backup_method) {
        status.phase = Some(SchedulePhase::Failed);
        status.failure_reason = Some(reason);
        return EntryOutcome::default();
    }
    status.phase = Some(SchedulePhase::Running);
    let Ok(cron) = cron::parse(&entry.cron_expression) else {
        // Validation rejected it already; nothing to schedule.
        return EntryOutcome::default();
    };
    let mut outcome = EntryOutcome {
        next_fire: cron.next_after(now),
        ..Default::default()
    };
    let after = status
        .last_schedule_time
        .as_ref()
        .map(|t| t.0)
        .or_else(|| o.schedule.metadata.creation_timestamp.as_ref().map(|t| t.0))
        .unwrap_or(now);
    let mut skipped = None;
    if let Some(t) = latest_fire(&cron, after, now) {
        let backup = backup_name(prefix, name, t);
        let stamp = t.strftime("%Y%m%d%H%M%S").to_string();
        let deadline = o
            .schedule
            .spec
            .starting_deadline_minutes
            .filter(|m| *m > 0)
            .map(|m| SignedDuration::from_secs(m.saturating_mul(60)));
        let late = now.duration_since(t);
        let running = own.iter().find(|(_, b)| {
            b.metadata.deletion_timestamp.is_none()
                && matches!(
                    b.status.as_ref().and_then(|s| s.phase),
                    None | Some(BackupPhase::New | BackupPhase::InProgress | BackupPhase::Running)
                )
        });
        if own.iter().any(|(s, _)| *s == stamp) {
            status.last_schedule_time = Some(Time(t));
        } else if let Some(deadline) = deadline.filter(|d| late > *d) {
            skipped = Some(format!(
                "skipped the backup scheduled at {t}: it is {} late, past startingDeadlineMinutes ({} min)",
                crate::plan::time::go_duration_text(Duration::try_from(late).unwrap_or_default()),
                deadline.as_secs() / 60
            ));
        } else if let Some((_, running)) = running {
            skipped = Some(format!(
                "skipped the backup scheduled at {t}: backup {} of this schedule is still running",
                running.metadata.name.as_deref().unwrap_or_default()
            ));
        } else {
            outcome.create = Some(new_backup(o, entry, &backup));
            outcome.event = Some(Intent::normal(
                "BackupScheduled",
                format!("creating backup {backup} for schedule {name} (due at {t})"),
            ));
        }
    }
    if let Some(reason) = &skipped
        && status.failure_reason.as_deref() != Some(reason.as_str())
    {
        outcome.event = Some(Intent::warning("BackupSkipped", reason.clone()));
    }
    status.failure_reason = skipped.or(newest_failure);
    outcome
}

/// Why Cairn cannot back up with this method yet, if it cannot.
fn unsupported(o: &Observed, policy: &BackupPolicy, method_name: &str) -> Option<String> {
    let method = policy
        .spec
        .backup_methods
        .iter()
        .find(|m| m.name == method_name)?;
    // Snapshot backups are Full whatever their (optional) ActionSet says (§K2.5).
    if method.snapshot_volumes.unwrap_or(false) {
        return None;
    }
    let kind = actionset_of(o, policy, method_name)?.spec.backup_type;
    match kind {
        // Incremental and Differential backups of a schedule find their parent themselves
        // (kubeblocks-semantics §2.9; a schedule may not name one).
        BackupType::Full
        | BackupType::Selective
        | BackupType::Incremental
        | BackupType::Differential
        | BackupType::Continuous => None,
    }
}

/// Whether the method's ActionSet is Continuous (§6.1; a snapshot method never is).
fn is_continuous(o: &Observed, policy: &BackupPolicy, method_name: &str) -> bool {
    is_continuous_method(&o.actionsets, policy, method_name)
}

/// Whether `method_name` of `policy` backs up continuously (its ActionSet among `actionsets` is
/// Continuous; a snapshot method never is): its entry keeps one Backup Running, never completing.
pub fn is_continuous_method(
    actionsets: &[ActionSet],
    policy: &BackupPolicy,
    method_name: &str,
) -> bool {
    let snapshot = policy
        .spec
        .backup_methods
        .iter()
        .find(|m| m.name == method_name)
        .is_some_and(|m| m.snapshot_volumes.unwrap_or(false));
    !snapshot
        && actionset_in(actionsets, policy, method_name)
            .is_some_and(|a| a.spec.backup_type == BackupType::Continuous)
}

/// The name of the continuous Backup of a method (§6.3, KubeBlocks'
/// `GenerateCRNameByBackupSchedule`): `<uid8>-<schedule>-<namespace>` cut to 30 characters
/// without a trailing `-`, then `-<method>`; `uid8` is the first 8 characters of the schedule
/// owner's uid (usually the Cluster's), else of the schedule's own. `own_uid` forces the
/// schedule's own uid (KubeBlocks' legacy name, also looked up).
pub fn continuous_backup_name(schedule: &BackupSchedule, method: &str, own_uid: bool) -> String {
    let owner_uid = schedule
        .metadata
        .owner_references
        .iter()
        .flatten()
        .next()
        .map(|o| o.uid.as_str())
        .filter(|_| !own_uid);
    let uid = owner_uid
        .or(schedule.metadata.uid.as_deref())
        .unwrap_or_default();
    let uid8: String = uid.chars().take(8).collect();
    let unique = format!(
        "{uid8}-{}-{}",
        schedule.metadata.name.as_deref().unwrap_or_default(),
        schedule.metadata.namespace.as_deref().unwrap_or_default()
    );
    let mut base: String = unique.chars().take(30).collect();
    if base.chars().count() < unique.chars().count()
        && let Some(trimmed) = base.strip_suffix('-')
    {
        base = trimmed.to_string();
    }
    format!("{base}-{method}")
}

/// A Continuous entry (§6.3): one Backup, created if missing and kept; the Backup planner runs
/// its archiver while the entry is enabled, completes it when it is disabled and reopens it when
/// it is enabled again.
fn continuous_entry(
    o: &Observed,
    policy: &BackupPolicy,
    entry: &SchedulePolicy,
    status: &mut ScheduleStatus,
) -> EntryOutcome {
    status.phase = Some(SchedulePhase::Running);
    let schedule = &o.schedule;
    let schedule_name = schedule.metadata.name.clone().unwrap_or_default();
    let method = &entry.backup_method;
    let names = [
        continuous_backup_name(schedule, method, false),
        continuous_backup_name(schedule, method, true),
    ];
    let existing = o.backups.iter().find(|b| {
        b.metadata.name.as_ref().is_some_and(|n| names.contains(n))
            && b.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(well_known::label::BACKUP_SCHEDULE))
                == Some(&schedule_name)
    });
    let Some(existing) = existing else {
        status.failure_reason = None;
        let name = &names[0];
        let mut backup = new_backup(o, entry, name);
        let mut labels: BTreeMap<String, String> = policy
            .spec
            .target
            .as_ref()
            .or_else(|| policy.spec.targets.as_ref().and_then(|t| t.first()))
            .and_then(|t| t.pod_selector.as_ref())
            .and_then(|s| s.label_selector.match_labels.clone())
            .unwrap_or_default();
        labels.insert(
            well_known::label::MANAGED_BY.into(),
            well_known::label::MANAGED_BY_DATA_PROTECTION.into(),
        );
        labels.insert(well_known::label::BACKUP_TYPE.into(), "Continuous".into());
        labels.insert(well_known::label::AUTOBACKUP.into(), "true".into());
        labels.insert(
            well_known::label::BACKUP_SCHEDULE.into(),
            schedule_name.clone(),
        );
        backup["metadata"]["labels"] = serde_json::to_value(labels).unwrap_or_default();
        return EntryOutcome {
            create: Some(backup),
            event: Some(Intent::normal(
                "BackupScheduled",
                format!(
                    "creating continuous backup {name} for schedule {}",
                    entry_name(entry)
                ),
            )),
            ..EntryOutcome::default()
        };
    };
    let backup_status = existing.status.as_ref();
    status.failure_reason = backup_status
        .filter(|s| s.phase == Some(BackupPhase::Failed))
        .map(|s| {
            format!(
                "continuous backup {} failed: {}",
                existing.metadata.name.as_deref().unwrap_or_default(),
                s.failure_reason.as_deref().unwrap_or("no reason recorded")
            )
        });
    // §6.3: the entry's retention is synced into the existing Backup; the Backup planner then
    // gives its archiver the new DP_TTL_SECONDS and its expiration follows.
    let wanted = entry_retention(entry);
    let current = existing.spec.retention_period.clone().unwrap_or_default();
    if current != wanted {
        let name = existing.metadata.name.clone().unwrap_or_default();
        return EntryOutcome {
            patch: Some(Intent::MergePatch {
                api_version: cairn_api::API_VERSION.into(),
                kind: "Backup".into(),
                namespace: existing.metadata.namespace.clone(),
                name: name.clone(),
                patch: serde_json::json!({"spec": {"retentionPeriod": wanted}}),
            }),
            event: Some(Intent::normal(
                "RetentionSynced",
                format!(
                    "continuous backup {name}: spec.retentionPeriod {current:?} -> {wanted:?}, the retention of schedule {}",
                    entry_name(entry)
                ),
            )),
            ..EntryOutcome::default()
        };
    }
    EntryOutcome::default()
}

/// The retention a Backup of `entry` carries: the entry's, else the default.
fn entry_retention(entry: &SchedulePolicy) -> String {
    entry
        .retention_period
        .clone()
        .filter(|r| !r.is_empty())
        .unwrap_or_else(|| DEFAULT_RETENTION.into())
}

/// The latest fire time in `(after, now]`, looking back through growing windows so that a
/// frequent schedule costs few steps however long the control plane was away.
fn latest_fire(cron: &cron::Schedule, after: Timestamp, now: Timestamp) -> Option<Timestamp> {
    if after >= now {
        return None;
    }
    const WINDOWS_HOURS: [i64; 5] = [1, 24, 24 * 32, 24 * 366, 24 * 366 * 5];
    let starts = WINDOWS_HOURS
        .iter()
        .filter_map(|h| now.checked_sub(SignedDuration::from_hours(*h)).ok())
        .map(|start| start.max(after))
        .chain([after]);
    for start in starts {
        let mut latest = None;
        let mut cursor = start;
        while let Some(t) = cron.next_after(cursor).filter(|t| *t <= now) {
            latest = Some(t);
            cursor = t;
        }
        if latest.is_some() {
            return latest;
        }
        if start == after {
            return None;
        }
    }
    None
}

/// The longest gap between consecutive fire times of `cron` from `from` over a year (at least
/// two fire times; at most 10,000 looked at, so a schedule firing every minute costs a week of
/// them): how long an entry may go without a run, whatever the day of the week, the length of
/// the month or a daylight-saving change. `None` when it fires fewer than twice.
pub fn longest_interval(cron: &cron::Schedule, from: Timestamp) -> Option<Duration> {
    const LOOK_AT: usize = 10_000;
    let until = from
        .checked_add(SignedDuration::from_hours(24 * 366))
        .ok()?;
    let mut previous = cron.next_after(from)?;
    let mut longest = SignedDuration::ZERO;
    for _ in 1..LOOK_AT {
        let Some(next) = cron.next_after(previous) else {
            break;
        };
        longest = longest.max(next.duration_since(previous));
        if next > until {
            break;
        }
        previous = next;
    }
    Duration::try_from(longest).ok().filter(|d| !d.is_zero())
}

/// The Backup a schedule entry creates (§6.2, without `deletionPolicy`: the CRD default applies).
fn new_backup(o: &Observed, entry: &SchedulePolicy, name: &str) -> serde_json::Value {
    let schedule = &o.schedule;
    let backup = Backup {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: schedule.metadata.namespace.clone(),
            labels: Some(BTreeMap::from([
                (
                    well_known::label::AUTOBACKUP.to_string(),
                    "true".to_string(),
                ),
                (
                    well_known::label::BACKUP_SCHEDULE.to_string(),
                    schedule.metadata.name.clone().unwrap_or_default(),
                ),
            ])),
            ..Default::default()
        },
        spec: BackupSpec {
            backup_policy_name: schedule.spec.backup_policy_name.clone(),
            backup_method: entry.backup_method.clone(),
            deletion_policy: None,
            retention_period: Some(entry_retention(entry)),
            parent_backup_name: None,
            parameters: entry.parameters.clone().filter(|p| !p.is_empty()),
        },
        status: None,
    };
    serde_json::to_value(&backup).unwrap_or_default()
}
