//! Table tests of the BackupSchedule planner: one behaviour per test, named by what a user sees.

use cairn_api::well_known;
use serde_json::json;

use super::*;
use crate::plan::intent::EventType;

fn at(text: &str) -> Timestamp {
    text.parse().unwrap()
}

/// BackupSchedule `pg-schedule` of policy `pg-policy` (generation 3, with its finalizer and
/// policy label): one enabled entry `hourly` running `basebackup` at every full hour, kept 3d.
fn schedule() -> BackupSchedule {
    serde_json::from_value::<BackupSchedule>(json!({
        "apiVersion": cairn_api::API_VERSION,
        "kind": "BackupSchedule",
        "metadata": {"name": "pg-schedule", "namespace": "default", "generation": 3,
                     "creationTimestamp": "2026-11-22T09:05:00Z",
                     "finalizers": [well_known::FINALIZER],
                     "labels": {well_known::label::BACKUP_POLICY: "pg-policy"}},
        "spec": {"backupPolicyName": "pg-policy", "schedules": []}
    }))
    .unwrap()
    .with_entries(vec![
        run("basebackup", "0 * * * *")
            .named("hourly")
            .enabled()
            .kept("3d"),
    ])
}

/// An entry of a schedule: `method` on `cron`, no name, neither enabled nor disabled.
fn run(method: &str, cron: &str) -> SchedulePolicy {
    SchedulePolicy {
        backup_method: method.into(),
        cron_expression: cron.into(),
        ..Default::default()
    }
}

/// What differs in a schedule entry.
trait EntryExt {
    fn named(self, name: &str) -> Self;
    fn enabled(self) -> Self;
    fn disabled(self) -> Self;
    /// Backups it creates are kept `retention` (e.g. `3d`).
    fn kept(self, retention: &str) -> Self;
    fn with_parameter(self, name: &str, value: &str) -> Self;
}

impl EntryExt for SchedulePolicy {
    fn named(mut self, name: &str) -> Self {
        self.name = Some(name.into());
        self
    }

    fn enabled(mut self) -> Self {
        self.enabled = Some(true);
        self
    }

    fn disabled(mut self) -> Self {
        self.enabled = Some(false);
        self
    }

    fn kept(mut self, retention: &str) -> Self {
        self.retention_period = Some(serde_json::from_value(json!(retention)).unwrap());
        self
    }

    fn with_parameter(mut self, name: &str, value: &str) -> Self {
        self.parameters
            .get_or_insert_with(Vec::new)
            .push(cairn_api::common::ParameterPair {
                name: name.into(),
                value: value.into(),
            });
        self
    }
}

/// What differs in a schedule.
trait ScheduleExt {
    /// Its entries are exactly `entries`.
    fn with_entries(self, entries: Vec<SchedulePolicy>) -> Self;
    /// Runs more than `minutes` late are skipped.
    fn starting_deadline(self, minutes: i64) -> Self;
    /// Never reconciled: no finalizer, no labels.
    fn never_reconciled(self) -> Self;
}

impl ScheduleExt for BackupSchedule {
    fn with_entries(mut self, entries: Vec<SchedulePolicy>) -> Self {
        self.spec.schedules = entries;
        self
    }

    fn starting_deadline(mut self, minutes: i64) -> Self {
        self.spec.starting_deadline_minutes = Some(minutes);
        self
    }

    fn never_reconciled(mut self) -> Self {
        self.metadata.finalizers = None;
        self.metadata.labels = None;
        self
    }
}

/// BackupPolicy `pg-policy` whose target is the pods of cluster `mycluster`, with methods
/// `basebackup` (ActionSet `pg-basebackup`), `snap` (volume snapshots) and `pitr` (ActionSet
/// `pg-pitr`).
fn policy() -> BackupPolicy {
    serde_json::from_value(json!({
        "apiVersion": cairn_api::API_VERSION,
        "kind": "BackupPolicy",
        "metadata": {"name": "pg-policy", "namespace": "default"},
        "spec": {
            "target": {"podSelector": {"matchLabels": {well_known::label::INSTANCE: "mycluster"}}},
            "backupMethods": [
                {"name": "basebackup", "actionSetName": "pg-basebackup"},
                {"name": "snap", "snapshotVolumes": true},
                {"name": "pitr", "actionSetName": "pg-pitr"}
            ]
        }
    }))
    .unwrap()
}

/// The same policy with a target selector that names no cluster.
fn policy_without_cluster_label() -> BackupPolicy {
    let mut policy = policy();
    if let Some(selector) = policy
        .spec
        .target
        .as_mut()
        .and_then(|t| t.pod_selector.as_mut())
    {
        selector.label_selector.match_labels = None;
    }
    policy
}

fn actionset(name: &str, kind: &str) -> ActionSet {
    serde_json::from_value(json!({
        "apiVersion": "dataprotection.kubeblocks.io/v1alpha1",
        "kind": "ActionSet",
        "metadata": {"name": name},
        "spec": {"backupType": kind,
                 "backup": {"backupData": {"image": "x", "command": ["x"]}, "withParameters": ["level"]},
                 "parametersSchema": {"openAPIV3Schema": {"type": "object",
                     "properties": {"level": {"type": "integer"}}}}}
    }))
    .unwrap()
}

fn backup(name: &str, phase: Option<&str>, completed: Option<&str>) -> Backup {
    serde_json::from_value(json!({
        "apiVersion": "dataprotection.kubeblocks.io/v1alpha1",
        "kind": "Backup",
        "metadata": {"name": name, "namespace": "default",
                     "labels": {well_known::label::BACKUP_SCHEDULE: "pg-schedule", well_known::label::AUTOBACKUP: "true"}},
        "spec": {"backupPolicyName": "pg-policy", "backupMethod": "basebackup"},
        "status": {"phase": phase, "completionTimestamp": completed,
                   "failureReason": if phase == Some("Failed") { json!("exit code 1") } else { json!(null) }}
    }))
    .unwrap()
}

fn observed() -> Observed {
    Observed {
        schedule: schedule(),
        policy: Some(policy()),
        actionsets: vec![
            actionset("pg-basebackup", "Full"),
            actionset("pg-pitr", "Continuous"),
        ],
        backups: Vec::new(),
        settings: Settings::default(),
    }
}

/// Runs the planner and applies its status.
fn step(o: &mut Observed, now: Timestamp) -> Plan<BackupScheduleStatus> {
    let plan = plan(o, now);
    if let Some(status) = &plan.status {
        o.schedule.status = Some(status.clone());
    }
    plan
}

fn created(plan: &Plan<BackupScheduleStatus>) -> Vec<serde_json::Value> {
    plan.intents
        .iter()
        .filter_map(|i| match i {
            Intent::Create { object } => Some(object.clone()),
            _ => None,
        })
        .collect()
}

fn created_names(plan: &Plan<BackupScheduleStatus>) -> Vec<String> {
    created(plan)
        .iter()
        .map(|b| b["metadata"]["name"].as_str().unwrap().to_string())
        .collect()
}

fn entry(o: &Observed, name: &str) -> ScheduleStatus {
    o.schedule
        .status
        .as_ref()
        .unwrap()
        .schedules
        .as_ref()
        .unwrap()[name]
        .clone()
}

fn warnings(plan: &Plan<BackupScheduleStatus>) -> Vec<(String, String)> {
    plan.intents
        .iter()
        .filter_map(|i| match i {
            Intent::Event {
                type_: EventType::Warning,
                reason,
                message,
            } => Some((reason.clone(), message.clone())),
            _ => None,
        })
        .collect()
}

/// The planner created `name`; the API server now has it, Running.
fn observe_created(o: &mut Observed, name: &str) {
    o.backups.push(backup(name, Some("Running"), None));
}

// ---------------------------------------------------------------- validation

#[test]
fn a_missing_policy_fails_the_schedule_with_an_event() {
    let mut o = observed();
    o.policy = None;
    let plan = step(&mut o, at("2026-11-22T10:00:00Z"));
    let status = plan.status.clone().unwrap();
    assert_eq!(status.phase, Some(BackupSchedulePhase::Failed));
    assert_eq!(
        status.failure_reason.as_deref(),
        Some("backuppolicies.dataprotection.kubeblocks.io \"pg-policy\" not found")
    );
    assert_eq!(warnings(&plan)[0].0, "HandleBackupScheduleFailed");
    assert!(created(&plan).is_empty());
}

#[test]
fn the_same_failure_is_not_announced_twice() {
    let mut o = observed();
    o.policy = None;
    step(&mut o, at("2026-11-22T10:00:00Z"));
    assert!(warnings(&step(&mut o, at("2026-11-22T10:01:00Z"))).is_empty());
}

#[test]
fn duplicate_schedule_names_fail_with_kubeblocks_message() {
    let mut o = observed();
    o.schedule = schedule().with_entries(vec![
        run("basebackup", "0 * * * *"),
        run("basebackup", "0 0 * * *"),
    ]);
    let status = step(&mut o, at("2026-11-22T10:00:00Z")).status.unwrap();
    assert_eq!(
        status.failure_reason.as_deref(),
        Some("schedule name basebackup is duplicated")
    );
}

#[test]
fn a_method_missing_from_the_policy_fails_with_kubeblocks_message() {
    let mut o = observed();
    o.schedule = schedule().with_entries(vec![run("nope", "0 * * * *")]);
    let status = step(&mut o, at("2026-11-22T10:00:00Z")).status.unwrap();
    assert_eq!(
        status.failure_reason.as_deref(),
        Some("backup method nope is not in backup policy default/pg-policy")
    );
}

#[test]
fn an_invalid_cron_expression_fails_quoting_it() {
    let mut o = observed();
    o.schedule = schedule().with_entries(vec![run("basebackup", "every hour")]);
    let reason = step(&mut o, at("2026-11-22T10:00:00Z"))
        .status
        .unwrap()
        .failure_reason
        .unwrap();
    assert!(reason.contains("\"every hour\""), "{reason}");
}

#[test]
fn parameters_are_checked_against_the_methods_actionset() {
    let mut o = observed();
    o.schedule = schedule().with_entries(vec![
        run("basebackup", "0 * * * *").with_parameter("tables", "t1"),
    ]);
    let status = step(&mut o, at("2026-11-22T10:00:00Z")).status.unwrap();
    assert_eq!(
        status.failure_reason.as_deref(),
        Some(
            "fails to validate parameters of backupMethod basebackup: parameter tables is undeclared in withParameters of actionSet pg-basebackup"
        )
    );
}

#[test]
fn parameters_of_a_method_without_actionset_fail_with_actionset_is_empty() {
    let mut o = observed();
    o.actionsets.clear();
    o.schedule = schedule().with_entries(vec![
        run("basebackup", "0 * * * *").with_parameter("level", "1"),
    ]);
    let status = step(&mut o, at("2026-11-22T10:00:00Z")).status.unwrap();
    assert_eq!(
        status.failure_reason.as_deref(),
        Some("fails to validate parameters of backupMethod basebackup: actionSet is empty")
    );
}

#[test]
fn a_valid_schedule_is_available_with_its_generation_label_and_finalizer() {
    let mut o = observed();
    o.schedule = schedule().never_reconciled();
    let plan = step(&mut o, at("2026-11-22T09:30:00Z"));
    let status = plan.status.clone().unwrap();
    assert_eq!(status.phase, Some(BackupSchedulePhase::Available));
    assert_eq!(status.observed_generation, Some(3));
    assert_eq!(status.failure_reason, None);
    assert!(plan.intents.contains(&Intent::AddFinalizer));
    assert!(
        plan.intents
            .iter()
            .any(|i| matches!(i, Intent::PatchMeta { labels, .. }
        if labels[well_known::label::BACKUP_POLICY].as_deref() == Some("pg-policy")))
    );
}

// ---------------------------------------------------------------- creating backups

#[test]
fn nothing_is_created_before_the_first_fire_time_after_creation() {
    let mut o = observed();
    let plan = step(&mut o, at("2026-11-22T09:59:59Z"));
    assert!(created(&plan).is_empty());
    assert_eq!(plan.requeue, Some(Duration::from_secs(1)));
    assert_eq!(entry(&o, "hourly").phase, Some(SchedulePhase::Running));
}

#[test]
fn a_due_run_creates_its_backup_like_the_kubeblocks_cronjob_would() {
    let mut o = observed();
    let plan = step(&mut o, at("2026-11-22T10:00:03Z"));
    let backups = created(&plan);
    assert_eq!(backups.len(), 1);
    let b = &backups[0];
    assert_eq!(b["apiVersion"], "dataprotection.kubeblocks.io/v1alpha1");
    assert_eq!(b["kind"], "Backup");
    assert_eq!(b["metadata"]["name"], "mycluster-hourly-20261122100000");
    assert_eq!(b["metadata"]["namespace"], "default");
    assert_eq!(
        b["metadata"]["labels"],
        json!({well_known::label::AUTOBACKUP: "true", well_known::label::BACKUP_SCHEDULE: "pg-schedule"})
    );
    assert_eq!(
        b["metadata"].get("ownerReferences"),
        None,
        "backups outlive the schedule"
    );
    assert_eq!(
        b["spec"],
        json!({"backupPolicyName": "pg-policy", "backupMethod": "basebackup", "retentionPeriod": "3d"})
    );
    assert_eq!(plan.requeue, Some(Duration::from_secs(2)));
}

#[test]
fn the_run_is_recorded_only_once_its_backup_is_observed_and_never_created_twice() {
    let mut o = observed();
    step(&mut o, at("2026-11-22T10:00:03Z"));
    assert_eq!(entry(&o, "hourly").last_schedule_time, None);
    // The shell crashed before creating: the same run is asked for again, under the same name.
    let again = step(&mut o, at("2026-11-22T10:00:05Z"));
    assert_eq!(created_names(&again), ["mycluster-hourly-20261122100000"]);
    observe_created(&mut o, "mycluster-hourly-20261122100000");
    let plan = step(&mut o, at("2026-11-22T10:00:07Z"));
    assert!(created(&plan).is_empty());
    assert_eq!(
        entry(&o, "hourly").last_schedule_time.map(|t| t.0),
        Some(at("2026-11-22T10:00:00Z"))
    );
    assert_eq!(plan.requeue, Some(Duration::from_secs(3593)));
}

#[test]
fn without_a_cluster_label_backups_are_named_after_the_schedule_and_method() {
    let mut o = observed();
    o.policy = Some(policy_without_cluster_label());
    o.schedule = schedule().with_entries(vec![run("basebackup", "0 * * * *").enabled()]);
    let plan = step(&mut o, at("2026-11-22T10:00:03Z"));
    assert_eq!(
        created_names(&plan),
        ["pg-schedule-basebackup-20261122100000"]
    );
    assert_eq!(created(&plan)[0]["spec"]["retentionPeriod"], "7d");
}

#[test]
fn after_downtime_only_the_latest_missed_run_is_created() {
    let mut o = observed();
    let plan = step(&mut o, at("2026-11-24T15:30:00Z"));
    assert_eq!(created_names(&plan), ["mycluster-hourly-20261124150000"]);
}

#[test]
fn a_run_later_than_the_starting_deadline_is_skipped_and_says_so() {
    let mut o = observed();
    o.schedule = schedule().starting_deadline(10);
    let plan = step(&mut o, at("2026-11-22T10:20:00Z"));
    assert!(created(&plan).is_empty());
    let reason = entry(&o, "hourly").failure_reason.unwrap();
    assert!(
        reason
            .starts_with("skipped the backup scheduled at 2026-11-22T10:00:00Z: it is 20m0s late"),
        "{reason}"
    );
    assert_eq!(warnings(&plan)[0].0, "BackupSkipped");
    // Within the deadline the next run goes ahead.
    let plan = step(&mut o, at("2026-11-22T11:05:00Z"));
    assert_eq!(created_names(&plan), ["mycluster-hourly-20261122110000"]);
}

#[test]
fn a_zero_starting_deadline_does_not_skip_every_run() {
    let mut o = observed();
    o.schedule = schedule().starting_deadline(0);
    let plan = step(&mut o, at("2026-11-22T10:00:02Z"));
    assert_eq!(created(&plan).len(), 1);
}

#[test]
fn a_run_is_skipped_while_the_previous_backup_still_runs() {
    let mut o = observed();
    o.backups = vec![backup(
        "mycluster-hourly-20261122100000",
        Some("Running"),
        None,
    )];
    o.schedule.status = Some(BackupScheduleStatus {
        schedules: Some(BTreeMap::from([(
            "hourly".to_string(),
            ScheduleStatus {
                last_schedule_time: Some(Time(at("2026-11-22T10:00:00Z"))),
                ..Default::default()
            },
        )])),
        ..Default::default()
    });
    let plan = step(&mut o, at("2026-11-22T11:00:01Z"));
    assert!(created(&plan).is_empty());
    assert_eq!(
        entry(&o, "hourly").failure_reason.as_deref(),
        Some(
            "skipped the backup scheduled at 2026-11-22T11:00:00Z: backup mycluster-hourly-20261122100000 of this schedule is still running"
        )
    );
    // Once it finished, the run still due goes ahead (as a Forbid CronJob's would).
    o.backups = vec![backup(
        "mycluster-hourly-20261122100000",
        Some("Completed"),
        Some("2026-11-22T11:10:00Z"),
    )];
    let plan = step(&mut o, at("2026-11-22T11:10:05Z"));
    assert_eq!(created_names(&plan), ["mycluster-hourly-20261122110000"]);
    assert_eq!(
        entry(&o, "hourly").last_successful_time.map(|t| t.0),
        Some(at("2026-11-22T11:10:00Z"))
    );
}

#[test]
fn the_newest_failed_backup_is_the_entrys_failure_reason() {
    let mut o = observed();
    o.backups = vec![
        backup(
            "mycluster-hourly-20261122100000",
            Some("Completed"),
            Some("2026-11-22T10:05:00Z"),
        ),
        backup("mycluster-hourly-20261122110000", Some("Failed"), None),
    ];
    o.schedule.status = Some(BackupScheduleStatus {
        schedules: Some(BTreeMap::from([(
            "hourly".to_string(),
            ScheduleStatus {
                last_schedule_time: Some(Time(at("2026-11-22T11:00:00Z"))),
                ..Default::default()
            },
        )])),
        ..Default::default()
    });
    step(&mut o, at("2026-11-22T11:30:00Z"));
    let status = entry(&o, "hourly");
    assert_eq!(
        status.failure_reason.as_deref(),
        Some("backup mycluster-hourly-20261122110000 failed: exit code 1")
    );
    assert_eq!(
        status.last_successful_time.map(|t| t.0),
        Some(at("2026-11-22T10:05:00Z"))
    );
}

#[test]
fn backups_of_other_entries_and_schedules_are_not_counted() {
    let mut o = observed();
    let mut foreign = backup("mycluster-hourly-20261122100000", Some("Running"), None);
    foreign
        .metadata
        .labels
        .as_mut()
        .unwrap()
        .insert(well_known::label::BACKUP_SCHEDULE.into(), "other".into());
    o.backups = vec![
        foreign,
        backup("mycluster-daily-20261122000000", Some("Running"), None),
    ];
    let plan = step(&mut o, at("2026-11-22T10:00:03Z"));
    assert_eq!(created_names(&plan), ["mycluster-hourly-20261122100000"]);
}

#[test]
fn disabled_entries_create_nothing_and_keep_their_times() {
    let mut o = observed();
    o.schedule = schedule().with_entries(vec![
        run("basebackup", "0 * * * *").named("hourly").disabled(),
    ]);
    o.schedule.status = Some(BackupScheduleStatus {
        schedules: Some(BTreeMap::from([(
            "hourly".to_string(),
            ScheduleStatus {
                phase: Some(SchedulePhase::Running),
                last_schedule_time: Some(Time(at("2026-11-22T08:00:00Z"))),
                ..Default::default()
            },
        )])),
        ..Default::default()
    });
    let plan = step(&mut o, at("2026-11-22T10:00:03Z"));
    assert!(created(&plan).is_empty());
    let status = entry(&o, "hourly");
    assert_eq!(status.phase, None);
    assert_eq!(
        status.last_schedule_time.map(|t| t.0),
        Some(at("2026-11-22T08:00:00Z"))
    );
    assert_eq!(plan.requeue, Some(Duration::from_secs(3600)));
}

#[test]
fn incremental_and_differential_entries_create_backups_beside_the_full_entry() {
    let mut o = observed();
    let mut policy = policy();
    for (name, actionset) in [("inc", "pg-inc"), ("diff", "pg-diff")] {
        policy.spec.backup_methods.push(
            serde_json::from_value(json!({
                "name": name, "actionSetName": actionset, "compatibleMethod": "basebackup"
            }))
            .unwrap(),
        );
    }
    o.policy = Some(policy);
    o.actionsets.push(actionset("pg-inc", "Incremental"));
    o.actionsets.push(actionset("pg-diff", "Differential"));
    o.schedule = schedule().with_entries(vec![
        run("basebackup", "0 0 * * *").enabled(),
        run("inc", "0 * * * *").enabled(),
        run("diff", "0 */6 * * *").enabled(),
    ]);
    let plan = step(&mut o, at("2026-11-22T12:00:03Z"));
    assert_eq!(
        created_names(&plan),
        [
            "mycluster-inc-20261122120000",
            "mycluster-diff-20261122120000"
        ]
    );
    for backup in created(&plan) {
        // A schedule never names a parent: the Backup finds the newest of its chain.
        assert!(backup["spec"].get("parentBackupName").is_none(), "{backup}");
        assert_eq!(
            backup["metadata"]["labels"][well_known::label::BACKUP_SCHEDULE].as_str(),
            Some("pg-schedule")
        );
    }
    for name in ["inc", "diff"] {
        assert_eq!(
            entry(&o, name).phase,
            Some(SchedulePhase::Running),
            "{name}"
        );
    }
}

// ---------------------------------------------------------------- continuous entries (§6.3)

/// The schedule with its uid, and a continuous entry `pitr` every 5 minutes kept 2d.
fn continuous_schedule() -> BackupSchedule {
    let mut schedule = schedule().with_entries(vec![
        run("pitr", "*/5 * * * *").enabled().kept("2d"),
        run("basebackup", "0 * * * *").enabled(),
    ]);
    schedule.metadata.uid = Some("5c4ed01e-0000-4000-8000-000000000001".into());
    schedule
}

#[test]
fn a_continuous_entry_creates_one_continuous_backup_named_and_labelled_like_kubeblocks() {
    let mut o = observed();
    o.schedule = continuous_schedule();
    // Before the hourly entry's first fire time: only the continuous backup is created.
    let plan = step(&mut o, at("2026-11-22T09:30:00Z"));
    let created = created(&plan);
    assert_eq!(created.len(), 1, "{created:?}");
    let backup = &created[0];
    // <uid8>-<schedule>-<namespace> cut to 30, then -<method>.
    assert_eq!(
        backup["metadata"]["name"],
        "5c4ed01e-pg-schedule-default-pitr"
    );
    assert_eq!(
        backup["metadata"]["labels"],
        json!({
            well_known::label::INSTANCE: "mycluster",
            well_known::label::MANAGED_BY: "kubeblocks-dataprotection",
            well_known::label::BACKUP_TYPE: "Continuous",
            well_known::label::AUTOBACKUP: "true",
            well_known::label::BACKUP_SCHEDULE: "pg-schedule",
        })
    );
    assert_eq!(backup["spec"]["backupPolicyName"], "pg-policy");
    assert_eq!(backup["spec"]["backupMethod"], "pitr");
    assert_eq!(backup["spec"]["retentionPeriod"], "2d");
    assert!(backup["metadata"]["ownerReferences"].is_null());
    let status = entry(&o, "pitr");
    assert_eq!(status.phase, Some(SchedulePhase::Running));
    assert_eq!(status.failure_reason, None);
}

#[test]
fn the_continuous_backup_is_kept_not_created_again() {
    let mut o = observed();
    o.schedule = continuous_schedule();
    let mut existing = backup("5c4ed01e-pg-schedule-default-pitr", Some("Running"), None);
    existing.spec.backup_method = "pitr".into();
    o.backups.push(existing);
    for now in [
        "2026-11-22T09:30:00Z",
        "2026-11-22T09:35:00Z",
        "2026-11-23T09:35:00Z",
    ] {
        let plan = step(&mut o, at(now));
        assert!(
            !created_names(&plan).iter().any(|n| n.ends_with("-pitr")),
            "{now}: {:?}",
            created_names(&plan)
        );
    }
    assert_eq!(entry(&o, "pitr").phase, Some(SchedulePhase::Running));
}

#[test]
fn a_failed_continuous_backup_is_the_entrys_failure_reason() {
    let mut o = observed();
    o.schedule = continuous_schedule();
    o.backups.push(backup(
        "5c4ed01e-pg-schedule-default-pitr",
        Some("Failed"),
        None,
    ));
    step(&mut o, at("2026-11-22T09:30:00Z"));
    assert_eq!(
        entry(&o, "pitr").failure_reason.as_deref(),
        Some("continuous backup 5c4ed01e-pg-schedule-default-pitr failed: exit code 1")
    );
}

#[test]
fn a_disabled_continuous_entry_creates_nothing() {
    let mut o = observed();
    o.schedule = continuous_schedule().with_entries(vec![run("pitr", "*/5 * * * *").disabled()]);
    let plan = step(&mut o, at("2026-11-22T09:30:00Z"));
    assert!(created(&plan).is_empty());
    assert_eq!(entry(&o, "pitr").phase, None);
}

#[test]
fn the_continuous_backup_name_uses_the_owners_uid_and_cuts_like_kubeblocks() {
    let mut schedule = continuous_schedule();
    // Exactly as Go's TrimSuffix(name[:30], "-"): "5c4ed01e-pg-schedule-default" is 28 long.
    assert_eq!(
        continuous_backup_name(&schedule, "pitr", false),
        "5c4ed01e-pg-schedule-default-pitr"
    );
    schedule.metadata.namespace = Some("production-east".into());
    // "5c4ed01e-pg-schedule-production-east" cut to 30 is "5c4ed01e-pg-schedule-productio".
    assert_eq!(
        continuous_backup_name(&schedule, "pitr", false),
        "5c4ed01e-pg-schedule-productio-pitr"
    );
    schedule.metadata.namespace = Some("a-b".into());
    schedule.metadata.name = Some("long-schedule-name-x".into());
    // "5c4ed01e-long-schedule-name-x-a-b" cut to 30 ends with "-": it is trimmed.
    assert_eq!(
        continuous_backup_name(&schedule, "pitr", false),
        "5c4ed01e-long-schedule-name-x-pitr"
    );
    schedule.metadata.owner_references = Some(vec![
        k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
            api_version: "apps.kubeblocks.io/v1alpha1".into(),
            kind: "Cluster".into(),
            name: "mycluster".into(),
            uid: "c1a55e77-1111-4000-8000-000000000002".into(),
            ..Default::default()
        },
    ]);
    assert_eq!(
        continuous_backup_name(&schedule, "pitr", false),
        "c1a55e77-long-schedule-name-x-pitr"
    );
    // The legacy name (the schedule's own uid) is still recognised.
    assert_eq!(
        continuous_backup_name(&schedule, "pitr", true),
        "5c4ed01e-long-schedule-name-x-pitr"
    );
}

#[test]
fn a_continuous_backup_under_its_legacy_name_is_kept() {
    let mut o = observed();
    o.schedule = continuous_schedule();
    o.schedule.metadata.owner_references = Some(vec![
        k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
            api_version: "apps.kubeblocks.io/v1alpha1".into(),
            kind: "Cluster".into(),
            name: "mycluster".into(),
            uid: "c1a55e77-1111-4000-8000-000000000002".into(),
            ..Default::default()
        },
    ]);
    o.backups.push(backup(
        "5c4ed01e-pg-schedule-default-pitr",
        Some("Completed"),
        Some("2026-11-22T09:00:00Z"),
    ));
    let plan = step(&mut o, at("2026-11-22T09:30:00Z"));
    assert!(created(&plan).is_empty(), "{:?}", created_names(&plan));
}

#[test]
fn a_snapshot_entry_creates_snapshot_backups_carrying_its_retention() {
    let mut o = observed();
    o.schedule = schedule().with_entries(vec![run("snap", "0 * * * *").enabled()]);
    let plan = step(&mut o, at("2026-11-22T10:00:03Z"));
    assert_eq!(created_names(&plan), ["mycluster-snap-20261122100000"]);
    let backup = &created(&plan)[0];
    assert_eq!(backup["spec"]["backupMethod"], "snap");
    assert_eq!(backup["spec"]["retentionPeriod"], "7d");
    assert_eq!(entry(&o, "snap").phase, Some(SchedulePhase::Running));
}

#[test]
fn each_entry_fires_on_its_own_cron_and_the_requeue_is_the_nearest() {
    let mut o = observed();
    o.schedule = schedule().with_entries(vec![
        run("basebackup", "0 * * * *").named("hourly").enabled(),
        run("basebackup", "15 * * * *")
            .named("quarter")
            .enabled()
            .with_parameter("level", "2"),
    ]);
    let plan = step(&mut o, at("2026-11-22T10:15:00Z"));
    assert_eq!(
        created_names(&plan),
        [
            "mycluster-hourly-20261122100000",
            "mycluster-quarter-20261122101500"
        ]
    );
    assert_eq!(
        created(&plan)[1]["spec"]["parameters"],
        json!([{"name": "level", "value": "2"}])
    );
}

#[test]
fn a_cron_time_zone_prefix_is_honoured() {
    let mut o = observed();
    o.schedule = schedule().with_entries(vec![
        run("basebackup", "CRON_TZ=Asia/Shanghai 0 18 * * *")
            .named("daily")
            .enabled(),
    ]);
    let plan = step(&mut o, at("2026-11-22T10:00:01Z"));
    assert_eq!(created_names(&plan), ["mycluster-daily-20261122100000"]);
}

#[test]
fn a_deleted_schedule_only_lets_go_of_its_finalizer() {
    let mut o = observed();
    o.schedule.metadata.deletion_timestamp = Some(Time(at("2026-11-22T10:00:00Z")));
    let plan = plan(&o, at("2026-11-22T10:00:03Z"));
    assert_eq!(plan.intents, [Intent::RemoveFinalizer]);
    assert_eq!(plan.status, None);
}

#[test]
fn latest_fire_looks_back_as_far_as_needed() {
    let yearly = cron::parse("0 0 1 1 *").unwrap();
    assert_eq!(
        latest_fire(
            &yearly,
            at("2020-06-01T00:00:00Z"),
            at("2026-11-22T10:00:00Z")
        ),
        Some(at("2026-01-01T00:00:00Z"))
    );
    assert_eq!(
        latest_fire(
            &yearly,
            at("2026-01-01T00:00:00Z"),
            at("2026-11-22T10:00:00Z")
        ),
        None
    );
    let minutely = cron::parse("* * * * *").unwrap();
    assert_eq!(
        latest_fire(
            &minutely,
            at("2016-01-01T00:00:00Z"),
            at("2026-11-22T10:00:30Z")
        ),
        Some(at("2026-11-22T10:00:00Z"))
    );
}

/// What `cairn_backup_schedule_interval_seconds` exports: the longest wait between two runs.
#[test]
fn an_entrys_interval_is_the_longest_gap_between_its_runs() {
    let interval = |expr: &str| {
        longest_interval(&cron::parse(expr).unwrap(), at("2026-03-02T10:17:00Z"))
            .map(|d| d.as_secs())
    };
    assert_eq!(interval("@hourly"), Some(3600));
    assert_eq!(interval("0 3 * * *"), Some(24 * 3600));
    // Weekdays at 09:00: Friday to Monday.
    assert_eq!(interval("0 9 * * 1-5"), Some(72 * 3600));
    // Every minute of midnight's hour: 23 h 1 min from 00:59 to the next 00:00.
    assert_eq!(interval("* 0 * * *"), Some(23 * 3600 + 60));
    // Monthly: the longest month.
    assert_eq!(interval("0 0 1 * *"), Some(31 * 24 * 3600));
    // Daily in a zone with daylight saving: the autumn day lasts 25 h.
    assert_eq!(
        interval("CRON_TZ=Europe/Berlin 0 12 * * *"),
        Some(25 * 3600)
    );
    // Yearly: a leap year's 366 days at most.
    assert!(matches!(interval("@yearly"), Some(s) if s == 365 * 86400 || s == 366 * 86400));
    // Never fires.
    assert_eq!(interval("0 0 30 2 *"), None);
}

#[test]
fn the_entrys_retention_is_synced_into_its_continuous_backup() {
    let mut o = observed();
    o.schedule = continuous_schedule();
    let mut existing = backup("5c4ed01e-pg-schedule-default-pitr", Some("Running"), None);
    existing.spec.backup_method = "pitr".into();
    existing.spec.retention_period = Some("7d".into());
    o.backups.push(existing);
    let patches = |plan: &Plan<BackupScheduleStatus>| -> Vec<(String, String, serde_json::Value)> {
        plan.intents
            .iter()
            .filter_map(|i| match i {
                Intent::MergePatch {
                    kind, name, patch, ..
                } => Some((kind.clone(), name.clone(), patch.clone())),
                _ => None,
            })
            .collect()
    };
    let plan = step(&mut o, at("2026-11-22T09:30:00Z"));
    assert_eq!(
        patches(&plan),
        [(
            "Backup".to_string(),
            "5c4ed01e-pg-schedule-default-pitr".to_string(),
            json!({"spec": {"retentionPeriod": "2d"}})
        )]
    );
    // In sync: nothing to patch.
    o.backups[0].spec.retention_period = Some("2d".into());
    assert!(patches(&step(&mut o, at("2026-11-22T09:31:00Z"))).is_empty());
}
