//! Computes the index of a stored object: metadata plus the field-selector values of its type.

use crate::store::ObjectIndex;
use serde_json::Value;

/// The field labels of a storage key and where each reads from (a JSON pointer).
fn field_sources(storage: &str) -> &'static [(&'static str, &'static str)] {
    match storage {
        "core/pods" => &[
            ("spec.nodeName", "/spec/nodeName"),
            ("spec.restartPolicy", "/spec/restartPolicy"),
            ("spec.schedulerName", "/spec/schedulerName"),
            ("spec.serviceAccountName", "/spec/serviceAccountName"),
            ("spec.hostNetwork", "/spec/hostNetwork"),
            ("status.phase", "/status/phase"),
            ("status.podIP", "/status/podIP"),
            ("status.nominatedNodeName", "/status/nominatedNodeName"),
        ],
        "core/events" => &[
            ("involvedObject.kind", "/involvedObject/kind"),
            ("involvedObject.namespace", "/involvedObject/namespace"),
            ("involvedObject.name", "/involvedObject/name"),
            ("involvedObject.uid", "/involvedObject/uid"),
            ("involvedObject.apiVersion", "/involvedObject/apiVersion"),
            (
                "involvedObject.resourceVersion",
                "/involvedObject/resourceVersion",
            ),
            ("involvedObject.fieldPath", "/involvedObject/fieldPath"),
            ("reason", "/reason"),
            ("reportingComponent", "/reportingComponent"),
            ("source", "/source/component"),
            ("type", "/type"),
        ],
        "core/secrets" => &[("type", "/type")],
        "core/namespaces" => &[("status.phase", "/status/phase")],
        "core/nodes" => &[("spec.unschedulable", "/spec/unschedulable")],
        "batch/jobs" => &[("status.successful", "/status/successful")],
        "apps/replicasets" => &[("status.replicas", "/status/replicas")],
        _ => &[],
    }
}

fn scalar(v: Option<&Value>, default: &str) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Bool(b)) => b.to_string(),
        Some(Value::Number(n)) => n.to_string(),
        _ => default.to_string(),
    }
}

/// The index of `object` stored under `storage`.
pub fn index_object(storage: &str, object: &Value) -> ObjectIndex {
    let mut index = ObjectIndex::from_metadata(object);
    let meta = object.get("metadata");
    index.fields.push((
        "metadata.name".to_string(),
        scalar(meta.and_then(|m| m.get("name")), ""),
    ));
    index.fields.push((
        "metadata.namespace".to_string(),
        scalar(meta.and_then(|m| m.get("namespace")), ""),
    ));
    for (field, pointer) in field_sources(storage) {
        let default = match *field {
            "spec.hostNetwork" | "spec.unschedulable" => "false",
            "status.successful" | "status.replicas" => "0",
            _ => "",
        };
        index
            .fields
            .push((field.to_string(), scalar(object.pointer(pointer), default)));
    }
    index
}

/// Maps an events.k8s.io/v1 field label to the core/v1 label the store indexes.
pub fn event_v1_field_to_core(field: &str) -> String {
    if let Some(rest) = field.strip_prefix("regarding.") {
        return format!("involvedObject.{rest}");
    }
    match field {
        "reportingController" => "reportingComponent".to_string(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pod_fields_default_to_empty_and_booleans_to_false() {
        let i = index_object(
            "core/pods",
            &json!({"metadata": {"name": "p", "namespace": "d"}, "spec": {}}),
        );
        assert_eq!(i.field("spec.nodeName"), Some(""));
        assert_eq!(i.field("spec.hostNetwork"), Some("false"));
        assert_eq!(i.field("metadata.namespace"), Some("d"));
    }

    #[test]
    fn event_fields_index_involved_object_and_source_component() {
        let i = index_object(
            "core/events",
            &json!({"metadata": {"name": "e"}, "involvedObject": {"kind": "Pod", "uid": "u"},
                    "source": {"component": "kubelet"}}),
        );
        assert_eq!(i.field("involvedObject.kind"), Some("Pod"));
        assert_eq!(i.field("source"), Some("kubelet"));
        assert_eq!(
            event_v1_field_to_core("regarding.uid"),
            "involvedObject.uid"
        );
    }
}
