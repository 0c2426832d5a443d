//! Resource types derived from established CustomResourceDefinitions.

use super::{ResourceType, Subresource};
use serde_json::Value;
use std::sync::Arc;

/// An `additionalPrinterColumns` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct PrinterColumn {
    pub name: String,
    pub type_: String,
    pub format: String,
    pub description: String,
    pub priority: i64,
    pub json_path: String,
}

/// What a custom resource type carries beyond its names.
#[derive(Debug, Clone)]
pub struct CustomResource {
    pub crd_name: String,
    pub storage_version: String,
    /// This version's `openAPIV3Schema`.
    pub schema: Option<Value>,
    /// The same, compiled for pruning, defaulting and validation.
    pub compiled: Option<Arc<cairn_schema::Schema>>,
    pub printer_columns: Vec<PrinterColumn>,
    /// The CRD is being deleted: no new objects may be created.
    pub terminating: bool,
}

fn s<'a>(v: &'a Value, p: &str) -> &'a str {
    v.pointer(p).and_then(Value::as_str).unwrap_or_default()
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// Whether the CRD's `Established` condition is `True`.
pub fn is_established(crd: &Value) -> bool {
    crd.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| s(c, "/type") == "Established" && s(c, "/status") == "True")
        })
}

/// The resource types an established CRD serves (one per served version), or none.
pub fn custom_types(crd: &Value) -> Vec<ResourceType> {
    if !is_established(crd) {
        return Vec::new();
    }
    let group = s(crd, "/spec/group");
    let names = crd
        .pointer("/status/acceptedNames")
        .filter(|n| n.get("plural").is_some())
        .or_else(|| crd.pointer("/spec/names"));
    let Some(names) = names else {
        return Vec::new();
    };
    let kind = s(names, "/kind").to_string();
    let plural = s(names, "/plural").to_string();
    let singular = match s(names, "/singular") {
        "" => kind.to_lowercase(),
        other => other.to_string(),
    };
    let list_kind = match s(names, "/listKind") {
        "" => format!("{kind}List"),
        other => other.to_string(),
    };
    let namespaced = s(crd, "/spec/scope") != "Cluster";
    let versions = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let storage_version = versions
        .iter()
        .find(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
        .map(|v| s(v, "/name").to_string())
        .unwrap_or_default();
    let terminating = crd
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|d| !d.is_null());
    versions
        .iter()
        .filter(|v| v.get("served").and_then(Value::as_bool) == Some(true))
        .map(|v| {
            let mut subresources = Vec::new();
            if v.pointer("/subresources/status").is_some() {
                subresources.push(Subresource::Status);
            }
            let printer_columns = v
                .get("additionalPrinterColumns")
                .and_then(Value::as_array)
                .map(|cols| {
                    cols.iter()
                        .map(|c| PrinterColumn {
                            name: s(c, "/name").to_string(),
                            type_: s(c, "/type").to_string(),
                            format: s(c, "/format").to_string(),
                            description: s(c, "/description").to_string(),
                            priority: c.get("priority").and_then(Value::as_i64).unwrap_or(0),
                            json_path: s(c, "/jsonPath").to_string(),
                        })
                        .collect()
                })
                .unwrap_or_default();
            ResourceType {
                group: group.to_string(),
                version: s(v, "/name").to_string(),
                kind: kind.clone(),
                list_kind: list_kind.clone(),
                plural: plural.clone(),
                singular: singular.clone(),
                namespaced,
                short_names: strings(names.get("shortNames")),
                categories: strings(names.get("categories")),
                subresources,
                storage: format!("{group}/{plural}"),
                has_generation: true,
                builtin: None,
                custom: Some(Arc::new(CustomResource {
                    crd_name: s(crd, "/metadata/name").to_string(),
                    storage_version: storage_version.clone(),
                    schema: v.pointer("/schema/openAPIV3Schema").cloned(),
                    compiled: v
                        .pointer("/schema/openAPIV3Schema")
                        .and_then(|s| cairn_schema::Schema::new(s).ok())
                        .map(Arc::new),
                    printer_columns,
                    terminating,
                })),
            }
        })
        .collect()
}
