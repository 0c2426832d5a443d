//! `useKopia`: a policy's backups go into its deduplicating repository (ARCHITECTURE.md §K2.10).

use serde_json::json;

use super::*;

const KOPIA: &str = "/prod/default/mycluster/postgresql/kopia";

fn use_kopia(o: &mut Observed) {
    o.policy = Some(policy(json!({"spec": {"useKopia": true}})));
}

fn encrypted(o: &mut Observed, passphrase: &str) {
    let mut p = o.policy.clone().unwrap();
    p.spec.encryption_config = Some(
        serde_json::from_value(json!({
            "algorithm": "AES-256-CFB",
            "passPhraseSecretKeyRef": {"name": "enc", "key": "passphrase"}
        }))
        .unwrap(),
    );
    o.policy = Some(p);
    o.encryption_passphrase = Some(Ok(passphrase.into()));
}

/// The grant and env of the backupData Job, once the preBackup hook succeeded.
fn backup_data(o: &mut Observed) -> (pb::StorageGrant, Vec<(String, String)>) {
    step(o, now());
    report(
        o,
        "dp-prebackup-0-0",
        "pg-0",
        ReportedPhase::Succeeded,
        None,
    );
    let plan = step(o, later(1));
    let sent = dispatched(&plan.intents);
    let action = sent[0].1;
    (grant_of(action), env_of(&job_of(action)))
}

fn delete_grant(o: &mut Observed) -> Option<pb::StorageGrant> {
    deleting(o, "Delete");
    let plan = step(o, later(101));
    dispatched(&plan.intents)
        .iter()
        .find_map(|(_, action)| match &action.kind {
            Some(pb::action::Kind::DeletePath(delete)) => delete.storage.clone(),
            _ => None,
        })
}

#[test]
fn a_use_kopia_backup_records_its_repository_and_its_actions_reach_it() {
    let mut o = observed();
    use_kopia(&mut o);
    let (grant, env) = backup_data(&mut o);
    let status = o.backup.status.clone().unwrap();
    assert_eq!(status.kopia_repo_path.as_deref(), Some(KOPIA));
    assert_eq!(
        status.path.as_deref(),
        Some("/prod/default/mycluster/postgresql/b1"),
        "the backup's files keep their path inside the deduplicating repository"
    );
    assert_eq!(grant.dedup_repo_root, KOPIA);
    assert_eq!(
        grant.dedup_password,
        well_known::dedup::UNENCRYPTED_PASSWORD
    );
    assert_eq!(
        grant.read_write_prefix,
        "/prod/default/mycluster/postgresql/b1"
    );
    assert!(
        env.contains(&("DATASAFED_KOPIA_REPO_ROOT".into(), KOPIA.into())),
        "{env:?}"
    );
    assert!(!env.iter().any(|(_, v)| v.contains("cairn-dedup")));
}

#[test]
fn without_use_kopia_nothing_names_a_deduplicating_repository() {
    let mut o = observed();
    let (grant, env) = backup_data(&mut o);
    assert_eq!(o.backup.status.clone().unwrap().kopia_repo_path, None);
    assert_eq!(
        (
            grant.dedup_repo_root.as_str(),
            grant.dedup_password.as_str()
        ),
        ("", "")
    );
    assert!(!env.iter().any(|(k, _)| k == "DATASAFED_KOPIA_REPO_ROOT"));
}

#[test]
fn an_encrypted_use_kopia_policy_unlocks_its_repository_with_the_passphrase() {
    let mut o = observed();
    use_kopia(&mut o);
    encrypted(&mut o, "correct horse");
    let (grant, env) = backup_data(&mut o);
    assert_eq!(grant.dedup_password, "correct horse");
    // The repository encrypts with its own keys: no file encryption on top.
    assert_eq!(grant.encryption_algorithm, "");
    assert_eq!(grant.encryption_passphrase, "");
    assert!(!env.iter().any(|(_, v)| v.contains("correct horse")));
    assert!(o.backup.status.clone().unwrap().encryption_config.is_some());
}

#[test]
fn the_repository_is_decided_when_the_backup_starts() {
    let mut o = observed();
    use_kopia(&mut o);
    step(&mut o, now());
    // The policy turns useKopia off while the backup runs: it stays where it started.
    o.policy = Some(policy(json!({})));
    report(
        &mut o,
        "dp-prebackup-0-0",
        "pg-0",
        ReportedPhase::Succeeded,
        None,
    );
    let plan = step(&mut o, later(1));
    assert_eq!(
        grant_of(dispatched(&plan.intents)[0].1).dedup_repo_root,
        KOPIA
    );
    assert_eq!(
        o.backup.status.clone().unwrap().kopia_repo_path.as_deref(),
        Some(KOPIA)
    );
}

#[test]
fn deleting_a_use_kopia_backup_removes_its_snapshots_from_the_repository() {
    let mut o = observed();
    use_kopia(&mut o);
    completed(&mut o);
    let grant = delete_grant(&mut o).expect("a DeletePath action");
    assert_eq!(grant.dedup_repo_root, KOPIA);
    assert_eq!(
        grant.dedup_password,
        well_known::dedup::UNENCRYPTED_PASSWORD
    );
    assert_eq!(
        grant.read_write_prefix,
        "/prod/default/mycluster/postgresql/b1"
    );
}

#[test]
fn an_encrypted_use_kopia_backup_is_deleted_with_its_own_passphrase_or_waits_for_it() {
    let mut o = observed();
    use_kopia(&mut o);
    encrypted(&mut o, "old passphrase");
    completed(&mut o);
    // The policy's encryption changed since: the backup's own Secret is read.
    let mut p = o.policy.clone().unwrap();
    p.spec.encryption_config = None;
    o.policy = Some(p);
    o.encryption_passphrase = None;
    o.passphrases.insert(
        ("enc".into(), "passphrase".into()),
        Ok("old passphrase".into()),
    );
    let mut found = o.clone();
    assert_eq!(
        delete_grant(&mut found).unwrap().dedup_password,
        "old passphrase"
    );

    o.passphrases.insert(
        ("enc".into(), "passphrase".into()),
        Err("secret default/enc not found".into()),
    );
    assert!(
        delete_grant(&mut o).is_none(),
        "nothing runs without the password"
    );
    let reason = o
        .backup
        .status
        .clone()
        .unwrap()
        .deletion_failure_reason
        .unwrap_or_default();
    assert!(
        reason.contains("deduplicating repository")
            && reason.contains("secret default/enc not found")
            && reason.contains("/prod/default/mycluster/postgresql/b1"),
        "{reason}"
    );
}
