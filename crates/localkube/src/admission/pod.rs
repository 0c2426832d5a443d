//! Pods: defaults (`SetDefaults_Pod`, ServiceAccount and DefaultTolerationSeconds
//! admission), binding to the one node when its nodeSelector allows, validation of the
//! fields the kubelet uses, and the update rules (a pod's spec is mostly immutable).

use super::{default_at, invalid};
use crate::error::{ApiError, FieldError};
use crate::resource::ResourceType;
use crate::rest::Api;
use crate::validation::is_dns1123_label;
use serde_json::{Value, json};

const CONTAINER_LISTS: &[&str] = &["initContainers", "containers"];

fn default_container(c: &mut Value) {
    default_at(
        c,
        &["terminationMessagePath"],
        json!("/dev/termination-log"),
    );
    default_at(c, &["terminationMessagePolicy"], json!("File"));
    let image = c.get("image").and_then(Value::as_str).unwrap_or_default();
    let tag = image.rsplit('/').next().unwrap_or_default();
    let pull = if image.contains('@') {
        "IfNotPresent"
    } else {
        match tag.split_once(':') {
            Some((_, "latest")) | None => "Always",
            Some(_) => "IfNotPresent",
        }
    };
    default_at(c, &["imagePullPolicy"], json!(pull));
    default_at(c, &["resources"], json!({}));
    if let Some(ports) = c.get_mut("ports").and_then(Value::as_array_mut) {
        for p in ports {
            default_at(p, &["protocol"], json!("TCP"));
        }
    }
    if let Some(env) = c.get_mut("env").and_then(Value::as_array_mut) {
        for e in env {
            if e.pointer("/valueFrom/fieldRef").is_some() {
                default_at(e, &["valueFrom", "fieldRef", "apiVersion"], json!("v1"));
            }
        }
    }
}

/// Applies pod spec defaults (also used for Job, StatefulSet and other templates).
pub fn default_pod_spec(spec: &mut Value) {
    default_at(spec, &["restartPolicy"], json!("Always"));
    default_at(spec, &["terminationGracePeriodSeconds"], json!(30));
    default_at(spec, &["dnsPolicy"], json!("ClusterFirst"));
    default_at(spec, &["securityContext"], json!({}));
    default_at(spec, &["schedulerName"], json!("default-scheduler"));
    for list in CONTAINER_LISTS {
        if let Some(cs) = spec.get_mut(*list).and_then(Value::as_array_mut) {
            for c in cs {
                default_container(c);
            }
        }
    }
    if let Some(vols) = spec.get_mut("volumes").and_then(Value::as_array_mut) {
        for v in vols {
            for kind in ["secret", "configMap", "downwardAPI", "projected"] {
                if v.get(kind).is_some() {
                    default_at(v, &[kind, "defaultMode"], json!(420));
                }
            }
            if v.get("hostPath").is_some() {
                default_at(v, &["hostPath", "type"], json!(""));
            }
            if let Some(items) = v
                .pointer_mut("/downwardAPI/items")
                .and_then(Value::as_array_mut)
            {
                for item in items {
                    if item.get("fieldRef").is_some() {
                        default_at(item, &["fieldRef", "apiVersion"], json!("v1"));
                    }
                }
            }
        }
    }
}

/// The QoS class the apiserver computes from container resources.
pub fn pod_qos_class(spec: &Value) -> &'static str {
    let mut any = false;
    let mut guaranteed = true;
    for list in CONTAINER_LISTS {
        for c in spec
            .get(*list)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let requests = c.pointer("/resources/requests").and_then(Value::as_object);
            let limits = c.pointer("/resources/limits").and_then(Value::as_object);
            if requests.is_some_and(|r| !r.is_empty()) || limits.is_some_and(|l| !l.is_empty()) {
                any = true;
            }
            for res in ["cpu", "memory"] {
                let limit = limits.and_then(|l| l.get(res));
                let request = requests.and_then(|r| r.get(res)).or(limit);
                if limit.is_none() || request != limit {
                    guaranteed = false;
                }
            }
        }
    }
    match (any, guaranteed) {
        (false, _) => "BestEffort",
        (true, true) => "Guaranteed",
        (true, false) => "Burstable",
    }
}

/// Whether the node's labels satisfy the pod's `nodeSelector`.
fn selector_matches(spec: &Value, node_labels: &serde_json::Map<String, Value>) -> bool {
    spec.get("nodeSelector")
        .and_then(Value::as_object)
        .is_none_or(|sel| sel.iter().all(|(k, v)| node_labels.get(k) == Some(v)))
}

fn validate_spec(spec: &Value, base: &str) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let containers = spec.get("containers").and_then(Value::as_array);
    if containers.is_none_or(|c| c.is_empty()) {
        errors.push(FieldError::required(format!("{base}.containers"), ""));
    }
    let volume_names: Vec<&str> = spec
        .get("volumes")
        .and_then(Value::as_array)
        .map(|v| {
            v.iter()
                .filter_map(|v| v.get("name").and_then(Value::as_str))
                .collect()
        })
        .unwrap_or_default();
    for (i, n) in volume_names.iter().enumerate() {
        if volume_names[..i].contains(n) {
            errors.push(FieldError::duplicate(
                format!("{base}.volumes[{i}].name"),
                json!(n),
            ));
        }
    }
    let mut seen_names: Vec<String> = Vec::new();
    for list in CONTAINER_LISTS {
        for (i, c) in spec
            .get(*list)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            let path = format!("{base}.{list}[{i}]");
            let name = c.get("name").and_then(Value::as_str).unwrap_or_default();
            if name.is_empty() {
                errors.push(FieldError::required(format!("{path}.name"), ""));
            } else if let Err(why) = is_dns1123_label(name) {
                errors.push(FieldError::invalid(
                    format!("{path}.name"),
                    json!(name),
                    why,
                ));
            } else if seen_names.iter().any(|s| s == name) {
                errors.push(FieldError::duplicate(format!("{path}.name"), json!(name)));
            } else {
                seen_names.push(name.to_string());
            }
            if c.get("image")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                errors.push(FieldError::required(format!("{path}.image"), ""));
            }
            for (j, m) in c
                .get("volumeMounts")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .enumerate()
            {
                let vname = m.get("name").and_then(Value::as_str).unwrap_or_default();
                if !volume_names.contains(&vname) {
                    errors.push(FieldError {
                        kind: crate::error::FieldErrorKind::NotFound,
                        field: format!("{path}.volumeMounts[{j}].name"),
                        value: Some(json!(vname)),
                        detail: String::new(),
                    });
                }
                if m.get("mountPath")
                    .and_then(Value::as_str)
                    .is_none_or(str::is_empty)
                {
                    errors.push(FieldError::required(
                        format!("{path}.volumeMounts[{j}].mountPath"),
                        "",
                    ));
                }
            }
        }
    }
    if let Some(p) = spec.get("restartPolicy").and_then(Value::as_str)
        && !matches!(p, "Always" | "OnFailure" | "Never")
    {
        errors.push(FieldError::not_supported(
            format!("{base}.restartPolicy"),
            json!(p),
            &["Always", "Never", "OnFailure"],
        ));
    }
    errors
}

/// Validates a pod template's spec (used by the workload controllers' admission too).
pub fn validate_pod_spec(spec: &Value, base: &str) -> Vec<FieldError> {
    validate_spec(spec, base)
}

pub fn on_create(api: &Api, rt: &ResourceType, pod: &mut Value) -> Result<(), ApiError> {
    if !pod.get("spec").is_some_and(Value::is_object) {
        return Err(ApiError::invalid(
            &rt.kind,
            &rt.group,
            crate::rest::meta::meta_str(pod, "name"),
            &[FieldError::required("spec.containers", "")],
        ));
    }
    let spec = &mut pod["spec"];
    default_pod_spec(spec);
    let sa = spec
        .get("serviceAccountName")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .or_else(|| {
            spec.get("serviceAccount")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
        })
        .unwrap_or("default")
        .to_string();
    spec["serviceAccountName"] = json!(sa);
    spec["serviceAccount"] = json!(sa);
    default_at(spec, &["enableServiceLinks"], json!(true));
    default_at(spec, &["priority"], json!(0));
    default_at(spec, &["preemptionPolicy"], json!("PreemptLowerPriority"));
    let tolerations = spec
        .get("tolerations")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut tolerations = tolerations;
    for key in [
        "node.kubernetes.io/not-ready",
        "node.kubernetes.io/unreachable",
    ] {
        if !tolerations
            .iter()
            .any(|t| t.get("key").and_then(Value::as_str) == Some(key))
        {
            tolerations.push(json!({"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}));
        }
    }
    spec["tolerations"] = json!(tolerations);

    let errors = validate_spec(spec, "spec");
    invalid(rt, pod, errors)?;
    enforce_pod_security(api, pod)?;

    // Scheduling: there is one node; bind to it when the nodeSelector allows.
    let spec = &mut pod["spec"];
    if spec
        .get("nodeName")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        let node = api.store().get("core/nodes", "", &api.config.node_name);
        let labels = node
            .map(|n| n.value())
            .and_then(|n| {
                n.pointer("/metadata/labels")
                    .and_then(Value::as_object)
                    .cloned()
            })
            .unwrap_or_default();
        if selector_matches(spec, &labels) {
            spec["nodeName"] = json!(api.config.node_name);
        }
    }
    let qos = pod_qos_class(&pod["spec"]);
    pod["status"] = json!({"phase": "Pending", "qosClass": qos});
    Ok(())
}

/// Pod Security admission: the level the pod's namespace enforces
/// (`pod-security.kubernetes.io/enforce`), checked on the defaulted pod as the apiserver does.
fn enforce_pod_security(api: &Api, pod: &Value) -> Result<(), ApiError> {
    let namespace = crate::rest::meta::meta_str(pod, "namespace");
    let Some(level) = api
        .store()
        .get("core/namespaces", "", namespace)
        .and_then(|ns| super::pod_security::enforced(&ns.value()))
    else {
        return Ok(());
    };
    let name = crate::rest::meta::meta_str(pod, "name");
    match super::pod_security::refusal(level, name, pod) {
        Some(message) => Err(ApiError::forbidden(message)),
        None => Ok(()),
    }
}

/// Fields of a pod spec an update may change (upstream's `ValidatePodUpdate`).
pub fn on_update(rt: &ResourceType, new: &mut Value, old: &Value) -> Result<(), ApiError> {
    if let Some(spec) = new.get_mut("spec") {
        default_pod_spec(spec);
    }
    let mut allowed = old.get("spec").cloned().unwrap_or(Value::Null);
    let new_spec = new.get("spec").cloned().unwrap_or(Value::Null);
    for list in CONTAINER_LISTS {
        let images: Vec<Value> = new_spec
            .get(*list)
            .and_then(Value::as_array)
            .map(|cs| {
                cs.iter()
                    .map(|c| c.get("image").cloned().unwrap_or(Value::Null))
                    .collect()
            })
            .unwrap_or_default();
        if let Some(cs) = allowed.get_mut(*list).and_then(Value::as_array_mut)
            && cs.len() == images.len()
        {
            for (c, image) in cs.iter_mut().zip(images) {
                c["image"] = image;
            }
        }
    }
    for field in [
        "activeDeadlineSeconds",
        "tolerations",
        "terminationGracePeriodSeconds",
    ] {
        match new_spec.get(field) {
            Some(v) => allowed[field] = v.clone(),
            None => {
                if let Some(m) = allowed.as_object_mut() {
                    m.remove(field);
                }
            }
        }
    }
    if allowed != new_spec {
        return invalid(
            rt,
            new,
            vec![FieldError::forbidden(
                "spec",
                "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)",
            )],
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_pull_policy_follows_the_tag() {
        let mut spec = json!({"containers": [
            {"name": "a", "image": "busybox"},
            {"name": "b", "image": "busybox:1.36"},
            {"name": "c", "image": "registry:5000/x:latest"}
        ]});
        default_pod_spec(&mut spec);
        let pulls: Vec<_> = spec["containers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["imagePullPolicy"].clone())
            .collect();
        assert_eq!(
            pulls,
            [json!("Always"), json!("IfNotPresent"), json!("Always")]
        );
        assert_eq!(spec["restartPolicy"], "Always");
    }

    #[test]
    fn qos_class_is_computed_from_requests_and_limits() {
        assert_eq!(
            pod_qos_class(&json!({"containers": [{"name": "a"}]})),
            "BestEffort"
        );
        assert_eq!(
            pod_qos_class(
                &json!({"containers": [{"resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}]})
            ),
            "Guaranteed"
        );
        assert_eq!(
            pod_qos_class(&json!({"containers": [{"resources": {"requests": {"cpu": "1"}}}]})),
            "Burstable"
        );
    }

    #[test]
    fn mounts_of_undeclared_volumes_and_duplicate_names_are_rejected() {
        let spec = json!({"containers": [
            {"name": "a", "image": "x", "volumeMounts": [{"name": "missing", "mountPath": "/m"}]},
            {"name": "a", "image": "x"}
        ]});
        let errs = validate_spec(&spec, "spec");
        let fields: Vec<_> = errs.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "spec.containers[0].volumeMounts[0].name",
                "spec.containers[1].name"
            ]
        );
    }

    #[test]
    fn node_selectors_must_match_the_node_labels() {
        let labels = json!({"kubernetes.io/hostname": "h"})
            .as_object()
            .unwrap()
            .clone();
        assert!(selector_matches(&json!({}), &labels));
        assert!(selector_matches(
            &json!({"nodeSelector": {"kubernetes.io/hostname": "h"}}),
            &labels
        ));
        assert!(!selector_matches(
            &json!({"nodeSelector": {"kubernetes.io/hostname": "other"}}),
            &labels
        ));
    }
}
