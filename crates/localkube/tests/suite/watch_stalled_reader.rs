//! A watcher that stops reading (its client's socket full, its channel full) must not keep the
//! watch task past its `timeoutSeconds` or the server's shutdown: the task, blocked sending,
//! would otherwise keep its store subscription and every object it holds for as long as the
//! connection lives.

use localkube::rest::{Api, ApiConfig, WatchOptions, WriteOptions};
use localkube::store::Store;
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc::Receiver;
use tokio_util::sync::CancellationToken;

/// More than a watch channel holds (256), so a watcher that never reads blocks its task.
const OBJECTS: usize = 400;

fn api(dir: &std::path::Path) -> Api {
    let store = Arc::new(
        Store::open(
            &dir.join("s.db"),
            Arc::new(localkube::rest::index::index_object),
            100_000,
        )
        .unwrap(),
    );
    let api = Api::new(
        store,
        ApiConfig {
            node_name: "n".into(),
        },
    );
    localkube::seed::seed(&api).unwrap();
    api
}

fn create_config_maps(api: &Api, prefix: &str) {
    let rt = api.resource("", "v1", "configmaps").unwrap();
    for i in 0..OBJECTS {
        let object = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": format!("{prefix}-{i}")}, "data": {"v": "x"}});
        api.create(&rt, Some("default"), object, &WriteOptions::default())
            .unwrap();
    }
}

/// Waits up to `within` for the watch task to end (it drops the channel's only sender), never
/// reading from the channel.
async fn ended_within<T>(rx: &Receiver<T>, within: Duration) -> bool {
    let until = Instant::now() + within;
    while Instant::now() < until {
        if rx.is_closed() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    rx.is_closed()
}

#[tokio::test]
async fn a_watcher_that_stops_reading_does_not_keep_the_task_past_its_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let api = api(dir.path());
    let rt = api.resource("", "v1", "configmaps").unwrap();
    create_config_maps(&api, "before");
    let shutdown = CancellationToken::new();
    let timeout = Duration::from_secs(1);
    // Blocked in the initial ADDEDs (400 objects, from resourceVersion 0).
    let snapshot = api
        .watch(
            &rt,
            Some("default"),
            WatchOptions {
                resource_version: Some("0".into()),
                timeout,
                ..Default::default()
            },
            shutdown.clone(),
        )
        .unwrap();
    // Blocked in live events (400 written after it started).
    let live = api
        .watch(
            &rt,
            Some("default"),
            WatchOptions {
                resource_version: Some(api.store().current_rv().to_string()),
                timeout,
                ..Default::default()
            },
            shutdown.clone(),
        )
        .unwrap();
    create_config_maps(&api, "after");
    assert!(
        ended_within(&snapshot, Duration::from_secs(5)).await,
        "the watch blocked in its initial events outlived its 1 s timeout by 4 s"
    );
    assert!(
        ended_within(&live, Duration::from_secs(5)).await,
        "the watch blocked in its live events outlived its 1 s timeout by 4 s"
    );
    // What was sent before it stopped is still there for a client that reads again.
    assert_eq!(snapshot.len(), 256);
}

#[tokio::test]
async fn a_watcher_that_stops_reading_does_not_keep_the_task_past_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let api = api(dir.path());
    let rt = api.resource("", "v1", "configmaps").unwrap();
    create_config_maps(&api, "before");
    let shutdown = CancellationToken::new();
    let stalled = api
        .watch(
            &rt,
            Some("default"),
            WatchOptions {
                resource_version: Some("0".into()),
                timeout: Duration::from_secs(3600),
                ..Default::default()
            },
            shutdown.clone(),
        )
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!stalled.is_closed(), "the watch ended before its timeout");
    shutdown.cancel();
    assert!(
        ended_within(&stalled, Duration::from_secs(5)).await,
        "the watch blocked sending outlived the server's shutdown by 5 s"
    );
}
