//! The prepareData stage (ARCHITECTURE.md §K4.2): one Job per restored instance writes the
//! backup into freshly created volume claims, in parallel or one after another.

use std::collections::BTreeMap;

use cairn_api::action::ActionErrorMode;
use cairn_api::actionset::ActionSet;
use cairn_api::restore::{
    PrepareDataConfig, RestoreStage, RestoreVolumeClaim, VolumeClaimRestorePolicy,
};
use cairn_api::well_known::conditions::restore::{
    CONDITION_PREPARE_DATA, REASON_PROCESSING, REASON_SUCCEED,
};
use k8s_openapi::api::core::v1::{PersistentVolumeClaimVolumeSource, Volume, VolumeMount};
use serde_json::json;

use super::conditions::{self};
use super::jobs::{self, JobInput};
use super::placement::{Placement, selected_node};
use super::work::{Outcome, Run, Work};
use super::{StageResult, env, snapshot, uid8};
use crate::plan::action::Workload;
use crate::plan::intent::Intent;
use crate::plan::names::restore_job_name;

/// Runs the prepareData stage as far as it goes in this reconcile: the sets one after another,
/// each only once the one before it has finished (§4.2).
pub fn run(run: &mut Run<'_>) -> StageResult {
    let Some(config) = run.o.restore.spec.prepare_data_config.clone() else {
        return StageResult::Done;
    };
    let has_claims = config.volume_claims.as_ref().is_some_and(|c| !c.is_empty())
        || config.volume_claims_template.is_some();
    if !has_claims || conditions::is_true(&run.status, CONDITION_PREPARE_DATA) {
        return StageResult::Done;
    }
    let all = run.sets;
    let sets: Vec<_> = all.prepare_data().collect();
    if sets.is_empty() {
        return StageResult::Done;
    }
    let count = sets.len();
    for (index, set) in sets.into_iter().enumerate() {
        run.req = set;
        let result = run_set(run, &config, index, count);
        run.req = all.source();
        if result != StageResult::Done {
            return result;
        }
    }
    conditions::set(
        &mut run.status,
        CONDITION_PREPARE_DATA,
        REASON_SUCCEED,
        "prepare data successfully",
        run.now,
    );
    StageResult::Done
}

/// The prepareData jobs of the set `run.req`, the `index`th of `count` (action
/// `prepareData-<index>`).
fn run_set(
    run: &mut Run<'_>,
    config: &PrepareDataConfig,
    index: usize,
    count: usize,
) -> StageResult {
    // A volume snapshot set first makes its claims from its snapshots (§K4.2a).
    if run.req.is_snapshot() {
        let result = snapshot::claims(run, config);
        if result != StageResult::Done {
            return result;
        }
    }
    let Some(job_spec) = run.req.spec.prepare_data.clone() else {
        return StageResult::Done;
    };
    let works = match works(run, config, &job_spec, index) {
        Ok(works) => works,
        Err(message) => return StageResult::Failed(message),
    };
    let serial = config.volume_claim_restore_policy == Some(VolumeClaimRestorePolicy::Serial);
    let mut running = false;
    let mut unplaced = false;
    let mut failed = false;
    for work in &works {
        match run.advance(work) {
            Outcome::Done { just } => {
                // Serial restores free each finished job's claims for the next one (RWO volumes).
                if serial
                    && just
                    && let Workload::Job(job) = &work.kind
                {
                    run.intents.push(Intent::Delete {
                        api_version: "batch/v1".into(),
                        kind: "Job".into(),
                        namespace: job.metadata.namespace.clone(),
                        name: job.metadata.name.clone().unwrap_or_default(),
                    });
                }
                continue;
            }
            Outcome::Failed => failed = true,
            Outcome::Running => running = true,
            Outcome::Unplaced => unplaced = true,
        }
        if serial {
            break;
        }
    }
    let now = run.now;
    if running || unplaced {
        let message = if unplaced {
            "waiting for a connected node agent that can run the prepareData jobs".to_string()
        } else if count > 1 {
            format!(
                "start to prepare data of backup \"{}\" (backup set {} of {count})",
                run.req.backup_name,
                index + 1
            )
        } else {
            "start to prepare data".to_string()
        };
        conditions::set(
            &mut run.status,
            CONDITION_PREPARE_DATA,
            REASON_PROCESSING,
            &message,
            now,
        );
        run.requeue_within(run.o.settings.poll);
        return StageResult::Running;
    }
    if failed {
        return StageResult::Failed(format!(
            "restore failed for backup \"{}\", more information can be found in status.actions.prepareData",
            run.req.backup_name
        ));
    }
    StageResult::Done
}

/// The prepareData jobs, in index order (jobs without a source pod are left out).
fn works(
    run: &Run<'_>,
    config: &PrepareDataConfig,
    job_spec: &cairn_api::action::JobActionSpec,
    set: usize,
) -> Result<Vec<Work>, String> {
    let req = run.req;
    let restore = &run.o.restore;
    let namespace = restore.metadata.namespace.clone().unwrap_or_default();
    let template = config.volume_claims_template.as_ref();
    let params: Vec<(String, String)> = restore
        .spec
        .parameters
        .iter()
        .flatten()
        .map(|p| (p.name.clone(), p.value.clone()))
        .collect();
    let restore_env = restore.spec.env.clone().unwrap_or_default();
    // A snapshot set's claims were made from its snapshots before its jobs ([`snapshot`]).
    let create_claims = !req.is_snapshot();
    let mut works = Vec::new();
    for instance in instances(run, config)? {
        let (k, source) = (instance.k, instance.source.clone());
        let mut volumes = Vec::new();
        let mut mounts = Vec::new();
        let mut claims = Vec::new();
        let mut labels = BTreeMap::new();
        let mut claim_names = Vec::new();
        for claim in config.volume_claims.iter().flatten() {
            let name = claim.metadata.name.clone().unwrap_or_default();
            let mount_path = mount_path(run, claim, &name)?;
            volumes.push(claim_volume(&format!("dp-claim-{name}"), &name));
            mounts.push(claim_mount(&format!("dp-claim-{name}"), &mount_path));
            if create_claims {
                claims.push(claim_object(claim, &name, &namespace));
            }
            claim_names.push(name);
        }
        for tpl in template.map(|t| t.templates.as_slice()).unwrap_or_default() {
            let tpl_name = tpl.metadata.name.clone().unwrap_or_default();
            let name = instance.claim_name(&tpl_name);
            let mount_path = mount_path(run, tpl, &tpl_name)?;
            let volume = format!("dp-claim-tpl-{tpl_name}");
            volumes.push(claim_volume(&volume, &name));
            mounts.push(claim_mount(&volume, &mount_path));
            if create_claims {
                claims.push(claim_object(tpl, &name, &namespace));
            }
            labels.extend(tpl.metadata.labels.clone().unwrap_or_default());
            claim_names.push(name);
        }
        let env = env::common(req, &restore_env, &params, source.as_deref());
        let job_name = restore_job_name(&format!(
            "restore-preparedata-{}-{}-{k}",
            uid8(restore),
            req.backup_name
        ));
        let job = jobs::build(
            req,
            restore,
            JobInput {
                name: job_name.clone(),
                image: job_spec.base.image.clone(),
                command: job_spec.base.command.clone(),
                env,
                env_from: env_from(req.actionset),
                volumes,
                mounts,
                labels,
                scheduling: config.scheduling_spec.clone(),
                ..Default::default()
            },
        );
        works.push(Work {
            stage: RestoreStage::PrepareData,
            name: format!("prepareData-{set}"),
            object_key: format!("Job/{job_name}"),
            placement: placement(run, config, &claim_names),
            kind: Workload::Job(Box::new(job)),
            on_error: job_spec.on_error.unwrap_or(ActionErrorMode::Fail),
            pod: None,
            claims,
        });
    }
    Ok(works)
}

/// One restored instance: the `k`th job of the set, restoring the data of `source` (strategy
/// All) into the claims `<template>-<k + starting>`.
pub struct Instance {
    pub k: usize,
    pub source: Option<String>,
    pub starting: i32,
}

impl Instance {
    /// The name of the claim of template `template` for this instance.
    pub fn claim_name(&self, template: &str) -> String {
        let index = i64::try_from(self.k).unwrap_or(0) + i64::from(self.starting);
        format!("{template}-{index}")
    }
}

/// The instances of the set `run.req`, in index order: `volumeClaimsTemplate.replicas` (one
/// without a template), less those with no source pod (strategy All, OneToOne, §4.2).
pub fn instances(run: &Run<'_>, config: &PrepareDataConfig) -> Result<Vec<Instance>, String> {
    let template = config.volume_claims_template.as_ref();
    let count = match template.map(|t| t.replicas) {
        None => 1,
        Some(n) if n >= 1 => usize::try_from(n).unwrap_or(1),
        Some(n) => {
            return Err(format!(
                "spec.prepareDataConfig.volumeClaimsTemplate.replicas must be at least 1, got {n}"
            ));
        }
    };
    let starting = template.and_then(|t| t.starting_index).unwrap_or(0);
    if starting < 0 {
        return Err(format!(
            "spec.prepareDataConfig.volumeClaimsTemplate.startingIndex must not be negative, got {starting}"
        ));
    }
    let mut instances = Vec::new();
    for k in 0..count {
        if let Some(source) = run.req.source_pod(
            config.required_policy_for_all_pod_selection.as_ref(),
            k,
            "spec.prepareDataConfig.requiredPolicyForAllPodSelection",
        )? {
            instances.push(Instance {
                k,
                source,
                starting,
            });
        }
    }
    Ok(instances)
}

/// `schedulingSpec.nodeName`, else the node a mounted claim is bound to, else any agent whose
/// node fits `schedulingSpec.nodeSelector`.
pub(super) fn placement(run: &Run<'_>, config: &PrepareDataConfig, claims: &[String]) -> Placement {
    let scheduling = config.scheduling_spec.clone().unwrap_or_default();
    if let Some(node) = scheduling.node_name.filter(|n| !n.is_empty()) {
        return Placement::Pinned(node);
    }
    if let Some(node) = claims
        .iter()
        .find_map(|name| selected_node(&run.o.claims, name))
    {
        return Placement::Pinned(node);
    }
    Placement::Anywhere {
        node_selector: scheduling.node_selector.unwrap_or_default(),
    }
}

/// The claim's mountPath, else the mountPath of the backup's volume it restores.
fn mount_path(run: &Run<'_>, claim: &RestoreVolumeClaim, name: &str) -> Result<String, String> {
    let config = &claim.volume_config;
    if let Some(path) = config.mount_path.clone().filter(|p| !p.is_empty()) {
        return Ok(path);
    }
    let source = config.volume_source.clone().unwrap_or_default();
    run.req
        .method
        .target_volumes
        .as_ref()
        .and_then(|t| t.volume_mounts.as_ref())
        .and_then(|mounts| mounts.iter().find(|m| m.name == source))
        .map(|m| m.mount_path.clone())
        .filter(|p| !p.is_empty())
        .ok_or_else(|| {
            format!(
                "unable to find the mountPath of volume claim \"{name}\": it has no mountPath and volumeSource {source:?} is not in the backup method's targetVolumes.volumeMounts"
            )
        })
}

fn claim_volume(volume: &str, claim: &str) -> Volume {
    Volume {
        name: volume.into(),
        persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
            claim_name: claim.into(),
            read_only: None,
        }),
        ..Default::default()
    }
}

fn claim_mount(volume: &str, path: &str) -> VolumeMount {
    VolumeMount {
        name: volume.into(),
        mount_path: path.into(),
        ..Default::default()
    }
}

/// The PVC to create for a claim, in the Restore's namespace, with the claim's labels and
/// annotations and spec.
pub fn claim_object(claim: &RestoreVolumeClaim, name: &str, namespace: &str) -> serde_json::Value {
    let mut metadata = json!({"name": name, "namespace": namespace});
    if let Some(labels) = claim.metadata.labels.as_ref().filter(|l| !l.is_empty()) {
        metadata["labels"] = json!(labels);
    }
    if let Some(annotations) = claim
        .metadata
        .annotations
        .as_ref()
        .filter(|a| !a.is_empty())
    {
        metadata["annotations"] = json!(annotations);
    }
    json!({
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": metadata,
        "spec": serde_json::to_value(&claim.volume_claim_spec).unwrap_or_default(),
    })
}

/// The ActionSet's envFrom.
pub fn env_from(actionset: &ActionSet) -> Vec<k8s_openapi::api::core::v1::EnvFromSource> {
    actionset.spec.env_from.clone().unwrap_or_default()
}
