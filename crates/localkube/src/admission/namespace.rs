//! Namespaces: the name label, the `kubernetes` finalizer and the Active phase.

use super::default_at;
use crate::rest::meta::{meta_mut, meta_str};
use serde_json::{Value, json};

const NAME_LABEL: &str = "kubernetes.io/metadata.name";

fn set_name_label(object: &mut Value) {
    let name = meta_str(object, "name").to_string();
    let meta = meta_mut(object);
    if !meta.get("labels").is_some_and(Value::is_object) {
        meta.insert("labels".into(), json!({}));
    }
    meta["labels"][NAME_LABEL] = json!(name);
}

pub fn on_create(object: &mut Value) {
    set_name_label(object);
    default_at(object, &["spec", "finalizers"], json!(["kubernetes"]));
    object["status"] = json!({"phase": "Active"});
}

/// A main-endpoint update keeps `spec.finalizers` (only `/finalize` changes them).
pub fn on_update(new: &mut Value, old: &Value) {
    set_name_label(new);
    match old.pointer("/spec/finalizers") {
        Some(f) => new["spec"]["finalizers"] = f.clone(),
        None => {
            if let Some(spec) = new.get_mut("spec").and_then(Value::as_object_mut) {
                spec.remove("finalizers");
            }
        }
    }
}
