//! kube-rs watches against localkube: reflectors with paging under racing writes, 410
//! inside the stream and re-lists, restarts, selector transitions, metadata and streaming
//! lists.

use crate::common::{TestServer, builder, client_for, eventually, install_crypto};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use serde_json::json;
use std::collections::BTreeMap;
use std::time::Duration;

fn cm(name: &str, value: &str) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name}, "data": {"v": value}})).unwrap()
}

async fn server_state(cms: &Api<ConfigMap>) -> BTreeMap<String, String> {
    cms.list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|c| {
            (
                c.name_any(),
                c.data
                    .unwrap_or_default()
                    .get("v")
                    .cloned()
                    .unwrap_or_default(),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_reflector_over_1200_configmaps_converges_while_writes_race_the_paging() {
    let t = TestServer::start().await;
    let client = t.client().await;
    let api = t.server().api().clone();
    let rt = api.resource("", "v1", "configmaps").unwrap();
    for i in 0..1200 {
        api.create(
            &rt,
            Some("default"),
            serde_json::to_value(cm(&format!("cm-{i:04}"), "0")).unwrap(),
            &Default::default(),
        )
        .unwrap();
    }
    let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());
    let (reader, writer) = reflector::store::<ConfigMap>();
    let stream = reflector(
        writer,
        watcher(cms.clone(), watcher::Config::default().page_size(500)),
    )
    .applied_objects()
    .for_each(|_| async {});
    let reflect = tokio::spawn(stream);
    // Writes race the initial paging: updates, deletes and creates on both sides of the page boundaries.
    let racer = {
        let cms = cms.clone();
        tokio::spawn(async move {
            for i in 0..60 {
                let name = format!("cm-{:04}", (i * 37) % 1200);
                let _ = cms
                    .patch(
                        &name,
                        &PatchParams::default(),
                        &Patch::Merge(json!({"data": {"v": format!("{i}")}})),
                    )
                    .await;
                if i % 5 == 0 {
                    let _ = cms
                        .delete(
                            &format!("cm-{:04}", (i * 53 + 7) % 1200),
                            &Default::default(),
                        )
                        .await;
                    let _ = cms
                        .create(&PostParams::default(), &cm(&format!("late-{i:03}"), "n"))
                        .await;
                    let _ = cms
                        .create(&PostParams::default(), &cm(&format!("a-early-{i:03}"), "n"))
                        .await;
                }
            }
        })
    };
    racer.await.unwrap();
    reader.wait_until_ready().await.unwrap();
    let want = server_state(&cms).await;
    eventually(Duration::from_secs(20), async || {
        let got: BTreeMap<String, String> = reader
            .state()
            .iter()
            .map(|c| {
                (
                    c.name_any(),
                    c.data
                        .clone()
                        .unwrap_or_default()
                        .get("v")
                        .cloned()
                        .unwrap_or_default(),
                )
            })
            .collect();
        (got == want).then_some(())
    })
    .await;
    reflect.abort();
}

#[tokio::test]
async fn a_watch_from_expired_history_gets_a_410_error_event_inside_the_stream() {
    let t = TestServer::start().await;
    let client = t.client().await;
    let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());
    let first = cms
        .create(&PostParams::default(), &cm("a", "1"))
        .await
        .unwrap();
    for i in 0..5 {
        cms.create(&PostParams::default(), &cm(&format!("b{i}"), "1"))
            .await
            .unwrap();
    }
    t.server().compact_history(1);
    let mut stream = cms
        .watch(&WatchParams::default(), &first.resource_version().unwrap())
        .await
        .expect("the watch request itself succeeds")
        .boxed();
    match tokio::time::timeout(Duration::from_secs(5), stream.try_next())
        .await
        .unwrap()
        .unwrap()
    {
        Some(WatchEvent::Error(e)) => {
            assert_eq!(e.code, 410);
            assert_eq!(e.reason, "Expired");
            assert!(
                e.message.starts_with("too old resource version"),
                "{}",
                e.message
            );
        }
        other => panic!("expected a 410 ERROR event, got {other:?}"),
    }
}

#[tokio::test]
async fn a_watcher_relists_after_its_resume_point_is_compacted() {
    let t = TestServer::start().await;
    let client = t.client().await;
    let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());
    let secrets: Api<Secret> = Api::default_namespaced(client.clone());
    cms.create(&PostParams::default(), &cm("a", "1"))
        .await
        .unwrap();
    // Short server-side timeouts make the watcher reconnect from its last resourceVersion.
    let mut events = watcher(
        cms.clone(),
        watcher::Config::default().timeout(1).disable_bookmarks(),
    )
    .boxed();
    let mut inits = 0;
    let mut compacted = false;
    let mut saw_410 = false;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while inits < 2 {
        let ev = match tokio::time::timeout_at(deadline, events.next())
            .await
            .expect("no timeout")
            .unwrap()
        {
            Ok(ev) => ev,
            Err(watcher::Error::WatchError(s)) if s.code == 410 => {
                saw_410 = true;
                continue;
            }
            Err(e) => panic!("unexpected watcher error {e:?}"),
        };
        match ev {
            watcher::Event::Init => inits += 1,
            watcher::Event::InitDone if !compacted => {
                // Move history past the watcher without it seeing any ConfigMap event.
                for i in 0..3 {
                    let s: Secret =
                        serde_json::from_value(json!({"metadata": {"name": format!("s{i}")}}))
                            .unwrap();
                    secrets.create(&PostParams::default(), &s).await.unwrap();
                }
                t.server().compact_history(0);
                compacted = true;
            }
            _ => {}
        }
    }
    assert!(compacted);
    assert!(saw_410, "the watcher saw the 410 and re-listed");
}

#[tokio::test]
async fn watchers_resume_across_a_restart_from_the_persisted_history() {
    install_crypto();
    let dir = tempfile::tempdir().unwrap();
    let server = builder(dir.path()).start().await.unwrap();
    let addr = server.local_addr();
    let kubeconfig = server.kubeconfig_path().to_path_buf();
    let client = client_for(&kubeconfig).await;
    let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());
    let before = cms
        .create(&PostParams::default(), &cm("before", "1"))
        .await
        .unwrap();
    let (reader, writer) = reflector::store::<ConfigMap>();
    let reflect = tokio::spawn(
        reflector(writer, watcher(cms.clone(), watcher::Config::default()))
            .applied_objects()
            .for_each(|_| async {}),
    );
    reader.wait_until_ready().await.unwrap();
    server.shutdown().await.unwrap();

    let server = builder(dir.path()).listen(addr).start().await.unwrap();
    let client = client_for(server.kubeconfig_path()).await;
    let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());
    assert_eq!(
        cms.get("before").await.unwrap().data.unwrap()["v"],
        "1",
        "data survived"
    );
    cms.create(&PostParams::default(), &cm("after", "2"))
        .await
        .unwrap();
    eventually(Duration::from_secs(30), async || {
        reader
            .get(&reflector::ObjectRef::new("after").within("default"))
            .map(|_| ())
    })
    .await;
    // A raw watch from before the restart replays what happened since, without a 410.
    let mut stream = cms
        .watch(&WatchParams::default(), &before.resource_version().unwrap())
        .await
        .unwrap()
        .boxed();
    match tokio::time::timeout(Duration::from_secs(5), stream.try_next())
        .await
        .unwrap()
        .unwrap()
    {
        Some(WatchEvent::Added(c)) => assert_eq!(c.name_any(), "after"),
        other => panic!("expected the post-restart ADDED, got {other:?}"),
    }
    reflect.abort();
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn field_selector_watches_turn_match_changes_into_added_and_deleted() {
    let t = TestServer::start().await;
    let client = t.client().await;
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    let pod: Pod = serde_json::from_value(
        json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "x"}]}}),
    )
    .unwrap();
    let created = pods.create(&PostParams::default(), &pod).await.unwrap();
    assert_eq!(
        created.spec.as_ref().unwrap().node_name.as_deref(),
        Some("testnode")
    );
    let wp = WatchParams::default().fields("status.phase=Running");
    let mut stream = pods
        .watch(&wp, &created.resource_version().unwrap())
        .await
        .unwrap()
        .boxed();
    let set_phase = async |phase: &str| {
        pods.patch_status(
            "p",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"phase": phase}})),
        )
        .await
        .unwrap();
    };
    set_phase("Running").await;
    set_phase("Running").await;
    set_phase("Succeeded").await;
    let mut kinds = Vec::new();
    while kinds.len() < 2 {
        match tokio::time::timeout(Duration::from_secs(5), stream.try_next())
            .await
            .unwrap()
            .unwrap()
        {
            Some(WatchEvent::Added(p)) => kinds.push(("ADDED", p.status.unwrap().phase.unwrap())),
            Some(WatchEvent::Deleted(p)) => {
                kinds.push(("DELETED", p.status.unwrap().phase.unwrap()))
            }
            Some(WatchEvent::Modified(p)) => {
                kinds.push(("MODIFIED", p.status.unwrap().phase.unwrap()))
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(
        kinds,
        vec![
            ("ADDED", "Running".to_string()),
            ("DELETED", "Running".to_string())
        ]
    );
    // Unsupported fields are a 400, not an empty match.
    let bad = pods
        .list(&ListParams::default().fields("spec.bogus=x"))
        .await
        .unwrap_err();
    match bad {
        kube::Error::Api(s) => {
            assert_eq!(s.code, 400);
            assert_eq!(s.message, "field label not supported: spec.bogus");
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn a_watch_from_zero_starts_with_synthetic_added_events() {
    let t = TestServer::start().await;
    let cms: Api<ConfigMap> = Api::default_namespaced(t.client().await);
    cms.create(&PostParams::default(), &cm("x", "1"))
        .await
        .unwrap();
    let mut stream = cms
        .watch(&WatchParams::default().fields("metadata.name=x"), "0")
        .await
        .unwrap()
        .boxed();
    match tokio::time::timeout(Duration::from_secs(5), stream.try_next())
        .await
        .unwrap()
        .unwrap()
    {
        Some(WatchEvent::Added(c)) => assert_eq!(c.name_any(), "x"),
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn metadata_watchers_receive_partial_object_metadata() {
    let t = TestServer::start().await;
    let cms: Api<ConfigMap> = Api::default_namespaced(t.client().await);
    cms.create(&PostParams::default(), &cm("m1", "1"))
        .await
        .unwrap();
    let meta: Api<kube::core::PartialObjectMeta<ConfigMap>> =
        Api::default_namespaced(t.client().await);
    let objs: Vec<_> = watcher(meta, watcher::Config::default())
        .applied_objects()
        .take(1)
        .try_collect()
        .await
        .unwrap();
    assert_eq!(objs[0].name_any(), "m1");
    let list = cms.list_metadata(&ListParams::default()).await.unwrap();
    assert_eq!(list.items.len(), 1);
}

#[tokio::test]
async fn streaming_list_watchers_get_initial_events_then_live_ones() {
    let t = TestServer::start().await;
    let cms: Api<ConfigMap> = Api::default_namespaced(t.client().await);
    cms.create(&PostParams::default(), &cm("s1", "1"))
        .await
        .unwrap();
    let mut events = watcher(cms.clone(), watcher::Config::default().streaming_lists()).boxed();
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let ev = tokio::time::timeout_at(deadline, events.try_next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        match ev {
            watcher::Event::InitApply(c) => seen.push(c.name_any()),
            watcher::Event::InitDone => break,
            _ => {}
        }
    }
    assert_eq!(seen, ["s1"]);
    cms.create(&PostParams::default(), &cm("s2", "1"))
        .await
        .unwrap();
    loop {
        let ev = tokio::time::timeout_at(deadline, events.try_next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        if let watcher::Event::Apply(c) = ev {
            assert_eq!(c.name_any(), "s2");
            break;
        }
    }
}
