//! The Job controller: a pure planner (`plan`) from a Job and its pods to the status to
//! write and the pods to create or delete, plus the IO shell. Handles completions,
//! parallelism, backoffLimit (failed pods, and container restarts under OnFailure),
//! activeDeadlineSeconds, suspend and ttlSecondsAfterFinished.

use super::runner::Reconciler;
use super::util::{
    all_keys, condition_true, controller_ref, create, delete, i, owned_pods, owner_keys, pod_ready,
    s, set_condition, write_status,
};
use crate::error::ApiError;
use crate::resource::Builtin;
use crate::rest::{Api, Propagation};
use crate::store::WatchEvent;
use crate::time::{format_time, parse};
use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

/// What the controller should do for one Job.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub status: Value,
    /// How many new pods to create.
    pub create: usize,
    /// Active pods to delete (the Job finished, failed or was suspended).
    pub delete_pods: Vec<String>,
    /// ttlSecondsAfterFinished elapsed.
    pub delete_job: bool,
    pub requeue: Option<Duration>,
}

fn phase(p: &Value) -> &str {
    s(p, "/status/phase")
}

fn restarts(p: &Value) -> i64 {
    p.pointer("/status/containerStatuses")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .chain(
            p.pointer("/status/initContainerStatuses")
                .and_then(Value::as_array)
                .into_iter()
                .flatten(),
        )
        .map(|c| i(c, "/restartCount"))
        .sum()
}

/// Decides what to do for `job` given its pods at `now`.
pub fn plan(job: &Value, pods: &[Value], now: Timestamp) -> Plan {
    let mut status = job.get("status").cloned().unwrap_or_else(|| json!({}));
    if !status.is_object() {
        status = json!({});
    }
    let mut conditions: Vec<Value> = status
        .get("conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let finished = condition_true(job, "Complete") || condition_true(job, "Failed");
    let completions = job
        .pointer("/spec/completions")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    let parallelism = job
        .pointer("/spec/parallelism")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    let backoff_limit = job
        .pointer("/spec/backoffLimit")
        .and_then(Value::as_i64)
        .unwrap_or(6);
    let on_failure = s(job, "/spec/template/spec/restartPolicy") == "OnFailure";
    let live: Vec<&Value> = pods
        .iter()
        .filter(|p| {
            p.pointer("/metadata/deletionTimestamp")
                .is_none_or(Value::is_null)
        })
        .collect();
    let active: Vec<&Value> = live
        .iter()
        .copied()
        .filter(|p| !matches!(phase(p), "Succeeded" | "Failed"))
        .collect();
    let terminating = pods.len() - live.len();
    let succeeded = (pods.iter().filter(|p| phase(p) == "Succeeded").count() as i64)
        .max(i(&status, "/succeeded"));
    let mut failed =
        (pods.iter().filter(|p| phase(p) == "Failed").count() as i64).max(i(&status, "/failed"));
    if on_failure {
        failed = failed.max(active.iter().map(|p| restarts(p)).sum::<i64>());
    }
    let mut plan = Plan {
        status: json!({}),
        create: 0,
        delete_pods: Vec::new(),
        delete_job: false,
        requeue: None,
    };
    let start = status
        .get("startTime")
        .and_then(Value::as_str)
        .and_then(parse)
        .unwrap_or(now);
    let suspended = job.pointer("/spec/suspend").and_then(Value::as_bool) == Some(true);

    if finished {
        let done_at = status
            .get("completionTime")
            .and_then(Value::as_str)
            .and_then(parse)
            .or_else(|| {
                conditions
                    .iter()
                    .find(|c| {
                        matches!(s(c, "/type"), "Complete" | "Failed") && s(c, "/status") == "True"
                    })
                    .and_then(|c| {
                        c.get("lastTransitionTime")
                            .and_then(Value::as_str)
                            .and_then(parse)
                    })
            })
            .unwrap_or(now);
        if let Some(ttl) = job
            .pointer("/spec/ttlSecondsAfterFinished")
            .and_then(Value::as_i64)
        {
            let expiry = done_at
                .checked_add(SignedDuration::from_secs(ttl))
                .unwrap_or(done_at);
            if now >= expiry {
                plan.delete_job = true;
            } else {
                plan.requeue = Some(Duration::from_millis(
                    now.duration_until(expiry).as_millis().max(0) as u64 + 10,
                ));
            }
        }
        plan.delete_pods = active
            .iter()
            .map(|p| s(p, "/metadata/name").to_string())
            .collect();
        status["active"] = json!(0);
        status["ready"] = json!(0);
        status["terminating"] = json!(terminating);
        plan.status = status;
        return plan;
    }

    if status.get("startTime").is_none() && !suspended {
        status["startTime"] = json!(format_time(now));
    }
    let deadline = job
        .pointer("/spec/activeDeadlineSeconds")
        .and_then(Value::as_i64)
        .and_then(|d| start.checked_add(SignedDuration::from_secs(d)).ok());
    let fail = |reason: &str, message: &str, conditions: &mut Vec<Value>| {
        set_condition(conditions, "FailureTarget", true, reason, message);
        set_condition(conditions, "Failed", true, reason, message);
    };
    if succeeded >= completions {
        set_condition(
            &mut conditions,
            "SuccessCriteriaMet",
            true,
            "CompletionsReached",
            "Reached expected number of succeeded pods",
        );
        set_condition(
            &mut conditions,
            "Complete",
            true,
            "CompletionsReached",
            "Reached expected number of succeeded pods",
        );
        status["completionTime"] = json!(format_time(now));
        plan.delete_pods = active
            .iter()
            .map(|p| s(p, "/metadata/name").to_string())
            .collect();
    } else if failed > backoff_limit {
        fail(
            "BackoffLimitExceeded",
            "Job has reached the specified backoff limit",
            &mut conditions,
        );
        plan.delete_pods = active
            .iter()
            .map(|p| s(p, "/metadata/name").to_string())
            .collect();
    } else if deadline.is_some_and(|d| now >= d) {
        fail(
            "DeadlineExceeded",
            "Job was active longer than specified deadline",
            &mut conditions,
        );
        plan.delete_pods = active
            .iter()
            .map(|p| s(p, "/metadata/name").to_string())
            .collect();
    } else if suspended {
        set_condition(
            &mut conditions,
            "Suspended",
            true,
            "JobSuspended",
            "Job suspended",
        );
        plan.delete_pods = active
            .iter()
            .map(|p| s(p, "/metadata/name").to_string())
            .collect();
    } else {
        if conditions.iter().any(|c| s(c, "/type") == "Suspended") {
            set_condition(
                &mut conditions,
                "Suspended",
                false,
                "JobResumed",
                "Job resumed",
            );
        }
        let remaining = completions - succeeded;
        let want = parallelism.min(remaining).max(0);
        plan.create = (want - active.len() as i64).max(0) as usize;
        if let Some(d) = deadline {
            plan.requeue = Some(Duration::from_millis(
                now.duration_until(d).as_millis().max(0) as u64 + 10,
            ));
        }
    }
    let still_active = if plan.delete_pods.is_empty() {
        active.len()
    } else {
        0
    };
    status["active"] = json!(still_active);
    status["ready"] = json!(
        active
            .iter()
            .filter(|p| pod_ready(p))
            .count()
            .min(still_active)
    );
    status["succeeded"] = json!(succeeded);
    status["failed"] = json!(failed);
    status["terminating"] = json!(terminating);
    status["uncountedTerminatedPods"] = json!({});
    if !conditions.is_empty() {
        status["conditions"] = json!(conditions);
    }
    for k in ["succeeded", "failed"] {
        if status[k] == json!(0)
            && let Some(m) = status.as_object_mut()
        {
            m.remove(k);
        }
    }
    plan.status = status;
    plan
}

pub struct JobController {
    pub api: Arc<Api>,
}

impl Reconciler for JobController {
    type Key = (String, String);

    fn name(&self) -> &'static str {
        "jobs"
    }

    fn keys_for(&self, ev: &WatchEvent) -> Vec<(String, String)> {
        owner_keys(ev, "batch/jobs", "Job")
    }

    fn all_keys(&self) -> Vec<(String, String)> {
        all_keys(&self.api, "batch/jobs")
    }

    async fn reconcile(&self, key: &(String, String)) -> Result<Option<Duration>, ApiError> {
        let Some(stored) = self.api.store().get("batch/jobs", &key.0, &key.1) else {
            return Ok(None);
        };
        if stored.index.deleting {
            return Ok(None);
        }
        let job = stored.value();
        let pods = owned_pods(&self.api, &key.0, &stored.index.uid);
        let plan = plan(&job, &pods, Timestamp::now());
        if plan.delete_job {
            delete(
                &self.api,
                Builtin::Job,
                &key.0,
                &key.1,
                Propagation::Background,
            )?;
            return Ok(None);
        }
        for name in &plan.delete_pods {
            delete(
                &self.api,
                Builtin::Pod,
                &key.0,
                name,
                Propagation::Background,
            )?;
        }
        let template = job
            .pointer("/spec/template")
            .cloned()
            .unwrap_or_else(|| json!({}));
        for _ in 0..plan.create {
            let mut pod = json!({
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": template.get("metadata").cloned().unwrap_or_else(|| json!({})),
                "spec": template.get("spec").cloned().unwrap_or_else(|| json!({})),
            });
            pod["metadata"]["generateName"] = json!(format!("{}-", key.1));
            pod["metadata"]["ownerReferences"] = json!([controller_ref(&job, "batch/v1", "Job")]);
            if let Some(m) = pod["metadata"].as_object_mut() {
                m.remove("name");
                m.remove("namespace");
            }
            if let Err(err) = create(&self.api, Builtin::Pod, &key.0, pod) {
                failed_create_event(&self.api, &job, &err.message);
                return Err(err);
            }
        }
        let rt = self.api.builtin(Builtin::Job);
        write_status(&self.api, &rt, &job, plan.status)?;
        Ok(plan.requeue)
    }
}

/// Records the Job controller's `FailedCreate` Warning event (`Error creating: <why>`) on the
/// Job, as kube-controller-manager does when the apiserver refuses its pod (Pod Security,
/// quota). One event per Job (a fixed name): the retries do not pile up events.
fn failed_create_event(api: &Api, job: &Value, why: &str) {
    let (namespace, name) = (s(job, "/metadata/namespace"), s(job, "/metadata/name"));
    let uid = s(job, "/metadata/uid");
    let now = format_time(Timestamp::now());
    let event = json!({
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {
            "name": format!("{name}.{}.failedcreate", uid.get(..8).unwrap_or(uid)),
            "namespace": namespace,
        },
        "involvedObject": {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "namespace": namespace,
            "name": name,
            "uid": uid,
        },
        "reason": "FailedCreate",
        "message": format!("Error creating: {why}"),
        "type": "Warning",
        "source": {"component": "job-controller"},
        "reportingComponent": "job-controller",
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    });
    if let Err(err) = create(api, Builtin::Event, namespace, event) {
        tracing::warn!(job = name, error = %err, "recording a FailedCreate event failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(spec: Value) -> Value {
        json!({"metadata": {"name": "j"}, "spec": spec})
    }

    fn pod(phase: &str) -> Value {
        json!({"metadata": {"name": format!("j-{phase}")}, "status": {"phase": phase}})
    }

    fn now() -> Timestamp {
        "2026-11-22T01:00:00Z".parse().unwrap()
    }

    #[test]
    fn a_new_job_creates_parallelism_pods_and_records_its_start() {
        let p = plan(
            &job(json!({"completions": 3, "parallelism": 2})),
            &[],
            now(),
        );
        assert_eq!(p.create, 2);
        assert_eq!(p.status["startTime"], "2026-11-22T01:00:00Z");
    }

    #[test]
    fn enough_successes_complete_the_job() {
        let p = plan(&job(json!({"completions": 1})), &[pod("Succeeded")], now());
        assert_eq!(p.create, 0);
        let types: Vec<_> = p.status["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["type"].clone())
            .collect();
        assert_eq!(types, [json!("SuccessCriteriaMet"), json!("Complete")]);
        assert_eq!(p.status["succeeded"], 1);
        assert!(p.status["completionTime"].is_string());
    }

    #[test]
    fn failures_past_the_backoff_limit_fail_the_job() {
        let pods = vec![pod("Failed"), pod("Failed")];
        let p = plan(&job(json!({"backoffLimit": 1})), &pods, now());
        let failed = p.status["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "Failed")
            .unwrap();
        assert_eq!(failed["reason"], "BackoffLimitExceeded");
        let p = plan(&job(json!({"backoffLimit": 2})), &pods, now());
        assert_eq!(p.create, 1, "one more try within the limit");
    }

    #[test]
    fn on_failure_restarts_count_against_the_backoff_limit() {
        let running = json!({"metadata": {"name": "j-x"}, "status": {"phase": "Running", "containerStatuses": [{"restartCount": 3}]}});
        let p = plan(
            &job(json!({"backoffLimit": 2, "template": {"spec": {"restartPolicy": "OnFailure"}}})),
            &[running],
            now(),
        );
        assert_eq!(p.delete_pods, ["j-x"]);
    }

    #[test]
    fn the_active_deadline_fails_the_job_and_stops_its_pods() {
        let mut j = job(json!({"activeDeadlineSeconds": 10}));
        j["status"] = json!({"startTime": "2026-11-22T00:59:00Z"});
        let p = plan(&j, &[pod("Running")], now());
        let failed = p.status["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "Failed")
            .unwrap();
        assert_eq!(failed["reason"], "DeadlineExceeded");
        assert_eq!(p.delete_pods.len(), 1);
    }

    #[test]
    fn finished_jobs_are_deleted_after_their_ttl() {
        let mut j = job(json!({"ttlSecondsAfterFinished": 30}));
        j["status"] = json!({"completionTime": "2026-11-22T00:59:00Z", "conditions": [{"type": "Complete", "status": "True"}]});
        assert!(plan(&j, &[], now()).delete_job);
        j["status"]["completionTime"] = json!("2026-11-22T00:59:50Z");
        let p = plan(&j, &[], now());
        assert!(!p.delete_job);
        assert!(p.requeue.is_some());
    }
}
