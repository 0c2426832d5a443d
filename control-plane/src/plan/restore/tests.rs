//! Table tests of the Restore planner (validation, prepareData, completion, deletion): one
//! behaviour per test, named by what a user sees. postReady and the probe: `tests_post_ready.rs`.

use cairn_api::well_known;
use cairn_api::well_known::conditions::restore::{
    CONDITION_CHECK_BACKUP_REPO, CONDITION_PREPARE_DATA, CONDITION_VALIDATION_PASSED,
};
use std::collections::BTreeMap;

use cairn_api::restore::{RestoreActionStatus, RestorePhase, RestoreStatus};
use cairn_proto::agent::v1 as pb;
use jiff::Timestamp;
use k8s_openapi::api::batch::v1::Job;
use serde_json::json;

use super::*;
use crate::plan::agent_view::ReportedPhase;
use crate::plan::intent::EventType;
pub use crate::plan::testing::*;

#[path = "tests_chain.rs"]
mod chain_tests;
#[path = "tests_kb_incremental.rs"]
mod kb_incremental_tests;

pub const UID: &str = "abcdef0123456789";

fn merged<T: serde::de::DeserializeOwned>(
    mut value: serde_json::Value,
    extra: serde_json::Value,
) -> T {
    json_patch::merge(&mut value, &extra);
    serde_json::from_value(value).unwrap()
}

pub fn restore(extra: serde_json::Value) -> Restore {
    merged(
        json!({
            "apiVersion": "dataprotection.kubeblocks.io/v1alpha1",
            "kind": "Restore",
            "metadata": {"name": "r1", "namespace": "default", "uid": UID},
            "spec": {
                "backup": {"name": "b1", "namespace": "default"},
                "prepareDataConfig": {
                    "volumeClaimsTemplate": {
                        "templates": [{
                            "metadata": {"name": "data", "labels": {"app": "pg"}},
                            "volumeClaimSpec": {"accessModes": ["ReadWriteOnce"],
                                                "resources": {"requests": {"storage": "1Gi"}}},
                            "volumeSource": "data"
                        }],
                        "replicas": 2
                    }
                }
            }
        }),
        extra,
    )
}

pub fn backup(extra: serde_json::Value) -> Backup {
    merged(
        json!({
            "apiVersion": "dataprotection.kubeblocks.io/v1alpha1",
            "kind": "Backup",
            "metadata": {"name": "b1", "namespace": "default", "uid": "b-uid"},
            "spec": {"backupPolicyName": "pg-policy", "backupMethod": "basebackup"},
            "status": {
                "phase": "Completed",
                "path": "/prod/default/mycluster/pg/b1",
                "backupRepoName": "repo1",
                "completionTimestamp": "2026-11-22T09:30:00Z",
                "timeRange": {"start": "2026-11-22T08:59:00Z", "end": "2026-11-22T09:00:00Z",
                              "timeZone": "+08:00"},
                "backupMethod": {
                    "name": "basebackup", "actionSetName": "pg-basebackup",
                    "targetVolumes": {"volumeMounts": [{"name": "data", "mountPath": "/var/lib/pg"}]},
                    "env": [{"name": "IMAGE_TAG", "value": "16"}]
                },
                "target": {"podSelector": {"matchLabels": {"app": "pg"}},
                           "selectedTargetPods": ["pg-0"]}
            }
        }),
        extra,
    )
}

pub fn actionset(extra: serde_json::Value) -> ActionSet {
    merged(
        json!({
            "apiVersion": "dataprotection.kubeblocks.io/v1alpha1",
            "kind": "ActionSet",
            "metadata": {"name": "pg-basebackup"},
            "spec": {
                "backupType": "Full",
                "env": [{"name": "DATA_DIR", "value": "/var/lib/pg/data"},
                        {"name": "IMAGE_TAG", "value": "14"}],
                "restore": {
                    "prepareData": {"image": "postgres:$(IMAGE_TAG)", "command": ["sh", "-c", "restore"]}
                }
            }
        }),
        extra,
    )
}

pub fn observed() -> Observed {
    Observed {
        restore: restore(json!({})),
        backup: Some(backup(json!({}))),
        source_namespace_grant: None,
        actionset: Some(actionset(json!({}))),
        actionsets: Vec::new(),
        backups: Vec::new(),
        repos: vec![repo("repo1", "Ready")],
        repo_access: Some(tool_access("repo1")),
        repo_accesses: Vec::new(),
        encryption_passphrase: None,
        passphrases: BTreeMap::new(),
        claims: Vec::new(),
        snapshots: Vec::new(),
        pods: vec![pod("pg-0").on_node("node-a"), pod("pg-1").on_node("node-b")],
        nodes: Vec::new(),
        agents: agents(&["node-a"]),
        settings: Settings::default(),
    }
}

/// Runs the planner, then applies its status and metadata as the API server would.
pub fn step(o: &mut Observed, at: Timestamp) -> Plan<RestoreStatus> {
    let plan = plan(o, at);
    if let Some(status) = &plan.status {
        o.restore.status = Some(status.clone());
    }
    for intent in &plan.intents {
        match intent {
            Intent::AddFinalizer => o
                .restore
                .metadata
                .finalizers
                .get_or_insert_with(Vec::new)
                .push(well_known::FINALIZER.into()),
            Intent::RemoveFinalizer => o.restore.metadata.finalizers = None,
            Intent::PatchMeta {
                labels,
                annotations,
            } => {
                let meta = &mut o.restore.metadata;
                for (map, changes) in [
                    (&mut meta.labels, labels),
                    (&mut meta.annotations, annotations),
                ] {
                    let map = map.get_or_insert_with(BTreeMap::new);
                    for (k, v) in changes {
                        match v {
                            Some(v) => map.insert(k.clone(), v.clone()),
                            None => map.remove(k),
                        };
                    }
                }
            }
            _ => {}
        }
    }
    plan
}

/// The agent reports the action of entry (`name`, `key`) in `phase` (with a Job's backoff
/// message when it failed), finished 30 s after `now()`.
pub fn report(o: &mut Observed, name: &str, key: &str, phase: ReportedPhase) {
    let reason = if phase == ReportedPhase::Failed {
        "BackoffLimitExceeded: Job has reached the specified backoff limit"
    } else {
        ""
    };
    o.agents.report(
        work::entry_id(UID, name, key),
        reported(phase).because(reason).finished(later(30)),
    );
}

pub fn env_value(job: &Job, name: &str) -> Option<String> {
    env_of(job)
        .into_iter()
        .rev()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v)
}

pub fn pod_spec_of(job: &Job) -> &k8s_openapi::api::core::v1::PodSpec {
    job.spec.as_ref().unwrap().template.spec.as_ref().unwrap()
}

pub fn condition(status: &RestoreStatus, type_: &str) -> (String, String, String) {
    let c = conditions::get(status, type_).unwrap_or_else(|| panic!("no condition {type_}"));
    (c.status.clone(), c.reason.clone(), c.message.clone())
}

fn failed_with(plan: &Plan<RestoreStatus>, type_: &str) -> (Option<RestorePhase>, String, String) {
    let status = plan.status.clone().unwrap();
    let (_, reason, message) = condition(&status, type_);
    (status.phase, reason, message)
}

fn prepare_entries(o: &Observed) -> Vec<cairn_api::restore::RestoreStatusAction> {
    let status = o.restore.status.clone().unwrap_or_default();
    work::entries(&status, cairn_api::restore::RestoreStage::PrepareData).to_vec()
}

const JOB0: &str = "restore-preparedata-abcdef01-b1-0";
const JOB1: &str = "restore-preparedata-abcdef01-b1-1";

// ---------------------------------------------------------------- New: checks

#[test]
fn missing_backup_fails_the_restore_with_the_not_found_message() {
    let mut o = observed();
    o.backup = None;
    let plan = step(&mut o, now());
    assert_eq!(
        failed_with(&plan, CONDITION_CHECK_BACKUP_REPO),
        (
            Some(RestorePhase::Failed),
            "CheckBackupRepoFailed".into(),
            "backups.dataprotection.kubeblocks.io \"b1\" not found".into()
        )
    );
    assert!(
        events(&plan.intents)
            .iter()
            .any(|(t, r, _)| *t == EventType::Warning && r == "RestoreFailed")
    );
    assert!(plan.status.unwrap().completion_timestamp.is_some());
}

#[test]
fn missing_repository_fails_the_restore() {
    let mut o = observed();
    o.repos = Vec::new();
    assert_eq!(
        failed_with(&step(&mut o, now()), CONDITION_CHECK_BACKUP_REPO).2,
        "backup repo repo1 not found"
    );
}

#[test]
fn a_repository_still_pre_checking_is_waited_for() {
    let mut o = observed();
    o.repos = vec![repo("repo1", "PreChecking")];
    let plan = step(&mut o, now());
    let status = plan.status.clone().unwrap();
    assert_eq!(status.phase, None);
    assert_eq!(
        condition(&status, CONDITION_CHECK_BACKUP_REPO).1,
        "WaitForBackupRepo"
    );
    assert!(plan.requeue.is_some());
    assert!(dispatched(&plan.intents).is_empty());
}

#[test]
fn a_failed_repository_is_retried_not_fatal() {
    let mut o = observed();
    o.repos = vec![repo("repo1", "Failed")];
    let plan = step(&mut o, now());
    let status = plan.status.clone().unwrap();
    assert_eq!(status.phase, None);
    assert_eq!(
        condition(&status, CONDITION_CHECK_BACKUP_REPO),
        (
            "False".into(),
            "CheckBackupRepoFailed".into(),
            "the backup repository repo1 is not ready".into()
        )
    );
    assert!(plan.requeue.is_some());
}

#[test]
fn repository_access_not_rendered_yet_is_waited_for() {
    let mut o = observed();
    o.repo_access = None;
    let plan = step(&mut o, now());
    assert_eq!(plan.status.unwrap().phase, None);
    assert!(plan.requeue.is_some());
}

#[test]
fn a_backup_that_is_not_completed_fails_with_kubeblocks_message() {
    let mut o = observed();
    o.backup = Some(backup(json!({"status": {"phase": "Running"}})));
    assert_eq!(
        failed_with(&step(&mut o, now()), CONDITION_VALIDATION_PASSED),
        (
            Some(RestorePhase::Failed),
            "ValidateFailed".into(),
            "phase of backup \"b1\" is not completed".into()
        )
    );
}

fn data_source(source: serde_json::Value) -> Restore {
    restore(json!({"spec": {"prepareDataConfig": {
        "volumeClaimsTemplate": null, "dataSourceRef": source}}}))
}

#[test]
fn a_data_source_restore_is_validated_then_becomes_as_data_source_and_runs_nothing() {
    let mut o = observed();
    o.restore = data_source(json!({"volumeSource": "data"}));
    let plan = step(&mut o, now());
    let status = plan.status.clone().unwrap();
    assert_eq!(status.phase, Some(RestorePhase::AsDataSource));
    assert_eq!(
        condition(&status, CONDITION_VALIDATION_PASSED).0,
        "True".to_string()
    );
    assert!(plan.intents.iter().any(|i| matches!(i,
        Intent::Event { reason, .. } if reason == "RestoreAsDataSource")));
    assert!(
        !plan
            .intents
            .iter()
            .any(|i| matches!(i, Intent::Dispatch { .. } | Intent::Create { .. })),
        "{:?}",
        plan.intents
    );
    assert!(prepare_entries(&o).is_empty());
    // Settled: a later reconcile changes nothing.
    let again = step(&mut o, later(60));
    assert_eq!(again.status, None);
    assert!(again.intents.is_empty(), "{:?}", again.intents);
}

#[test]
fn a_data_source_without_a_usable_mount_path_fails_naming_the_field_and_volume() {
    let mut o = observed();
    o.restore = data_source(json!({"volumeSource": "logs"}));
    let (phase, reason, message) = failed_with(&step(&mut o, now()), CONDITION_VALIDATION_PASSED);
    assert_eq!(phase, Some(RestorePhase::Failed));
    assert_eq!(reason, "ValidateFailed");
    assert!(
        message.contains("spec.prepareDataConfig.dataSourceRef")
            && message.contains("\"logs\"")
            && message.contains("\"data\""),
        "{message}"
    );
}

#[test]
fn a_data_source_whose_actionset_cannot_write_a_volume_fails() {
    let mut o = observed();
    o.restore = data_source(json!({"mountPath": "/data"}));
    o.actionset = Some(actionset(json!({"spec": {"restore": null}})));
    let message = failed_with(&step(&mut o, now()), CONDITION_VALIDATION_PASSED).2;
    assert!(
        message.contains("spec.prepareDataConfig.dataSourceRef")
            && message.contains("has no restore.prepareData"),
        "{message}"
    );
}

#[test]
fn missing_actionset_fails_with_the_not_found_message() {
    let mut o = observed();
    o.actionset = None;
    assert_eq!(
        failed_with(&step(&mut o, now()), CONDITION_VALIDATION_PASSED).2,
        "actionsets.dataprotection.kubeblocks.io \"pg-basebackup\" not found"
    );
}

#[test]
fn undeclared_parameter_fails_with_kubeblocks_message() {
    let mut o = observed();
    o.restore = restore(json!({"spec": {"parameters": [{"name": "tables", "value": "t1"}]}}));
    assert_eq!(
        failed_with(&step(&mut o, now()), CONDITION_VALIDATION_PASSED).2,
        "fails to validate parameters with actionset pg-basebackup: some parameters are undeclared in withParameters of actionSet pg-basebackup"
    );
}

#[test]
fn declared_parameters_become_env_of_the_restore_jobs() {
    let mut o = observed();
    o.restore = restore(json!({"spec": {"parameters": [{"name": "tables", "value": "t1"}]}}));
    o.actionset = Some(actionset(json!({"spec": {
        "restore": {"withParameters": ["tables"]},
        "parametersSchema": {"openAPIV3Schema": {"type": "object", "properties": {"tables": {"type": "string"}}}}
    }})));
    let plan = step(&mut o, now());
    let (_, action) = dispatched(&plan.intents)[0];
    assert_eq!(env_value(&job_of(action), "tables").as_deref(), Some("t1"));
}

#[test]
fn several_recorded_targets_need_a_source_target_name() {
    let mut o = observed();
    let mut b = backup(json!({}));
    let status = b.status.as_mut().unwrap();
    let target = status.target.take().unwrap();
    let named = |n: &str| {
        let mut t = target.clone();
        t.target.name = Some(n.into());
        t
    };
    status.targets = Some(vec![named("t1"), named("t2")]);
    o.backup = Some(b.clone());
    assert_eq!(
        failed_with(&step(&mut o, now()), CONDITION_VALIDATION_PASSED).2,
        "backup \"b1\" has several targets (t1, t2); set spec.backup.sourceTargetName to one of them"
    );
    let mut o = observed();
    o.backup = Some(b);
    o.restore = restore(json!({"spec": {"backup": {"sourceTargetName": "t2"}}}));
    let plan = step(&mut o, now());
    let (_, action) = dispatched(&plan.intents)[0];
    assert_eq!(
        env_value(&job_of(action), "DP_TARGET_RELATIVE_PATH").as_deref(),
        Some("t2")
    );
}

#[test]
fn a_single_named_target_gives_the_relative_path_even_without_source_target_name() {
    let mut o = observed();
    o.backup = Some(backup(
        json!({"status": {"target": {"name": "data-target"}}}),
    ));
    let plan = step(&mut o, now());
    let job = job_of(dispatched(&plan.intents)[0].1);
    assert_eq!(
        env_value(&job, "DP_TARGET_RELATIVE_PATH").as_deref(),
        Some("data-target")
    );
    assert_eq!(
        env_value(&job, "DP_BACKUP_BASE_PATH").as_deref(),
        Some("/prod/default/mycluster/pg/b1/data-target")
    );
}

#[test]
fn an_encrypted_backup_without_its_key_fails_and_with_it_the_grant_carries_it() {
    let encrypted = json!({"status": {"encryptionConfig": {"algorithm": "AES-256-CFB",
        "passPhraseSecretKeyRef": {"name": "enc", "key": "passphrase"}}}});
    let mut o = observed();
    o.backup = Some(backup(encrypted.clone()));
    o.encryption_passphrase = Some(Err("secret default/enc has no key passphrase".into()));
    assert_eq!(
        failed_with(&step(&mut o, now()), CONDITION_VALIDATION_PASSED).2,
        "failed to read the encryption key of backup \"b1\": secret default/enc has no key passphrase"
    );
    let mut o = observed();
    o.backup = Some(backup(encrypted));
    o.encryption_passphrase = Some(Ok("s3cret".into()));
    let plan = step(&mut o, now());
    let Some(pb::action::Kind::Job(job)) = &dispatched(&plan.intents)[0].1.kind else {
        panic!("not a job");
    };
    let grant = job.storage.as_ref().unwrap();
    assert_eq!(grant.encryption_algorithm, "AES-256-CFB");
    assert_eq!(grant.encryption_passphrase, "s3cret");
}

// ---------------------------------------------------------------- New: starting

#[test]
fn a_valid_restore_starts_running_with_label_finalizer_conditions_and_event() {
    let mut o = observed();
    let plan = step(&mut o, now());
    let status = plan.status.clone().unwrap();
    assert_eq!(status.phase, Some(RestorePhase::Running));
    assert_eq!(status.start_timestamp.as_ref().map(|t| t.0), Some(now()));
    assert_eq!(condition(&status, CONDITION_CHECK_BACKUP_REPO).0, "True");
    assert_eq!(
        condition(&status, CONDITION_VALIDATION_PASSED).1,
        "ValidateSuccessfully"
    );
    assert_eq!(condition(&status, CONDITION_PREPARE_DATA).1, "Processing");
    assert!(plan.intents.contains(&Intent::AddFinalizer));
    assert_eq!(
        o.restore.metadata.labels.as_ref().unwrap()[well_known::label::MANAGED_BY],
        "kubeblocks-dataprotection"
    );
    assert!(
        events(&plan.intents)
            .iter()
            .any(|(_, r, _)| r == "RestoreStarting")
    );
}

/// `spec.resources` (Kubernetes resources to restore) is not acted on: the Restore says so in
/// condition `IgnoredField` and one Warning event, not once per reconcile (§K1.9).
#[test]
fn a_restore_with_resources_gets_one_ignored_field_warning_and_condition() {
    let mut o = observed();
    o.restore =
        restore(json!({"spec": {"resources": {"included": [{"groupResource": "secrets"}]}}}));
    o.repos = vec![repo("repo1", "PreChecking")];
    let ignored = |plan: &Plan<RestoreStatus>| -> Vec<String> {
        events(&plan.intents)
            .into_iter()
            .filter(|(t, r, _)| *t == EventType::Warning && r == "IgnoredField")
            .map(|(_, _, m)| m)
            .collect()
    };
    let waiting = step(&mut o, now());
    assert_eq!(
        ignored(&waiting),
        [
            "spec.resources is set but not acted on: Cairn does not restore Kubernetes resources, only volume data"
        ]
    );
    let status = waiting.status.clone().unwrap();
    let (value, reason, message) = condition(&status, "IgnoredField");
    assert_eq!((value.as_str(), reason.as_str()), ("True", "IgnoredField"));
    assert!(
        message.starts_with("spec.resources is set but not acted on"),
        "{message}"
    );
    o.repos = vec![repo("repo1", "Ready")];
    for _ in 0..3 {
        let plan = step(&mut o, now());
        assert!(ignored(&plan).is_empty(), "{:?}", plan.intents);
    }
    let status = o.restore.status.clone().unwrap();
    assert_eq!(status.phase, Some(RestorePhase::Running));
    assert_eq!(condition(&status, "IgnoredField").0, "True");
}

#[test]
fn a_restore_without_ignored_fields_has_no_ignored_field_condition() {
    let mut o = observed();
    let plan = step(&mut o, now());
    assert!(
        events(&plan.intents)
            .iter()
            .all(|(_, r, _)| r != "IgnoredField")
    );
    assert!(conditions::get(&plan.status.unwrap(), "IgnoredField").is_none());
}

// ---------------------------------------------------------------- prepareData

#[test]
fn prepare_data_runs_one_job_per_replica_each_mounting_its_templated_claim() {
    let mut o = observed();
    let plan = step(&mut o, now());
    let jobs: Vec<Job> = dispatched(&plan.intents)
        .iter()
        .map(|(_, a)| job_of(a))
        .collect();
    let names: Vec<_> = jobs
        .iter()
        .map(|j| j.metadata.name.clone().unwrap())
        .collect();
    assert_eq!(names, [JOB0, JOB1]);
    for (k, job) in jobs.iter().enumerate() {
        let spec = pod_spec_of(job);
        let volume = &spec.volumes.as_ref().unwrap()[0];
        assert_eq!(volume.name, "dp-claim-tpl-data");
        assert_eq!(
            volume.persistent_volume_claim.as_ref().unwrap().claim_name,
            format!("data-{k}")
        );
        let mount = &container_of(job).volume_mounts.as_ref().unwrap()[0];
        assert_eq!(
            (mount.name.as_str(), mount.mount_path.as_str()),
            ("dp-claim-tpl-data", "/var/lib/pg")
        );
        assert_eq!(job.metadata.labels.as_ref().unwrap()["app"], "pg");
    }
    let created: Vec<_> = plan
        .intents
        .iter()
        .filter_map(|i| match i {
            Intent::Create { object } => Some(object.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(created.len(), 2);
    assert_eq!(created[1]["metadata"]["name"], "data-1");
    assert_eq!(created[1]["metadata"]["namespace"], "default");
    assert_eq!(
        created[1]["spec"]["resources"]["requests"]["storage"],
        "1Gi"
    );
    let entries = prepare_entries(&o);
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0].name, "prepareData-0");
    assert_eq!(entries[0].object_key, format!("Job/{JOB0}"));
    assert_eq!(entries[0].backup_name, "b1");
    assert_eq!(entries[0].status, Some(RestoreActionStatus::Processing));
    assert_eq!(
        entries[0].message.as_deref(),
        Some(format!("\"Job/{JOB0}\" is processing").as_str())
    );
}

#[test]
fn starting_index_shifts_the_claim_names() {
    let mut o = observed();
    o.restore = restore(
        json!({"spec": {"prepareDataConfig": {"volumeClaimsTemplate": {"startingIndex": 3}}}}),
    );
    let plan = step(&mut o, now());
    let claims: Vec<String> = dispatched(&plan.intents)
        .iter()
        .map(|(_, a)| {
            pod_spec_of(&job_of(a)).volumes.as_ref().unwrap()[0]
                .persistent_volume_claim
                .as_ref()
                .unwrap()
                .claim_name
                .clone()
        })
        .collect();
    assert_eq!(claims, ["data-3", "data-4"]);
}

#[test]
fn existing_claims_are_not_created_again() {
    let mut o = observed();
    o.claims = vec![
        serde_json::from_value(json!({"metadata": {"name": "data-0", "namespace": "default"}}))
            .unwrap(),
    ];
    let plan = step(&mut o, now());
    let created: Vec<_> = plan
        .intents
        .iter()
        .filter_map(|i| match i {
            Intent::Create { object } => Some(object["metadata"]["name"].clone()),
            _ => None,
        })
        .collect();
    assert_eq!(created, [json!("data-1")]);
}

#[test]
fn volume_claims_are_mounted_in_every_job_at_their_own_mount_path() {
    let mut o = observed();
    o.restore = restore(json!({"spec": {"prepareDataConfig": {
        "volumeClaims": [{"metadata": {"name": "logs"}, "volumeClaimSpec": {}, "mountPath": "/logs"}]
    }}}));
    let plan = step(&mut o, now());
    for (_, action) in dispatched(&plan.intents) {
        let job = job_of(action);
        let mounts = container_of(&job).volume_mounts.clone().unwrap();
        assert!(
            mounts
                .iter()
                .any(|m| m.name == "dp-claim-logs" && m.mount_path == "/logs")
        );
        assert!(mounts.iter().any(|m| m.name == "dp-claim-tpl-data"));
    }
}

#[test]
fn a_claim_without_mount_path_or_known_volume_source_fails_the_restore() {
    let mut o = observed();
    o.restore = restore(
        json!({"spec": {"prepareDataConfig": {"volumeClaimsTemplate": {
        "templates": [{"metadata": {"name": "data"}, "volumeClaimSpec": {}, "volumeSource": "nope"}]}}}}),
    );
    let (phase, reason, message) = failed_with(&step(&mut o, now()), CONDITION_PREPARE_DATA);
    assert_eq!(
        (phase, reason.as_str()),
        (Some(RestorePhase::Failed), "Failed")
    );
    assert!(
        message.starts_with("unable to find the mountPath"),
        "{message}"
    );
}

#[test]
fn zero_replicas_fail_the_restore_naming_the_field() {
    let mut o = observed();
    o.restore =
        restore(json!({"spec": {"prepareDataConfig": {"volumeClaimsTemplate": {"replicas": 0}}}}));
    assert_eq!(
        failed_with(&step(&mut o, now()), CONDITION_PREPARE_DATA).2,
        "spec.prepareDataConfig.volumeClaimsTemplate.replicas must be at least 1, got 0"
    );
}

#[test]
fn restore_env_follows_kubeblocks_order_and_precedence() {
    let mut o = observed();
    o.restore = restore(json!({"spec": {"env": [{"name": "DATA_DIR", "value": "/restore"}]}}));
    o.backup = Some(backup(json!({"status": {"backupMethod": {"env": [
        {"name": "IMAGE_TAG", "value": "16"}, {"name": "DATA_DIR", "value": "/method"}]}}})));
    let plan = step(&mut o, now());
    let job = job_of(dispatched(&plan.intents)[0].1);
    let names: Vec<String> = env_of(&job).into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        [
            "DP_BACKUP_NAME",
            "DP_TARGET_RELATIVE_PATH",
            "DP_BACKUP_ROOT_PATH",
            "DP_BACKUP_BASE_PATH",
            "DP_BACKUP_STOP_TIME",
            "DATA_DIR",
            "IMAGE_TAG"
        ]
    );
    assert_eq!(env_value(&job, "DP_BACKUP_NAME").as_deref(), Some("b1"));
    assert_eq!(
        env_value(&job, "DP_TARGET_RELATIVE_PATH").as_deref(),
        Some("")
    );
    assert_eq!(
        env_value(&job, "DP_BACKUP_ROOT_PATH").as_deref(),
        Some("/prod/default/mycluster/pg")
    );
    assert_eq!(
        env_value(&job, "DP_BACKUP_BASE_PATH").as_deref(),
        Some("/prod/default/mycluster/pg/b1")
    );
    // timeRange.end shifted into the backup's zone, RFC 3339 by default.
    assert_eq!(
        env_value(&job, "DP_BACKUP_STOP_TIME").as_deref(),
        Some("2026-11-22T17:00:00+08:00")
    );
    // Restore env beats the method's env, which beats the ActionSet's.
    assert_eq!(env_value(&job, "DATA_DIR").as_deref(), Some("/restore"));
    assert_eq!(env_value(&job, "IMAGE_TAG").as_deref(), Some("16"));
    assert_eq!(container_of(&job).image.as_deref(), Some("postgres:16"));
}

#[test]
fn dp_time_format_of_the_actionset_formats_the_stop_time() {
    let mut o = observed();
    o.actionset = Some(actionset(json!({"spec": {"env": [
        {"name": "DP_TIME_FORMAT", "value": "2006-01-02 15:04:05 MST"}]}})));
    o.backup = Some(backup(json!({"status": {"timeRange": {"timeZone": null}}})));
    let plan = step(&mut o, now());
    let job = job_of(dispatched(&plan.intents)[0].1);
    assert_eq!(
        env_value(&job, "DP_BACKUP_STOP_TIME").as_deref(),
        Some("2026-11-22 09:00:00 UTC")
    );
}

#[test]
fn restore_jobs_have_kubeblocks_shape() {
    let mut o = observed();
    o.restore = restore(json!({"spec": {
        "backoffLimit": 5,
        "serviceAccountName": "restorer",
        "containerResources": {"limits": {"memory": "1Gi"}},
        "prepareDataConfig": {"schedulingSpec": {
            "tolerations": [{"key": "restore", "operator": "Exists"}],
            "nodeSelector": {"disk": "ssd"},
            "schedulerName": "custom"}}
    }}));
    o.nodes = vec![
        serde_json::from_value(json!({"metadata": {"name": "node-a", "labels": {"disk": "ssd"}}}))
            .unwrap(),
    ];
    let plan = step(&mut o, now());
    let job = job_of(dispatched(&plan.intents)[0].1);
    let labels = job.metadata.labels.clone().unwrap();
    assert_eq!(
        labels[well_known::label::MANAGED_BY],
        "kubeblocks-dataprotection"
    );
    assert_eq!(labels[well_known::label::RESTORE], "r1");
    let owner = &job.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.uid.as_str(), owner.controller),
        ("Restore", UID, Some(true))
    );
    assert_eq!(job.spec.as_ref().unwrap().backoff_limit, Some(5));
    let spec = pod_spec_of(&job);
    assert_eq!(spec.restart_policy.as_deref(), Some("Never"));
    assert_eq!(spec.security_context.as_ref().unwrap().run_as_user, Some(0));
    assert_eq!(spec.service_account_name.as_deref(), Some("restorer"));
    assert_eq!(spec.scheduler_name.as_deref(), Some("custom"));
    assert_eq!(spec.node_selector.as_ref().unwrap()["disk"], "ssd");
    assert_eq!(
        spec.tolerations.as_ref().unwrap()[0].key.as_deref(),
        Some("restore")
    );
    let container = container_of(&job);
    assert_eq!(container.name, "restore");
    assert_eq!(container.image_pull_policy.as_deref(), Some("IfNotPresent"));
    assert_eq!(container.command.clone().unwrap(), ["sh", "-c", "restore"]);
    assert!(container.resources.as_ref().unwrap().limits.is_some());
    assert_eq!(job.metadata.namespace.as_deref(), Some("default"));
}

#[test]
fn backoff_limit_defaults_to_two() {
    let mut o = observed();
    let plan = step(&mut o, now());
    let job = job_of(dispatched(&plan.intents)[0].1);
    assert_eq!(job.spec.as_ref().unwrap().backoff_limit, Some(2));
}

#[test]
fn restore_jobs_may_read_the_backup_and_its_siblings_and_write_nothing() {
    let mut o = observed();
    let plan = step(&mut o, now());
    let Some(pb::action::Kind::Job(job)) = &dispatched(&plan.intents)[0].1.kind else {
        panic!("not a job");
    };
    let grant = job.storage.as_ref().unwrap();
    assert_eq!(grant.repo_name, "repo1");
    assert_eq!(grant.read_write_prefix, "");
    assert_eq!(grant.read_only_prefixes, ["/prod/default/mycluster/pg"]);
    assert!(grant.datasafed_config.contains("type = s3"));
}

fn mount_access() -> RepoAccess {
    RepoAccess {
        repo_name: "repo1".into(),
        mount_claim: Some("pvc-repo1-abcdef".into()),
        ..Default::default()
    }
}

#[test]
fn a_mount_repository_without_its_pvc_in_the_namespace_labels_the_restore_and_waits() {
    let mut o = observed();
    o.repo_access = Some(mount_access());
    let plan = step(&mut o, now());
    assert!(dispatched(&plan.intents).is_empty());
    assert!(plan.requeue.is_some());
    let labels = o.restore.metadata.labels.clone().unwrap_or_default();
    assert_eq!(
        labels
            .get(well_known::label::WAIT_REPO_PREPARATION)
            .map(String::as_str),
        Some("true")
    );
    assert_eq!(
        labels
            .get(well_known::label::BACKUP_REPO)
            .map(String::as_str),
        Some("repo1")
    );
    let condition = o
        .restore
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "CheckBackupRepo"))
        .cloned()
        .unwrap();
    assert_eq!(condition.reason, "WaitForBackupRepo");
    assert!(
        condition.message.contains("pvc-repo1-abcdef"),
        "{}",
        condition.message
    );
}

#[test]
fn a_mount_repository_is_mounted_at_backupdata() {
    let mut o = observed();
    o.repo_access = Some(mount_access());
    o.claims.push(
        serde_json::from_value(
            json!({"metadata": {"name": "pvc-repo1-abcdef", "namespace": "default"}}),
        )
        .unwrap(),
    );
    let plan = step(&mut o, now());
    let (_, action) = dispatched(&plan.intents)[0];
    let Some(pb::action::Kind::Job(spec)) = &action.kind else {
        panic!("not a job");
    };
    assert_eq!(
        spec.storage.as_ref().and_then(|g| g.mount_claim.clone()),
        Some(pb::MountClaim {
            namespace: "default".into(),
            name: "pvc-repo1-abcdef".into()
        }),
        "the agent reaches the repository through the PVC of the Restore's namespace"
    );
    let job = job_of(action);
    assert_eq!(
        env_value(&job, "DATASAFED_LOCAL_BACKEND_PATH").as_deref(),
        Some("/backupdata")
    );
    let volumes = pod_spec_of(&job).volumes.clone().unwrap();
    assert!(volumes.iter().any(|v| v.name == "dp-backup-data"
        && v.persistent_volume_claim.as_ref().unwrap().claim_name == "pvc-repo1-abcdef"));
}

#[test]
fn backup_extras_reach_the_job_through_the_downward_api() {
    let mut o = observed();
    o.backup = Some(backup(
        json!({"status": {"extras": [{"lsn": "0/3000060"}]}}),
    ));
    let plan = step(&mut o, now());
    let job = job_of(dispatched(&plan.intents)[0].1);
    let template = job
        .spec
        .as_ref()
        .unwrap()
        .template
        .metadata
        .clone()
        .unwrap();
    assert_eq!(
        template.annotations.unwrap()[well_known::annotation::BACKUP_EXTRAS],
        r#"[{"lsn":"0/3000060"}]"#
    );
    let mounts = container_of(&job).volume_mounts.clone().unwrap();
    assert!(mounts.iter().any(|m| m.mount_path == "/dp_downward"));
}

#[test]
fn a_restore_without_prepare_data_config_skips_the_stage_and_completes() {
    let mut o = observed();
    let mut r = restore(json!({}));
    r.spec.prepare_data_config = None;
    o.restore = r;
    let plan = step(&mut o, now());
    let status = plan.status.clone().unwrap();
    assert_eq!(status.phase, Some(RestorePhase::Completed));
    assert!(conditions::get(&status, CONDITION_PREPARE_DATA).is_none());
    assert!(dispatched(&plan.intents).is_empty());
}

// ---------------------------------------------------------------- results

#[test]
fn all_jobs_completed_completes_the_restore_and_deletes_the_jobs() {
    let mut o = observed();
    step(&mut o, now());
    report(
        &mut o,
        "prepareData-0",
        &format!("Job/{JOB0}"),
        ReportedPhase::Succeeded,
    );
    let plan = step(&mut o, later(10));
    assert_eq!(
        o.restore.status.as_ref().unwrap().phase,
        Some(RestorePhase::Running)
    );
    assert_eq!(
        dispatched(&plan.intents).len(),
        1,
        "the unfinished job is dispatched again"
    );
    report(
        &mut o,
        "prepareData-0",
        &format!("Job/{JOB1}"),
        ReportedPhase::Succeeded,
    );
    let plan = step(&mut o, later(65));
    let status = plan.status.clone().unwrap();
    assert_eq!(status.phase, Some(RestorePhase::Completed));
    assert_eq!(status.duration.as_deref(), Some("1m5s"));
    assert_eq!(condition(&status, CONDITION_PREPARE_DATA).0, "True");
    let entries = prepare_entries(&o);
    assert!(
        entries
            .iter()
            .all(|e| e.status == Some(RestoreActionStatus::Completed))
    );
    assert_eq!(
        entries[1].message.as_deref(),
        Some(format!("successfully processed the \"Job/{JOB1}\"").as_str())
    );
    assert_eq!(entries[1].end_time.as_ref().map(|t| t.0), Some(later(30)));
    assert!(
        events(&plan.intents)
            .iter()
            .any(|(_, r, _)| r == "RestoreCompleted")
    );
    let deleted: Vec<_> = plan
        .intents
        .iter()
        .filter_map(|i| match i {
            Intent::Delete { name, .. } => Some(name.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(deleted, [JOB0, JOB1]);
    assert!(plan.intents.contains(&Intent::Acknowledge {
        action_id: work::entry_id(UID, "prepareData-0", &format!("Job/{JOB1}"))
    }));
}

#[test]
fn a_failed_job_in_parallel_waits_for_the_others_then_fails_with_kubeblocks_message() {
    let mut o = observed();
    step(&mut o, now());
    report(
        &mut o,
        "prepareData-0",
        &format!("Job/{JOB0}"),
        ReportedPhase::Failed,
    );
    let plan = step(&mut o, later(10));
    assert_eq!(
        plan.status.as_ref().unwrap().phase,
        Some(RestorePhase::Running)
    );
    let entry = &prepare_entries(&o)[0];
    assert_eq!(entry.status, Some(RestoreActionStatus::Failed));
    assert_eq!(
        entry.message.as_deref(),
        Some(format!("\"Job/{JOB0}\" is failed, you can describe it or logs the ownered pod to get more information: BackoffLimitExceeded: Job has reached the specified backoff limit").as_str())
    );
    report(
        &mut o,
        "prepareData-0",
        &format!("Job/{JOB1}"),
        ReportedPhase::Succeeded,
    );
    let plan = step(&mut o, later(20));
    assert_eq!(
        failed_with(&plan, CONDITION_PREPARE_DATA),
        (
            Some(RestorePhase::Failed),
            "Failed".into(),
            "restore failed for backup \"b1\", more information can be found in status.actions.prepareData".into()
        )
    );
    assert!(
        events(&plan.intents)
            .iter()
            .any(|(t, r, _)| *t == EventType::Warning && r == "RestoreFailed")
    );
}

#[test]
fn on_error_continue_lets_a_failed_prepare_data_job_pass() {
    let mut o = observed();
    o.actionset = Some(actionset(
        json!({"spec": {"restore": {"prepareData": {"onError": "Continue"}}}}),
    ));
    step(&mut o, now());
    report(
        &mut o,
        "prepareData-0",
        &format!("Job/{JOB0}"),
        ReportedPhase::Failed,
    );
    report(
        &mut o,
        "prepareData-0",
        &format!("Job/{JOB1}"),
        ReportedPhase::Succeeded,
    );
    let plan = step(&mut o, later(10));
    assert_eq!(plan.status.unwrap().phase, Some(RestorePhase::Completed));
}

#[test]
fn serial_policy_runs_one_job_at_a_time_and_deletes_each_finished_one() {
    let mut o = observed();
    o.restore =
        restore(json!({"spec": {"prepareDataConfig": {"volumeClaimRestorePolicy": "Serial"}}}));
    let plan = step(&mut o, now());
    let names: Vec<_> = dispatched(&plan.intents)
        .iter()
        .map(|(_, a)| job_of(a).metadata.name.unwrap())
        .collect();
    assert_eq!(names, [JOB0]);
    report(
        &mut o,
        "prepareData-0",
        &format!("Job/{JOB0}"),
        ReportedPhase::Succeeded,
    );
    let plan = step(&mut o, later(10));
    let names: Vec<_> = dispatched(&plan.intents)
        .iter()
        .map(|(_, a)| job_of(a).metadata.name.unwrap())
        .collect();
    assert_eq!(names, [JOB1]);
    assert!(
        plan.intents
            .iter()
            .any(|i| matches!(i, Intent::Delete { name, .. } if name == JOB0))
    );
}

#[test]
fn serial_policy_stops_at_the_first_failure() {
    let mut o = observed();
    o.restore =
        restore(json!({"spec": {"prepareDataConfig": {"volumeClaimRestorePolicy": "Serial"}}}));
    step(&mut o, now());
    report(
        &mut o,
        "prepareData-0",
        &format!("Job/{JOB0}"),
        ReportedPhase::Failed,
    );
    let plan = step(&mut o, later(10));
    assert_eq!(
        plan.status.as_ref().unwrap().phase,
        Some(RestorePhase::Failed)
    );
    assert!(dispatched(&plan.intents).is_empty());
    assert_eq!(prepare_entries(&o).len(), 1);
}

#[test]
fn a_lost_agent_fails_its_action_after_the_grace_period() {
    let mut o = observed();
    step(&mut o, now());
    o.agents.nodes.get_mut("node-a").unwrap().connected = false;
    let plan = step(&mut o, later(60));
    assert_eq!(
        plan.status.as_ref().unwrap().phase,
        Some(RestorePhase::Running)
    );
    let plan = step(&mut o, later(400));
    assert_eq!(
        plan.status.as_ref().unwrap().phase,
        Some(RestorePhase::Failed)
    );
    let message = prepare_entries(&o)[0].message.clone().unwrap();
    assert!(
        message.contains("agent on node \"node-a\" has been disconnected for"),
        "{message}"
    );
}

// ---------------------------------------------------------------- strategy All

fn all_backup(pods: &[&str]) -> Backup {
    backup(
        json!({"status": {"target": {"name": "t", "podSelector": {"strategy": "All"},
                                        "selectedTargetPods": pods}}}),
    )
}

#[test]
fn strategy_all_without_a_pod_restore_policy_fails() {
    let mut o = observed();
    o.backup = Some(all_backup(&["pg-0", "pg-1"]));
    let message = failed_with(&step(&mut o, now()), CONDITION_PREPARE_DATA).2;
    assert!(
        message.starts_with("spec.prepareDataConfig.requiredPolicyForAllPodSelection is required"),
        "{message}"
    );
}

#[test]
fn one_to_one_restores_each_source_pod_into_its_own_instance_and_skips_the_rest() {
    let mut o = observed();
    o.backup = Some(all_backup(&["pg-0", "pg-1"]));
    o.restore = restore(json!({"spec": {"prepareDataConfig": {
        "requiredPolicyForAllPodSelection": {"dataRestorePolicy": "OneToOne"},
        "volumeClaimsTemplate": {"replicas": 3}}}}));
    let plan = step(&mut o, now());
    let paths: Vec<_> = dispatched(&plan.intents)
        .iter()
        .map(|(_, a)| env_value(&job_of(a), "DP_TARGET_RELATIVE_PATH").unwrap())
        .collect();
    assert_eq!(paths, ["t/pg-0", "t/pg-1"]);
}

#[test]
fn one_to_many_restores_the_named_pod_into_every_instance() {
    let mut o = observed();
    o.backup = Some(all_backup(&["pg-0", "pg-1"]));
    o.restore = restore(json!({"spec": {"prepareDataConfig": {
        "requiredPolicyForAllPodSelection": {"dataRestorePolicy": "OneToMany",
                                             "sourceOfOneToMany": {"targetPodName": "pg-1"}}}}}));
    let plan = step(&mut o, now());
    let paths: Vec<_> = dispatched(&plan.intents)
        .iter()
        .map(|(_, a)| env_value(&job_of(a), "DP_BACKUP_BASE_PATH").unwrap())
        .collect();
    assert_eq!(paths, ["/prod/default/mycluster/pg/b1/t/pg-1"; 2]);
}

#[test]
fn one_to_many_from_a_pod_the_backup_did_not_read_fails() {
    let mut o = observed();
    o.backup = Some(all_backup(&["pg-0"]));
    o.restore = restore(json!({"spec": {"prepareDataConfig": {
        "requiredPolicyForAllPodSelection": {"dataRestorePolicy": "OneToMany",
                                             "sourceOfOneToMany": {"targetPodName": "pg-9"}}}}}));
    let message = failed_with(&step(&mut o, now()), CONDITION_PREPARE_DATA).2;
    assert!(
        message.contains("\"pg-9\" is not a pod backup \"b1\" read (pg-0)"),
        "{message}"
    );
}

// ---------------------------------------------------------------- placement

#[test]
fn the_chosen_node_is_recorded_before_dispatch_and_kept_when_more_agents_connect() {
    let mut o = observed();
    let plan = step(&mut o, now());
    assert!(
        matches!(&plan.intents[0], Intent::PatchMeta { annotations, .. }
        if annotations.contains_key(well_known::annotation::RESTORE_NODES))
    );
    assert!(
        dispatched(&plan.intents)
            .iter()
            .all(|(node, _)| *node == "node-a")
    );
    o.agents = agents(&["aaa-first", "node-a"]);
    let plan = step(&mut o, later(5));
    assert!(
        dispatched(&plan.intents)
            .iter()
            .all(|(node, _)| *node == "node-a")
    );
    assert!(
        !plan
            .intents
            .iter()
            .any(|i| matches!(i, Intent::PatchMeta { .. }))
    );
}

#[test]
fn scheduling_node_name_pins_the_jobs() {
    let mut o = observed();
    o.restore =
        restore(json!({"spec": {"prepareDataConfig": {"schedulingSpec": {"nodeName": "node-z"}}}}));
    let plan = step(&mut o, now());
    assert!(
        dispatched(&plan.intents)
            .iter()
            .all(|(node, _)| *node == "node-z")
    );
    let job = job_of(dispatched(&plan.intents)[0].1);
    assert_eq!(pod_spec_of(&job).node_name.as_deref(), Some("node-z"));
}

#[test]
fn a_claim_bound_to_a_node_pins_the_job_that_mounts_it() {
    let mut o = observed();
    o.claims = vec![
        serde_json::from_value(
            json!({"metadata": {"name": "data-1", "namespace": "default",
        "annotations": {well_known::annotation::SELECTED_NODE: "node-b"}}}),
        )
        .unwrap(),
    ];
    let plan = step(&mut o, now());
    let nodes: Vec<_> = dispatched(&plan.intents).iter().map(|(n, _)| *n).collect();
    assert_eq!(nodes, ["node-a", "node-b"]);
}

#[test]
fn without_a_connected_agent_the_restore_waits_without_recording_actions() {
    let mut o = observed();
    o.agents = agents(&[]);
    let plan = step(&mut o, now());
    let status = plan.status.clone().unwrap();
    assert_eq!(status.phase, Some(RestorePhase::Running));
    assert!(prepare_entries(&o).is_empty());
    assert!(
        condition(&status, CONDITION_PREPARE_DATA)
            .2
            .contains("waiting for a connected node agent")
    );
    assert!(plan.requeue.is_some());
}

// ---------------------------------------------------------------- failure mid-run, deletion, settled

#[test]
fn a_backup_deleted_mid_restore_fails_it_and_cancels_running_actions() {
    let mut o = observed();
    step(&mut o, now());
    o.backup = None;
    let plan = step(&mut o, later(10));
    assert_eq!(
        plan.status.as_ref().unwrap().phase,
        Some(RestorePhase::Failed)
    );
    let cancelled: Vec<_> = plan
        .intents
        .iter()
        .filter(|i| matches!(i, Intent::Cancel { node, .. } if node == "node-a"))
        .collect();
    assert_eq!(cancelled.len(), 2);
    assert!(
        prepare_entries(&o)
            .iter()
            .all(|e| e.status == Some(RestoreActionStatus::Failed))
    );
}

#[test]
fn deleting_a_restore_cancels_running_actions_then_lets_go_and_keeps_its_claims() {
    let mut o = observed();
    step(&mut o, now());
    o.restore.metadata.deletion_timestamp = Some(
        k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(later(5)),
    );
    let plan = step(&mut o, later(5));
    assert_eq!(
        plan.intents
            .iter()
            .filter(|i| matches!(i, Intent::Cancel { .. }))
            .count(),
        2
    );
    assert!(!plan.intents.contains(&Intent::RemoveFinalizer));
    report(
        &mut o,
        "prepareData-0",
        &format!("Job/{JOB0}"),
        ReportedPhase::Cancelled,
    );
    report(
        &mut o,
        "prepareData-0",
        &format!("Job/{JOB1}"),
        ReportedPhase::Cancelled,
    );
    let plan = step(&mut o, later(10));
    assert!(plan.intents.contains(&Intent::RemoveFinalizer));
    assert!(
        !plan
            .intents
            .iter()
            .any(|i| matches!(i, Intent::Delete { kind, .. } if kind == "PersistentVolumeClaim"))
    );
    assert_eq!(
        plan.intents
            .iter()
            .filter(|i| matches!(i, Intent::Acknowledge { .. }))
            .count(),
        2
    );
}

#[test]
fn deleting_a_restore_whose_agent_is_lost_lets_go_without_waiting() {
    let mut o = observed();
    step(&mut o, now());
    o.agents.nodes.get_mut("node-a").unwrap().connected = false;
    o.restore.metadata.deletion_timestamp = Some(
        k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(later(400)),
    );
    let plan = step(&mut o, later(400));
    assert!(plan.intents.contains(&Intent::RemoveFinalizer));
}

#[test]
fn a_deleted_restore_without_finalizer_is_left_alone() {
    let mut o = observed();
    o.restore.metadata.deletion_timestamp =
        Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now()));
    assert_eq!(plan(&o, now()), Plan::nothing());
}

#[test]
fn a_finished_restore_only_acknowledges_late_results() {
    let mut o = observed();
    step(&mut o, now());
    o.backup = None;
    step(&mut o, later(5));
    report(
        &mut o,
        "prepareData-0",
        &format!("Job/{JOB0}"),
        ReportedPhase::Cancelled,
    );
    let plan = step(&mut o, later(10));
    assert_eq!(plan.status, None);
    assert_eq!(
        plan.intents,
        [Intent::Acknowledge {
            action_id: work::entry_id(UID, "prepareData-0", &format!("Job/{JOB0}"))
        }]
    );
}
