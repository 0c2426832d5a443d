//! Restoring an Incremental backup (§4.1, §3.2): one set, the backup with its base and
//! ancestors, every link checked.

use cairn_api::backup::Backup;
use serde_json::json;

use super::*;
use crate::plan::backup::chain::testing::{completed, with};

/// Full f1 (09:10, stored under an older prefix), incrementals i1 (09:20) and i2 (09:30) on it,
/// and the restored b1 (09:40), an incremental on i2; b1's ActionSet is incremental.
fn chain() -> Observed {
    let mut o = observed();
    o.actionset = Some(actionset(json!({"spec": {"backupType": "Incremental"}})));
    let f1 = with(
        completed("f1", "Full", "full", "", Some(10), "/old/default/f1"),
        json!({"status": {"startTimestamp": "2026-11-22T09:05:00Z"}}),
    );
    let link = |name: &str, end: u32, parent: &str| {
        with(
            completed(
                name,
                "Incremental",
                "inc",
                "full",
                Some(end),
                &format!("/prod/default/mycluster/pg/{name}"),
            ),
            json!({"status": {"parentBackupName": parent, "baseBackupName": "f1"}}),
        )
    };
    let b1 = with(
        backup(json!({})),
        json!({"metadata": {"labels": {
            "dataprotection.kubeblocks.io/backup-type": "Incremental",
            "dataprotection.kubeblocks.io/backup-policy": "pg-policy"}},
            "status": {"parentBackupName": "i2", "baseBackupName": "f1", "timeRange": null,
                       "completionTimestamp": "2026-11-22T09:40:00Z",
                       "backupMethod": {"name": "inc", "compatibleMethod": "full"}}}),
    );
    o.backup = Some(b1.clone());
    o.backups = vec![f1, link("i1", 20, "f1"), link("i2", 30, "i1"), b1];
    o
}

fn env_names(o: &mut Observed) -> Vec<String> {
    let plan = step(o, now());

    let job = job_of(dispatched(&plan.intents)[0].1);
    env_of(&job).into_iter().map(|(n, _)| n).collect()
}

#[test]
fn an_incremental_restore_is_told_its_base_and_ancestors_oldest_first() {
    let mut o = chain();
    let names = env_names(&mut o);
    assert_eq!(
        names[..11],
        [
            "DP_BACKUP_NAME",
            "DP_TARGET_RELATIVE_PATH",
            "DP_BACKUP_ROOT_PATH",
            "DP_BACKUP_BASE_PATH",
            "DP_BASE_BACKUP_NAME",
            "DP_ANCESTOR_INCREMENTAL_BACKUP_NAMES",
            "DP_BACKUP_STOP_TIME",
            "DP_BASE_BACKUP_START_TIME",
            "DP_BASE_BACKUP_START_TIMESTAMP",
            "DP_BASE_BACKUP_STOP_TIME",
            "DP_BASE_BACKUP_STOP_TIMESTAMP",
        ]
    );
    let mut o = chain();
    let plan = step(&mut o, now());
    let job = job_of(dispatched(&plan.intents)[0].1);
    let get = |name: &str| env_value(&job, name).unwrap();
    assert_eq!(get("DP_BACKUP_NAME"), "b1");
    assert_eq!(get("DP_BASE_BACKUP_NAME"), "f1");
    assert_eq!(get("DP_ANCESTOR_INCREMENTAL_BACKUP_NAMES"), "i1,i2");
    assert_eq!(get("DP_BACKUP_STOP_TIME"), "2026-11-22T09:40:00Z");
    assert_eq!(get("DP_BASE_BACKUP_START_TIME"), "2026-11-22T09:05:00Z");
    assert_eq!(get("DP_BASE_BACKUP_START_TIMESTAMP"), "1795338300");
    assert_eq!(get("DP_BASE_BACKUP_STOP_TIME"), "2026-11-22T09:10:00Z");
    assert_eq!(get("DP_BASE_BACKUP_STOP_TIMESTAMP"), "1795338600");
}

#[test]
fn an_incremental_restore_may_read_every_link_of_its_chain() {
    let mut o = chain();
    let plan = step(&mut o, now());
    let Some(pb::action::Kind::Job(job)) = &dispatched(&plan.intents)[0].1.kind else {
        panic!("not a job")
    };
    let grant = job.storage.clone().unwrap();
    assert_eq!(grant.read_write_prefix, "");
    assert_eq!(
        grant.read_only_prefixes,
        [
            "/prod/default/mycluster/pg",
            "/old/default/f1",
            "/prod/default/mycluster/pg/i1",
            "/prod/default/mycluster/pg/i2"
        ]
    );
}

/// The restore of `chain()` with `change` applied to the backups, failed: its message.
fn broken(change: impl FnOnce(&mut Vec<Backup>)) -> String {
    let mut o = chain();
    change(&mut o.backups);
    o.backup = o
        .backups
        .iter()
        .find(|b| b.metadata.name.as_deref() == Some("b1"))
        .cloned();
    let plan = step(&mut o, now());
    let status = plan.status.unwrap();
    assert_eq!(status.phase, Some(RestorePhase::Failed));
    condition(
        &status,
        cairn_api::well_known::conditions::restore::CONDITION_VALIDATION_PASSED,
    )
    .2
}

fn patch(backups: &mut [Backup], name: &str, extra: serde_json::Value) {
    let at = backups
        .iter()
        .position(|b| b.metadata.name.as_deref() == Some(name))
        .unwrap();
    backups[at] = with(backups[at].clone(), extra);
}

#[test]
fn every_broken_link_of_the_chain_is_named() {
    let prefix = "the chain of incremental backup \"b1\" is broken: ";
    type Change = Box<dyn FnOnce(&mut Vec<Backup>)>;
    let cases: Vec<(Change, &str)> = vec![
        (
            Box::new(|b| b.retain(|b| b.metadata.name.as_deref() != Some("i1"))),
            "backup i2 -> parent i1: the parent backup is not found",
        ),
        (
            Box::new(|b| patch(b, "i1", json!({"status": {"phase": "Failed"}}))),
            "backup i2 -> parent i1: the parent is Failed, not Completed",
        ),
        (
            Box::new(|b| {
                patch(
                    b,
                    "i2",
                    json!({"metadata": {"labels":
                {"dataprotection.kubeblocks.io/backup-policy": "other"}}}),
                )
            }),
            "backup b1 -> parent i2: the parent belongs to backup policy \"other\", the child to \"pg-policy\"",
        ),
        (
            Box::new(|b| patch(b, "f1", json!({"status": {"backupRepoName": "repo2"}}))),
            "backup i1 -> parent f1: the parent is in backup repository \"repo2\", the child in \"repo1\"",
        ),
        (
            Box::new(|b| {
                patch(
                    b,
                    "i2",
                    json!({"status": {"backupMethod": {"name": "other-inc"}}}),
                )
            }),
            "backup b1 -> parent i2: the incremental parent used method \"other-inc\", the child \"inc\"",
        ),
        (
            Box::new(|b| {
                patch(
                    b,
                    "f1",
                    json!({"status": {"backupMethod": {"name": "dump"}}}),
                )
            }),
            "backup i1 -> parent f1: the full parent used method \"dump\", but the child's compatibleMethod is \"full\"",
        ),
        (
            Box::new(|b| patch(b, "i2", json!({"status": {"baseBackupName": "f0"}}))),
            "backup b1 -> parent i2: the parent's base is \"f0\", the child's \"f1\"",
        ),
        (
            Box::new(|b| {
                patch(
                    b,
                    "i1",
                    json!({"status": {"completionTimestamp": "2026-11-22T09:35:00Z"}}),
                )
            }),
            "backup i2 -> parent i1: the parent does not end before the child",
        ),
        (
            Box::new(|b| patch(b, "i1", json!({"status": {"parentBackupName": "i2"}}))),
            "backup i1 -> parent i2: the chain of b1 is a cycle",
        ),
        (
            Box::new(|b| patch(b, "i1", json!({"status": {"parentBackupName": null}}))),
            "backup i1 of the chain of b1 has no status.parentBackupName",
        ),
    ];
    for (change, expected) in cases {
        assert_eq!(broken(change), format!("{prefix}{expected}"));
    }
}
