//! Events: the fields events.k8s.io/v1 requires (checked on the stored core/v1 shape) and
//! timestamp defaults for core/v1 events.

use super::{default_at, invalid};
use crate::error::{ApiError, FieldError};
use crate::resource::ResourceType;
use crate::time::now_time;
use serde_json::{Value, json};

const NOTE_LIMIT: usize = 1024;

/// Validates an event; `v1` means it arrived through events.k8s.io/v1 (already converted).
pub fn validate(rt: &ResourceType, event: &mut Value, v1: bool) -> Result<(), ApiError> {
    let mut errors = Vec::new();
    let present = |v: &Value, f: &str| {
        v.get(f)
            .and_then(Value::as_str)
            .is_some_and(|s| !s.is_empty())
    };
    if v1 {
        for (core, shown) in [
            ("eventTime", "eventTime"),
            ("reportingComponent", "reportingController"),
            ("reportingInstance", "reportingInstance"),
            ("action", "action"),
            ("reason", "reason"),
        ] {
            if !present(event, core) {
                errors.push(FieldError::required(shown, ""));
            }
        }
        if event
            .get("message")
            .and_then(Value::as_str)
            .is_some_and(|m| m.len() > NOTE_LIMIT)
        {
            errors.push(FieldError::too_long("note", NOTE_LIMIT));
        }
    } else if event.get("eventTime").is_none_or(Value::is_null) {
        let now = now_time();
        default_at(event, &["firstTimestamp"], json!(now));
        default_at(event, &["lastTimestamp"], json!(now));
    }
    if let Some(t) = event.get("type").and_then(Value::as_str)
        && !t.is_empty()
        && !matches!(t, "Normal" | "Warning")
    {
        errors.push(FieldError::not_supported(
            "type",
            json!(t),
            &["Normal", "Warning"],
        ));
    }
    invalid(rt, event, errors)
}
