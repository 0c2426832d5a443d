//! Watch consistency, property-tested: random creates, updates, patches and deletes over a
//! few keys; every watcher (live from the start, or replaying from any past
//! resourceVersion, with or without a label selector) sees a gap-free, ordered stream, and
//! its final state equals a fresh list.

use localkube::rest::{
    Api, ApiConfig, DeleteOptions, ListOptions, PatchType, Target, WatchItem, WatchOptions,
    WriteOptions,
};
use localkube::selector::LabelSelector;
use localkube::store::{EventType, Store};
use proptest::prelude::*;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone)]
enum Op {
    Create { key: usize, label: bool },
    Update { key: usize, label: bool },
    Patch { key: usize, value: u8 },
    Delete { key: usize },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..4usize, any::<bool>()).prop_map(|(key, label)| Op::Create { key, label }),
        (0..4usize, any::<bool>()).prop_map(|(key, label)| Op::Update { key, label }),
        (0..4usize, any::<u8>()).prop_map(|(key, value)| Op::Patch { key, value }),
        (0..4usize).prop_map(|key| Op::Delete { key }),
    ]
}

type Model = BTreeMap<String, (bool, String)>;
/// (resourceVersion, name, state before, state after) of a write that changed something.
type Change = (u64, String, Option<(bool, String)>, Option<(bool, String)>);

fn matches(selector: bool, labelled: bool) -> bool {
    !selector || labelled
}

/// What a watcher with `selector` must see for a change from `before` to `after` of `name`.
fn expected(
    name: &str,
    before: Option<&(bool, String)>,
    after: Option<&(bool, String)>,
    selector: bool,
    rv: u64,
) -> Option<(EventType, String, u64, String)> {
    let was = before.is_some_and(|b| matches(selector, b.0));
    let is = after.is_some_and(|a| matches(selector, a.0));
    match (was, is) {
        (false, true) => Some((EventType::Added, name.into(), rv, after?.1.clone())),
        (true, true) => Some((EventType::Modified, name.into(), rv, after?.1.clone())),
        (true, false) => Some((EventType::Deleted, name.into(), rv, before?.1.clone())),
        (false, false) => None,
    }
}

fn object(name: &str, label: bool, data: &str) -> Value {
    let mut v = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"v": data}});
    if label {
        v["metadata"]["labels"] = json!({"app": "a"});
    }
    v
}

async fn collect(
    mut rx: tokio::sync::mpsc::Receiver<WatchItem>,
) -> Vec<(EventType, String, u64, String)> {
    let mut out = Vec::new();
    loop {
        let item = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("watch delivers")
            .expect("watch open");
        if let WatchItem::Event { kind, object } = item {
            let v = object.value();
            let name = v["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            if name == "zz-sentinel" {
                return out;
            }
            out.push((
                kind,
                name,
                object.rv,
                v["data"]["v"].as_str().unwrap_or_default().to_string(),
            ));
        }
    }
}

async fn run_case(ops: Vec<Op>, starts: Vec<usize>) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        Store::open(
            &dir.path().join("s.db"),
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
    let rt = api.resource("", "v1", "configmaps").unwrap();
    let opts = WriteOptions::default();
    let shutdown = CancellationToken::new();
    let watch = |rv: u64, selector: bool| {
        let label_selector = if selector {
            LabelSelector::parse("app=a").unwrap()
        } else {
            LabelSelector::default()
        };
        api.watch(
            &rt,
            Some("default"),
            WatchOptions {
                label_selector,
                resource_version: Some(rv.to_string()),
                ..Default::default()
            },
            shutdown.clone(),
        )
        .unwrap()
    };
    let start_rv = api.store().current_rv();
    let live = [watch(start_rv, false), watch(start_rv, true)];
    let mut model: Model = BTreeMap::new();
    // (rv, name, before, after) of every write that changed something.
    let mut history: Vec<Change> = Vec::new();
    let mut snapshots: Vec<(u64, Model)> = vec![(start_rv, model.clone())];
    for (i, op) in ops.iter().enumerate() {
        let before_rv = api.store().current_rv();
        let (name, after) = match op {
            Op::Create { key, label } => {
                let name = format!("k{key}");
                let data = format!("c{i}");
                let r = api.create(&rt, Some("default"), object(&name, *label, &data), &opts);
                (name, r.ok().map(|_| (*label, data)))
            }
            Op::Update { key, label } => {
                let name = format!("k{key}");
                let data = format!("u{i}");
                let r = api.update(
                    &rt,
                    Some("default"),
                    &name,
                    object(&name, *label, &data),
                    Target::Main,
                    &opts,
                );
                (name, r.ok().map(|_| (*label, data)))
            }
            Op::Patch { key, value } => {
                let name = format!("k{key}");
                let data = format!("p{value}");
                let body = serde_json::to_vec(&json!({"data": {"v": data}})).unwrap();
                let r = api.patch(
                    &rt,
                    Some("default"),
                    &name,
                    PatchType::Merge,
                    &body,
                    Target::Main,
                    &opts,
                );
                (
                    name.clone(),
                    r.ok()
                        .map(|_| (model.get(&name).map(|m| m.0).unwrap_or(false), data)),
                )
            }
            Op::Delete { key } => {
                let name = format!("k{key}");
                let _ = api.delete(&rt, Some("default"), &name, &DeleteOptions::default());
                (name, None)
            }
        };
        let rv = api.store().current_rv();
        let before = model.get(&name).cloned();
        let new_state = if matches!(op, Op::Delete { .. }) {
            None
        } else {
            after.or(before.clone())
        };
        if rv != before_rv {
            prop_assert_eq!(rv, before_rv + 1, "one write, one resourceVersion");
            history.push((rv, name.clone(), before, new_state.clone()));
            match new_state {
                Some(s) => model.insert(name, s),
                None => model.remove(&name),
            };
            snapshots.push((rv, model.clone()));
        } else {
            prop_assert_eq!(before, new_state, "a no-op write changes nothing");
        }
    }
    let replays: Vec<(u64, bool, _)> = starts
        .iter()
        .map(|s| {
            let (rv, _) = snapshots[s % snapshots.len()];
            let selector = s % 2 == 0;
            (rv, selector, watch(rv, selector))
        })
        .collect();
    api.create(
        &rt,
        Some("default"),
        object("zz-sentinel", true, "s"),
        &opts,
    )
    .unwrap();

    let mut watchers: Vec<(u64, bool, tokio::sync::mpsc::Receiver<WatchItem>)> = Vec::new();
    let [a, b] = live;
    watchers.push((start_rv, false, a));
    watchers.push((start_rv, true, b));
    watchers.extend(replays);
    for (from, selector, rx) in watchers {
        let got = collect(rx).await;
        let want: Vec<_> = history
            .iter()
            .filter(|(rv, ..)| *rv > from)
            .filter_map(|(rv, name, before, after)| {
                expected(name, before.as_ref(), after.as_ref(), selector, *rv)
            })
            .collect();
        prop_assert_eq!(&got, &want, "watcher from {} (selector {})", from, selector);
        // Replaying onto the state at `from` gives the final state.
        let mut state: BTreeMap<String, String> = snapshots
            .iter()
            .find(|(rv, _)| *rv == from)
            .map(|(_, m)| {
                m.iter()
                    .filter(|(_, v)| matches(selector, v.0))
                    .map(|(k, v)| (k.clone(), v.1.clone()))
                    .collect()
            })
            .unwrap_or_default();
        for (kind, name, _, data) in &got {
            match kind {
                EventType::Deleted => state.remove(name),
                _ => state.insert(name.clone(), data.clone()),
            };
        }
        let mut list = ListOptions::default();
        if selector {
            list.label_selector = LabelSelector::parse("app=a").unwrap();
        }
        let fresh: BTreeMap<String, String> = api
            .list(&rt, Some("default"), &list)
            .await
            .unwrap()
            .items
            .iter()
            .map(|o| o.value())
            .filter(|v| v["metadata"]["name"] != "zz-sentinel")
            .map(|v| {
                (
                    v["metadata"]["name"].as_str().unwrap().to_string(),
                    v["data"]["v"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        prop_assert_eq!(state, fresh);
    }
    shutdown.cancel();
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn every_watcher_sees_a_gap_free_ordered_stream_that_ends_in_the_listed_state(
        ops in proptest::collection::vec(op(), 1..30),
        starts in proptest::collection::vec(any::<usize>(), 1..4),
    ) {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        runtime.block_on(run_case(ops, starts))?;
    }
}
