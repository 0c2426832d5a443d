//! Server-side `meta.k8s.io/v1` Tables: what `kubectl get` prints. Built-in columns follow
//! upstream `printers.go` (v1.32); custom resources use their CRD's printer columns.

mod builtin;
mod custom;

use crate::resource::{Builtin, ResourceType};
use jiff::Timestamp;
use serde_json::{Value, json};

/// One column definition.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub name: &'static str,
    pub type_: &'static str,
    pub format: &'static str,
    pub description: &'static str,
    pub priority: i64,
}

impl Column {
    pub(crate) const fn new(
        name: &'static str,
        type_: &'static str,
        description: &'static str,
    ) -> Column {
        Column {
            name,
            type_,
            format: "",
            description,
            priority: 0,
        }
    }

    pub(crate) const fn wide(
        name: &'static str,
        type_: &'static str,
        description: &'static str,
    ) -> Column {
        Column {
            name,
            type_,
            format: "",
            description,
            priority: 1,
        }
    }

    pub(crate) const NAME: Column = Column {
        name: "Name",
        type_: "string",
        format: "name",
        description: "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names",
        priority: 0,
    };

    pub(crate) const AGE: Column = Column::new(
        "Age",
        "string",
        "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata",
    );

    fn to_json(&self) -> Value {
        json!({
            "name": self.name,
            "type": self.type_,
            "format": self.format,
            "description": self.description,
            "priority": self.priority,
        })
    }
}

/// What `includeObject` asks each row to carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IncludeObject {
    None,
    #[default]
    Metadata,
    Object,
}

impl IncludeObject {
    pub fn parse(s: &str) -> IncludeObject {
        match s {
            "None" => IncludeObject::None,
            "Object" => IncludeObject::Object,
            _ => IncludeObject::Metadata,
        }
    }
}

/// The column definitions of a type.
pub fn column_definitions(rt: &ResourceType) -> Vec<Value> {
    if let Some(c) = &rt.custom {
        return custom::columns(c);
    }
    match rt.builtin {
        Some(b) => builtin::columns(b).iter().map(Column::to_json).collect(),
        None => Vec::new(),
    }
}

/// The cells of one object's row.
pub fn cells(rt: &ResourceType, object: &Value, now: Timestamp) -> Vec<Value> {
    if let Some(c) = &rt.custom {
        return custom::cells(c, object, now);
    }
    match rt.builtin {
        // events.k8s.io events print like core events.
        Some(Builtin::EventV1) => builtin::cells(
            Builtin::Event,
            &crate::rest::events::v1_to_core(object),
            now,
        ),
        Some(b) => builtin::cells(b, object, now),
        None => Vec::new(),
    }
}

/// `PartialObjectMetadata` of an object.
pub fn partial_metadata(object: &Value) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": object.get("metadata").cloned().unwrap_or_else(|| json!({})),
    })
}

/// One row of a Table.
pub fn row(rt: &ResourceType, object: &Value, include: IncludeObject, now: Timestamp) -> Value {
    let mut row = json!({ "cells": cells(rt, object, now) });
    match include {
        IncludeObject::None => {}
        IncludeObject::Metadata => row["object"] = partial_metadata(object),
        IncludeObject::Object => row["object"] = object.clone(),
    }
    row
}

/// A whole Table.
pub fn table(
    rt: &ResourceType,
    objects: &[Value],
    resource_version: &str,
    continue_token: Option<&str>,
    include: IncludeObject,
) -> Value {
    let now = Timestamp::now();
    let mut metadata = json!({ "resourceVersion": resource_version });
    if let Some(c) = continue_token {
        metadata["continue"] = json!(c);
    }
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
        "columnDefinitions": column_definitions(rt),
        "rows": objects.iter().map(|o| row(rt, o, include, now)).collect::<Vec<_>>(),
    })
}
