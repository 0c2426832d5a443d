//! Object metadata rules: names, uids, generation, finalizers and `ObjectMeta` validation.

use crate::error::FieldError;
use crate::resource::{Builtin, ResourceType};
use crate::validation::{
    is_dns1123_label, is_dns1123_subdomain, is_label_value, is_path_segment, is_qualified_name,
};
use rand::RngExt;
use serde_json::{Map, Value, json};

/// The alphabet of generated name suffixes (no vowels, no confusable characters).
const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// `generateName` plus five random characters, the prefix cut to fit 63 characters.
pub fn generate_name(prefix: &str) -> String {
    let mut rng = rand::rng();
    let max_prefix = 63 - 5;
    let prefix = if prefix.len() > max_prefix {
        &prefix[..max_prefix]
    } else {
        prefix
    };
    let suffix: String = (0..5)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect();
    format!("{prefix}{suffix}")
}

pub fn new_uid() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// The `metadata` map of an object, created when missing.
pub fn meta_mut(object: &mut Value) -> &mut Map<String, Value> {
    if !object.get("metadata").is_some_and(Value::is_object) {
        object["metadata"] = json!({});
    }
    match object.get_mut("metadata") {
        Some(Value::Object(m)) => m,
        _ => unreachable!("metadata was just made an object"),
    }
}

pub fn meta_str<'a>(object: &'a Value, field: &str) -> &'a str {
    object
        .get("metadata")
        .and_then(|m| m.get(field))
        .and_then(Value::as_str)
        .unwrap_or_default()
}

pub fn finalizers(object: &Value) -> Vec<String> {
    object
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .map(|f| {
            f.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

pub fn set_finalizers(object: &mut Value, list: &[String]) {
    let meta = meta_mut(object);
    if list.is_empty() {
        meta.remove("finalizers");
    } else {
        meta.insert("finalizers".into(), json!(list));
    }
}

pub fn is_deleting(object: &Value) -> bool {
    object
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|d| !d.is_null())
}

pub fn generation(object: &Value) -> i64 {
    object
        .pointer("/metadata/generation")
        .and_then(Value::as_i64)
        .unwrap_or(0)
}

/// Whether an update changes what `generation` tracks: everything outside `metadata`, and
/// outside `status` when the type has a status subresource.
pub fn generation_changed(rt: &ResourceType, old: &Value, new: &Value) -> bool {
    let strip = |v: &Value| -> Value {
        let mut v = v.clone();
        if let Some(m) = v.as_object_mut() {
            m.remove("metadata");
            m.remove("apiVersion");
            m.remove("kind");
            if rt.has_status() {
                m.remove("status");
            }
        }
        v
    };
    strip(old) != strip(new)
}

/// Whether two versions of an object are equal apart from their resourceVersion.
pub fn same_object(old: &Value, new: &Value) -> bool {
    let strip = |v: &Value| -> Value {
        let mut v = v.clone();
        if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
            m.remove("resourceVersion");
            m.remove("managedFields");
        }
        v
    };
    strip(old) == strip(new)
}

/// Validates the name format a type requires.
fn validate_name(rt: &ResourceType, name: &str) -> Result<(), String> {
    match rt.builtin {
        Some(Builtin::Namespace | Builtin::Service) => is_dns1123_label(name),
        Some(Builtin::Job) => {
            is_dns1123_subdomain(name)?;
            if name.len() > 63 {
                return Err("must be no more than 63 characters".to_string());
            }
            Ok(())
        }
        Some(
            Builtin::Event
            | Builtin::EventV1
            | Builtin::Role
            | Builtin::RoleBinding
            | Builtin::ClusterRole
            | Builtin::ClusterRoleBinding,
        ) => is_path_segment(name),
        _ => is_dns1123_subdomain(name),
    }
}

/// `ObjectMeta` validation: name, namespace, labels, annotations, finalizers, owner references.
pub fn validate_object_meta(rt: &ResourceType, object: &Value) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let name = meta_str(object, "name");
    if name.is_empty() {
        errors.push(FieldError::required(
            "metadata.name",
            "name or generateName is required",
        ));
    } else if let Err(why) = validate_name(rt, name) {
        errors.push(FieldError::invalid("metadata.name", json!(name), why));
    }
    if let Some(labels) = object.pointer("/metadata/labels") {
        match labels.as_object() {
            Some(map) => {
                for (k, v) in map {
                    if let Err(why) = is_qualified_name(k) {
                        errors.push(FieldError::invalid("metadata.labels", json!(k), why));
                    }
                    match v.as_str() {
                        Some(s) => {
                            if let Err(why) = is_label_value(s) {
                                errors.push(FieldError::invalid("metadata.labels", json!(s), why));
                            }
                        }
                        None => errors.push(FieldError::invalid(
                            format!("metadata.labels.{k}"),
                            v.clone(),
                            "must be a string",
                        )),
                    }
                }
            }
            None if labels.is_null() => {}
            None => errors.push(FieldError::invalid(
                "metadata.labels",
                labels.clone(),
                "must be an object",
            )),
        }
    }
    if let Some(ann) = object
        .pointer("/metadata/annotations")
        .and_then(Value::as_object)
    {
        let mut total = 0usize;
        for (k, v) in ann {
            if let Err(why) = is_qualified_name(&k.to_lowercase()) {
                errors.push(FieldError::invalid("metadata.annotations", json!(k), why));
            }
            total += k.len() + v.as_str().map(str::len).unwrap_or(0);
        }
        if total > 256 * 1024 {
            errors.push(FieldError::too_long("metadata.annotations", 256 * 1024));
        }
    }
    for (i, f) in finalizers(object).iter().enumerate() {
        if let Err(why) = is_qualified_name(f) {
            errors.push(FieldError::invalid(
                format!("metadata.finalizers[{i}]"),
                json!(f),
                why,
            ));
        }
    }
    if let Some(refs) = object
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
    {
        let mut controllers = 0;
        for (i, r) in refs.iter().enumerate() {
            for field in ["apiVersion", "kind", "name", "uid"] {
                if r.get(field)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .is_empty()
                {
                    errors.push(FieldError::invalid(
                        format!("metadata.ownerReferences[{i}].{field}"),
                        json!(""),
                        format!("{field} must not be empty"),
                    ));
                }
            }
            if r.get("controller").and_then(Value::as_bool) == Some(true) {
                controllers += 1;
            }
        }
        if controllers > 1 {
            errors.push(FieldError::invalid(
                "metadata.ownerReferences",
                Value::Array(refs.clone()),
                "Only one reference can have Controller set to true",
            ));
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::Registry;

    #[test]
    fn generated_names_use_the_prefix_and_five_safe_characters() {
        let n = generate_name("job-");
        assert!(n.starts_with("job-"));
        assert_eq!(n.len(), 9);
        assert!(n[4..].bytes().all(|b| ALPHABET.contains(&b)));
        assert_eq!(generate_name(&"x".repeat(80)).len(), 63);
    }

    #[test]
    fn generation_ignores_metadata_and_status_when_status_is_a_subresource() {
        let reg = Registry::new(&[]);
        let jobs = reg.lookup("batch", "v1", "jobs").unwrap();
        let old =
            json!({"metadata": {"labels": {"a": "b"}}, "spec": {"x": 1}, "status": {"active": 1}});
        let mut new = old.clone();
        new["metadata"]["labels"]["a"] = json!("c");
        new["status"]["active"] = json!(2);
        assert!(!generation_changed(&jobs, &old, &new));
        new["spec"]["x"] = json!(2);
        assert!(generation_changed(&jobs, &old, &new));
    }

    #[test]
    fn object_meta_validation_names_each_bad_field() {
        let reg = Registry::new(&[]);
        let cms = reg.lookup("", "v1", "configmaps").unwrap();
        let errs = validate_object_meta(
            &cms,
            &json!({"metadata": {"name": "Bad_Name", "labels": {"ok": "bad value"},
                                 "ownerReferences": [{"apiVersion": "v1", "kind": "X", "name": "n"}]}}),
        );
        let fields: Vec<_> = errs.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "metadata.name",
                "metadata.labels",
                "metadata.ownerReferences[0].uid"
            ]
        );
        let jobs = reg.lookup("batch", "v1", "jobs").unwrap();
        let long = "j".repeat(64);
        assert_eq!(
            validate_object_meta(&jobs, &json!({"metadata": {"name": long}})).len(),
            1
        );
    }
}
