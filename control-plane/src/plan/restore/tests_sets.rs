//! Restores of several backup sets (§4.1, §3.2): a point-in-time restore of a Continuous
//! backup (its base, then the continuous set), a Differential backup (its parent, then itself),
//! each set restored after the one before it, with its own ActionSet, env, jobs and grant.

use cairn_api::backup::Backup;
use cairn_api::restore::{RestoreActionStatus, RestorePhase, RestoreStage};
use cairn_api::well_known::conditions::restore::{
    CONDITION_PREPARE_DATA, CONDITION_VALIDATION_PASSED,
};
use serde_json::json;

use super::tests::*;
use super::*;
use crate::plan::agent_view::ReportedPhase;

/// The continuous backup `c1` of cluster `mycluster` (policy pg-policy), archiving from 08:00
/// to 09:50 UTC, in zone +08:00, Running.
pub(super) fn continuous_backup(extra: serde_json::Value) -> Backup {
    let mut value = json!({
        "apiVersion": "dataprotection.kubeblocks.io/v1alpha1", "kind": "Backup",
        "metadata": {"name": "c1", "namespace": "default", "uid": "c-uid", "labels": {
            "dataprotection.kubeblocks.io/backup-type": "Continuous",
            "dataprotection.kubeblocks.io/backup-policy": "pg-policy",
            "app.kubernetes.io/instance": "mycluster"}},
        "spec": {"backupPolicyName": "pg-policy", "backupMethod": "archive-wal"},
        "status": {
            "phase": "Running",
            "path": "/prod/default/mycluster/pg/c1",
            "backupRepoName": "repo1",
            "startTimestamp": "2026-11-22T07:59:00Z",
            "timeRange": {"start": "2026-11-22T08:00:00Z", "end": "2026-11-22T09:50:00Z",
                          "timeZone": "+08:00"},
            "backupMethod": {"name": "archive-wal", "actionSetName": "pg-pitr",
                "targetVolumes": {"volumeMounts": [{"name": "data", "mountPath": "/var/lib/pg"}]}},
            "target": {"podSelector": {"matchLabels": {"app": "pg"}},
                       "selectedTargetPods": ["pg-0"]}
        }
    });
    json_patch::merge(&mut value, &extra);
    serde_json::from_value(value).unwrap()
}

/// A Completed `kind` backup of mycluster ending at `end` (UTC), in zone -05:00.
pub(super) fn base(name: &str, kind: &str, end: &str, extra: serde_json::Value) -> Backup {
    let mut value = json!({
        "apiVersion": "dataprotection.kubeblocks.io/v1alpha1", "kind": "Backup",
        "metadata": {"name": name, "namespace": "default", "labels": {
            "dataprotection.kubeblocks.io/backup-type": kind,
            "dataprotection.kubeblocks.io/backup-policy": "pg-policy",
            "app.kubernetes.io/instance": "mycluster"}},
        "spec": {"backupPolicyName": "pg-policy", "backupMethod": "basebackup"},
        "status": {
            "phase": "Completed",
            "path": format!("/prod/default/mycluster/pg/{name}"),
            "backupRepoName": "repo1",
            "completionTimestamp": end,
            "timeRange": {"start": "2026-11-22T08:01:00Z", "end": end, "timeZone": "-05:00"},
            "backupMethod": {"name": "basebackup", "actionSetName": "pg-basebackup",
                "targetVolumes": {"volumeMounts": [{"name": "data", "mountPath": "/var/lib/pg"}]}},
            "target": {"podSelector": {"matchLabels": {"app": "pg"}},
                       "selectedTargetPods": ["pg-0"]}
        }
    });
    json_patch::merge(&mut value, &extra);
    serde_json::from_value(value).unwrap()
}

fn pitr_actionset(extra: serde_json::Value) -> ActionSet {
    let mut value = json!({
        "apiVersion": "dataprotection.kubeblocks.io/v1alpha1", "kind": "ActionSet",
        "metadata": {"name": "pg-pitr"},
        "spec": {
            "backupType": "Continuous",
            "env": [{"name": "DP_TIME_FORMAT", "value": "2006-01-02 15:04:05 MST"}],
            "restore": {"prepareData": {"image": "postgres:16", "command": ["sh", "-c", "replay"]}}
        }
    });
    json_patch::merge(&mut value, &extra);
    serde_json::from_value(value).unwrap()
}

/// Restore `r1` of `c1` to 09:00:00Z. Fulls: f0 ended before the continuous backup started,
/// f1 at 08:30 (the base), f2 after the restore time, f3 of another cluster, f4 Failed.
pub(super) fn pitr() -> Observed {
    let mut o = observed();
    o.restore = restore(json!({"spec": {"backup": {"name": "c1"},
                                        "restoreTime": "2026-11-22T09:00:00Z"}}));
    o.backup = Some(continuous_backup(json!({})));
    o.actionset = Some(pitr_actionset(json!({})));
    o.actionsets = vec![actionset(json!({}))];
    o.backups = vec![
        base("f0", "Full", "2026-11-22T07:50:00Z", json!({})),
        base("f1", "Full", "2026-11-22T08:30:00Z", json!({})),
        base("f2", "Full", "2026-11-22T09:20:00Z", json!({})),
        base(
            "f3",
            "Full",
            "2026-11-22T08:45:00Z",
            json!({"metadata": {"labels": {"app.kubernetes.io/instance": "other"}}}),
        ),
        base(
            "f4",
            "Full",
            "2026-11-22T08:40:00Z",
            json!({"status": {"phase": "Failed"}}),
        ),
        continuous_backup(json!({})),
    ];
    o
}

pub(super) fn job_name(backup: &str, k: usize) -> String {
    format!("restore-preparedata-abcdef01-{backup}-{k}")
}

/// The agent reports the action of the entry (`name`, `key`) of set `backup`.
pub(super) fn report_set(
    o: &mut Observed,
    name: &str,
    key: &str,
    backup: &str,
    phase: ReportedPhase,
) {
    let reason = if phase == ReportedPhase::Failed {
        "BackoffLimitExceeded"
    } else {
        ""
    };
    let id = work::set_entry_id(&o.restore, name, key, backup);
    o.agents
        .report(id, reported(phase).because(reason).finished(later(30)));
}

/// Names of the Jobs dispatched by `plan`.
pub(super) fn dispatched_jobs(plan: &Plan<RestoreStatus>) -> Vec<String> {
    dispatched(&plan.intents)
        .iter()
        .map(|(_, a)| job_of(a).metadata.name.unwrap())
        .collect()
}

fn failure(o: &mut Observed) -> String {
    let plan = step(o, now());
    let status = plan.status.unwrap();
    assert_eq!(status.phase, Some(RestorePhase::Failed), "{status:?}");
    condition(&status, CONDITION_VALIDATION_PASSED).2
}

/// The first dispatched job of the first reconcile.
fn first_job(o: &mut Observed) -> k8s_openapi::api::batch::v1::Job {
    let plan = step(o, now());
    job_of(dispatched(&plan.intents)[0].1)
}

#[test]
fn a_point_in_time_restore_restores_the_base_then_the_continuous_backup() {
    let mut o = pitr();
    let plan = step(&mut o, now());
    let status = plan.status.clone().unwrap();
    assert_eq!(status.phase, Some(RestorePhase::Running), "{status:?}");
    assert!(
        events(&plan.intents)
            .iter()
            .any(|(_, r, m)| r == "RestoreStarting" && m.contains("f1 -> c1")),
        "{:?}",
        events(&plan.intents)
    );
    assert_eq!(
        dispatched_jobs(&plan),
        [job_name("f1", 0), job_name("f1", 1)]
    );
    let entries = work::entries(&status, RestoreStage::PrepareData).to_vec();
    assert!(
        entries
            .iter()
            .all(|e| e.name == "prepareData-0" && e.backup_name == "f1")
    );

    // One base job done: the continuous set still waits.
    let key0 = format!("Job/{}", job_name("f1", 0));
    let key1 = format!("Job/{}", job_name("f1", 1));
    report_set(
        &mut o,
        "prepareData-0",
        &key0,
        "f1",
        ReportedPhase::Succeeded,
    );
    let plan = step(&mut o, later(10));
    assert_eq!(dispatched_jobs(&plan), [job_name("f1", 1)]);

    // The base is restored: the continuous set starts, as prepareData-1.
    report_set(
        &mut o,
        "prepareData-0",
        &key1,
        "f1",
        ReportedPhase::Succeeded,
    );
    let plan = step(&mut o, later(20));
    assert_eq!(
        dispatched_jobs(&plan),
        [job_name("c1", 0), job_name("c1", 1)]
    );
    let status = plan.status.clone().unwrap();
    let (_, _, message) = condition(&status, CONDITION_PREPARE_DATA);
    assert_eq!(
        message,
        "start to prepare data of backup \"c1\" (backup set 2 of 2)"
    );
    let continuous: Vec<_> = work::entries(&status, RestoreStage::PrepareData)
        .iter()
        .filter(|e| e.backup_name == "c1")
        .cloned()
        .collect();
    assert_eq!(continuous.len(), 2);
    assert!(continuous.iter().all(|e| e.name == "prepareData-1"));

    for k in 0..2 {
        let key = format!("Job/{}", job_name("c1", k));
        report(&mut o, "prepareData-1", &key, ReportedPhase::Succeeded);
    }
    let plan = step(&mut o, later(40));
    let status = plan.status.unwrap();
    assert_eq!(status.phase, Some(RestorePhase::Completed));
    assert!(
        work::entries(&status, RestoreStage::PrepareData)
            .iter()
            .all(|e| e.status == Some(RestoreActionStatus::Completed))
    );
}

#[test]
fn the_sets_of_a_point_in_time_restore_get_kubeblocks_env() {
    let mut o = pitr();
    let job = first_job(&mut o);
    let get = |name: &str| env_value(&job, name);
    // The base set: its own name and zone (-05:00), RFC 3339 (its ActionSet has no layout).
    assert_eq!(get("DP_BACKUP_NAME").as_deref(), Some("f1"));
    assert_eq!(
        get("DP_BACKUP_STOP_TIME").as_deref(),
        Some("2026-11-22T03:30:00-05:00")
    );
    assert_eq!(
        get("DP_RESTORE_TIME").as_deref(),
        Some("2026-11-22T04:00:00-05:00")
    );
    assert_eq!(get("DP_RESTORE_TIMESTAMP").as_deref(), Some("1795338000"));
    assert_eq!(get("DP_BASE_BACKUP_NAME"), None);

    // The continuous set: its base, its layout and zone (+08:00); the base's times in the
    // base's zone.
    for k in 0..2 {
        let key = format!("Job/{}", job_name("f1", k));
        report_set(
            &mut o,
            "prepareData-0",
            &key,
            "f1",
            ReportedPhase::Succeeded,
        );
    }
    let plan = step(&mut o, later(20));
    let job = job_of(dispatched(&plan.intents)[0].1);
    let names: Vec<String> = env_of(&job).into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names[..12],
        [
            "DP_BACKUP_NAME",
            "DP_TARGET_RELATIVE_PATH",
            "DP_BACKUP_ROOT_PATH",
            "DP_BACKUP_BASE_PATH",
            "DP_BASE_BACKUP_NAME",
            "DP_BACKUP_STOP_TIME",
            "DP_BASE_BACKUP_START_TIME",
            "DP_BASE_BACKUP_START_TIMESTAMP",
            "DP_BASE_BACKUP_STOP_TIME",
            "DP_BASE_BACKUP_STOP_TIMESTAMP",
            "DP_RESTORE_TIME",
            "DP_RESTORE_TIMESTAMP",
        ]
    );
    let get = |name: &str| env_value(&job, name).unwrap();
    assert_eq!(get("DP_BACKUP_NAME"), "c1");
    assert_eq!(get("DP_BACKUP_BASE_PATH"), "/prod/default/mycluster/pg/c1");
    assert_eq!(get("DP_BASE_BACKUP_NAME"), "f1");
    assert_eq!(get("DP_BACKUP_STOP_TIME"), "2026-11-22 17:50:00 +0800");
    assert_eq!(
        get("DP_BASE_BACKUP_START_TIME"),
        "2026-11-22 03:01:00 -0500"
    );
    assert_eq!(get("DP_BASE_BACKUP_STOP_TIME"), "2026-11-22 03:30:00 -0500");
    assert_eq!(get("DP_BASE_BACKUP_STOP_TIMESTAMP"), "1795336200");
    assert_eq!(get("DP_RESTORE_TIME"), "2026-11-22 17:00:00 +0800");
    assert_eq!(get("DP_RESTORE_TIMESTAMP"), "1795338000");
    assert_eq!(get("DP_TIME_FORMAT"), "2006-01-02 15:04:05 MST");
}

#[test]
fn a_continuous_backup_may_be_restored_while_it_still_runs() {
    let mut o = pitr();
    let plan = step(&mut o, now());
    assert_eq!(plan.status.unwrap().phase, Some(RestorePhase::Running));
}

#[test]
fn a_restore_time_outside_the_window_fails_naming_the_window() {
    for (at, shown) in [
        ("2026-11-22T07:59:59Z", "2026-11-22T07:59:59Z"),
        ("2026-11-22T09:50:01Z", "2026-11-22T09:50:01Z"),
    ] {
        let mut o = pitr();
        o.restore.spec.restore_time = Some(at.into());
        assert_eq!(
            failure(&mut o),
            format!(
                "restore time out of the range for backup \"c1\": {shown} is not within its window 2026-11-22T08:00:00Z .. 2026-11-22T09:50:00Z"
            )
        );
    }
}

#[test]
fn the_ends_of_the_window_and_a_base_ending_exactly_there_are_restorable() {
    // The base ends exactly at the restore time.
    let mut o = pitr();
    o.restore.spec.restore_time = Some("2026-11-22T08:30:00Z".into());
    assert_eq!(first_job_backup(&mut o), "f1");
    // A base ending exactly when archiving started is continuous with it.
    let mut o = pitr();
    o.backups
        .push(base("f5", "Full", "2026-11-22T08:00:00Z", json!({})));
    o.restore.spec.restore_time = Some("2026-11-22T08:10:00Z".into());
    assert_eq!(first_job_backup(&mut o), "f5");
    // The end of the window.
    let mut o = pitr();
    o.restore.spec.restore_time = Some("2026-11-22T09:50:00Z".into());
    assert_eq!(first_job_backup(&mut o), "f2");
}

fn first_job_backup(o: &mut Observed) -> String {
    env_value(&first_job(o), "DP_BACKUP_NAME").unwrap()
}

#[test]
fn a_continuous_restore_without_restore_time_fails_saying_what_it_can_reach() {
    let mut o = pitr();
    o.restore.spec.restore_time = None;
    assert_eq!(
        failure(&mut o),
        "spec.restoreTime is required to restore continuous backup \"c1\"; it can restore to a time within 2026-11-22T08:00:00Z .. 2026-11-22T09:50:00Z"
    );
}

#[test]
fn a_continuous_backup_without_a_time_range_fails_with_kubeblocks_message() {
    let mut o = pitr();
    o.backup = Some(continuous_backup(
        json!({"status": {"timeRange": null, "startTimestamp": null}}),
    ));
    assert_eq!(
        failure(&mut o),
        "startTimeStamp or completeTimeStamp of backup \"c1\" is empty: its status.timeRange is (no start) .. (no end)"
    );
}

#[test]
fn an_invalid_restore_time_fails_quoting_it() {
    let mut o = pitr();
    o.restore.spec.restore_time = Some("2026-11-22 09:00:00".into());
    assert_eq!(
        failure(&mut o),
        "spec.restoreTime: invalid restore time \"2026-11-22 09:00:00\": want YYYY-MM-DDTHH:MM:SSZ"
    );
}

#[test]
fn without_a_usable_base_the_restore_fails_naming_every_backup_considered() {
    let mut o = pitr();
    o.restore.spec.restore_time = Some("2026-11-22T08:20:00Z".into());
    assert_eq!(
        failure(&mut o),
        "can not found latest full or incremental backup based on backupPolicy \"pg-policy\" and specified restoreTime \"2026-11-22T08:20:00Z\": a base must be Completed, labelled app.kubernetes.io/instance=mycluster, and end between the continuous backup's start 2026-11-22T08:00:00Z and the restore time; considered f2 (Full, ended 2026-11-22T09:20:00Z), f1 (Full, ended 2026-11-22T08:30:00Z), f0 (Full, ended 2026-11-22T07:50:00Z)"
    );
    let mut o = pitr();
    o.backups
        .retain(|b| b.metadata.name.as_deref() == Some("c1"));
    let message = failure(&mut o);
    assert!(
        message.ends_with("no Completed Full or Incremental backup matches"),
        "{message}"
    );
}

#[test]
fn without_cluster_labels_the_base_is_chosen_by_policy() {
    let strip = |b: &mut Backup| {
        if let Some(labels) = b.metadata.labels.as_mut() {
            labels.remove("app.kubernetes.io/instance");
        }
    };
    let mut o = pitr();
    let mut c1 = continuous_backup(json!({}));
    strip(&mut c1);
    o.backup = Some(c1);
    // f3 (another cluster, newer) now matches by policy; f1 of another policy does not.
    for b in o.backups.iter_mut() {
        strip(b);
        if b.metadata.name.as_deref() == Some("f3") {
            b.metadata.labels.as_mut().unwrap().insert(
                "dataprotection.kubeblocks.io/backup-policy".into(),
                "pg-policy".into(),
            );
        }
    }
    assert_eq!(first_job_backup(&mut o), "f3");
    // The cluster labels, when present, all have to match.
    let mut o = pitr();
    for b in o.backups.iter_mut() {
        b.metadata.labels.as_mut().unwrap().insert(
            "dataprotection.kubeblocks.io/cluster-uid".into(),
            "u1".into(),
        );
    }
    let mut c1 = continuous_backup(json!({}));
    c1.metadata.labels.as_mut().unwrap().insert(
        "dataprotection.kubeblocks.io/cluster-uid".into(),
        "u2".into(),
    );
    o.backup = Some(c1);
    let message = failure(&mut o);
    assert!(
        message.contains("labelled dataprotection.kubeblocks.io/cluster-uid=u2,app.kubernetes.io/instance=mycluster"),
        "{message}"
    );
}

#[test]
fn base_backup_required_false_restores_the_continuous_set_alone() {
    let mut o = pitr();
    o.actionset = Some(pitr_actionset(
        json!({"spec": {"restore": {"baseBackupRequired": false}}}),
    ));
    o.backups.clear();
    let plan = step(&mut o, now());
    assert_eq!(
        dispatched_jobs(&plan),
        [job_name("c1", 0), job_name("c1", 1)]
    );
    let job = job_of(dispatched(&plan.intents)[0].1);
    assert_eq!(env_value(&job, "DP_BASE_BACKUP_NAME"), None);
    assert_eq!(
        env_value(&job, "DP_RESTORE_TIME").as_deref(),
        Some("2026-11-22 17:00:00 +0800")
    );
}

#[test]
fn skip_base_backup_restore_in_pitr_runs_the_continuous_set_with_its_base_named() {
    let mut o = pitr();
    o.actionset = Some(pitr_actionset(json!({"metadata": {"annotations": {
        "dataprotection.kubeblocks.io/skip-base-backup-restore-in-pitr": "true"}}})));
    let plan = step(&mut o, now());
    assert_eq!(
        dispatched_jobs(&plan),
        [job_name("c1", 0), job_name("c1", 1)]
    );
    let job = job_of(dispatched(&plan.intents)[0].1);
    assert_eq!(
        env_value(&job, "DP_BASE_BACKUP_NAME").as_deref(),
        Some("f1")
    );
    assert!(
        events(&plan.intents)
            .iter()
            .any(|(_, r, m)| r == "SkipBaseBackupRestoreInPitr" && m.contains("\"f1\"")),
        "{:?}",
        events(&plan.intents)
    );
}

/// `pitr()` whose newest usable base is incremental i2 (09:00) on i1 (08:50) on f1.
fn incremental_base() -> Observed {
    let mut o = pitr();
    let inc = |name: &str, end: &str, parent: &str| {
        base(
            name,
            "Incremental",
            end,
            json!({"spec": {"backupMethod": "inc"},
                   "status": {"parentBackupName": parent, "baseBackupName": "f1",
                              "backupMethod": {"name": "inc", "compatibleMethod": "basebackup",
                                               "actionSetName": "pg-inc"}}}),
        )
    };
    o.backups.push(inc("i1", "2026-11-22T08:50:00Z", "f1"));
    o.backups.push(inc("i2", "2026-11-22T09:00:00Z", "i1"));
    o.actionsets.push(actionset(
        json!({"metadata": {"name": "pg-inc"}, "spec": {"backupType": "Incremental"}}),
    ));
    o
}

#[test]
fn an_incremental_base_is_restored_as_its_chain_then_the_continuous_set() {
    let mut o = incremental_base();
    let plan = step(&mut o, now());
    assert_eq!(
        dispatched_jobs(&plan),
        [job_name("i2", 0), job_name("i2", 1)]
    );
    let job = job_of(dispatched(&plan.intents)[0].1);
    let get = |name: &str| env_value(&job, name);
    assert_eq!(get("DP_BASE_BACKUP_NAME").as_deref(), Some("f1"));
    assert_eq!(
        get("DP_ANCESTOR_INCREMENTAL_BACKUP_NAMES").as_deref(),
        Some("i1")
    );
    for k in 0..2 {
        let key = format!("Job/{}", job_name("i2", k));
        report_set(
            &mut o,
            "prepareData-0",
            &key,
            "i2",
            ReportedPhase::Succeeded,
        );
    }
    let plan = step(&mut o, later(20));
    let job = job_of(dispatched(&plan.intents)[0].1);
    assert_eq!(env_value(&job, "DP_BACKUP_NAME").as_deref(), Some("c1"));
    assert_eq!(
        env_value(&job, "DP_BASE_BACKUP_NAME").as_deref(),
        Some("i2")
    );
    assert_eq!(
        env_value(&job, "DP_ANCESTOR_INCREMENTAL_BACKUP_NAMES"),
        None
    );
}

#[test]
fn an_incremental_base_with_skip_base_backup_restore_fails_with_kubeblocks_message() {
    let mut o = incremental_base();
    o.actionset = Some(pitr_actionset(json!({"metadata": {"annotations": {
        "dataprotection.kubeblocks.io/skip-base-backup-restore-in-pitr": "true"}}})));
    let message = failure(&mut o);
    assert!(
        message.starts_with("unify incremental and continuous restore job is not supported: the base of continuous backup \"c1\" is incremental backup \"i2\""),
        "{message}"
    );
}

#[test]
fn a_broken_chain_under_an_incremental_base_fails_naming_the_link() {
    let mut o = incremental_base();
    o.backups
        .retain(|b| b.metadata.name.as_deref() != Some("i1"));
    assert_eq!(
        failure(&mut o),
        "the chain of incremental backup \"i2\", the base of continuous backup \"c1\", is broken: backup i2 -> parent i1: the parent backup is not found"
    );
}

#[test]
fn a_base_whose_actionset_is_gone_fails_naming_it() {
    let mut o = pitr();
    o.actionsets.clear();
    assert_eq!(
        failure(&mut o),
        "actionsets.dataprotection.kubeblocks.io \"pg-basebackup\" not found: it is the ActionSet of backup \"f1\" (the base of continuous backup \"c1\")"
    );
}

#[test]
fn a_failed_base_fails_the_restore_before_the_continuous_set_starts() {
    let mut o = pitr();
    step(&mut o, now());
    for k in 0..2 {
        let key = format!("Job/{}", job_name("f1", k));
        report_set(&mut o, "prepareData-0", &key, "f1", ReportedPhase::Failed);
    }
    let plan = step(&mut o, later(20));
    assert!(dispatched(&plan.intents).is_empty());
    let status = plan.status.unwrap();
    assert_eq!(status.phase, Some(RestorePhase::Failed));
    assert_eq!(
        condition(&status, CONDITION_PREPARE_DATA).2,
        "restore failed for backup \"f1\", more information can be found in status.actions.prepareData"
    );
}

#[test]
fn a_base_in_another_repository_is_read_through_that_repository() {
    let mut o = pitr();
    for b in o.backups.iter_mut() {
        b.status.as_mut().unwrap().backup_repo_name = Some("repo2".into());
    }
    o.repos.push(repo("repo2", "Ready"));
    // Not rendered yet: the restore waits.
    let plan = step(&mut o, now());
    let status = plan.status.clone().unwrap();
    assert_eq!(status.phase, None);
    let (_, reason, message) = condition(&status, "CheckBackupRepo");
    assert_eq!(reason, "WaitForBackupRepo");
    assert!(message.contains("backup \"f1\""), "{message}");
    o.repo_accesses = vec![tool_access("repo2")];
    let plan = step(&mut o, later(5));
    let Some(cairn_proto::agent::v1::action::Kind::Job(job)) = &dispatched(&plan.intents)[0].1.kind
    else {
        panic!("not a job")
    };
    let grant = job.storage.clone().unwrap();
    assert!(
        format!("{grant:?}").contains("repo2"),
        "the base's grant is for repo2: {grant:?}"
    );
}

#[test]
fn a_full_backup_restored_with_a_restore_time_is_told_the_time() {
    let mut o = observed();
    o.restore = restore(json!({"spec": {"restoreTime": "2026-11-22T09:00:00Z"}}));
    let job = first_job(&mut o);
    assert_eq!(
        env_value(&job, "DP_RESTORE_TIME").as_deref(),
        Some("2026-11-22T17:00:00+08:00")
    );
    assert_eq!(
        env_value(&job, "DP_RESTORE_TIMESTAMP").as_deref(),
        Some("1795338000")
    );
}

// ---------------------------------------------------------------- Differential

/// Differential backup `b1` on its parent full `f1`.
fn differential() -> Observed {
    let mut o = observed();
    o.actionset = Some(actionset(
        json!({"metadata": {"name": "pg-diff"}, "spec": {"backupType": "Differential"}}),
    ));
    o.actionsets = vec![actionset(json!({}))];
    let b1 = backup(
        json!({"status": {"parentBackupName": "f1", "baseBackupName": "f1",
                                      "backupMethod": {"actionSetName": "pg-diff"}}}),
    );
    o.backup = Some(b1.clone());
    o.backups = vec![base("f1", "Full", "2026-11-22T08:30:00Z", json!({})), b1];
    o
}

#[test]
fn a_differential_restore_restores_the_parent_then_the_differential() {
    let mut o = differential();
    let plan = step(&mut o, now());
    assert_eq!(
        dispatched_jobs(&plan),
        [job_name("f1", 0), job_name("f1", 1)]
    );
    for k in 0..2 {
        let key = format!("Job/{}", job_name("f1", k));
        report_set(
            &mut o,
            "prepareData-0",
            &key,
            "f1",
            ReportedPhase::Succeeded,
        );
    }
    let plan = step(&mut o, later(20));
    assert_eq!(
        dispatched_jobs(&plan),
        [job_name("b1", 0), job_name("b1", 1)]
    );
    let job = job_of(dispatched(&plan.intents)[0].1);
    assert_eq!(env_value(&job, "DP_BACKUP_NAME").as_deref(), Some("b1"));
    for k in 0..2 {
        let key = format!("Job/{}", job_name("b1", k));
        report(&mut o, "prepareData-1", &key, ReportedPhase::Succeeded);
    }
    let plan = step(&mut o, later(40));
    assert_eq!(plan.status.unwrap().phase, Some(RestorePhase::Completed));
}

#[test]
fn a_differential_restore_uses_the_spec_parent_when_none_is_recorded() {
    let mut o = differential();
    let b1 = backup(json!({"spec": {"parentBackupName": "f1"},
                           "status": {"backupMethod": {"actionSetName": "pg-diff"}}}));
    o.backup = Some(b1);
    assert_eq!(first_job_backup(&mut o), "f1");
}

#[test]
fn a_differential_without_its_parent_fails_naming_it() {
    let mut o = differential();
    o.backups
        .retain(|b| b.metadata.name.as_deref() != Some("f1"));
    assert_eq!(
        failure(&mut o),
        "backups.dataprotection.kubeblocks.io \"f1\" not found: it is the parent of differential backup \"b1\""
    );
    let mut o = differential();
    o.backup = Some(backup(
        json!({"status": {"backupMethod": {"actionSetName": "pg-diff"}}}),
    ));
    assert_eq!(
        failure(&mut o),
        "differential backup \"b1\" names no parent backup (status.parentBackupName and spec.parentBackupName are empty)"
    );
    let mut o = differential();
    o.backups[0].status.as_mut().unwrap().phase = Some(cairn_api::backup::BackupPhase::Failed);
    assert_eq!(
        failure(&mut o),
        "phase of backup \"f1\" (the parent of differential backup \"b1\") is not completed"
    );
}

// ---------------------------------------------------------------- postReady of several sets

#[test]
fn exec_post_ready_steps_of_two_sets_in_one_pod_are_distinct_actions_run_in_order() {
    let mut o = differential();
    let post = json!({"spec": {"restore": {"prepareData": null,
        "postReady": [{"exec": {"command": ["sh", "-c", "apply"]}}]}}});
    let mut parent_set = actionset(post.clone());
    parent_set.metadata.name = Some("pg-basebackup".into());
    o.actionsets = vec![parent_set];
    let mut own = actionset(post);
    own.metadata.name = Some("pg-diff".into());
    own.spec.backup_type = cairn_api::actionset::BackupType::Differential;
    o.actionset = Some(own);
    o.restore = restore(json!({"spec": {"prepareDataConfig": null, "readyConfig": {
        "execAction": {"target": {"podSelector": {"matchLabels": {"app": "pg"}}}}}}}));
    o.pods = vec![pod("pg-0").on_node("node-a")];
    let plan = step(&mut o, now());
    let first = dispatched(&plan.intents);
    assert_eq!(first.len(), 1);
    let first_id = first[0].1.id.clone();
    report_set(
        &mut o,
        "postReady-0",
        "Pod/pg-0",
        "f1",
        ReportedPhase::Succeeded,
    );
    let plan = step(&mut o, later(10));
    let second = dispatched(&plan.intents);
    assert_eq!(second.len(), 1);
    assert_ne!(
        second[0].1.id, first_id,
        "the second set's exec has its own id"
    );
    let status = plan.status.unwrap();
    let entries: Vec<(String, String)> = work::entries(&status, RestoreStage::PostReady)
        .iter()
        .map(|e| (e.backup_name.clone(), e.name.clone()))
        .collect();
    assert_eq!(
        entries,
        [
            ("f1".to_string(), "postReady-0".to_string()),
            ("b1".to_string(), "postReady-0".to_string())
        ]
    );
}

/// pitr() with a gap in c1's archive from 08:40 to 09:10.
fn pitr_with_gap() -> Observed {
    let gap = json!({"status": {"gaps": [{"start": "2026-11-22T08:40:00Z",
                                          "end": "2026-11-22T09:10:00Z"}]}});
    let mut o = pitr();
    o.backup = Some(continuous_backup(gap.clone()));
    for b in o.backups.iter_mut() {
        if b.metadata.name.as_deref() == Some("c1") {
            *b = continuous_backup(gap.clone());
        }
    }
    o
}

#[test]
fn a_restore_time_inside_a_gap_of_the_archive_fails_naming_the_gap() {
    let mut o = pitr_with_gap();
    o.restore.spec.restore_time = Some("2026-11-22T09:00:00Z".into());
    assert_eq!(
        failure(&mut o),
        "restore time 2026-11-22T09:00:00Z falls in a gap of the archive of backup \"c1\": nothing from 2026-11-22T08:40:00Z to 2026-11-22T09:10:00Z was archived; it can restore up to 2026-11-22T08:40:00Z and from 2026-11-22T09:10:00Z (its window 2026-11-22T08:00:00Z .. 2026-11-22T09:50:00Z)"
    );
    // Both ends of the gap are archived: restorable.
    let mut o = pitr_with_gap();
    o.restore.spec.restore_time = Some("2026-11-22T08:40:00Z".into());
    assert_eq!(first_job_backup(&mut o), "f1");
}

#[test]
fn after_a_gap_the_base_must_end_after_the_gap() {
    // f1 (08:30) ends before the gap: the archive does not lead from it across; f2 (09:20) does.
    let mut o = pitr_with_gap();
    o.restore.spec.restore_time = Some("2026-11-22T09:30:00Z".into());
    assert_eq!(first_job_backup(&mut o), "f2");
    let mut o = pitr_with_gap();
    o.restore.spec.restore_time = Some("2026-11-22T09:15:00Z".into());
    let message = failure(&mut o);
    assert!(
        message.contains("and end between the end of the gap in its archive before the restore time, 2026-11-22T09:10:00Z and the restore time"),
        "{message}"
    );
}
