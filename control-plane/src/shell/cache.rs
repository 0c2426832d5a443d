//! Reflector caches of the kinds the planners read: one watch per kind for the life of the
//! process, so observation reads memory instead of making API calls (no LIST per reconcile).
//!
//! Secrets are not cached (a cluster's Secrets are many and large, and only a few are ever
//! read): `observe` still GETs the ones a repository or an encryption passphrase names.

use std::fmt::Debug;
use std::hash::Hash;

use cairn_api::actionset::ActionSet;
use cairn_api::backup::Backup;
use cairn_api::backup_policy::BackupPolicy;
use cairn_api::backup_repo::BackupRepo;
use cairn_api::backup_schedule::BackupSchedule;
use cairn_api::restore::Restore;
use cairn_api::storage_provider::StorageProvider;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, PersistentVolumeClaim, Pod};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::Api;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// A cache was not ready to read (its watch never started: the process is shutting down).
#[derive(Debug, thiserror::Error)]
#[error("the cache of {kind} is not running")]
pub struct NotRunning {
    pub kind: &'static str,
}

/// One kind's cache.
#[derive(Clone)]
pub struct Cache<K: Resource<DynamicType = ()> + Clone + 'static> {
    kind: &'static str,
    store: Store<K>,
    /// Whether the initial list has been read: `Store::wait_until_ready` wakes only the last of
    /// several tasks waiting at once (it polls a oneshot receiver, which keeps a single waker),
    /// so exactly one task waits on it and every reconciler waits on this channel instead.
    ready: watch::Receiver<bool>,
}

impl<K> Cache<K>
where
    K: Resource<DynamicType = ()> + Clone + Send + Sync + 'static,
{
    /// A cache over `store`, whose readiness one background task watches.
    fn new(kind: &'static str, store: Store<K>) -> Cache<K> {
        let (ready_tx, ready) = watch::channel(false);
        let watched = store.clone();
        tokio::spawn(async move {
            if watched.wait_until_ready().await.is_ok() {
                ready_tx.send_replace(true);
            }
        });
        Cache { kind, store, ready }
    }
}

impl<K> Cache<K>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    /// Waits until the initial list has been read (once; immediate afterwards). Any number of
    /// tasks may wait at the same time.
    pub async fn ready(&self) -> Result<(), NotRunning> {
        let mut ready = self.ready.clone();
        ready
            .wait_for(|ready| *ready)
            .await
            .map(|_| ())
            .map_err(|_| NotRunning { kind: self.kind })
    }

    /// The cluster-scoped object `name`.
    pub fn get(&self, name: &str) -> Option<K> {
        self.store.get(&ObjectRef::new(name)).map(|o| (*o).clone())
    }

    /// The object `namespace/name`.
    pub fn get_in(&self, namespace: &str, name: &str) -> Option<K> {
        self.store
            .get(&ObjectRef::new(name).within(namespace))
            .map(|o| (*o).clone())
    }

    /// Every object, sorted by namespace and name (the order a LIST returns).
    pub fn all(&self) -> Vec<K> {
        self.filtered(|_| true)
    }

    /// The objects of `namespace`, sorted by name.
    pub fn in_namespace(&self, namespace: &str) -> Vec<K> {
        self.filtered(|o| o.meta().namespace.as_deref().unwrap_or_default() == namespace)
    }

    /// The objects carrying label `key` with `value`.
    pub fn labelled(&self, key: &str, value: &str) -> Vec<K> {
        self.filtered(|o| o.labels().get(key).map(String::as_str) == Some(value))
    }

    fn filtered(&self, keep: impl Fn(&K) -> bool) -> Vec<K> {
        let mut out: Vec<K> = self
            .store
            .state()
            .iter()
            .filter(|o| keep(o))
            .map(|o| (**o).clone())
            .collect();
        out.sort_by(|a, b| {
            (a.meta().namespace.as_deref(), a.meta().name.as_deref())
                .cmp(&(b.meta().namespace.as_deref(), b.meta().name.as_deref()))
        });
        out
    }
}

/// The caches of every kind a planner reads.
#[derive(Clone)]
pub struct Caches {
    pub policies: Cache<BackupPolicy>,
    pub actionsets: Cache<ActionSet>,
    pub repos: Cache<BackupRepo>,
    pub providers: Cache<StorageProvider>,
    pub storage_classes: Cache<StorageClass>,
    pub backups: Cache<Backup>,
    pub restores: Cache<Restore>,
    pub pods: Cache<Pod>,
    pub claims: Cache<PersistentVolumeClaim>,
    pub nodes: Cache<Node>,
    pub schedules: Cache<BackupSchedule>,
}

impl Caches {
    /// Waits until every cache has read its initial list: a planner must never see an empty
    /// cache as "no pods" or "no repositories".
    pub async fn ready(&self) -> Result<(), NotRunning> {
        self.policies.ready().await?;
        self.actionsets.ready().await?;
        self.repos.ready().await?;
        self.providers.ready().await?;
        self.storage_classes.ready().await?;
        self.backups.ready().await?;
        self.restores.ready().await?;
        self.pods.ready().await?;
        self.claims.ready().await?;
        self.nodes.ready().await?;
        self.schedules.ready().await
    }

    /// Starts one watch per kind; they run until `stop`.
    pub fn spawn(client: &kube::Client, stop: &CancellationToken) -> Caches {
        Caches::spawn_observed(client, stop, Observers::default())
    }

    /// [`Caches::spawn`], with `observers` seeing the Backups' and Restores' watch events once
    /// their cache has applied them.
    pub fn spawn_observed(
        client: &kube::Client,
        stop: &CancellationToken,
        observers: Observers,
    ) -> Caches {
        Caches {
            policies: spawn("BackupPolicies", Api::all(client.clone()), stop),
            actionsets: spawn("ActionSets", Api::all(client.clone()), stop),
            repos: spawn("BackupRepos", Api::all(client.clone()), stop),
            providers: spawn("StorageProviders", Api::all(client.clone()), stop),
            storage_classes: spawn("StorageClasses", Api::all(client.clone()), stop),
            backups: spawn_with("Backups", Api::all(client.clone()), stop, observers.backups),
            restores: spawn_with(
                "Restores",
                Api::all(client.clone()),
                stop,
                observers.restores,
            ),
            pods: spawn("Pods", Api::all(client.clone()), stop),
            claims: spawn("PersistentVolumeClaims", Api::all(client.clone()), stop),
            nodes: spawn("Nodes", Api::all(client.clone()), stop),
            schedules: spawn("BackupSchedules", Api::all(client.clone()), stop),
        }
    }
}

/// Sees each watch event of one kind after its cache applied it.
pub type Observer<K> = Box<dyn Fn(&watcher::Event<K>) + Send + Sync>;

/// What sees the watch events of the kinds whose changes are counted (the metrics of finished
/// Backups and Restores, README "Observability").
#[derive(Default)]
pub struct Observers {
    pub backups: Option<Observer<Backup>>,
    pub restores: Option<Observer<Restore>>,
}

/// Runs a reflector for `api` in the background and returns its cache.
fn spawn<K>(kind: &'static str, api: Api<K>, stop: &CancellationToken) -> Cache<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    ObjectRef<K>: Hash + Eq,
{
    spawn_with(kind, api, stop, None)
}

/// [`spawn`], with `observer` seeing every event once the cache has applied it.
fn spawn_with<K>(
    kind: &'static str,
    api: Api<K>,
    stop: &CancellationToken,
    observer: Option<Observer<K>>,
) -> Cache<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    ObjectRef<K>: Hash + Eq,
{
    let (store, writer) = reflector::store();
    let stream = watcher(api, watcher::Config::default().any_semantic())
        .default_backoff()
        // Managed fields are never read and are often most of an object's size.
        .modify(|o: &mut K| o.meta_mut().managed_fields = None);
    let events = reflector::reflector(writer, stream).for_each(move |event| {
        match event {
            Ok(event) => {
                if let Some(observe) = &observer {
                    observe(&event);
                }
            }
            Err(err) => {
                tracing::warn!(kind, error = %crate::shell::chain(&err), "watching for the cache failed; retrying");
            }
        }
        std::future::ready(())
    });
    let stop = stop.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = stop.cancelled() => {}
            _ = events => {}
        }
    });
    Cache::new(kind, store)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::runtime::watcher::Event;

    use super::*;

    #[tokio::test]
    async fn every_reconciler_waiting_for_a_cache_wakes_when_it_is_ready() {
        let (store, mut writer) = reflector::store::<ConfigMap>();
        let cache = Cache::new("ConfigMaps", store);
        // The reconcilers of several kinds start together and wait for the same caches.
        let waiters: Vec<_> = (0..4)
            .map(|_| {
                let cache = cache.clone();
                tokio::spawn(async move { cache.ready().await })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(100)).await;
        writer.apply_watcher_event(&Event::InitDone);
        for waiter in waiters {
            let woke = tokio::time::timeout(Duration::from_secs(5), waiter).await;
            assert!(
                matches!(woke, Ok(Ok(Ok(())))),
                "a waiter was never woken: {woke:?}"
            );
        }
        assert!(cache.ready().await.is_ok(), "ready stays ready");
    }

    #[tokio::test]
    async fn waiting_for_a_cache_whose_watch_ended_is_an_error() {
        let (store, writer) = reflector::store::<ConfigMap>();
        let cache = Cache::new("ConfigMaps", store);
        drop(writer);
        let waited = tokio::time::timeout(Duration::from_secs(5), cache.ready()).await;
        assert!(
            matches!(waited, Ok(Err(NotRunning { kind: "ConfigMaps" }))),
            "{waited:?}"
        );
    }
}
