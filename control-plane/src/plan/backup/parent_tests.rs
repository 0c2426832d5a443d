//! Parent and base resolution (§2.9): one rule per test.

use cairn_api::actionset::BackupType;
use cairn_api::backup::Backup;
use cairn_api::backup_policy::BackupMethod;
use cairn_api::common::EncryptionConfig;
use serde_json::json;

use super::*;
use crate::plan::backup::chain::testing::{completed, with};

/// A Completed backup of policy `pg-policy` in `repo1`, of `kind` (Full/Incremental) and
/// `method`, ending at minute `end` (None: no end time); `extra` is merged into it.
fn done(name: &str, kind: &str, method: &str, end: Option<u32>) -> Backup {
    let path = format!("/prod/default/pg/{name}");
    completed(name, kind, method, "full", end, &path)
}

fn full(name: &str, end: u32) -> Backup {
    done(name, "Full", "full", Some(end))
}

/// An incremental on `parent`, with base `base`.
fn inc(name: &str, end: u32, parent: &str, base: &str) -> Backup {
    with(
        done(name, "Incremental", "inc", Some(end)),
        json!({"status": {"parentBackupName": parent, "baseBackupName": base}}),
    )
}

/// The new backup `new`, not started.
fn new(extra: serde_json::Value) -> Backup {
    let backup: Backup = serde_json::from_value(json!({
        "apiVersion": "dataprotection.kubeblocks.io/v1alpha1", "kind": "Backup",
        "metadata": {"name": "new", "namespace": "default"},
        "spec": {"backupPolicyName": "pg-policy", "backupMethod": "inc"}
    }))
    .unwrap();
    with(backup, extra)
}

fn method(compatible: Option<&str>) -> BackupMethod {
    BackupMethod {
        name: "inc".into(),
        compatible_method: compatible.map(str::to_string),
        action_set_name: Some("inc-as".into()),
        ..Default::default()
    }
}

fn usable(_: &EncryptionConfig) -> bool {
    true
}

fn unreadable(_: &EncryptionConfig) -> bool {
    false
}

fn query<'a, 'q>(
    backup: &'q Backup,
    kind: BackupType,
    method: &'q BackupMethod,
    backups: &'a [Backup],
    encryption: &'q dyn Fn(&EncryptionConfig) -> bool,
) -> Query<'a, 'q> {
    Query {
        backup,
        backup_type: kind,
        method,
        policy: "pg-policy",
        repo: "repo1",
        backups,
        encryption_usable: encryption,
    }
}

/// Resolves the parent of `backup` among `backups`: "parent/base" or the error.
fn resolve_with(
    backup: &Backup,
    kind: BackupType,
    compatible: Option<&str>,
    backups: &[Backup],
    encryption: &dyn Fn(&EncryptionConfig) -> bool,
) -> String {
    let method = method(compatible);
    match resolve(&query(backup, kind, &method, backups, encryption)) {
        Ok(Some(p)) => format!("{}/{}", p.parent_name(), p.base),
        Ok(None) => "none".into(),
        Err(e) => e,
    }
}

/// The parent of a new incremental among `backups` (which must have one).
fn first_incremental_on(backups: &[Backup]) -> Parent<'_> {
    let method = method(Some("full"));
    let backup = new(json!({}));
    resolve(&query(
        &backup,
        BackupType::Incremental,
        &method,
        backups,
        &usable,
    ))
    .unwrap()
    .unwrap()
}

fn parent_of(backup: &Backup, backups: &[Backup]) -> String {
    resolve_with(
        backup,
        BackupType::Incremental,
        Some("full"),
        backups,
        &usable,
    )
}

#[test]
fn full_and_selective_backups_have_no_parent() {
    for kind in [BackupType::Full, BackupType::Selective] {
        assert_eq!(
            resolve_with(
                &new(json!({})),
                kind,
                Some("full"),
                &[full("f1", 1)],
                &usable
            ),
            "none"
        );
    }
}

#[test]
fn the_first_incremental_takes_the_newest_full_of_the_compatible_method() {
    let backups = [
        full("f1", 1),
        full("f2", 5),
        done("other", "Full", "dump", Some(9)),
    ];
    assert_eq!(parent_of(&new(json!({})), &backups), "f2/f2");
}

#[test]
fn the_next_incremental_takes_the_newest_incremental_based_on_the_newest_full() {
    let backups = [
        full("f1", 1),
        inc("i1", 2, "f1", "f1"),
        inc("i2", 3, "i1", "f1"),
    ];
    assert_eq!(parent_of(&new(json!({})), &backups), "i2/f1");
}

#[test]
fn a_newer_full_starts_a_new_chain() {
    let backups = [full("f1", 1), inc("i1", 2, "f1", "f1"), full("f2", 3)];
    assert_eq!(parent_of(&new(json!({})), &backups), "f2/f2");
}

#[test]
fn an_incremental_based_on_an_older_full_does_not_win_over_the_newest_full() {
    // i9 is newer than f2, but its base is f1: the chain restarts from f2.
    let backups = [full("f1", 1), full("f2", 3), inc("i9", 4, "f1", "f1")];
    assert_eq!(parent_of(&new(json!({})), &backups), "f2/f2");
}

#[test]
fn equal_end_times_are_ordered_by_name() {
    let backups = [full("f-a", 1), full("f-b", 1)];
    assert_eq!(parent_of(&new(json!({})), &backups), "f-b/f-b");
    // An incremental ending with its full is "not older" than it.
    let backups = [full("f1", 1), inc("i1", 1, "f1", "f1")];
    assert_eq!(parent_of(&new(json!({})), &backups), "i1/f1");
}

#[test]
fn the_search_skips_unusable_backups_and_names_them_when_nothing_is_left() {
    let backups = [
        with(full("failed", 1), json!({"status": {"phase": "Failed"}})),
        with(
            full("elsewhere", 2),
            json!({"status": {"backupRepoName": "repo2"}}),
        ),
        done("noend", "Full", "full", None),
        done("dump", "Full", "dump", Some(3)),
        with(
            full("other-policy", 4),
            json!({"metadata": {"labels": {"dataprotection.kubeblocks.io/backup-policy": "p2"}}}),
        ),
        done("snap", "Continuous", "wal", Some(5)),
    ];
    assert_eq!(
        parent_of(&new(json!({})), &backups),
        "failed to find a valid parent backup for backup default/new; considered: \
         failed (phase Failed, not Completed), elsewhere (backup repository repo2), \
         noend (no end time), dump (method dump, not full), \
         snap (type Continuous; only full and incremental backups can be parents)"
    );
}

#[test]
fn nothing_at_all_says_so() {
    assert_eq!(
        parent_of(&new(json!({})), &[]),
        "failed to find a valid parent backup for backup default/new; no backup of the policy was considered"
    );
}

#[test]
fn only_incrementals_is_an_illegal_incremental_backup() {
    let backups = [
        with(full("f1", 1), json!({"status": {"phase": "Failed"}})),
        inc("i1", 2, "f1", "f1"),
    ];
    assert_eq!(
        parent_of(&new(json!({})), &backups),
        "illegal incremental backup; considered: f1 (phase Failed, not Completed), \
         i1 (incremental, but no full backup to base it on)"
    );
}

#[test]
fn a_method_without_compatible_method_finds_no_full_and_says_why() {
    let backups = [full("f1", 1)];
    assert_eq!(
        resolve_with(
            &new(json!({})),
            BackupType::Incremental,
            None,
            &backups,
            &usable
        ),
        "failed to find a valid parent backup for backup default/new; considered: \
         f1 (method full; method inc has no compatibleMethod)"
    );
}

#[test]
fn a_backup_whose_encryption_secret_is_unreadable_is_not_a_parent() {
    let encrypted = with(
        full("f1", 1),
        json!({"status": {"encryptionConfig": {"algorithm": "AES-256-CFB",
               "passPhraseSecretKeyRef": {"name": "enc", "key": "pass"}}}}),
    );
    assert_eq!(
        resolve_with(
            &new(json!({})),
            BackupType::Incremental,
            Some("full"),
            &[encrypted],
            &unreadable
        ),
        "failed to find a valid parent backup for backup default/new; considered: \
         f1 (its encryption secret enc/pass cannot be read)"
    );
}

#[test]
fn an_explicit_parent_wins_over_the_search() {
    let backups = [full("f1", 1), inc("i1", 2, "f1", "f1"), full("f2", 3)];
    let backup = new(json!({"spec": {"parentBackupName": "i1"}}));
    assert_eq!(parent_of(&backup, &backups), "i1/f1");
}

#[test]
fn a_schedule_backup_may_not_name_its_parent() {
    let backup = new(json!({
        "metadata": {"labels": {"dataprotection.kubeblocks.io/backup-schedule": "daily"}},
        "spec": {"parentBackupName": "f1"}
    }));
    assert_eq!(
        parent_of(&backup, &[full("f1", 1)]),
        "schedule backup cannot specify parent backup"
    );
    // Without an explicit parent a schedule backup searches like any other.
    let scheduled = new(json!({
        "metadata": {"labels": {"dataprotection.kubeblocks.io/backup-schedule": "daily"}}
    }));
    assert_eq!(parent_of(&scheduled, &[full("f1", 1)]), "f1/f1");
}

#[test]
fn the_recorded_parent_is_kept_when_a_newer_full_appears() {
    let backup = new(json!({"status": {"parentBackupName": "f1"}}));
    let backups = [full("f1", 1), full("f2", 5)];
    assert_eq!(parent_of(&backup, &backups), "f1/f1");
}

#[test]
fn an_explicit_parent_that_is_missing_or_unusable_is_named() {
    let backup = new(json!({"spec": {"parentBackupName": "gone"}}));
    assert_eq!(
        parent_of(&backup, &[full("f1", 1)]),
        "failed to get parent backup default/gone of backup default/new: not found"
    );
    let backup = new(json!({"spec": {"parentBackupName": "f1"}}));
    let failed = with(full("f1", 1), json!({"status": {"phase": "Failed"}}));
    assert_eq!(
        parent_of(&backup, &[failed]),
        "parent backup f1 of backup default/new cannot be used: phase Failed, not Completed"
    );
}

#[test]
fn an_incremental_parent_without_a_base_is_refused() {
    let orphan = with(
        done("i1", "Incremental", "inc", Some(2)),
        json!({"status": {"parentBackupName": "f1"}}),
    );
    let backup = new(json!({"spec": {"parentBackupName": "i1"}}));
    assert_eq!(
        parent_of(&backup, &[full("f1", 1), orphan]),
        "parent backup i1 of backup default/new has no status.baseBackupName"
    );
}

#[test]
fn an_incremental_parent_with_a_broken_chain_names_the_broken_link() {
    // i2's parent i1 was deleted.
    let backups = [full("f1", 1), inc("i2", 3, "i1", "f1")];
    let backup = new(json!({"spec": {"parentBackupName": "i2"}}));
    assert_eq!(
        parent_of(&backup, &backups),
        "backup i2 -> parent i1: the parent backup is not found"
    );
}

#[test]
fn the_lineage_lists_the_parent_its_ancestors_and_the_base_newest_first() {
    let backups = [
        full("f1", 1),
        inc("i1", 2, "f1", "f1"),
        inc("i2", 3, "i1", "f1"),
    ];
    let parent = first_incremental_on(&backups);
    assert_eq!(
        parent.paths(),
        [
            "/prod/default/pg/i2",
            "/prod/default/pg/i1",
            "/prod/default/pg/f1"
        ]
    );
}

#[test]
fn the_child_inherits_the_parents_encryption() {
    let encrypted = with(
        full("f1", 1),
        json!({"status": {"encryptionConfig": {"algorithm": "AES-128-CFB",
               "passPhraseSecretKeyRef": {"name": "old-enc", "key": "pass"}}}}),
    );
    let backups = [encrypted];
    let parent = first_incremental_on(&backups);
    assert_eq!(
        parent.encryption().unwrap().pass_phrase_secret_key_ref.name,
        "old-enc"
    );
}

#[test]
fn a_differential_takes_the_newest_full_even_after_incrementals() {
    let backups = [full("f1", 1), full("f2", 3), inc("i1", 4, "f2", "f2")];
    assert_eq!(
        resolve_with(
            &new(json!({})),
            BackupType::Differential,
            Some("full"),
            &backups,
            &usable
        ),
        "f2/f2"
    );
    assert_eq!(
        resolve_with(
            &new(json!({})),
            BackupType::Differential,
            Some("full"),
            &backups[2..],
            &usable
        ),
        "failed to find a valid parent backup for backup default/new; considered: \
         i1 (incremental; a differential's parent is a full)"
    );
    let explicit = new(json!({"spec": {"parentBackupName": "i1"}}));
    assert_eq!(
        resolve_with(
            &explicit,
            BackupType::Differential,
            Some("full"),
            &backups,
            &usable
        ),
        "parent backup i1 of differential backup default/new is Incremental, but a differential's parent must be a full backup"
    );
}
