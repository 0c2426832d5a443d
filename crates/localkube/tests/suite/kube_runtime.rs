//! kube-runtime pieces against localkube: a Controller with `finalizer()`, the events
//! Recorder (read back as core/v1 events) and kube-lease-manager leases.

use crate::common::{TestServer, eventually};
use crate::kube_api::{Widget, WidgetSpec, install_widget_crd};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Event as CoreEvent};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
#[error("reconcile failed")]
struct ReconcileError(#[source] kube::Error);

#[tokio::test]
async fn a_finalizer_controller_runs_through_create_reconcile_delete_and_cleanup() {
    let t = TestServer::start().await;
    let client = t.client().await;
    install_widget_crd(&client).await;
    let widgets: Api<Widget> = Api::default_namespaced(client.clone());
    let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());
    let ctx = Arc::new((widgets.clone(), cms.clone()));
    let controller = Controller::new(widgets.clone(), watcher::Config::default())
        .run(
            |w: Arc<Widget>, ctx: Arc<(Api<Widget>, Api<ConfigMap>)>| async move {
                let (widgets, cms) = &*ctx;
                finalizer(widgets, "test.cairn.io/cleanup", w, |ev| async move {
                    match ev {
                        Finalizer::Apply(w) => {
                            let marker: ConfigMap = serde_json::from_value(json!({
                                "metadata": {"name": format!("seen-{}", w.name_any())}}))
                            .unwrap();
                            match cms.create(&PostParams::default(), &marker).await {
                                Ok(_) | Err(kube::Error::Api(_)) => {}
                                Err(e) => return Err(ReconcileError(e)),
                            }
                            Ok(Action::await_change())
                        }
                        Finalizer::Cleanup(w) => {
                            cms.delete(&format!("seen-{}", w.name_any()), &DeleteParams::default())
                                .await
                                .map_err(ReconcileError)?;
                            Ok(Action::await_change())
                        }
                    }
                })
                .await
            },
            |_, _, _| Action::requeue(Duration::from_millis(200)),
            ctx,
        )
        .for_each(|_| async {});
    let running = tokio::spawn(controller);

    widgets
        .create(
            &PostParams::default(),
            &Widget::new("w1", WidgetSpec { size: 1 }),
        )
        .await
        .unwrap();
    eventually(Duration::from_secs(15), async || {
        cms.get_opt("seen-w1").await.unwrap()
    })
    .await;
    let w = widgets.get("w1").await.unwrap();
    assert_eq!(w.finalizers(), ["test.cairn.io/cleanup"]);

    widgets
        .delete("w1", &DeleteParams::default())
        .await
        .unwrap();
    eventually(Duration::from_secs(15), async || {
        widgets.get_opt("w1").await.unwrap().is_none().then_some(())
    })
    .await;
    assert!(
        cms.get_opt("seen-w1").await.unwrap().is_none(),
        "cleanup ran before the object went"
    );
    running.abort();
}

#[tokio::test]
async fn recorder_events_are_one_store_with_core_events() {
    let t = TestServer::start().await;
    let client = t.client().await;
    let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "subject"}})).unwrap();
    let cm = cms.create(&PostParams::default(), &cm).await.unwrap();
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "cairn-test".into(),
            instance: Some("cairn-test-0".into()),
        },
    );
    let reference = cm.object_ref(&());
    let event = Event {
        type_: EventType::Normal,
        reason: "Checked".into(),
        note: Some("looked at it".into()),
        action: "Check".into(),
        secondary: None,
    };
    recorder.publish(&event, &reference).await.unwrap();
    // A repeat is recorded as a series on the same Event (create, then merge patch).
    recorder.publish(&event, &reference).await.unwrap();
    let core: Api<CoreEvent> = Api::default_namespaced(client.clone());
    let selector = format!(
        "involvedObject.name=subject,involvedObject.namespace=default,involvedObject.uid={}",
        cm.uid().unwrap()
    );
    let events = core
        .list(&ListParams::default().fields(&selector))
        .await
        .unwrap();
    assert_eq!(events.items.len(), 1);
    let e = &events.items[0];
    assert_eq!(e.reason.as_deref(), Some("Checked"));
    assert_eq!(e.message.as_deref(), Some("looked at it"));
    assert_eq!(e.reporting_component.as_deref(), Some("cairn-test"));
    assert_eq!(e.series.as_ref().map(|s| s.count), Some(Some(2)));
}

#[tokio::test]
async fn kube_lease_manager_locks_and_releases_a_lease() {
    let t = TestServer::start().await;
    let client = t.client().await;
    let a = kube_lease_manager::LeaseManagerBuilder::new(client.clone(), "leader")
        .with_identity("a")
        .with_duration(5)
        .with_grace(2)
        .build()
        .await
        .unwrap();
    let b = kube_lease_manager::LeaseManagerBuilder::new(client.clone(), "leader")
        .with_identity("b")
        .with_duration(5)
        .with_grace(2)
        .build()
        .await
        .unwrap();
    assert!(
        tokio::time::timeout(Duration::from_secs(10), a.changed())
            .await
            .unwrap()
            .unwrap()
    );
    let leases: Api<k8s_openapi::api::coordination::v1::Lease> =
        Api::default_namespaced(client.clone());
    let lease = leases.get("leader").await.unwrap();
    assert_eq!(lease.spec.unwrap().holder_identity.as_deref(), Some("a"));
    // b cannot take a held lease.
    assert!(
        tokio::time::timeout(Duration::from_secs(2), b.changed())
            .await
            .is_err()
    );
    a.release().await.unwrap();
    assert!(
        tokio::time::timeout(Duration::from_secs(10), b.changed())
            .await
            .unwrap()
            .unwrap()
    );
    let lease = leases.get("leader").await.unwrap();
    assert_eq!(lease.spec.unwrap().holder_identity.as_deref(), Some("b"));
    // Leases take plain patches too.
    leases
        .patch(
            "leader",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"x": "y"}}})),
        )
        .await
        .unwrap();
}
