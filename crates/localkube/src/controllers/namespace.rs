//! The namespace controller: gives every active namespace its `default` ServiceAccount, and
//! empties a terminating namespace (honouring finalizers) before finalizing it.

use super::runner::Reconciler;
use crate::error::ApiError;
use crate::resource::Builtin;
use crate::rest::meta::is_deleting;
use crate::rest::{Api, DeleteOptions, Propagation, Target, WriteOptions};
use crate::store::WatchEvent;
use crate::time::now_time;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

const NAMESPACES: &str = "core/namespaces";
const SERVICE_ACCOUNTS: &str = "core/serviceaccounts";

pub struct NamespaceController {
    pub api: Arc<Api>,
}

impl NamespaceController {
    fn ensure_default_service_account(&self, ns: &str) -> Result<(), ApiError> {
        if self
            .api
            .store()
            .get(SERVICE_ACCOUNTS, ns, "default")
            .is_some()
        {
            return Ok(());
        }
        let rt = self.api.builtin(Builtin::ServiceAccount);
        match self.api.create(
            &rt,
            Some(ns),
            json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default"}}),
            &WriteOptions::default(),
        ) {
            Ok(_) => Ok(()),
            Err(e) if e.code == 409 || e.code == 403 || e.code == 404 => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Deletes what is left in `ns`; returns (objects left, objects with finalizers).
    fn delete_content(&self, ns: &str) -> Result<(usize, Vec<String>), ApiError> {
        let reg = self.api.registry();
        let mut left = 0;
        let mut finalizers: Vec<String> = Vec::new();
        for rt in reg.storages() {
            if !rt.namespaced {
                continue;
            }
            let items = self
                .api
                .store()
                .list(&rt.storage, Some(ns), None, 0, |_| true)
                .items;
            for item in items {
                left += 1;
                for f in &item.index.finalizers {
                    if !finalizers.contains(f) {
                        finalizers.push(f.clone());
                    }
                }
                if item.index.deleting {
                    continue;
                }
                let opts = DeleteOptions {
                    propagation: Some(Propagation::Background),
                    ..Default::default()
                };
                match self.api.delete(&rt, Some(ns), &item.name, &opts) {
                    Ok(_) => {}
                    Err(e) if e.code == 404 => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok((left, finalizers))
    }

    fn set_conditions(
        &self,
        ns: &Value,
        left: usize,
        finalizers: &[String],
    ) -> Result<(), ApiError> {
        let rt = self.api.builtin(Builtin::Namespace);
        let now = now_time();
        let cond = |t: &str, status: bool, reason: &str, message: String| json!({"type": t, "status": if status {"True"} else {"False"}, "lastTransitionTime": now, "reason": reason, "message": message});
        let conditions = vec![
            cond(
                "NamespaceDeletionDiscoveryFailure",
                false,
                "ResourcesDiscovered",
                "All resources successfully discovered".into(),
            ),
            cond(
                "NamespaceDeletionGroupVersionParsingFailure",
                false,
                "ParsedGroupVersions",
                "All legacy kube types successfully parsed".into(),
            ),
            cond(
                "NamespaceDeletionContentFailure",
                false,
                "ContentDeleted",
                "All content successfully deleted, may be waiting on finalization".into(),
            ),
            if left > 0 {
                cond(
                    "NamespaceContentRemaining",
                    true,
                    "SomeResourcesRemain",
                    format!("Some resources are remaining: {left} objects"),
                )
            } else {
                cond(
                    "NamespaceContentRemaining",
                    false,
                    "ContentRemoved",
                    "All content successfully removed".into(),
                )
            },
            if finalizers.is_empty() {
                cond(
                    "NamespaceFinalizersRemaining",
                    false,
                    "ContentHasNoFinalizers",
                    "All content-preserving finalizers finished".into(),
                )
            } else {
                cond(
                    "NamespaceFinalizersRemaining",
                    true,
                    "SomeFinalizersRemain",
                    format!(
                        "Some content in the namespace has finalizers remaining: {}",
                        finalizers.join(", ")
                    ),
                )
            },
        ];
        let old: Vec<(String, String)> = ns
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .map(|cs| {
                cs.iter()
                    .map(|c| {
                        (
                            c["type"].as_str().unwrap_or_default().to_string(),
                            c["status"].as_str().unwrap_or_default().to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        let new: Vec<(String, String)> = conditions
            .iter()
            .map(|c| {
                (
                    c["type"].as_str().unwrap_or_default().to_string(),
                    c["status"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect();
        if old == new {
            return Ok(());
        }
        let mut updated = ns.clone();
        updated["status"]["conditions"] = json!(conditions);
        let name = ns
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        self.api.update(
            &rt,
            None,
            name,
            updated,
            Target::Status,
            &WriteOptions::default(),
        )?;
        Ok(())
    }
}

impl Reconciler for NamespaceController {
    type Key = String;

    fn name(&self) -> &'static str {
        "namespaces"
    }

    fn keys_for(&self, event: &WatchEvent) -> Vec<String> {
        let o = &event.object;
        match &*o.resource {
            NAMESPACES => vec![o.name.clone()],
            SERVICE_ACCOUNTS if o.name == "default" => vec![o.namespace.clone()],
            _ if !o.namespace.is_empty() && event.kind == crate::store::EventType::Deleted => {
                // Content of a terminating namespace went away.
                match self.api.store().get(NAMESPACES, "", &o.namespace) {
                    Some(ns) if ns.index.deleting => vec![o.namespace.clone()],
                    _ => Vec::new(),
                }
            }
            _ => Vec::new(),
        }
    }

    fn all_keys(&self) -> Vec<String> {
        self.api
            .store()
            .list(NAMESPACES, None, None, 0, |_| true)
            .items
            .iter()
            .map(|o| o.name.clone())
            .collect()
    }

    async fn reconcile(&self, name: &String) -> Result<Option<Duration>, ApiError> {
        let Some(stored) = self.api.store().get(NAMESPACES, "", name) else {
            return Ok(None);
        };
        let ns = stored.value();
        if !is_deleting(&ns) {
            self.ensure_default_service_account(name)?;
            return Ok(None);
        }
        let (left, finalizers) = self.delete_content(name)?;
        self.set_conditions(&ns, left, &finalizers)?;
        if left > 0 {
            return Ok(Some(Duration::from_millis(500)));
        }
        let Some(stored) = self.api.store().get(NAMESPACES, "", name) else {
            return Ok(None);
        };
        let mut latest = stored.value();
        let remaining: Vec<Value> = latest
            .pointer("/spec/finalizers")
            .and_then(Value::as_array)
            .map(|f| {
                f.iter()
                    .filter(|x| x.as_str() != Some("kubernetes"))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        latest["spec"]["finalizers"] = json!(remaining);
        let rt = self.api.builtin(Builtin::Namespace);
        self.api.update(
            &rt,
            None,
            name,
            latest,
            Target::Finalize,
            &WriteOptions::default(),
        )?;
        Ok(None)
    }
}
