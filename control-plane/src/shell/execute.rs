//! Carries out a plan's intents against the API server and the agent hub, in the order that
//! keeps the guarantees of docs/PROTOCOL.md §2.3: metadata first, then the status (patched only
//! where it differs, guarded by the resourceVersion so a plan made from a stale read fails
//! instead of overwriting newer state), then dispatches, acknowledgements, events, creates and
//! deletes, and the finalizer's removal last (the object may disappear with it).

use std::collections::BTreeMap;
use std::fmt::Debug;

use cairn_api::well_known;
use kube::api::{
    Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams, PropagationPolicy,
};
use kube::core::{ApiResource, GroupVersionKind};
use kube::runtime::events::{Event, EventType as KubeEventType};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::Context;
use crate::plan::{EventType, Intent, Plan};

/// A step of a plan that failed.
#[derive(Debug, thiserror::Error)]
pub enum ExecuteError {
    /// Patching labels, annotations or finalizers failed.
    #[error("patching the metadata of {object}")]
    PatchMeta {
        object: String,
        #[source]
        source: Box<kube::Error>,
    },
    /// Patching the status failed (a 409 means the plan was made from a stale read).
    #[error("patching the status of {object}")]
    PatchStatus {
        object: String,
        #[source]
        source: Box<kube::Error>,
    },
    /// Creating an object failed.
    #[error("creating {kind} {name}")]
    Create {
        kind: String,
        name: String,
        #[source]
        source: Box<kube::Error>,
    },
    /// Deleting an object failed.
    #[error("deleting {kind} {name}")]
    Delete {
        kind: String,
        name: String,
        #[source]
        source: Box<kube::Error>,
    },
    /// This replica does not lead (any more): nothing is written. Checked against the lease
    /// deadline before every plan, so a leader that was paused past its lease and resumed
    /// never acts on what it planned before the pause.
    #[error("not carrying out the plan for {object}: this replica is not the leader")]
    NotLeading { object: String },
    /// A created object lacks apiVersion, kind or name.
    #[error("an object to create has no {0}")]
    Incomplete(&'static str),
    /// Serializing a status failed.
    #[error("serializing the status of {object}")]
    Serialize {
        object: String,
        #[source]
        source: serde_json::Error,
    },
}

impl ExecuteError {
    /// Whether a write to the object itself was refused with 409 Conflict: the plan was made
    /// from an older copy of it than the server's.
    pub fn is_conflict(&self) -> bool {
        match self {
            ExecuteError::PatchMeta { source, .. } | ExecuteError::PatchStatus { source, .. } => {
                matches!(source.as_ref(), kube::Error::Api(status) if status.code == 409)
            }
            _ => false,
        }
    }

    /// Short label for the failure metric.
    pub fn metric_label(&self) -> &'static str {
        match self {
            ExecuteError::PatchMeta { .. } => "patch_meta",
            ExecuteError::PatchStatus { .. } => "patch_status",
            ExecuteError::Create { .. } => "create",
            ExecuteError::Delete { .. } => "delete",
            ExecuteError::Incomplete(_) => "incomplete",
            ExecuteError::NotLeading { .. } => "not_leading",
            ExecuteError::Serialize { .. } => "serialize",
        }
    }
}

fn describe<K: Resource<DynamicType = ()>>(obj: &K) -> String {
    match obj.meta().namespace.as_deref() {
        Some(ns) => format!("{} {ns}/{}", K::kind(&()), obj.name_any()),
        None => format!("{} {}", K::kind(&()), obj.name_any()),
    }
}

/// Carries out `plan` for `obj` (read from `api`), whose current status is `current_status`.
pub async fn execute<K, S>(
    ctx: &Context,
    api: &Api<K>,
    obj: &K,
    current_status: Option<&S>,
    plan: Plan<S>,
) -> Result<(), ExecuteError>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Serialize + Debug,
    S: Serialize,
{
    let object = describe(obj);
    if !ctx.leadership.is_leading() {
        return Err(ExecuteError::NotLeading { object });
    }
    let name = obj.name_any();
    let mut resource_version = obj.meta().resource_version.clone();
    let mut remove_finalizer = false;
    let mut finalizers = obj.meta().finalizers.clone().unwrap_or_default();

    for intent in &plan.intents {
        let patch = match intent {
            Intent::PatchMeta {
                labels,
                annotations,
            } => {
                json!({"metadata": {"labels": nullable(labels), "annotations": nullable(annotations)}})
            }
            Intent::AddFinalizer if !finalizers.iter().any(|f| f == well_known::FINALIZER) => {
                finalizers.push(well_known::FINALIZER.to_string());
                json!({"metadata": {"finalizers": finalizers, "resourceVersion": resource_version}})
            }
            Intent::RemoveFinalizer => {
                remove_finalizer = true;
                continue;
            }
            _ => continue,
        };
        let updated = api
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(|source| ExecuteError::PatchMeta {
                object: object.clone(),
                source: Box::new(source),
            })?;
        resource_version = updated.meta().resource_version.clone();
    }

    if let Some(status) = &plan.status {
        let new = serde_json::to_value(status).map_err(|source| ExecuteError::Serialize {
            object: object.clone(),
            source,
        })?;
        let old = current_status
            .map(serde_json::to_value)
            .transpose()
            .map_err(|source| ExecuteError::Serialize {
                object: object.clone(),
                source,
            })?
            .unwrap_or(Value::Null);
        if let Some(diff) = merge_diff(&old, &new) {
            let patch = json!({"metadata": {"resourceVersion": resource_version}, "status": diff});
            let updated = api
                .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map_err(|source| ExecuteError::PatchStatus {
                    object: object.clone(),
                    source: Box::new(source),
                })?;
            resource_version = updated.meta().resource_version.clone();
        }
    }

    let reference = obj.object_ref(&());
    for intent in plan.intents {
        match intent {
            Intent::Dispatch { node, action } => {
                if node.is_empty() {
                    tracing::warn!(action.id = %action.id, "action has no node to run on; not dispatched");
                    continue;
                }
                let mut action = *action;
                // Results are routed to the owner the action names (and the agent reports it
                // back after a restart); the object reconciled is the owner when none is set.
                if action.owner.is_none() {
                    action.owner = Some(owner_ref(&reference));
                }
                // The agent continues the reconcile's trace (PROTOCOL.md §2.4).
                if action.traceparent.is_empty() {
                    action.traceparent = cairn_telemetry::traceparent();
                }
                if let Err(err) = ctx.dispatcher.dispatch(&node, action) {
                    tracing::warn!(error = %err, "dispatch refused");
                }
            }
            Intent::Cancel {
                node,
                action_id,
                reason,
            } => ctx.dispatcher.cancel(&node, &action_id, &reason),
            Intent::Acknowledge { action_id } => ctx.dispatcher.acknowledge(&action_id),
            Intent::Event {
                type_,
                reason,
                message,
            } => {
                let event = Event {
                    type_: match type_ {
                        EventType::Normal => KubeEventType::Normal,
                        EventType::Warning => KubeEventType::Warning,
                    },
                    reason,
                    note: Some(truncate(&message, 1024)),
                    action: "Reconcile".into(),
                    secondary: None,
                };
                if let Err(err) = ctx.events.publish(&event, &reference).await {
                    tracing::debug!(error = %err, "publishing an event failed");
                }
            }
            Intent::Create { object } => create(ctx, object).await?,
            Intent::Delete {
                api_version,
                kind,
                namespace,
                name,
            } => delete(ctx, &api_version, &kind, namespace.as_deref(), &name).await?,
            Intent::PatchLabels {
                api_version,
                kind,
                namespace,
                name,
                labels,
            } => {
                patch_labels(
                    ctx,
                    &api_version,
                    &kind,
                    namespace.as_deref(),
                    &name,
                    labels,
                )
                .await?
            }
            Intent::MergePatch {
                api_version,
                kind,
                namespace,
                name,
                patch,
            } => {
                merge_patch(
                    ctx,
                    &api_version,
                    &kind,
                    namespace.as_deref(),
                    &name,
                    &patch,
                )
                .await?
            }
            Intent::Orphan {
                api_version,
                kind,
                namespace,
                name,
            } => orphan(ctx, &api_version, &kind, namespace.as_deref(), &name).await?,
            Intent::PatchMeta { .. } | Intent::AddFinalizer | Intent::RemoveFinalizer => {}
        }
    }

    if remove_finalizer && finalizers.iter().any(|f| f == well_known::FINALIZER) {
        let index = finalizers
            .iter()
            .position(|f| f == well_known::FINALIZER)
            .unwrap_or(0);
        let patch = json!([
            {"op": "test", "path": format!("/metadata/finalizers/{index}"), "value": well_known::FINALIZER},
            {"op": "remove", "path": format!("/metadata/finalizers/{index}")},
        ]);
        let patch: json_patch::Patch =
            serde_json::from_value(patch).map_err(|source| ExecuteError::Serialize {
                object: object.clone(),
                source,
            })?;
        match api
            .patch(&name, &PatchParams::default(), &Patch::Json::<()>(patch))
            .await
        {
            // The object is gone or going: nobody will record its actions or aggregate its
            // events any more.
            Ok(_) => {
                ctx.dispatcher.owner_gone(&owner_ref(&reference));
                ctx.events.forget(&reference);
            }
            Err(kube::Error::Api(status)) if status.code == 404 => {
                ctx.dispatcher.owner_gone(&owner_ref(&reference));
                ctx.events.forget(&reference);
            }
            Err(source) => {
                return Err(ExecuteError::PatchMeta {
                    object,
                    source: Box::new(source),
                });
            }
        }
    }
    let _ = resource_version;
    Ok(())
}

/// The agent protocol's reference to `reference`'s object.
fn owner_ref(
    reference: &k8s_openapi::api::core::v1::ObjectReference,
) -> cairn_proto::agent::v1::ObjectRef {
    cairn_proto::agent::v1::ObjectRef {
        api_version: reference.api_version.clone().unwrap_or_default(),
        kind: reference.kind.clone().unwrap_or_default(),
        namespace: reference.namespace.clone().unwrap_or_default(),
        name: reference.name.clone().unwrap_or_default(),
        uid: reference.uid.clone().unwrap_or_default(),
    }
}

fn nullable(map: &BTreeMap<String, Option<String>>) -> Value {
    Value::Object(
        map.iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    v.clone().map(Value::String).unwrap_or(Value::Null),
                )
            })
            .collect(),
    )
}

fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// The JSON merge patch (RFC 7396) that turns `old` into `new`, or `None` when they are equal.
pub fn merge_diff(old: &Value, new: &Value) -> Option<Value> {
    if old == new {
        return None;
    }
    match (old, new) {
        (Value::Object(old), Value::Object(new)) => {
            let mut patch = serde_json::Map::new();
            for (key, value) in new {
                match old.get(key) {
                    Some(previous) => {
                        if let Some(diff) = merge_diff(previous, value) {
                            patch.insert(key.clone(), diff);
                        }
                    }
                    None => {
                        patch.insert(key.clone(), value.clone());
                    }
                }
            }
            for key in old.keys() {
                if !new.contains_key(key) {
                    patch.insert(key.clone(), Value::Null);
                }
            }
            Some(Value::Object(patch))
        }
        _ => Some(new.clone()),
    }
}

fn api_for(
    ctx: &Context,
    object: &Value,
) -> Result<(Api<DynamicObject>, String, String), ExecuteError> {
    let api_version = object
        .get("apiVersion")
        .and_then(Value::as_str)
        .ok_or(ExecuteError::Incomplete("apiVersion"))?;
    let kind = object
        .get("kind")
        .and_then(Value::as_str)
        .ok_or(ExecuteError::Incomplete("kind"))?;
    let name = object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .ok_or(ExecuteError::Incomplete("metadata.name"))?;
    let namespace = object
        .pointer("/metadata/namespace")
        .and_then(Value::as_str);
    let resource = api_resource(api_version, kind);
    let api = match namespace {
        Some(ns) => Api::namespaced_with(ctx.client.clone(), ns, &resource),
        None => Api::all_with(ctx.client.clone(), &resource),
    };
    Ok((api, kind.to_string(), name.to_string()))
}

fn api_resource(api_version: &str, kind: &str) -> ApiResource {
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind))
}

async fn create(ctx: &Context, object: Value) -> Result<(), ExecuteError> {
    let (api, kind, name) = api_for(ctx, &object)?;
    let dynamic: DynamicObject =
        serde_json::from_value(object).map_err(|source| ExecuteError::Serialize {
            object: format!("{kind} {name}"),
            source,
        })?;
    match api.create(&PostParams::default(), &dynamic).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(()),
        Err(source) => Err(ExecuteError::Create {
            kind,
            name,
            source: Box::new(source),
        }),
    }
}

async fn delete(
    ctx: &Context,
    api_version: &str,
    kind: &str,
    namespace: Option<&str>,
    name: &str,
) -> Result<(), ExecuteError> {
    let resource = api_resource(api_version, kind);
    let api: Api<DynamicObject> = match namespace {
        Some(ns) => Api::namespaced_with(ctx.client.clone(), ns, &resource),
        None => Api::all_with(ctx.client.clone(), &resource),
    };
    let params = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Background),
        ..Default::default()
    };
    match api.delete(name, &params).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(source) => Err(ExecuteError::Delete {
            kind: kind.to_string(),
            name: name.to_string(),
            source: Box::new(source),
        }),
    }
}

/// Removes the owner references of another object; a missing object is left alone.
async fn orphan(
    ctx: &Context,
    api_version: &str,
    kind: &str,
    namespace: Option<&str>,
    name: &str,
) -> Result<(), ExecuteError> {
    let patch = json!({"metadata": {"ownerReferences": null}});
    merge_patch(ctx, api_version, kind, namespace, name, &patch).await
}

/// Merge-patches labels (`None` removes one) of another object; a missing object is left alone.
async fn patch_labels(
    ctx: &Context,
    api_version: &str,
    kind: &str,
    namespace: Option<&str>,
    name: &str,
    labels: BTreeMap<String, Option<String>>,
) -> Result<(), ExecuteError> {
    let patch = json!({"metadata": {"labels": labels}});
    merge_patch(ctx, api_version, kind, namespace, name, &patch).await
}

/// Merge-patches another object (its metadata, or a spec field); a missing object is left
/// alone.
async fn merge_patch(
    ctx: &Context,
    api_version: &str,
    kind: &str,
    namespace: Option<&str>,
    name: &str,
    patch: &serde_json::Value,
) -> Result<(), ExecuteError> {
    let resource = api_resource(api_version, kind);
    let api: Api<DynamicObject> = match namespace {
        Some(ns) => Api::namespaced_with(ctx.client.clone(), ns, &resource),
        None => Api::all_with(ctx.client.clone(), &resource),
    };
    match api
        .patch(name, &PatchParams::default(), &Patch::Merge(patch))
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(source) => Err(ExecuteError::PatchMeta {
            object: format!("{kind} {}/{name}", namespace.unwrap_or_default()),
            source: Box::new(source),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_values_need_no_patch() {
        assert_eq!(merge_diff(&json!({"a": 1}), &json!({"a": 1})), None);
    }

    #[test]
    fn changed_added_and_removed_fields_are_patched() {
        let old = json!({"phase": "New", "path": "/a", "gone": 1, "nested": {"x": 1, "y": 2}});
        let new = json!({"phase": "Running", "path": "/a", "added": true, "nested": {"x": 1}});
        assert_eq!(
            merge_diff(&old, &new),
            Some(json!({"phase": "Running", "gone": null, "added": true, "nested": {"y": null}}))
        );
    }

    #[test]
    fn arrays_are_replaced_whole() {
        let old = json!({"actions": [{"name": "a", "phase": "New"}]});
        let new = json!({"actions": [{"name": "a", "phase": "Running"}]});
        assert_eq!(merge_diff(&old, &new), Some(new.clone()));
    }

    #[test]
    fn applying_the_diff_gives_the_new_value() {
        let old = json!({"a": {"b": [1, 2], "c": "x"}, "d": null, "e": 5});
        let new = json!({"a": {"b": [3], "c": "x", "f": {"g": 1}}, "e": 6});
        let mut patched = old.clone();
        json_patch::merge(&mut patched, &merge_diff(&old, &new).unwrap());
        assert_eq!(patched, new);
    }

    #[test]
    fn long_event_messages_are_cut_on_a_character_boundary() {
        let text = "é".repeat(600);
        let cut = truncate(&text, 1024);
        assert!(cut.len() <= 1024 + '…'.len_utf8());
        assert!(cut.ends_with('…'));
    }
}
