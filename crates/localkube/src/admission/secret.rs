//! Secrets and ConfigMaps: `stringData` folded into base64 `data`, key and base64
//! validation, the `type` default and the `immutable` flag.

use super::invalid;
use crate::error::{ApiError, FieldError};
use crate::resource::ResourceType;
use base64::Engine;
use serde_json::{Map, Value, json};

fn key_ok(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 253
        && key != "."
        && key != ".."
        && !key.starts_with("..")
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

const KEY_MSG: &str = "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')";

fn check_keys(map: Option<&Map<String, Value>>, field: &str, errors: &mut Vec<FieldError>) {
    for key in map.into_iter().flat_map(|m| m.keys()) {
        if !key_ok(key) {
            errors.push(FieldError::invalid(
                format!("{field}[{key}]"),
                json!(key),
                KEY_MSG,
            ));
        }
    }
}

fn check_immutable(
    rt: &ResourceType,
    new: &Value,
    old: Option<&Value>,
    fields: &[&str],
) -> Result<(), ApiError> {
    let Some(old) = old else { return Ok(()) };
    if old.get("immutable").and_then(Value::as_bool) != Some(true) {
        return Ok(());
    }
    let mut errors = Vec::new();
    for f in fields {
        if old.get(*f) != new.get(*f) {
            errors.push(FieldError::forbidden(
                *f,
                "field is immutable when `immutable` is set",
            ));
        }
    }
    if new.get("immutable") != old.get("immutable") {
        errors.push(FieldError::forbidden(
            "immutable",
            "field is immutable when `immutable` is set",
        ));
    }
    invalid(rt, new, errors)
}

/// Folds `stringData` into `data`, defaults `type` and validates keys and encodings.
pub fn on_write(
    rt: &ResourceType,
    secret: &mut Value,
    old: Option<&Value>,
) -> Result<(), ApiError> {
    if let Some(string_data) = secret
        .as_object_mut()
        .and_then(|m| m.remove("stringData"))
        .and_then(|v| v.as_object().cloned())
    {
        if !secret.get("data").is_some_and(Value::is_object) {
            secret["data"] = json!({});
        }
        for (k, v) in string_data {
            let text = v.as_str().unwrap_or_default();
            secret["data"][&k] = json!(base64::engine::general_purpose::STANDARD.encode(text));
        }
    }
    if secret
        .get("type")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        secret["type"] = json!("Opaque");
    }
    let mut errors = Vec::new();
    let data = secret.get("data").and_then(Value::as_object);
    check_keys(data, "data", &mut errors);
    for (k, v) in data.into_iter().flatten() {
        let ok = v
            .as_str()
            .is_some_and(|s| base64::engine::general_purpose::STANDARD.decode(s).is_ok());
        if !ok {
            errors.push(FieldError::invalid(
                format!("data[{k}]"),
                v.clone(),
                "must be a base64-encoded string",
            ));
        }
    }
    if let Some(old) = old
        && old.get("type") != secret.get("type")
    {
        errors.push(FieldError::invalid(
            "type",
            secret["type"].clone(),
            "field is immutable",
        ));
    }
    invalid(rt, secret, errors)?;
    check_immutable(rt, secret, old, &["data"])
}

pub fn validate_configmap(
    rt: &ResourceType,
    cm: &mut Value,
    old: Option<&Value>,
) -> Result<(), ApiError> {
    let mut errors = Vec::new();
    check_keys(
        cm.get("data").and_then(Value::as_object),
        "data",
        &mut errors,
    );
    check_keys(
        cm.get("binaryData").and_then(Value::as_object),
        "binaryData",
        &mut errors,
    );
    for (k, v) in cm
        .get("data")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        if !v.is_string() {
            errors.push(FieldError::invalid(
                format!("data[{k}]"),
                v.clone(),
                "must be a string",
            ));
        }
    }
    invalid(rt, cm, errors)?;
    check_immutable(rt, cm, old, &["data", "binaryData"])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::Registry;

    #[test]
    fn string_data_is_folded_into_base64_data() {
        let rt = Registry::new(&[]).lookup("", "v1", "secrets").unwrap();
        let mut s =
            json!({"metadata": {"name": "s"}, "data": {"a": "YQ=="}, "stringData": {"b": "bee"}});
        on_write(&rt, &mut s, None).unwrap();
        assert_eq!(s["data"], json!({"a": "YQ==", "b": "YmVl"}));
        assert!(s.get("stringData").is_none());
        assert_eq!(s["type"], "Opaque");
    }

    #[test]
    fn bad_keys_and_bad_base64_are_invalid() {
        let rt = Registry::new(&[]).lookup("", "v1", "secrets").unwrap();
        let mut s = json!({"metadata": {"name": "s"}, "data": {"bad key": "YQ==", "b": "!!"}});
        let e = on_write(&rt, &mut s, None).unwrap_err();
        assert_eq!(e.code, 422);
        assert_eq!(e.details.unwrap()["causes"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn immutable_configmaps_reject_data_changes() {
        let rt = Registry::new(&[]).lookup("", "v1", "configmaps").unwrap();
        let old = json!({"metadata": {"name": "c"}, "data": {"a": "1"}, "immutable": true});
        let mut new = json!({"metadata": {"name": "c"}, "data": {"a": "2"}, "immutable": true});
        assert!(validate_configmap(&rt, &mut new, Some(&old)).is_err());
    }
}
