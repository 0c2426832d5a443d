//! The `scale` subresource (`autoscaling/v1` Scale) of StatefulSets, Deployments and
//! ReplicaSets, as `kubectl scale` uses it.

use super::resource::Call;
use super::{AppState, response};
use crate::error::ApiError;
use crate::patch::{apply_json_patch, merge_patch};
use crate::resource::ResourceType;
use crate::rest::{PatchType, Target, WriteOptions};
use axum::http::{Method, header};
use axum::response::Response;
use serde_json::{Value, json};
use std::sync::Arc;

fn scale_of(object: &Value) -> Value {
    let meta = object.get("metadata").cloned().unwrap_or_else(|| json!({}));
    let selector = object
        .pointer("/spec/selector/matchLabels")
        .and_then(Value::as_object)
        .map(|m| {
            let mut kv: Vec<String> = m
                .iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect();
            kv.sort();
            kv.join(",")
        })
        .unwrap_or_default();
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": meta.get("name"), "namespace": meta.get("namespace"), "uid": meta.get("uid"),
            "resourceVersion": meta.get("resourceVersion"), "creationTimestamp": meta.get("creationTimestamp"),
        },
        "spec": {"replicas": object.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(0)},
        "status": {"replicas": object.pointer("/status/replicas").and_then(Value::as_i64).unwrap_or(0), "selector": selector},
    })
}

pub async fn serve(
    state: &Arc<AppState>,
    rt: &Arc<ResourceType>,
    call: Call,
) -> Result<Response, ApiError> {
    let ns = call.path.namespace.clone();
    let name = call.path.name.clone().unwrap_or_default();
    let current = state.api.get(rt, ns.as_deref(), &name)?;
    let scale = scale_of(&current);
    let wanted = match call.method {
        Method::GET => return Ok(response::json(200, &scale)),
        Method::PUT | Method::PATCH => {
            let body = axum::body::to_bytes(call.body, 1 << 20)
                .await
                .map_err(|e| ApiError::bad_request(format!("reading the request body: {e}")))?;
            let updated = if call.method == Method::PUT {
                super::resource::decode_object(&call.headers, &body)?
            } else {
                let doc: Value = serde_json::from_slice(&body)
                    .map_err(|e| ApiError::bad_request(format!("decoding the Scale: {e}")))?;
                let ct = call
                    .headers
                    .get(header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default();
                match PatchType::from_content_type(ct) {
                    Some(PatchType::Json) => apply_json_patch(&scale, &doc).map_err(|e| {
                        ApiError::invalid(
                            "Scale",
                            "autoscaling",
                            &name,
                            &[crate::error::FieldError::rendered(
                                "",
                                e.to_string(),
                                "FieldValueInvalid",
                            )],
                        )
                    })?,
                    Some(_) => merge_patch(&scale, &doc),
                    None => {
                        return Err(ApiError::unsupported_media_type(format!(
                            "unsupported patch type {ct:?}"
                        )));
                    }
                }
            };
            updated
                .pointer("/spec/replicas")
                .and_then(Value::as_i64)
                .ok_or_else(|| ApiError::bad_request("spec.replicas is required"))?
        }
        m => {
            return Err(ApiError::method_not_allowed(format!(
                "{m} is not allowed on scale"
            )));
        }
    };
    let patch = serde_json::to_vec(&json!({"spec": {"replicas": wanted}})).unwrap_or_default();
    let written = state.api.patch(
        rt,
        ns.as_deref(),
        &name,
        PatchType::Merge,
        &patch,
        Target::Main,
        &WriteOptions::default(),
    )?;
    Ok(response::json(200, &scale_of(&written.object)))
}
