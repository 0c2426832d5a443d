//! The loop every in-process controller runs: keys from store events and periodic resyncs
//! go into a deduplicating queue; each key is reconciled, and failures or requested
//! requeues come back after a delay.

use crate::error::ApiError;
use crate::store::{Store, WatchEvent};
use std::collections::{BTreeMap, HashSet, VecDeque};
use std::future::Future;
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// A controller: which events concern it and how to reconcile one key.
pub trait Reconciler: Send + Sync + 'static {
    type Key: Clone + Eq + Hash + Ord + Send + Sync + std::fmt::Debug + 'static;

    fn name(&self) -> &'static str;

    /// The keys an event concerns.
    fn keys_for(&self, event: &WatchEvent) -> Vec<Self::Key>;

    /// Every key, for the initial sync and periodic resyncs.
    fn all_keys(&self) -> Vec<Self::Key>;

    /// Brings `key` to its desired state; `Ok(Some(d))` asks to be reconciled again after `d`.
    fn reconcile(
        &self,
        key: &Self::Key,
    ) -> impl Future<Output = Result<Option<Duration>, ApiError>> + Send;
}

/// How often every key is reconciled even without events.
const RESYNC: Duration = Duration::from_secs(30);
const RETRY_BASE: Duration = Duration::from_millis(200);
const RETRY_MAX: Duration = Duration::from_secs(10);

/// Runs `r` until `shutdown`.
pub async fn run<R: Reconciler>(r: Arc<R>, store: Arc<Store>, shutdown: CancellationToken) {
    let snapshot = store.snapshot_all();
    let mut events = snapshot.receiver;
    drop(snapshot.items);
    let mut queue: VecDeque<R::Key> = VecDeque::new();
    let mut queued: HashSet<R::Key> = HashSet::new();
    let mut delayed: BTreeMap<(Instant, u64), R::Key> = BTreeMap::new();
    let mut failures: std::collections::HashMap<R::Key, u32> = Default::default();
    let mut seq = 0u64;
    let push = |k: R::Key, queue: &mut VecDeque<R::Key>, queued: &mut HashSet<R::Key>| {
        if queued.insert(k.clone()) {
            queue.push_back(k);
        }
    };
    for k in r.all_keys() {
        push(k, &mut queue, &mut queued);
    }
    let mut resync = tokio::time::interval_at(Instant::now() + RESYNC, RESYNC);
    loop {
        while let Some(key) = queue.pop_front() {
            queued.remove(&key);
            match r.reconcile(&key).await {
                Ok(None) => {
                    failures.remove(&key);
                }
                Ok(Some(after)) => {
                    failures.remove(&key);
                    seq += 1;
                    delayed.insert((Instant::now() + after, seq), key);
                }
                Err(e) => {
                    let n = failures.entry(key.clone()).or_insert(0);
                    *n += 1;
                    let delay = (RETRY_BASE * 2u32.saturating_pow((*n).min(10))).min(RETRY_MAX);
                    if e.code == 409 || e.code == 404 {
                        tracing::debug!(controller = r.name(), ?key, error = %e, "reconcile raced a change; retrying");
                    } else {
                        tracing::warn!(controller = r.name(), ?key, error = %e, "reconcile failed; retrying");
                    }
                    seq += 1;
                    delayed.insert((Instant::now() + delay, seq), key);
                }
            }
            // Let other tasks run between keys.
            tokio::task::yield_now().await;
            // Pick up events that arrived meanwhile before the next key.
            loop {
                match events.try_recv() {
                    Ok(ev) => {
                        for k in r.keys_for(&ev) {
                            push(k, &mut queue, &mut queued);
                        }
                    }
                    Err(tokio::sync::broadcast::error::TryRecvError::Lagged(_)) => {
                        for k in r.all_keys() {
                            push(k, &mut queue, &mut queued);
                        }
                    }
                    Err(_) => break,
                }
            }
        }
        let next_delayed = delayed.keys().next().map(|(at, _)| *at);
        tokio::select! {
            ev = events.recv() => match ev {
                Ok(ev) => {
                    for k in r.keys_for(&ev) {
                        push(k, &mut queue, &mut queued);
                    }
                }
                Err(RecvError::Lagged(_)) => {
                    for k in r.all_keys() {
                        push(k, &mut queue, &mut queued);
                    }
                }
                Err(RecvError::Closed) => return,
            },
            _ = resync.tick() => {
                for k in r.all_keys() {
                    push(k, &mut queue, &mut queued);
                }
            }
            _ = async {
                match next_delayed {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            } => {
                let now = Instant::now();
                while let Some(entry) = delayed.first_entry() {
                    if entry.key().0 > now {
                        break;
                    }
                    let k = entry.remove();
                    push(k, &mut queue, &mut queued);
                }
            }
            _ = shutdown.cancelled() => return,
        }
    }
}
