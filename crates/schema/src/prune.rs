//! Pruning of fields a schema does not declare, as the API server does before storing a custom resource.
//!
//! Mirrors `apiextensions-apiserver`'s `pruning.PruneWithOptions` (the root is a resource, so
//! `apiVersion`, `kind` and `metadata` survive) followed by `PruneNonNullableNullsWithoutDefaults`.

use serde_json::{Map, Value};

use crate::node::Node;

const META_FIELDS: [&str; 3] = ["apiVersion", "kind", "metadata"];

/// Removes unknown fields and non-nullable nulls; returns the removed unknown field paths, sorted.
pub(crate) fn prune_resource(root: &Node, value: &mut Value) -> Vec<String> {
    let mut unknown = Vec::new();
    if let Value::Object(map) = value {
        prune_object(Some(root), map, "", true, &mut unknown);
    }
    prune_nulls(value, Some(root));
    unknown.sort();
    unknown
}

fn child_path(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

fn prune(value: &mut Value, schema: Option<&Node>, path: &str, unknown: &mut Vec<String>) {
    if let Some(node) = schema
        && node.preserve_unknown_fields
    {
        skip_prune(value, node, path, unknown);
        return;
    }
    match value {
        Value::Object(map) => {
            let embedded = schema.is_some_and(|n| n.embedded_resource);
            prune_object(schema, map, path, embedded, unknown);
        }
        Value::Array(items) => {
            let item_schema = schema.and_then(|n| n.items.as_deref());
            for (i, item) in items.iter_mut().enumerate() {
                prune(item, item_schema, &format!("{path}[{i}]"), unknown);
            }
        }
        _ => {}
    }
}

fn prune_object(
    schema: Option<&Node>,
    map: &mut Map<String, Value>,
    path: &str,
    embedded: bool,
    unknown: &mut Vec<String>,
) {
    let Some(node) = schema else {
        for key in map.keys() {
            unknown.push(child_path(path, key));
        }
        map.clear();
        return;
    };
    let mut removed = Vec::new();
    for (key, value) in map.iter_mut() {
        if embedded && META_FIELDS.contains(&key.as_str()) {
            continue;
        }
        if let Some(prop) = node.property(key) {
            prune(value, Some(prop), &child_path(path, key), unknown);
        } else if node.has_additional() {
            prune(
                value,
                node.field_schema(key),
                &child_path(path, key),
                unknown,
            );
        } else {
            if !META_FIELDS.contains(&key.as_str()) || !path.is_empty() {
                unknown.push(child_path(path, key));
            }
            removed.push(key.clone());
        }
    }
    for key in removed {
        map.remove(&key);
    }
}

fn skip_prune(value: &mut Value, node: &Node, path: &str, unknown: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, value) in map.iter_mut() {
                if node.embedded_resource && META_FIELDS.contains(&key.as_str()) {
                    continue;
                }
                if let Some(prop) = node.property(key) {
                    prune(value, Some(prop), &child_path(path, key), unknown);
                } else if node.has_additional() {
                    prune(
                        value,
                        node.field_schema(key),
                        &child_path(path, key),
                        unknown,
                    );
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = node.items.as_deref() {
                for (i, item) in items.iter_mut().enumerate() {
                    skip_prune(item, item_schema, &format!("{path}[{i}]"), unknown);
                }
            }
        }
        _ => {}
    }
}

fn prune_nulls(value: &mut Value, schema: Option<&Node>) {
    match value {
        Value::Object(map) => {
            map.retain(|key, v| {
                let field = schema.and_then(|n| n.field_schema(key));
                !(v.is_null() && field.is_some_and(|f| !f.nullable && f.default.is_none()))
            });
            for (key, v) in map.iter_mut() {
                prune_nulls(v, schema.and_then(|n| n.field_schema(key)));
            }
        }
        Value::Array(items) => {
            let item_schema = schema.and_then(|n| n.items.as_deref());
            for item in items {
                prune_nulls(item, item_schema);
            }
        }
        _ => {}
    }
}
