//! Delete: preconditions, graceful pod deletion, propagation finalizers, finalizer-pending
//! deletion, namespace termination and CRD cleanup.

use super::meta::{finalizers, generation, is_deleting, meta_mut, set_finalizers};
use super::{Api, ListOptions, Outcome};
use crate::error::ApiError;
use crate::resource::{Builtin, ResourceType};
use crate::store::Mutation;
use crate::time::{format_time, now_time};
use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};
use std::sync::Arc;

pub const FINALIZER_ORPHAN: &str = "orphan";
pub const FINALIZER_FOREGROUND: &str = "foregroundDeletion";
pub const FINALIZER_CRD_CLEANUP: &str = "customresourcecleanup.apiextensions.k8s.io";

const PROTECTED_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public"];

/// `propagationPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Propagation {
    Orphan,
    Background,
    Foreground,
}

impl Propagation {
    pub fn parse(s: &str) -> Result<Propagation, ApiError> {
        match s {
            "Orphan" => Ok(Propagation::Orphan),
            "Background" => Ok(Propagation::Background),
            "Foreground" => Ok(Propagation::Foreground),
            other => Err(ApiError::bad_request(format!(
                "propagationPolicy: Unsupported value: {other:?}: supported values: \"Foreground\", \"Background\", \"Orphan\""
            ))),
        }
    }
}

/// `DeleteOptions`, from the body or the query.
#[derive(Debug, Clone, Default)]
pub struct DeleteOptions {
    pub propagation: Option<Propagation>,
    /// The deprecated `orphanDependents`.
    pub orphan_dependents: Option<bool>,
    pub grace_period: Option<i64>,
    pub precondition_uid: Option<String>,
    pub precondition_rv: Option<String>,
    pub dry_run: bool,
}

/// What a delete did.
#[derive(Debug, Clone)]
pub enum DeleteOutcome {
    /// The object is gone; its last state (with the deletion's resourceVersion).
    Gone(Value),
    /// Deletion is pending (finalizers, graceful termination, namespace cleanup).
    Pending(Value),
}

impl DeleteOptions {
    fn propagation_for(&self, rt: &ResourceType) -> Propagation {
        if let Some(p) = self.propagation {
            return p;
        }
        match self.orphan_dependents {
            Some(true) => Propagation::Orphan,
            Some(false) => Propagation::Background,
            // batch/v1 Jobs orphan their pods by default (a back-compat rule upstream).
            None if rt.is(Builtin::Job) => Propagation::Orphan,
            None => Propagation::Background,
        }
    }
}

fn pod_grace(object: &Value, opts: &DeleteOptions) -> i64 {
    opts.grace_period.unwrap_or_else(|| {
        object
            .pointer("/spec/terminationGracePeriodSeconds")
            .and_then(Value::as_i64)
            .unwrap_or(30)
    })
}

fn pod_is_terminal(object: &Value) -> bool {
    matches!(
        object.pointer("/status/phase").and_then(Value::as_str),
        Some("Succeeded" | "Failed")
    )
}

impl Api {
    /// Deletes an object (DELETE on an object path).
    pub fn delete(
        &self,
        rt: &Arc<ResourceType>,
        namespace: Option<&str>,
        name: &str,
        opts: &DeleteOptions,
    ) -> Result<DeleteOutcome, ApiError> {
        let ns = if rt.namespaced {
            namespace.unwrap_or_default().to_string()
        } else {
            String::new()
        };
        if rt.is(Builtin::Namespace) && PROTECTED_NAMESPACES.contains(&name) {
            return Err(ApiError::forbidden(format!(
                "namespaces {name:?} is forbidden: this namespace may not be deleted"
            ))
            .with_details(json!({"name": name, "kind": "namespaces"})));
        }
        let propagation = opts.propagation_for(rt);
        let outcome = self.guaranteed_update(rt, &ns, name, opts.dry_run, |cur| {
            let cur = cur.ok_or_else(|| ApiError::not_found(&rt.group, &rt.plural, name))?;
            let old = cur.value();
            if let Some(uid) = &opts.precondition_uid
                && *uid != cur.index.uid
            {
                return Err(ApiError::conflict(
                    &rt.group,
                    &rt.plural,
                    name,
                    &format!(
                        "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                        cur.index.uid
                    ),
                ));
            }
            if let Some(rv) = &opts.precondition_rv
                && *rv != cur.rv.to_string()
            {
                return Err(ApiError::conflict(
                    &rt.group,
                    &rt.plural,
                    name,
                    &format!(
                        "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                        cur.rv
                    ),
                ));
            }
            Ok(decide_delete(rt, &old, propagation, opts))
        })?;
        Ok(match outcome {
            Outcome::Deleted { value } => DeleteOutcome::Gone(self.present(rt, value)),
            Outcome::Put { value, .. } => DeleteOutcome::Pending(self.present(rt, value)),
            Outcome::Unchanged(Some(cur)) => DeleteOutcome::Pending(self.present_stored(rt, &cur)),
            Outcome::Unchanged(None) => {
                return Err(ApiError::not_found(&rt.group, &rt.plural, name));
            }
        })
    }

    /// Deletes every object of a collection that the selectors match (deletecollection).
    pub async fn delete_collection(
        &self,
        rt: &Arc<ResourceType>,
        namespace: Option<&str>,
        list: &ListOptions,
        opts: &DeleteOptions,
    ) -> Result<Vec<Value>, ApiError> {
        let mut list = list.clone();
        list.limit = 0;
        list.continue_token = None;
        let page = self.list(rt, namespace, &list).await?;
        let mut out = Vec::new();
        for item in page.items {
            let ns = (!item.namespace.is_empty()).then_some(item.namespace.as_str());
            match self.delete(rt, ns, &item.name, opts) {
                Ok(DeleteOutcome::Gone(v) | DeleteOutcome::Pending(v)) => out.push(v),
                Err(e) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }
}

/// What deleting `old` means, given the propagation policy (a pure decision).
pub(crate) fn decide_delete(
    rt: &ResourceType,
    old: &Value,
    propagation: Propagation,
    opts: &DeleteOptions,
) -> Mutation {
    let deleting = is_deleting(old);
    let mut new = old.clone();

    if rt.is(Builtin::Namespace) {
        let spec_empty = old
            .pointer("/spec/finalizers")
            .and_then(Value::as_array)
            .is_none_or(|f| f.is_empty());
        if !deleting && spec_empty && finalizers(old).is_empty() {
            return Mutation::Delete(new);
        }
        if deleting {
            return Mutation::Keep;
        }
        meta_mut(&mut new).insert("deletionTimestamp".into(), json!(now_time()));
        meta_mut(&mut new).insert("deletionGracePeriodSeconds".into(), json!(0));
        new["status"]["phase"] = json!("Terminating");
        return Mutation::Put(new);
    }

    let mut list = finalizers(old);
    match propagation {
        Propagation::Orphan => {
            list.retain(|f| f != FINALIZER_FOREGROUND);
            if !list.iter().any(|f| f == FINALIZER_ORPHAN) {
                list.push(FINALIZER_ORPHAN.to_string());
            }
        }
        Propagation::Foreground => {
            list.retain(|f| f != FINALIZER_ORPHAN);
            if !list.iter().any(|f| f == FINALIZER_FOREGROUND) {
                list.push(FINALIZER_FOREGROUND.to_string());
            }
        }
        Propagation::Background => {
            if opts.propagation.is_some() {
                list.retain(|f| f != FINALIZER_ORPHAN && f != FINALIZER_FOREGROUND);
            }
        }
    }
    if rt.is(Builtin::CustomResourceDefinition)
        && !deleting
        && !list.iter().any(|f| f == FINALIZER_CRD_CLEANUP)
    {
        list.push(FINALIZER_CRD_CLEANUP.to_string());
    }

    // Graceful pod termination: the kubelet stops the containers and deletes with grace 0.
    if rt.is(Builtin::Pod) {
        let grace = pod_grace(old, opts).max(0);
        let scheduled = old
            .pointer("/spec/nodeName")
            .and_then(Value::as_str)
            .is_some_and(|n| !n.is_empty());
        if grace > 0 && scheduled && !pod_is_terminal(old) {
            let current = old
                .pointer("/metadata/deletionGracePeriodSeconds")
                .and_then(Value::as_i64);
            if deleting && current.is_some_and(|c| c <= grace) {
                return Mutation::Keep;
            }
            let at = Timestamp::now()
                .checked_add(SignedDuration::from_secs(grace))
                .unwrap_or_else(|_| Timestamp::now());
            let meta = meta_mut(&mut new);
            meta.insert("deletionTimestamp".into(), json!(format_time(at)));
            meta.insert("deletionGracePeriodSeconds".into(), json!(grace));
            set_finalizers(&mut new, &list);
            return Mutation::Put(new);
        }
    }

    if list.is_empty() {
        return Mutation::Delete(new);
    }
    let changed = list != finalizers(old);
    set_finalizers(&mut new, &list);
    if !deleting {
        let meta = meta_mut(&mut new);
        meta.insert("deletionTimestamp".into(), json!(now_time()));
        meta.insert("deletionGracePeriodSeconds".into(), json!(0));
        if rt.has_generation {
            let g = generation(old) + 1;
            meta_mut(&mut new).insert("generation".into(), json!(g));
        }
        return Mutation::Put(new);
    }
    if changed {
        Mutation::Put(new)
    } else {
        Mutation::Keep
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::Registry;

    fn rt(group: &str, plural: &str) -> Arc<ResourceType> {
        Registry::new(&[]).lookup(group, "v1", plural).unwrap()
    }

    #[test]
    fn an_object_without_finalizers_is_removed_at_once() {
        let m = decide_delete(
            &rt("", "configmaps"),
            &json!({"metadata": {"name": "c"}}),
            Propagation::Background,
            &DeleteOptions::default(),
        );
        assert!(matches!(m, Mutation::Delete(_)));
    }

    #[test]
    fn finalizers_hold_an_object_with_a_deletion_timestamp() {
        let m = decide_delete(
            &rt("", "configmaps"),
            &json!({"metadata": {"name": "c", "finalizers": ["x/y"]}}),
            Propagation::Background,
            &DeleteOptions::default(),
        );
        let Mutation::Put(v) = m else {
            panic!("expected a put")
        };
        assert!(v["metadata"]["deletionTimestamp"].is_string());
        assert_eq!(v["metadata"]["deletionGracePeriodSeconds"], 0);
    }

    #[test]
    fn jobs_orphan_by_default_and_foreground_adds_its_finalizer() {
        let jobs = rt("batch", "jobs");
        let opts = DeleteOptions::default();
        let p = opts.propagation_for(&jobs);
        assert_eq!(p, Propagation::Orphan);
        let Mutation::Put(v) = decide_delete(
            &jobs,
            &json!({"metadata": {"name": "j", "generation": 1}}),
            p,
            &opts,
        ) else {
            panic!("expected a put")
        };
        assert_eq!(v["metadata"]["finalizers"], json!(["orphan"]));
        assert_eq!(v["metadata"]["generation"], 2);
        let Mutation::Put(v) = decide_delete(
            &jobs,
            &json!({"metadata": {"name": "j"}}),
            Propagation::Foreground,
            &opts,
        ) else {
            panic!("expected a put")
        };
        assert_eq!(v["metadata"]["finalizers"], json!(["foregroundDeletion"]));
    }

    #[test]
    fn running_pods_terminate_gracefully_and_force_removes_them() {
        let pods = rt("", "pods");
        let pod = json!({"metadata": {"name": "p"}, "spec": {"nodeName": "n"}, "status": {"phase": "Running"}});
        let Mutation::Put(v) = decide_delete(
            &pods,
            &pod,
            Propagation::Background,
            &DeleteOptions::default(),
        ) else {
            panic!("expected a put")
        };
        assert_eq!(v["metadata"]["deletionGracePeriodSeconds"], 30);
        let force = DeleteOptions {
            grace_period: Some(0),
            ..Default::default()
        };
        assert!(matches!(
            decide_delete(&pods, &v, Propagation::Background, &force),
            Mutation::Delete(_)
        ));
        let done = json!({"metadata": {"name": "p"}, "spec": {"nodeName": "n"}, "status": {"phase": "Succeeded"}});
        assert!(matches!(
            decide_delete(
                &pods,
                &done,
                Propagation::Background,
                &DeleteOptions::default()
            ),
            Mutation::Delete(_)
        ));
    }

    #[test]
    fn namespaces_start_terminating() {
        let ns = rt("", "namespaces");
        let Mutation::Put(v) = decide_delete(
            &ns,
            &json!({"metadata": {"name": "x"}, "spec": {"finalizers": ["kubernetes"]}}),
            Propagation::Background,
            &DeleteOptions::default(),
        ) else {
            panic!("expected a put")
        };
        assert_eq!(v["status"]["phase"], "Terminating");
    }
}
