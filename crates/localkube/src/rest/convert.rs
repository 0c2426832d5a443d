//! Version conversion between what a client sends or reads and what the store keeps.
//!
//! Custom resources are stored in their CRD's storage version; with conversion strategy
//! `None` only `apiVersion` changes. Events are stored as core/v1 (see `events.rs`).

use super::events::{core_to_v1, v1_to_core};
use crate::error::ApiError;
use crate::resource::{Builtin, ResourceType};
use serde_json::{Value, json};

/// Checks a request body's `apiVersion` and `kind` against `rt` and returns its stored form.
pub fn accept(rt: &ResourceType, mut body: Value) -> Result<Value, ApiError> {
    let Some(map) = body.as_object_mut() else {
        return Err(ApiError::bad_request(format!(
            "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml; expected a JSON object for {}",
            rt.kind
        )));
    };
    let want_version = rt.api_version();
    match map.get("apiVersion").and_then(Value::as_str) {
        None | Some("") => {
            map.insert("apiVersion".into(), json!(want_version));
        }
        Some(v) if v == want_version => {}
        Some(v) => {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({v}) does not match the expected API version ({want_version})"
            )));
        }
    }
    match map.get("kind").and_then(Value::as_str) {
        None | Some("") => {
            map.insert("kind".into(), json!(rt.kind));
        }
        Some(k) if k == rt.kind => {}
        Some(k) => {
            return Err(ApiError::bad_request(format!(
                "the kind in the data ({k}) does not match the expected kind ({})",
                rt.kind
            )));
        }
    }
    if rt.is(Builtin::EventV1) {
        return Ok(v1_to_core(&body));
    }
    if let Some(c) = &rt.custom
        && c.storage_version != rt.version
    {
        body["apiVersion"] = json!(format!("{}/{}", rt.group, c.storage_version));
    }
    Ok(body)
}

/// A stored object as `rt`'s version shows it.
pub fn present(rt: &ResourceType, stored: Value) -> Value {
    if rt.is(Builtin::EventV1) {
        return core_to_v1(&stored);
    }
    if rt.custom.is_some() {
        let mut v = stored;
        v["apiVersion"] = json!(rt.api_version());
        return v;
    }
    stored
}
