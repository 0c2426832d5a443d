//! Conversions shared by every kind: metadata, times and enum texts.

use std::collections::HashMap;

use cairn_proto::api::v1 as pb;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use serde::Serialize;

/// A Kubernetes time as a protobuf timestamp.
pub fn timestamp(time: &Option<Time>) -> Option<prost_types::Timestamp> {
    time.as_ref().map(|t| prost_types::Timestamp {
        seconds: t.0.as_second(),
        nanos: t.0.subsec_nanosecond(),
    })
}

/// The JSON text of a string enum (`Completed`), empty when absent.
pub fn text<T: Serialize>(value: &Option<T>) -> String {
    value
        .as_ref()
        .and_then(|v| serde_json::to_value(v).ok())
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// An object's metadata as the API shows it.
pub fn object_meta(meta: &ObjectMeta) -> pb::ObjectMeta {
    let map = |m: &Option<std::collections::BTreeMap<String, String>>| -> HashMap<String, String> {
        m.clone().unwrap_or_default().into_iter().collect()
    };
    pb::ObjectMeta {
        namespace: meta.namespace.clone().unwrap_or_default(),
        name: meta.name.clone().unwrap_or_default(),
        uid: meta.uid.clone().unwrap_or_default(),
        resource_version: meta.resource_version.clone().unwrap_or_default(),
        labels: map(&meta.labels),
        annotations: map(&meta.annotations),
        creation_time: timestamp(&meta.creation_timestamp),
        deletion_time: timestamp(&meta.deletion_timestamp),
    }
}

/// The JSON metadata of an object to create.
pub fn new_metadata(
    namespace: &str,
    name: &str,
    labels: &HashMap<String, String>,
    annotations: &HashMap<String, String>,
) -> serde_json::Value {
    let mut meta = serde_json::json!({ "name": name, "namespace": namespace });
    if !labels.is_empty() {
        meta["labels"] = serde_json::json!(labels);
    }
    if !annotations.is_empty() {
        meta["annotations"] = serde_json::json!(annotations);
    }
    meta
}

/// Sets `object[key]` to the string `value` unless it is empty.
pub fn set_text(object: &mut serde_json::Value, key: &str, value: &str) {
    if !value.is_empty() {
        object[key] = serde_json::Value::String(value.to_owned());
    }
}

/// Parameters as the CRs write them.
pub fn parameters_json(parameters: &[pb::Parameter]) -> serde_json::Value {
    serde_json::Value::Array(
        parameters
            .iter()
            .map(|p| serde_json::json!({ "name": p.name, "value": p.value }))
            .collect(),
    )
}

/// Parameters as the API shows them.
pub fn parameters(
    parameters: &Option<Vec<cairn_api::common::ParameterPair>>,
) -> Vec<pb::Parameter> {
    parameters
        .iter()
        .flatten()
        .map(|p| pb::Parameter {
            name: p.name.clone(),
            value: p.value.clone(),
        })
        .collect()
}
