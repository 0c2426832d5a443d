//! Table tests of the BackupRepo planner: builders here, one behaviour per test in `tool`,
//! `mount` and `deletion`, named by what a user sees.

mod deletion;
mod mount;
mod tool;

use std::collections::BTreeMap;
use std::time::Duration;

use cairn_api::backup::Backup;
use cairn_api::backup_repo::{BackupRepo, BackupRepoPhase, BackupRepoStatus};
use cairn_api::restore::Restore;
use cairn_api::storage_provider::StorageProvider;
use cairn_api::well_known;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use serde_json::{Value, json};

use super::*;
use crate::plan::agent_view::{AgentView, NodeState, ReportedAction, ReportedPhase};
use crate::plan::intent::{EventType, Intent};

pub(super) const UID: &str = "5b7c1c0e-aaaa-4000-8000-000000000001";
pub(super) const SECRET_KEY: &str = "wJalrXUtnFEMI-K7MDENG-S3CR3T";
pub(super) const CONTROL_NS: &str = "cairn-system";

pub(super) fn now() -> Timestamp {
    "2026-11-22T10:00:00Z".parse().unwrap()
}

pub(super) fn later(secs: i64) -> Timestamp {
    now()
        .checked_add(jiff::SignedDuration::from_secs(secs))
        .unwrap()
}

pub(super) fn merged<T: serde::de::DeserializeOwned>(mut base: Value, extra: Value) -> T {
    json_patch::merge(&mut base, &extra);
    serde_json::from_value(base).unwrap()
}

/// A Tool repository on the `s3` provider, with a credential Secret.
pub(super) fn repo(extra: Value) -> BackupRepo {
    merged(
        json!({
            "apiVersion": "dataprotection.kubeblocks.io/v1alpha1",
            "kind": "BackupRepo",
            "metadata": {"name": "repo1", "uid": UID, "generation": 1,
                         "finalizers": [well_known::FINALIZER]},
            "spec": {
                "storageProviderRef": "s3",
                "accessMethod": "Tool",
                "pvReclaimPolicy": "Retain",
                "volumeCapacity": "20Gi",
                "pathPrefix": "prod",
                "config": {"bucket": "backups", "region": "eu-west-1"},
                "credential": {"name": "s3-credential", "namespace": CONTROL_NS}
            }
        }),
        extra,
    )
}

/// An S3 provider written for these tests: datasafed, CSI Secret and StorageClass templates.
pub(super) fn s3_provider(extra: Value) -> StorageProvider {
    merged(
        json!({
            "apiVersion": "dataprotection.kubeblocks.io/v1alpha1",
            "kind": "StorageProvider",
            "metadata": {"name": "s3"},
            "spec": {
                "csiDriverName": "ru.yandex.s3.csi",
                "datasafedConfigTemplate": concat!(
                    "[storage]\n",
                    "type = s3\n",
                    "provider = AWS\n",
                    "access_key_id = {{ index .Parameters \"accessKeyId\" }}\n",
                    "secret_access_key = {{ index .Parameters \"secretAccessKey\" }}\n",
                    "region = {{ index .Parameters \"region\" }}\n",
                    "root = {{ index .Parameters \"bucket\" }}\n",
                    "no_check_certificate = {{ index .Parameters \"insecure\" }}\n"),
                "csiDriverSecretTemplate": concat!(
                    "accessKeyID: {{ index .Parameters \"accessKeyId\" }}\n",
                    "secretAccessKey: {{ index .Parameters \"secretAccessKey\" }}\n"),
                "storageClassTemplate": concat!(
                    "provisioner: ru.yandex.s3.csi\n",
                    "parameters:\n",
                    "  bucket: {{ index .Parameters \"bucket\" }}\n",
                    "  csi.storage.k8s.io/node-publish-secret-name: {{ .CSIDriverSecretRef.Name }}\n",
                    "  csi.storage.k8s.io/node-publish-secret-namespace: {{ .CSIDriverSecretRef.Namespace }}\n"),
                "parametersSchema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "bucket": {"type": "string"},
                    "region": {"type": "string"},
                    "accessKeyId": {"type": "string"},
                    "secretAccessKey": {"type": "string"},
                    "insecure": {"type": "boolean", "default": false}
                }}, "credentialFields": ["accessKeyId", "secretAccessKey"]}
            },
            "status": {"phase": "Ready", "conditions": [{
                "type": "CSIDriverInstalled", "status": "True", "reason": "CSIDriverObjectFound",
                "message": "", "lastTransitionTime": "2026-11-22T09:00:00Z"}]}
        }),
        extra,
    )
}

/// A PVC-template provider (no CSI driver), as standalone Mount repositories use.
pub(super) fn pvc_provider(extra: Value) -> StorageProvider {
    merged(
        json!({
            "apiVersion": "dataprotection.kubeblocks.io/v1alpha1",
            "kind": "StorageProvider",
            "metadata": {"name": "pvc"},
            "spec": {
                "persistentVolumeClaimTemplate": concat!(
                    "spec:\n",
                    "  storageClassName: {{ .Parameters.storageClassName | default \"\" }}\n",
                    "  accessModes:\n",
                    "    - {{ .Parameters.accessMode | default \"ReadWriteOnce\" }}\n"),
                "parametersSchema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "storageClassName": {"type": "string"},
                    "accessMode": {"type": "string", "default": "ReadWriteMany"}
                }}}
            },
            "status": {"phase": "Ready", "conditions": [{
                "type": "CSIDriverInstalled", "status": "True", "reason": "CSIDriverObjectFound",
                "message": "", "lastTransitionTime": "2026-11-22T09:00:00Z"}]}
        }),
        extra,
    )
}

pub(super) fn credential() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("accessKeyId".to_string(), "AKIAEXAMPLE".to_string()),
        ("secretAccessKey".to_string(), SECRET_KEY.to_string()),
    ])
}

pub(super) fn agents(connected: &[&str]) -> AgentView {
    AgentView {
        nodes: connected
            .iter()
            .map(|n| {
                (
                    n.to_string(),
                    NodeState {
                        connected: true,
                        since: now(),
                    },
                )
            })
            .collect(),
        grace: Duration::from_secs(300),
        hub_started: Some(now()),
        ..Default::default()
    }
}

pub(super) fn settings() -> Settings {
    Settings {
        namespace: CONTROL_NS.into(),
        ..Settings::default()
    }
}

/// A Tool repository whose provider, Secret and agent are all there.
pub(super) fn observed() -> Observed {
    Observed {
        repo: repo(json!({})),
        provider: Some(s3_provider(json!({}))),
        legacy_provider: None,
        credential: Some(credential()),
        backups: Vec::new(),
        restores: Vec::new(),
        derived: Derived::default(),
        agents: agents(&["node-a"]),
        settings: settings(),
    }
}

/// A Mount repository on the PVC provider.
pub(super) fn observed_mount() -> Observed {
    let mut o = observed();
    o.repo = repo(
        json!({"spec": {"storageProviderRef": "pvc", "accessMethod": "Mount",
                                  "config": null, "credential": null}}),
    );
    o.provider = Some(pvc_provider(json!({})));
    o.credential = None;
    o
}

pub(super) fn backup(name: &str, namespace: &str, extra: Value) -> Backup {
    merged(
        json!({
            "apiVersion": "dataprotection.kubeblocks.io/v1alpha1",
            "kind": "Backup",
            "metadata": {"name": name, "namespace": namespace,
                         "labels": {"dataprotection.kubeblocks.io/backup-repo-name": "repo1"}},
            "spec": {"backupPolicyName": "p", "backupMethod": "m"}
        }),
        extra,
    )
}

pub(super) fn restore(name: &str, namespace: &str, extra: Value) -> Restore {
    merged(
        json!({
            "apiVersion": "dataprotection.kubeblocks.io/v1alpha1",
            "kind": "Restore",
            "metadata": {"name": name, "namespace": namespace,
                         "labels": {"dataprotection.kubeblocks.io/backup-repo-name": "repo1"}},
            "spec": {"backup": {"name": "b1", "namespace": namespace}}
        }),
        extra,
    )
}

pub(super) fn waiting() -> Value {
    json!({"metadata": {"labels": {"dataprotection.kubeblocks.io/wait-repo-preparation": "true"}}})
}

/// Runs the planner, then applies what the API server would: the status, annotations,
/// finalizers, and created PVCs (which then show up as derived objects).
pub(super) fn step(o: &mut Observed, at: Timestamp) -> Plan<BackupRepoStatus> {
    let plan = plan(o, at);
    for intent in &plan.intents {
        match intent {
            Intent::AddFinalizer => o
                .repo
                .metadata
                .finalizers
                .get_or_insert_with(Vec::new)
                .push(well_known::FINALIZER.into()),
            Intent::RemoveFinalizer => o
                .repo
                .metadata
                .finalizers
                .get_or_insert_with(Vec::new)
                .retain(|f| f != well_known::FINALIZER),
            Intent::PatchMeta { annotations, .. } => {
                let map = o
                    .repo
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
            Intent::Create { object } if object["kind"] == "PersistentVolumeClaim" => {
                let pvc: PersistentVolumeClaim = serde_json::from_value(object.clone()).unwrap();
                o.derived.pvcs.push(pvc);
            }
            Intent::Create { object } if object["kind"] == "StorageClass" => {
                o.derived.storage_class = true;
            }
            Intent::Create { object } if object["kind"] == "Secret" => {
                o.derived.csi_secret_digest = Some(
                    object["metadata"]["annotations"][well_known::annotation::BACKUP_REPO_DIGEST]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                );
            }
            Intent::Delete { kind, name, .. } if kind == "PersistentVolumeClaim" => {
                o.derived
                    .pvcs
                    .retain(|p| p.metadata.name.as_deref() != Some(name.as_str()));
            }
            Intent::Delete { kind, .. } if kind == "Secret" => o.derived.csi_secret_digest = None,
            Intent::Delete { kind, .. } if kind == "StorageClass" => {
                o.derived.storage_class = false
            }
            _ => {}
        }
    }
    if let Some(status) = &plan.status {
        o.repo.status = Some(status.clone());
    }
    plan
}

/// Steps until the pre-check is dispatched; returns that plan.
pub(super) fn until_dispatched(o: &mut Observed) -> Plan<BackupRepoStatus> {
    for i in 0..5 {
        let plan = step(o, later(i));
        if plan
            .intents
            .iter()
            .any(|intent| matches!(intent, Intent::Dispatch { .. }))
        {
            return plan;
        }
    }
    panic!("the pre-check was never dispatched");
}

/// The pre-check action id for the repository's current digest annotation.
pub(super) fn current_check_id(o: &Observed) -> String {
    let digest = o.repo.metadata.annotations.as_ref().unwrap()
        [well_known::annotation::BACKUP_REPO_DIGEST]
        .clone();
    precheck::pre_check_id(UID, &digest)
}

pub(super) fn report(o: &mut Observed, id: &str, phase: ReportedPhase, reason: &str) {
    o.agents.actions.insert(
        id.to_string(),
        ReportedAction {
            phase: Some(phase),
            failure_reason: reason.to_string(),
            started_at: Some(now()),
            finished_at: (phase != ReportedPhase::Running).then(now),
            ..Default::default()
        },
    );
}

/// Runs a repository to Ready through a successful pre-check.
pub(super) fn make_ready(o: &mut Observed) {
    until_dispatched(o);
    let id = current_check_id(o);
    report(o, &id, ReportedPhase::Succeeded, "");
    step(o, later(10));
    o.agents.actions.clear();
    assert_eq!(phase(o), Some(BackupRepoPhase::Ready));
}

pub(super) fn phase(o: &Observed) -> Option<BackupRepoPhase> {
    o.repo.status.as_ref().and_then(|s| s.phase)
}

pub(super) fn condition<'o>(o: &'o Observed, type_: &str) -> &'o Condition {
    conditions::find(
        o.repo
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_deref())
            .unwrap_or_default(),
        type_,
    )
    .unwrap_or_else(|| panic!("no condition {type_}"))
}

pub(super) fn events(plan: &Plan<BackupRepoStatus>) -> Vec<(EventType, String, String)> {
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

proptest::proptest! {
    #[test]
    fn capped_messages_are_prefixes_within_the_limit(text in "\\PC{0,64}", limit in 0usize..80) {
        let capped = cap(&text, limit);
        proptest::prop_assert!(capped.len() <= limit);
        proptest::prop_assert!(text.starts_with(&capped));
        proptest::prop_assert!(text.len() <= limit || capped.len() + 4 > limit);
    }
}

pub(super) fn dispatched(
    plan: &Plan<BackupRepoStatus>,
) -> Vec<(&str, &cairn_proto::agent::v1::Action)> {
    plan.intents
        .iter()
        .filter_map(|i| match i {
            Intent::Dispatch { node, action } => Some((node.as_str(), action.as_ref())),
            _ => None,
        })
        .collect()
}

pub(super) fn created<'p>(plan: &'p Plan<BackupRepoStatus>, kind: &str) -> Vec<&'p Value> {
    plan.intents
        .iter()
        .filter_map(|i| match i {
            Intent::Create { object } if object["kind"] == kind => Some(object),
            _ => None,
        })
        .collect()
}

pub(super) fn deleted<'p>(plan: &'p Plan<BackupRepoStatus>, kind: &str) -> Vec<&'p str> {
    plan.intents
        .iter()
        .filter_map(|i| match i {
            Intent::Delete { kind: k, name, .. } if k == kind => Some(name.as_str()),
            _ => None,
        })
        .collect()
}
