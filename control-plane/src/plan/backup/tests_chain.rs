//! Incremental and Differential backups through the Backup planner (§2.9, §3.1 item 6).

use cairn_api::backup::{Backup, BackupPhase};
use serde_json::json;

use super::*;
use crate::plan::backup::chain::testing::{completed as stored, with};

/// The policy with a full method `basebackup` and an incremental method `inc` compatible with it.
fn chain_policy() -> BackupPolicy {
    policy(json!({"spec": {"backupMethods": [
        {"name": "basebackup", "actionSetName": "pg-basebackup"},
        {"name": "inc", "actionSetName": "pg-inc", "compatibleMethod": "basebackup",
         "env": [{"name": "FROM_METHOD", "value": "1"}]}
    ]}}))
}

fn older(name: &str, kind: &str, method: &str, end: u32, path: &str) -> Backup {
    stored(name, kind, method, "basebackup", Some(end), path)
}

fn with_status(backup: Backup, extra: serde_json::Value) -> Backup {
    with(backup, json!({ "status": extra }))
}

/// Backup b1 of method `inc` with an ActionSet of `kind`, no hooks, and a full f1 (stored under
/// an older path prefix) and an incremental i1 on it.
fn incremental(kind: &str) -> Observed {
    let mut o = observed();
    o.policy = Some(chain_policy());
    o.backup = backup(json!({"spec": {"backupMethod": "inc"}}));
    o.actionset = Some(actionset(json!({"metadata": {"name": "pg-inc"}, "spec": {
        "backupType": kind, "backup": {"preBackup": [], "postBackup": []}}})));
    let f1 = with_status(
        older("f1", "Full", "basebackup", 1, "/old/default/f1"),
        json!({"encryptionConfig": {"algorithm": "AES-128-CFB",
               "passPhraseSecretKeyRef": {"name": "old-enc", "key": "pass"}}}),
    );
    let i1 = with_status(
        older(
            "i1",
            "Incremental",
            "inc",
            2,
            "/prod/default/mycluster/postgresql/i1",
        ),
        json!({"parentBackupName": "f1", "baseBackupName": "f1",
               "encryptionConfig": {"algorithm": "AES-128-CFB",
               "passPhraseSecretKeyRef": {"name": "old-enc", "key": "pass"}}}),
    );
    o.backups = vec![f1, i1];
    o.passphrases
        .insert(("old-enc".into(), "pass".into()), Ok("0ld-s3cret".into()));
    o
}

#[test]
fn incremental_backup_records_its_parent_and_base_and_inherits_their_encryption() {
    let mut o = incremental("Incremental");
    let plan = step(&mut o, now());
    let status = plan.status.clone().unwrap();
    assert_eq!(
        status.phase,
        Some(BackupPhase::Running),
        "{:?}",
        status.failure_reason
    );
    assert_eq!(status.parent_backup_name.as_deref(), Some("i1"));
    assert_eq!(status.base_backup_name.as_deref(), Some("f1"));
    let encryption = status.encryption_config.unwrap();
    assert_eq!(encryption.pass_phrase_secret_key_ref.name, "old-enc");
    // The type label lets the next incremental find this one.
    assert_eq!(
        o.backup.metadata.labels.as_ref().unwrap()["dataprotection.kubeblocks.io/backup-type"],
        "Incremental"
    );
}

#[test]
fn incremental_job_gets_the_chain_env_in_kubeblocks_order() {
    let mut o = incremental("Incremental");
    let plan = step(&mut o, now());
    let env = env_of(&job_of(dispatched(&plan.intents)[0].1));
    let names: Vec<&str> = env.iter().map(|(n, _)| n.as_str()).collect();
    let at = names.iter().position(|n| *n == "KB_NAMESPACE").unwrap();
    assert_eq!(
        names[at + 1..at + 5],
        [
            "DP_PARENT_BACKUP_NAME",
            "DP_BASE_BACKUP_NAME",
            "DP_TARGET_RELATIVE_PATH",
            "DP_BACKUP_ROOT_PATH"
        ]
    );
    // Each is set once, and the method env still comes after them.
    for name in ["DP_TARGET_RELATIVE_PATH", "DP_BACKUP_ROOT_PATH"] {
        assert_eq!(names.iter().filter(|n| **n == name).count(), 1, "{name}");
    }
    assert!(names.iter().position(|n| *n == "FROM_METHOD").unwrap() > at + 4);
    let get = |name: &str| env.iter().find(|(n, _)| n == name).unwrap().1.clone();
    assert_eq!(get("DP_PARENT_BACKUP_NAME"), "i1");
    assert_eq!(get("DP_BASE_BACKUP_NAME"), "f1");
    assert_eq!(get("DP_TARGET_RELATIVE_PATH"), "");
    assert_eq!(
        get("DP_BACKUP_ROOT_PATH"),
        "/prod/default/mycluster/postgresql"
    );
}

#[test]
fn incremental_job_may_read_but_not_write_its_ancestors_paths() {
    let mut o = incremental("Incremental");
    let plan = step(&mut o, now());
    let grant = grant_of(dispatched(&plan.intents)[0].1);
    assert_eq!(
        grant.read_write_prefix,
        "/prod/default/mycluster/postgresql/b1"
    );
    assert_eq!(
        grant.read_only_prefixes,
        [
            "/prod/default/mycluster/postgresql",
            "/prod/default/mycluster/postgresql/i1",
            "/old/default/f1"
        ]
    );
    // The inherited encryption, with the passphrase of the parent's secret.
    assert_eq!(grant.encryption_algorithm, "AES-128-CFB");
    assert_eq!(grant.encryption_passphrase, "0ld-s3cret");
}

#[test]
fn incremental_backup_without_a_parent_fails_naming_what_was_considered() {
    let mut o = incremental("Incremental");
    o.backups
        .retain(|b| b.metadata.name.as_deref() == Some("i1"));
    let (phase, reason) = failure(&step(&mut o, now()));
    assert_eq!(phase, Some(BackupPhase::Failed));
    assert_eq!(
        reason,
        "illegal incremental backup; considered: i1 (incremental, but no full backup to base it on)"
    );
}

#[test]
fn inherited_encryption_with_an_unreadable_secret_fails_the_backup() {
    let mut o = incremental("Incremental");
    o.backup = backup(json!({"spec": {"backupMethod": "inc", "parentBackupName": "i1"}}));
    o.passphrases.insert(
        ("old-enc".into(), "pass".into()),
        Err("secret default/old-enc not found".into()),
    );
    let (_, reason) = failure(&step(&mut o, now()));
    assert_eq!(
        reason,
        "parent backup i1 of backup default/b1 cannot be used: its encryption secret old-enc/pass cannot be read"
    );
}

#[test]
fn differential_backup_is_based_on_the_newest_full() {
    let mut o = incremental("Differential");
    let plan = step(&mut o, now());
    let status = plan.status.unwrap();
    assert_eq!(
        status.phase,
        Some(BackupPhase::Running),
        "{:?}",
        status.failure_reason
    );
    assert_eq!(status.parent_backup_name.as_deref(), Some("f1"));
    assert_eq!(status.base_backup_name.as_deref(), Some("f1"));
}

#[test]
fn full_backup_has_no_parent_even_when_it_names_one() {
    let mut o = incremental("Full");
    o.backup = backup(json!({"spec": {"backupMethod": "inc", "parentBackupName": "i1"}}));
    let status = step(&mut o, now()).status.unwrap();
    assert_eq!(status.parent_backup_name, None);
    assert_eq!(status.base_backup_name, None);
    assert_eq!(status.encryption_config, None);
}

// ---------------------------------------------------------------- deletion of a chain

/// Full b1 (completed, being deleted with `policy`), incremental i1 on it and i2 on i1 (both
/// with b1 as base), and an unrelated full.
fn deleting_a_base(policy: &str) -> Observed {
    let mut o = observed();
    completed(&mut o);
    deleting(&mut o, policy);
    let child = |name: &str, parent: &str| {
        with_status(
            older(name, "Incremental", "inc", 40, &format!("/p/{name}")),
            json!({"parentBackupName": parent, "baseBackupName": "b1"}),
        )
    };
    o.backups = vec![
        o.backup.clone(),
        child("i1", "b1"),
        child("i2", "i1"),
        older("other", "Full", "basebackup", 3, "/p/other"),
    ];
    o
}

fn deleted(plan: &Plan<BackupStatus>) -> Vec<String> {
    plan.intents
        .iter()
        .filter_map(|i| match i {
            Intent::Delete { kind, name, .. } if kind == "Backup" => Some(name.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn deleting_a_base_deletes_its_chain_first_and_keeps_its_own_files_until_then() {
    let mut o = deleting_a_base("Delete");
    let plan = step(&mut o, later(101));
    assert_eq!(deleted(&plan), ["i1", "i2"]);
    assert!(dispatched(&plan.intents).is_empty(), "no file deleted yet");
    assert!(!plan.intents.contains(&Intent::RemoveFinalizer));
    assert_eq!(
        plan.status.unwrap().deletion_failure_reason.as_deref(),
        Some("waiting for the backups that depend on this one to be deleted first: i1, i2")
    );
    // A child already being deleted is not deleted again, only waited for.
    o.backups[1].metadata.deletion_timestamp = o.backup.metadata.deletion_timestamp.clone();
    o.backups.remove(2);
    let plan = step(&mut o, later(102));
    assert!(deleted(&plan).is_empty());
    assert!(plan.requeue.is_some());
    // Once they are gone, the base's own files go.
    o.backups.remove(1);
    let plan = step(&mut o, later(103));
    let Some(pb::action::Kind::DeletePath(delete)) = &dispatched(&plan.intents)[0].1.kind else {
        panic!("expected delete_path")
    };
    assert_eq!(delete.path, "/prod/default/mycluster/postgresql/b1");
}

#[test]
fn a_retained_base_still_deletes_its_chain_each_with_its_own_policy() {
    let mut o = deleting_a_base("Retain");
    let plan = step(&mut o, later(101));
    assert_eq!(deleted(&plan), ["i1", "i2"]);
    assert!(!plan.intents.contains(&Intent::RemoveFinalizer));
    o.backups.truncate(1);
    let plan = step(&mut o, later(102));
    assert!(plan.intents.contains(&Intent::RemoveFinalizer));
}
