//! Table tests of the Backup planner: one behaviour per test, named by what a user sees.

use std::collections::BTreeMap;

use cairn_api::backup::{ActionPhase, Backup, BackupPhase, BackupStatus};
use cairn_api::backup_policy::BackupPolicy;
use cairn_api::backup_repo::BackupRepo;
use cairn_api::well_known;
use cairn_proto::agent::v1 as pb;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;
use serde_json::json;

use super::*;
use crate::plan::agent_view::{ReportedAction, ReportedPhase};
use crate::plan::intent::{EventType, Intent};
use crate::plan::testing::*;

#[path = "tests_chain.rs"]
mod chain_tests;
#[path = "tests_continuous.rs"]
mod continuous_tests;
#[path = "tests_kb_incremental.rs"]
mod kb_incremental_tests;
#[path = "tests_kopia.rs"]
mod kopia_tests;
#[path = "tests_snapshot.rs"]
mod snapshot_tests;

const UID: &str = "0123456789abcdef";

fn backup(extra: serde_json::Value) -> Backup {
    let mut value = json!({
        "apiVersion": "dataprotection.kubeblocks.io/v1alpha1",
        "kind": "Backup",
        "metadata": {"name": "b1", "namespace": "default", "uid": UID,
                     "creationTimestamp": "2026-11-22T09:59:59Z"},
        "spec": {"backupPolicyName": "pg-policy", "backupMethod": "basebackup"}
    });
    json_patch::merge(&mut value, &extra);
    serde_json::from_value(value).unwrap()
}

fn policy(extra: serde_json::Value) -> BackupPolicy {
    let mut value = json!({
        "apiVersion": "dataprotection.kubeblocks.io/v1alpha1",
        "kind": "BackupPolicy",
        "metadata": {"name": "pg-policy", "namespace": "default"},
        "spec": {
            "pathPrefix": "/mycluster/postgresql",
            "backoffLimit": 1,
            "target": {
                "podSelector": {"matchLabels": {"app": "pg", "role": "secondary"},
                                "fallbackLabelSelector": {"matchLabels": {"app": "pg", "role": "primary"}}},
                "connectionCredential": {"secretName": "pg-account", "usernameKey": "username",
                                         "passwordKey": "password"}
            },
            "backupMethods": [{
                "name": "basebackup", "actionSetName": "pg-basebackup",
                "targetVolumes": {"volumeMounts": [{"name": "data", "mountPath": "/var/lib/pg"}]},
                "env": [{"name": "IMAGE_TAG", "value": "16"}]
            }]
        },
        "status": {"phase": "Available"}
    });
    json_patch::merge(&mut value, &extra);
    serde_json::from_value(value).unwrap()
}

fn actionset(extra: serde_json::Value) -> ActionSet {
    let mut value = json!({
        "apiVersion": "dataprotection.kubeblocks.io/v1alpha1",
        "kind": "ActionSet",
        "metadata": {"name": "pg-basebackup"},
        "spec": {
            "backupType": "Full",
            "env": [{"name": "DATA_DIR", "value": "/var/lib/pg/data"},
                    {"name": "IMAGE_TAG", "value": "14"}],
            "backup": {
                "preBackup": [{"exec": {"command": ["psql", "-c", "CHECKPOINT"], "timeout": "30s"}}],
                "backupData": {"image": "postgres:$(IMAGE_TAG)", "command": ["sh", "-c", "backup"],
                               "runOnTargetPodNode": true,
                               "syncProgress": {"enabled": true, "intervalSeconds": 5}},
                "postBackup": [{"exec": {"command": ["echo", "done"]}}]
            }
        }
    });
    json_patch::merge(&mut value, &extra);
    serde_json::from_value(value).unwrap()
}

/// A cluster member pod labelled with its `role` (the policy selects `secondary`, falling back
/// to `primary`).
fn member(name: &str, role: &str) -> Pod {
    pod(name).labelled(&[
        ("role", role),
        (well_known::label::ROLE, role),
        (well_known::label::INSTANCE, "mycluster"),
    ])
}

/// The default repository, Ready unless `phase` says otherwise, under `prod/`.
fn default_repo(name: &str, phase: &str) -> BackupRepo {
    repo(name, phase).path_prefix("prod").marked_default()
}

fn observed() -> Observed {
    Observed {
        backup: backup(json!({})),
        policy: Some(policy(json!({}))),
        actionset: Some(actionset(json!({}))),
        repos: vec![default_repo("repo1", "Ready")],
        repo_access: Some(tool_access("repo1")),
        encryption_passphrase: None,
        passphrases: BTreeMap::new(),
        backups: Vec::new(),
        pods: vec![member("pg-0", "secondary"), member("pg-1", "primary")],
        schedule: None,
        claims: Vec::new(),
        snapshot: Default::default(),
        agents: agents(&["node-a"]),
        settings: Settings::default(),
    }
}

/// Runs the planner, then applies its status as the API server would.
fn step(o: &mut Observed, at: Timestamp) -> Plan<BackupStatus> {
    let plan = plan(o, at);
    if let Some(status) = &plan.status {
        o.backup.status = Some(status.clone());
    }
    for intent in &plan.intents {
        match intent {
            Intent::AddFinalizer => o
                .backup
                .metadata
                .finalizers
                .get_or_insert_with(Vec::new)
                .push(well_known::FINALIZER.into()),
            Intent::PatchMeta {
                labels,
                annotations,
            } => {
                for (k, v) in labels {
                    let map = o.backup.metadata.labels.get_or_insert_with(BTreeMap::new);
                    match v {
                        Some(v) => map.insert(k.clone(), v.clone()),
                        None => map.remove(k),
                    };
                }
                for (k, v) in annotations {
                    let map = o
                        .backup
                        .metadata
                        .annotations
                        .get_or_insert_with(BTreeMap::new);
                    match v {
                        Some(v) => map.insert(k.clone(), v.clone()),
                        None => map.remove(k),
                    };
                }
            }
            _ => {}
        }
    }
    plan
}

/// The agent reports action `name` on `pod` in `phase` ("exit code 3" when it failed), with the
/// info file `info`; it ran from `now()` to 5 s later in Job `<name>-b1-01234567`.
fn report(o: &mut Observed, name: &str, pod: &str, phase: ReportedPhase, info: Option<&str>) {
    let reason = if phase == ReportedPhase::Failed {
        "exit code 3"
    } else {
        ""
    };
    o.agents.report(
        action_id(UID, name, pod),
        reported(phase)
            .because(reason)
            .with_info(info)
            .in_job(&format!("{name}-b1-01234567"))
            .ran(now(), later(5)),
    );
}

/// The storage grant of a dispatched Job action.
fn grant_of(action: &pb::Action) -> pb::StorageGrant {
    let Some(pb::action::Kind::Job(job)) = &action.kind else {
        panic!("not a job: {action:?}")
    };
    job.storage.clone().unwrap()
}

fn failure(plan: &Plan<BackupStatus>) -> (Option<BackupPhase>, String) {
    let status = plan.status.clone().unwrap_or_default();
    (status.phase, status.failure_reason.unwrap_or_default())
}

fn entry<'s>(status: &'s BackupStatus, name: &str) -> &'s cairn_api::backup::ActionStatus {
    status
        .actions
        .iter()
        .flatten()
        .find(|a| a.name.as_deref() == Some(name))
        .unwrap()
}

// ---------------------------------------------------------------- New phase: validation

#[test]
fn missing_policy_fails_the_backup_with_the_api_servers_not_found_message() {
    let mut o = observed();
    o.policy = None;
    let plan = step(&mut o, now());
    assert_eq!(
        failure(&plan),
        (
            Some(BackupPhase::Failed),
            "backuppolicies.dataprotection.kubeblocks.io \"pg-policy\" not found".into()
        )
    );
    assert!(plan.intents.iter().any(|i| matches!(
        i,
        Intent::Event {
            type_: EventType::Warning,
            ..
        }
    )));
    assert!(dispatched(&plan.intents).is_empty());
}

#[test]
fn unavailable_policy_fails_the_backup() {
    let mut o = observed();
    o.policy = Some(policy(json!({"status": {"phase": "Unavailable"}})));
    assert_eq!(
        failure(&step(&mut o, now())).1,
        "phase of backupPolicy \"pg-policy\" is Unavailable"
    );
}

#[test]
fn unknown_method_fails_the_backup() {
    let mut o = observed();
    o.backup = backup(json!({"spec": {"backupMethod": "nope"}}));
    assert_eq!(
        failure(&step(&mut o, now())).1,
        "backupMethod: nope not found"
    );
}

#[test]
fn method_without_actionset_or_snapshot_fails_the_backup() {
    let mut o = observed();
    o.policy = Some(policy(
        json!({"spec": {"backupMethods": [{"name": "basebackup"}]}}),
    ));
    assert_eq!(
        failure(&step(&mut o, now())).1,
        "backup method basebackup should specify snapshotVolumes or actionSetName"
    );
}

#[test]
fn missing_actionset_fails_the_backup() {
    let mut o = observed();
    o.actionset = None;
    assert_eq!(
        failure(&step(&mut o, now())).1,
        "actionsets.dataprotection.kubeblocks.io \"pg-basebackup\" not found"
    );
}

#[test]
fn undeclared_parameter_fails_with_kubeblocks_message() {
    let mut o = observed();
    o.backup = backup(json!({"spec": {"parameters": [{"name": "tables", "value": "t1"}]}}));
    assert_eq!(
        failure(&step(&mut o, now())).1,
        "fails to validate parameters with actionset pg-basebackup: some parameters are undeclared in withParameters of actionSet pg-basebackup"
    );
}

#[test]
fn declared_parameter_becomes_env_of_the_backup_job() {
    let mut o = observed();
    o.backup = backup(json!({"spec": {"parameters": [{"name": "tables", "value": "t1"}]}}));
    o.actionset = Some(actionset(json!({"spec": {
        "backup": {"withParameters": ["tables"], "preBackup": []},
        "parametersSchema": {"openAPIV3Schema": {"type": "object", "properties": {"tables": {"type": "string"}}}}
    }})));
    let plan = step(&mut o, now());
    let (_, action) = dispatched(&plan.intents)[0];
    assert!(env_of(&job_of(action)).contains(&("tables".into(), "t1".into())));
}

#[test]
fn a_parameter_value_outside_the_schema_fails_the_backup_naming_it() {
    let mut o = observed();
    o.backup = backup(json!({"spec": {"parameters": [{"name": "threads", "value": "64"}]}}));
    o.actionset = Some(actionset(json!({"spec": {
        "backup": {"withParameters": ["threads"], "preBackup": []},
        "parametersSchema": {"openAPIV3Schema": {"type": "object", "properties":
            {"threads": {"type": "integer", "minimum": 1, "maximum": 16}}}}
    }})));
    let (phase, reason) = failure(&step(&mut o, now()));
    assert_eq!(phase, Some(BackupPhase::Failed));
    assert!(
        reason.starts_with("fails to validate parameters with actionset pg-basebackup: parameter threads value \"64\" does not match the parametersSchema"),
        "{reason}"
    );
    assert!(reason.contains("less than or equal to 16"), "{reason}");
}

#[test]
fn missing_encryption_secret_fails_the_backup() {
    let mut o = observed();
    o.encryption_passphrase = Some(Err("secret default/enc has no key passphrase".into()));
    assert_eq!(
        failure(&step(&mut o, now())).1,
        "failed to validate backupPolicy's encryption config: secret default/enc has no key passphrase"
    );
}

#[test]
fn prechecking_repository_is_waited_for_instead_of_failing() {
    let mut o = observed();
    o.repos = vec![default_repo("repo1", "PreChecking")];
    o.policy = Some(policy(json!({"spec": {"backupRepoName": "repo1"}})));
    let plan = step(&mut o, now());
    assert_eq!(plan.status, None);
    assert!(plan.requeue.is_some());
    assert!(dispatched(&plan.intents).is_empty());
}

#[test]
fn failed_repository_fails_the_backup() {
    let mut o = observed();
    o.repos = vec![default_repo("repo1", "Failed")];
    o.policy = Some(policy(json!({"spec": {"backupRepoName": "repo1"}})));
    assert_eq!(
        failure(&step(&mut o, now())).1,
        "the backup repository repo1 is not ready"
    );
}

#[test]
fn missing_named_repository_fails_the_backup() {
    let mut o = observed();
    o.policy = Some(policy(json!({"spec": {"backupRepoName": "elsewhere"}})));
    assert_eq!(
        failure(&step(&mut o, now())).1,
        "backup repo elsewhere not found"
    );
}

#[test]
fn no_default_repository_fails_the_backup() {
    let mut o = observed();
    o.repos = vec![repo("repo1", "Ready").path_prefix("prod")];
    assert_eq!(
        failure(&step(&mut o, now())).1,
        "no default BackupRepo found"
    );
}

#[test]
fn two_default_repositories_fail_the_backup() {
    let mut o = observed();
    o.repos = vec![default_repo("a", "Ready"), default_repo("b", "Ready")];
    assert_eq!(
        failure(&step(&mut o, now())).1,
        "multiple default BackupRepo found, both a and b are default"
    );
}

#[test]
fn repository_access_not_rendered_yet_is_waited_for() {
    let mut o = observed();
    o.repo_access = None;
    let plan = step(&mut o, now());
    assert_eq!(plan.status, None);
    assert!(plan.requeue.is_some());
}

#[test]
fn mount_repository_without_its_pvc_labels_the_backup_and_waits() {
    let mut o = observed();
    o.repo_access = Some(mount_access("repo1", "pvc-repo1-abcdef"));
    let plan = step(&mut o, now());
    assert_eq!(plan.status, None, "the backup does not start yet");
    assert!(dispatched(&plan.intents).is_empty());
    assert!(plan.requeue.is_some());
    let labels = o.backup.metadata.labels.clone().unwrap_or_default();
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
    let again = step(&mut o, later(2));
    assert!(
        !again
            .intents
            .iter()
            .any(|i| matches!(i, Intent::PatchMeta { .. } | Intent::Event { .. })),
        "waiting again neither patches nor repeats the event: {:?}",
        again.intents
    );
}

#[test]
fn mount_repository_backup_starts_once_its_pvc_exists_and_grants_the_claim() {
    let mut o = observed();
    o.repo_access = Some(mount_access("repo1", "pvc-repo1-abcdef"));
    o.claims = vec![claim("pvc-repo1-abcdef")];
    let started = step(&mut o, now());
    assert_eq!(
        dispatched(&started.intents).len(),
        1,
        "the pre-backup hook runs"
    );
    report(
        &mut o,
        "dp-prebackup-0-0",
        "pg-0",
        ReportedPhase::Succeeded,
        None,
    );
    let plan = step(&mut o, later(1));
    let actions = dispatched(&plan.intents);
    let Some(pb::action::Kind::Job(job)) = &actions[0].1.kind else {
        panic!("not a job");
    };
    let grant = job.storage.clone().unwrap();
    assert_eq!(
        grant.mount_claim,
        Some(pb::MountClaim {
            namespace: "default".into(),
            name: "pvc-repo1-abcdef".into()
        })
    );
    assert!(grant.datasafed_config.is_empty());
    let job = job_of(actions[0].1);
    assert!(
        env_of(&job)
            .iter()
            .any(|(k, v)| k == "DATASAFED_LOCAL_BACKEND_PATH" && v == "/backupdata")
    );
}

#[test]
fn no_ready_pod_fails_with_the_policy_and_the_reason() {
    let mut o = observed();
    o.pods = vec![member("pg-0", "secondary").not_ready()];
    assert_eq!(
        failure(&step(&mut o, now())).1,
        "failed to get target pods by backup policy default/pg-policy: 1 pod(s) match the pod selector but none is Running and Ready"
    );
}

#[test]
fn fallback_selector_picks_the_primary_when_no_secondary_is_ready() {
    let mut o = observed();
    o.pods = vec![
        member("pg-0", "secondary").not_ready(),
        member("pg-1", "primary"),
    ];
    let plan = step(&mut o, now());
    let status = plan.status.unwrap();
    assert_eq!(
        status.target.unwrap().selected_target_pods,
        Some(vec!["pg-1".to_string()])
    );
}

#[test]
fn empty_targets_fail_the_backup() {
    let mut o = observed();
    let mut p = policy(json!({}));
    p.spec.target = None;
    o.policy = Some(p);
    assert_eq!(
        failure(&step(&mut o, now())).1,
        "backup target/targets can not be empty in backupPolicy \"pg-policy\""
    );
}

#[test]
fn skip_reconciliation_annotation_leaves_the_backup_alone() {
    let mut o = observed();
    o.backup = backup(json!({"metadata": {"annotations": {
        well_known::annotation::SKIP_RECONCILIATION: "TRUE"}}}));
    assert_eq!(plan(&o, now()), Plan::nothing());
}

#[test]
fn an_unparseable_retention_period_fails_the_backup_naming_the_field_and_value() {
    let mut o = observed();
    o.backup = backup(json!({"spec": {"retentionPeriod": "7days"}}));
    let plan = step(&mut o, now());
    let (phase, reason) = failure(&plan);
    assert_eq!(phase, Some(BackupPhase::Failed));
    assert!(
        reason.starts_with("spec.retentionPeriod \"7days\" is not a retention period"),
        "{reason}"
    );
    assert!(
        plan.intents
            .iter()
            .any(|i| matches!(i, Intent::Event { type_, message, .. }
                if *type_ == EventType::Warning && message.contains("spec.retentionPeriod \"7days\""))),
        "a Warning event names it: {:?}",
        plan.intents
    );
    // A valid one still starts the backup.
    o.backup = backup(json!({"spec": {"retentionPeriod": "7d"}}));
    let plan = step(&mut o, now());
    assert_eq!(plan.status.unwrap().phase, Some(BackupPhase::Running));
}

// ---------------------------------------------------------------- New phase: the plan

#[test]
fn new_backup_records_path_method_targets_and_every_action() {
    let mut o = observed();
    let plan = step(&mut o, now());
    let status = plan.status.unwrap();
    assert_eq!(status.phase, Some(BackupPhase::Running));
    assert_eq!(
        status.path.as_deref(),
        Some("/prod/default/mycluster/postgresql/b1")
    );
    assert_eq!(status.backup_repo_name.as_deref(), Some("repo1"));
    assert_eq!(status.format_version.as_deref(), Some("0.1.0"));
    assert_eq!(status.backup_method.unwrap().name, "basebackup");
    let names: Vec<_> = status
        .actions
        .iter()
        .flatten()
        .map(|a| (a.name.clone().unwrap(), a.target_pod_name.clone().unwrap()))
        .collect();
    assert_eq!(
        names,
        [
            ("dp-prebackup-0-0".to_string(), "pg-0".to_string()),
            ("dp-backup-0".to_string(), "pg-0".to_string()),
            ("dp-postbackup-0-0".to_string(), "pg-0".to_string()),
        ]
    );
}

#[test]
fn new_backup_gets_labels_and_the_finalizer() {
    let mut o = observed();
    let plan = step(&mut o, now());
    assert!(plan.intents.contains(&Intent::AddFinalizer));
    let labels = o.backup.metadata.labels.clone().unwrap();
    assert_eq!(labels[well_known::label::BACKUP_TYPE], "Full");
    assert_eq!(labels[well_known::label::BACKUP_POLICY], "pg-policy");
    assert_eq!(labels[well_known::label::BACKUP_REPO], "repo1");
    assert_eq!(
        labels[well_known::label::MANAGED_BY],
        "kubeblocks-dataprotection"
    );
    assert_eq!(labels[well_known::label::INSTANCE], "mycluster");
}

#[test]
fn first_action_is_running_in_the_status_it_is_dispatched_with() {
    let mut o = observed();
    let plan = step(&mut o, now());
    let status = plan.status.clone().unwrap();
    assert_eq!(
        entry(&status, "dp-prebackup-0-0").phase,
        Some(ActionPhase::Running)
    );
    assert_eq!(entry(&status, "dp-backup-0").phase, Some(ActionPhase::New));
    let sent = dispatched(&plan.intents);
    assert_eq!(sent.len(), 1);
    let (node, action) = sent[0];
    assert_eq!(node, "node-a");
    assert_eq!(action.id, action_id(UID, "dp-prebackup-0-0", "pg-0"));
    match &action.kind {
        Some(pb::action::Kind::Exec(exec)) => {
            assert_eq!(exec.command, ["psql", "-c", "CHECKPOINT"]);
            assert_eq!(exec.timeout_seconds, 30);
            assert_eq!(exec.container, "");
        }
        other => panic!("expected exec, got {other:?}"),
    }
}

#[test]
fn invalid_exec_timeout_fails_the_backup_naming_the_value() {
    let mut o = observed();
    o.actionset = Some(actionset(json!({"spec": {"backup": {"preBackup": [
        {"exec": {"command": ["true"], "timeout": "ten seconds"}}]}}})));
    let reason = failure(&step(&mut o, now())).1;
    assert!(reason.contains("\"ten seconds\""), "{reason}");
}

#[test]
fn hook_with_both_exec_and_job_fails_the_backup() {
    let mut o = observed();
    o.actionset = Some(actionset(json!({"spec": {"backup": {"preBackup": [
        {"exec": {"command": ["true"]}, "job": {"image": "x", "command": ["y"]}}]}}})));
    assert_eq!(
        failure(&step(&mut o, now())).1,
        "action dp-prebackup-0-0 should have only one of exec or job"
    );
}

// ---------------------------------------------------------------- Running phase

#[test]
fn completed_hook_dispatches_the_backup_data_job_in_the_same_reconcile() {
    let mut o = observed();
    step(&mut o, now());
    report(
        &mut o,
        "dp-prebackup-0-0",
        "pg-0",
        ReportedPhase::Succeeded,
        None,
    );
    let plan = step(&mut o, later(1));
    let status = plan.status.clone().unwrap();
    assert_eq!(
        entry(&status, "dp-prebackup-0-0").phase,
        Some(ActionPhase::Completed)
    );
    assert_eq!(
        entry(&status, "dp-backup-0").phase,
        Some(ActionPhase::Running)
    );
    assert!(plan.intents.contains(&Intent::Acknowledge {
        action_id: action_id(UID, "dp-prebackup-0-0", "pg-0")
    }));
    let sent = dispatched(&plan.intents);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].1.name, "dp-backup-0");
}

#[test]
fn backup_data_job_is_built_as_kubeblocks_builds_it() {
    let mut o = observed();
    step(&mut o, now());
    report(
        &mut o,
        "dp-prebackup-0-0",
        "pg-0",
        ReportedPhase::Succeeded,
        None,
    );
    let plan = step(&mut o, later(1));
    let (_, action) = dispatched(&plan.intents)[0];
    let job = job_of(action);
    assert_eq!(
        job.metadata.name.as_deref(),
        Some("dp-backup-0-b1-01234567")
    );
    assert_eq!(job.metadata.namespace.as_deref(), Some("default"));
    let labels = job.metadata.labels.clone().unwrap();
    assert_eq!(labels[well_known::label::BACKUP_NAME], "b1");
    let owner = &job.metadata.owner_references.clone().unwrap()[0];
    assert_eq!((owner.kind.as_str(), owner.uid.as_str()), ("Backup", UID));
    let spec = job.spec.as_ref().unwrap();
    assert_eq!(spec.backoff_limit, Some(1));
    let pod = spec.template.spec.as_ref().unwrap();
    assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
    let container = &pod.containers[0];
    assert_eq!(container.name, "backupdata");
    // The method env overrides the ActionSet's IMAGE_TAG, and the image sees the final value.
    assert_eq!(container.image.as_deref(), Some("postgres:16"));
    let mounts: Vec<_> = container
        .volume_mounts
        .iter()
        .flatten()
        .map(|m| (m.name.as_str(), m.mount_path.as_str()))
        .collect();
    assert_eq!(
        mounts,
        [
            ("manager-shared-volume", "/dp-manager"),
            ("data", "/var/lib/pg")
        ]
    );
    let volumes: Vec<_> = pod
        .volumes
        .iter()
        .flatten()
        .map(|v| v.name.as_str())
        .collect();
    assert_eq!(volumes, ["manager-shared-volume", "data"]);
    assert_eq!(
        pod.tolerations.as_ref().unwrap()[0].key.as_deref(),
        Some("dedicated")
    );
}

#[test]
fn backup_data_env_follows_kubeblocks_order_with_later_values_winning() {
    let mut o = observed();
    step(&mut o, now());
    report(
        &mut o,
        "dp-prebackup-0-0",
        "pg-0",
        ReportedPhase::Succeeded,
        None,
    );
    let plan = step(&mut o, later(1));
    let env = env_of(&job_of(dispatched(&plan.intents)[0].1));
    let names: Vec<&str> = env.iter().map(|(n, _)| n.as_str()).collect();
    let position = |name: &str| names.iter().position(|n| *n == name).unwrap();
    assert!(position("PGDATA") < position("DP_BACKUP_NAME"));
    assert!(position("DP_DB_PASSWORD") < position("DATA_DIR"));
    let get = |name: &str| env.iter().rev().find(|(n, _)| n == name).unwrap().1.clone();
    assert_eq!(get("DP_BACKUP_NAME"), "b1");
    assert_eq!(get("DP_TARGET_POD_NAME"), "pg-0");
    assert_eq!(get("DP_TARGET_POD_ROLE"), "secondary");
    assert_eq!(
        get("DP_BACKUP_BASE_PATH"),
        "/prod/default/mycluster/postgresql/b1"
    );
    assert_eq!(
        get("DP_BACKUP_ROOT_PATH"),
        "/prod/default/mycluster/postgresql"
    );
    assert_eq!(get("DP_BACKUP_INFO_FILE"), "/dp-manager/backup.info");
    assert_eq!(get("DP_DB_HOST"), "10.0.0.7");
    assert_eq!(get("DP_DB_PORT"), "5432");
    assert_eq!(get("DP_DB_USER"), "secret:pg-account/username");
    assert_eq!(get("DP_DB_PASSWORD"), "secret:pg-account/password");
    assert_eq!(get("KB_CLUSTER_NAME"), "mycluster");
    assert_eq!(get("KB_NAMESPACE"), "default");
    assert_eq!(get("IMAGE_TAG"), "16");
    assert_eq!(names.iter().filter(|n| **n == "IMAGE_TAG").count(), 1);
}

#[test]
fn backup_data_job_gets_a_grant_for_its_own_path_and_reads_of_its_siblings() {
    let mut o = observed();
    step(&mut o, now());
    report(
        &mut o,
        "dp-prebackup-0-0",
        "pg-0",
        ReportedPhase::Succeeded,
        None,
    );
    let plan = step(&mut o, later(1));
    let Some(pb::action::Kind::Job(job)) = &dispatched(&plan.intents)[0].1.kind else {
        panic!("not a job")
    };
    let grant = job.storage.clone().unwrap();
    assert_eq!(
        grant.read_write_prefix,
        "/prod/default/mycluster/postgresql/b1"
    );
    assert_eq!(
        grant.read_only_prefixes,
        ["/prod/default/mycluster/postgresql"]
    );
    assert_eq!(grant.repo_name, "repo1");
    assert!(job.collect_backup_info);
    assert_eq!(job.info_volume, "manager-shared-volume");
    // The storage configuration goes only to the agent, never into the Job.
    assert!(!job.job_json.contains("S3CR3T"));
}

#[test]
fn failed_hook_with_on_error_continue_keeps_the_backup_running() {
    let mut o = observed();
    o.actionset = Some(actionset(json!({"spec": {"backup": {"preBackup": [
        {"exec": {"command": ["false"], "onError": "Continue"}}]}}})));
    step(&mut o, now());
    report(
        &mut o,
        "dp-prebackup-0-0",
        "pg-0",
        ReportedPhase::Failed,
        None,
    );
    let plan = step(&mut o, later(1));
    let status = plan.status.clone().unwrap();
    assert_eq!(status.phase, Some(BackupPhase::Running));
    assert_eq!(
        entry(&status, "dp-prebackup-0-0").phase,
        Some(ActionPhase::Failed)
    );
    assert_eq!(
        entry(&status, "dp-prebackup-0-0").failure_reason.as_deref(),
        Some("exit code 3")
    );
    assert_eq!(dispatched(&plan.intents)[0].1.name, "dp-backup-0");
}

/// Runs the preBackup hook to success: backupData is dispatched.
fn run_pre_backup(o: &mut Observed) {
    step(o, now());
    report(
        o,
        "dp-prebackup-0-0",
        "pg-0",
        ReportedPhase::Succeeded,
        None,
    );
    step(o, later(1));
}

/// Runs the preBackup hook to success and backupData to failure; the plan after the failure.
fn fail_backup_data(o: &mut Observed) -> Plan<BackupStatus> {
    run_pre_backup(o);
    report(o, "dp-backup-0", "pg-0", ReportedPhase::Failed, None);
    step(o, later(2))
}

/// `backupData.onError: Continue` (§K8 S2): a failed backupData does not fail the backup; the
/// postBackup hooks run and the backup goes on to its manifest, the failure kept in
/// `status.actions` and an `ActionFailed` Warning.
#[test]
fn failed_backup_data_with_on_error_continue_lets_the_backup_go_on() {
    let mut o = observed();
    let mut set = o.actionset.clone().unwrap();
    set.spec.backup.as_mut().unwrap().backup_data.job.on_error =
        Some(cairn_api::action::ActionErrorMode::Continue);
    o.actionset = Some(set);
    let plan = fail_backup_data(&mut o);
    let status = plan.status.clone().unwrap();
    assert_eq!(status.phase, Some(BackupPhase::Running));
    assert_eq!(
        entry(&status, "dp-backup-0").phase,
        Some(ActionPhase::Failed)
    );
    assert!(
        events(&plan.intents)
            .iter()
            .any(|(_, r, m)| r == "ActionFailed" && m.contains("dp-backup-0")),
        "{:?}",
        plan.intents
    );
    assert_eq!(dispatched(&plan.intents)[0].1.name, "dp-postbackup-0-0");
    report(
        &mut o,
        "dp-postbackup-0-0",
        "pg-0",
        ReportedPhase::Succeeded,
        None,
    );
    let plan = step(&mut o, later(3));
    let sent = dispatched(&plan.intents);
    assert!(
        matches!(&sent[0].1.kind, Some(pb::action::Kind::PutObject(_))),
        "the manifest is written next: {sent:?}"
    );
}

/// Without `onError` (or with `Fail`), a failed backupData fails the backup, as in KubeBlocks.
#[test]
fn failed_backup_data_without_on_error_fails_the_backup() {
    let mut o = observed();
    let plan = fail_backup_data(&mut o);
    let status = plan.status.clone().unwrap();
    assert_eq!(status.phase, Some(BackupPhase::Failed));
    assert!(dispatched(&plan.intents).is_empty());
}

/// The dispatches of backupData (`dp-backup-0`) in `plan`, by node.
fn backup_data_nodes(plan: &Plan<BackupStatus>) -> Vec<String> {
    dispatched(&plan.intents)
        .into_iter()
        .filter(|(_, a)| a.name == "dp-backup-0")
        .map(|(node, _)| node.to_string())
        .collect()
}

/// Only backupData, with `runOnTargetPodNode: false`; agents on node-a (the target's) and node-b.
fn backup_data_anywhere() -> Observed {
    let mut o = observed();
    o.actionset = Some(actionset(
        json!({"spec": {"backup": {"preBackup": null, "postBackup": null,
        "backupData": {"runOnTargetPodNode": false}}}}),
    ));
    o.agents = agents(&["node-a", "node-b"]);
    o
}

/// A backupData Job with `runOnTargetPodNode: false` (the default) mounts none of the target's
/// volumes and may run on any node with a connected agent: the target's when its agent is
/// there, else another, remembered in `cairn.io/backup-nodes` so a later reconcile sends it to
/// the same agent (ARCHITECTURE.md §K2.12).
#[test]
fn backup_data_not_run_on_the_target_node_goes_to_any_connected_agent_and_stays_there() {
    let mut o = backup_data_anywhere();
    o.agents.disconnect("node-a", now());
    let plan = step(&mut o, now());
    assert_eq!(backup_data_nodes(&plan), ["node-b"]);
    let Some(pb::action::Kind::Job(job)) = &dispatched(&plan.intents)[0].1.kind else {
        panic!("not a job")
    };
    let job: k8s_openapi::api::batch::v1::Job = serde_json::from_str(&job.job_json).unwrap();
    let spec = job.spec.unwrap().template.spec.unwrap();
    let volumes: Vec<String> = spec.volumes.unwrap().into_iter().map(|v| v.name).collect();
    assert_eq!(
        volumes,
        ["manager-shared-volume"],
        "no target volume is mounted"
    );
    assert!(spec.node_name.is_none() && spec.affinity.is_none() && spec.node_selector.is_none());
    let recorded = o.backup.metadata.annotations.clone().unwrap_or_default();
    assert!(
        recorded[well_known::annotation::BACKUP_NODES].contains("\"node-b\""),
        "{recorded:?}"
    );
    // node-a's agent comes back: the running action is still sent to node-b, not twice.
    o.agents = agents(&["node-a", "node-b"]);
    let plan = step(&mut o, later(1));
    assert_eq!(backup_data_nodes(&plan), ["node-b"]);
}

#[test]
fn backup_data_not_run_on_the_target_node_prefers_the_targets_agent() {
    let mut o = backup_data_anywhere();
    let plan = step(&mut o, now());
    assert_eq!(backup_data_nodes(&plan), ["node-a"]);
}

/// `runOnTargetPodNode: true` mounts the target's volumes: the Job stays on the target's node
/// even while its agent is away (and fails when the node is declared lost).
#[test]
fn backup_data_run_on_the_target_node_is_pinned_to_it() {
    let mut o = observed();
    o.actionset = Some(actionset(
        json!({"spec": {"backup": {"preBackup": null, "postBackup": null}}}),
    ));
    o.agents = agents(&["node-a", "node-b"]);
    o.agents.disconnect("node-a", now());
    let plan = step(&mut o, now());
    assert_eq!(backup_data_nodes(&plan), ["node-a"]);
    assert!(
        o.backup
            .metadata
            .annotations
            .as_ref()
            .is_none_or(|a| !a.contains_key(well_known::annotation::BACKUP_NODES))
    );
}

#[test]
fn failed_hook_with_on_error_fail_fails_the_backup_and_skips_the_rest() {
    let mut o = observed();
    step(&mut o, now());
    report(
        &mut o,
        "dp-prebackup-0-0",
        "pg-0",
        ReportedPhase::Failed,
        None,
    );
    let plan = step(&mut o, later(1));
    let status = plan.status.clone().unwrap();
    assert_eq!(status.phase, Some(BackupPhase::Failed));
    assert_eq!(
        status.failure_reason.as_deref(),
        Some(
            "there are failed actions, you can obtain the more informations in the status.actions"
        )
    );
    assert_eq!(entry(&status, "dp-backup-0").phase, Some(ActionPhase::New));
    assert!(dispatched(&plan.intents).is_empty());
    assert!(status.completion_timestamp.is_some());
}

#[test]
fn running_action_is_dispatched_again_after_a_control_plane_restart() {
    let mut o = observed();
    step(&mut o, now());
    // Nothing reported (the hub is empty after a restart): the action is re-sent, same id.
    let plan = step(&mut o, later(30));
    let sent = dispatched(&plan.intents);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].1.id, action_id(UID, "dp-prebackup-0-0", "pg-0"));
    let status = plan.status.unwrap();
    assert_eq!(
        entry(&status, "dp-prebackup-0-0").start_timestamp,
        Some(Time(now()))
    );
}

#[test]
fn agent_disconnected_within_the_grace_period_keeps_the_action_waiting() {
    let mut o = observed();
    step(&mut o, now());
    o.agents.disconnect("node-a", later(10));
    let plan = step(&mut o, later(60));
    assert_eq!(plan.status.unwrap().phase, Some(BackupPhase::Running));
}

#[test]
fn agent_lost_past_the_grace_period_fails_the_action_with_the_reason() {
    let mut o = observed();
    step(&mut o, now());
    o.agents.disconnect("node-a", later(10));
    let plan = step(&mut o, later(10 + 301));
    let status = plan.status.unwrap();
    assert_eq!(status.phase, Some(BackupPhase::Failed));
    assert_eq!(
        entry(&status, "dp-prebackup-0-0").failure_reason.as_deref(),
        Some(
            "agent on node \"node-a\" has been disconnected for 5m1s; the action's outcome is unknown"
        )
    );
}

#[test]
fn an_action_that_succeeded_before_its_agent_was_lost_still_counts_as_completed() {
    let mut o = observed();
    step(&mut o, now());
    report(
        &mut o,
        "dp-prebackup-0-0",
        "pg-0",
        ReportedPhase::Succeeded,
        None,
    );
    o.agents.disconnect("node-a", later(10));
    let plan = step(&mut o, later(10 + 301));
    let status = plan.status.unwrap();
    assert_eq!(
        entry(&status, "dp-prebackup-0-0").phase,
        Some(ActionPhase::Completed)
    );
    assert!(plan.intents.contains(&Intent::Acknowledge {
        action_id: action_id(UID, "dp-prebackup-0-0", "pg-0")
    }));
    // The next action is lost with its node at once: it fails, and the Backup with it.
    assert_eq!(status.phase, Some(BackupPhase::Failed));
    assert_eq!(
        entry(&status, "dp-backup-0").failure_reason.as_deref(),
        Some(
            "agent on node \"node-a\" has been disconnected for 5m1s; the action's outcome is unknown"
        )
    );
}

#[test]
fn backup_info_is_merged_into_the_status() {
    let mut o = observed();
    step(&mut o, now());
    report(
        &mut o,
        "dp-prebackup-0-0",
        "pg-0",
        ReportedPhase::Succeeded,
        None,
    );
    step(&mut o, later(1));
    let info = r#"{"totalSize":"1048576","timeRange":{"start":"2026-11-22T10:00:01Z","end":"2026-11-22T10:00:04Z"},"extras":[{"lsn":"0/3000"}]}"#;
    report(
        &mut o,
        "dp-backup-0",
        "pg-0",
        ReportedPhase::Succeeded,
        Some(info),
    );
    let plan = step(&mut o, later(5));
    let status = plan.status.unwrap();
    assert_eq!(status.total_size.as_deref(), Some("1048576"));
    assert_eq!(
        status
            .time_range
            .as_ref()
            .unwrap()
            .end
            .as_ref()
            .map(|t| t.0.to_string()),
        Some("2026-11-22T10:00:04Z".into())
    );
    assert_eq!(status.extras.unwrap()[0]["lsn"], "0/3000");
    let data = entry(o.backup.status.as_ref().unwrap(), "dp-backup-0");
    assert_eq!(data.total_size.as_deref(), Some("1048576"));
    assert_eq!(
        data.object_ref.as_ref().unwrap().name.as_deref(),
        Some("dp-backup-0-b1-01234567")
    );
}

#[test]
fn numeric_total_size_in_the_info_file_is_accepted() {
    let mut status = BackupStatus::default();
    backup_info::merge(&mut status, r#"{"totalSize": 42}"#).unwrap();
    assert_eq!(status.total_size.as_deref(), Some("42"));
}

#[test]
fn info_file_cannot_change_the_phase_or_the_path() {
    let mut status = BackupStatus {
        phase: Some(BackupPhase::Running),
        path: Some("/ns/b1".into()),
        ..Default::default()
    };
    backup_info::merge(
        &mut status,
        r#"{"phase": "Completed", "path": "/elsewhere"}"#,
    )
    .unwrap();
    assert_eq!(status.phase, Some(BackupPhase::Running));
    assert_eq!(status.path.as_deref(), Some("/ns/b1"));
}

#[test]
fn info_file_cannot_move_the_deduplicating_repository_or_drop_the_snapshot_copies() {
    let copy = cairn_api::backup::VolumeSnapshotCopy {
        volume_snapshot_name: "b1-0-data".into(),
        repository_path: "ns/b1/b1-0-data".into(),
        snapshot_id: "ab".repeat(32),
        ..Default::default()
    };
    let mut status = BackupStatus {
        phase: Some(BackupPhase::Running),
        kopia_repo_path: Some("/ns/kopia".into()),
        volume_snapshot_copies: Some(vec![copy.clone()]),
        ..Default::default()
    };
    backup_info::merge(
        &mut status,
        r#"{"kopiaRepoPath": "/elsewhere", "volumeSnapshotCopies": []}"#,
    )
    .unwrap();
    assert_eq!(status.kopia_repo_path.as_deref(), Some("/ns/kopia"));
    assert_eq!(status.volume_snapshot_copies, Some(vec![copy]));
}

#[test]
fn garbage_info_file_is_reported_and_does_not_fail_the_backup() {
    let mut o = observed();
    o.actionset = Some(actionset(
        json!({"spec": {"backup": {"preBackup": [], "postBackup": []}}}),
    ));
    step(&mut o, now());
    report(
        &mut o,
        "dp-backup-0",
        "pg-0",
        ReportedPhase::Succeeded,
        Some("not json"),
    );
    let plan = step(&mut o, later(1));
    assert!(plan.intents.iter().any(|i| matches!(i,
        Intent::Event { reason, .. } if reason == "InvalidBackupInfo")));
    assert_ne!(plan.status.unwrap().phase, Some(BackupPhase::Failed));
}

fn run_to_manifest(o: &mut Observed) -> Plan<BackupStatus> {
    run_pre_backup(o);
    report(
        o,
        "dp-backup-0",
        "pg-0",
        ReportedPhase::Succeeded,
        Some(r#"{"totalSize":"2048"}"#),
    );
    step(o, later(5));
    report(
        o,
        "dp-postbackup-0-0",
        "pg-0",
        ReportedPhase::Succeeded,
        None,
    );
    step(o, later(6))
}

#[test]
fn finished_actions_write_kubeblocks_backup_json_before_completing() {
    let mut o = observed();
    let plan = run_to_manifest(&mut o);
    assert_eq!(
        plan.status.as_ref().unwrap().phase,
        Some(BackupPhase::Running)
    );
    let sent = dispatched(&plan.intents);
    assert_eq!(sent.len(), 1);
    let Some(pb::action::Kind::PutObject(put)) = &sent[0].1.kind else {
        panic!("expected put_object")
    };
    assert_eq!(
        put.path,
        "/prod/default/mycluster/postgresql/b1/kubeblocks-backup.json"
    );
    let manifest: Backup = serde_json::from_slice(&put.content).unwrap();
    assert_eq!(manifest.status.unwrap().phase, Some(BackupPhase::Completed));
}

#[test]
fn written_manifest_completes_the_backup_with_duration_size_and_event() {
    let mut o = observed();
    o.backup = backup(json!({"spec": {"retentionPeriod": "7d"}}));
    run_to_manifest(&mut o);
    report(&mut o, MANIFEST_ACTION, "", ReportedPhase::Succeeded, None);
    let plan = step(&mut o, later(8));
    let status = plan.status.clone().unwrap();
    assert_eq!(status.phase, Some(BackupPhase::Completed));
    assert_eq!(status.total_size.as_deref(), Some("2048"));
    assert_eq!(status.duration.as_deref(), Some("8s"));
    assert_eq!(status.completion_timestamp, Some(Time(later(8))));
    assert_eq!(
        status.expiration.map(|t| t.0.to_string()),
        Some("2026-11-29T10:00:08Z".into())
    );
    assert!(plan.intents.iter().any(|i| matches!(i,
        Intent::Event { type_: EventType::Normal, reason, .. } if reason == "CreatedBackup")));
}

#[test]
fn duplicate_result_for_a_finished_backup_is_only_acknowledged() {
    let mut o = observed();
    run_to_manifest(&mut o);
    report(&mut o, MANIFEST_ACTION, "", ReportedPhase::Succeeded, None);
    step(&mut o, later(8));
    let before = o.backup.status.clone();
    let plan = step(&mut o, later(9));
    assert_eq!(plan.status, None);
    assert_eq!(o.backup.status, before);
    assert!(
        plan.intents
            .iter()
            .all(|i| matches!(i, Intent::Acknowledge { .. }))
    );
    assert!(!plan.intents.is_empty());
}

#[test]
fn progress_is_summed_and_written_at_most_once_per_interval() {
    let mut o = observed();
    o.actionset = Some(actionset(json!({"spec": {"backup": {"preBackup": []}}})));
    step(&mut o, now());
    let id = action_id(UID, "dp-backup-0", "pg-0");
    o.agents.actions.insert(
        id.clone(),
        ReportedAction {
            phase: Some(ReportedPhase::Running),
            bytes_done: 1000,
            bytes_total: Some(4000),
            bytes_per_second: Some(500),
            ..Default::default()
        },
    );
    let plan = step(&mut o, later(1));
    let progress = plan.status.unwrap().progress.unwrap();
    assert_eq!(progress.bytes_done, 1000);
    assert_eq!(progress.eta_seconds, Some(6));
    o.agents.actions.get_mut(&id).unwrap().bytes_done = 1500;
    let plan = step(&mut o, later(1));
    assert_eq!(plan.status.unwrap().progress.unwrap().bytes_done, 1000);
    let plan = step(&mut o, later(2));
    assert_eq!(plan.status.unwrap().progress.unwrap().bytes_done, 1500);
}

#[test]
fn strategy_all_runs_every_pod_in_its_own_directory() {
    let mut o = observed();
    o.policy = Some(policy(json!({"spec": {"target": {"podSelector": {
        "matchLabels": {"app": "pg", "role": null}, "fallbackLabelSelector": null, "strategy": "All"}}}})));
    o.actionset = Some(actionset(json!({"spec": {"backup": {"preBackup": []}}})));
    let plan = step(&mut o, now());
    let sent = dispatched(&plan.intents);
    assert_eq!(sent.len(), 2);
    let paths: Vec<String> = sent
        .iter()
        .map(|(_, a)| {
            env_of(&job_of(a))
                .into_iter()
                .find(|(n, _)| n == "DP_BACKUP_BASE_PATH")
                .unwrap()
                .1
        })
        .collect();
    assert_eq!(
        paths,
        [
            "/prod/default/mycluster/postgresql/b1/pg-0",
            "/prod/default/mycluster/postgresql/b1/pg-1"
        ]
    );
}

#[test]
fn named_targets_are_recorded_in_status_targets_and_prefix_action_names() {
    let mut o = observed();
    let mut p = policy(json!({}));
    let mut target = p.spec.target.take().unwrap();
    target.name = Some("shard1".into());
    p.spec.targets = Some(vec![target]);
    o.policy = Some(p);
    let plan = step(&mut o, now());
    let status = plan.status.unwrap();
    assert!(status.target.is_none());
    assert_eq!(
        status.targets.unwrap()[0].target.name.as_deref(),
        Some("shard1")
    );
    assert!(
        status
            .actions
            .unwrap()
            .iter()
            .any(|a| a.name.as_deref() == Some("dp-backup-shard1-0"))
    );
}

// ---------------------------------------------------------------- deletion

fn deleting(o: &mut Observed, policy: &str) {
    o.backup.metadata.deletion_timestamp = Some(Time(later(100)));
    o.backup.spec.deletion_policy = Some(serde_json::from_value(json!(policy)).unwrap());
}

fn completed(o: &mut Observed) {
    run_to_manifest(o);
    report(o, MANIFEST_ACTION, "", ReportedPhase::Succeeded, None);
    step(o, later(8));
    assert_eq!(
        o.backup.status.as_ref().unwrap().phase,
        Some(BackupPhase::Completed)
    );
}

#[test]
fn retain_policy_does_not_block_deletion_forever() {
    let mut o = observed();
    completed(&mut o);
    deleting(&mut o, "Retain");
    let plan = step(&mut o, later(101));
    assert!(plan.intents.contains(&Intent::RemoveFinalizer));
    assert!(dispatched(&plan.intents).is_empty());
}

#[test]
fn delete_policy_removes_the_backup_path_then_the_finalizer() {
    let mut o = observed();
    completed(&mut o);
    deleting(&mut o, "Delete");
    let plan = step(&mut o, later(101));
    assert_eq!(
        plan.status.as_ref().unwrap().phase,
        Some(BackupPhase::Deleting)
    );
    assert!(!plan.intents.contains(&Intent::RemoveFinalizer));
    let sent = dispatched(&plan.intents);
    let Some(pb::action::Kind::DeletePath(delete)) = &sent[0].1.kind else {
        panic!("expected delete_path")
    };
    assert_eq!(delete.path, "/prod/default/mycluster/postgresql/b1");
    assert_eq!(
        delete.storage.as_ref().unwrap().read_write_prefix,
        "/prod/default/mycluster/postgresql/b1"
    );
    report(
        &mut o,
        "dp-delete-files-0",
        "",
        ReportedPhase::Succeeded,
        None,
    );
    let plan = step(&mut o, later(102));
    assert!(plan.intents.contains(&Intent::RemoveFinalizer));
}

#[test]
fn failed_file_deletion_is_reported_and_retried_later_with_a_new_action() {
    let mut o = observed();
    completed(&mut o);
    deleting(&mut o, "Delete");
    step(&mut o, later(101));
    report(&mut o, "dp-delete-files-0", "", ReportedPhase::Failed, None);
    let plan = step(&mut o, later(102));
    let status = plan.status.clone().unwrap();
    assert!(
        status
            .deletion_failure_reason
            .unwrap()
            .contains("exit code 3")
    );
    assert!(!plan.intents.contains(&Intent::RemoveFinalizer));
    // Before the retry time nothing is dispatched; after it, attempt 1 goes out.
    let plan = step(&mut o, later(110));
    assert!(dispatched(&plan.intents).is_empty());
    let plan = step(&mut o, later(140));
    assert_eq!(dispatched(&plan.intents)[0].1.name, "dp-delete-files-1");
}

#[test]
fn pre_delete_job_runs_before_the_files_are_removed() {
    let mut o = observed();
    o.actionset = Some(actionset(json!({"spec": {"backup": {
        "preDelete": {"image": "tools:$(IMAGE_TAG)", "command": ["cleanup"]}}}})));
    completed(&mut o);
    deleting(&mut o, "Delete");
    let plan = step(&mut o, later(101));
    let sent = dispatched(&plan.intents);
    assert_eq!(sent[0].1.name, "dp-predelete-0");
    let job = job_of(sent[0].1);
    let container = &job.spec.unwrap().template.spec.unwrap().containers[0];
    assert_eq!(container.name, "deleter");
    assert_eq!(container.image.as_deref(), Some("tools:14"));
    report(&mut o, "dp-predelete-0", "", ReportedPhase::Succeeded, None);
    let plan = step(&mut o, later(102));
    assert_eq!(dispatched(&plan.intents)[0].1.name, "dp-delete-files-0");
}

#[test]
fn a_failed_pre_delete_job_is_retried_as_a_new_attempt_before_any_file_is_removed() {
    let mut o = observed();
    o.actionset = Some(actionset(json!({"spec": {"backup": {
        "preDelete": {"image": "tools:$(IMAGE_TAG)", "command": ["cleanup"]}}}})));
    completed(&mut o);
    deleting(&mut o, "Delete");
    step(&mut o, later(101));
    report(&mut o, "dp-predelete-0", "", ReportedPhase::Failed, None);
    let plan = step(&mut o, later(102));
    let reason = plan
        .status
        .clone()
        .unwrap()
        .deletion_failure_reason
        .unwrap();
    assert!(
        reason.starts_with("pre-delete job of backup b1 failed, it is retried in 30s"),
        "{reason}"
    );
    assert!(dispatched(&plan.intents).is_empty());
    assert!(!plan.intents.contains(&Intent::RemoveFinalizer));
    let plan = step(&mut o, later(140));
    assert_eq!(dispatched(&plan.intents)[0].1.name, "dp-predelete-1");
}

#[test]
fn a_backup_whose_repository_access_is_not_rendered_waits_and_says_why() {
    let mut o = observed();
    completed(&mut o);
    deleting(&mut o, "Delete");
    o.repo_access = None;
    let plan = step(&mut o, later(101));
    assert!(dispatched(&plan.intents).is_empty());
    assert!(!plan.intents.contains(&Intent::RemoveFinalizer));
    assert_eq!(plan.requeue, Some(deletion::RETRY_AFTER));
    assert_eq!(
        plan.status.unwrap().deletion_failure_reason.as_deref(),
        Some(
            "backup repository repo1 is not ready; the files under /prod/default/mycluster/postgresql/b1 will be deleted once it is"
        )
    );
}

#[test]
fn deleting_a_running_backup_cancels_its_actions_first() {
    let mut o = observed();
    step(&mut o, now());
    deleting(&mut o, "Delete");
    let plan = step(&mut o, later(101));
    let expected = action_id(UID, "dp-prebackup-0-0", "pg-0");
    assert!(
        plan.intents
            .iter()
            .any(|i| matches!(i, Intent::Cancel { action_id: id, .. }
        if *id == expected))
    );
    assert!(dispatched(&plan.intents).is_empty());
    report(
        &mut o,
        "dp-prebackup-0-0",
        "pg-0",
        ReportedPhase::Cancelled,
        None,
    );
    let plan = step(&mut o, later(102));
    assert!(matches!(
        dispatched(&plan.intents)[0].1.kind,
        Some(pb::action::Kind::DeletePath(_))
    ));
}

#[test]
fn backup_whose_repository_is_gone_is_released_with_a_warning() {
    let mut o = observed();
    completed(&mut o);
    deleting(&mut o, "Delete");
    o.repos.clear();
    let plan = step(&mut o, later(101));
    assert!(plan.intents.contains(&Intent::RemoveFinalizer));
    assert!(plan.intents.iter().any(|i| matches!(
        i,
        Intent::Event {
            type_: EventType::Warning,
            ..
        }
    )));
}

#[test]
fn path_without_the_backup_name_is_never_deleted() {
    let mut o = observed();
    completed(&mut o);
    deleting(&mut o, "Delete");
    o.backup.status.as_mut().unwrap().path = Some("/prod/default".into());
    let plan = step(&mut o, later(101));
    assert!(plan.intents.contains(&Intent::RemoveFinalizer));
    assert!(dispatched(&plan.intents).is_empty());
}

#[test]
fn deletion_waits_for_a_connected_agent() {
    let mut o = observed();
    completed(&mut o);
    deleting(&mut o, "Delete");
    o.agents.nodes.clear();
    let plan = step(&mut o, later(101));
    assert!(dispatched(&plan.intents).is_empty());
    assert!(
        plan.status
            .unwrap()
            .deletion_failure_reason
            .unwrap()
            .contains("no node agent")
    );
}

// ---------------------------------------------------------------- expiration

#[test]
fn running_backup_expires_from_its_start_and_completed_from_its_completion() {
    let mut b = backup(json!({"spec": {"retentionPeriod": "1d"}}));
    let running = BackupStatus {
        phase: Some(BackupPhase::Running),
        start_timestamp: Some(Time(now())),
        ..Default::default()
    };
    assert_eq!(
        expiration(&b, &running).map(|t| t.0.to_string()),
        Some("2026-11-23T10:00:00Z".into())
    );
    let done = BackupStatus {
        phase: Some(BackupPhase::Completed),
        start_timestamp: Some(Time(now())),
        completion_timestamp: Some(Time(later(3600))),
        ..Default::default()
    };
    assert_eq!(
        expiration(&b, &done).map(|t| t.0.to_string()),
        Some("2026-11-23T11:00:00Z".into())
    );
    b.spec.retention_period = None;
    assert_eq!(expiration(&b, &done), None);
}

#[test]
fn completed_backup_deletes_its_jobs_as_kubeblocks_does() {
    let mut o = observed();
    run_to_manifest(&mut o);
    report(&mut o, MANIFEST_ACTION, "", ReportedPhase::Succeeded, None);
    let plan = step(&mut o, later(8));
    assert!(plan.intents.contains(&Intent::Delete {
        api_version: "batch/v1".into(),
        kind: "Job".into(),
        namespace: Some("default".into()),
        name: "dp-backup-0-b1-01234567".into(),
    }));
}

#[test]
fn bytes_of_a_job_that_finished_between_two_reconciles_are_counted() {
    let mut o = observed();
    o.actionset = Some(actionset(
        json!({"spec": {"backup": {"preBackup": [], "postBackup": []}}}),
    ));
    step(&mut o, now());
    let id = action_id(UID, "dp-backup-0", "pg-0");
    o.agents.actions.insert(
        id,
        ReportedAction {
            phase: Some(ReportedPhase::Succeeded),
            bytes_done: 5000,
            ..Default::default()
        },
    );
    let plan = step(&mut o, later(2));
    assert_eq!(plan.status.unwrap().progress.unwrap().bytes_done, 5000);
}

#[test]
fn the_final_count_of_a_job_finishing_within_the_progress_interval_is_kept() {
    let mut o = observed();
    o.actionset = Some(actionset(
        json!({"spec": {"backup": {"preBackup": [], "postBackup": []}}}),
    ));
    step(&mut o, now());
    let id = action_id(UID, "dp-backup-0", "pg-0");
    o.agents.actions.insert(
        id.clone(),
        ReportedAction {
            phase: Some(ReportedPhase::Running),
            bytes_done: 1000,
            ..Default::default()
        },
    );
    let plan = step(&mut o, later(1));
    assert_eq!(plan.status.unwrap().progress.unwrap().bytes_done, 1000);
    let report = o.agents.actions.get_mut(&id).unwrap();
    report.phase = Some(ReportedPhase::Succeeded);
    report.bytes_done = 5000;
    let plan = step(&mut o, later(1));
    let progress = plan.status.unwrap().progress.unwrap();
    assert_eq!(progress.bytes_done, 5000);
}

#[test]
fn a_reporting_action_is_looked_at_again_after_the_progress_interval() {
    // Progress reports trigger no reconcile: the planner's requeue keeps status.progress live.
    let mut o = observed();
    o.actionset = Some(actionset(
        json!({"spec": {"backup": {"preBackup": [], "postBackup": []}}}),
    ));
    o.settings.progress_interval = std::time::Duration::from_millis(700);
    step(&mut o, now());
    let plan = step(&mut o, later(1));
    assert_eq!(
        plan.requeue,
        Some(
            o.settings
                .wait_requeue
                .max(std::time::Duration::from_secs(5))
        ),
        "dispatched, nothing reported yet: the ordinary wait"
    );
    let id = action_id(UID, "dp-backup-0", "pg-0");
    o.agents.actions.insert(
        id.clone(),
        ReportedAction {
            phase: Some(ReportedPhase::Running),
            bytes_done: 1000,
            ..Default::default()
        },
    );
    let plan = step(&mut o, later(2));
    assert_eq!(plan.requeue, Some(std::time::Duration::from_millis(700)));
    assert_eq!(plan.status.unwrap().progress.unwrap().bytes_done, 1000);
    o.agents.actions.get_mut(&id).unwrap().bytes_done = 3000;
    let plan = step(&mut o, later(3));
    assert_eq!(plan.status.unwrap().progress.unwrap().bytes_done, 3000);
}

#[test]
fn progress_without_any_report_claims_no_total() {
    let mut o = observed();
    o.actionset = Some(actionset(json!({"spec": {"backup": {"preBackup": []}}})));
    step(&mut o, now());
    let status = o.backup.status.as_mut().unwrap();
    status.progress = Some(
        serde_json::from_value(json!({"bytesDone": 10, "updateTime": "2020-01-01T00:00:00Z"}))
            .unwrap(),
    );
    let plan = step(&mut o, later(5));
    let progress = plan
        .status
        .and_then(|s| s.progress)
        .expect("the previous progress stays");
    assert_eq!(progress.bytes_done, 10);
    assert_eq!(progress.bytes_total, None);
}
