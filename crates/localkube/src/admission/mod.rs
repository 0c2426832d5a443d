//! Per-type admission for built-ins: defaulting (what apiserver `SetDefaults_*` and the
//! default admission plugins do) and validation of the fields this project relies on.

mod crd;
mod event;
mod namespace;
mod pod;
pub mod pod_security;
mod secret;
mod service;
mod storage;
mod workloads;

pub use pod::{default_pod_spec, pod_qos_class};

use crate::error::{ApiError, FieldError};
use crate::resource::{Builtin, ResourceType};
use crate::rest::meta::meta_str;
use crate::rest::{Api, Target};
use serde_json::Value;

pub(crate) fn invalid(
    rt: &ResourceType,
    object: &Value,
    errors: Vec<FieldError>,
) -> Result<(), ApiError> {
    if errors.is_empty() {
        return Ok(());
    }
    Err(ApiError::invalid(
        &rt.kind,
        &rt.group,
        meta_str(object, "name"),
        &errors,
    ))
}

/// Defaults and validates a new object. Returns warnings for the client.
pub fn on_create(
    api: &Api,
    rt: &ResourceType,
    object: &mut Value,
) -> Result<Vec<String>, ApiError> {
    let Some(b) = rt.builtin else {
        return Ok(Vec::new());
    };
    match b {
        Builtin::Namespace => namespace::on_create(object),
        Builtin::Pod => pod::on_create(api, rt, object)?,
        Builtin::Secret => secret::on_write(rt, object, None)?,
        Builtin::ConfigMap => secret::validate_configmap(rt, object, None)?,
        Builtin::Service => service::on_create(object),
        Builtin::Job => workloads::job_on_create(rt, object)?,
        Builtin::CronJob => workloads::cronjob_defaults(object),
        Builtin::StatefulSet | Builtin::Deployment | Builtin::DaemonSet | Builtin::ReplicaSet => {
            workloads::controller_defaults(b, rt, object)?
        }
        Builtin::PersistentVolumeClaim => storage::pvc_on_create(api, object),
        Builtin::PersistentVolume => storage::pv_defaults(object),
        Builtin::StorageClass => storage::storageclass_defaults(object),
        Builtin::CustomResourceDefinition => crd::on_write(rt, object)?,
        Builtin::Event => event::validate(rt, object, false)?,
        Builtin::EventV1 => event::validate(rt, object, true)?,
        _ => {}
    }
    Ok(Vec::new())
}

/// Defaults and validates an update of `old` to `new` (main object, status or finalize).
pub fn on_update(
    api: &Api,
    rt: &ResourceType,
    new: &mut Value,
    old: &Value,
    target: Target,
) -> Result<Vec<String>, ApiError> {
    let _ = api;
    let Some(b) = rt.builtin else {
        return Ok(Vec::new());
    };
    if target != Target::Main {
        return Ok(Vec::new());
    }
    match b {
        Builtin::Namespace => namespace::on_update(new, old),
        Builtin::Pod => pod::on_update(rt, new, old)?,
        Builtin::Secret => secret::on_write(rt, new, Some(old))?,
        Builtin::ConfigMap => secret::validate_configmap(rt, new, Some(old))?,
        Builtin::Service => service::on_update(new, old),
        Builtin::Job => workloads::job_on_update(rt, new, old)?,
        Builtin::CronJob => workloads::cronjob_defaults(new),
        Builtin::StatefulSet | Builtin::Deployment | Builtin::DaemonSet | Builtin::ReplicaSet => {
            workloads::controller_defaults(b, rt, new)?
        }
        Builtin::PersistentVolumeClaim => storage::pvc_on_update(rt, new, old)?,
        Builtin::PersistentVolume => storage::pv_defaults(new),
        Builtin::StorageClass => storage::storageclass_defaults(new),
        Builtin::CustomResourceDefinition => crd::on_write(rt, new)?,
        _ => {}
    }
    Ok(Vec::new())
}

/// Sets `object[path]` to `value` when it is missing or null.
pub(crate) fn default_at(object: &mut Value, path: &[&str], value: Value) {
    let mut cur = object;
    for (i, key) in path.iter().enumerate() {
        if !cur.is_object() {
            *cur = Value::Object(Default::default());
        }
        let map = match cur.as_object_mut() {
            Some(m) => m,
            None => return,
        };
        if i + 1 == path.len() {
            let slot = map.entry(key.to_string()).or_insert(Value::Null);
            if slot.is_null() {
                *slot = value;
            }
            return;
        }
        cur = map
            .entry(key.to_string())
            .or_insert_with(|| Value::Object(Default::default()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn default_at_fills_only_missing_values() {
        let mut v = json!({"spec": {"a": 1, "b": null}});
        default_at(&mut v, &["spec", "a"], json!(2));
        default_at(&mut v, &["spec", "b"], json!(3));
        default_at(&mut v, &["spec", "c", "d"], json!(4));
        assert_eq!(v, json!({"spec": {"a": 1, "b": 3, "c": {"d": 4}}}));
    }
}
