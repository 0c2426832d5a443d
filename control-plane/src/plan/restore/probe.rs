//! `readyConfig.readinessProbe`: a gate before the postReady steps, as the API reference
//! describes it (KubeBlocks never evaluates it, ARCHITECTURE.md §K8 S7).
//!
//! The probe is a Job running `exec.image` + `exec.command` with the restore env and the
//! `readyConfig.connectionCredential` env (`DP_DB_USER`, `DP_DB_PASSWORD`, ...). The first attempt
//! starts `initialDelaySeconds` after the gate opened (the `ReadinessProbe` condition's transition
//! time); an attempt is killed after `timeoutSeconds` (default 30, through the Job's
//! `activeDeadlineSeconds`); a failed attempt is retried `periodSeconds` later (default 5), with a
//! new attempt number and so a new action id. There is no failure threshold in the API, so a probe
//! that never passes keeps the Restore Running with the last failure in the condition's message.

use cairn_api::well_known;
use cairn_api::well_known::conditions::restore::{
    CONDITION_READINESS_PROBE, REASON_FAILED, REASON_PROCESSING, REASON_SUCCEED,
};
use std::collections::BTreeMap;
use std::time::Duration;

use cairn_api::action::ActionErrorMode;
use cairn_api::common::ConnectionCredential;
use cairn_api::restore::{ReadinessProbe, Restore, RestoreStage};
use jiff::Timestamp;

use super::conditions::{self};
use super::jobs::{self, JobInput};
use super::placement::Placement;
use super::work::{Run, Work, entry_id};
use super::{StageResult, env, uid8};
use crate::plan::action::{Step, Workload, failure_reason, lost_message, step};
use crate::plan::intent::Intent;
use crate::plan::names::restore_job_name;

/// Placement key of the probe's Jobs.
pub const NODE_KEY: &str = "ReadinessProbe";

/// The current attempt number.
pub fn attempt(restore: &Restore) -> u32 {
    annotation(restore, well_known::annotation::READINESS_PROBE_ATTEMPT)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn annotation<'r>(restore: &'r Restore, key: &str) -> Option<&'r String> {
    restore
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(key))
}

/// Name of the probe's Job for an attempt.
pub fn job_name(restore: &Restore, attempt: u32) -> String {
    restore_job_name(&format!(
        "restore-readiness-probe-{}-{}-{attempt}",
        uid8(restore),
        restore.spec.backup.name
    ))
}

/// The action id of an attempt.
pub fn action_id(restore: &Restore, attempt: u32) -> String {
    entry_id(
        restore.metadata.uid.as_deref().unwrap_or_default(),
        &format!("readinessProbe-{attempt}"),
        &format!("Job/{}", job_name(restore, attempt)),
    )
}

/// Whether the probe has passed; runs or schedules an attempt when it has not.
pub fn gate(
    run: &mut Run<'_>,
    probe: &ReadinessProbe,
    credential: Option<&ConnectionCredential>,
) -> StageResult {
    if conditions::is_true(&run.status, CONDITION_READINESS_PROBE) {
        return StageResult::Done;
    }
    let now = run.now;
    if conditions::get(&run.status, CONDITION_READINESS_PROBE).is_none() {
        conditions::set(
            &mut run.status,
            CONDITION_READINESS_PROBE,
            REASON_PROCESSING,
            "waiting for the restored service to pass its readiness probe",
            now,
        );
    }
    let opened = conditions::get(&run.status, CONDITION_READINESS_PROBE)
        .map(|c| c.last_transition_time.0)
        .unwrap_or(now);
    let delay = seconds(probe.initial_delay_seconds.unwrap_or(0).max(0));
    if let Some(wait) = remaining(opened, delay, now) {
        run.requeue_within(wait);
        return StageResult::Running;
    }
    let retry_at = annotation(
        &run.o.restore,
        well_known::annotation::READINESS_PROBE_RETRY_AT,
    )
    .and_then(|v| v.parse::<Timestamp>().ok());
    if let Some(wait) = retry_at.and_then(|at| remaining(at, Duration::ZERO, now)) {
        run.requeue_within(wait);
        return StageResult::Running;
    }
    let restore = run.o.restore.clone();
    let attempt = attempt(&restore);
    let id = action_id(&restore, attempt);
    let name = job_name(&restore, attempt);
    let period = seconds(probe.period_seconds.unwrap_or(5).max(1));
    // The report decides first: a node is placed only for a probe that has not ended.
    let failure = match step(&run.o.agents, &id, None, now) {
        Step::Succeeded(_) => {
            run.intents.push(Intent::Acknowledge { action_id: id });
            delete_job(run, &name);
            conditions::set(
                &mut run.status,
                CONDITION_READINESS_PROBE,
                REASON_SUCCEED,
                &format!("the readiness probe passed (attempt {attempt})"),
                now,
            );
            return StageResult::Done;
        }
        Step::Failed(report) => {
            let reason = failure_reason(report, "the probe failed");
            run.intents.push(Intent::Acknowledge { action_id: id });
            delete_job(run, &name);
            reason
        }
        Step::NotDispatched | Step::Running(_) | Step::NodeLost { .. } => {
            let Some(node) = run.placements.place(
                NODE_KEY,
                &Placement::Anywhere {
                    node_selector: BTreeMap::new(),
                },
                &run.o.agents,
                &run.o.nodes,
            ) else {
                conditions::set(
                    &mut run.status,
                    CONDITION_READINESS_PROBE,
                    REASON_PROCESSING,
                    "waiting for a connected node agent to run the readiness probe",
                    now,
                );
                run.requeue_within(run.o.settings.wait_requeue);
                return StageResult::Running;
            };
            match step(&run.o.agents, &id, Some(&node), now) {
                Step::NodeLost { lost_for } => {
                    run.placements.forget(NODE_KEY);
                    lost_message(&node, lost_for)
                }
                Step::NotDispatched | Step::Running(_) | Step::Succeeded(_) | Step::Failed(_) => {
                    let work = probe_work(run, probe, credential, &name, attempt);
                    let action = run.wire_action(&work);
                    run.intents.push(Intent::Dispatch {
                        node,
                        action: Box::new(action),
                    });
                    run.requeue_within(run.o.settings.poll);
                    return StageResult::Running;
                }
            }
        }
    };
    let retry_at = jiff::SignedDuration::try_from(period)
        .ok()
        .and_then(|d| now.checked_add(d).ok())
        .unwrap_or(now);
    conditions::set(
        &mut run.status,
        CONDITION_READINESS_PROBE,
        REASON_FAILED,
        &format!(
            "readiness probe attempt {attempt} failed, retrying in {}s: {failure}",
            period.as_secs()
        ),
        now,
    );
    run.annotations.insert(
        well_known::annotation::READINESS_PROBE_ATTEMPT.into(),
        Some((attempt + 1).to_string()),
    );
    run.annotations.insert(
        well_known::annotation::READINESS_PROBE_RETRY_AT.into(),
        Some(retry_at.to_string()),
    );
    run.requeue_within(period);
    StageResult::Running
}

fn probe_work(
    run: &Run<'_>,
    probe: &ReadinessProbe,
    credential: Option<&ConnectionCredential>,
    name: &str,
    attempt: u32,
) -> Work {
    let restore = &run.o.restore;
    let params: Vec<(String, String)> = restore
        .spec
        .parameters
        .iter()
        .flatten()
        .map(|p| (p.name.clone(), p.value.clone()))
        .collect();
    let mut env = env::common(
        run.req,
        &restore.spec.env.clone().unwrap_or_default(),
        &params,
        None,
    );
    crate::plan::env::merge(&mut env, env::credential_env(credential));
    let job = jobs::build(
        run.req,
        restore,
        JobInput {
            name: name.into(),
            image: probe.exec.image.clone(),
            command: probe.exec.command.clone(),
            env,
            backoff_limit: Some(0),
            active_deadline_seconds: Some(probe.timeout_seconds.unwrap_or(30).max(1)),
            ..Default::default()
        },
    );
    Work {
        stage: RestoreStage::PostReady,
        name: format!("readinessProbe-{attempt}"),
        object_key: format!("Job/{name}"),
        placement: Placement::Anywhere {
            node_selector: BTreeMap::new(),
        },
        kind: Workload::Job(Box::new(job)),
        on_error: ActionErrorMode::Fail,
        pod: None,
        claims: Vec::new(),
    }
}

fn delete_job(run: &mut Run<'_>, name: &str) {
    run.intents.push(Intent::Delete {
        api_version: "batch/v1".into(),
        kind: "Job".into(),
        namespace: run.o.restore.metadata.namespace.clone(),
        name: name.into(),
    });
}

fn seconds(n: i64) -> Duration {
    Duration::from_secs(u64::try_from(n).unwrap_or(0))
}

/// How long until `from + after`, or `None` once it has passed.
fn remaining(from: Timestamp, after: Duration, now: Timestamp) -> Option<Duration> {
    let span = jiff::SignedDuration::try_from(after).ok()?;
    let due = from.checked_add(span).ok()?;
    (due > now).then(|| Duration::try_from(due.duration_since(now)).unwrap_or_default())
}
