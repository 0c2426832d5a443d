//! Custom resource tables, as apiextensions' `tableconvertor.go` builds them: `Name`, then
//! each `additionalPrinterColumn` (or a default `Age`), cells evaluated with simple JSONPath.

use crate::resource::{CustomResource, PrinterColumn};
use crate::time::{human_duration, parse};
use jiff::Timestamp;
use jsonpath_rust::JsonPath;
use serde_json::{Value, json};

const AGE_DESCRIPTION: &str = "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";

fn effective_columns(c: &CustomResource) -> Vec<PrinterColumn> {
    if c.printer_columns.is_empty() {
        return vec![PrinterColumn {
            name: "Age".into(),
            type_: "date".into(),
            format: String::new(),
            description: AGE_DESCRIPTION.into(),
            priority: 0,
            json_path: ".metadata.creationTimestamp".into(),
        }];
    }
    c.printer_columns.clone()
}

pub fn columns(c: &CustomResource) -> Vec<Value> {
    let mut out = vec![json!({
        "name": "Name", "type": "string", "format": "name",
        "description": "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names",
        "priority": 0,
    })];
    for col in effective_columns(c) {
        out.push(json!({
            "name": col.name,
            "type": col.type_,
            "format": col.format,
            "description": col.description,
            "priority": col.priority,
        }));
    }
    out
}

/// Translates kubectl-style JSONPath (`.status.phase`, `{.a.b}`) to RFC 9535 (`$.status.phase`).
pub fn to_rfc9535(path: &str) -> String {
    let p = path.trim();
    let p = p
        .strip_prefix('{')
        .and_then(|x| x.strip_suffix('}'))
        .unwrap_or(p)
        .trim();
    if p.starts_with('$') {
        p.to_string()
    } else if p.starts_with('.') || p.starts_with('[') {
        format!("${p}")
    } else {
        format!("$.{p}")
    }
}

/// The first value a JSONPath selects.
pub fn first_value(object: &Value, path: &str) -> Option<Value> {
    let results = object.query(&to_rfc9535(path)).ok()?;
    results.first().map(|v| (*v).clone())
}

/// How Go's `fmt` prints a JSON value in a string column.
fn go_print(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "<nil>".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Array(a) => format!("[{}]", a.iter().map(go_print).collect::<Vec<_>>().join(" ")),
        Value::Object(m) => {
            let mut kv: Vec<String> = m
                .iter()
                .map(|(k, v)| format!("{k}:{}", go_print(v)))
                .collect();
            kv.sort();
            format!("map[{}]", kv.join(" "))
        }
    }
}

fn cell(type_: &str, value: Value, now: Timestamp) -> Value {
    match type_ {
        "string" => json!(go_print(&value)),
        "integer" => match &value {
            Value::Number(n) if n.is_i64() => value,
            Value::Number(n) => n
                .as_f64()
                .filter(|f| f.fract() == 0.0)
                .map(|f| json!(f as i64))
                .unwrap_or(Value::Null),
            _ => Value::Null,
        },
        "number" => match &value {
            Value::Number(_) => value,
            _ => Value::Null,
        },
        "boolean" => match &value {
            Value::Bool(_) => value,
            _ => Value::Null,
        },
        "date" => match value.as_str().and_then(parse) {
            Some(ts) => json!(human_duration(now.duration_since(ts))),
            None => Value::Null,
        },
        _ => json!(go_print(&value)),
    }
}

pub fn cells(c: &CustomResource, object: &Value, now: Timestamp) -> Vec<Value> {
    let mut out = vec![json!(
        object
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
    )];
    for col in effective_columns(c) {
        out.push(match first_value(object, &col.json_path) {
            Some(v) => cell(&col.type_, v, now),
            None => Value::Null,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crd(cols: Vec<PrinterColumn>) -> CustomResource {
        CustomResource {
            crd_name: "x".into(),
            storage_version: "v1".into(),
            schema: None,
            compiled: None,
            printer_columns: cols,
            terminating: false,
        }
    }

    fn col(name: &str, type_: &str, path: &str) -> PrinterColumn {
        PrinterColumn {
            name: name.into(),
            type_: type_.into(),
            format: String::new(),
            description: String::new(),
            priority: 0,
            json_path: path.into(),
        }
    }

    #[test]
    fn printer_columns_evaluate_jsonpath_with_types_and_ages() {
        let c = crd(vec![
            col("STATUS", "string", ".status.phase"),
            col(
                "READY",
                "string",
                ".status.conditions[?(@.type==\"Ready\")].status",
            ),
            col("SIZE", "integer", ".status.size"),
            col("MISSING", "string", ".status.nope"),
            col("AGE", "date", ".metadata.creationTimestamp"),
        ]);
        let now: Timestamp = "2026-11-22T01:10:00Z".parse().unwrap();
        let obj = json!({"metadata": {"name": "b1", "creationTimestamp": "2026-11-22T01:05:00Z"},
            "status": {"phase": "Running", "size": 12, "conditions": [{"type": "Ready", "status": "True"}]}});
        assert_eq!(
            cells(&c, &obj, now),
            vec![
                json!("b1"),
                json!("Running"),
                json!("True"),
                json!(12),
                Value::Null,
                json!("5m")
            ]
        );
        assert_eq!(columns(&c).len(), 6);
    }

    #[test]
    fn a_version_without_columns_gets_an_age_column() {
        let c = crd(vec![]);
        let cols = columns(&c);
        assert_eq!(cols[1]["name"], "Age");
        assert_eq!(cols[1]["type"], "date");
    }

    #[test]
    fn kubectl_paths_become_rfc9535() {
        assert_eq!(to_rfc9535(".status.phase"), "$.status.phase");
        assert_eq!(to_rfc9535("{.spec.x}"), "$.spec.x");
        assert_eq!(to_rfc9535("spec.x"), "$.spec.x");
    }
}
