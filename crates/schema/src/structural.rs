//! The structural-schema rules an API server enforces on a CRD's `openAPIV3Schema`.
//!
//! A schema is structural when (Kubernetes docs, "Specifying a structural schema"):
//! 1. every specified node has a non-empty `type` (unless `x-kubernetes-int-or-string` or
//!    `x-kubernetes-preserve-unknown-fields: true`), the root is an object, arrays have `items`;
//! 2. a field or item named inside `allOf`/`anyOf`/`oneOf`/`not` is also specified outside them;
//! 3. junctors set no `type`, `description`, `title`, `default`, `additionalProperties`, `nullable`
//!    or `x-kubernetes-*` extension, except the int-or-string `anyOf: [{type: integer}, {type: string}]`;
//! 4. `metadata` at the root restricts at most `name` and `generateName`.
//!
//! CRDs of `apiextensions.k8s.io/v1` also forbid `$ref`, `additionalProperties: false`,
//! `uniqueItems: true`, `properties` together with `additionalProperties`, and defaults that do not
//! validate or that pruning would change. Paths are relative to `openAPIV3Schema`.

use serde_json::{Map, Value, json};

use crate::error::{ErrorKind, FieldError};
use crate::node::Node;
use crate::{prune, validate};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Level {
    Root,
    Field,
    Items,
    Junctor,
}

const JUNCTORS: [&str; 4] = ["allOf", "anyOf", "oneOf", "not"];

const FORBIDDEN_IN_JUNCTORS: [&str; 12] = [
    "type",
    "description",
    "title",
    "default",
    "additionalProperties",
    "nullable",
    "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-embedded-resource",
    "x-kubernetes-int-or-string",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
    "x-kubernetes-map-type",
];

/// Checks `schema` (a CRD's `openAPIV3Schema`) and returns every structural violation.
pub fn structural_errors(schema: &Value) -> Vec<FieldError> {
    let mut out = Vec::new();
    walk(schema, "openAPIV3Schema", Level::Root, &mut out);
    check_rules(schema, "openAPIV3Schema", None, &mut out);
    out
}

/// The API server's checks of `x-kubernetes-validations` outside junctors (where they are
/// structural): every rule and `messageExpression` compiles, messages are one line, reasons are
/// known, and `oldSelf` is used only where an old value can be found (not below the items of a
/// list that is not `x-kubernetes-list-type: map`, nor inside an atomic map).
fn check_rules(
    schema: &Value,
    path: &str,
    uncorrelated_at: Option<&str>,
    out: &mut Vec<FieldError>,
) {
    let Some(map) = schema.as_object() else {
        return;
    };
    if let Some(rules) = map.get("x-kubernetes-validations") {
        for (at, value, detail) in crate::cel::rule_problems(rules, path) {
            out.push(invalid(&at, &value, &detail));
        }
        if let (Some(root), Some(list)) = (uncorrelated_at, rules.as_array()) {
            for (i, entry) in list.iter().enumerate() {
                let Some(rule) = entry.get("rule").and_then(Value::as_str) else {
                    continue;
                };
                if crate::cel::uses_old_self(rule) {
                    out.push(invalid(
                        &format!("{path}.x-kubernetes-validations[{i}].rule"),
                        &json!(rule),
                        &format!(
                            "oldSelf cannot be used on the uncorrelatable portion of the schema within {root}"
                        ),
                    ));
                }
            }
        }
    }
    let atomic_map = map.get("x-kubernetes-map-type").and_then(Value::as_str) == Some("atomic");
    let below = |child: &str| -> Option<String> {
        uncorrelated_at
            .map(str::to_string)
            .or_else(|| atomic_map.then(|| child.to_string()))
    };
    if let Some(Value::Object(props)) = map.get("properties") {
        for (name, prop) in props {
            let child = format!("{path}.properties[{name}]");
            check_rules(prop, &child, below(path).as_deref(), out);
        }
    }
    if let Some(extra) = map.get("additionalProperties") {
        let child = format!("{path}.additionalProperties");
        check_rules(extra, &child, below(path).as_deref(), out);
    }
    if let Some(items) = map.get("items") {
        let child = format!("{path}.items");
        let map_list = map.get("x-kubernetes-list-type").and_then(Value::as_str) == Some("map");
        let lost = uncorrelated_at
            .map(str::to_string)
            .or_else(|| (!map_list).then(|| path.to_string()));
        check_rules(items, &child, lost.as_deref(), out);
    }
}

fn forbidden(path: &str, detail: &str) -> FieldError {
    FieldError::new(ErrorKind::Forbidden, path, json!(""), detail.to_string())
}

fn required(path: &str, detail: &str) -> FieldError {
    FieldError::new(ErrorKind::Required, path, json!(""), detail.to_string())
}

fn invalid(path: &str, value: &Value, detail: &str) -> FieldError {
    FieldError::new(ErrorKind::Invalid, path, value.clone(), detail.to_string())
}

fn walk(schema: &Value, path: &str, level: Level, out: &mut Vec<FieldError>) {
    let Some(map) = schema.as_object() else {
        out.push(invalid(path, schema, "must be a schema object"));
        return;
    };
    if map.contains_key("$ref") {
        out.push(forbidden(
            &format!("{path}.$ref"),
            "$ref must not be used in CustomResourceDefinition schemas",
        ));
    }
    if level == Level::Junctor {
        check_junctor_node(map, path, out);
    } else {
        check_generic_node(map, path, level, out);
    }
    if let Some(Value::Object(props)) = map.get("properties") {
        for (name, prop) in props {
            let child_level = if level == Level::Junctor {
                Level::Junctor
            } else {
                Level::Field
            };
            walk(
                prop,
                &format!("{path}.properties[{name}]"),
                child_level,
                out,
            );
        }
    }
    if let Some(items) = map.get("items") {
        if items.is_array() {
            out.push(forbidden(
                &format!("{path}.items"),
                "items must be a schema object and not an array",
            ));
        } else {
            let child_level = if level == Level::Junctor {
                Level::Junctor
            } else {
                Level::Items
            };
            walk(items, &format!("{path}.items"), child_level, out);
        }
    }
    if let Some(extra) = map.get("additionalProperties")
        && extra.is_object()
    {
        let child_level = if level == Level::Junctor {
            Level::Junctor
        } else {
            Level::Field
        };
        walk(
            extra,
            &format!("{path}.additionalProperties"),
            child_level,
            out,
        );
    }
    for junctor in JUNCTORS {
        match map.get(junctor) {
            Some(Value::Array(schemas)) => {
                for (i, sub) in schemas.iter().enumerate() {
                    if level != Level::Junctor && is_int_or_string_junctor(map, junctor, sub) {
                        continue;
                    }
                    let sub_path = format!("{path}.{junctor}[{i}]");
                    walk(sub, &sub_path, Level::Junctor, out);
                    check_specified_outside(map, sub, &sub_path, out);
                }
            }
            Some(sub) if junctor == "not" => {
                let sub_path = format!("{path}.not");
                walk(sub, &sub_path, Level::Junctor, out);
                check_specified_outside(map, sub, &sub_path, out);
            }
            _ => {}
        }
    }
}

fn is_int_or_string_junctor(map: &Map<String, Value>, junctor: &str, sub: &Value) -> bool {
    if map.get("x-kubernetes-int-or-string") != Some(&Value::Bool(true)) {
        return false;
    }
    let int_or_string_any_of = |v: &Value| {
        v.as_array().is_some_and(|a| {
            a.len() == 2 && a[0] == json!({"type": "integer"}) && a[1] == json!({"type": "string"})
        })
    };
    match junctor {
        "anyOf" => {
            int_or_string_any_of(map.get("anyOf").unwrap_or(&Value::Null))
                && sub.get("type").is_some()
        }
        "allOf" => {
            sub.get("anyOf").is_some_and(int_or_string_any_of)
                && sub.as_object().is_some_and(|m| m.len() == 1)
        }
        _ => false,
    }
}

fn check_junctor_node(map: &Map<String, Value>, path: &str, out: &mut Vec<FieldError>) {
    for key in FORBIDDEN_IN_JUNCTORS {
        if map.contains_key(key) {
            out.push(forbidden(
                &format!("{path}.{key}"),
                "must be undefined to be structural",
            ));
        }
    }
    if map.contains_key("x-kubernetes-validations") {
        out.push(forbidden(
            &format!("{path}.x-kubernetes-validations"),
            "must be empty to be structural",
        ));
    }
}

fn check_generic_node(
    map: &Map<String, Value>,
    path: &str,
    level: Level,
    out: &mut Vec<FieldError>,
) {
    let ty = map.get("type").and_then(Value::as_str).unwrap_or("");
    let int_or_string = map.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true));
    let preserve = map.get("x-kubernetes-preserve-unknown-fields");
    let embedded = map.get("x-kubernetes-embedded-resource") == Some(&Value::Bool(true));
    if ty.is_empty() && !int_or_string && preserve != Some(&Value::Bool(true)) {
        let detail = match level {
            Level::Root => "must not be empty at the root",
            Level::Items => "must not be empty for specified array items",
            _ => "must not be empty for specified object fields",
        };
        out.push(required(&format!("{path}.type"), detail));
    }
    if level == Level::Root {
        if !ty.is_empty() && ty != "object" {
            out.push(invalid(
                &format!("{path}.type"),
                &json!(ty),
                "must be object at the root",
            ));
        }
        if map.contains_key("additionalProperties") {
            out.push(forbidden(
                &format!("{path}.additionalProperties"),
                "must not be used at the root",
            ));
        }
        if let Some(metadata) = map.get("properties").and_then(|p| p.get("metadata")) {
            check_root_metadata(metadata, &format!("{path}.properties[metadata]"), out);
        }
    }
    if let Some(p) = preserve
        && p != &Value::Bool(true)
    {
        out.push(invalid(
            &format!("{path}.x-kubernetes-preserve-unknown-fields"),
            p,
            "must be true or undefined",
        ));
    }
    if int_or_string && preserve == Some(&Value::Bool(true)) {
        out.push(invalid(
            &format!("{path}.x-kubernetes-preserve-unknown-fields"),
            &json!(true),
            "must be false if x-kubernetes-int-or-string is true",
        ));
    }
    if int_or_string && embedded {
        out.push(invalid(
            &format!("{path}.x-kubernetes-embedded-resource"),
            &json!(true),
            "must be false if x-kubernetes-int-or-string is true",
        ));
    }
    if embedded && ty != "object" {
        out.push(required(
            &format!("{path}.type"),
            "must be object if x-kubernetes-embedded-resource is true",
        ));
    }
    if ty == "array" && !map.contains_key("items") {
        out.push(required(&format!("{path}.items"), "must be specified"));
    }
    if map.contains_key("properties") && map.contains_key("additionalProperties") {
        out.push(forbidden(
            &format!("{path}.additionalProperties"),
            "additionalProperties and properties are mutual exclusive",
        ));
    }
    if map.get("additionalProperties") == Some(&Value::Bool(false)) {
        out.push(forbidden(
            &format!("{path}.additionalProperties"),
            "additionalProperties cannot be set to false",
        ));
    }
    if map.get("uniqueItems") == Some(&Value::Bool(true)) {
        out.push(forbidden(
            &format!("{path}.uniqueItems"),
            "uniqueItems cannot be set to true since the runtime complexity becomes quadratic",
        ));
    }
    if let Some(default) = map.get("default") {
        check_default(map, default, path, out);
    }
}

fn check_root_metadata(metadata: &Value, path: &str, out: &mut Vec<FieldError>) {
    let Some(map) = metadata.as_object() else {
        return;
    };
    for (key, value) in map {
        match key.as_str() {
            "type" if value == "object" => {}
            "type" => out.push(invalid(&format!("{path}.type"), value, "must be object")),
            "properties" => {
                for name in value.as_object().map(|m| m.keys().collect::<Vec<_>>()).unwrap_or_default() {
                    if name != "name" && name != "generateName" {
                        out.push(forbidden(
                            &format!("{path}.properties[{name}]"),
                            "must not specify anything other than name and generateName",
                        ));
                    }
                }
            }
            "description" => {}
            _ => out.push(forbidden(
                path,
                "must not specify anything other than name and generateName, but metadata is implicitly specified",
            )),
        }
    }
}

fn check_default(map: &Map<String, Value>, default: &Value, path: &str, out: &mut Vec<FieldError>) {
    let Ok(node) = Node::parse(&Value::Object(map.clone()), path) else {
        return;
    };
    let mut errors = Vec::new();
    validate::validate(&node, default, "", &mut errors);
    for e in errors {
        out.push(invalid(&format!("{path}.default"), default, &e.to_string()));
    }
    let mut pruned = default.clone();
    let mut unknown = Vec::new();
    if let Value::Object(_) = pruned {
        // Wrap so the default is pruned as a field value, not as a resource root.
        let wrapper = json!({"type": "object", "properties": {"v": Value::Object(map.clone())}});
        if let Ok(wrapper_node) = Node::parse(&wrapper, path) {
            let mut wrapped = json!({ "v": pruned.clone() });
            unknown = prune::prune_resource(&wrapper_node, &mut wrapped);
            pruned = wrapped.get("v").cloned().unwrap_or(Value::Null);
        }
    }
    if !unknown.is_empty() || &pruned != default {
        out.push(invalid(
            &format!("{path}.default"),
            default,
            "must not have unknown fields",
        ));
    }
}

fn check_specified_outside(
    outer: &Map<String, Value>,
    sub: &Value,
    sub_path: &str,
    out: &mut Vec<FieldError>,
) {
    if let Some(Value::Object(props)) = sub.get("properties") {
        let outside = outer.get("properties").and_then(Value::as_object);
        for name in props.keys() {
            if !outside.is_some_and(|o| o.contains_key(name)) {
                out.push(required(
                    &format!("{sub_path}.properties[{name}]"),
                    "must be specified outside of the value validation junctors too",
                ));
            }
        }
    }
    if sub.get("items").is_some() && !outer.contains_key("items") {
        out.push(required(
            &format!("{sub_path}.items"),
            "must be specified outside of the value validation junctors too",
        ));
    }
}
