//! In-process controllers: CRD establishment and cleanup, namespaces, garbage collection,
//! and (with the kubelet) Jobs, StatefulSets, volumes and snapshots.

pub mod crd;
pub mod gc;
pub mod namespace;
pub mod runner;

use crate::rest::Api;
use std::sync::Arc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Starts the API-level controllers (those every server runs).
pub fn start_core(api: &Arc<Api>, shutdown: &CancellationToken) -> Vec<JoinHandle<()>> {
    let store = api.store().clone();
    vec![
        tokio::spawn(runner::run(
            Arc::new(crd::CrdController { api: api.clone() }),
            store.clone(),
            shutdown.clone(),
        )),
        tokio::spawn(runner::run(
            Arc::new(namespace::NamespaceController { api: api.clone() }),
            store.clone(),
            shutdown.clone(),
        )),
        tokio::spawn(runner::run(
            Arc::new(gc::GarbageCollector::new(api.clone())),
            store,
            shutdown.clone(),
        )),
    ]
}
