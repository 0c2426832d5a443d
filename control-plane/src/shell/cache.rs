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
use std::sync::{Arc, Mutex, PoisonError};

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::{Node, PersistentVolumeClaim, Pod};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::Api;
use kube::runtime::Controller;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::UnboundedReceiverStream;
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
    /// Who hears of every object the watch applies ([`Cache::changes`]).
    subscribers: Subscribers<K>,
}

/// The senders of the live [`Cache::changes`] streams.
type Subscribers<K> = Arc<Mutex<Vec<mpsc::UnboundedSender<Arc<K>>>>>;

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
        Cache {
            kind,
            store,
            ready,
            subscribers: Arc::default(),
        }
    }

    /// Every object in the cache now, then every object the watch applies from now on (after a
    /// relist, every object again), each once the cache holds it — the triggers of a
    /// controller that reads this cache ([`Cache::controller`]). Deletions are not sent.
    ///
    /// Unbounded: a slow reader never holds up the watch (and so never makes the cache, which
    /// every planner reads, lag); what queues up are `Arc`s the cache holds anyway.
    pub fn changes(&self) -> impl Stream<Item = Arc<K>> + Send + 'static {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut subscribers = self
            .subscribers
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // Under the lock the watch task cannot send: an object it applies after this snapshot
        // is sent once the subscription is in the list, so none is missed.
        for object in self.store.state() {
            let _ = tx.send(object);
        }
        subscribers.push(tx);
        UnboundedReceiverStream::new(rx)
    }

    /// A controller for this kind that reconciles the objects of this cache: it keeps no
    /// store and runs no watch of its own, so what it reconciles is never older than what the
    /// planners read (a second watch of the same kind, read by the controller's own task,
    /// fell minutes behind under load, and every write planned from it failed with a 409).
    /// Run it once the cache is [ready](Cache::ready): the controller waits on the store's
    /// readiness, which wakes only one of several waiters.
    pub fn controller(&self) -> Controller<K>
    where
        K: DeserializeOwned + Debug,
    {
        Controller::for_shared_stream(self.changes(), self.store.clone())
    }

    /// Sends `objects` to every subscriber; forgets the ones whose stream is gone.
    fn publish(&self, objects: impl IntoIterator<Item = Arc<K>>) {
        let mut subscribers = self
            .subscribers
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if subscribers.is_empty() {
            return;
        }
        for object in objects {
            subscribers.retain(|tx| tx.send(object.clone()).is_ok());
        }
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

    /// The objects `keep` accepts, sorted by namespace and name; only those are copied.
    pub fn filtered(&self, keep: impl Fn(&K) -> bool) -> Vec<K> {
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
            policies: spawn_with(
                "BackupPolicies",
                Api::all(client.clone()),
                stop,
                observers.policies,
            ),
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
/// Backups and Restores, README "Observability"; a deleted BackupPolicy's series go).
#[derive(Default)]
pub struct Observers {
    pub backups: Option<Observer<Backup>>,
    pub restores: Option<Observer<Restore>>,
    pub policies: Option<Observer<BackupPolicy>>,
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
    let cache = Cache::new(kind, store);
    let stream = watcher(api, watcher::Config::default().any_semantic())
        .default_backoff()
        // Managed fields are never read and are often most of an object's size.
        .modify(|o: &mut K| o.meta_mut().managed_fields = None);
    let publisher = cache.clone();
    let events = reflector::reflector(writer, stream).for_each(move |event| {
        match event {
            Ok(event) => {
                if tracing::enabled!(tracing::Level::TRACE) {
                    trace_event(kind, &event);
                }
                // The reflector has applied the event: the store holds what is sent.
                match &event {
                    watcher::Event::Apply(object) => publisher
                        .publish(publisher.store.get(&ObjectRef::from_obj(object))),
                    watcher::Event::InitDone => publisher.publish(publisher.store.state()),
                    _ => {}
                }
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
    cache
}

/// Logs the resourceVersion of every object an event carries (`RUST_LOG=...cache=trace`).
fn trace_event<K: Resource<DynamicType = ()>>(kind: &'static str, event: &watcher::Event<K>) {
    let (what, objects): (&str, Vec<&K>) = match event {
        watcher::Event::Apply(o) => ("apply", vec![o]),
        watcher::Event::Delete(o) => ("delete", vec![o]),
        watcher::Event::InitApply(o) => ("init-apply", vec![o]),
        watcher::Event::Init => ("init", Vec::new()),
        watcher::Event::InitDone => ("init-done", Vec::new()),
    };
    if objects.is_empty() {
        tracing::trace!(kind, event = what, "cache event");
    }
    for o in objects {
        let meta = o.meta();
        tracing::trace!(
            kind,
            event = what,
            namespace = meta.namespace.as_deref().unwrap_or_default(),
            name = meta.name.as_deref().unwrap_or_default(),
            rv = meta.resource_version.as_deref().unwrap_or_default(),
            "cache event"
        );
    }
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

    fn config_map(name: &str, value: &str) -> ConfigMap {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": "default"},
            "data": {"v": value},
        }))
        .expect("a ConfigMap")
    }

    fn rv_of(o: &ConfigMap) -> u64 {
        o.metadata
            .resource_version
            .as_deref()
            .and_then(|rv| rv.parse().ok())
            .unwrap_or(0)
    }

    async fn next_change(
        changes: &mut (impl Stream<Item = Arc<ConfigMap>> + Unpin),
    ) -> Arc<ConfigMap> {
        tokio::time::timeout(Duration::from_secs(30), changes.next())
            .await
            .expect("a change within 30 s")
            .expect("the stream goes on")
    }

    #[tokio::test]
    async fn changes_start_with_every_cached_object_then_each_applied_change() {
        let kube = crate::shell::test_kube::TestKube::start().await;
        let api: Api<ConfigMap> = Api::namespaced(kube.client.clone(), "default");
        let pp = kube::api::PostParams::default();
        api.create(&pp, &config_map("a", "1"))
            .await
            .expect("create a");
        let stop = CancellationToken::new();
        let cache = spawn(
            "ConfigMaps",
            Api::<ConfigMap>::all(kube.client.clone()),
            &stop,
        );
        cache.ready().await.expect("ready");
        // A controller started later (a new leader) hears of what is already cached.
        let mut changes = Box::pin(cache.changes());
        let first = next_change(&mut changes).await;
        assert_eq!(first.metadata.name.as_deref(), Some("a"));
        let patched = api
            .patch(
                "a",
                &kube::api::PatchParams::default(),
                &kube::api::Patch::Merge(serde_json::json!({"data": {"v": "2"}})),
            )
            .await
            .expect("patch a");
        let second = next_change(&mut changes).await;
        assert_eq!(rv_of(&second), rv_of(&patched), "the patched copy follows");
        // What is sent is what the cache holds at that moment.
        assert_eq!(
            cache.get_in("default", "a").map(|a| rv_of(&a)),
            Some(rv_of(&patched))
        );
        api.delete("a", &Default::default())
            .await
            .expect("delete a");
        api.create(&pp, &config_map("b", "1"))
            .await
            .expect("create b");
        let third = next_change(&mut changes).await;
        assert_eq!(
            third.metadata.name.as_deref(),
            Some("b"),
            "a deletion is not a change to reconcile"
        );
        // A stream that is gone is forgotten at the next change.
        drop(changes);
        api.create(&pp, &config_map("c", "1"))
            .await
            .expect("create c");
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while !cache.subscribers.lock().expect("lock").is_empty() {
            assert!(
                std::time::Instant::now() < deadline,
                "the closed stream was kept"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        stop.cancel();
    }

    /// Under load (reconciles that keep the controller's task busy while its objects change
    /// all the time), every reconcile must get the copy the planners read: the Backup
    /// controller's own watch, read by its busy task, fell minutes behind the cache, and every
    /// write planned from its copies failed with a 409.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_busy_controller_reconciles_the_copy_the_cache_holds() {
        let kube = crate::shell::test_kube::TestKube::start().await;
        let api: Api<ConfigMap> = Api::namespaced(kube.client.clone(), "default");
        let pp = kube::api::PostParams::default();
        let names: Vec<String> = (0..10).map(|i| format!("cm-{i}")).collect();
        for name in &names {
            api.create(&pp, &config_map(name, "0"))
                .await
                .expect("create");
        }
        let stop = CancellationToken::new();
        let cache = spawn(
            "ConfigMaps",
            Api::<ConfigMap>::all(kube.client.clone()),
            &stop,
        );
        cache.ready().await.expect("ready");
        // (reconciles, of which behind the cache by more than one version)
        let seen = Arc::new(Mutex::new((0usize, 0usize)));
        let controller = {
            let (reader, seen, stop) = (cache.clone(), seen.clone(), stop.clone());
            let reconcile = move |obj: Arc<ConfigMap>, _: Arc<()>| {
                let name = obj.metadata.name.clone().unwrap_or_default();
                let cached = reader
                    .get_in("default", &name)
                    .map(|c| rv_of(&c))
                    .unwrap_or(0);
                {
                    let mut seen = seen.lock().expect("lock");
                    seen.0 += 1;
                    // Another worker may apply one newer version between the controller's
                    // read and this one; more than that is a controller that lags.
                    if rv_of(&obj) < cached && cached - rv_of(&obj) > 1 {
                        seen.1 += 1;
                    }
                }
                // CPU-bound planning, on the controller's own task.
                std::thread::sleep(Duration::from_millis(20));
                std::future::ready(Ok::<_, kube::Error>(
                    kube::runtime::controller::Action::requeue(Duration::from_millis(10)),
                ))
            };
            cache
                .controller()
                .graceful_shutdown_on(async move { stop.cancelled().await })
                .run(
                    reconcile,
                    |_, _, _| kube::runtime::controller::Action::await_change(),
                    Arc::new(()),
                )
                .for_each(|_| async {})
        };
        let controller = tokio::spawn(controller);
        // Writes race the reconciles for a few seconds.
        let started = std::time::Instant::now();
        let mut i = 0usize;
        while started.elapsed() < Duration::from_secs(6) {
            let name = &names[i % names.len()];
            api.patch(
                name,
                &kube::api::PatchParams::default(),
                &kube::api::Patch::Merge(serde_json::json!({"data": {"v": i.to_string()}})),
            )
            .await
            .expect("patch");
            i += 1;
        }
        stop.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(30), controller).await;
        let (reconciles, behind) = *seen.lock().expect("lock");
        assert!(reconciles > 20, "only {reconciles} reconciles ran");
        assert!(
            behind * 50 <= reconciles,
            "{behind} of {reconciles} reconciles got a copy older than the cache's ({i} writes)"
        );
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
