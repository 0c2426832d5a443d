//! Snapshot data movement (ARCHITECTURE.md §K2.5a): a policy annotated
//! `cairn.io/snapshot-data-movement` copies each snapshot into its deduplicating repository.

use super::*;

const PATH: &str = "/prod/default/mycluster/postgresql/b1";
const KOPIA: &str = "/prod/default/mycluster/postgresql/kopia";

/// [`snapshot_observed`] with the default repository and the policy annotated `annotations`.
fn moving_observed(annotations: serde_json::Value) -> Observed {
    let mut o = snapshot_observed();
    o.repos = vec![default_repo("repo1", "Ready")];
    o.repo_access = Some(tool_access("repo1"));
    let mut p = o.policy.clone().unwrap();
    p.metadata.annotations = Some(serde_json::from_value(annotations).unwrap());
    o.policy = Some(p);
    o.claims = vec![
        serde_json::from_value(json!({
            "metadata": {"name": "data-pg-0", "namespace": "default"},
            "spec": {"volumeName": "pv-0", "storageClassName": "fast",
                     "accessModes": ["ReadWriteOnce"],
                     "resources": {"requests": {"storage": "1Gi"}}},
            "status": {"phase": "Bound"}
        }))
        .unwrap(),
    ];
    o
}

fn moving() -> Observed {
    moving_observed(json!({well_known::annotation::SNAPSHOT_DATA_MOVEMENT: "true"}))
}

/// The dispatched data movement action, if any.
fn move_action(plan: &Plan<BackupStatus>) -> Option<pb::VolumeMoveAction> {
    dispatched(&plan.intents)
        .into_iter()
        .find_map(|(_, a)| match &a.kind {
            Some(pb::action::Kind::VolumeMove(m)) => Some(m.clone()),
            _ => None,
        })
}

/// Runs the backup until its snapshot is reported ready (1Gi); returns the next plan.
fn snapshotted(o: &mut Observed) -> Plan<BackupStatus> {
    step(o, now());
    report_snapshots(
        o,
        "createVolumeSnapshot-0",
        json!([ready("b1-0-data", "data", "2Gi", "2026-11-22T10:00:03Z")]),
    );
    step(o, later(10))
}

fn report_move(o: &mut Observed, phase: ReportedPhase, info: serde_json::Value) {
    o.agents.report(
        action_id(UID, "moveVolumeData-0", "pg-0"),
        reported(phase)
            .because(if phase == ReportedPhase::Failed {
                "claim default/b1-0-data-dm not mounted: its holder pod is Pending after 600s"
            } else {
                ""
            })
            .with_info(Some(&info.to_string()))
            .ran(now(), later(20)),
    );
}

fn moved_report() -> serde_json::Value {
    json!({"volumeMoves": [{
        "volumeName": "data", "repositoryPath": format!("{}/b1-0-data", PATH.trim_start_matches('/')),
        "snapshotId": "ab".repeat(32), "bytesRead": 1000, "bytesStored": 600, "files": 3
    }]})
}

fn deletes(plan: &Plan<BackupStatus>) -> Vec<(String, String)> {
    plan.intents
        .iter()
        .filter_map(|i| match i {
            Intent::Delete { kind, name, .. } => Some((kind.clone(), name.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn with_data_movement_the_backup_records_a_repository_and_moves_after_the_snapshot() {
    let mut o = moving();
    step(&mut o, now());
    let status = o.backup.status.clone().unwrap();
    assert_eq!(status.path.as_deref(), Some(PATH));
    assert_eq!(status.kopia_repo_path.as_deref(), Some(KOPIA));
    assert_eq!(status.backup_repo_name.as_deref(), Some("repo1"));
    let names: Vec<_> = status
        .actions
        .iter()
        .flatten()
        .map(|a| a.name.clone().unwrap())
        .collect();
    assert_eq!(names, ["createVolumeSnapshot-0", "moveVolumeData-0"]);

    let plan = snapshotted(&mut o);
    let action = move_action(&plan).expect("the move is dispatched once the snapshot is ready");
    assert!(action.to_repository);
    let grant = action.storage.clone().unwrap();
    assert_eq!(grant.dedup_repo_root, KOPIA);
    assert_eq!(grant.read_write_prefix, PATH);
    assert_eq!(action.volumes.len(), 1);
    let volume = &action.volumes[0];
    assert_eq!(volume.volume_name, "data");
    assert_eq!(
        volume.repository_path,
        "prod/default/mycluster/postgresql/b1/b1-0-data"
    );
    assert_eq!(volume.lineage, "default/data-pg-0");
    assert_eq!(volume.size_bytes, 2 << 30, "the snapshot's restore size");
    let claim: serde_json::Value = serde_json::from_str(&volume.claim_json).unwrap();
    assert_eq!(claim["metadata"]["name"], "b1-0-data-dm");
    assert_eq!(claim["metadata"]["namespace"], "default");
    assert_eq!(claim["metadata"]["ownerReferences"][0]["uid"], UID);
    assert_eq!(claim["spec"]["storageClassName"], "fast");
    assert_eq!(claim["spec"]["resources"]["requests"]["storage"], "2Gi");
    assert_eq!(
        claim["spec"]["dataSource"],
        json!({"apiGroup": "snapshot.storage.k8s.io", "kind": "VolumeSnapshot", "name": "b1-0-data"})
    );

    report_move(&mut o, ReportedPhase::Succeeded, moved_report());
    let plan = step(&mut o, later(20));
    assert!(
        deletes(&plan).is_empty(),
        "the snapshots stay without the delete annotation"
    );
    let copies = o
        .backup
        .status
        .as_ref()
        .unwrap()
        .volume_snapshot_copies
        .clone()
        .unwrap();
    assert_eq!(copies.len(), 1);
    assert_eq!(copies[0].volume_snapshot_name, "b1-0-data");
    assert_eq!(copies[0].volume_name, "data");
    assert_eq!(copies[0].target_pod_name.as_deref(), Some("pg-0"));
    assert_eq!(copies[0].snapshot_id, "ab".repeat(32));
    assert_eq!(copies[0].size.as_deref(), Some("2Gi"));
    assert_eq!(copies[0].bytes_stored, 600);
    report(&mut o, MANIFEST_ACTION, "", ReportedPhase::Succeeded, None);
    step(&mut o, later(25));
    let status = o.backup.status.clone().unwrap();
    assert_eq!(status.phase, Some(BackupPhase::Completed));
    // The snapshot is recorded as well as its copy.
    let snap = entry(&status, "createVolumeSnapshot-0");
    assert_eq!(
        snap.volume_snapshots.as_ref().unwrap()[0].name.as_deref(),
        Some("b1-0-data")
    );
    assert_eq!(status.total_size.as_deref(), Some("2147483648"));
}

#[test]
fn the_annotation_may_name_the_methods_that_move() {
    let mut other =
        moving_observed(json!({well_known::annotation::SNAPSHOT_DATA_MOVEMENT: "other, more"}));
    step(&mut other, now());
    let status = other.backup.status.clone().unwrap();
    assert_eq!(status.kopia_repo_path, None);
    assert_eq!(status.path, None);
    let mut named =
        moving_observed(json!({well_known::annotation::SNAPSHOT_DATA_MOVEMENT: "other, snap"}));
    step(&mut named, now());
    assert_eq!(
        named
            .backup
            .status
            .clone()
            .unwrap()
            .kopia_repo_path
            .as_deref(),
        Some(KOPIA)
    );
}

#[test]
fn movement_is_decided_when_the_backup_starts() {
    let mut o = moving();
    step(&mut o, now());
    // The annotation removed later does not stop a running backup's movement...
    o.policy.as_mut().unwrap().metadata.annotations = None;
    let plan = snapshotted(&mut o);
    assert!(move_action(&plan).is_some());
    // ...and one added later does not start it for a backup that began without.
    let mut o = snapshot_observed();
    step(&mut o, now());
    let mut p = o.policy.clone().unwrap();
    p.metadata.annotations = Some(
        [(
            well_known::annotation::SNAPSHOT_DATA_MOVEMENT.to_string(),
            "true".to_string(),
        )]
        .into(),
    );
    o.policy = Some(p);
    o.repos = vec![default_repo("repo1", "Ready")];
    o.repo_access = Some(tool_access("repo1"));
    let plan = snapshotted(&mut o);
    assert!(move_action(&plan).is_none());
    assert_eq!(
        o.backup.status.as_ref().unwrap().phase,
        Some(BackupPhase::Completed)
    );
}

#[test]
fn the_snapshots_are_deleted_once_copied_when_the_policy_asks() {
    let mut o = moving_observed(json!({
        well_known::annotation::SNAPSHOT_DATA_MOVEMENT: "true",
        well_known::annotation::DELETE_SNAPSHOT_AFTER_MOVE: "true"
    }));
    snapshotted(&mut o);
    report_move(&mut o, ReportedPhase::Succeeded, moved_report());
    let plan = step(&mut o, later(20));
    assert_eq!(
        deletes(&plan),
        [("VolumeSnapshot".to_string(), "b1-0-data".to_string())]
    );
    assert!(
        events(&plan.intents)
            .iter()
            .any(|(_, reason, _)| reason == "DeleteMovedVolumeSnapshots")
    );
}

#[test]
fn a_failed_move_fails_the_backup_and_deletes_its_temporary_claim_and_pod() {
    let mut o = moving();
    snapshotted(&mut o);
    report_move(&mut o, ReportedPhase::Failed, json!({}));
    let plan = step(&mut o, later(20));
    assert_eq!(
        deletes(&plan),
        [
            ("Pod".to_string(), "b1-0-data-dm".to_string()),
            (
                "PersistentVolumeClaim".to_string(),
                "b1-0-data-dm".to_string()
            )
        ]
    );
    let status = o.backup.status.clone().unwrap();
    assert_eq!(status.phase, Some(BackupPhase::Failed));
    assert!(
        entry(&status, "moveVolumeData-0")
            .failure_reason
            .as_deref()
            .unwrap()
            .contains("holder pod is Pending"),
        "{status:?}"
    );
}

#[test]
fn a_lost_node_during_the_move_fails_it_and_deletes_the_temporary_objects() {
    let mut o = moving();
    snapshotted(&mut o);
    o.agents.disconnect("node-a", later(10));
    let plan = step(&mut o, later(10 + 600));
    assert!(
        deletes(&plan).contains(&("Pod".to_string(), "b1-0-data-dm".to_string())),
        "{:?}",
        plan.intents
    );
    assert_eq!(
        o.backup.status.as_ref().unwrap().phase,
        Some(BackupPhase::Failed)
    );
}

#[test]
fn deleting_a_moved_backup_forgets_its_copy_and_deletes_its_snapshots() {
    let mut o = moving();
    snapshotted(&mut o);
    report_move(&mut o, ReportedPhase::Succeeded, moved_report());
    step(&mut o, later(20));
    report(&mut o, MANIFEST_ACTION, "", ReportedPhase::Succeeded, None);
    step(&mut o, later(25));
    o.backup
        .metadata
        .finalizers
        .get_or_insert_with(Vec::new)
        .push(well_known::FINALIZER.into());
    o.backup.metadata.deletion_timestamp = Some(
        k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(later(100)),
    );
    o.backup.spec.deletion_policy = Some(serde_json::from_value(json!("Delete")).unwrap());
    let plan = step(&mut o, later(101));
    let delete = dispatched(&plan.intents)
        .iter()
        .find_map(|(_, a)| match &a.kind {
            Some(pb::action::Kind::DeletePath(d)) => Some(d.clone()),
            _ => None,
        })
        .expect("the repository copy is removed");
    assert_eq!(delete.path, PATH);
    assert_eq!(delete.storage.unwrap().dedup_repo_root, KOPIA);
    assert!(!plan.intents.contains(&Intent::RemoveFinalizer));
}
