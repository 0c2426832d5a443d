//! Restores of volume snapshot backups (§K4.2a): each claim is created from the VolumeSnapshot
//! of its `volumeSource`, no Job writes into it, and every way of getting it wrong fails the
//! Restore naming the claim, the volume and the snapshot.

use cairn_api::restore::{RestorePhase, RestoreStage};
use cairn_api::well_known::conditions::restore::CONDITION_PREPARE_DATA;
use serde_json::{Value, json};

use super::snapshot::VolumeSnapshot;
use super::tests::*;
use super::*;
use crate::plan::agent_view::ReportedPhase;
use crate::plan::intent::EventType;
use cairn_proto::agent::v1 as pb;

/// Snapshot backup `b1` of pod pg-0 (volumes `data` 1Gi and `log` 512Mi), method without an
/// ActionSet, no repository and no path.
fn snapshot_backup(extra: Value) -> Backup {
    let mut value = json!({
        "apiVersion": "dataprotection.kubeblocks.io/v1alpha1", "kind": "Backup",
        "metadata": {"name": "b1", "namespace": "default", "uid": "b-uid"},
        "spec": {"backupPolicyName": "pg-policy", "backupMethod": "snap"},
        "status": {
            "phase": "Completed",
            "completionTimestamp": "2026-11-22T09:30:00Z",
            "timeRange": {"start": "2026-11-22T09:00:00Z", "end": "2026-11-22T09:00:00Z"},
            "backupMethod": {"name": "snap", "snapshotVolumes": true,
                "targetVolumes": {"volumes": ["data", "log"],
                                  "volumeMounts": [{"name": "data", "mountPath": "/var/lib/pg"}]}},
            "target": {"podSelector": {"matchLabels": {"app": "pg"}},
                       "selectedTargetPods": ["pg-0"]},
            "actions": [{
                "name": "createVolumeSnapshot-0", "targetPodName": "pg-0", "phase": "Completed",
                "volumeSnapshots": [
                    {"name": "b1-0-data", "contentName": "c-data", "volumeName": "data", "size": "1Gi"},
                    {"name": "b1-0-log", "contentName": "c-log", "volumeName": "log", "size": "512Mi"}
                ]
            }]
        }
    });
    json_patch::merge(&mut value, &extra);
    serde_json::from_value(value).unwrap()
}

fn ready(name: &str, size: &str) -> VolumeSnapshot {
    VolumeSnapshot {
        name: name.into(),
        ready: true,
        restore_size: size.into(),
        ..Default::default()
    }
}

/// Restore `r1` of the snapshot backup into claims `data-0` and `data-1` (1Gi each).
fn snapshot_observed() -> Observed {
    let mut o = observed();
    o.backup = Some(snapshot_backup(json!({})));
    o.actionset = None;
    o.repos = Vec::new();
    o.repo_access = None;
    o.snapshots = vec![ready("b1-0-data", "1Gi"), ready("b1-0-log", "512Mi")];
    o
}

fn created(plan: &Plan<RestoreStatus>) -> Vec<Value> {
    plan.intents
        .iter()
        .filter_map(|i| match i {
            Intent::Create { object } => Some(object.clone()),
            _ => None,
        })
        .collect()
}

/// Makes the claims `plan` created exist (Pending), as the API server would.
fn apply_created(o: &mut Observed, plan: &Plan<RestoreStatus>) {
    for object in created(plan) {
        o.claims.push(serde_json::from_value(object).unwrap());
    }
}

/// `(status, reason, message)` of condition PrepareData, with the phase.
fn prepare_failure(plan: &Plan<RestoreStatus>) -> (Option<RestorePhase>, String) {
    let status = plan.status.clone().unwrap();
    let (_, _, message) = condition(&status, CONDITION_PREPARE_DATA);
    (status.phase, message)
}

fn source_of(object: &Value) -> (String, String, String) {
    let source = &object["spec"]["dataSource"];
    (
        source["apiGroup"].as_str().unwrap_or_default().into(),
        source["kind"].as_str().unwrap_or_default().into(),
        source["name"].as_str().unwrap_or_default().into(),
    )
}

fn from_snapshot(name: &str) -> (String, String, String) {
    (
        "snapshot.storage.k8s.io".into(),
        "VolumeSnapshot".into(),
        name.into(),
    )
}

#[test]
fn each_claim_is_created_from_the_snapshot_of_its_volume_and_no_job_runs() {
    let mut o = snapshot_observed();
    let plan = step(&mut o, now());
    let status = plan.status.clone().unwrap();
    assert_eq!(status.phase, Some(RestorePhase::Running), "{status:?}");
    assert!(dispatched(&plan.intents).is_empty(), "no data-restore Job");
    let claims = created(&plan);
    let names: Vec<_> = claims
        .iter()
        .map(|c| c["metadata"]["name"].clone())
        .collect();
    assert_eq!(names, [json!("data-0"), json!("data-1")]);
    for claim in &claims {
        assert_eq!(source_of(claim), from_snapshot("b1-0-data"));
        assert_eq!(claim["metadata"]["namespace"], "default");
        assert_eq!(claim["metadata"]["labels"]["app"], "pg");
        assert_eq!(claim["spec"]["resources"]["requests"]["storage"], "1Gi");
    }
    assert_eq!(condition(&status, CONDITION_PREPARE_DATA).1, "Processing");
    assert!(
        events(&plan.intents)
            .iter()
            .any(|(t, r, m)| *t == EventType::Normal
                && r == "CreateVolumeClaimFromSnapshot"
                && m.contains("default/data-1")
                && m.contains("VolumeSnapshot b1-0-data")
                && m.contains("volume \"data\"")),
        "{:?}",
        events(&plan.intents)
    );

    // Once the claims exist the restore completes, without Jobs to delete.
    apply_created(&mut o, &plan);
    let plan = step(&mut o, later(5));
    let status = plan.status.clone().unwrap();
    assert_eq!(status.phase, Some(RestorePhase::Completed), "{status:?}");
    assert!(created(&plan).is_empty() && dispatched(&plan.intents).is_empty());
    assert_eq!(condition(&status, CONDITION_PREPARE_DATA).0, "True");
    assert!(work::entries(&status, RestoreStage::PrepareData).is_empty());
}

#[test]
fn volume_claims_take_the_snapshot_of_their_volume_source() {
    let mut o = snapshot_observed();
    o.restore = restore(json!({"spec": {"prepareDataConfig": {
        "volumeClaimsTemplate": null,
        "volumeClaims": [
            {"metadata": {"name": "restored-log"}, "volumeSource": "log",
             "volumeClaimSpec": {"resources": {"requests": {"storage": "1Gi"}}}},
            {"metadata": {"name": "restored-data"}, "volumeSource": "data",
             "volumeClaimSpec": {"resources": {"requests": {"storage": "2Gi"}}}}
        ]
    }}}));
    let plan = step(&mut o, now());
    let claims = created(&plan);
    let seen: Vec<_> = claims
        .iter()
        .map(|c| (c["metadata"]["name"].clone(), source_of(c).2))
        .collect();
    assert_eq!(
        seen,
        [
            (json!("restored-log"), "b1-0-log".to_string()),
            (json!("restored-data"), "b1-0-data".to_string())
        ]
    );
}

#[test]
fn a_claim_naming_a_volume_the_backup_did_not_snapshot_fails_naming_it() {
    let mut o = snapshot_observed();
    o.restore = restore(
        json!({"spec": {"prepareDataConfig": {"volumeClaimsTemplate": {
        "templates": [{"metadata": {"name": "data"}, "volumeSource": "nope",
                       "volumeClaimSpec": {"resources": {"requests": {"storage": "1Gi"}}}}],
        "replicas": 1}}}}),
    );
    let plan = step(&mut o, now());
    let (phase, message) = prepare_failure(&plan);
    assert_eq!(phase, Some(RestorePhase::Failed));
    assert_eq!(
        message,
        "volume claim \"data-0\": backup \"b1\" has no volume snapshot of volume \"nope\" (the claim's volumeSource); it has snapshots of \"data\", \"log\""
    );
    assert!(created(&plan).is_empty(), "nothing is created");
}

#[test]
fn a_claim_without_a_volume_source_fails_naming_the_claim() {
    let mut o = snapshot_observed();
    o.restore = restore(
        json!({"spec": {"prepareDataConfig": {"volumeClaimsTemplate": null,
        "volumeClaims": [{"metadata": {"name": "orphan"}, "volumeClaimSpec": {}}]}}}),
    );
    let (phase, message) = prepare_failure(&step(&mut o, now()));
    assert_eq!(phase, Some(RestorePhase::Failed));
    assert!(
        message.starts_with("volume claim \"orphan\" has no volumeSource")
            && message.contains("(\"data\", \"log\")"),
        "{message}"
    );
}

#[test]
fn a_missing_deleted_or_unready_snapshot_fails_naming_claim_volume_and_snapshot() {
    let what = "VolumeSnapshot default/b1-0-data (volume \"data\" of backup \"b1\", for volume claim \"data-0\")";
    let cases: [(&str, Vec<VolumeSnapshot>, String); 3] = [
        ("missing", vec![], format!("{what} not found")),
        (
            "deleting",
            vec![VolumeSnapshot {
                deleting: true,
                ..ready("b1-0-data", "1Gi")
            }],
            format!("{what} is being deleted"),
        ),
        (
            "unready",
            vec![VolumeSnapshot {
                ready: false,
                error: "Failed to check and update snapshot content".into(),
                ..ready("b1-0-data", "1Gi")
            }],
            format!("{what} is not ready to use: Failed to check and update snapshot content"),
        ),
    ];
    for (case, snapshots, expected) in cases {
        let mut o = snapshot_observed();
        o.snapshots = snapshots;
        let plan = step(&mut o, now());
        assert_eq!(
            prepare_failure(&plan),
            (Some(RestorePhase::Failed), expected),
            "{case}"
        );
        assert!(created(&plan).is_empty(), "{case}: nothing is created");
        assert!(
            events(&plan.intents)
                .iter()
                .any(|(t, r, _)| *t == EventType::Warning && r == "RestoreFailed"),
            "{case}"
        );
    }
}

#[test]
fn a_claim_smaller_than_the_snapshot_fails_and_one_asking_nothing_gets_its_size() {
    let mut o = snapshot_observed();
    o.restore = restore(
        json!({"spec": {"prepareDataConfig": {"volumeClaimsTemplate": {
        "templates": [{"metadata": {"name": "data"}, "volumeSource": "data",
                       "volumeClaimSpec": {"resources": {"requests": {"storage": "512Mi"}}}}],
        "replicas": 1}}}}),
    );
    let (phase, message) = prepare_failure(&step(&mut o, now()));
    assert_eq!(phase, Some(RestorePhase::Failed));
    assert_eq!(
        message,
        "volume claim \"data-0\" requests 512Mi of storage, less than the restore size 1Gi of VolumeSnapshot default/b1-0-data (volume \"data\" of backup \"b1\", for volume claim \"data-0\")"
    );

    let mut o = snapshot_observed();
    o.restore = restore(
        json!({"spec": {"prepareDataConfig": {"volumeClaimsTemplate": {
        "templates": [{"metadata": {"name": "data"}, "volumeSource": "data",
                       "volumeClaimSpec": {"accessModes": ["ReadWriteOnce"]}}],
        "replicas": 1}}}}),
    );
    let claims = created(&step(&mut o, now()));
    assert_eq!(claims.len(), 1);
    assert_eq!(claims[0]["spec"]["resources"]["requests"]["storage"], "1Gi");
}

#[test]
fn a_restore_in_another_namespace_fails_saying_where_the_snapshots_are() {
    let mut o = snapshot_observed();
    o.restore.metadata.namespace = Some("team-b".into());
    o.backup.as_mut().unwrap().metadata.annotations = Some(
        [(
            request::RESTORE_ALLOWED_NAMESPACES.to_string(),
            "*".to_string(),
        )]
        .into(),
    );
    let plan = step(&mut o, now());
    let (phase, message) = prepare_failure(&plan);
    assert_eq!(phase, Some(RestorePhase::Failed));
    assert!(
        message.contains("VolumeSnapshots are in namespace \"default\"")
            && message.contains("a Restore in namespace \"default\", not \"team-b\""),
        "{message}"
    );
    assert!(created(&plan).is_empty());
}

#[test]
fn an_existing_claim_must_have_been_made_from_the_snapshot() {
    let mut o = snapshot_observed();
    o.claims = vec![
        serde_json::from_value(
            json!({"metadata": {"name": "data-0", "namespace": "default"},
            "spec": {"resources": {"requests": {"storage": "1Gi"}}}}),
        )
        .unwrap(),
    ];
    let plan = step(&mut o, now());
    let (phase, message) = prepare_failure(&plan);
    assert_eq!(phase, Some(RestorePhase::Failed));
    assert!(
        message.starts_with("volume claim default/data-0 already exists and was not made from VolumeSnapshot b1-0-data (volume \"data\"): it has no dataSource"),
        "{message}"
    );

    // A claim this restore made, once bound, no longer needs its snapshot.
    let mut o = snapshot_observed();
    let plan = step(&mut o, now());
    apply_created(&mut o, &plan);
    for claim in &mut o.claims {
        claim.status = Some(k8s_openapi::api::core::v1::PersistentVolumeClaimStatus {
            phase: Some("Bound".into()),
            ..Default::default()
        });
    }
    o.snapshots.clear();
    let status = step(&mut o, later(5)).status.unwrap();
    assert_eq!(status.phase, Some(RestorePhase::Completed), "{status:?}");
}

#[test]
fn strategy_all_restores_each_instance_from_its_source_pods_snapshot() {
    let two_pods = json!({"status": {
    "target": {"podSelector": {"matchLabels": {"app": "pg"}, "strategy": "All"},
               "selectedTargetPods": ["pg-0", "pg-1"]},
    "actions": [
        {"name": "createVolumeSnapshot-0", "targetPodName": "pg-0", "phase": "Completed",
         "volumeSnapshots": [{"name": "b1-0-data", "volumeName": "data", "size": "1Gi"}]},
        {"name": "createVolumeSnapshot-1", "targetPodName": "pg-1", "phase": "Completed",
         "volumeSnapshots": [{"name": "b1-1-data", "volumeName": "data", "size": "1Gi"}]}
    ]}});
    let cases = [
        (
            json!({"dataRestorePolicy": "OneToOne"}),
            ["b1-0-data", "b1-1-data"],
        ),
        (
            json!({"dataRestorePolicy": "OneToMany", "sourceOfOneToMany": {"targetPodName": "pg-1"}}),
            ["b1-1-data", "b1-1-data"],
        ),
    ];
    for (policy, expected) in cases {
        let mut o = snapshot_observed();
        o.backup = Some(snapshot_backup(two_pods.clone()));
        o.snapshots = vec![ready("b1-0-data", "1Gi"), ready("b1-1-data", "1Gi")];
        o.restore = restore(json!({"spec": {"prepareDataConfig": {
            "requiredPolicyForAllPodSelection": policy}}}));
        let plan = step(&mut o, now());
        let seen: Vec<String> = created(&plan).iter().map(|c| source_of(c).2).collect();
        assert_eq!(seen, expected, "{policy}");
    }

    // No mapping with strategy All: KubeBlocks' fatal error.
    let mut o = snapshot_observed();
    o.backup = Some(snapshot_backup(two_pods));
    let (phase, message) = prepare_failure(&step(&mut o, now()));
    assert_eq!(phase, Some(RestorePhase::Failed));
    assert!(
        message.contains("requiredPolicyForAllPodSelection is required"),
        "{message}"
    );
}

#[test]
fn kubeblocks_legacy_snapshot_name_is_used_when_it_exists() {
    let mut o = snapshot_observed();
    o.snapshots.push(ready("b1-data", "1Gi"));
    let seen: Vec<String> = created(&step(&mut o, now()))
        .iter()
        .map(|c| source_of(c).2)
        .collect();
    assert_eq!(seen, ["b1-data", "b1-data"]);
}

#[test]
fn the_snapshot_methods_actionset_runs_its_restore_jobs_on_the_restored_claims_without_storage() {
    let mut o = snapshot_observed();
    o.backup = Some(snapshot_backup(
        json!({"status": {"backupMethod": {"actionSetName": "pg-fix"}}}),
    ));
    o.actionset = Some(actionset(json!({"metadata": {"name": "pg-fix"}})));
    // First the claims, and no Job before they exist.
    let plan = step(&mut o, now());
    assert_eq!(created(&plan).len(), 2);
    assert!(dispatched(&plan.intents).is_empty());
    apply_created(&mut o, &plan);
    let plan = step(&mut o, later(5));
    assert!(created(&plan).is_empty(), "the jobs create no claims");
    let jobs = dispatched(&plan.intents);
    assert_eq!(jobs.len(), 2);
    let action = jobs[0].1;
    let Some(cairn_proto::agent::v1::action::Kind::Job(wire)) = &action.kind else {
        panic!("not a job: {action:?}");
    };
    assert!(wire.storage.is_none(), "no repository, no grant: {wire:?}");
    let job = job_of(action);
    let claim = pod_spec_of(&job).volumes.as_ref().unwrap()[0]
        .persistent_volume_claim
        .clone()
        .unwrap();
    assert_eq!(claim.claim_name, "data-0");
    assert_eq!(env_value(&job, "DP_BACKUP_NAME").as_deref(), Some("b1"));
    for name in [
        "DP_BACKUP_BASE_PATH",
        "DP_BACKUP_ROOT_PATH",
        "DP_TARGET_RELATIVE_PATH",
    ] {
        assert_eq!(
            env_value(&job, name),
            None,
            "{name}: a snapshot has no path"
        );
    }
    for k in 0..2 {
        report(
            &mut o,
            "prepareData-0",
            &format!("Job/restore-preparedata-abcdef01-b1-{k}"),
            ReportedPhase::Succeeded,
        );
    }
    let status = step(&mut o, later(40)).status.unwrap();
    assert_eq!(status.phase, Some(RestorePhase::Completed), "{status:?}");
}

#[test]
fn a_snapshot_method_naming_a_missing_actionset_still_fails() {
    let mut o = snapshot_observed();
    o.backup = Some(snapshot_backup(
        json!({"status": {"backupMethod": {"actionSetName": "gone"}}}),
    ));
    let status = step(&mut o, now()).status.unwrap();
    assert_eq!(status.phase, Some(RestorePhase::Failed));
    assert_eq!(
        condition(
            &status,
            cairn_api::well_known::conditions::restore::CONDITION_VALIDATION_PASSED
        )
        .2,
        "actionsets.dataprotection.kubeblocks.io \"gone\" not found"
    );
}

#[test]
fn a_file_backup_without_repository_still_fails_as_before() {
    let mut o = observed();
    o.backup = Some(backup(json!({"status": {"backupRepoName": null}})));
    let status = step(&mut o, now()).status.unwrap();
    assert_eq!(status.phase, Some(RestorePhase::Failed));
    assert!(
        condition(
            &status,
            cairn_api::well_known::conditions::restore::CONDITION_CHECK_BACKUP_REPO
        )
        .2
        .contains("records no backup repository"),
    );
}

#[test]
fn a_point_in_time_restore_on_a_snapshot_base_makes_the_claims_then_replays() {
    let mut o = super::tests_sets::pitr();
    let base = snapshot_backup(json!({
        "metadata": {"name": "s1", "labels": {
            "dataprotection.kubeblocks.io/backup-type": "Full",
            "dataprotection.kubeblocks.io/backup-policy": "pg-policy",
            "app.kubernetes.io/instance": "mycluster"}},
        "status": {"completionTimestamp": "2026-11-22T08:30:00Z",
                   "timeRange": {"start": "2026-11-22T08:30:00Z", "end": "2026-11-22T08:30:00Z"},
                   "actions": [{"name": "createVolumeSnapshot-0", "targetPodName": "pg-0",
                                "phase": "Completed", "volumeSnapshots": [
                                    {"name": "s1-0-data", "volumeName": "data", "size": "1Gi"}]}]}
    }));
    o.backups = vec![base, super::tests_sets::continuous_backup(json!({}))];
    o.snapshots = vec![ready("s1-0-data", "1Gi")];
    let plan = step(&mut o, now());
    let status = plan.status.clone().unwrap();
    assert_eq!(status.phase, Some(RestorePhase::Running), "{status:?}");
    let seen: Vec<String> = created(&plan).iter().map(|c| source_of(c).2).collect();
    assert_eq!(seen, ["s1-0-data", "s1-0-data"]);
    assert!(dispatched(&plan.intents).is_empty());
    apply_created(&mut o, &plan);
    let plan = step(&mut o, later(5));
    assert!(created(&plan).is_empty());
    assert_eq!(
        super::tests_sets::dispatched_jobs(&plan),
        [
            super::tests_sets::job_name("c1", 0),
            super::tests_sets::job_name("c1", 1)
        ]
    );
    let job = job_of(dispatched(&plan.intents)[0].1);
    assert_eq!(
        env_value(&job, "DP_BASE_BACKUP_NAME").as_deref(),
        Some("s1")
    );
}

// ------------------------------------------------- repository copies (snapshot data movement)

/// [`snapshot_backup`] whose snapshots were copied into repository `repo1` (§K2.5a).
fn moved_backup() -> Backup {
    snapshot_backup(json!({"status": {
        "backupRepoName": "repo1",
        "path": "/default/b1",
        "kopiaRepoPath": "/default/kopia",
        "volumeSnapshotCopies": [
            {"volumeSnapshotName": "b1-0-data", "volumeName": "data", "targetPodName": "pg-0",
             "repositoryPath": "default/b1/b1-0-data", "snapshotID": "cd".repeat(32),
             "size": "1Gi", "bytesRead": 10, "bytesStored": 5},
            {"volumeSnapshotName": "b1-0-log", "volumeName": "log", "targetPodName": "pg-0",
             "repositoryPath": "default/b1/b1-0-log", "snapshotID": "ef".repeat(32),
             "size": "512Mi", "bytesRead": 10, "bytesStored": 5}
        ]
    }}))
}

fn moved_observed() -> Observed {
    let mut o = snapshot_observed();
    o.backup = Some(moved_backup());
    o.repos = vec![repo("repo1", "Ready")];
    o.repo_access = Some(tool_access("repo1"));
    o
}

fn moves(plan: &Plan<RestoreStatus>) -> Vec<pb::VolumeMoveAction> {
    dispatched(&plan.intents)
        .into_iter()
        .filter_map(|(_, a)| match &a.kind {
            Some(pb::action::Kind::VolumeMove(m)) => Some(m.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_moved_backup_whose_snapshot_still_exists_restores_from_the_snapshot() {
    let mut o = moved_observed();
    let plan = step(&mut o, now());
    assert!(moves(&plan).is_empty());
    for claim in created(&plan) {
        assert_eq!(source_of(&claim), from_snapshot("b1-0-data"));
    }
}

#[test]
fn a_deleted_snapshot_restores_from_the_repository_copy_into_an_empty_claim() {
    let mut o = moved_observed();
    o.snapshots.clear();
    let plan = step(&mut o, now());
    let claims = created(&plan);
    let names: Vec<_> = claims
        .iter()
        .map(|c| c["metadata"]["name"].clone())
        .collect();
    assert_eq!(names, [json!("data-0"), json!("data-1")]);
    for claim in &claims {
        assert!(claim["spec"]["dataSource"].is_null(), "{claim}");
        assert_eq!(
            claim["metadata"]["annotations"][well_known::annotation::RESTORED_FROM_COPY],
            "default/b1/b1-0-data"
        );
        assert_eq!(claim["spec"]["resources"]["requests"]["storage"], "1Gi");
    }
    let sent = moves(&plan);
    assert_eq!(sent.len(), 2, "one restore action per claim");
    let first = &sent[0];
    assert!(!first.to_repository);
    assert_eq!(first.volumes[0].snapshot_id, "cd".repeat(32));
    assert_eq!(first.volumes[0].size_bytes, 1 << 30);
    let grant = first.storage.clone().unwrap();
    assert_eq!(grant.dedup_repo_root, "/default/kopia");
    let claim: Value = serde_json::from_str(&first.volumes[0].claim_json).unwrap();
    assert_eq!(claim["metadata"]["name"], "data-0");
    let entries = work::entries(
        o.restore.status.as_ref().unwrap(),
        RestoreStage::PrepareData,
    );
    assert_eq!(entries[0].name, snapshot::COPY_ACTION);
    assert_eq!(entries[0].object_key, "PersistentVolumeClaim/data-0");

    // While the restore actions run, the restore waits; once they succeeded, it goes on.
    apply_created(&mut o, &plan);
    let plan = step(&mut o, later(5));
    assert_eq!(
        moves(&plan).len(),
        2,
        "dispatched again (idempotent) while running"
    );
    assert_eq!(
        plan.status.clone().unwrap().phase,
        Some(RestorePhase::Running)
    );
    let uid = o.restore.metadata.uid.clone().unwrap_or_default();
    for claim in ["data-0", "data-1"] {
        o.agents.report(
            work::entry_id(
                &uid,
                snapshot::COPY_ACTION,
                &format!("PersistentVolumeClaim/{claim}"),
            ),
            reported(ReportedPhase::Succeeded).ran(now(), later(6)),
        );
    }
    let plan = step(&mut o, later(7));
    let status = plan.status.clone().unwrap();
    assert_eq!(status.phase, Some(RestorePhase::Completed), "{status:?}");
}

#[test]
fn a_snapshot_not_ready_uses_the_copy_and_a_failed_copy_restore_fails_the_restore() {
    let mut o = moved_observed();
    o.snapshots = vec![VolumeSnapshot {
        name: "b1-0-data".into(),
        ready: false,
        ..Default::default()
    }];
    let plan = step(&mut o, now());
    assert_eq!(moves(&plan).len(), 2);
    apply_created(&mut o, &plan);
    let uid = o.restore.metadata.uid.clone().unwrap_or_default();
    o.agents.report(
        work::entry_id(&uid, snapshot::COPY_ACTION, "PersistentVolumeClaim/data-0"),
        reported(ReportedPhase::Failed)
            .because("restoring the files of claim default/data-0: no space left on device")
            .ran(now(), later(6)),
    );
    let plan = step(&mut o, later(7));
    let (phase, message) = prepare_failure(&plan);
    assert_eq!(phase, Some(RestorePhase::Failed));
    assert!(
        message.contains("PersistentVolumeClaim/data-0") && message.contains("repository copy"),
        "{message}"
    );
}

#[test]
fn a_claim_smaller_than_the_copy_fails_naming_the_copy() {
    let mut o = moved_observed();
    o.snapshots.clear();
    let mut restore = o.restore.clone();
    let tpl = &mut restore
        .spec
        .prepare_data_config
        .as_mut()
        .unwrap()
        .volume_claims_template
        .as_mut()
        .unwrap()
        .templates[0];
    tpl.volume_claim_spec.resources =
        Some(serde_json::from_value(json!({"requests": {"storage": "100Mi"}})).unwrap());
    o.restore = restore;
    let plan = step(&mut o, now());
    let (phase, message) = prepare_failure(&plan);
    assert_eq!(phase, Some(RestorePhase::Failed));
    assert!(
        message.contains("100Mi") && message.contains("default/b1/b1-0-data"),
        "{message}"
    );
}

#[test]
fn without_a_copy_a_missing_snapshot_still_fails_as_before() {
    let mut o = snapshot_observed();
    o.snapshots.clear();
    let plan = step(&mut o, now());
    let (phase, message) = prepare_failure(&plan);
    assert_eq!(phase, Some(RestorePhase::Failed));
    assert!(message.contains("not found"), "{message}");
}

#[test]
fn a_claim_made_for_the_copy_stays_with_the_copy_when_the_snapshot_reappears() {
    let mut o = moved_observed();
    o.snapshots.clear();
    let plan = step(&mut o, now());
    apply_created(&mut o, &plan);
    o.snapshots = vec![ready("b1-0-data", "1Gi")];
    let plan = step(&mut o, later(5));
    assert_eq!(moves(&plan).len(), 2);
    assert!(created(&plan).is_empty());
}
