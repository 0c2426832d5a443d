//! The CRD controller: accepts names (or reports a conflict), sets `Established`, records
//! stored versions, and on deletion removes every custom resource before letting the CRD go.

use super::runner::Reconciler;
use crate::error::ApiError;
use crate::resource::Builtin;
use crate::rest::meta::{finalizers, is_deleting, meta_str};
use crate::rest::{Api, DeleteOptions, Target, WriteOptions};
use crate::store::WatchEvent;
use crate::time::now_time;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

const STORAGE: &str = "apiextensions.k8s.io/customresourcedefinitions";
const CLEANUP: &str = "customresourcecleanup.apiextensions.k8s.io";

pub struct CrdController {
    pub api: Arc<Api>,
}

fn condition(kind: &str, status: bool, reason: &str, message: &str, previous: &[Value]) -> Value {
    let status = if status { "True" } else { "False" };
    let since = previous
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(kind))
        .filter(|c| c.get("status").and_then(Value::as_str) == Some(status))
        .and_then(|c| c.get("lastTransitionTime").cloned())
        .unwrap_or_else(|| json!(now_time()));
    json!({"type": kind, "status": status, "lastTransitionTime": since, "reason": reason, "message": message})
}

/// The status a CRD should have, given the other CRDs (a pure decision).
pub fn desired_status(crd: &Value, others: &[Value]) -> Value {
    let group = crd
        .pointer("/spec/group")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let names = crd
        .pointer("/spec/names")
        .cloned()
        .unwrap_or_else(|| json!({}));
    let plural = names
        .get("plural")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let kind = names
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let me = meta_str(crd, "name");
    let conflict = others.iter().find(|o| {
        meta_str(o, "name") != me
            && o.pointer("/spec/group").and_then(Value::as_str) == Some(group)
            && (o
                .pointer("/status/acceptedNames/plural")
                .and_then(Value::as_str)
                == Some(plural)
                || o.pointer("/status/acceptedNames/kind")
                    .and_then(Value::as_str)
                    == Some(kind))
    });
    let previous: Vec<Value> = crd
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut stored: Vec<Value> = crd
        .pointer("/status/storedVersions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if let Some(storage) = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .and_then(|vs| {
            vs.iter()
                .find(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
        })
        .and_then(|v| v.get("name").cloned())
        && !stored.contains(&storage)
    {
        stored.push(storage);
    }
    let terminating = is_deleting(crd);
    let mut conditions = Vec::new();
    match conflict {
        Some(other) => {
            let message = format!(
                "{plural:?} is already in use by {:?}",
                meta_str(other, "name")
            );
            conditions.push(condition(
                "NamesAccepted",
                false,
                "NameConflict",
                &message,
                &previous,
            ));
            conditions.push(condition(
                "Established",
                false,
                "NotAccepted",
                "not all names are accepted",
                &previous,
            ));
        }
        None => {
            conditions.push(condition(
                "NamesAccepted",
                true,
                "NoConflicts",
                "no conflicts found",
                &previous,
            ));
            conditions.push(condition(
                "Established",
                true,
                "InitialNamesAccepted",
                "the initial names have been accepted",
                &previous,
            ));
        }
    }
    if terminating {
        conditions.push(condition(
            "Terminating",
            true,
            "InstanceDeletionInProgress",
            "CustomResource deletion is in progress",
            &previous,
        ));
    }
    let accepted = if conflict.is_some() {
        crd.pointer("/status/acceptedNames")
            .cloned()
            .unwrap_or_else(|| json!({"plural": "", "kind": ""}))
    } else {
        names
    };
    json!({"conditions": conditions, "acceptedNames": accepted, "storedVersions": stored})
}

impl CrdController {
    fn crds(&self) -> Vec<Value> {
        self.api
            .store()
            .list(STORAGE, None, None, 0, |_| true)
            .items
            .iter()
            .map(|o| o.value())
            .collect()
    }

    /// Deletes every instance of a terminating CRD; true when none are left.
    fn cleanup(&self, crd: &Value) -> Result<bool, ApiError> {
        let group = crd
            .pointer("/spec/group")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let plural = crd
            .pointer("/spec/names/plural")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let storage = format!("{group}/{plural}");
        let items = self
            .api
            .store()
            .list(&storage, None, None, 0, |_| true)
            .items;
        if items.is_empty() {
            return Ok(true);
        }
        let Some(rt) = self.api.registry().for_storage(&storage) else {
            return Ok(false);
        };
        for item in items {
            if item.index.deleting {
                continue;
            }
            let ns = (!item.namespace.is_empty()).then_some(item.namespace.as_str());
            match self
                .api
                .delete(&rt, ns, &item.name, &DeleteOptions::default())
            {
                Ok(_) => {}
                Err(e) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        Ok(false)
    }
}

impl Reconciler for CrdController {
    type Key = String;

    fn name(&self) -> &'static str {
        "customresourcedefinitions"
    }

    fn keys_for(&self, event: &WatchEvent) -> Vec<String> {
        let r = &*event.object.resource;
        if r == STORAGE {
            // A change to one CRD can resolve another's name conflict.
            return self.all_keys();
        }
        // An instance of a terminating CRD went away: re-check that CRD.
        if let Some(rt) = self.api.registry().for_storage(r)
            && let Some(c) = &rt.custom
            && c.terminating
        {
            return vec![c.crd_name.clone()];
        }
        Vec::new()
    }

    fn all_keys(&self) -> Vec<String> {
        self.api
            .store()
            .list(STORAGE, None, None, 0, |_| true)
            .items
            .iter()
            .map(|o| o.name.clone())
            .collect()
    }

    async fn reconcile(&self, name: &String) -> Result<Option<Duration>, ApiError> {
        let rt = self.api.builtin(Builtin::CustomResourceDefinition);
        let Some(stored) = self.api.store().get(STORAGE, "", name) else {
            return Ok(None);
        };
        let crd = stored.value();
        let desired = desired_status(&crd, &self.crds());
        if crd.get("status") != Some(&desired) {
            let mut updated = crd.clone();
            updated["status"] = desired;
            self.api.update(
                &rt,
                None,
                name,
                updated,
                Target::Status,
                &WriteOptions::default(),
            )?;
        }
        if is_deleting(&crd) && finalizers(&crd).iter().any(|f| f == CLEANUP) {
            if !self.cleanup(&crd)? {
                return Ok(Some(Duration::from_millis(500)));
            }
            let Some(stored) = self.api.store().get(STORAGE, "", name) else {
                return Ok(None);
            };
            let mut latest = stored.value();
            let rest: Vec<String> = finalizers(&latest)
                .into_iter()
                .filter(|f| f != CLEANUP)
                .collect();
            crate::rest::meta::set_finalizers(&mut latest, &rest);
            self.api.update(
                &rt,
                None,
                name,
                latest,
                Target::Main,
                &WriteOptions::default(),
            )?;
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crd(name: &str, plural: &str, kind: &str) -> Value {
        json!({"metadata": {"name": name}, "spec": {"group": "example.com",
            "names": {"plural": plural, "kind": kind},
            "versions": [{"name": "v1", "storage": true, "served": true}]}})
    }

    #[test]
    fn a_new_crd_is_established_with_its_storage_version_recorded() {
        let s = desired_status(&crd("widgets.example.com", "widgets", "Widget"), &[]);
        assert_eq!(s["conditions"][1]["type"], "Established");
        assert_eq!(s["conditions"][1]["status"], "True");
        assert_eq!(s["storedVersions"], json!(["v1"]));
        assert_eq!(s["acceptedNames"]["kind"], "Widget");
    }

    #[test]
    fn a_kind_already_accepted_for_another_crd_is_a_name_conflict() {
        let mut other = crd("gadgets.example.com", "gadgets", "Widget");
        other["status"] = json!({"acceptedNames": {"plural": "gadgets", "kind": "Widget"}});
        let s = desired_status(&crd("widgets.example.com", "widgets", "Widget"), &[other]);
        assert_eq!(s["conditions"][0]["status"], "False");
        assert_eq!(s["conditions"][1]["status"], "False");
    }
}
