//! Table tests of the Restore planner's postReady stage and readiness probe.

use cairn_api::restore::{RestoreActionStatus, RestorePhase, RestoreStage};
use cairn_api::well_known;
use cairn_api::well_known::conditions::restore::{
    CONDITION_POST_READY, CONDITION_PREPARE_DATA, CONDITION_READINESS_PROBE,
};
use cairn_proto::agent::v1 as pb;
use serde_json::json;

use super::tests::*;
use super::*;
use crate::plan::agent_view::ReportedPhase;

/// A restore with no prepareData (skipped) and a readyConfig for both kinds of steps.
fn post_ready_observed(steps: serde_json::Value, ready: serde_json::Value) -> Observed {
    let mut o = observed();
    let mut r = restore(json!({"spec": {"readyConfig": ready}}));
    r.spec.prepare_data_config = None;
    o.restore = r;
    o.actionset = Some(actionset(
        json!({"spec": {"restore": {"postReady": steps}}}),
    ));
    o
}

fn exec_ready() -> serde_json::Value {
    json!({"execAction": {"target": {"podSelector": {"matchLabels": {"app": "pg"}}}}})
}

fn job_ready() -> serde_json::Value {
    json!({
        "jobAction": {"target": {"podSelector": {"matchLabels": {"app": "pg"}},
                                 "volumeMounts": [{"name": "data", "mountPath": "/var/lib/pg"}]}},
        "connectionCredential": {"secretName": "pg-account"}
    })
}

fn post_entries(o: &Observed) -> Vec<cairn_api::restore::RestoreStatusAction> {
    let status = o.restore.status.clone().unwrap_or_default();
    work::entries(&status, RestoreStage::PostReady).to_vec()
}

#[test]
fn an_exec_step_runs_in_every_selected_pod_on_its_node_with_its_timeout() {
    let mut o = post_ready_observed(
        json!([{"exec": {"command": ["psql", "-c", "select 1"], "timeout": "90s"}}]),
        exec_ready(),
    );
    let plan = step(&mut o, now());
    let runs: Vec<(&str, &pb::Action)> = dispatched(&plan.intents);
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0].0, "node-a");
    assert_eq!(runs[1].0, "node-b");
    let Some(pb::action::Kind::Exec(exec)) = &runs[1].1.kind else {
        panic!("not an exec");
    };
    assert_eq!(exec.container, "postgresql");
    assert_eq!(exec.timeout_seconds, 90);
    assert_eq!(exec.command, ["psql", "-c", "select 1"]);
    assert_eq!(runs[1].1.pod.as_ref().unwrap().name, "pg-1");
    let keys: Vec<_> = post_entries(&o).into_iter().map(|e| e.object_key).collect();
    assert_eq!(keys, ["Pod/pg-0", "Pod/pg-1"]);
    assert_eq!(
        condition(o.restore.status.as_ref().unwrap(), CONDITION_POST_READY).1,
        "Processing"
    );
}

#[test]
fn a_job_step_with_strategy_any_runs_once_on_the_first_ready_pod_with_its_volumes_and_env() {
    let mut o = post_ready_observed(
        json!([{"job": {"image": "postgres:$(IMAGE_TAG)", "command": ["sh", "-c", "post"],
                        "runOnTargetPodNode": true}}]),
        job_ready(),
    );
    o.pods = vec![
        pod("pg-0").on_node("node-a").not_ready(),
        pod("pg-1").on_node("node-b"),
    ];
    let plan = step(&mut o, now());
    let runs = dispatched(&plan.intents);
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].0, "node-b");
    let job = job_of(runs[0].1);
    assert_eq!(
        job.metadata.name.as_deref(),
        Some("restore-post-ready-abcdef01-b1-0-0")
    );
    let spec = pod_spec_of(&job);
    let volumes: Vec<_> = spec
        .volumes
        .iter()
        .flatten()
        .map(|v| v.name.clone())
        .collect();
    assert_eq!(volumes, ["data"]);
    assert_eq!(
        spec.tolerations.as_ref().unwrap()[0].key.as_deref(),
        Some("dedicated")
    );
    assert_eq!(
        env_value(&job, "PGDATA").as_deref(),
        Some("/var/lib/pg/data")
    );
    assert_eq!(env_value(&job, "DP_DB_HOST").as_deref(), Some("10.0.0.7"));
    assert_eq!(env_value(&job, "DP_DB_PORT").as_deref(), Some("5432"));
    assert_eq!(
        env_value(&job, "DP_DB_USER").as_deref(),
        Some("secret:pg-account/username")
    );
    assert_eq!(
        env_value(&job, "DP_DB_PASSWORD").as_deref(),
        Some("secret:pg-account/password")
    );
    assert_eq!(container_of(&job).image.as_deref(), Some("postgres:16"));
}

#[test]
fn a_job_step_waits_while_no_selected_pod_is_ready() {
    let mut o = post_ready_observed(
        json!([{"job": {"image": "x", "command": ["true"]}}]),
        job_ready(),
    );
    o.pods = vec![pod("pg-0").on_node("node-a").not_ready()];
    let plan = step(&mut o, now());
    let status = plan.status.clone().unwrap();
    assert_eq!(status.phase, Some(RestorePhase::Running));
    assert!(dispatched(&plan.intents).is_empty());
    assert_eq!(
        condition(&status, CONDITION_POST_READY).2,
        "no pod selected by spec.readyConfig.jobAction.target.podSelector is Running and Ready"
    );
}

#[test]
fn a_step_waits_while_no_pod_matches_its_selector() {
    let mut o = post_ready_observed(json!([{"exec": {"command": ["true"]}}]), exec_ready());
    o.pods = Vec::new();
    let plan = step(&mut o, now());
    assert_eq!(
        condition(plan.status.as_ref().unwrap(), CONDITION_POST_READY).2,
        "can not found any pod by spec.readyConfig.execAction.target.podSelector"
    );
}

#[test]
fn an_exec_step_without_an_exec_action_config_fails_with_kubeblocks_message() {
    let mut o = post_ready_observed(json!([{"exec": {"command": ["true"]}}]), job_ready());
    let plan = step(&mut o, now());
    let status = plan.status.unwrap();
    assert_eq!(status.phase, Some(RestorePhase::Failed));
    assert_eq!(
        condition(&status, CONDITION_POST_READY).2,
        "spec.readyConfig.execAction can not be empty"
    );
}

#[test]
fn a_job_step_without_a_job_action_config_fails_with_kubeblocks_message() {
    let mut o = post_ready_observed(
        json!([{"job": {"image": "x", "command": ["true"]}}]),
        exec_ready(),
    );
    let plan = step(&mut o, now());
    assert_eq!(
        condition(plan.status.as_ref().unwrap(), CONDITION_POST_READY).2,
        "spec.readyConfig.jobAction can not be empty"
    );
}

#[test]
fn steps_run_in_order_and_the_restore_completes_after_the_last() {
    let mut o = post_ready_observed(
        json!([{"exec": {"command": ["first"]}}, {"exec": {"command": ["second"]}}]),
        exec_ready(),
    );
    o.pods = vec![pod("pg-0").on_node("node-a")];
    let plan = step(&mut o, now());
    assert_eq!(dispatched(&plan.intents).len(), 1);
    report(&mut o, "postReady-0", "Pod/pg-0", ReportedPhase::Succeeded);
    let plan = step(&mut o, later(5));
    let Some(pb::action::Kind::Exec(exec)) = &dispatched(&plan.intents)[0].1.kind else {
        panic!("not an exec");
    };
    assert_eq!(exec.command, ["second"]);
    report(&mut o, "postReady-1", "Pod/pg-0", ReportedPhase::Succeeded);
    let plan = step(&mut o, later(10));
    let status = plan.status.unwrap();
    assert_eq!(status.phase, Some(RestorePhase::Completed));
    assert_eq!(condition(&status, CONDITION_POST_READY).0, "True");
}

#[test]
fn a_failed_exec_with_on_error_continue_goes_on_and_with_fail_fails_the_restore() {
    for (mode, phase) in [
        ("Continue", RestorePhase::Completed),
        ("Fail", RestorePhase::Failed),
    ] {
        let mut o = post_ready_observed(
            json!([{"exec": {"command": ["x"], "onError": mode}}]),
            exec_ready(),
        );
        o.pods = vec![pod("pg-0").on_node("node-a")];
        step(&mut o, now());
        report(&mut o, "postReady-0", "Pod/pg-0", ReportedPhase::Failed);
        let plan = step(&mut o, later(5));
        assert_eq!(plan.status.unwrap().phase, Some(phase), "onError {mode}");
        assert_eq!(
            post_entries(&o)[0].status,
            Some(RestoreActionStatus::Failed)
        );
    }
}

#[test]
fn an_action_of_a_pod_that_went_away_still_has_to_finish() {
    let mut o = post_ready_observed(json!([{"exec": {"command": ["x"]}}]), exec_ready());
    step(&mut o, now());
    report(&mut o, "postReady-0", "Pod/pg-0", ReportedPhase::Succeeded);
    o.pods = vec![pod("pg-0").on_node("node-a")];
    let plan = step(&mut o, later(5));
    assert_eq!(
        plan.status.as_ref().unwrap().phase,
        Some(RestorePhase::Running)
    );
    assert!(
        dispatched(&plan.intents).is_empty(),
        "pg-1 is gone: not dispatched again"
    );
    report(&mut o, "postReady-0", "Pod/pg-1", ReportedPhase::Succeeded);
    let plan = step(&mut o, later(10));
    assert_eq!(plan.status.unwrap().phase, Some(RestorePhase::Completed));
}

#[test]
fn an_invalid_exec_timeout_fails_naming_the_value() {
    let mut o = post_ready_observed(
        json!([{"exec": {"command": ["x"], "timeout": "soon"}}]),
        exec_ready(),
    );
    let plan = step(&mut o, now());
    let message = condition(plan.status.as_ref().unwrap(), CONDITION_POST_READY).2;
    assert!(
        message.starts_with("action postReady-0: invalid exec timeout \"soon\""),
        "{message}"
    );
}

#[test]
fn post_ready_runs_after_prepare_data_completed() {
    let mut o = observed();
    o.restore = restore(json!({"spec": {"readyConfig": exec_ready()}}));
    o.actionset = Some(actionset(
        json!({"spec": {"restore": {"postReady": [{"exec": {"command": ["x"]}}]}}}),
    ));
    let plan = step(&mut o, now());
    assert!(
        dispatched(&plan.intents)
            .iter()
            .all(|(_, a)| matches!(a.kind, Some(pb::action::Kind::Job(_))))
    );
    report(
        &mut o,
        "prepareData-0",
        "Job/restore-preparedata-abcdef01-b1-0",
        ReportedPhase::Succeeded,
    );
    report(
        &mut o,
        "prepareData-0",
        "Job/restore-preparedata-abcdef01-b1-1",
        ReportedPhase::Succeeded,
    );
    let plan = step(&mut o, later(5));
    assert_eq!(
        dispatched(&plan.intents)
            .iter()
            .filter(|(_, a)| matches!(a.kind, Some(pb::action::Kind::Exec(_))))
            .count(),
        2
    );
    assert_eq!(
        condition(plan.status.as_ref().unwrap(), CONDITION_PREPARE_DATA).0,
        "True"
    );
}

// ---------------------------------------------------------------- readiness probe

fn probe_observed() -> Observed {
    let mut ready = exec_ready();
    ready["readinessProbe"] = json!({"initialDelaySeconds": 10, "timeoutSeconds": 20,
                                     "periodSeconds": 7,
                                     "exec": {"image": "postgres:$(IMAGE_TAG)", "command": ["pg_isready"]}});
    ready["connectionCredential"] = json!({"secretName": "pg-account"});
    post_ready_observed(json!([{"exec": {"command": ["x"]}}]), ready)
}

fn probe_key(attempt: u32) -> (String, String) {
    (
        format!("readinessProbe-{attempt}"),
        format!("Job/restore-readiness-probe-abcdef01-b1-{attempt}"),
    )
}

#[test]
fn the_readiness_probe_waits_its_initial_delay_before_the_first_attempt() {
    let mut o = probe_observed();
    let plan = step(&mut o, now());
    assert!(dispatched(&plan.intents).is_empty());
    assert_eq!(plan.requeue, Some(std::time::Duration::from_secs(10)));
    assert_eq!(
        condition(
            o.restore.status.as_ref().unwrap(),
            CONDITION_READINESS_PROBE
        )
        .1,
        "Processing"
    );
    let plan = step(&mut o, later(10));
    let runs = dispatched(&plan.intents);
    assert_eq!(runs.len(), 1);
    let job = job_of(runs[0].1);
    assert_eq!(
        job.metadata.name.as_deref(),
        Some("restore-readiness-probe-abcdef01-b1-0")
    );
    let spec = job.spec.as_ref().unwrap();
    assert_eq!(
        (spec.backoff_limit, spec.active_deadline_seconds),
        (Some(0), Some(20))
    );
    assert_eq!(container_of(&job).image.as_deref(), Some("postgres:16"));
    assert_eq!(
        env_value(&job, "DP_DB_USER").as_deref(),
        Some("secret:pg-account/username")
    );
    assert!(post_entries(&o).is_empty(), "postReady waits for the probe");
}

#[test]
fn a_failed_probe_is_retried_after_its_period_with_a_new_attempt() {
    let mut o = probe_observed();
    step(&mut o, now());
    step(&mut o, later(10));
    let (name, key) = probe_key(0);
    report(&mut o, &name, &key, ReportedPhase::Failed);
    let plan = step(&mut o, later(12));
    assert!(dispatched(&plan.intents).is_empty());
    assert_eq!(plan.requeue, Some(std::time::Duration::from_secs(7)));
    let (status, reason, message) = condition(
        o.restore.status.as_ref().unwrap(),
        CONDITION_READINESS_PROBE,
    );
    assert_eq!((status.as_str(), reason.as_str()), ("False", "Failed"));
    assert!(
        message.starts_with("readiness probe attempt 0 failed, retrying in 7s"),
        "{message}"
    );
    assert_eq!(
        o.restore.metadata.annotations.as_ref().unwrap()
            [well_known::annotation::READINESS_PROBE_ATTEMPT],
        "1"
    );
    assert!(
        plan.intents
            .iter()
            .any(|i| matches!(i, Intent::Delete { name, .. }
        if name == "restore-readiness-probe-abcdef01-b1-0"))
    );
    assert!(
        dispatched(&step(&mut o, later(15)).intents).is_empty(),
        "not before the period"
    );
    let plan = step(&mut o, later(19));
    assert_eq!(
        job_of(dispatched(&plan.intents)[0].1)
            .metadata
            .name
            .as_deref(),
        Some("restore-readiness-probe-abcdef01-b1-1")
    );
}

#[test]
fn a_passed_probe_opens_the_post_ready_steps() {
    let mut o = probe_observed();
    step(&mut o, now());
    step(&mut o, later(10));
    let (name, key) = probe_key(0);
    report(&mut o, &name, &key, ReportedPhase::Succeeded);
    let plan = step(&mut o, later(12));
    assert_eq!(
        condition(
            o.restore.status.as_ref().unwrap(),
            CONDITION_READINESS_PROBE
        )
        .0,
        "True"
    );
    assert_eq!(
        dispatched(&plan.intents)
            .iter()
            .filter(|(_, a)| matches!(a.kind, Some(pb::action::Kind::Exec(_))))
            .count(),
        2
    );
}

#[test]
fn deleting_a_restore_cancels_its_running_probe() {
    let mut o = probe_observed();
    step(&mut o, now());
    step(&mut o, later(10));
    o.restore.metadata.deletion_timestamp = Some(
        k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(later(11)),
    );
    let plan = step(&mut o, later(11));
    assert!(
        plan.intents
            .iter()
            .any(|i| matches!(i, Intent::Cancel { action_id, .. }
        if *action_id == probe::action_id(&o.restore, 0)))
    );
    assert!(plan.intents.contains(&Intent::RemoveFinalizer));
}
