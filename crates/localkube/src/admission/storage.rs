//! PersistentVolumeClaims, PersistentVolumes and StorageClasses: defaults (including the
//! DefaultStorageClass admission plugin) and the PVC spec immutability rule.

use super::{default_at, invalid};
use crate::error::{ApiError, FieldError};
use crate::resource::ResourceType;
use crate::rest::Api;
use serde_json::{Value, json};

pub const DEFAULT_CLASS_ANNOTATION: &str = "storageclass.kubernetes.io/is-default-class";

/// The name of the default StorageClass, if one is marked.
pub fn default_storage_class(api: &Api) -> Option<String> {
    api.store()
        .list("storage.k8s.io/storageclasses", None, None, 0, |_| true)
        .items
        .iter()
        .map(|o| o.value())
        .find(|sc| {
            sc.pointer("/metadata/annotations")
                .and_then(|a| a.get(DEFAULT_CLASS_ANNOTATION))
                .and_then(Value::as_str)
                == Some("true")
        })
        .and_then(|sc| {
            sc.pointer("/metadata/name")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
}

pub fn pvc_on_create(api: &Api, pvc: &mut Value) {
    if pvc
        .pointer("/spec/storageClassName")
        .is_none_or(Value::is_null)
        && let Some(class) = default_storage_class(api)
    {
        default_at(pvc, &["spec", "storageClassName"], json!(class));
    }
    default_at(pvc, &["spec", "volumeMode"], json!("Filesystem"));
    pvc["status"] = json!({"phase": "Pending"});
}

/// A claim's spec is immutable except for binding (`volumeName` once) and growing requests.
pub fn pvc_on_update(rt: &ResourceType, new: &mut Value, old: &Value) -> Result<(), ApiError> {
    default_at(new, &["spec", "volumeMode"], json!("Filesystem"));
    let mut allowed = old.get("spec").cloned().unwrap_or(Value::Null);
    let new_spec = new.get("spec").cloned().unwrap_or(Value::Null);
    if old
        .pointer("/spec/volumeName")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
        && let Some(v) = new_spec.get("volumeName")
    {
        allowed["volumeName"] = v.clone();
    }
    if let Some(r) = new_spec.pointer("/resources/requests") {
        allowed["resources"]["requests"] = r.clone();
    }
    if old.pointer("/spec/storageClassName").is_none()
        && let Some(c) = new_spec.get("storageClassName")
    {
        allowed["storageClassName"] = c.clone();
    }
    if allowed != new_spec {
        return invalid(
            rt,
            new,
            vec![FieldError::forbidden(
                "spec",
                "spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims",
            )],
        );
    }
    Ok(())
}

pub fn pv_defaults(pv: &mut Value) {
    default_at(
        pv,
        &["spec", "persistentVolumeReclaimPolicy"],
        json!("Retain"),
    );
    default_at(pv, &["spec", "volumeMode"], json!("Filesystem"));
    default_at(pv, &["status", "phase"], json!("Pending"));
}

pub fn storageclass_defaults(sc: &mut Value) {
    default_at(sc, &["reclaimPolicy"], json!("Delete"));
    default_at(sc, &["volumeBindingMode"], json!("Immediate"));
}
