//! Helpers the workload and volume controllers share: owned pods, status writes and
//! conditions.

use crate::error::ApiError;
use crate::resource::{Builtin, ResourceType};
use crate::rest::{Api, DeleteOptions, Propagation, Target, WriteOptions};
use crate::store::WatchEvent;
use crate::time::now_time;
use serde_json::{Value, json};
use std::sync::Arc;

pub fn s<'a>(v: &'a Value, p: &str) -> &'a str {
    v.pointer(p).and_then(Value::as_str).unwrap_or_default()
}

pub fn i(v: &Value, p: &str) -> i64 {
    v.pointer(p).and_then(Value::as_i64).unwrap_or(0)
}

/// Pods in `namespace` whose controller owner reference has `uid`.
pub fn owned_pods(api: &Api, namespace: &str, uid: &str) -> Vec<Value> {
    api.store()
        .list("core/pods", Some(namespace), None, 0, |o| {
            o.index.owners.iter().any(|r| r.uid == uid && r.controller)
        })
        .items
        .iter()
        .map(|o| o.value())
        .collect()
}

/// A controller owner reference to `owner`.
/// The keys a controller of pod-owning `resource` objects (owner kind `owner_kind`) reconciles
/// for an event: the object itself, or the controller of an event's pod.
pub fn owner_keys(ev: &WatchEvent, resource: &str, owner_kind: &str) -> Vec<(String, String)> {
    let o = &ev.object;
    if *o.resource == *resource {
        return vec![(o.namespace.clone(), o.name.clone())];
    }
    if &*o.resource != "core/pods" {
        return Vec::new();
    }
    o.index
        .owners
        .iter()
        .filter(|r| r.controller && r.kind == owner_kind)
        .map(|r| (o.namespace.clone(), r.name.clone()))
        .collect()
}

/// The (namespace, name) of every stored `resource` object.
pub fn all_keys(api: &Api, resource: &str) -> Vec<(String, String)> {
    api.store()
        .list(resource, None, None, 0, |_| true)
        .items
        .iter()
        .map(|o| (o.namespace.clone(), o.name.clone()))
        .collect()
}

pub fn controller_ref(owner: &Value, api_version: &str, kind: &str) -> Value {
    json!({
        "apiVersion": api_version,
        "kind": kind,
        "name": s(owner, "/metadata/name"),
        "uid": s(owner, "/metadata/uid"),
        "controller": true,
        "blockOwnerDeletion": true,
    })
}

/// Replaces an object's status if it changed (an unconditional status write).
pub fn write_status(
    api: &Api,
    rt: &Arc<ResourceType>,
    object: &Value,
    status: Value,
) -> Result<(), ApiError> {
    if object.get("status") == Some(&status) {
        return Ok(());
    }
    let mut v = object.clone();
    v["status"] = status;
    // Built-ins take an unconditional write; custom resources need the resourceVersion
    // (a conflict is retried by the controller).
    if rt.custom.is_none()
        && let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut)
    {
        m.remove("resourceVersion");
    }
    let ns = s(object, "/metadata/namespace");
    let ns = (!ns.is_empty()).then_some(ns);
    match api.update(
        rt,
        ns,
        s(object, "/metadata/name"),
        v,
        Target::Status,
        &WriteOptions::default(),
    ) {
        Ok(_) => Ok(()),
        Err(e) if e.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}

/// Deletes an object, treating "already gone" as success.
pub fn delete(
    api: &Api,
    b: Builtin,
    namespace: &str,
    name: &str,
    propagation: Propagation,
) -> Result<(), ApiError> {
    let rt = api.builtin(b);
    let opts = DeleteOptions {
        propagation: Some(propagation),
        ..Default::default()
    };
    let ns = (!namespace.is_empty()).then_some(namespace);
    match api.delete(&rt, ns, name, &opts) {
        Ok(_) => Ok(()),
        Err(e) if e.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}

/// Creates an object, treating "already exists" as success.
pub fn create(api: &Api, b: Builtin, namespace: &str, object: Value) -> Result<(), ApiError> {
    let rt = api.builtin(b);
    let ns = (!namespace.is_empty()).then_some(namespace);
    match api.create(&rt, ns, object, &WriteOptions::default()) {
        Ok(_) => Ok(()),
        Err(e) if e.code == 409 => Ok(()),
        Err(e) => Err(e),
    }
}

/// Sets a condition in `conditions`, keeping its transition time when the status is unchanged.
pub fn set_condition(
    conditions: &mut Vec<Value>,
    kind: &str,
    status: bool,
    reason: &str,
    message: &str,
) {
    let status = if status { "True" } else { "False" };
    let now = now_time();
    match conditions.iter_mut().find(|c| s(c, "/type") == kind) {
        Some(c) => {
            if s(c, "/status") != status {
                c["lastTransitionTime"] = json!(now);
            }
            c["status"] = json!(status);
            c["reason"] = json!(reason);
            c["message"] = json!(message);
            c["lastProbeTime"] = json!(now);
        }
        None => conditions.push(json!({
            "type": kind, "status": status, "reason": reason, "message": message,
            "lastProbeTime": now, "lastTransitionTime": now,
        })),
    }
}

pub fn condition_true(v: &Value, kind: &str) -> bool {
    v.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| s(c, "/type") == kind && s(c, "/status") == "True")
        })
}

pub fn pod_ready(pod: &Value) -> bool {
    condition_true(pod, "Ready")
}
