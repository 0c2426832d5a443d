//! A stored object: its serialized JSON plus the metadata the server queries without parsing it.

use bytes::Bytes;
use serde_json::Value;
use std::sync::Arc;

/// One `ownerReferences` entry, as the garbage collector needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnerRef {
    pub uid: String,
    pub api_version: String,
    pub kind: String,
    pub name: String,
    pub controller: bool,
    pub block_owner_deletion: bool,
}

/// What selectors, the garbage collector and controllers read without parsing the JSON.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectIndex {
    pub uid: String,
    pub labels: Vec<(String, String)>,
    /// Field-selector values (`metadata.name`, `status.phase`, …) for this object's type.
    pub fields: Vec<(String, String)>,
    pub owners: Vec<OwnerRef>,
    pub finalizers: Vec<String>,
    pub deleting: bool,
}

impl ObjectIndex {
    /// Reads the generic metadata parts; `fields` is left for the type-aware indexer.
    pub fn from_metadata(object: &Value) -> ObjectIndex {
        let meta = object.get("metadata");
        let s = |p: &str| {
            meta.and_then(|m| m.get(p))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let labels = meta
            .and_then(|m| m.get("labels"))
            .and_then(Value::as_object)
            .map(|l| {
                l.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                    .collect()
            })
            .unwrap_or_default();
        let owners = meta
            .and_then(|m| m.get("ownerReferences"))
            .and_then(Value::as_array)
            .map(|refs| {
                refs.iter()
                    .map(|r| {
                        let g = |p: &str| {
                            r.get(p)
                                .and_then(Value::as_str)
                                .unwrap_or_default()
                                .to_string()
                        };
                        OwnerRef {
                            uid: g("uid"),
                            api_version: g("apiVersion"),
                            kind: g("kind"),
                            name: g("name"),
                            controller: r
                                .get("controller")
                                .and_then(Value::as_bool)
                                .unwrap_or(false),
                            block_owner_deletion: r
                                .get("blockOwnerDeletion")
                                .and_then(Value::as_bool)
                                .unwrap_or(false),
                        }
                    })
                    .collect()
            })
            .unwrap_or_default();
        let finalizers = meta
            .and_then(|m| m.get("finalizers"))
            .and_then(Value::as_array)
            .map(|f| {
                f.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        ObjectIndex {
            uid: s("uid"),
            labels,
            fields: Vec::new(),
            owners,
            finalizers,
            deleting: meta
                .and_then(|m| m.get("deletionTimestamp"))
                .is_some_and(|d| !d.is_null()),
        }
    }

    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The current state of one object.
#[derive(Debug)]
pub struct StoredObject {
    pub resource: Arc<str>,
    pub namespace: String,
    pub name: String,
    pub rv: u64,
    /// The object serialized as compact JSON, `metadata.resourceVersion` included.
    pub json: Bytes,
    pub index: ObjectIndex,
}

impl StoredObject {
    /// Parses the stored JSON. It was produced by serde_json, so it always parses.
    pub fn value(&self) -> Value {
        serde_json::from_slice(&self.json).unwrap_or(Value::Null)
    }
}

/// What kind of change a watch event reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }

    pub(crate) fn code(self) -> i64 {
        match self {
            EventType::Added => 0,
            EventType::Modified => 1,
            EventType::Deleted => 2,
        }
    }

    pub(crate) fn from_code(code: i64) -> EventType {
        match code {
            0 => EventType::Added,
            1 => EventType::Modified,
            _ => EventType::Deleted,
        }
    }
}

/// One committed change, in resourceVersion order.
#[derive(Debug)]
pub struct WatchEvent {
    pub rv: u64,
    pub kind: EventType,
    /// The new state; for `Deleted`, the last state carrying the deletion's resourceVersion.
    pub object: Arc<StoredObject>,
    /// The state before the change, so selector watches can turn match changes into ADDED/DELETED.
    pub prev: Option<Arc<StoredObject>>,
}
