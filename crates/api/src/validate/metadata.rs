//! `metadata` checks the API server applies to every object: a name (or generateName) that is a
//! lowercase RFC 1123 subdomain, and valid label keys and values.

use serde_json::{Value, json};

use cairn_schema::{ErrorKind, FieldError};

use crate::parse::selector::{label_key_errors, label_value_errors};
use crate::validate::problem::Problem;

const DNS1123_SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";

fn field_problem(kind: ErrorKind, path: &str, bad: Value, detail: &str) -> Problem {
    let e = FieldError {
        kind,
        field: path.to_string(),
        bad_value: bad,
        detail: detail.to_string(),
    };
    Problem::error(path, e.body())
}

fn is_dns1123_subdomain(s: &str) -> bool {
    s.len() <= 253
        && s.split('.').all(|label| {
            let b = label.as_bytes();
            !b.is_empty()
                && b.iter()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
                && b[0] != b'-'
                && b[b.len() - 1] != b'-'
        })
}

/// Checks `metadata` of an object given as JSON.
pub fn metadata(object: &Value) -> Vec<Problem> {
    let mut out = Vec::new();
    let meta = object.get("metadata");
    let name = meta
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .unwrap_or_default();
    let generate = meta
        .and_then(|m| m.get("generateName"))
        .and_then(Value::as_str)
        .unwrap_or_default();
    if name.is_empty() && generate.is_empty() {
        out.push(field_problem(
            ErrorKind::Required,
            "metadata.name",
            json!(""),
            "name or generateName is required",
        ));
    } else if !name.is_empty() && !is_dns1123_subdomain(name) {
        out.push(field_problem(
            ErrorKind::Invalid,
            "metadata.name",
            json!(name),
            DNS1123_SUBDOMAIN_MSG,
        ));
    }
    if let Some(labels) = meta
        .and_then(|m| m.get("labels"))
        .and_then(Value::as_object)
    {
        for (key, value) in labels {
            for msg in label_key_errors(key) {
                out.push(field_problem(
                    ErrorKind::Invalid,
                    "metadata.labels",
                    json!(key),
                    &msg,
                ));
            }
            for msg in value.as_str().map(label_value_errors).unwrap_or_default() {
                out.push(field_problem(
                    ErrorKind::Invalid,
                    "metadata.labels",
                    value.clone(),
                    &msg,
                ));
            }
        }
    }
    if let Some(annotations) = meta
        .and_then(|m| m.get("annotations"))
        .and_then(Value::as_object)
    {
        for key in annotations.keys() {
            for msg in label_key_errors(key) {
                out.push(field_problem(
                    ErrorKind::Invalid,
                    "metadata.annotations",
                    json!(key),
                    &msg,
                ));
            }
        }
    }
    out
}
