//! Defaulting from a schema's `default` keywords, as `apiextensions-apiserver`'s `structuraldefaulting.Default`.

use serde_json::Value;

use crate::node::{Additional, Node};

/// Sets missing (or non-nullable null) properties to their defaults, then recurses into every value.
pub(crate) fn apply(value: &mut Value, node: &Node) {
    match value {
        Value::Object(map) => {
            for (name, prop) in &node.properties {
                let Some(default) = &prop.default else {
                    continue;
                };
                let missing = match map.get(name) {
                    None => true,
                    Some(v) => v.is_null() && !prop.nullable,
                };
                if missing {
                    map.insert(name.clone(), default.clone());
                }
            }
            for (key, v) in map.iter_mut() {
                if let Some(prop) = node.property(key) {
                    apply(v, prop);
                } else if let Additional::Schema(extra) = &node.additional {
                    if v.is_null()
                        && !extra.nullable
                        && let Some(default) = &extra.default
                    {
                        *v = default.clone();
                    }
                    apply(v, extra);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = node.items.as_deref() {
                for item in items {
                    if item.is_null()
                        && !item_schema.nullable
                        && let Some(default) = &item_schema.default
                    {
                        *item = default.clone();
                    }
                    apply(item, item_schema);
                }
            }
        }
        _ => {}
    }
}
