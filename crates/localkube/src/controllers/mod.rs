//! In-process controllers: CRD establishment and cleanup, namespaces, garbage collection,
//! and (with the kubelet) Jobs, StatefulSets, volumes and snapshots.

pub mod copy;
pub mod crd;
pub mod gc;
pub mod job;
pub mod namespace;
pub mod runner;
pub mod snapshot;
pub mod statefulset;
pub mod util;
pub mod volume;

use crate::rest::Api;
use std::path::Path;
use std::sync::Arc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Starts the API-level controllers (those every server runs).
pub fn start_core(
    api: &Arc<Api>,
    data_dir: &Path,
    shutdown: &CancellationToken,
) -> Vec<JoinHandle<()>> {
    let store = api.store().clone();
    // The default VolumeSnapshotClass needs its CRD established first.
    let seeding = {
        let api = api.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            for _ in 0..200 {
                match crate::seed::seed_snapshot_class(&api) {
                    Ok(true) => return,
                    Ok(false) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "creating the default VolumeSnapshotClass failed")
                    }
                }
                tokio::select! {
                    _ = tokio::time::sleep(std::time::Duration::from_millis(50)) => {}
                    _ = shutdown.cancelled() => return,
                }
            }
        })
    };
    vec![
        seeding,
        tokio::spawn(runner::run(
            Arc::new(job::JobController { api: api.clone() }),
            store.clone(),
            shutdown.clone(),
        )),
        tokio::spawn(runner::run(
            Arc::new(statefulset::StatefulSetController { api: api.clone() }),
            store.clone(),
            shutdown.clone(),
        )),
        tokio::spawn(runner::run(
            Arc::new(volume::VolumeController {
                api: api.clone(),
                data_dir: data_dir.to_path_buf(),
            }),
            store.clone(),
            shutdown.clone(),
        )),
        tokio::spawn(runner::run(
            Arc::new(snapshot::SnapshotController {
                api: api.clone(),
                data_dir: data_dir.to_path_buf(),
            }),
            store.clone(),
            shutdown.clone(),
        )),
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
