//! The postReady stage (ARCHITECTURE.md §K4.3): once the restored workload runs, the
//! ActionSet's `restore.postReady` steps run in order; a job step runs one Job per selected pod,
//! an exec step runs the command in every selected pod. `onError` and exec `timeout` are
//! honoured (KubeBlocks ignores them, ARCHITECTURE.md §K8 S2 and S3).

use std::collections::BTreeMap;

use cairn_api::action::{ActionErrorMode, ActionSpec};
use cairn_api::restore::{ReadyConfig, RestoreStage};
use cairn_api::target::PodSelectionStrategy;
use cairn_api::well_known::conditions::restore::{
    CONDITION_POST_READY, REASON_PROCESSING, REASON_SUCCEED,
};
use k8s_openapi::api::core::v1::{Pod, Volume};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::core::{Selector, SelectorExt};

use super::conditions::{self};
use super::jobs::{self, JobInput};
use super::placement::Placement;
use super::work::{Outcome, Run, Work, entries};
use super::{StageResult, env, probe, uid8};
use crate::plan::action::Workload;
use crate::plan::backup::targets::is_running_and_ready;
use crate::plan::names::restore_job_name;

/// Why a step cannot run now.
enum StepProblem {
    Fatal(String),
    Wait(String),
}

/// Runs the postReady stage as far as it goes in this reconcile: the sets one after another,
/// each set's steps in order (§4.3).
pub fn run(run: &mut Run<'_>) -> StageResult {
    let Some(ready) = run.o.restore.spec.ready_config.clone() else {
        return StageResult::Done;
    };
    let all = run.sets;
    let sets: Vec<_> = all.post_ready().collect();
    if sets.is_empty() || conditions::is_true(&run.status, CONDITION_POST_READY) {
        return StageResult::Done;
    }
    let now = run.now;
    if let Some(probe) = &ready.readiness_probe {
        match probe::gate(run, probe, ready.connection_credential.as_ref()) {
            StageResult::Done => {}
            StageResult::Running => {
                conditions::set(
                    &mut run.status,
                    CONDITION_POST_READY,
                    REASON_PROCESSING,
                    "waiting for the readiness probe to pass",
                    now,
                );
                return StageResult::Running;
            }
            StageResult::Failed(message) => return StageResult::Failed(message),
        }
    }
    for set in sets {
        run.req = set;
        let result = run_set(run, &ready);
        run.req = all.source();
        if result != StageResult::Done {
            return result;
        }
    }
    conditions::set(
        &mut run.status,
        CONDITION_POST_READY,
        REASON_SUCCEED,
        "restore in PostReady phase successfully",
        now,
    );
    StageResult::Done
}

/// The steps of the set `run.req`, in order.
fn run_set(run: &mut Run<'_>, ready: &ReadyConfig) -> StageResult {
    let steps = run.req.spec.post_ready.clone().unwrap_or_default();
    let now = run.now;
    let backup_name = run.req.backup_name.clone();
    for (step, action) in steps.iter().enumerate() {
        let name = format!("postReady-{step}");
        let works = match step_works(run, ready, step, &name, action) {
            Ok(works) => works,
            Err(StepProblem::Fatal(message)) => return StageResult::Failed(message),
            Err(StepProblem::Wait(message)) => {
                conditions::set(
                    &mut run.status,
                    CONDITION_POST_READY,
                    REASON_PROCESSING,
                    &message,
                    now,
                );
                run.requeue_within(run.o.settings.wait_requeue);
                return StageResult::Running;
            }
        };
        let on_error = works
            .first()
            .map(|w| w.on_error)
            .unwrap_or(ActionErrorMode::Fail);
        let mut outcomes: Vec<Outcome> = works.iter().map(|w| run.advance(w)).collect();
        // Entries of pods that no longer match still have to finish.
        let derived: Vec<String> = works.iter().map(|w| w.object_key.clone()).collect();
        let orphans: Vec<usize> = entries(&run.status, RestoreStage::PostReady)
            .iter()
            .enumerate()
            .filter(|(_, e)| {
                e.name == name && e.backup_name == backup_name && !derived.contains(&e.object_key)
            })
            .map(|(i, _)| i)
            .collect();
        for index in orphans {
            outcomes.push(run.follow(RestoreStage::PostReady, index, on_error));
        }
        if outcomes
            .iter()
            .any(|o| matches!(o, Outcome::Running | Outcome::Unplaced))
        {
            let message = if outcomes.contains(&Outcome::Unplaced) {
                format!("waiting for a connected node agent that can run {name}")
            } else {
                "start to restore in PostReady phase".to_string()
            };
            conditions::set(
                &mut run.status,
                CONDITION_POST_READY,
                REASON_PROCESSING,
                &message,
                now,
            );
            run.requeue_within(run.o.settings.poll);
            return StageResult::Running;
        }
        if outcomes.contains(&Outcome::Failed) {
            return StageResult::Failed(format!(
                "restore failed for backup \"{backup_name}\", more information can be found in status.actions.postReady"
            ));
        }
    }
    StageResult::Done
}

/// The actions of one postReady step.
fn step_works(
    run: &Run<'_>,
    ready: &ReadyConfig,
    step: usize,
    name: &str,
    action: &ActionSpec,
) -> Result<Vec<Work>, StepProblem> {
    match (&action.exec, &action.job) {
        (None, None) => Err(StepProblem::Fatal(format!(
            "action {name} has no exec or job"
        ))),
        (Some(_), Some(_)) => Err(StepProblem::Fatal(format!(
            "action {name} should have only one of exec or job"
        ))),
        (Some(exec), None) => {
            let target = ready
                .exec_action
                .as_ref()
                .ok_or_else(|| {
                    StepProblem::Fatal("spec.readyConfig.execAction can not be empty".into())
                })?
                .target
                .as_ref()
                .ok_or_else(|| {
                    StepProblem::Fatal("spec.readyConfig.execAction.target can not be empty".into())
                })?;
            let field = "spec.readyConfig.execAction.target.podSelector";
            let pods = matching_pods(run, &target.pod_selector, field)?;
            require_scheduled(&pods, field)?;
            let timeout_seconds = match exec.timeout.as_deref().filter(|t| !t.is_empty()) {
                None => 0,
                Some(text) => crate::plan::time::go_duration(text)
                    .map(|d| u32::try_from(d.as_secs().max(1)).unwrap_or(u32::MAX))
                    .map_err(|reason| {
                        StepProblem::Fatal(format!(
                            "action {name}: invalid exec timeout {text:?}: {reason}"
                        ))
                    })?,
            };
            Ok(pods
                .into_iter()
                .map(|pod| {
                    let pod_name = pod.metadata.name.clone().unwrap_or_default();
                    let container = exec
                        .container
                        .clone()
                        .filter(|c| !c.is_empty())
                        .or_else(|| {
                            pod.spec
                                .as_ref()
                                .and_then(|s| s.containers.first())
                                .map(|c| c.name.clone())
                        })
                        .unwrap_or_default();
                    Work {
                        stage: RestoreStage::PostReady,
                        name: name.into(),
                        object_key: format!("Pod/{pod_name}"),
                        placement: Placement::Pinned(node_of(&pod)),
                        kind: Workload::Exec {
                            container,
                            command: exec.command.clone(),
                            timeout_seconds,
                        },
                        on_error: exec.on_error.unwrap_or(ActionErrorMode::Fail),
                        pod: Some(pod),
                        claims: Vec::new(),
                    }
                })
                .collect())
        }
        (None, Some(job_spec)) => {
            let job_action = ready.job_action.as_ref().ok_or_else(|| {
                StepProblem::Fatal("spec.readyConfig.jobAction can not be empty".into())
            })?;
            let selector = &job_action.target.pod_selector;
            let field = "spec.readyConfig.jobAction.target.podSelector";
            let mut pods = matching_pods(run, &selector.label_selector, field)?;
            if selector.strategy.unwrap_or(PodSelectionStrategy::Any) == PodSelectionStrategy::Any {
                let ready_pod = pods.iter().find(|p| is_running_and_ready(p)).cloned();
                pods = vec![ready_pod.ok_or_else(|| {
                    StepProblem::Wait(format!("no pod selected by {field} is Running and Ready"))
                })?];
            }
            let req = run.req;
            let restore = &run.o.restore;
            let params: Vec<(String, String)> = restore
                .spec
                .parameters
                .iter()
                .flatten()
                .map(|p| (p.name.clone(), p.value.clone()))
                .collect();
            let restore_env = restore.spec.env.clone().unwrap_or_default();
            let run_on_target = job_spec.run_on_target_pod_node.unwrap_or(false);
            if run_on_target {
                require_scheduled(&pods, field)?;
            }
            let mut works = Vec::new();
            for (index, pod) in pods.into_iter().enumerate() {
                let Some(source) = req
                    .source_pod(
                        job_action.required_policy_for_all_pod_selection.as_ref(),
                        index,
                        "spec.readyConfig.jobAction.requiredPolicyForAllPodSelection",
                    )
                    .map_err(StepProblem::Fatal)?
                else {
                    continue;
                };
                let mut env = env::common(req, &restore_env, &params, source.as_deref());
                crate::plan::env::merge(
                    &mut env,
                    env::post_ready_extra(&pod, ready.connection_credential.as_ref()),
                );
                let mut env_from = pod
                    .spec
                    .as_ref()
                    .and_then(|s| s.containers.first())
                    .and_then(|c| c.env_from.clone())
                    .unwrap_or_default();
                env_from.extend(req.actionset.spec.env_from.clone().unwrap_or_default());
                let (volumes, mounts) = if run_on_target {
                    pod_volumes(
                        &pod,
                        job_action
                            .target
                            .volume_mounts
                            .as_deref()
                            .unwrap_or_default(),
                    )
                } else {
                    (Vec::new(), Vec::new())
                };
                let job_name = restore_job_name(&format!(
                    "restore-post-ready-{}-{}-{step}-{index}",
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
                        env_from,
                        volumes,
                        mounts,
                        labels: BTreeMap::new(),
                        tolerations: pod.spec.as_ref().and_then(|s| s.tolerations.clone()),
                        ..Default::default()
                    },
                );
                let placement = if run_on_target {
                    Placement::Pinned(node_of(&pod))
                } else {
                    Placement::Anywhere {
                        node_selector: BTreeMap::new(),
                    }
                };
                works.push(Work {
                    stage: RestoreStage::PostReady,
                    name: name.into(),
                    object_key: format!("Job/{job_name}"),
                    placement,
                    kind: Workload::Job(Box::new(job)),
                    on_error: job_spec.on_error.unwrap_or(ActionErrorMode::Fail),
                    pod: Some(pod),
                    claims: Vec::new(),
                });
            }
            Ok(works)
        }
    }
}

/// Pods of the Restore's namespace matching `selector`, by name; none is a reason to wait.
fn matching_pods(
    run: &Run<'_>,
    selector: &LabelSelector,
    field: &str,
) -> Result<Vec<Pod>, StepProblem> {
    let selector = Selector::try_from(selector.clone())
        .map_err(|err| StepProblem::Fatal(format!("{field} is invalid: {err}")))?;
    let empty = BTreeMap::new();
    let mut pods: Vec<Pod> = run
        .o
        .pods
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| !crate::plan::backup::targets::made_by_data_protection(p))
        .filter(|p| selector.matches(p.metadata.labels.as_ref().unwrap_or(&empty)))
        .cloned()
        .collect();
    if pods.is_empty() {
        return Err(StepProblem::Wait(format!(
            "can not found any pod by {field}"
        )));
    }
    pods.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    Ok(pods)
}

/// Actions pinned to a pod's node wait until the pod has one.
fn require_scheduled(pods: &[Pod], field: &str) -> Result<(), StepProblem> {
    match pods.iter().find(|p| node_of(p).is_empty()) {
        Some(pod) => Err(StepProblem::Wait(format!(
            "pod {} selected by {field} is not scheduled to a node yet",
            pod.metadata.name.as_deref().unwrap_or_default()
        ))),
        None => Ok(()),
    }
}

fn node_of(pod: &Pod) -> String {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.clone())
        .unwrap_or_default()
}

/// The pod's volumes named by `mounts`, and those mounts (only where the pod has the volume).
fn pod_volumes(
    pod: &Pod,
    mounts: &[k8s_openapi::api::core::v1::VolumeMount],
) -> (Vec<Volume>, Vec<k8s_openapi::api::core::v1::VolumeMount>) {
    let pod_volumes = pod
        .spec
        .as_ref()
        .and_then(|s| s.volumes.clone())
        .unwrap_or_default();
    let volumes: Vec<Volume> = pod_volumes
        .into_iter()
        .filter(|v| mounts.iter().any(|m| m.name == v.name))
        .collect();
    let mounts = mounts
        .iter()
        .filter(|m| volumes.iter().any(|v| v.name == m.name))
        .cloned()
        .collect();
    (volumes, mounts)
}
