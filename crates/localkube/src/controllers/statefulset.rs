//! The StatefulSet controller: ordered pods `<name>-<i>` (OrderedReady: each waits for the
//! previous one to be Running and Ready; Parallel: all at once), PVCs from
//! volumeClaimTemplates (`<template>-<name>-<i>`), scale up and down (highest ordinal
//! first), replacement of failed pods, and status counts.

use super::runner::Reconciler;
use super::util::{
    all_keys, controller_ref, create, delete, i, owned_pods, owner_keys, pod_ready, s, write_status,
};
use crate::error::ApiError;
use crate::resource::Builtin;
use crate::rest::{Api, Propagation};
use crate::store::WatchEvent;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// One step of a StatefulSet's reconciliation (a pure decision).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Create(i64),
    Delete(String),
    Wait,
    Done,
}

fn ordinal(set: &str, pod: &str) -> Option<i64> {
    pod.strip_prefix(set)?.strip_prefix('-')?.parse().ok()
}

/// The next step for a set named `name` with `replicas` and its pods (by ordinal).
pub fn next_step(name: &str, replicas: i64, parallel: bool, pods: &[Value]) -> Vec<Step> {
    let by_ordinal: BTreeMap<i64, &Value> = pods
        .iter()
        .filter_map(|p| ordinal(name, s(p, "/metadata/name")).map(|o| (o, p)))
        .collect();
    let deleting = |p: &Value| {
        p.pointer("/metadata/deletionTimestamp")
            .is_some_and(|d| !d.is_null())
    };
    let mut steps = Vec::new();
    // Failed or completed pods are replaced.
    for p in by_ordinal.values() {
        if matches!(s(p, "/status/phase"), "Failed" | "Succeeded") && !deleting(p) {
            steps.push(Step::Delete(s(p, "/metadata/name").to_string()));
        }
    }
    if !steps.is_empty() {
        return steps;
    }
    // Scale down, highest ordinal first.
    let extra: Vec<&&Value> = by_ordinal.range(replicas..).map(|(_, p)| p).rev().collect();
    if !extra.is_empty() {
        for p in extra {
            if deleting(p) {
                if !parallel {
                    return vec![Step::Wait];
                }
                continue;
            }
            steps.push(Step::Delete(s(p, "/metadata/name").to_string()));
            if !parallel {
                break;
            }
        }
        return if steps.is_empty() {
            vec![Step::Wait]
        } else {
            steps
        };
    }
    for o in 0..replicas {
        match by_ordinal.get(&o) {
            None => {
                steps.push(Step::Create(o));
                if !parallel {
                    return steps;
                }
            }
            Some(p) => {
                let healthy = s(p, "/status/phase") == "Running" && pod_ready(p) && !deleting(p);
                if !parallel && !healthy {
                    return vec![Step::Wait];
                }
            }
        }
    }
    if steps.is_empty() {
        steps.push(Step::Done);
    }
    steps
}

pub struct StatefulSetController {
    pub api: Arc<Api>,
}

impl StatefulSetController {
    fn create_pod(&self, set: &Value, ns: &str, ordinal: i64) -> Result<(), ApiError> {
        let name = s(set, "/metadata/name");
        let pod_name = format!("{name}-{ordinal}");
        let template = set
            .pointer("/spec/template")
            .cloned()
            .unwrap_or_else(|| json!({}));
        let mut spec = template.get("spec").cloned().unwrap_or_else(|| json!({}));
        let mut labels = template
            .pointer("/metadata/labels")
            .cloned()
            .unwrap_or_else(|| json!({}));
        labels["statefulset.kubernetes.io/pod-name"] = json!(pod_name);
        labels["apps.kubernetes.io/pod-index"] = json!(ordinal.to_string());
        for claim in set
            .pointer("/spec/volumeClaimTemplates")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let tpl = s(claim, "/metadata/name");
            let claim_name = format!("{tpl}-{pod_name}");
            if self
                .api
                .store()
                .get("core/persistentvolumeclaims", ns, &claim_name)
                .is_none()
            {
                let mut pvc = json!({
                    "apiVersion": "v1",
                    "kind": "PersistentVolumeClaim",
                    "metadata": {"name": claim_name, "labels": template.pointer("/metadata/labels").cloned().unwrap_or_else(|| json!({}))},
                    "spec": claim.get("spec").cloned().unwrap_or_else(|| json!({})),
                });
                if s(
                    set,
                    "/spec/persistentVolumeClaimRetentionPolicy/whenDeleted",
                ) == "Delete"
                {
                    pvc["metadata"]["ownerReferences"] =
                        json!([controller_ref(set, "apps/v1", "StatefulSet")]);
                }
                create(&self.api, Builtin::PersistentVolumeClaim, ns, pvc)?;
            }
            let volumes = spec["volumes"].as_array().cloned().unwrap_or_default();
            if !volumes.iter().any(|v| s(v, "/name") == tpl) {
                let mut volumes = volumes;
                volumes
                    .push(json!({"name": tpl, "persistentVolumeClaim": {"claimName": claim_name}}));
                spec["volumes"] = json!(volumes);
            }
        }
        spec["hostname"] = json!(pod_name);
        if !s(set, "/spec/serviceName").is_empty() {
            spec["subdomain"] = json!(s(set, "/spec/serviceName"));
        }
        let mut metadata = template
            .get("metadata")
            .cloned()
            .unwrap_or_else(|| json!({}));
        metadata["name"] = json!(pod_name);
        metadata["labels"] = labels;
        metadata["ownerReferences"] = json!([controller_ref(set, "apps/v1", "StatefulSet")]);
        create(
            &self.api,
            Builtin::Pod,
            ns,
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec}),
        )
    }
}

impl Reconciler for StatefulSetController {
    type Key = (String, String);

    fn name(&self) -> &'static str {
        "statefulsets"
    }

    fn keys_for(&self, ev: &WatchEvent) -> Vec<(String, String)> {
        owner_keys(ev, "apps/statefulsets", "StatefulSet")
    }

    fn all_keys(&self) -> Vec<(String, String)> {
        all_keys(&self.api, "apps/statefulsets")
    }

    async fn reconcile(&self, key: &(String, String)) -> Result<Option<Duration>, ApiError> {
        let Some(stored) = self.api.store().get("apps/statefulsets", &key.0, &key.1) else {
            return Ok(None);
        };
        if stored.index.deleting {
            return Ok(None);
        }
        let set = stored.value();
        let pods = owned_pods(&self.api, &key.0, &stored.index.uid);
        let replicas = set
            .pointer("/spec/replicas")
            .and_then(Value::as_i64)
            .unwrap_or(1);
        let parallel = s(&set, "/spec/podManagementPolicy") == "Parallel";
        for step in next_step(&key.1, replicas, parallel, &pods) {
            match step {
                Step::Create(o) => self.create_pod(&set, &key.0, o)?,
                Step::Delete(name) => delete(
                    &self.api,
                    Builtin::Pod,
                    &key.0,
                    &name,
                    Propagation::Background,
                )?,
                Step::Wait | Step::Done => {}
            }
        }
        let live: Vec<&Value> = pods
            .iter()
            .filter(|p| ordinal(&key.1, s(p, "/metadata/name")).is_some_and(|o| o < replicas))
            .collect();
        let ready = live.iter().filter(|p| pod_ready(p)).count();
        let status = json!({
            "observedGeneration": i(&set, "/metadata/generation"),
            "replicas": pods.len(),
            "readyReplicas": ready,
            "currentReplicas": pods.len(),
            "updatedReplicas": pods.len(),
            "availableReplicas": ready,
            "collisionCount": 0,
        });
        let rt = self.api.builtin(Builtin::StatefulSet);
        write_status(&self.api, &rt, &set, status)?;
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, phase: &str, ready: bool) -> Value {
        json!({"metadata": {"name": name}, "status": {"phase": phase,
            "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}]}})
    }

    #[test]
    fn ordered_ready_creates_one_pod_at_a_time() {
        assert_eq!(next_step("db", 2, false, &[]), vec![Step::Create(0)]);
        assert_eq!(
            next_step("db", 2, false, &[pod("db-0", "Pending", false)]),
            vec![Step::Wait]
        );
        assert_eq!(
            next_step("db", 2, false, &[pod("db-0", "Running", true)]),
            vec![Step::Create(1)]
        );
        assert_eq!(
            next_step(
                "db",
                2,
                false,
                &[pod("db-0", "Running", true), pod("db-1", "Running", true)]
            ),
            vec![Step::Done]
        );
    }

    #[test]
    fn parallel_creates_all_missing_pods() {
        assert_eq!(
            next_step("db", 3, true, &[pod("db-1", "Pending", false)]),
            vec![Step::Create(0), Step::Create(2)]
        );
    }

    #[test]
    fn scaling_down_deletes_the_highest_ordinal_first() {
        let pods = vec![pod("db-0", "Running", true), pod("db-1", "Running", true)];
        assert_eq!(
            next_step("db", 0, false, &pods),
            vec![Step::Delete("db-1".into())]
        );
        assert_eq!(
            next_step("db", 1, false, &pods),
            vec![Step::Delete("db-1".into())]
        );
    }

    #[test]
    fn failed_pods_are_replaced() {
        assert_eq!(
            next_step("db", 1, false, &[pod("db-0", "Failed", false)]),
            vec![Step::Delete("db-0".into())]
        );
    }
}
