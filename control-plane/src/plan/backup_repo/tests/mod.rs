//! Table tests of the BackupRepo planner: builders here, one behaviour per test in `tool`,
//! `mount` and `deletion`, named by what a user sees.

mod deletion;
mod mount;
mod tool;

use std::collections::BTreeMap;

use cairn_api::backup::{Backup, BackupPhase};
use cairn_api::backup_repo::{
    AccessMethod, BackupRepo, BackupRepoPhase, BackupRepoSpec, BackupRepoStatus,
};
use cairn_api::restore::{Restore, RestorePhase};
use cairn_api::well_known;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use serde_json::Value;

use super::*;
use crate::plan::agent_view::{NodeState, ReportedAction, ReportedPhase};
use crate::plan::intent::{EventType, Intent};
pub(super) use crate::plan::testing::{
    BackupExt, ClaimExt, ProviderExt, RepoLabelsExt, RestoreExt, agents, claim, later, now,
    pvc_provider, s3_provider,
};

pub(super) const UID: &str = "5b7c1c0e-aaaa-4000-8000-000000000001";
pub(super) const SECRET_KEY: &str = "wJalrXUtnFEMI-K7MDENG-S3CR3T";
pub(super) const CONTROL_NS: &str = "cairn-system";

/// Tool repository `repo1` on the `s3` provider (bucket `backups` in `eu-west-1`, path prefix
/// `prod`, 20Gi for Mount PVCs), with credential Secret `cairn-system/s3-credential`.
pub(super) fn repo1() -> BackupRepo {
    let mut repo = BackupRepo::new(
        "repo1",
        BackupRepoSpec {
            storage_provider_ref: "s3".into(),
            access_method: Some(AccessMethod::Tool),
            pv_reclaim_policy: cairn_api::backup_repo::PersistentVolumeReclaimPolicy::Retain,
            volume_capacity: Some(k8s_openapi::apimachinery::pkg::api::resource::Quantity(
                "20Gi".into(),
            )),
            path_prefix: Some("prod".into()),
            config: Some(BTreeMap::from([
                ("bucket".to_string(), "backups".to_string()),
                ("region".to_string(), "eu-west-1".to_string()),
            ])),
            credential: Some(k8s_openapi::api::core::v1::SecretReference {
                name: Some("s3-credential".into()),
                namespace: Some(CONTROL_NS.into()),
            }),
        },
    );
    repo.metadata.uid = Some(UID.into());
    repo.metadata.generation = Some(1);
    repo.metadata.finalizers = Some(vec![well_known::FINALIZER.into()]);
    repo
}

pub(super) fn credential() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("accessKeyId".to_string(), "AKIAEXAMPLE".to_string()),
        ("secretAccessKey".to_string(), SECRET_KEY.to_string()),
    ])
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
        repo: repo1(),
        provider: Some(s3_provider()),
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
    o.repo.spec.storage_provider_ref = "pvc".into();
    o.repo.spec.access_method = Some(AccessMethod::Mount);
    o.repo.spec.config = None;
    o.repo.spec.credential = None;
    o.provider = Some(pvc_provider());
    o.credential = None;
    o
}

/// Backup `name` in `namespace`, labelled as using `repo1`.
pub(super) fn backup(name: &str, namespace: &str) -> Backup {
    crate::plan::testing::backup_in(name, namespace).of_repo("repo1")
}

/// Restore `name` in `namespace`, labelled as using `repo1`.
pub(super) fn restore(name: &str, namespace: &str) -> Restore {
    crate::plan::testing::restore_in(name, namespace).of_repo("repo1")
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

/// The action id of the Mount pre-check's agent step for the current digest annotation.
pub(super) fn current_agent_check_id(o: &Observed) -> String {
    let digest = o.repo.metadata.annotations.as_ref().unwrap()
        [well_known::annotation::BACKUP_REPO_DIGEST]
        .clone();
    precheck::agent_check_id(UID, &digest)
}

/// Runs a repository to Ready through a successful pre-check (for Mount, the Job's and then
/// the agent's).
pub(super) fn make_ready(o: &mut Observed) {
    until_dispatched(o);
    let id = current_check_id(o);
    report(o, &id, ReportedPhase::Succeeded, "");
    step(o, later(10));
    if access_method(&o.repo) == AccessMethod::Mount {
        let agent_id = current_agent_check_id(o);
        report(o, &agent_id, ReportedPhase::Succeeded, "");
        step(o, later(11));
    }
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
