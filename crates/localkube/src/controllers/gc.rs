//! The garbage collector: ownerReference-based deletion.
//!
//! - Background: when an owner is gone, dependents whose owners are all gone are deleted;
//!   references to vanished owners are removed from dependents that still have live owners.
//! - Foreground: an owner with the `foregroundDeletion` finalizer has its dependents deleted,
//!   and loses the finalizer once no dependent with `blockOwnerDeletion` remains.
//! - Orphan: an owner with the `orphan` finalizer has its reference stripped from every
//!   dependent, then loses the finalizer.
//!
//! A reference from a dependent to a namespaced owner in another namespace (or from a
//! cluster-scoped dependent to a namespaced owner) is invalid and ignored, as upstream does.

use super::runner::Reconciler;
use crate::error::ApiError;
use crate::rest::meta::{finalizers, set_finalizers};
use crate::rest::{Api, DeleteOptions, Propagation, Target, WriteOptions};
use crate::rest::{FINALIZER_FOREGROUND, FINALIZER_ORPHAN};
use crate::store::{EventType, StoredObject, WatchEvent};
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A stored object's address.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjRef {
    pub storage: String,
    pub namespace: String,
    pub name: String,
}

impl ObjRef {
    fn of(o: &StoredObject) -> ObjRef {
        ObjRef {
            storage: o.resource.to_string(),
            namespace: o.namespace.clone(),
            name: o.name.clone(),
        }
    }
}

#[derive(Default)]
struct Index {
    /// owner uid -> dependents
    dependents: HashMap<String, HashSet<ObjRef>>,
    /// uid -> object
    alive: HashMap<String, ObjRef>,
}

impl Index {
    fn remove(&mut self, o: &StoredObject) {
        let r = ObjRef::of(o);
        for owner in &o.index.owners {
            if let Some(set) = self.dependents.get_mut(&owner.uid) {
                set.remove(&r);
                if set.is_empty() {
                    self.dependents.remove(&owner.uid);
                }
            }
        }
        if self.alive.get(&o.index.uid) == Some(&r) {
            self.alive.remove(&o.index.uid);
        }
    }

    fn add(&mut self, o: &StoredObject) {
        let r = ObjRef::of(o);
        for owner in &o.index.owners {
            self.dependents
                .entry(owner.uid.clone())
                .or_default()
                .insert(r.clone());
        }
        if !o.index.uid.is_empty() {
            self.alive.insert(o.index.uid.clone(), r);
        }
    }
}

pub struct GarbageCollector {
    pub api: Arc<Api>,
    index: Mutex<Index>,
}

impl GarbageCollector {
    pub fn new(api: Arc<Api>) -> GarbageCollector {
        GarbageCollector {
            api,
            index: Mutex::new(Index::default()),
        }
    }

    fn index(&self) -> std::sync::MutexGuard<'_, Index> {
        self.index.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn get(&self, r: &ObjRef) -> Option<Arc<StoredObject>> {
        self.api.store().get(&r.storage, &r.namespace, &r.name)
    }

    /// The owner with `uid` if it is a valid owner of an object in `namespace`.
    fn owner(&self, uid: &str, namespace: &str) -> Option<ObjRef> {
        let r = self.index().alive.get(uid).cloned()?;
        (r.namespace.is_empty() || r.namespace == namespace).then_some(r)
    }

    /// Whether `uid` names an object that exists but cannot own something in `namespace`.
    fn invalid_owner(&self, uid: &str, namespace: &str) -> bool {
        self.index()
            .alive
            .get(uid)
            .is_some_and(|r| !r.namespace.is_empty() && r.namespace != namespace)
    }

    fn delete(&self, r: &ObjRef, propagation: Propagation) -> Result<(), ApiError> {
        let Some(rt) = self.api.registry().for_storage(&r.storage) else {
            return Ok(());
        };
        let ns = (!r.namespace.is_empty()).then_some(r.namespace.as_str());
        let opts = DeleteOptions {
            propagation: Some(propagation),
            ..Default::default()
        };
        match self.api.delete(&rt, ns, &r.name, &opts) {
            Ok(_) => Ok(()),
            Err(e) if e.code == 404 => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Rewrites an object through `change` (a main-endpoint update with its resourceVersion).
    fn update(&self, r: &ObjRef, change: impl Fn(&mut Value)) -> Result<(), ApiError> {
        let Some(rt) = self.api.registry().for_storage(&r.storage) else {
            return Ok(());
        };
        let Some(cur) = self.get(r) else {
            return Ok(());
        };
        let mut v = self.api.present_stored(&rt, &cur);
        change(&mut v);
        let ns = (!r.namespace.is_empty()).then_some(r.namespace.as_str());
        match self
            .api
            .update(&rt, ns, &r.name, v, Target::Main, &WriteOptions::default())
        {
            Ok(_) => Ok(()),
            Err(e) if e.code == 404 => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn strip_owner(v: &mut Value, uid: &str) {
        if let Some(refs) = v
            .pointer_mut("/metadata/ownerReferences")
            .and_then(Value::as_array_mut)
        {
            refs.retain(|r| r.get("uid").and_then(Value::as_str) != Some(uid));
            if refs.is_empty()
                && let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut)
            {
                m.remove("ownerReferences");
            }
        }
    }

    fn remove_finalizer(&self, r: &ObjRef, finalizer: &str) -> Result<(), ApiError> {
        self.update(r, |v| {
            let rest: Vec<String> = finalizers(v)
                .into_iter()
                .filter(|f| f != finalizer)
                .collect();
            set_finalizers(v, &rest);
        })
    }

    fn dependents_of(&self, uid: &str) -> Vec<ObjRef> {
        let mut deps: Vec<ObjRef> = self
            .index()
            .dependents
            .get(uid)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default();
        deps.sort();
        deps
    }

    fn orphan(&self, owner: &StoredObject, r: &ObjRef) -> Result<Option<Duration>, ApiError> {
        for dep in self.dependents_of(&owner.index.uid) {
            self.update(&dep, |v| Self::strip_owner(v, &owner.index.uid))?;
        }
        self.remove_finalizer(r, FINALIZER_ORPHAN)?;
        Ok(None)
    }

    fn foreground(&self, owner: &StoredObject, r: &ObjRef) -> Result<Option<Duration>, ApiError> {
        let mut blocking = 0;
        for dep in self.dependents_of(&owner.index.uid) {
            let Some(d) = self.get(&dep) else { continue };
            if !d.namespace.is_empty()
                && !owner.namespace.is_empty()
                && d.namespace != owner.namespace
            {
                continue;
            }
            let blocks = d
                .index
                .owners
                .iter()
                .any(|o| o.uid == owner.index.uid && o.block_owner_deletion);
            if blocks {
                blocking += 1;
            }
            if !d.index.deleting {
                self.delete(&dep, Propagation::Foreground)?;
            }
        }
        if blocking > 0 {
            return Ok(Some(Duration::from_millis(500)));
        }
        self.remove_finalizer(r, FINALIZER_FOREGROUND)?;
        Ok(None)
    }

    fn check_owners(&self, obj: &StoredObject, r: &ObjRef) -> Result<Option<Duration>, ApiError> {
        let mut dangling = Vec::new();
        let mut live = 0;
        for o in &obj.index.owners {
            if self.invalid_owner(&o.uid, &obj.namespace) {
                continue;
            }
            match self.owner(&o.uid, &obj.namespace) {
                Some(_) => live += 1,
                None => dangling.push(o.uid.clone()),
            }
        }
        if dangling.is_empty() {
            return Ok(None);
        }
        if live == 0 {
            if !obj.index.deleting {
                self.delete(r, Propagation::Background)?;
            }
            return Ok(None);
        }
        self.update(r, |v| {
            for uid in &dangling {
                Self::strip_owner(v, uid);
            }
        })?;
        Ok(None)
    }
}

impl Reconciler for GarbageCollector {
    type Key = ObjRef;

    fn name(&self) -> &'static str {
        "garbage-collector"
    }

    fn keys_for(&self, ev: &WatchEvent) -> Vec<ObjRef> {
        let mut keys = Vec::new();
        {
            let mut index = self.index();
            if let Some(prev) = &ev.prev {
                index.remove(prev);
            }
            if ev.kind == EventType::Deleted {
                index.remove(&ev.object);
            } else {
                index.add(&ev.object);
            }
        }
        let o = &ev.object;
        let r = ObjRef::of(o);
        if ev.kind == EventType::Deleted {
            keys.extend(self.dependents_of(&o.index.uid));
            // An owner in foreground deletion waits for this dependent.
            for owner in &o.index.owners {
                if let Some(or) = self.owner(&owner.uid, &o.namespace) {
                    keys.push(or);
                }
            }
            return keys;
        }
        let fins = &o.index.finalizers;
        if o.index.deleting
            && fins
                .iter()
                .any(|f| f == FINALIZER_ORPHAN || f == FINALIZER_FOREGROUND)
        {
            keys.push(r.clone());
        }
        if !o.index.owners.is_empty() {
            keys.push(r);
            if o.index.deleting {
                for owner in &o.index.owners {
                    if let Some(or) = self.owner(&owner.uid, &o.namespace) {
                        keys.push(or);
                    }
                }
            }
        }
        keys
    }

    fn all_keys(&self) -> Vec<ObjRef> {
        let snap = self.api.store().snapshot_all();
        let mut index = Index::default();
        let mut keys = Vec::new();
        for o in &snap.items {
            index.add(o);
            let fins = &o.index.finalizers;
            if !o.index.owners.is_empty()
                || (o.index.deleting
                    && fins
                        .iter()
                        .any(|f| f == FINALIZER_ORPHAN || f == FINALIZER_FOREGROUND))
            {
                keys.push(ObjRef::of(o));
            }
        }
        *self.index() = index;
        keys
    }

    async fn reconcile(&self, r: &ObjRef) -> Result<Option<Duration>, ApiError> {
        let Some(obj) = self.get(r) else {
            return Ok(None);
        };
        let fins = &obj.index.finalizers;
        if obj.index.deleting && fins.iter().any(|f| f == FINALIZER_ORPHAN) {
            return self.orphan(&obj, r);
        }
        if obj.index.deleting && fins.iter().any(|f| f == FINALIZER_FOREGROUND) {
            return self.foreground(&obj, r);
        }
        if !obj.index.owners.is_empty() {
            return self.check_owners(&obj, r);
        }
        Ok(None)
    }
}
