//! KubeBlocks' own Continuous ActionSets (postgresql-pitr, redis-pitr-backup, mysql-pitr from
//! apecloud/kubeblocks-addons release-0.9, `testdata/kubeblocks-pitr-actionsets.yaml`): the
//! restore plan each gets for a point-in-time restore, and the env its scripts read.

use cairn_api::restore::RestorePhase;
use serde_json::json;

use super::tests::*;
use super::tests_sets::{base, dispatched_jobs, job_name, pitr, report_set};
use super::*;
use crate::plan::agent_view::ReportedPhase;

fn kubeblocks(name: &str) -> ActionSet {
    let all: Vec<ActionSet> =
        serde_saphyr::from_str(include_str!("testdata/kubeblocks-pitr-actionsets.yaml"))
            .expect("the test data parses");
    all.into_iter()
        .find(|a| a.metadata.name.as_deref() == Some(name))
        .expect("the ActionSet is in the test data")
}

/// `pitr()` (continuous c1 08:00..09:50 in +08:00, base f1 ended 08:30 in -05:00, restore to
/// 09:00Z) with the continuous backup's ActionSet replaced by KubeBlocks' `name`, and a
/// readyConfig for both kinds of postReady steps.
fn with_kubeblocks(name: &str) -> Observed {
    let mut o = pitr();
    o.actionset = Some(kubeblocks(name));
    o.restore = restore(json!({"spec": {
        "backup": {"name": "c1"},
        "restoreTime": "2026-11-22T09:00:00Z",
        "readyConfig": {
            "execAction": {"target": {"podSelector": {"matchLabels": {"app": "pg"}}}},
            "jobAction": {"target": {"podSelector": {"matchLabels": {"app": "pg"}}}}
        }
    }}));
    o
}

/// Completes every prepareData job of set `backup` (action `name`).
fn finish(o: &mut Observed, name: &str, backup: &str) {
    for k in 0..2 {
        let key = format!("Job/{}", job_name(backup, k));
        report_set(o, name, &key, backup, ReportedPhase::Succeeded);
    }
}

#[test]
fn postgresql_pitr_replays_wal_over_the_base_told_the_time_in_its_layout() {
    let mut o = with_kubeblocks("postgresql-pitr");
    let plan = step(&mut o, now());
    assert_eq!(
        dispatched_jobs(&plan),
        [job_name("f1", 0), job_name("f1", 1)]
    );
    finish(&mut o, "prepareData-0", "f1");
    let plan = step(&mut o, later(10));
    assert_eq!(
        dispatched_jobs(&plan),
        [job_name("c1", 0), job_name("c1", 1)]
    );
    let job = job_of(dispatched(&plan.intents)[0].1);
    let get = |name: &str| env_value(&job, name).unwrap_or_default();
    // postgresql-pitr-restore.sh: fetch-wal-log ... "${DP_RESTORE_TIME}" and
    // recovery_target_time from DP_RESTORE_TIMESTAMP; datasafed under DP_BACKUP_BASE_PATH.
    assert_eq!(get("DP_RESTORE_TIME"), "2026-11-22 17:00:00 +0800");
    assert_eq!(get("DP_RESTORE_TIMESTAMP"), "1795338000");
    assert_eq!(get("DP_BACKUP_BASE_PATH"), "/prod/default/mycluster/pg/c1");
    assert_eq!(get("DP_BASE_BACKUP_NAME"), "f1");
    assert_eq!(get("PITR_DIR"), "$(VOLUME_DATA_DIR)/pitr");
    assert_eq!(
        container_of(&job).image.as_deref(),
        Some("apecloud/spilo:14.8.0-pgvector-v0.6.1")
    );
    // Then its postReady exec (in the continuous set only: the base's ActionSet has none).
    finish(&mut o, "prepareData-1", "c1");
    let plan = step(&mut o, later(20));
    let runs = dispatched(&plan.intents);
    assert_eq!(runs.len(), 2, "one exec per selected pod");
    let Some(cairn_proto::agent::v1::action::Kind::Exec(exec)) = &runs[0].1.kind else {
        panic!("not an exec")
    };
    assert!(exec.command[2].contains("recovery.conf"), "{exec:?}");
}

#[test]
fn redis_pitr_backup_needs_no_base_and_reads_an_rfc3339_time() {
    let mut o = with_kubeblocks("redis-pitr-backup");
    let plan = step(&mut o, now());
    // baseBackupRequired: false: the continuous set alone, no base.
    assert_eq!(
        dispatched_jobs(&plan),
        [job_name("c1", 0), job_name("c1", 1)]
    );
    let job = job_of(dispatched(&plan.intents)[0].1);
    // pitr-restore.sh: restore_time=$(date -d "$DP_RESTORE_TIME" +%s).
    assert_eq!(
        env_value(&job, "DP_RESTORE_TIME").as_deref(),
        Some("2026-11-22T17:00:00+08:00")
    );
    assert_eq!(env_value(&job, "DP_BASE_BACKUP_NAME"), None);
    finish(&mut o, "prepareData-0", "c1");
    let plan = step(&mut o, later(10));
    // Its postReady job (restore-keys) on the target pod's node.
    let runs = dispatched(&plan.intents);
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].0, "node-a");
    let job = job_of(runs[0].1);
    assert_eq!(
        job.metadata.name.as_deref(),
        Some("restore-post-ready-abcdef01-c1-0-0")
    );
    assert_eq!(
        env_value(&job, "DP_RESTORE_TIME").as_deref(),
        Some("2026-11-22T17:00:00+08:00")
    );
}

#[test]
fn mysql_pitr_replays_binlogs_in_post_ready_from_the_base_start_to_the_restore_time() {
    let mut o = with_kubeblocks("mysql-pitr");
    let plan = step(&mut o, now());
    // mysql-pitr has no prepareData: only the base's set restores volumes.
    assert_eq!(
        dispatched_jobs(&plan),
        [job_name("f1", 0), job_name("f1", 1)]
    );
    finish(&mut o, "prepareData-0", "f1");
    let plan = step(&mut o, later(10));
    let runs = dispatched(&plan.intents);
    assert_eq!(runs.len(), 1);
    let job = job_of(runs[0].1);
    assert_eq!(
        job.metadata.name.as_deref(),
        Some("restore-post-ready-abcdef01-c1-0-0")
    );
    let get = |name: &str| env_value(&job, name).unwrap_or_default();
    // wal-g binlog-replay --since-time="${DP_BASE_BACKUP_START_TIME}" --until="${DP_RESTORE_TIME}"
    // (RFC 3339: mysql-pitr sets TIME_FORMAT, not DP_TIME_FORMAT); the base's time in its zone.
    assert_eq!(
        get("DP_BASE_BACKUP_START_TIME"),
        "2026-11-22T03:01:00-05:00"
    );
    assert_eq!(get("DP_RESTORE_TIME"), "2026-11-22T17:00:00+08:00");
    assert_eq!(get("DP_BASE_BACKUP_NAME"), "f1");
    report_set(
        &mut o,
        "postReady-0",
        "Job/restore-post-ready-abcdef01-c1-0-0",
        "c1",
        ReportedPhase::Succeeded,
    );
    let plan = step(&mut o, later(20));
    assert_eq!(plan.status.unwrap().phase, Some(RestorePhase::Completed));
}

#[test]
fn a_kubeblocks_pitr_restore_before_any_base_fails_naming_the_candidates() {
    let mut o = with_kubeblocks("postgresql-pitr");
    o.backups
        .retain(|b| b.metadata.name.as_deref() != Some("f1"));
    o.backups
        .push(base("f9", "Full", "2026-11-22T09:10:00Z", json!({})));
    let plan = step(&mut o, now());
    let status = plan.status.unwrap();
    assert_eq!(status.phase, Some(RestorePhase::Failed));
    let (_, _, message) = condition(&status, "ValidationPassed");
    assert!(
        message.contains("considered f2 (Full, ended 2026-11-22T09:20:00Z), f9 (Full, ended 2026-11-22T09:10:00Z), f0"),
        "{message}"
    );
}
