//! Create: server-set metadata, generateName, namespace lifecycle, admission and validation.

use super::meta::{generate_name, meta_mut, meta_str, new_uid, validate_object_meta};
use super::{Api, Outcome, Target, WriteOptions, Written};
use crate::admission;
use crate::error::ApiError;
use crate::resource::{Builtin, ResourceType};
use crate::store::Mutation;
use crate::time::now_time;
use serde_json::{Value, json};
use std::sync::Arc;

impl Api {
    /// Creates an object (POST to a collection).
    pub fn create(
        &self,
        rt: &Arc<ResourceType>,
        namespace: Option<&str>,
        body: Value,
        opts: &WriteOptions,
    ) -> Result<Written, ApiError> {
        if let Some(c) = &rt.custom
            && c.terminating
        {
            return Err(ApiError::method_not_allowed(
                "create not allowed while custom resource definition is terminating",
            ));
        }
        let mut object = self.accept_body(rt, body)?;
        let namespace = self.resolve_namespace(rt, namespace, &mut object)?;
        {
            let meta = meta_mut(&mut object);
            if meta
                .get("resourceVersion")
                .and_then(Value::as_str)
                .is_some_and(|rv| !rv.is_empty())
            {
                return Err(ApiError::internal(
                    "resourceVersion should not be set on objects to be created",
                ));
            }
            for field in [
                "resourceVersion",
                "managedFields",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "selfLink",
            ] {
                meta.remove(field);
            }
            meta.insert("uid".into(), json!(new_uid()));
            meta.insert("creationTimestamp".into(), json!(now_time()));
            if rt.has_generation {
                meta.insert("generation".into(), json!(1));
            } else {
                meta.remove("generation");
            }
        }
        // A create cannot set status where status is a subresource (Nodes excepted).
        if rt.has_status()
            && !rt.is(Builtin::Node)
            && let Some(m) = object.as_object_mut()
        {
            m.remove("status");
        }
        if !namespace.is_empty() && !rt.is(Builtin::Namespace) {
            self.check_namespace_open(rt, &namespace, &object)?;
        }
        let mut warnings = admission::on_create(self, rt, &mut object)?;
        warnings.extend(self.check_schema(
            rt,
            &mut object,
            None,
            opts.field_validation,
            Target::Main,
        )?);

        let prefix = meta_str(&object, "generateName").to_string();
        let generate = meta_str(&object, "name").is_empty() && !prefix.is_empty();
        for attempt in 0..8 {
            if generate {
                meta_mut(&mut object).insert("name".into(), json!(generate_name(&prefix)));
            }
            let errors = validate_object_meta(rt, &object);
            let name = meta_str(&object, "name").to_string();
            if !errors.is_empty() {
                return Err(ApiError::invalid(&rt.kind, &rt.group, &name, &errors));
            }
            let candidate = object.clone();
            let result = self.guaranteed_update(rt, &namespace, &name, opts.dry_run, |cur| {
                if cur.is_some() {
                    return Err(ApiError::already_exists(&rt.group, &rt.plural, &name));
                }
                Ok(Mutation::Put(candidate.clone()))
            });
            match result {
                Ok(Outcome::Put { value, .. }) => {
                    return Ok(Written {
                        object: self.present(rt, value),
                        warnings,
                        created: true,
                    });
                }
                Ok(_) => return Err(ApiError::internal("create did not store the object")),
                Err(e) if e.reason == "AlreadyExists" && generate && attempt < 7 => continue,
                Err(e) => return Err(e),
            }
        }
        Err(ApiError::already_exists(&rt.group, &rt.plural, &prefix))
    }

    /// Settles `metadata.namespace` against the URL's namespace.
    pub(crate) fn resolve_namespace(
        &self,
        rt: &ResourceType,
        url_namespace: Option<&str>,
        object: &mut Value,
    ) -> Result<String, ApiError> {
        let body_ns = meta_str(object, "namespace").to_string();
        if !rt.namespaced {
            meta_mut(object).remove("namespace");
            return Ok(String::new());
        }
        let Some(ns) = url_namespace.filter(|n| !n.is_empty()) else {
            return Err(ApiError::bad_request(format!(
                "a namespace is required to create or change {}",
                rt.plural
            )));
        };
        if !body_ns.is_empty() && body_ns != ns {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        meta_mut(object).insert("namespace".into(), json!(ns));
        Ok(ns.to_string())
    }

    /// Fails unless `namespace` exists and is not terminating (events are still allowed there).
    fn check_namespace_open(
        &self,
        rt: &ResourceType,
        namespace: &str,
        object: &Value,
    ) -> Result<(), ApiError> {
        let Some(ns) = self.store().get("core/namespaces", "", namespace) else {
            return Err(ApiError::not_found("", "namespaces", namespace));
        };
        let terminating = ns.index.deleting;
        if terminating && !matches!(rt.builtin, Some(Builtin::Event | Builtin::EventV1)) {
            let name = meta_str(object, "name");
            let shown = if name.is_empty() {
                meta_str(object, "generateName")
            } else {
                name
            };
            let message = format!(
                "unable to create new content in namespace {namespace} because it is being terminated"
            );
            return Err(ApiError::forbidden(format!(
                "{} {shown:?} is forbidden: {message}",
                crate::error::qualified(&rt.plural, &rt.group)
            ))
            .with_details(json!({
                "name": shown,
                "kind": rt.plural,
                "causes": [{"reason": "NamespaceTerminating", "message": message, "field": "metadata.namespace"}]
            })));
        }
        Ok(())
    }
}
