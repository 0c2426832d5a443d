//! Table tests of the volume populator: every branch of the flow in `mod.rs`, named by what a
//! user sees.

use std::collections::BTreeMap;

use cairn_api::well_known;
use k8s_openapi::api::batch::v1::Job;
use serde_json::json;

use super::*;
use crate::plan::agent_view::ReportedPhase;
use crate::plan::intent::EventType;
use crate::plan::restore::tests as restore_tests;
use crate::plan::testing::*;

const CLAIM_UID: &str = "0123abcd-0000-4000-8000-00000000cafe";
const SHADOW: &str = "kb-populate-0123abcd-0000-4000-8000-00000000cafe";
const JOB0: &str = "kb-populate-0123abcd-0000-4000-8000-00000000cafe-0";

fn claim(extra: serde_json::Value) -> PersistentVolumeClaim {
    let mut value = json!({
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "data-0", "namespace": "default", "uid": CLAIM_UID,
                     "annotations": {well_known::annotation::SELECTED_NODE: "node-a"}},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": "2Gi"}},
            "storageClassName": "local-path",
            "volumeMode": "Filesystem",
            "dataSourceRef": {"apiGroup": "dataprotection.kubeblocks.io", "kind": "Restore", "name": "r1"}
        },
        "status": {"phase": "Pending"}
    });
    json_patch::merge(&mut value, &extra);
    serde_json::from_value(value).unwrap()
}

fn class(provisioner: &str, mode: &str) -> StorageClass {
    serde_json::from_value(json!({
        "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
        "metadata": {"name": "local-path"},
        "provisioner": provisioner,
        "volumeBindingMode": mode,
    }))
    .unwrap()
}

fn data_source_restore(extra: serde_json::Value) -> restore::Observed {
    let mut ro = restore_tests::observed();
    let mut restore = restore_tests::restore(json!({
        "spec": {"prepareDataConfig": {"volumeClaimsTemplate": null,
                                       "dataSourceRef": {"volumeSource": "data"}}},
        "status": {"phase": "AsDataSource"}
    }));
    let mut value = serde_json::to_value(&restore).unwrap();
    json_patch::merge(&mut value, &extra);
    restore = serde_json::from_value(value).unwrap();
    ro.restore = restore;
    ro
}

fn observed() -> Observed {
    let ro = data_source_restore(json!({}));
    Observed {
        claim: claim(json!({})),
        agents: ro.agents.clone(),
        restore: Some(ro),
        storage_class: Some(class("localkube/local-path", "WaitForFirstConsumer")),
        shadow: None,
        volume: None,
        jobs: Vec::new(),
        settings: restore::Settings::default(),
    }
}

fn shadow() -> PersistentVolumeClaim {
    serde_json::from_value(json!({
        "metadata": {"name": SHADOW, "namespace": "default", "uid": "shadow-uid"},
        "spec": {"volumeName": "pvc-shadow-uid"},
        "status": {"phase": "Bound"}
    }))
    .unwrap()
}

fn volume(claim_name: &str, claim_uid: &str) -> PersistentVolume {
    serde_json::from_value(json!({
        "metadata": {"name": "pvc-shadow-uid"},
        "spec": {"claimRef": {"namespace": "default", "name": claim_name, "uid": claim_uid}}
    }))
    .unwrap()
}

/// Runs the planner, then applies its status and the claim's metadata as the API server would.
fn step(o: &mut Observed, at: Timestamp) -> Plan<PersistentVolumeClaimStatus> {
    let plan = plan(o, at);
    if let Some(status) = &plan.status {
        o.claim.status = Some(status.clone());
    }
    for intent in &plan.intents {
        match intent {
            Intent::AddFinalizer => o
                .claim
                .metadata
                .finalizers
                .get_or_insert_with(Vec::new)
                .push(well_known::FINALIZER.into()),
            Intent::RemoveFinalizer => o.claim.metadata.finalizers = None,
            Intent::PatchMeta { annotations, .. } => {
                let map = o
                    .claim
                    .metadata
                    .annotations
                    .get_or_insert_with(BTreeMap::new);
                for (k, v) in annotations {
                    match v {
                        Some(v) => map.insert(k.clone(), v.clone()),
                        None => map.remove(k),
                    };
                }
            }
            Intent::Create { object } if object["metadata"]["name"] == SHADOW => {
                o.shadow = Some(serde_json::from_value(object.clone()).unwrap());
            }
            _ => {}
        }
    }
    plan
}

fn report(o: &mut Observed, set: usize, phase: ReportedPhase) {
    let key = format!("Job/{}", job_name(&o.claim, set));
    let reason = if phase == ReportedPhase::Failed {
        "BackoffLimitExceeded: Job has reached the specified backoff limit"
    } else {
        ""
    };
    o.agents.report(
        action_id(CLAIM_UID, &format!("populate-{set}"), &key),
        reported(phase).because(reason).finished(later(30)),
    );
}

fn populating(o: &Observed) -> (String, String, String) {
    let c = condition(&o.claim).expect("a Populating condition");
    (
        c.status.clone(),
        c.reason.clone().unwrap_or_default(),
        c.message.clone().unwrap_or_default(),
    )
}

fn events(plan: &Plan<PersistentVolumeClaimStatus>) -> Vec<(EventType, String, String)> {
    plan.intents
        .iter()
        .filter_map(|i| match i {
            Intent::Event {
                type_,
                reason,
                message,
            } => Some((*type_, reason.clone(), message.clone())),
            _ => None,
        })
        .collect()
}

fn dispatched(plan: &Plan<PersistentVolumeClaimStatus>) -> Vec<(String, pb::Action)> {
    plan.intents
        .iter()
        .filter_map(|i| match i {
            Intent::Dispatch { node, action } => Some((node.clone(), (**action).clone())),
            _ => None,
        })
        .collect()
}

fn job_of(action: &pb::Action) -> Job {
    match action.kind.as_ref().unwrap() {
        pb::action::Kind::Job(job) => serde_json::from_str(&job.job_json).unwrap(),
        other => panic!("not a job: {other:?}"),
    }
}

fn deletes(plan: &Plan<PersistentVolumeClaimStatus>) -> Vec<(String, String)> {
    plan.intents
        .iter()
        .filter_map(|i| match i {
            Intent::Delete { kind, name, .. } => Some((kind.clone(), name.clone())),
            _ => None,
        })
        .collect()
}

fn has(plan: &Plan<PersistentVolumeClaimStatus>, wanted: &Intent) -> bool {
    plan.intents.iter().any(|i| i == wanted)
}

// ---------------------------------------------------------------- what is not ours, refusals

#[test]
fn a_claim_without_a_restore_data_source_is_left_alone() {
    let mut o = observed();
    o.claim = claim(json!({"spec": {"dataSourceRef": null}}));
    assert_eq!(plan(&o, now()), Plan::nothing());
    o.claim = claim(
        json!({"spec": {"dataSourceRef": {"apiGroup": "snapshot.storage.k8s.io",
        "kind": "VolumeSnapshot", "name": "s1"}}}),
    );
    assert_eq!(plan(&o, now()), Plan::nothing());
}

#[test]
fn a_restore_of_another_namespace_is_refused_once_with_a_condition_and_warning() {
    let mut o = observed();
    o.claim = claim(json!({"spec": {"dataSourceRef": {"namespace": "other"}}}));
    o.restore = None;
    let plan = step(&mut o, now());
    let (status, reason, message) = populating(&o);
    assert_eq!((status.as_str(), reason.as_str()), ("False", "Failed"));
    assert!(
        message.contains("spec.dataSourceRef.namespace \"other\"")
            && message.contains("\"default\""),
        "{message}"
    );
    assert_eq!(
        events(&plan),
        vec![(EventType::Warning, EVENT_FAILED.to_string(), message)]
    );
    assert!(!has(&plan, &Intent::AddFinalizer));
    assert_eq!(step(&mut o, later(10)), Plan::nothing());
}

#[test]
fn a_missing_restore_is_waited_for() {
    let mut o = observed();
    o.restore = None;
    let plan = step(&mut o, now());
    assert_eq!(plan.requeue, Some(o.settings.wait_requeue));
    assert_eq!(populating(&o).1, "Processing");
    assert!(populating(&o).2.contains("Restore default/r1"));
    assert!(plan.intents.is_empty());
}

#[test]
fn a_restore_not_yet_validated_is_waited_for() {
    let mut o = observed();
    o.restore = Some(data_source_restore(json!({"status": null})));
    let plan = step(&mut o, now());
    assert_eq!(plan.requeue, Some(o.settings.wait_requeue));
    assert!(populating(&o).2.contains("to be validated"));
}

#[test]
fn a_failed_restore_fails_the_claim() {
    let mut o = observed();
    o.restore = Some(data_source_restore(json!({"status": {"phase": "Failed"}})));
    let plan = step(&mut o, now());
    assert_eq!(populating(&o).1, "Failed");
    assert!(populating(&o).2.contains("Restore default/r1 failed"));
    assert_eq!(events(&plan)[0].1, EVENT_FAILED);
    // Terminal: nothing more happens.
    assert_eq!(step(&mut o, later(10)), Plan::nothing());
}

#[test]
fn a_restore_that_is_not_a_data_source_is_refused() {
    let mut o = observed();
    let mut ro = restore_tests::observed();
    ro.restore = restore_tests::restore(json!({"status": {"phase": "Completed"}}));
    o.restore = Some(ro);
    step(&mut o, now());
    let message = populating(&o).2;
    assert!(message.contains("is not a data source"), "{message}");
}

#[test]
fn an_in_tree_provisioner_is_refused() {
    let mut o = observed();
    o.storage_class = Some(class("kubernetes.io/aws-ebs", "Immediate"));
    let plan = step(&mut o, now());
    let message = populating(&o).2;
    assert!(
        message.contains("in-tree provisioner \"kubernetes.io/aws-ebs\""),
        "{message}"
    );
    assert!(!has(&plan, &Intent::AddFinalizer));
}

#[test]
fn a_claim_without_a_class_is_refused_and_a_missing_class_waited_for() {
    let mut o = observed();
    o.storage_class = None;
    o.claim = claim(json!({"spec": {"storageClassName": null}}));
    step(&mut o, now());
    assert_eq!(populating(&o).1, "Failed");
    assert!(populating(&o).2.contains("spec.storageClassName is empty"));
    let mut o = observed();
    o.storage_class = None;
    let plan = step(&mut o, now());
    assert_eq!(populating(&o).1, "Processing");
    assert!(populating(&o).2.contains("StorageClass local-path"));
    assert_eq!(plan.requeue, Some(o.settings.wait_requeue));
}

#[test]
fn a_wait_for_first_consumer_claim_waits_for_the_selected_node() {
    let mut o = observed();
    o.claim = claim(json!({"metadata": {"annotations": null}}));
    assert_eq!(plan(&o, now()), Plan::nothing());
}

#[test]
fn a_restore_whose_backup_is_gone_fails_the_claim() {
    let mut o = observed();
    o.restore.as_mut().unwrap().backup = None;
    step(&mut o, now());
    assert_eq!(populating(&o).1, "Failed");
    assert!(
        populating(&o).2.contains("\"b1\" not found"),
        "{}",
        populating(&o).2
    );
}

// ---------------------------------------------------------------- populating

#[test]
fn populating_starts_with_finalizer_condition_event_shadow_claim_and_a_pinned_job() {
    let mut o = observed();
    let plan = step(&mut o, now());
    assert!(has(&plan, &Intent::AddFinalizer));
    assert_eq!(populating(&o).1, "Processing");
    assert_eq!(events(&plan)[0].1, EVENT_START);
    let shadow = plan
        .intents
        .iter()
        .find_map(|i| match i {
            Intent::Create { object } => Some(object.clone()),
            _ => None,
        })
        .expect("the shadow claim");
    assert_eq!(shadow["metadata"]["name"], SHADOW);
    assert_eq!(
        shadow["metadata"]["labels"][well_known::label::POPULATE_PVC],
        "data-0"
    );
    assert_eq!(
        shadow["metadata"]["annotations"][well_known::annotation::SELECTED_NODE],
        "node-a"
    );
    assert_eq!(shadow["spec"]["resources"]["requests"]["storage"], "2Gi");
    assert_eq!(shadow["spec"]["storageClassName"], "local-path");
    assert_eq!(shadow["spec"]["accessModes"], json!(["ReadWriteOnce"]));
    assert_eq!(shadow["spec"]["volumeMode"], "Filesystem");
    assert!(shadow["spec"].get("dataSourceRef").is_none());

    let sent = dispatched(&plan);
    assert_eq!(sent.len(), 1);
    let (node, action) = &sent[0];
    assert_eq!(node, "node-a");
    assert_eq!(action.owner.as_ref().unwrap().kind, "PersistentVolumeClaim");
    assert_eq!(action.owner.as_ref().unwrap().uid, CLAIM_UID);
    let job = job_of(action);
    assert_eq!(job.metadata.name.as_deref(), Some(JOB0));
    assert_eq!(
        job.metadata.labels.as_ref().unwrap()[well_known::label::POPULATE_PVC],
        "data-0"
    );
    let pod = job.spec.unwrap().template.spec.unwrap();
    let volume = &pod.volumes.as_ref().unwrap()[0];
    assert_eq!(
        volume.persistent_volume_claim.as_ref().unwrap().claim_name,
        SHADOW
    );
    assert_eq!(
        pod.containers[0].volume_mounts.as_ref().unwrap()[0].mount_path,
        "/var/lib/pg"
    );
    assert_eq!(
        pod.tolerations.unwrap()[0].operator.as_deref(),
        Some("Exists")
    );
    // The placement is recorded before the dispatch.
    assert!(
        matches!(&plan.intents[0], Intent::PatchMeta { annotations, .. }
        if annotations.contains_key(well_known::annotation::POPULATE_NODES))
    );
}

#[test]
fn a_running_job_is_not_dispatched_again_and_the_shadow_not_recreated() {
    let mut o = observed();
    step(&mut o, now());
    report(&mut o, 0, ReportedPhase::Running);
    let plan = step(&mut o, later(5));
    assert!(dispatched(&plan).is_empty());
    assert!(
        !plan
            .intents
            .iter()
            .any(|i| matches!(i, Intent::Create { .. }))
    );
    assert!(events(&plan).is_empty());
    assert_eq!(plan.requeue, Some(o.settings.poll));
}

#[test]
fn a_finished_job_is_counted_before_it_is_acknowledged_then_the_volume_is_handed_over() {
    let mut o = observed();
    step(&mut o, now());
    report(&mut o, 0, ReportedPhase::Succeeded);
    let plan = step(&mut o, later(40));
    let count = plan.intents.iter().position(|i| {
        matches!(i, Intent::PatchMeta { annotations, .. }
        if annotations.get(well_known::annotation::POPULATED_SETS) == Some(&Some("1".into())))
    });
    let ack = plan
        .intents
        .iter()
        .position(|i| matches!(i, Intent::Acknowledge { .. }));
    assert!(count.unwrap() < ack.unwrap(), "{:?}", plan.intents);
    // The shadow claim is not bound yet.
    assert!(
        populating(&o)
            .2
            .contains("waiting for the populated shadow claim")
    );

    o.shadow = Some(shadow());
    o.volume = Some(volume(SHADOW, "shadow-uid"));
    o.agents = agents(&["node-a"]); // acknowledged: the agent forgot it
    let plan = step(&mut o, later(50));
    assert!(
        dispatched(&plan).is_empty(),
        "a counted set never runs again"
    );
    let patch = plan
        .intents
        .iter()
        .find_map(|i| match i {
            Intent::MergePatch {
                kind, name, patch, ..
            } if kind == "PersistentVolume" && name == "pvc-shadow-uid" => Some(patch.clone()),
            _ => None,
        })
        .expect("the volume's claimRef moves to the claim");
    assert_eq!(patch["spec"]["claimRef"]["name"], "data-0");
    assert_eq!(patch["spec"]["claimRef"]["namespace"], "default");
    assert_eq!(patch["spec"]["claimRef"]["uid"], CLAIM_UID);
    assert_eq!(
        patch["metadata"]["annotations"][well_known::annotation::POPULATE_FROM],
        "r1"
    );
    assert_eq!(
        populating(&o),
        (
            "True".into(),
            "Succeed".into(),
            "populated volume pvc-shadow-uid from Restore r1 and bound it to the claim".into()
        )
    );
    assert_eq!(events(&plan)[0].1, EVENT_SUCCEED);

    // Handed over: waiting for Kubernetes to bind the claim, with nothing new.
    o.volume = Some(volume("data-0", CLAIM_UID));
    let plan = step(&mut o, later(55));
    assert!(plan.intents.is_empty(), "{:?}", plan.intents);
}

#[test]
fn once_the_claim_is_bound_jobs_and_shadow_are_deleted_and_the_finalizer_removed() {
    let mut o = observed();
    step(&mut o, now());
    o.shadow = Some(shadow());
    o.jobs = vec![JOB0.into()];
    o.claim.status = Some(PersistentVolumeClaimStatus {
        phase: Some("Bound".into()),
        ..o.claim.status.clone().unwrap()
    });
    let plan = step(&mut o, later(60));
    assert_eq!(
        deletes(&plan),
        vec![
            ("Job".to_string(), JOB0.to_string()),
            ("PersistentVolumeClaim".to_string(), SHADOW.to_string())
        ]
    );
    assert!(has(&plan, &Intent::RemoveFinalizer));
    // Done: nothing more.
    o.shadow = None;
    o.jobs.clear();
    assert_eq!(step(&mut o, later(70)), Plan::nothing());
}

#[test]
fn deleting_the_claim_cleans_up_at_any_point() {
    let mut o = observed();
    step(&mut o, now());
    o.shadow = Some(shadow());
    o.jobs = vec![JOB0.into()];
    o.claim.metadata.deletion_timestamp = Some(Time(later(5)));
    let plan = step(&mut o, later(5));
    assert_eq!(deletes(&plan).len(), 2);
    assert!(has(&plan, &Intent::RemoveFinalizer));
    assert!(dispatched(&plan).is_empty());
}

#[test]
fn a_failed_job_fails_the_claim_with_the_reason_and_is_terminal() {
    let mut o = observed();
    step(&mut o, now());
    report(&mut o, 0, ReportedPhase::Failed);
    let plan = step(&mut o, later(40));
    let (_, reason, message) = populating(&o);
    assert_eq!(reason, "Failed");
    assert!(
        message.contains(JOB0) && message.contains("BackoffLimitExceeded"),
        "{message}"
    );
    assert!(
        plan.intents
            .iter()
            .any(|i| matches!(i, Intent::Acknowledge { .. }))
    );
    assert_eq!(events(&plan).last().unwrap().1, EVENT_FAILED);
    assert_eq!(step(&mut o, later(50)), Plan::nothing());
}

#[test]
fn a_lost_node_fails_the_claim() {
    let mut o = observed();
    step(&mut o, now());
    o.agents.disconnect("node-a", now());
    step(&mut o, later(3600));
    let message = populating(&o).2;
    assert_eq!(populating(&o).1, "Failed");
    assert!(message.contains("outcome is unknown"), "{message}");
}

#[test]
fn the_job_is_pinned_to_the_selected_node_and_an_immediate_claim_runs_anywhere() {
    let mut o = observed();
    o.claim = claim(
        json!({"metadata": {"annotations": {well_known::annotation::SELECTED_NODE: "node-z"}}}),
    );
    o.storage_class = Some(class("localkube/local-path", "Immediate"));
    let plan = step(&mut o, now());
    let sent = dispatched(&plan);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].0, "node-z", "pinned to the selected node");
    // An Immediate claim with no selected node runs on any connected agent.
    let mut o = observed();
    o.claim = claim(json!({"metadata": {"annotations": null}}));
    o.storage_class = Some(class("localkube/local-path", "Immediate"));
    let plan = step(&mut o, now());
    assert_eq!(dispatched(&plan)[0].0, "node-a");
    let shadow = plan
        .intents
        .iter()
        .find_map(|i| match i {
            Intent::Create { object } => Some(object.clone()),
            _ => None,
        })
        .unwrap();
    assert!(shadow["metadata"].get("annotations").is_none());
}

#[test]
fn a_volume_snapshot_backup_makes_the_shadow_from_its_snapshot_and_runs_no_job() {
    let mut o = observed();
    let ro = o.restore.as_mut().unwrap();
    ro.actionset = None;
    ro.repo_access = None;
    ro.backup = Some(restore_tests::backup(json!({"status": {
        "path": null, "backupRepoName": null,
        "backupMethod": {"snapshotVolumes": true, "actionSetName": null},
        "actions": [{"name": "createVolumeSnapshot-0", "targetPodName": "pg-0",
                     "volumeSnapshots": [{"name": "b1-0-data", "volumeName": "data"}]}]
    }})));
    ro.snapshots = vec![crate::plan::restore::snapshot::VolumeSnapshot {
        name: "b1-0-data".into(),
        ready: true,
        restore_size: "1Gi".into(),
        ..Default::default()
    }];
    let plan = step(&mut o, now());
    let shadow = o.shadow.clone().expect("the shadow claim");
    let source = shadow.spec.unwrap().data_source_ref.unwrap();
    assert_eq!(
        (source.kind.as_str(), source.name.as_str()),
        ("VolumeSnapshot", "b1-0-data")
    );
    assert!(dispatched(&plan).is_empty());
    // No job to wait for: handed over once the shadow claim is bound.
    o.shadow = Some(shadow_bound());
    o.volume = Some(volume(SHADOW, "shadow-uid"));
    let plan = step(&mut o, later(5));
    assert!(
        plan.intents
            .iter()
            .any(|i| matches!(i, Intent::MergePatch { .. }))
    );
}

fn shadow_bound() -> PersistentVolumeClaim {
    shadow()
}

#[test]
fn a_snapshot_that_is_not_ready_fails_the_claim_naming_it() {
    let mut o = observed();
    let ro = o.restore.as_mut().unwrap();
    ro.actionset = None;
    ro.backup = Some(restore_tests::backup(json!({"status": {
        "path": null, "backupRepoName": null,
        "backupMethod": {"snapshotVolumes": true, "actionSetName": null},
        "actions": [{"name": "createVolumeSnapshot-0", "targetPodName": "pg-0",
                     "volumeSnapshots": [{"name": "b1-0-data", "volumeName": "data"}]}]
    }})));
    step(&mut o, now());
    assert_eq!(populating(&o).1, "Failed");
    assert!(
        populating(&o).2.contains("b1-0-data"),
        "{}",
        populating(&o).2
    );
}
