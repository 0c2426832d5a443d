//! The StatefulSet controller: ordered pods `<name>-<i>` (OrderedReady: each waits for the
//! previous one to be Running and Ready; Parallel: all at once), PVCs from
//! volumeClaimTemplates (`<template>-<name>-<i>`), scale up and down (highest ordinal
//! first), replacement of failed pods, rolling updates of a changed pod template (the pods'
//! `controller-revision-hash` label; `updateStrategy.type: OnDelete` leaves them), and status
//! counts.

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

/// The label holding the revision of the template a pod was created from.
pub const REVISION_LABEL: &str = "controller-revision-hash";

/// The revision of a set's pod template: `<name>-<hash of the template>` (keys sorted, so a
/// template written in another key order is the same revision).
pub fn template_revision(name: &str, template: &Value) -> String {
    fn sorted(v: &Value) -> Value {
        match v {
            Value::Object(map) => {
                let mut out: serde_json::Map<String, Value> =
                    map.iter().map(|(k, v)| (k.clone(), sorted(v))).collect();
                out.sort_keys();
                Value::Object(out)
            }
            Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    let hash = blake3::hash(sorted(template).to_string().as_bytes());
    format!("{name}-{}", &hash.to_hex()[..10])
}

/// A rolling update's next step once every pod exists and none is being deleted (as the
/// StatefulSet controller: one pod at a time, the highest ordinal first, each replaced pod
/// created again from the new template before the next goes): the highest-ordinal pod not at
/// `revision`, if any.
pub fn rollout_step(name: &str, revision: &str, pods: &[Value]) -> Option<Step> {
    let deleting = pods.iter().any(|p| {
        p.pointer("/metadata/deletionTimestamp")
            .is_some_and(|d| !d.is_null())
    });
    if deleting {
        return None;
    }
    pods.iter()
        .filter_map(|p| {
            let pod = s(p, "/metadata/name");
            let labels = p.pointer("/metadata/labels");
            let at = labels
                .and_then(|l| l.get(REVISION_LABEL))
                .and_then(Value::as_str);
            if at == Some(revision) {
                return None;
            }
            Some((ordinal(name, pod)?, pod.to_string()))
        })
        .max()
        .map(|(_, pod)| Step::Delete(pod))
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
        labels[REVISION_LABEL] = json!(template_revision(name, &template));
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
        let revision = template_revision(
            &key.1,
            set.pointer("/spec/template").unwrap_or(&Value::Null),
        );
        let mut steps = next_step(&key.1, replicas, parallel, &pods);
        if steps == [Step::Done]
            && s(&set, "/spec/updateStrategy/type") != "OnDelete"
            && let Some(step) = rollout_step(&key.1, &revision, &pods)
        {
            steps = vec![step];
        }
        for step in steps {
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
        let updated = pods
            .iter()
            .filter(|p| s(p, &format!("/metadata/labels/{REVISION_LABEL}")) == revision)
            .count();
        let status = json!({
            "observedGeneration": i(&set, "/metadata/generation"),
            "replicas": pods.len(),
            "readyReplicas": ready,
            "currentReplicas": pods.len(),
            "updatedReplicas": updated,
            "availableReplicas": ready,
            "currentRevision": revision,
            "updateRevision": revision,
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

    fn at(mut pod: Value, revision: &str) -> Value {
        pod["metadata"]["labels"] = json!({ REVISION_LABEL: revision });
        pod
    }

    #[test]
    fn a_changed_template_replaces_the_highest_outdated_pod_first_one_at_a_time() {
        let old = json!({"spec": {"containers": [{"name": "a", "env": [{"name": "TTL", "value": "60"}]}]}});
        let new = json!({"spec": {"containers": [{"name": "a", "env": [{"name": "TTL", "value": "120"}]}]}});
        let (r1, r2) = (template_revision("db", &old), template_revision("db", &new));
        assert_ne!(r1, r2);
        // The key order does not make a revision.
        let reordered: Value = serde_json::from_str(
            r#"{"spec": {"containers": [{"env": [{"value": "60", "name": "TTL"}], "name": "a"}]}}"#,
        )
        .expect("json");
        assert_eq!(template_revision("db", &reordered), r1);
        let pods = vec![
            at(pod("db-0", "Running", true), &r1),
            at(pod("db-1", "Running", true), &r1),
        ];
        assert_eq!(rollout_step("db", &r1, &pods), None);
        assert_eq!(
            rollout_step("db", &r2, &pods),
            Some(Step::Delete("db-1".into()))
        );
        let mut half = vec![
            at(pod("db-0", "Running", true), &r1),
            at(pod("db-1", "Running", true), &r2),
        ];
        assert_eq!(
            rollout_step("db", &r2, &half),
            Some(Step::Delete("db-0".into()))
        );
        // Never two at once: nothing more while a pod is going.
        half[1]["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        assert_eq!(rollout_step("db", &r2, &half), None);
    }

    #[test]
    fn failed_pods_are_replaced() {
        assert_eq!(
            next_step("db", 1, false, &[pod("db-0", "Failed", false)]),
            vec![Step::Delete("db-0".into())]
        );
    }
}
