//! The object store: every object in memory, persisted to SQLite, with a global
//! resourceVersion counter, a bounded change history and live fan-out to watchers.
//!
//! Guarantees:
//! - Every write (create, update, delete) bumps one global counter by exactly one and is
//!   committed to disk before it is visible to readers or watchers.
//! - Events reach subscribers in resourceVersion order. `watch_from` subscribes to live events
//!   and copies the history under the same lock, so no event falls between the two.
//! - History keeps the newest `history_limit` events (also across restarts, from the log
//!   table); a watch from an older resourceVersion is answered with `Expired`.

mod db;
mod object;

pub use db::DbError;
pub use object::{EventType, ObjectIndex, OwnerRef, StoredObject, WatchEvent};

use bytes::Bytes;
use db::{Change, Db};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::ops::Bound;
use std::path::Path;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;
use tokio::sync::{broadcast, watch};

/// Computes an object's index (labels, field-selector values, owners) for its storage resource.
pub type Indexer = Arc<dyn Fn(&str, &Value) -> ObjectIndex + Send + Sync>;

/// What a write closure decides after seeing the current object.
#[derive(Debug)]
pub enum Mutation {
    /// Store this object (create or replace). The store sets `metadata.resourceVersion`.
    Put(Value),
    /// Remove the object; the value is its last state, sent with the deletion's resourceVersion.
    Delete(Value),
    /// Change nothing (a no-op write keeps its resourceVersion and emits no event).
    Keep,
}

/// What a write did.
#[derive(Debug)]
pub enum WriteResult {
    Put {
        stored: Arc<StoredObject>,
        value: Value,
        previous: Option<Arc<StoredObject>>,
    },
    Deleted {
        stored: Arc<StoredObject>,
        value: Value,
    },
    Unchanged(Option<Arc<StoredObject>>),
}

/// Errors of the store itself (the closures' own errors pass through unchanged).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("persisting a change")]
    Db(#[from] DbError),
    #[error("serializing an object")]
    Serialize(#[source] serde_json::Error),
}

/// A page of a list.
#[derive(Debug)]
pub struct ListPage {
    /// The store's resourceVersion when the page was read.
    pub rv: u64,
    pub items: Vec<Arc<StoredObject>>,
    /// The key of the last returned item when more items remain.
    pub next: Option<(String, String)>,
    /// How many matching items remain after this page.
    pub remaining: usize,
}

/// A live subscription with the history that precedes it.
pub struct Subscription {
    pub backlog: Vec<Arc<WatchEvent>>,
    pub receiver: broadcast::Receiver<Arc<WatchEvent>>,
    /// The resourceVersion the subscription starts after (backlog included).
    pub start_rv: u64,
}

/// A snapshot of current objects plus a subscription for what follows it.
pub struct SnapshotSubscription {
    pub rv: u64,
    pub items: Vec<Arc<StoredObject>>,
    pub receiver: broadcast::Receiver<Arc<WatchEvent>>,
}

type Objects = BTreeMap<(String, String), Arc<StoredObject>>;

struct Inner {
    /// A Mutex only so that `Inner` is `Sync`; it is always taken under the write lock.
    db: std::sync::Mutex<Db>,
    rv: u64,
    objects: HashMap<Arc<str>, Objects>,
    history: VecDeque<Arc<WatchEvent>>,
    /// Every event at or below this resourceVersion may be missing from `history`.
    compacted: u64,
    channels: HashMap<Arc<str>, broadcast::Sender<Arc<WatchEvent>>>,
    writes_since_prune: usize,
}

/// The store. Cheap to share behind an `Arc`.
/// Called for every committed change while the store is still locked, before any watcher
/// sees it (the REST layer keeps its registry of served types in step this way).
pub type CommitHook = Box<dyn Fn(&WatchEvent) + Send + Sync>;

pub struct Store {
    inner: RwLock<Inner>,
    indexer: Indexer,
    hook: RwLock<Option<CommitHook>>,
    history_limit: RwLock<usize>,
    all: broadcast::Sender<Arc<WatchEvent>>,
    rv_tx: watch::Sender<u64>,
}

const CHANNEL_CAPACITY: usize = 8192;
const ALL_CHANNEL_CAPACITY: usize = 65536;

impl Store {
    /// Opens (or creates) the store at `path` and loads every object and the recent history.
    pub fn open(path: &Path, indexer: Indexer, history_limit: usize) -> Result<Store, StoreError> {
        let db = Db::open(path)?;
        let mut rv = db.counter()?;
        let mut objects: HashMap<Arc<str>, Objects> = HashMap::new();
        let mut names: HashMap<String, Arc<str>> = HashMap::new();
        let mut intern = |r: &str| -> Arc<str> {
            names
                .entry(r.to_string())
                .or_insert_with(|| Arc::from(r))
                .clone()
        };
        let mut latest: HashMap<(Arc<str>, String, String), Arc<StoredObject>> = HashMap::new();
        for row in db.load_objects()? {
            rv = rv.max(row.rv);
            let resource = intern(&row.resource);
            let value: Value = serde_json::from_slice(&row.json).unwrap_or(Value::Null);
            let stored = Arc::new(StoredObject {
                resource: resource.clone(),
                namespace: row.namespace.clone(),
                name: row.name.clone(),
                rv: row.rv,
                index: indexer(&resource, &value),
                json: Bytes::from(row.json),
            });
            latest.insert(
                (resource.clone(), row.namespace.clone(), row.name.clone()),
                stored.clone(),
            );
            objects
                .entry(resource)
                .or_default()
                .insert((row.namespace, row.name), stored);
        }
        let mut history = VecDeque::new();
        let log = db.load_log(history_limit)?;
        let compacted = match log.first() {
            Some(first) => first.rv.saturating_sub(1),
            None => rv,
        };
        for row in log {
            rv = rv.max(row.rv);
            let resource = intern(&row.resource);
            let make = |json: Vec<u8>, rv: u64| {
                let value: Value = serde_json::from_slice(&json).unwrap_or(Value::Null);
                Arc::new(StoredObject {
                    resource: resource.clone(),
                    namespace: row.namespace.clone(),
                    name: row.name.clone(),
                    rv,
                    index: indexer(&resource, &value),
                    json: Bytes::from(json),
                })
            };
            let key = (resource.clone(), row.namespace.clone(), row.name.clone());
            // Share the bytes of the current version with the objects map.
            let object = match latest.get(&key) {
                Some(cur) if cur.rv == row.rv && row.kind != EventType::Deleted => cur.clone(),
                _ => make(row.json, row.rv),
            };
            let prev = row.prev.map(|p| {
                let prev_rv = serde_json::from_slice::<Value>(&p)
                    .ok()
                    .and_then(|v| {
                        v.pointer("/metadata/resourceVersion")
                            .and_then(Value::as_str)
                            .and_then(|s| s.parse().ok())
                    })
                    .unwrap_or(0);
                make(p, prev_rv)
            });
            history.push_back(Arc::new(WatchEvent {
                rv: row.rv,
                kind: row.kind,
                object,
                prev,
            }));
        }
        let (all, _) = broadcast::channel(ALL_CHANNEL_CAPACITY);
        let (rv_tx, _) = watch::channel(rv);
        Ok(Store {
            inner: RwLock::new(Inner {
                db: std::sync::Mutex::new(db),
                rv,
                objects,
                history,
                compacted,
                channels: HashMap::new(),
                writes_since_prune: 0,
            }),
            indexer,
            hook: RwLock::new(None),
            history_limit: RwLock::new(history_limit),
            all,
            rv_tx,
        })
    }

    fn read(&self) -> RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write_lock(&self) -> RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|p| p.into_inner())
    }

    /// The newest committed resourceVersion.
    pub fn current_rv(&self) -> u64 {
        self.read().rv
    }

    /// The oldest resourceVersion a watch can still start from.
    pub fn compacted_rv(&self) -> u64 {
        self.read().compacted
    }

    pub fn get(&self, resource: &str, namespace: &str, name: &str) -> Option<Arc<StoredObject>> {
        self.read()
            .objects
            .get(resource)
            .and_then(|m| m.get(&(namespace.to_string(), name.to_string())))
            .cloned()
    }

    /// Storage resources that currently hold at least one object.
    pub fn resources(&self) -> Vec<Arc<str>> {
        self.read()
            .objects
            .iter()
            .filter(|(_, m)| !m.is_empty())
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Lists objects of `resource` (in `namespace` if given) ordered by (namespace, name),
    /// starting after `after`, keeping those `filter` accepts, up to `limit` (0 = all).
    pub fn list(
        &self,
        resource: &str,
        namespace: Option<&str>,
        after: Option<(&str, &str)>,
        limit: usize,
        filter: impl Fn(&StoredObject) -> bool,
    ) -> ListPage {
        let inner = self.read();
        let rv = inner.rv;
        let Some(map) = inner.objects.get(resource) else {
            return ListPage {
                rv,
                items: Vec::new(),
                next: None,
                remaining: 0,
            };
        };
        let start = match (after, namespace) {
            (Some((ns, name)), _) => Bound::Excluded((ns.to_string(), name.to_string())),
            (None, Some(ns)) => Bound::Included((ns.to_string(), String::new())),
            (None, None) => Bound::Unbounded,
        };
        let mut items = Vec::new();
        let mut next = None;
        let mut remaining = 0usize;
        for ((ns, name), obj) in map.range((start, Bound::Unbounded)) {
            if let Some(want) = namespace
                && ns != want
            {
                break;
            }
            if !filter(obj) {
                continue;
            }
            if limit > 0 && items.len() >= limit {
                remaining += 1;
                continue;
            }
            items.push(obj.clone());
            if limit > 0 && items.len() == limit {
                next = Some((ns.clone(), name.clone()));
            }
        }
        if remaining == 0 {
            next = None;
        }
        ListPage {
            rv,
            items,
            next,
            remaining,
        }
    }

    /// Runs `decide` on the current object and commits what it returns, atomically with
    /// respect to every other write.
    pub fn write<E>(
        &self,
        resource: &str,
        namespace: &str,
        name: &str,
        decide: impl FnOnce(Option<&Arc<StoredObject>>) -> Result<Mutation, E>,
    ) -> Result<WriteResult, E>
    where
        E: From<StoreError>,
    {
        let mut inner = self.write_lock();
        let key = (namespace.to_string(), name.to_string());
        let current = inner
            .objects
            .get(resource)
            .and_then(|m| m.get(&key))
            .cloned();
        let mutation = decide(current.as_ref())?;
        let (mut value, kind) = match mutation {
            Mutation::Keep => return Ok(WriteResult::Unchanged(current)),
            Mutation::Put(v) => (
                v,
                if current.is_some() {
                    EventType::Modified
                } else {
                    EventType::Added
                },
            ),
            Mutation::Delete(v) => {
                if current.is_none() {
                    return Ok(WriteResult::Unchanged(None));
                }
                (v, EventType::Deleted)
            }
        };
        let rv = inner.rv + 1;
        if let Some(meta) = value.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.insert("resourceVersion".to_string(), Value::String(rv.to_string()));
        }
        let json = Bytes::from(serde_json::to_vec(&value).map_err(StoreError::Serialize)?);
        let resource_arc: Arc<str> = inner
            .objects
            .get_key_value(resource)
            .map(|(k, _)| k.clone())
            .unwrap_or_else(|| Arc::from(resource));
        let stored = Arc::new(StoredObject {
            resource: resource_arc.clone(),
            namespace: namespace.to_string(),
            name: name.to_string(),
            rv,
            index: (self.indexer)(resource, &value),
            json,
        });
        inner
            .db
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .commit(&Change {
                rv,
                kind,
                resource,
                namespace,
                name,
                json: &stored.json,
                prev: current.as_ref().map(|c| &c.json[..]),
            })
            .map_err(StoreError::from)?;
        inner.rv = rv;
        let map = inner.objects.entry(resource_arc.clone()).or_default();
        if kind == EventType::Deleted {
            map.remove(&key);
        } else {
            map.insert(key, stored.clone());
        }
        let event = Arc::new(WatchEvent {
            rv,
            kind,
            object: stored.clone(),
            prev: current.clone(),
        });
        self.record(&mut inner, event, &resource_arc);
        drop(inner);
        self.rv_tx.send_replace(rv);
        Ok(match kind {
            EventType::Deleted => WriteResult::Deleted { stored, value },
            _ => WriteResult::Put {
                stored,
                value,
                previous: current,
            },
        })
    }

    /// Runs `decide` without committing, for `dryRun=All`.
    pub fn dry_run<E>(
        &self,
        resource: &str,
        namespace: &str,
        name: &str,
        decide: impl FnOnce(Option<&Arc<StoredObject>>) -> Result<Mutation, E>,
    ) -> Result<Mutation, E> {
        let current = self.get(resource, namespace, name);
        decide(current.as_ref())
    }

    /// Installs the commit hook (replacing any previous one).
    pub fn set_commit_hook(&self, hook: CommitHook) {
        *self.hook.write().unwrap_or_else(|p| p.into_inner()) = Some(hook);
    }

    fn record(&self, inner: &mut Inner, event: Arc<WatchEvent>, resource: &Arc<str>) {
        if let Some(hook) = self.hook.read().unwrap_or_else(|p| p.into_inner()).as_ref() {
            hook(&event);
        }
        inner.history.push_back(event.clone());
        let limit = *self.history_limit.read().unwrap_or_else(|p| p.into_inner());
        while inner.history.len() > limit {
            if let Some(old) = inner.history.pop_front() {
                inner.compacted = inner.compacted.max(old.rv);
            }
        }
        inner.writes_since_prune += 1;
        if inner.writes_since_prune >= 1024 {
            inner.writes_since_prune = 0;
            let compacted = inner.compacted;
            let db = inner.db.get_mut().unwrap_or_else(|p| p.into_inner());
            if let Err(e) = db.prune_log(compacted) {
                tracing::warn!(error = %e, "pruning the change log failed");
            }
        }
        if let Some(tx) = inner.channels.get(resource)
            && tx.send(event.clone()).is_err()
        {
            inner.channels.remove(resource);
        }
        let _ = self.all.send(event);
    }

    fn channel(inner: &mut Inner, resource: &str) -> broadcast::Receiver<Arc<WatchEvent>> {
        if let Some(tx) = inner.channels.get(resource) {
            return tx.subscribe();
        }
        let (tx, rx) = broadcast::channel(CHANNEL_CAPACITY);
        inner.channels.insert(Arc::from(resource), tx);
        rx
    }

    /// Subscribes to changes of `resource` (or of everything when `None`) after `from`.
    /// Fails with the oldest available resourceVersion when history no longer reaches `from`.
    pub fn watch_from(&self, resource: Option<&str>, from: u64) -> Result<Subscription, u64> {
        let mut inner = self.write_lock();
        if from < inner.compacted {
            return Err(inner.compacted + 1);
        }
        let receiver = match resource {
            Some(r) => Self::channel(&mut inner, r),
            None => self.all.subscribe(),
        };
        let start = inner.history.partition_point(|e| e.rv <= from);
        let backlog = inner
            .history
            .range(start..)
            .filter(|e| resource.is_none_or(|r| &*e.object.resource == r))
            .cloned()
            .collect();
        Ok(Subscription {
            backlog,
            receiver,
            start_rv: from,
        })
    }

    /// The current objects of `resource` (optionally one namespace) and a subscription to
    /// everything after them.
    pub fn snapshot(&self, resource: &str, namespace: Option<&str>) -> SnapshotSubscription {
        let mut inner = self.write_lock();
        let receiver = Self::channel(&mut inner, resource);
        let items = inner
            .objects
            .get(resource)
            .map(|m| {
                m.values()
                    .filter(|o| namespace.is_none_or(|ns| o.namespace == ns))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        SnapshotSubscription {
            rv: inner.rv,
            items,
            receiver,
        }
    }

    /// Every object of every resource and a subscription to all changes after them.
    pub fn snapshot_all(&self) -> SnapshotSubscription {
        let inner = self.write_lock();
        let receiver = self.all.subscribe();
        let items = inner
            .objects
            .values()
            .flat_map(|m| m.values().cloned())
            .collect();
        SnapshotSubscription {
            rv: inner.rv,
            items,
            receiver,
        }
    }

    /// Waits until the store has reached `rv`, up to `timeout`.
    pub async fn wait_for_rv(&self, rv: u64, timeout: Duration) -> bool {
        let mut rx = self.rv_tx.subscribe();
        let wait = rx.wait_for(|cur| *cur >= rv);
        matches!(tokio::time::timeout(timeout, wait).await, Ok(Ok(_)))
    }

    /// Drops all but the newest `keep` history events (tests use it to force 410s).
    pub fn compact(&self, keep: usize) {
        let mut inner = self.write_lock();
        while inner.history.len() > keep {
            if let Some(old) = inner.history.pop_front() {
                inner.compacted = inner.compacted.max(old.rv);
            }
        }
        if inner.history.is_empty() {
            inner.compacted = inner.rv;
        }
        let compacted = inner.compacted;
        let db = inner.db.get_mut().unwrap_or_else(|p| p.into_inner());
        if let Err(e) = db.prune_log(compacted) {
            tracing::warn!(error = %e, "pruning the change log failed");
        }
    }

    /// Changes how many events history keeps.
    pub fn set_history_limit(&self, limit: usize) {
        *self
            .history_limit
            .write()
            .unwrap_or_else(|p| p.into_inner()) = limit.max(1);
    }

    /// Checkpoints the WAL into the database file.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.read()
            .db
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .checkpoint()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn indexer() -> Indexer {
        Arc::new(|_, v| ObjectIndex::from_metadata(v))
    }

    fn open(dir: &Path) -> Store {
        Store::open(&dir.join("store.db"), indexer(), 100).unwrap()
    }

    fn put(store: &Store, name: &str, data: &str) -> u64 {
        let r: Result<WriteResult, StoreError> = store.write("configmaps", "default", name, |_| {
            Ok(Mutation::Put(
                json!({"metadata": {"name": name}, "data": {"a": data}}),
            ))
        });
        match r.unwrap() {
            WriteResult::Put { stored, .. } => stored.rv,
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn every_write_bumps_the_counter_by_one_and_sets_the_resource_version() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        assert_eq!(put(&store, "a", "1"), 1);
        assert_eq!(put(&store, "b", "1"), 2);
        let a = store.get("configmaps", "default", "a").unwrap();
        assert_eq!(a.value()["metadata"]["resourceVersion"], "1");
        assert_eq!(store.current_rv(), 2);
    }

    #[test]
    fn objects_and_history_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = open(dir.path());
            put(&store, "a", "1");
            put(&store, "a", "2");
            let _: WriteResult = store
                .write::<StoreError>("configmaps", "default", "a", |cur| {
                    Ok(Mutation::Delete(cur.unwrap().value()))
                })
                .unwrap();
            put(&store, "b", "1");
        }
        let store = open(dir.path());
        assert_eq!(store.current_rv(), 4);
        assert!(store.get("configmaps", "default", "a").is_none());
        let sub = store.watch_from(Some("configmaps"), 1).unwrap();
        let kinds: Vec<_> = sub.backlog.iter().map(|e| (e.rv, e.kind)).collect();
        assert_eq!(
            kinds,
            vec![
                (2, EventType::Modified),
                (3, EventType::Deleted),
                (4, EventType::Added)
            ]
        );
        assert_eq!(
            sub.backlog[1].object.value()["metadata"]["resourceVersion"],
            "3"
        );
    }

    #[test]
    fn watching_from_before_the_history_window_is_expired() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        for i in 0..10 {
            put(&store, &format!("o{i}"), "x");
        }
        store.compact(3);
        assert_eq!(store.watch_from(Some("configmaps"), 2).err(), Some(8));
        assert_eq!(
            store
                .watch_from(Some("configmaps"), 7)
                .unwrap()
                .backlog
                .len(),
            3
        );
    }

    #[test]
    fn a_keep_mutation_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        put(&store, "a", "1");
        let r = store
            .write::<StoreError>("configmaps", "default", "a", |_| Ok(Mutation::Keep))
            .unwrap();
        assert!(matches!(r, WriteResult::Unchanged(Some(_))));
        assert_eq!(store.current_rv(), 1);
    }

    #[test]
    fn lists_page_in_key_order_within_a_namespace() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        for n in ["c", "a", "b"] {
            put(&store, n, "x");
        }
        let page = store.list("configmaps", Some("default"), None, 2, |_| true);
        let names: Vec<_> = page.items.iter().map(|o| o.name.clone()).collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(page.remaining, 1);
        let next = page.next.unwrap();
        let rest = store.list(
            "configmaps",
            Some("default"),
            Some((&next.0, &next.1)),
            2,
            |_| true,
        );
        assert_eq!(rest.items.len(), 1);
        assert!(rest.next.is_none());
        assert!(
            store
                .list("configmaps", Some("other"), None, 0, |_| true)
                .items
                .is_empty()
        );
    }
}
