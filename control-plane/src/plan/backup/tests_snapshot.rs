//! Volume snapshot backups (`snapshotVolumes: true`, ARCHITECTURE.md §K2.5): the planner's
//! checks, the VolumeSnapshots it asks for, and what it records.

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};

use super::*;
use crate::plan::backup::snapshot::{Inputs, SnapshotClass, quantity_bytes};

const DRIVER: &str = "ebs.csi.aws.com";

/// A policy whose method `snap` snapshots the volumes `volumes` of the target pod, with no
/// ActionSet (no hooks).
fn snapshot_policy(volumes: serde_json::Value) -> BackupPolicy {
    policy(json!({"spec": {"backupMethods": [{
        "name": "snap", "snapshotVolumes": true, "targetVolumes": {"volumes": volumes}
    }]}}))
}

fn bound_claim(name: &str, pv: &str) -> PersistentVolumeClaim {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"volumeName": pv, "resources": {"requests": {"storage": "1Gi"}}},
        "status": {"phase": "Bound"}
    }))
    .unwrap()
}

fn csi_volume(name: &str, driver: &str) -> PersistentVolume {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"csi": {"driver": driver, "volumeHandle": format!("vol-{name}")},
                 "capacity": {"storage": "1Gi"}}
    }))
    .unwrap()
}

fn class(name: &str, driver: &str, default: bool) -> SnapshotClass {
    SnapshotClass {
        name: name.into(),
        driver: driver.into(),
        default,
        deletion_policy: "Delete".into(),
    }
}

/// A snapshot backup `b1` of pod `pg-0` (the secondary) without hooks, whose `data` claim is
/// bound to a CSI volume of [`DRIVER`], with one class of that driver.
fn snapshot_observed() -> Observed {
    let mut o = observed();
    o.backup = backup(json!({"spec": {"backupMethod": "snap"}}));
    o.policy = Some(snapshot_policy(json!(["data"])));
    o.actionset = None;
    o.repos = Vec::new();
    o.repo_access = None;
    o.claims = vec![bound_claim("data-pg-0", "pv-0")];
    o.snapshot = Inputs {
        volumes: vec![csi_volume("pv-0", DRIVER)],
        classes: vec![class("ebs-snap", DRIVER, false)],
    };
    o
}

/// The dispatched snapshot action: its name and its VolumeSnapshots.
fn snapshot_action(plan: &Plan<BackupStatus>) -> (String, pb::VolumeSnapshotAction) {
    dispatched(&plan.intents)
        .into_iter()
        .find_map(|(_, a)| match &a.kind {
            Some(pb::action::Kind::VolumeSnapshot(v)) => Some((a.name.clone(), v.clone())),
            _ => None,
        })
        .expect("a volume snapshot action is dispatched")
}

fn objects(action: &pb::VolumeSnapshotAction) -> Vec<serde_json::Value> {
    action
        .snapshots
        .iter()
        .map(|s| serde_json::from_str(&s.snapshot_json).unwrap())
        .collect()
}

fn dispatched_names(plan: &Plan<BackupStatus>) -> Vec<String> {
    dispatched(&plan.intents)
        .into_iter()
        .map(|(_, a)| a.name.clone())
        .collect()
}

/// The agent's report for a ready snapshot of volume `volume`.
fn ready(name: &str, volume: &str, size: &str, created: &str) -> serde_json::Value {
    json!({"name": name, "contentName": format!("snapcontent-{name}"), "volumeName": volume,
           "size": size, "creationTime": created})
}

fn report_snapshots(o: &mut Observed, action: &str, snapshots: serde_json::Value) {
    o.agents.report(
        action_id(UID, action, "pg-0"),
        reported(ReportedPhase::Succeeded)
            .with_info(Some(&json!({ "volumeSnapshots": snapshots }).to_string()))
            .ran(now(), later(5)),
    );
}

#[test]
fn the_pre_hook_runs_first_then_one_snapshot_per_volume_then_the_post_hook_and_the_backup_completes()
 {
    let mut o = snapshot_observed();
    o.policy = Some(policy(json!({"spec": {"backupMethods": [{
        "name": "snap", "snapshotVolumes": true, "actionSetName": "pg-basebackup",
        "targetVolumes": {"volumes": ["data"]}
    }]}})));
    o.actionset = Some(actionset(json!({})));
    let plan = step(&mut o, now());
    assert_eq!(dispatched_names(&plan), ["dp-prebackup-0-0"]);
    let status = o.backup.status.clone().unwrap();
    assert_eq!(status.phase, Some(BackupPhase::Running));
    assert_eq!(status.path, None, "a snapshot backup has no path");
    assert_eq!(status.backup_repo_name, None, "nor a repository");
    let labels = o.backup.metadata.labels.clone().unwrap();
    assert_eq!(labels[well_known::label::BACKUP_TYPE], "Full");
    assert!(!labels.contains_key(well_known::label::BACKUP_REPO));
    let names: Vec<_> = status
        .actions
        .iter()
        .flatten()
        .map(|a| a.name.clone().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "dp-prebackup-0-0",
            "createVolumeSnapshot-0",
            "dp-postbackup-0-0"
        ]
    );

    report(
        &mut o,
        "dp-prebackup-0-0",
        "pg-0",
        ReportedPhase::Succeeded,
        None,
    );
    let plan = step(&mut o, later(10));
    let (name, action) = snapshot_action(&plan);
    assert_eq!(name, "createVolumeSnapshot-0");
    assert_eq!(action.timeout_seconds, 600);
    let objects = objects(&action);
    assert_eq!(objects.len(), 1);
    let vs = &objects[0];
    assert_eq!(action.snapshots[0].volume_name, "data");
    assert_eq!(vs["apiVersion"], "snapshot.storage.k8s.io/v1");
    assert_eq!(vs["kind"], "VolumeSnapshot");
    assert_eq!(vs["metadata"]["name"], "b1-0-data");
    assert_eq!(vs["metadata"]["namespace"], "default");
    assert_eq!(
        vs["metadata"]["labels"][well_known::label::BACKUP_NAME],
        "b1"
    );
    assert_eq!(
        vs["metadata"]["labels"][well_known::label::BACKUP_POLICY],
        "pg-policy"
    );
    assert_eq!(vs["metadata"]["ownerReferences"][0]["kind"], "Backup");
    assert_eq!(vs["metadata"]["ownerReferences"][0]["uid"], UID);
    assert_eq!(
        vs["spec"]["source"]["persistentVolumeClaimName"],
        "data-pg-0"
    );
    assert_eq!(vs["spec"]["volumeSnapshotClassName"], "ebs-snap");
    assert_eq!(
        entry(o.backup.status.as_ref().unwrap(), "createVolumeSnapshot-0").phase,
        Some(ActionPhase::Running)
    );

    report_snapshots(
        &mut o,
        "createVolumeSnapshot-0",
        json!([ready("b1-0-data", "data", "1Gi", "2026-11-22T10:00:03Z")]),
    );
    let plan = step(&mut o, later(15));
    assert_eq!(dispatched_names(&plan), ["dp-postbackup-0-0"]);
    let snap = entry(o.backup.status.as_ref().unwrap(), "createVolumeSnapshot-0").clone();
    assert_eq!(snap.phase, Some(ActionPhase::Completed));
    let recorded = snap.volume_snapshots.clone().unwrap();
    assert_eq!(recorded[0].name.as_deref(), Some("b1-0-data"));
    assert_eq!(
        recorded[0].content_name.as_deref(),
        Some("snapcontent-b1-0-data")
    );
    assert_eq!(recorded[0].volume_name.as_deref(), Some("data"));
    assert_eq!(recorded[0].size.as_deref(), Some("1Gi"));
    assert_eq!(snap.total_size.as_deref(), Some("1073741824"));

    report(
        &mut o,
        "dp-postbackup-0-0",
        "pg-0",
        ReportedPhase::Succeeded,
        None,
    );
    let plan = step(&mut o, later(20));
    assert!(
        dispatched(&plan.intents).is_empty(),
        "no manifest is written: there is no repository"
    );
    let status = o.backup.status.clone().unwrap();
    assert_eq!(status.phase, Some(BackupPhase::Completed));
    assert_eq!(status.total_size.as_deref(), Some("1073741824"));
    let range = status.time_range.unwrap();
    assert_eq!(range.start, range.end);
    assert_eq!(range.start.unwrap().0.to_string(), "2026-11-22T10:00:03Z");
}

#[test]
fn without_an_actionset_only_the_snapshots_are_taken() {
    let mut o = snapshot_observed();
    let plan = step(&mut o, now());
    assert_eq!(dispatched_names(&plan), ["createVolumeSnapshot-0"]);
}

#[test]
fn several_volumes_are_snapshotted_by_one_action_and_their_sizes_add_up() {
    let mut o = snapshot_observed();
    o.policy = Some(policy(json!({"spec": {"backupMethods": [{
        "name": "snap", "snapshotVolumes": true, "targetVolumes": {"volumes": ["data", "log"]}
    }]}})));
    let mut pod = member("pg-0", "secondary");
    pod.spec.as_mut().unwrap().volumes.as_mut().unwrap().push(
        serde_json::from_value(
            json!({"name": "log", "persistentVolumeClaim": {"claimName": "log-pg-0"}}),
        )
        .unwrap(),
    );
    o.pods = vec![pod, member("pg-1", "primary")];
    o.claims.push(bound_claim("log-pg-0", "pv-1"));
    o.snapshot.volumes.push(csi_volume("pv-1", DRIVER));
    let plan = step(&mut o, now());
    let (_, action) = snapshot_action(&plan);
    let names: Vec<_> = objects(&action)
        .iter()
        .map(|v| v["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["b1-0-data", "b1-0-log"]);
    report_snapshots(
        &mut o,
        "createVolumeSnapshot-0",
        json!([
            ready("b1-0-data", "data", "1Gi", "2026-11-22T10:00:03Z"),
            ready("b1-0-log", "log", "512Mi", "2026-11-22T10:00:04Z")
        ]),
    );
    step(&mut o, later(10));
    let status = o.backup.status.clone().unwrap();
    assert_eq!(status.phase, Some(BackupPhase::Completed));
    assert_eq!(status.total_size.as_deref(), Some("1610612736"));
    let range = status.time_range.unwrap();
    assert_eq!(range.start.unwrap().0.to_string(), "2026-11-22T10:00:03Z");
    assert_eq!(range.end.unwrap().0.to_string(), "2026-11-22T10:00:04Z");
}

#[test]
fn a_named_target_is_part_of_the_action_and_snapshot_names() {
    let mut o = snapshot_observed();
    o.policy = Some(policy(json!({"spec": {
        "target": null,
        "targets": [{"name": "shard1", "podSelector": {"matchLabels": {"app": "pg", "role": "secondary"}}}],
        "backupMethods": [{"name": "snap", "snapshotVolumes": true,
                           "targetVolumes": {"volumes": ["data"]}}]
    }})));
    let plan = step(&mut o, now());
    let (name, action) = snapshot_action(&plan);
    assert_eq!(name, "createVolumeSnapshot-shard1-0");
    assert_eq!(objects(&action)[0]["metadata"]["name"], "b1-shard1-0-data");
}

#[test]
fn the_default_class_wins_among_several_of_the_driver_and_other_drivers_are_ignored() {
    let mut o = snapshot_observed();
    o.snapshot.classes = vec![
        class("a-other", "other.csi.io", true),
        class("b-plain", DRIVER, false),
        class("c-default", DRIVER, true),
    ];
    let (_, action) = snapshot_action(&step(&mut o, now()));
    assert_eq!(
        objects(&action)[0]["spec"]["volumeSnapshotClassName"],
        "c-default"
    );

    let mut o = snapshot_observed();
    o.snapshot.classes = vec![
        class("z-plain", DRIVER, false),
        class("a-other", "other.csi.io", true),
        class("m-plain", DRIVER, false),
    ];
    let (_, action) = snapshot_action(&step(&mut o, now()));
    assert_eq!(
        objects(&action)[0]["spec"]["volumeSnapshotClassName"],
        "m-plain",
        "without a default, the first by name"
    );
}

#[test]
fn every_precondition_fails_the_backup_naming_the_pod_volume_claim_or_driver() {
    type Change = Box<dyn Fn(&mut Observed)>;
    let cases: Vec<(&str, Change, &str)> = vec![
        (
            "no targetVolumes",
            Box::new(|o| {
                o.policy = Some(policy(json!({"spec": {"backupMethods": [
                    {"name": "snap", "snapshotVolumes": true}]}})))
            }),
            "targetVolumes is required for snapshotVolumes",
        ),
        (
            "volume not PVC-backed",
            Box::new(|o| o.policy = Some(snapshot_policy(json!(["scratch"])))),
            "the type of volume \"scratch\" is not PersistentVolumeClaim on pod \"pg-0\"",
        ),
        (
            "no matching volume",
            Box::new(|o| o.policy = Some(snapshot_policy(json!(["nope"])))),
            "can not find any volume by targetVolumes [\"nope\"] on pod \"pg-0\"",
        ),
        (
            "claim missing",
            Box::new(|o| o.claims.clear()),
            "persistentVolumeClaim \"data-pg-0\" of volume \"data\" on pod \"pg-0\" not found",
        ),
        (
            "claim not bound",
            Box::new(|o| o.claims = vec![bound_claim("data-pg-0", "")]),
            "persistentVolumeClaim \"data-pg-0\" of volume \"data\" on pod \"pg-0\" is not bound to a persistentVolume",
        ),
        (
            "volume missing",
            Box::new(|o| o.snapshot.volumes.clear()),
            "persistentVolume \"pv-0\" of persistentVolumeClaim \"data-pg-0\" not found",
        ),
        (
            "volume not CSI",
            Box::new(|o| {
                o.snapshot.volumes = vec![
                    serde_json::from_value(json!({"metadata": {"name": "pv-0"},
                        "spec": {"local": {"path": "/data/pv-0"}}}))
                    .unwrap(),
                ]
            }),
            "persistentVolume \"pv-0\" of persistentVolumeClaim \"data-pg-0\" (volume \"data\" on pod \"pg-0\") is not a CSI volume, and only CSI volumes can be snapshotted",
        ),
        (
            "no class of the driver",
            Box::new(|o| o.snapshot.classes = vec![class("other", "other.csi.io", true)]),
            "cannot find any VolumeSnapshotClass of persistentVolumeClaim \"data-pg-0\" to do volume snapshot on pod \"pg-0\": no VolumeSnapshotClass has driver \"ebs.csi.aws.com\"",
        ),
        (
            "bad timeout annotation",
            Box::new(|o| {
                let mut p = snapshot_policy(json!(["data"]));
                p.metadata.annotations = Some(BTreeMap::from([(
                    well_known::annotation::VOLUME_SNAPSHOT_TIMEOUT.to_string(),
                    "soon".to_string(),
                )]));
                o.policy = Some(p);
            }),
            "annotation cairn.io/volume-snapshot-timeout of backupPolicy \"pg-policy\": invalid duration \"soon\"",
        ),
    ];
    for (case, change, message) in cases {
        let mut o = snapshot_observed();
        change(&mut o);
        let plan = step(&mut o, now());
        let (phase, reason) = failure(&plan);
        assert_eq!(phase, Some(BackupPhase::Failed), "{case}");
        assert!(reason.starts_with(message), "{case}: {reason}");
        assert!(dispatched(&plan.intents).is_empty(), "{case}");
    }
}

#[test]
fn the_policy_annotation_sets_the_time_the_agent_waits_for_readiness() {
    let mut o = snapshot_observed();
    let mut p = snapshot_policy(json!(["data"]));
    p.metadata.annotations = Some(BTreeMap::from([(
        well_known::annotation::VOLUME_SNAPSHOT_TIMEOUT.to_string(),
        "90s".to_string(),
    )]));
    o.policy = Some(p);
    let (_, action) = snapshot_action(&step(&mut o, now()));
    assert_eq!(action.timeout_seconds, 90);
}

#[test]
fn a_snapshotter_error_or_a_timeout_reported_by_the_agent_fails_the_backup_with_it() {
    let mut o = snapshot_observed();
    step(&mut o, now());
    o.agents.report(
        action_id(UID, "createVolumeSnapshot-0", "pg-0"),
        reported(ReportedPhase::Failed)
            .because("VolumeSnapshot default/b1-0-data not ready to use after 600s")
            .ran(now(), later(600)),
    );
    let plan = step(&mut o, later(601));
    let status = o.backup.status.clone().unwrap();
    assert_eq!(status.phase, Some(BackupPhase::Failed));
    assert_eq!(
        entry(&status, "createVolumeSnapshot-0")
            .failure_reason
            .as_deref(),
        Some("VolumeSnapshot default/b1-0-data not ready to use after 600s")
    );
    assert!(
        events(&plan.intents)
            .iter()
            .any(|(_, _, m)| m.contains("not ready to use"))
    );
}

#[test]
fn once_the_snapshots_are_recorded_a_vanished_claim_does_not_fail_the_backup() {
    let mut o = snapshot_observed();
    o.pods = vec![member("pg-0", "secondary")];
    step(&mut o, now());
    report_snapshots(
        &mut o,
        "createVolumeSnapshot-0",
        json!([ready("b1-0-data", "data", "10", "2026-11-22T10:00:03Z")]),
    );
    // Recorded Completed, then the claim goes before the next reconcile finishes the backup.
    let mut status = o.backup.status.clone().unwrap();
    status.actions.as_mut().unwrap()[0].phase = Some(ActionPhase::Completed);
    o.backup.status = Some(status);
    o.claims.clear();
    step(&mut o, later(10));
    assert_eq!(
        o.backup.status.clone().unwrap().phase,
        Some(BackupPhase::Completed)
    );
}

#[test]
fn quantities_are_read_in_bytes() {
    assert_eq!(quantity_bytes("1Gi"), Some(1 << 30));
    assert_eq!(quantity_bytes("512Mi"), Some(512 << 20));
    assert_eq!(quantity_bytes("2G"), Some(2_000_000_000));
    assert_eq!(quantity_bytes("4096"), Some(4096));
    assert_eq!(quantity_bytes("1.5Gi"), None);
    assert_eq!(quantity_bytes("lots"), None);
}

/// A completed snapshot backup of volumes `data` and `log`, then deleted with `policy`.
fn deleted_snapshot_backup(policy: &str) -> Plan<BackupStatus> {
    let mut o = snapshot_observed();
    o.policy = Some(snapshot_policy(json!(["data", "log"])));
    let mut pod = member("pg-0", "secondary");
    pod.spec.as_mut().unwrap().volumes.as_mut().unwrap().push(
        serde_json::from_value(
            json!({"name": "log", "persistentVolumeClaim": {"claimName": "log-pg-0"}}),
        )
        .unwrap(),
    );
    o.pods = vec![pod];
    o.claims.push(bound_claim("log-pg-0", "pv-1"));
    o.snapshot.volumes.push(csi_volume("pv-1", DRIVER));
    step(&mut o, now());
    report_snapshots(
        &mut o,
        "createVolumeSnapshot-0",
        json!([
            ready("b1-0-data", "data", "1Gi", "2026-11-22T10:00:03Z"),
            ready("b1-0-log", "log", "1Gi", "2026-11-22T10:00:03Z")
        ]),
    );
    step(&mut o, later(10));
    assert_eq!(
        o.backup.status.as_ref().unwrap().phase,
        Some(BackupPhase::Completed)
    );
    o.backup
        .metadata
        .finalizers
        .get_or_insert_with(Vec::new)
        .push(well_known::FINALIZER.into());
    o.backup.metadata.deletion_timestamp = Some(
        k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(later(100)),
    );
    o.backup.spec.deletion_policy = Some(serde_json::from_value(json!(policy)).unwrap());
    step(&mut o, later(101))
}

#[test]
fn deleting_with_delete_deletes_the_recorded_snapshots_then_lets_the_backup_go() {
    let plan = deleted_snapshot_backup("Delete");
    let deleted: Vec<(&str, &str, Option<&str>)> = plan
        .intents
        .iter()
        .filter_map(|i| match i {
            Intent::Delete {
                kind,
                name,
                namespace,
                ..
            } => Some((kind.as_str(), name.as_str(), namespace.as_deref())),
            _ => None,
        })
        .collect();
    assert_eq!(
        deleted,
        [
            ("VolumeSnapshot", "b1-0-data", Some("default")),
            ("VolumeSnapshot", "b1-0-log", Some("default"))
        ]
    );
    assert!(plan.intents.contains(&Intent::RemoveFinalizer));
    assert!(
        !plan
            .intents
            .iter()
            .any(|i| matches!(i, Intent::Orphan { .. }))
    );
}

#[test]
fn deleting_with_retain_orphans_the_snapshots_so_they_outlive_the_backup() {
    let plan = deleted_snapshot_backup("Retain");
    let orphaned: Vec<&str> = plan
        .intents
        .iter()
        .filter_map(|i| match i {
            Intent::Orphan { kind, name, .. } if kind == "VolumeSnapshot" => Some(name.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(orphaned, ["b1-0-data", "b1-0-log"]);
    assert!(
        !plan
            .intents
            .iter()
            .any(|i| matches!(i, Intent::Delete { kind, .. } if kind == "VolumeSnapshot"))
    );
    assert!(plan.intents.contains(&Intent::RemoveFinalizer));
    assert!(events(&plan.intents).iter().any(
        |(_, reason, m)| reason == "RetainVolumeSnapshots" && m.contains("b1-0-data, b1-0-log")
    ));
}

#[path = "tests_snapshot_move.rs"]
mod move_tests;
