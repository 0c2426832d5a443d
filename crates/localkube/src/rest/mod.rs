//! Generic REST semantics over the store, shared by the HTTP handlers and the in-process
//! controllers: create, update, patch, delete, get, list and watch with the apiserver's
//! metadata lifecycle, admission, field validation and error messages.
//!
//! Writes follow the apiserver's "guaranteed update": read the current object, compute the
//! new one without holding any lock (admission may read other objects), then commit only if
//! the object is still at the version that was read, retrying otherwise.

mod convert;
mod create;
mod delete;
pub mod events;
pub mod index;
pub mod meta;
mod patch;
mod read;
mod schema;
pub use schema::structural_errors;
mod update;
mod watch;

pub use delete::{
    DeleteOptions, DeleteOutcome, FINALIZER_CRD_CLEANUP, FINALIZER_FOREGROUND, FINALIZER_ORPHAN,
    Propagation,
};
pub use patch::PatchType;
pub use read::{ListOptions, ListResult};
pub use watch::{WatchItem, WatchOptions};

use crate::error::ApiError;
use crate::resource::{Builtin, Registry, ResourceType};
use crate::store::{Mutation, Store, StoreError, StoredObject, WriteResult};
use serde_json::Value;
use std::sync::{Arc, RwLock};
use tokio::sync::watch as watch_channel;

/// How unknown or duplicate fields in a request are treated (`fieldValidation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FieldValidation {
    Ignore,
    #[default]
    Warn,
    Strict,
}

impl FieldValidation {
    pub fn parse(s: &str) -> Result<FieldValidation, ApiError> {
        match s {
            "" | "Warn" => Ok(FieldValidation::Warn),
            "Ignore" => Ok(FieldValidation::Ignore),
            "Strict" => Ok(FieldValidation::Strict),
            other => Err(ApiError::bad_request(format!(
                "fieldValidation: Unsupported value: {other:?}: supported values: \"Ignore\", \"Strict\", \"Warn\""
            ))),
        }
    }
}

/// Options every write takes.
#[derive(Debug, Clone, Default)]
pub struct WriteOptions {
    pub dry_run: bool,
    pub field_validation: FieldValidation,
    pub field_manager: Option<String>,
}

/// Which part of an object a write addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Main,
    Status,
    /// `namespaces/{name}/finalize`: only `spec.finalizers` changes.
    Finalize,
}

/// The result of a successful create, update or patch.
#[derive(Debug, Clone)]
pub struct Written {
    /// The object as the requested version shows it.
    pub object: Value,
    pub warnings: Vec<String>,
    pub created: bool,
}

/// Server-wide settings the REST layer needs.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// The name of the one Node (and its `kubernetes.io/hostname` label).
    pub node_name: String,
}

/// The REST layer. Cheap to share behind an `Arc`.
pub struct Api {
    store: Arc<Store>,
    registry: Arc<RegistryState>,
    pub config: ApiConfig,
}

/// The served types, rebuilt from the CRDs as they are committed.
struct RegistryState {
    crds: std::sync::Mutex<std::collections::BTreeMap<String, Value>>,
    current: RwLock<Arc<Registry>>,
    version: watch_channel::Sender<u64>,
}

impl RegistryState {
    fn rebuild(&self, crds: &std::collections::BTreeMap<String, Value>) {
        let list: Vec<Value> = crds.values().cloned().collect();
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(Registry::new(&list));
        self.version.send_modify(|v| *v += 1);
    }
}

pub(crate) enum Retry {
    Api(ApiError),
    Stale,
}

impl From<StoreError> for Retry {
    fn from(e: StoreError) -> Self {
        Retry::Api(ApiError::internal(format!(
            "storage error: {}",
            error_chain(&e)
        )))
    }
}

impl From<ApiError> for Retry {
    fn from(e: ApiError) -> Self {
        Retry::Api(e)
    }
}

/// An error and its sources joined with `: `.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push_str(": ");
        out.push_str(&s.to_string());
        cur = s.source();
    }
    out
}

const CRD_STORAGE: &str = "apiextensions.k8s.io/customresourcedefinitions";

impl Api {
    pub fn new(store: Arc<Store>, config: ApiConfig) -> Api {
        let (version, _) = watch_channel::channel(0);
        let crds: std::collections::BTreeMap<String, Value> = store
            .list(CRD_STORAGE, None, None, 0, |_| true)
            .items
            .iter()
            .map(|o| (o.name.clone(), o.value()))
            .collect();
        let registry = Arc::new(RegistryState {
            crds: std::sync::Mutex::new(crds),
            current: RwLock::new(Arc::new(Registry::new(&[]))),
            version,
        });
        registry.rebuild(&registry.crds.lock().unwrap_or_else(|p| p.into_inner()));
        let hook_state = registry.clone();
        store.set_commit_hook(Box::new(move |ev| {
            if &*ev.object.resource != CRD_STORAGE {
                return;
            }
            let mut crds = hook_state.crds.lock().unwrap_or_else(|p| p.into_inner());
            if ev.kind == crate::store::EventType::Deleted {
                crds.remove(&ev.object.name);
            } else {
                crds.insert(ev.object.name.clone(), ev.object.value());
            }
            hook_state.rebuild(&crds);
        }));
        Api {
            store,
            registry,
            config,
        }
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// The current registry snapshot.
    pub fn registry(&self) -> Arc<Registry> {
        self.registry
            .current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Notified whenever the set of served types may have changed.
    pub fn registry_changes(&self) -> watch_channel::Receiver<u64> {
        self.registry.version.subscribe()
    }

    /// A built-in type.
    pub fn builtin(&self, b: Builtin) -> Arc<ResourceType> {
        let reg = self.registry();
        match reg.all().iter().find(|t| t.builtin == Some(b)) {
            Some(t) => t.clone(),
            None => unreachable!("every built-in is registered"),
        }
    }

    /// The served type for a group, version and plural, or the apiserver's 404.
    pub fn resource(
        &self,
        group: &str,
        version: &str,
        plural: &str,
    ) -> Result<Arc<ResourceType>, ApiError> {
        self.registry()
            .lookup(group, version, plural)
            .ok_or_else(ApiError::route_not_found)
    }

    /// Runs `compute` against the current object and commits its decision if the object did
    /// not change meanwhile; retries otherwise.
    pub(crate) fn guaranteed_update(
        &self,
        rt: &ResourceType,
        namespace: &str,
        name: &str,
        dry_run: bool,
        mut compute: impl FnMut(Option<&Arc<StoredObject>>) -> Result<Mutation, ApiError>,
    ) -> Result<Outcome, ApiError> {
        for _ in 0..64 {
            let current = self.store.get(&rt.storage, namespace, name);
            let decision = compute(current.as_ref())?;
            if dry_run {
                return Ok(Outcome::from_dry_run(decision, current));
            }
            let seen = current.as_ref().map(|c| c.rv);
            let result = self
                .store
                .write::<Retry>(&rt.storage, namespace, name, |now| {
                    if now.map(|n| n.rv) != seen {
                        return Err(Retry::Stale);
                    }
                    Ok(decision)
                });
            match result {
                Ok(r) => return Ok(Outcome::from_write(r)),
                Err(Retry::Stale) => continue,
                Err(Retry::Api(e)) => return Err(e),
            }
        }
        Err(ApiError::conflict(
            &rt.group,
            &rt.plural,
            name,
            "the object kept changing; please retry",
        ))
    }

    /// The stored (canonical) form of a request body, after checking its kind and apiVersion.
    pub(crate) fn accept_body(&self, rt: &ResourceType, body: Value) -> Result<Value, ApiError> {
        convert::accept(rt, body)
    }

    /// A stored object as `rt`'s version shows it.
    pub fn present(&self, rt: &ResourceType, stored: Value) -> Value {
        convert::present(rt, stored)
    }

    /// A stored object as `rt`'s version shows it, from its bytes.
    pub fn present_stored(&self, rt: &ResourceType, stored: &StoredObject) -> Value {
        convert::present(rt, stored.value())
    }
}

/// What a guaranteed update did, with values as stored (resourceVersion set).
#[derive(Debug)]
pub(crate) enum Outcome {
    Put { value: Value },
    Deleted { value: Value },
    Unchanged(Option<Arc<StoredObject>>),
}

impl Outcome {
    fn from_write(result: WriteResult) -> Outcome {
        match result {
            WriteResult::Put { value, .. } => Outcome::Put { value },
            WriteResult::Deleted { value, .. } => Outcome::Deleted { value },
            WriteResult::Unchanged(c) => Outcome::Unchanged(c),
        }
    }

    fn from_dry_run(decision: Mutation, current: Option<Arc<StoredObject>>) -> Outcome {
        match decision {
            Mutation::Keep => Outcome::Unchanged(current),
            Mutation::Put(value) => Outcome::Put { value },
            Mutation::Delete(value) => Outcome::Deleted { value },
        }
    }
}
