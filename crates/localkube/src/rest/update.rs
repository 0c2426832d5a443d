//! Update (PUT) and the decision every update and patch shares: server-owned metadata,
//! status-subresource isolation, finalizer rules, generation and no-op detection.

use super::meta::{
    finalizers, generation, generation_changed, is_deleting, meta_mut, meta_str, same_object,
    validate_object_meta,
};
use super::{Api, Outcome, Target, WriteOptions, Written};
use crate::admission;
use crate::error::{ApiError, FieldError};
use crate::resource::{Builtin, ResourceType};
use crate::store::Mutation;
use serde_json::{Value, json};
use std::sync::Arc;

/// Metadata fields only the server sets; an update keeps the stored values.
const SERVER_OWNED: &[&str] = &[
    "uid",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "generation",
];

/// Whether nothing holds the object back once it is being deleted.
pub(crate) fn deletable(rt: &ResourceType, object: &Value) -> bool {
    if !finalizers(object).is_empty() {
        return false;
    }
    if rt.is(Builtin::Namespace) {
        return object
            .pointer("/spec/finalizers")
            .and_then(Value::as_array)
            .is_none_or(|f| f.is_empty());
    }
    true
}

impl Api {
    /// Replaces an object (PUT), or its status or (namespaces) its finalizers.
    pub fn update(
        &self,
        rt: &Arc<ResourceType>,
        namespace: Option<&str>,
        name: &str,
        body: Value,
        target: Target,
        opts: &WriteOptions,
    ) -> Result<Written, ApiError> {
        let mut new = self.accept_body(rt, body)?;
        let body_name = meta_str(&new, "name").to_string();
        if body_name != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        let ns = self.resolve_namespace(rt, namespace, &mut new)?;
        let body_rv = meta_str(&new, "resourceVersion").to_string();
        if body_rv.is_empty() && rt.custom.is_some() {
            return Err(ApiError::invalid(
                &rt.kind,
                &rt.group,
                name,
                &[FieldError::invalid(
                    "metadata.resourceVersion",
                    json!("0x0"),
                    "must be specified for an update",
                )],
            ));
        }
        let mut warnings = Vec::new();
        let outcome = self.guaranteed_update(rt, &ns, name, opts.dry_run, |cur| {
            let cur = cur.ok_or_else(|| ApiError::not_found(&rt.group, &rt.plural, name))?;
            if !body_rv.is_empty() && body_rv != cur.rv.to_string() {
                return Err(ApiError::modified(&rt.group, &rt.plural, name));
            }
            warnings.clear();
            self.decide_update(rt, &cur.value(), new.clone(), target, opts, &mut warnings)
        })?;
        Ok(self.written(rt, outcome, warnings))
    }

    /// Turns an update's outcome into what the client sees.
    pub(crate) fn written(
        &self,
        rt: &ResourceType,
        outcome: Outcome,
        warnings: Vec<String>,
    ) -> Written {
        let object = match outcome {
            Outcome::Put { value, .. } | Outcome::Deleted { value } => value,
            Outcome::Unchanged(Some(cur)) => cur.value(),
            Outcome::Unchanged(None) => Value::Null,
        };
        Written {
            object: self.present(rt, object),
            warnings,
            created: false,
        }
    }

    /// Decides what storing `new` over `old` means.
    pub(crate) fn decide_update(
        &self,
        rt: &ResourceType,
        old: &Value,
        new: Value,
        target: Target,
        opts: &WriteOptions,
        warnings: &mut Vec<String>,
    ) -> Result<Mutation, ApiError> {
        let name = meta_str(old, "name").to_string();
        let mut new = match target {
            Target::Main => {
                let mut new = new;
                carry_server_owned(old, &mut new);
                if rt.has_status() {
                    match old.get("status") {
                        Some(s) => new["status"] = s.clone(),
                        None => {
                            if let Some(m) = new.as_object_mut() {
                                m.remove("status");
                            }
                        }
                    }
                }
                new
            }
            Target::Status => {
                let mut merged = old.clone();
                match new.get("status") {
                    Some(s) => merged["status"] = s.clone(),
                    None => {
                        if let Some(m) = merged.as_object_mut() {
                            m.remove("status");
                        }
                    }
                }
                merged
            }
            Target::Finalize => {
                let mut merged = old.clone();
                let list = new
                    .pointer("/spec/finalizers")
                    .cloned()
                    .unwrap_or_else(|| json!([]));
                merged["spec"]["finalizers"] = list;
                merged
            }
        };
        if let Some(m) = new.get_mut("metadata").and_then(Value::as_object_mut) {
            m.remove("managedFields");
        }
        if is_deleting(old) {
            let before = finalizers(old);
            if let Some(added) = finalizers(&new).iter().find(|f| !before.contains(f)) {
                return Err(ApiError::invalid(
                    &rt.kind,
                    &rt.group,
                    &name,
                    &[FieldError::forbidden(
                        "metadata.finalizers",
                        format!(
                            "no new finalizers can be added if the object is being deleted, found new finalizers []string{{{added:?}}}"
                        ),
                    )],
                ));
            }
        }
        let errors = validate_object_meta(rt, &new);
        if !errors.is_empty() {
            return Err(ApiError::invalid(&rt.kind, &rt.group, &name, &errors));
        }
        warnings.extend(admission::on_update(self, rt, &mut new, old, target)?);
        warnings.extend(self.check_schema(
            rt,
            &mut new,
            Some(old),
            opts.field_validation,
            target,
        )?);
        if same_object(old, &new) {
            return Ok(Mutation::Keep);
        }
        if rt.has_generation && target == Target::Main && generation_changed(rt, old, &new) {
            meta_mut(&mut new).insert("generation".into(), json!(generation(old) + 1));
        }
        if is_deleting(&new) && deletable(rt, &new) {
            return Ok(Mutation::Delete(new));
        }
        Ok(Mutation::Put(new))
    }
}

fn carry_server_owned(old: &Value, new: &mut Value) {
    let old_meta = old.get("metadata").and_then(Value::as_object).cloned();
    let meta = meta_mut(new);
    for field in SERVER_OWNED {
        match old_meta.as_ref().and_then(|m| m.get(*field)) {
            Some(v) => {
                meta.insert(field.to_string(), v.clone());
            }
            None => {
                meta.remove(*field);
            }
        }
    }
    meta.remove("selfLink");
}
