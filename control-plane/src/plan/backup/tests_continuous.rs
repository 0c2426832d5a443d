//! Continuous backups (ARCHITECTURE.md §K2.9): the archiver's lifecycle as a user sees it in the
//! Backup's status.

use cairn_api::backup::ActionType;
use cairn_api::backup_schedule::BackupSchedule;
use k8s_openapi::api::apps::v1::StatefulSet;

use super::*;
use crate::plan::backup::continuous::{
    archive_interval, archiver_id, statefulset_name, ttl_seconds,
};

const ARCHIVER: &str = "dp-backup-0";

/// Schedule `pg-schedule` (Available): the `basebackup` method every 5 minutes, `enabled`.
fn schedule(enabled: bool) -> BackupSchedule {
    serde_json::from_value(json!({
        "apiVersion": "dataprotection.kubeblocks.io/v1alpha1",
        "kind": "BackupSchedule",
        "metadata": {"name": "pg-schedule", "namespace": "default"},
        "spec": {"backupPolicyName": "pg-policy", "schedules": [
            {"backupMethod": "basebackup", "cronExpression": "*/5 * * * *", "enabled": enabled,
             "retentionPeriod": "2d"}
        ]},
        "status": {"phase": "Available"}
    }))
    .unwrap()
}

/// A continuous Backup `b1` created by `pg-schedule`, kept 2d, whose ActionSet is Continuous
/// (no hooks), with its schedule entry enabled.
fn continuous() -> Observed {
    let mut o = observed();
    o.backup = backup(json!({
        "metadata": {"labels": {well_known::label::BACKUP_SCHEDULE: "pg-schedule",
                                well_known::label::BACKUP_TYPE: "Continuous"}},
        "spec": {"retentionPeriod": "2d"}
    }));
    o.actionset = Some(actionset(json!({"spec": {"backupType": "Continuous",
        "backup": {"preBackup": [], "postBackup": []}}})));
    o.schedule = Some(schedule(true));
    o
}

/// The archiver's current action id, from the status.
fn archiver(o: &Observed) -> String {
    let status = o.backup.status.as_ref().unwrap();
    archiver_id(UID, entry(status, ARCHIVER))
}

fn statefulset_of(action: &pb::Action) -> StatefulSet {
    match &action.kind {
        Some(pb::action::Kind::Archiver(a)) => serde_json::from_str(&a.statefulset_json).unwrap(),
        other => panic!("not an archiver: {other:?}"),
    }
}

fn env_of_set(set: &StatefulSet) -> Vec<(String, String)> {
    set.spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap()
        .containers[0]
        .env
        .iter()
        .flatten()
        .filter_map(|e| Some((e.name.clone(), e.value.clone()?)))
        .collect()
}

/// The agent reports the archiver running with the info file `info`.
fn archiving(o: &mut Observed, info: &str) {
    let id = archiver(o);
    o.agents
        .report(id, reported(ReportedPhase::Running).with_info(Some(info)));
}

fn cancels(plan: &Plan<BackupStatus>) -> Vec<(String, String)> {
    plan.intents
        .iter()
        .filter_map(|i| match i {
            Intent::Cancel {
                node, action_id, ..
            } => Some((node.clone(), action_id.clone())),
            _ => None,
        })
        .collect()
}

const INFO_1: &str = r#"{"totalSize":"1024","timeRange":{"start":"2026-11-22T09:00:00Z","end":"2026-11-22T10:00:00Z","timeZone":"+00:00"}}"#;
const INFO_2: &str = r#"{"totalSize":"4096","timeRange":{"start":"2026-11-22T09:00:00Z","end":"2026-11-22T10:05:00Z","timeZone":"+00:00"}}"#;

// ---------------------------------------------------------------- pure parts

#[test]
fn the_archive_interval_follows_kubeblocks_cron_rules() {
    assert_eq!(archive_interval("*/5 * * * *"), "300s");
    assert_eq!(archive_interval("0 */2 * * *"), "7200s");
    assert_eq!(archive_interval("@daily"), "60s");
    assert_eq!(archive_interval("CRON_TZ=Asia/Tokyo */10 * * * *"), "600s");
    assert_eq!(archive_interval("0 3 * * *"), "60s");
    assert_eq!(archive_interval("not a cron"), "60s");
}

#[test]
fn the_ttl_is_the_retention_in_whole_seconds() {
    assert_eq!(ttl_seconds("2d"), Some(172_800));
    assert_eq!(ttl_seconds("1h30m"), Some(5_400));
    assert_eq!(ttl_seconds(""), None);
    assert_eq!(ttl_seconds("0m"), None);
    assert_eq!(ttl_seconds("soon"), None);
}

#[test]
fn the_statefulset_is_named_like_kubeblocks_within_52_characters() {
    assert_eq!(statefulset_name("b1", ""), "b1");
    assert_eq!(statefulset_name("b1", "primary"), "dp-backup-primary-b1");
    let long = "a".repeat(60);
    assert_eq!(statefulset_name(&long, "").len(), 52);
    // A cut that ends in '-' loses it.
    let name = statefulset_name("abcdefghijklmnopqrstuvwxyz-abcdefghijklmnopqrstuvwx-yz", "");
    assert_eq!(name, "abcdefghijklmnopqrstuvwxyz-abcdefghijklmnopqrstuvwx");
}

// ---------------------------------------------------------------- New

#[test]
fn a_continuous_backup_not_made_by_a_schedule_fails_with_kubeblocks_message() {
    let mut o = continuous();
    o.backup = backup(json!({}));
    o.schedule = None;
    assert_eq!(
        failure(&step(&mut o, now())),
        (
            Some(BackupPhase::Failed),
            "continuous backup is only allowed to be created by backupSchedule".into()
        )
    );
}

#[test]
fn a_continuous_backup_waits_for_its_schedule_to_be_available() {
    let mut o = continuous();
    let mut pending = schedule(true);
    pending.status = None;
    o.schedule = Some(pending);
    let plan = step(&mut o, now());
    assert_eq!(plan.status, None);
    assert!(dispatched(&plan.intents).is_empty());
    assert!(plan.requeue.is_some());
}

#[test]
fn a_new_continuous_backup_runs_an_archiver_statefulset_with_no_expiration() {
    let mut o = continuous();
    let plan = step(&mut o, now());
    let status = plan.status.clone().unwrap();
    assert_eq!(status.phase, Some(BackupPhase::Running));
    assert_eq!(status.expiration, None);
    let archiver_entry = entry(&status, ARCHIVER);
    assert_eq!(archiver_entry.action_type, Some(ActionType::StatefulSet));
    assert_eq!(archiver_entry.phase, Some(ActionPhase::Running));
    let sent = dispatched(&plan.intents);
    assert_eq!(sent.len(), 1);
    let (node, action) = sent[0];
    assert_eq!(node, "node-a");
    assert_eq!(action.id, archiver(&o));
    let set = statefulset_of(action);
    assert_eq!(set.metadata.name.as_deref(), Some("b1"));
    let spec = set.spec.as_ref().unwrap();
    assert_eq!(spec.replicas, Some(1));
    let pod = spec.template.spec.as_ref().unwrap();
    assert_eq!(pod.restart_policy.as_deref(), Some("Always"));
    assert_eq!(
        spec.selector.match_labels,
        spec.template.metadata.as_ref().unwrap().labels
    );
    assert_eq!(
        set.metadata.owner_references.as_ref().unwrap()[0].kind,
        "Backup"
    );
    let env = env_of_set(&set);
    for wanted in [
        ("DP_ARCHIVE_INTERVAL", "300s"),
        ("DP_TTL_SECONDS", "172800"),
        ("DP_BACKUP_NAME", "b1"),
        ("DP_BACKUP_INFO_FILE", "/dp-manager/backup.info"),
    ] {
        assert!(
            env.contains(&(wanted.0.into(), wanted.1.into())),
            "{wanted:?} in {env:?}"
        );
    }
    let Some(pb::action::Kind::Archiver(a)) = &action.kind else {
        unreachable!()
    };
    assert_eq!(a.info_volume, "manager-shared-volume");
    assert_eq!(a.info_file, "backup.info");
    assert_eq!(
        a.storage.as_ref().unwrap().read_write_prefix,
        "/prod/default/mycluster/postgresql/b1"
    );
}

// ---------------------------------------------------------------- Running

#[test]
fn the_archivers_info_file_moves_the_time_range_and_size_while_it_stays_running() {
    let mut o = continuous();
    step(&mut o, now());
    archiving(&mut o, INFO_1);
    let plan = step(&mut o, later(10));
    let status = plan.status.clone().unwrap();
    assert_eq!(status.phase, Some(BackupPhase::Running));
    assert_eq!(status.total_size.as_deref(), Some("1024"));
    let range = status.time_range.clone().unwrap();
    assert_eq!(
        range.end.clone().unwrap().0,
        "2026-11-22T10:00:00Z".parse().unwrap()
    );
    assert_eq!(status.expiration, None);
    assert_eq!(entry(&status, ARCHIVER).available_replicas, Some(1));
    assert_eq!(
        entry(&status, ARCHIVER).time_range.as_ref().unwrap().end,
        range.end
    );
    // Still dispatched (idempotent), with the same id: one run.
    let id = archiver(&o);
    assert_eq!(dispatched(&plan.intents)[0].1.id, id);
    assert!(plan.requeue.is_some());
    archiving(&mut o, INFO_2);
    let status = step(&mut o, later(300)).status.unwrap();
    assert_eq!(status.total_size.as_deref(), Some("4096"));
    assert_eq!(
        status.time_range.unwrap().end.unwrap().0,
        "2026-11-22T10:05:00Z".parse().unwrap()
    );
    assert_eq!(archiver(&o), id);
}

fn digest_of(action: &pb::Action) -> String {
    match &action.kind {
        Some(pb::action::Kind::Archiver(a)) => a.spec_digest.clone(),
        other => panic!("not an archiver: {other:?}"),
    }
}

#[test]
fn a_changed_retention_reaches_the_running_archiver_as_a_new_spec_digest_in_the_same_run() {
    let mut o = continuous();
    let first = step(&mut o, now());
    let (_, action) = dispatched(&first.intents)[0];
    let (id, digest) = (action.id.clone(), digest_of(action));
    assert_eq!(digest.len(), 32);
    // The StatefulSet carries the digest the action does.
    assert_eq!(
        statefulset_of(action).metadata.annotations.unwrap()
            [well_known::annotation::ARCHIVER_SPEC_DIGEST],
        digest
    );
    archiving(&mut o, INFO_1);
    // Unchanged: the same digest every reconcile (a re-dispatch the agent ignores).
    let again = step(&mut o, later(10));
    assert_eq!(digest_of(dispatched(&again.intents)[0].1), digest);
    // The entry's retention was synced into the Backup (RetentionSynced): a new digest, the new
    // DP_TTL_SECONDS, and the same action id (the same run: the agent restarts its pod).
    o.backup.spec.retention_period = Some("1h".into());
    let changed = step(&mut o, later(20));
    let (_, action) = dispatched(&changed.intents)[0];
    assert_eq!(action.id, id);
    assert_ne!(digest_of(action), digest);
    assert!(
        env_of_set(&statefulset_of(action)).contains(&("DP_TTL_SECONDS".into(), "3600".into()))
    );
    let status = changed.status.unwrap();
    assert_eq!(status.phase, Some(BackupPhase::Running));
    assert_eq!(entry(&status, ARCHIVER).phase, Some(ActionPhase::Running));
    // A changed archive interval (the entry's cron) is a new spec too.
    let retained = digest_of(action);
    o.schedule.as_mut().unwrap().spec.schedules[0].cron_expression = "*/1 * * * *".into();
    let recron = step(&mut o, later(30));
    assert_ne!(digest_of(dispatched(&recron.intents)[0].1), retained);
}

#[test]
fn a_lost_node_keeps_the_continuous_backup_running() {
    let mut o = continuous();
    step(&mut o, now());
    archiving(&mut o, INFO_1);
    step(&mut o, later(10));
    o.agents.actions.clear();
    o.agents.disconnect("node-a", later(20));
    let plan = step(&mut o, later(20 + GRACE.as_secs() as i64 + 60));
    let status = plan.status.unwrap();
    assert_eq!(status.phase, Some(BackupPhase::Running));
    assert_eq!(entry(&status, ARCHIVER).phase, Some(ActionPhase::Running));
    // Re-assigned for when the agent is back; the time range is what was archived.
    assert_eq!(dispatched(&plan.intents).len(), 1);
    assert_eq!(status.total_size.as_deref(), Some("1024"));
}

#[test]
fn an_archiver_the_agent_cannot_run_fails_the_backup_with_its_reason() {
    let mut o = continuous();
    step(&mut o, now());
    let id = archiver(&o);
    o.agents.report(
        id.clone(),
        reported(ReportedPhase::Failed).because("statefulset default/b1 belongs to action x"),
    );
    let plan = step(&mut o, later(5));
    let status = plan.status.clone().unwrap();
    assert_eq!(status.phase, Some(BackupPhase::Failed));
    assert_eq!(
        entry(&status, ARCHIVER).failure_reason.as_deref(),
        Some("statefulset default/b1 belongs to action x")
    );
    assert!(
        plan.intents
            .contains(&Intent::Acknowledge { action_id: id })
    );
}

// ---------------------------------------------------------------- disable, re-enable, delete

#[test]
fn disabling_the_entry_stops_the_archiver_and_completes_the_backup() {
    let mut o = continuous();
    step(&mut o, now());
    archiving(&mut o, INFO_1);
    step(&mut o, later(10));
    let id = archiver(&o);
    o.schedule = Some(schedule(false));
    let plan = step(&mut o, later(60));
    let status = plan.status.clone().unwrap();
    assert_eq!(status.phase, Some(BackupPhase::Completed));
    assert_eq!(status.completion_timestamp, Some(Time(later(60))));
    assert_eq!(status.duration.as_deref(), Some("1m0s"));
    // Expiration: completion + 2d (§7.1).
    assert_eq!(
        status.expiration.clone().unwrap().0,
        "2026-11-24T10:01:00Z".parse().unwrap()
    );
    let archiver_entry = entry(&status, ARCHIVER);
    assert_eq!(archiver_entry.phase, Some(ActionPhase::Completed));
    assert_eq!(archiver_entry.available_replicas, Some(0));
    assert_eq!(cancels(&plan), [("node-a".to_string(), id.clone())]);
    assert!(dispatched(&plan.intents).is_empty());
    // The time range archived so far stays.
    assert_eq!(status.total_size.as_deref(), Some("1024"));
    // The agent reports the cancelled archiver: its result is acknowledged.
    o.agents
        .report(id.clone(), reported(ReportedPhase::Cancelled));
    let plan = step(&mut o, later(65));
    assert!(
        plan.intents
            .contains(&Intent::Acknowledge { action_id: id })
    );
    assert_eq!(
        o.backup.status.as_ref().unwrap().phase,
        Some(BackupPhase::Completed)
    );
    assert!(plan.requeue.is_some(), "looked at again to be reopened");
}

#[test]
fn a_cancel_lost_to_a_restart_is_sent_again() {
    let mut o = continuous();
    step(&mut o, now());
    o.schedule = Some(schedule(false));
    step(&mut o, later(60));
    let id = archiver(&o);
    // The agent still runs it (the Cancel never reached it).
    o.agents
        .report(id.clone(), reported(ReportedPhase::Running));
    let plan = step(&mut o, later(70));
    assert_eq!(cancels(&plan), [("node-a".to_string(), id)]);
}

#[test]
fn re_enabling_the_entry_reopens_the_backup_with_a_new_archiver_run() {
    let mut o = continuous();
    step(&mut o, now());
    archiving(&mut o, INFO_1);
    step(&mut o, later(10));
    let first = archiver(&o);
    o.schedule = Some(schedule(false));
    step(&mut o, later(60));
    o.agents
        .report(first.clone(), reported(ReportedPhase::Cancelled));
    step(&mut o, later(61));
    o.schedule = Some(schedule(true));
    let plan = step(&mut o, later(120));
    let status = plan.status.clone().unwrap();
    assert_eq!(status.phase, Some(BackupPhase::Running));
    assert_eq!(status.completion_timestamp, None);
    assert_eq!(status.duration, None);
    assert_eq!(status.expiration, None);
    assert_eq!(status.start_timestamp, Some(Time(now())));
    let archiver_entry = entry(&status, ARCHIVER);
    assert_eq!(archiver_entry.phase, Some(ActionPhase::Running));
    assert_eq!(archiver_entry.start_timestamp, Some(Time(later(120))));
    let second = archiver(&o);
    assert_ne!(second, first, "a new run has a new id");
    let sent = dispatched(&plan.intents);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].1.id, second);
    // The old run's late report does not disturb the new one.
    let status = step(&mut o, later(125)).status.unwrap();
    assert_eq!(status.phase, Some(BackupPhase::Running));
    // The time range goes on from what was archived.
    assert_eq!(status.total_size.as_deref(), Some("1024"));
}

#[test]
fn deleting_the_schedule_or_the_policy_completes_the_backup() {
    for gone in ["schedule", "policy", "schedule being deleted"] {
        let mut o = continuous();
        step(&mut o, now());
        let id = archiver(&o);
        match gone {
            "schedule" => o.schedule = None,
            "policy" => o.policy = None,
            _ => {
                let mut deleting = schedule(true);
                deleting.metadata.deletion_timestamp = Some(Time(later(30)));
                o.schedule = Some(deleting);
            }
        }
        let plan = step(&mut o, later(60));
        let status = plan.status.clone().unwrap();
        assert_eq!(status.phase, Some(BackupPhase::Completed), "{gone}");
        assert_eq!(status.failure_reason, None, "{gone}");
        assert_eq!(cancels(&plan), [("node-a".to_string(), id)], "{gone}");
        // Not reopened while it stays so.
        let plan = step(&mut o, later(90));
        assert_eq!(
            o.backup.status.as_ref().unwrap().phase,
            Some(BackupPhase::Completed),
            "{gone}"
        );
        assert!(dispatched(&plan.intents).is_empty(), "{gone}");
    }
}

#[test]
fn deleting_a_running_continuous_backup_cancels_its_archiver() {
    let mut o = continuous();
    step(&mut o, now());
    o.backup
        .metadata
        .finalizers
        .get_or_insert_with(Vec::new)
        .push(well_known::FINALIZER.into());
    let id = archiver(&o);
    o.agents
        .report(id.clone(), reported(ReportedPhase::Running));
    o.backup.metadata.deletion_timestamp = Some(Time(later(5)));
    let plan = plan(&o, later(10));
    assert_eq!(cancels(&plan), [("node-a".to_string(), id)]);
}

// ---------------------------------------------------------------- stalls and crashes

fn condition<'s>(
    status: &'s BackupStatus,
    type_: &str,
) -> &'s k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
    status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == type_)
        .unwrap()
}

fn warned(plan: &Plan<BackupStatus>, reason: &str) -> Vec<String> {
    plan.intents
        .iter()
        .filter_map(|i| match i {
            Intent::Event {
                type_: EventType::Warning,
                reason: r,
                message,
            } if r == reason => Some(message.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_time_range_that_stops_advancing_is_reported_once_with_since_when() {
    let mut o = continuous();
    step(&mut o, now());
    archiving(&mut o, INFO_1);
    // The cron is every 5 minutes: a stall is three intervals, 15 minutes.
    let plan = step(&mut o, later(900));
    let status = plan.status.clone().unwrap();
    assert_eq!(condition(&status, "ArchiveStalled").status, "False");
    assert!(warned(&plan, "ArchiveStalled").is_empty());

    let plan = step(&mut o, later(901));
    let status = plan.status.clone().unwrap();
    let stalled = condition(&status, "ArchiveStalled");
    assert_eq!(stalled.status, "True");
    assert_eq!(stalled.reason, "TimeRangeNotAdvancing");
    assert_eq!(
        warned(&plan, "ArchiveStalled"),
        ["timeRange.end has not advanced since 2026-11-22T10:00:00Z (for 15m1s, more than 15m0s)"]
    );
    assert_eq!(status.phase, Some(BackupPhase::Running));
    // Said once, not at every look.
    assert!(warned(&step(&mut o, later(930)), "ArchiveStalled").is_empty());

    // The archiver catches up: no longer stalled.
    archiving(&mut o, INFO_2);
    let status = step(&mut o, later(960)).status.unwrap();
    assert_eq!(condition(&status, "ArchiveStalled").status, "False");
}

#[test]
fn a_stall_threshold_can_be_set() {
    let mut o = continuous();
    o.settings.continuous_stall_after = Some(std::time::Duration::from_secs(30));
    step(&mut o, now());
    // No info file yet: the run's start is where the stall counts from.
    let plan = step(&mut o, later(31));
    assert_eq!(
        warned(&plan, "ArchiveStalled"),
        ["timeRange.end has not advanced since 2026-11-22T10:00:00Z (for 31s, more than 30s)"]
    );
}

#[test]
fn an_archiver_that_keeps_crashing_is_reported_with_its_last_log_lines() {
    let mut o = continuous();
    step(&mut o, now());
    let id = archiver(&o);
    let crashing = |restarts: u32| {
        let mut report = reported(ReportedPhase::Running).with_info(Some(INFO_1));
        report.restarts = restarts;
        report.last_failure = Some(format!(
            "Error (exit code 1); last log lines: datasafed: connection refused #{restarts}"
        ));
        report
    };
    o.agents.report(id.clone(), crashing(2));
    let plan = step(&mut o, later(10));
    assert!(
        warned(&plan, "ArchiverRestarting").is_empty(),
        "twice is not repeatedly"
    );
    o.agents.report(id.clone(), crashing(3));
    let plan = step(&mut o, later(20));
    let message = "the archiver restarted 3 times; last: Error (exit code 1); last log lines: datasafed: connection refused #3";
    assert_eq!(warned(&plan, "ArchiverRestarting"), [message]);
    let status = plan.status.unwrap();
    let restarting = condition(&status, "ArchiverRestarting");
    assert_eq!(
        (restarting.status.as_str(), restarting.message.as_str()),
        ("True", message)
    );
    assert!(warned(&step(&mut o, later(25)), "ArchiverRestarting").is_empty());
    o.agents.report(id, crashing(4));
    assert_eq!(
        warned(&step(&mut o, later(30)), "ArchiverRestarting").len(),
        1
    );
}

// ---------------------------------------------------------------- gaps

fn info(start: &str, end: &str) -> String {
    format!(
        r#"{{"totalSize":"1024","timeRange":{{"start":"2026-11-22T{start}:00Z","end":"2026-11-22T{end}:00Z","timeZone":"+00:00"}}}}"#
    )
}

fn range_and_gaps(status: &BackupStatus) -> (String, String, Vec<(String, String)>) {
    let range = status.time_range.clone().unwrap();
    let text = |t: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>| {
        t.map(|t| t.0.to_string()).unwrap_or_default()
    };
    let gaps = status
        .gaps
        .iter()
        .flatten()
        .map(|g| (g.start.0.to_string(), g.end.0.to_string()))
        .collect();
    (text(range.start), text(range.end), gaps)
}

#[test]
fn an_archiver_that_starts_a_new_window_after_its_end_leaves_a_gap_reported_once() {
    let mut o = continuous();
    step(&mut o, now());
    archiving(&mut o, &info("09:00", "09:30"));
    let status = step(&mut o, later(10)).status.unwrap();
    assert!(status.gaps.is_none());
    assert!(
        status
            .conditions
            .iter()
            .flatten()
            .all(|c| c.type_ != "ArchiveGap"),
        "no gap, no condition"
    );
    // Back after the database lost what it had not archived: a new window from 09:50.
    archiving(&mut o, &info("09:50", "09:55"));
    let plan = step(&mut o, later(20));
    let status = plan.status.clone().unwrap();
    assert_eq!(
        range_and_gaps(&status),
        (
            "2026-11-22T09:00:00Z".into(),
            "2026-11-22T09:55:00Z".into(),
            vec![("2026-11-22T09:30:00Z".into(), "2026-11-22T09:50:00Z".into())]
        ),
        "the window keeps its start and records the gap"
    );
    let gap = condition(&status, "ArchiveGap");
    assert_eq!(
        (gap.status.as_str(), gap.reason.as_str()),
        ("True", "ArchiverStartedNewWindow")
    );
    assert!(
        gap.message
            .contains("from 2026-11-22T09:30:00Z to 2026-11-22T09:50:00Z"),
        "{}",
        gap.message
    );
    let warnings = warned(&plan, "ArchiveGap");
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("gap from 2026-11-22T09:30:00Z to 2026-11-22T09:50:00Z"),
        "{warnings:?}"
    );
    // The archiver goes on in its new window: the gap stays, said once.
    archiving(&mut o, &info("09:50", "10:05"));
    let plan = step(&mut o, later(30));
    assert!(warned(&plan, "ArchiveGap").is_empty());
    assert_eq!(
        range_and_gaps(&plan.status.unwrap()),
        (
            "2026-11-22T09:00:00Z".into(),
            "2026-11-22T10:05:00Z".into(),
            vec![("2026-11-22T09:30:00Z".into(), "2026-11-22T09:50:00Z".into())]
        )
    );
}

#[test]
fn an_archiver_restarted_in_the_same_window_leaves_no_gap() {
    let mut o = continuous();
    step(&mut o, now());
    archiving(&mut o, &info("09:00", "09:30"));
    step(&mut o, later(10));
    // Down for twenty minutes (a kill -9), then back with the same start: no gap.
    archiving(&mut o, &info("09:00", "09:55"));
    let plan = step(&mut o, later(20));
    let status = plan.status.clone().unwrap();
    assert_eq!(
        range_and_gaps(&status),
        (
            "2026-11-22T09:00:00Z".into(),
            "2026-11-22T09:55:00Z".into(),
            vec![]
        )
    );
    assert!(warned(&plan, "ArchiveGap").is_empty());
}

#[test]
fn retention_trimming_the_archive_moves_the_start_and_drops_the_gaps_before_it() {
    let mut o = continuous();
    step(&mut o, now());
    archiving(&mut o, &info("09:00", "09:30"));
    step(&mut o, later(10));
    archiving(&mut o, &info("09:50", "10:00"));
    step(&mut o, later(20));
    // The archiver pruned everything older than 09:40 (its DP_TTL_SECONDS): the part before
    // the gap is gone, and so is the gap; the start is the end of the gap.
    archiving(&mut o, &info("09:40", "10:10"));
    let status = step(&mut o, later(30)).status.unwrap();
    assert_eq!(
        range_and_gaps(&status),
        (
            "2026-11-22T09:50:00Z".into(),
            "2026-11-22T10:10:00Z".into(),
            vec![]
        )
    );
    assert_eq!(condition(&status, "ArchiveGap").status, "False");
    // Trimmed again, inside the window: the start follows.
    archiving(&mut o, &info("09:55", "10:15"));
    let status = step(&mut o, later(40)).status.unwrap();
    assert_eq!(
        range_and_gaps(&status).0,
        "2026-11-22T09:55:00Z".to_string()
    );
}

// ---------------------------------------------------------------- re-driving a Failed one

fn restarted(plan: &Plan<BackupStatus>) -> Vec<String> {
    plan.intents
        .iter()
        .filter_map(|i| match i {
            Intent::Event {
                type_: EventType::Normal,
                reason,
                message,
            } if reason == "ContinuousBackupRestarted" => Some(message.clone()),
            _ => None,
        })
        .collect()
}

/// A continuous Backup whose archiver the agent could not run, Failed at `later(5)`.
fn failed_archiver() -> (Observed, String) {
    let mut o = continuous();
    step(&mut o, now());
    let id = archiver(&o);
    o.agents.report(
        id.clone(),
        reported(ReportedPhase::Failed).because("statefulset default/b1 belongs to action x"),
    );
    let status = step(&mut o, later(5)).status.unwrap();
    assert_eq!(status.phase, Some(BackupPhase::Failed));
    (o, id)
}

#[test]
fn a_failed_continuous_backup_whose_entry_is_enabled_runs_again_with_a_new_archiver_run() {
    let (mut o, failed_id) = failed_archiver();
    // Not in a tight loop: looked at again once the recheck interval has passed.
    let plan = step(&mut o, later(7));
    assert!(plan.status.is_none(), "still Failed for now");
    assert_eq!(plan.requeue, Some(std::time::Duration::from_secs(3)));
    assert!(dispatched(&plan.intents).is_empty());

    let plan = step(&mut o, later(10));
    let status = plan.status.clone().unwrap();
    assert_eq!(status.phase, Some(BackupPhase::Running));
    assert_eq!(status.failure_reason, None);
    assert_eq!(status.completion_timestamp, None);
    assert_eq!(status.expiration, None);
    let archiver_entry = entry(&status, ARCHIVER);
    assert_eq!(archiver_entry.phase, Some(ActionPhase::Running));
    assert_eq!(archiver_entry.failure_reason, None);
    assert_eq!(archiver_entry.start_timestamp, Some(Time(later(10))));
    let new_id = archiver(&o);
    assert_ne!(new_id, failed_id, "a new run, not the failed one");
    assert_eq!(dispatched(&plan.intents)[0].1.id, new_id);
    assert_eq!(
        restarted(&plan),
        [
            "the schedule entry is still enabled: the failed continuous backup runs again (it failed: there are failed actions, you can obtain the more informations in the status.actions)"
        ]
    );
    // It archives as before.
    archiving(&mut o, INFO_1);
    let status = step(&mut o, later(20)).status.unwrap();
    assert_eq!(status.phase, Some(BackupPhase::Running));
    assert_eq!(status.total_size.as_deref(), Some("1024"));
}

#[test]
fn a_failed_continuous_backup_whose_entry_is_disabled_stays_failed() {
    let (mut o, _) = failed_archiver();
    o.schedule = Some(schedule(false));
    let plan = step(&mut o, later(60));
    assert!(plan.status.is_none());
    assert!(dispatched(&plan.intents).is_empty());
    assert!(restarted(&plan).is_empty());
    assert_eq!(
        o.backup.status.as_ref().unwrap().phase,
        Some(BackupPhase::Failed)
    );
    o.schedule = None;
    assert!(step(&mut o, later(120)).status.is_none());
}

#[test]
fn a_continuous_backup_that_failed_before_it_started_is_resolved_again() {
    let mut o = continuous();
    let pods = std::mem::take(&mut o.pods);
    let status = step(&mut o, now()).status.unwrap();
    assert_eq!(status.phase, Some(BackupPhase::Failed));
    assert!(status.start_timestamp.is_none());
    // Still no pod: it fails again, no sooner than the recheck interval.
    let plan = step(&mut o, later(5));
    assert_eq!(
        plan.status.as_ref().and_then(|s| s.phase),
        Some(BackupPhase::Failed)
    );
    assert_eq!(restarted(&plan).len(), 1);
    // The pod is back: it runs.
    o.pods = pods;
    let plan = step(&mut o, later(10));
    let status = plan.status.clone().unwrap();
    assert_eq!(status.phase, Some(BackupPhase::Running));
    assert_eq!(status.start_timestamp, Some(Time(later(10))));
    assert_eq!(dispatched(&plan.intents).len(), 1);
}
