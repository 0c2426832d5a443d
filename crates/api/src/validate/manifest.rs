//! The whole check of one manifest object, as `kubectl apply` with strict field validation and then
//! the controller would see it: metadata, unknown fields, CRD schema (after defaulting), the Rust
//! types, and the semantic checks.

use std::collections::HashMap;

use cairn_schema::{Schema, SchemaError, unknown_field_message};
use serde_json::Value;

use crate::crds;
use crate::object::{ApiObject, Kind};
use crate::validate::problem::{Problem, Severity};

/// How unknown fields are reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnknownFields {
    /// As errors (`kubectl apply`'s default strict field validation).
    Error,
    /// As warnings (`--validate=warn`).
    Warning,
}

/// The outcome of checking one object.
#[derive(Debug)]
pub struct Checked {
    /// The kind, or `None` for objects of kinds this API does not know (to be skipped).
    pub kind: Option<Kind>,
    /// Every problem found, schema problems first.
    pub problems: Vec<Problem>,
    /// The typed object (pruned and defaulted), when it could be read.
    pub object: Option<ApiObject>,
}

/// Checks objects against the compiled CRD schemas of every kind.
#[derive(Debug)]
pub struct Checker {
    schemas: HashMap<String, Schema>,
}

impl Checker {
    /// Compiles the schemas of [`crds::all`].
    pub fn new() -> Result<Checker, SchemaError> {
        let mut schemas = HashMap::new();
        for crd in crds::all() {
            let schema = crd
                .spec
                .versions
                .first()
                .and_then(|v| v.schema.as_ref())
                .and_then(|s| s.open_api_v3_schema.as_ref());
            let value = serde_json::to_value(schema).map_err(|e| SchemaError {
                path: "openAPIV3Schema".into(),
                message: e.to_string(),
            })?;
            schemas.insert(
                crd.metadata.name.clone().unwrap_or_default(),
                Schema::new(&value)?,
            );
        }
        Ok(Checker { schemas })
    }

    /// Checks one object (a decoded YAML/JSON document).
    pub fn check(&self, object: &Value, unknown: UnknownFields) -> Checked {
        let Some(kind) = Kind::of_value(object) else {
            return Checked {
                kind: None,
                problems: Vec::new(),
                object: None,
            };
        };
        let mut problems = super::metadata::metadata(object);
        let mut value = object.clone();
        if let Some(schema) = kind.crd_name().and_then(|name| self.schemas.get(name)) {
            for path in schema.prune(&mut value) {
                let message = unknown_field_message(&path);
                problems.push(match unknown {
                    UnknownFields::Error => Problem::error(path, message),
                    UnknownFields::Warning => Problem::warning(path, message),
                });
            }
            schema.apply_defaults(&mut value);
            problems.extend(
                schema
                    .validate(&value)
                    .iter()
                    .map(Problem::from_field_error),
            );
        }
        let schema_error_paths: Vec<String> = problems
            .iter()
            .filter(|p| p.severity == Severity::Error)
            .map(|p| p.path.clone())
            .collect();
        // Fields the schema rejected are dropped before reading the types, so that one bad enum
        // value does not hide the semantic problems of the rest of the object.
        let mut readable = value.clone();
        for path in &schema_error_paths {
            remove_path(&mut readable, path);
        }
        let typed = match ApiObject::from_value(readable).or_else(|_| ApiObject::from_value(value))
        {
            Ok(typed) => Some(typed),
            Err(e) => {
                if schema_error_paths.is_empty() {
                    let detail = std::error::Error::source(&e)
                        .map(|s| format!(": {s}"))
                        .unwrap_or_default();
                    problems.push(Problem::error("", format!("{e}{detail}")));
                }
                None
            }
        };
        if let Some(typed) = &typed {
            problems.extend(
                super::object(typed)
                    .into_iter()
                    .filter(|p| !schema_error_paths.contains(&p.path)),
            );
        }
        Checked {
            kind: Some(kind),
            problems,
            object: typed,
        }
    }
}

/// Removes the field at a Kubernetes field path (`spec.schedules[1].name`) if it exists.
fn remove_path(value: &mut Value, path: &str) {
    let mut segments: Vec<Segment> = Vec::new();
    for part in path.split('.') {
        let (key, indexes) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if !key.is_empty() {
            segments.push(Segment::Key(key.to_string()));
        }
        for index in indexes.split('[').filter(|s| !s.is_empty()) {
            match index.trim_end_matches(']').parse() {
                Ok(i) => segments.push(Segment::Index(i)),
                Err(_) => return,
            }
        }
    }
    let Some((last, parents)) = segments.split_last() else {
        return;
    };
    let mut current = value;
    for segment in parents {
        let next = match (segment, current) {
            (Segment::Key(k), Value::Object(map)) => map.get_mut(k),
            (Segment::Index(i), Value::Array(items)) => items.get_mut(*i),
            _ => None,
        };
        match next {
            Some(v) => current = v,
            None => return,
        }
    }
    if let (Segment::Key(k), Value::Object(map)) = (last, current) {
        map.remove(k);
    }
}

enum Segment {
    Key(String),
    Index(usize),
}
