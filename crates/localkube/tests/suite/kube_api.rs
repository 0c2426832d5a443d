//! kube-rs against localkube: CRUD, optimistic concurrency, subresources, discovery,
//! CRD schemas, deletion propagation and namespaces.

use crate::common::{TestServer, eventually};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::core::{DynamicObject, GroupVersionKind};
use kube::discovery::{ApiResource, Discovery};
use kube::runtime::wait::{await_condition, conditions};
use kube::{CustomResource, CustomResourceExt, ResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::time::Duration;

#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, JsonSchema)]
#[kube(
    group = "test.cairn.io",
    version = "v1",
    kind = "Widget",
    namespaced,
    status = "WidgetStatus",
    printcolumn = r#"{"name":"SIZE","type":"integer","jsonPath":".spec.size"}"#
)]
pub struct WidgetSpec {
    pub size: i32,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, JsonSchema)]
pub struct WidgetStatus {
    pub ready: bool,
}

pub async fn install_widget_crd(client: &kube::Client) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.create(&PostParams::default(), &Widget::crd())
        .await
        .expect("CRD created");
    await_condition(
        crds,
        "widgets.test.cairn.io",
        conditions::is_crd_established(),
    )
    .await
    .expect("CRD established");
}

fn cm(name: &str) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name}, "data": {"k": "v"}})).unwrap()
}

#[tokio::test]
async fn api_get_opt_handles_404() {
    let t = TestServer::start().await;
    let cms: Api<ConfigMap> = Api::default_namespaced(t.client().await);
    assert!(cms.get_opt("missing").await.unwrap().is_none());
    let err = cms.get("missing").await.unwrap_err();
    match err {
        kube::Error::Api(s) => {
            assert_eq!(s.code, 404);
            assert_eq!(s.message, "configmaps \"missing\" not found");
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn optimistic_concurrency_rejects_a_stale_replace() {
    let t = TestServer::start().await;
    let cms: Api<ConfigMap> = Api::default_namespaced(t.client().await);
    let created = cms.create(&PostParams::default(), &cm("c1")).await.unwrap();
    let mut a = created.clone();
    let mut b = created.clone();
    a.data = Some([("k".to_string(), "a".to_string())].into());
    b.data = Some([("k".to_string(), "b".to_string())].into());
    cms.replace("c1", &PostParams::default(), &a).await.unwrap();
    match cms
        .replace("c1", &PostParams::default(), &b)
        .await
        .unwrap_err()
    {
        kube::Error::Api(s) => {
            assert_eq!(s.code, 409);
            assert_eq!(s.reason, "Conflict");
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn a_no_op_patch_keeps_the_resource_version() {
    let t = TestServer::start().await;
    let cms: Api<ConfigMap> = Api::default_namespaced(t.client().await);
    let created = cms.create(&PostParams::default(), &cm("c1")).await.unwrap();
    let patched = cms
        .patch(
            "c1",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"k": "v"}})),
        )
        .await
        .unwrap();
    assert_eq!(created.resource_version(), patched.resource_version());
}

#[tokio::test]
async fn derived_resource_queryable_and_has_subresources() {
    let t = TestServer::start().await;
    let client = t.client().await;
    install_widget_crd(&client).await;
    let widgets: Api<Widget> = Api::default_namespaced(client.clone());
    let w = Widget::new("w1", WidgetSpec { size: 3 });
    let created = widgets.create(&PostParams::default(), &w).await.unwrap();
    assert_eq!(created.metadata.generation, Some(1));

    let patched = widgets
        .patch_status(
            "w1",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"ready": true}})),
        )
        .await
        .unwrap();
    assert!(patched.status.as_ref().unwrap().ready);
    assert_eq!(
        patched.metadata.generation,
        Some(1),
        "status writes do not bump generation"
    );

    // The main endpoint ignores status; spec changes bump generation.
    let mut main = patched.clone();
    main.spec.size = 4;
    main.status = Some(WidgetStatus { ready: false });
    let replaced = widgets
        .replace("w1", &PostParams::default(), &main)
        .await
        .unwrap();
    assert_eq!(replaced.metadata.generation, Some(2));
    assert!(replaced.status.as_ref().unwrap().ready);

    let mut st = replaced.clone();
    st.status = Some(WidgetStatus { ready: false });
    let after = widgets
        .replace_status("w1", &PostParams::default(), &st)
        .await
        .unwrap();
    assert!(!after.status.unwrap().ready);
    assert_eq!(after.spec.size, 4);

    let list = widgets.list(&ListParams::default()).await.unwrap();
    assert_eq!(list.items.len(), 1);
}

#[tokio::test]
async fn custom_resource_replace_without_resource_version_is_invalid() {
    let t = TestServer::start().await;
    let client = t.client().await;
    install_widget_crd(&client).await;
    let widgets: Api<Widget> = Api::default_namespaced(client.clone());
    widgets
        .create(
            &PostParams::default(),
            &Widget::new("w1", WidgetSpec { size: 1 }),
        )
        .await
        .unwrap();
    let mut w = Widget::new("w1", WidgetSpec { size: 2 });
    w.metadata.namespace = Some("default".into());
    match widgets
        .replace("w1", &PostParams::default(), &w)
        .await
        .unwrap_err()
    {
        kube::Error::Api(s) => {
            assert_eq!(s.code, 422);
            assert!(s.message.contains("metadata.resourceVersion: Invalid value: \"0x0\": must be specified for an update"), "{}", s.message);
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn discovery_works_with_legacy_and_aggregated_documents() {
    let t = TestServer::start().await;
    let client = t.client().await;
    install_widget_crd(&client).await;
    let legacy = Discovery::new(client.clone()).run().await.unwrap();
    let aggregated = Discovery::new(client.clone())
        .run_aggregated()
        .await
        .unwrap();
    for d in [legacy, aggregated] {
        assert!(d.has_group("test.cairn.io"));
        assert!(d.has_group("batch"));
        let (ar, caps) = d
            .resolve_gvk(&GroupVersionKind::gvk("", "v1", "Pod"))
            .expect("pods are discoverable");
        assert_eq!(ar.plural, "pods");
        assert!(
            caps.subresources
                .iter()
                .any(|(s, _)| s.plural == "pods/exec" || s.plural == "exec")
        );
    }
}

fn gadget_crd() -> serde_json::Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "gadgets.test.cairn.io"},
        "spec": {
            "group": "test.cairn.io",
            "scope": "Namespaced",
            "names": {"plural": "gadgets", "kind": "Gadget"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {"type": "object", "properties": {
                        "retries": {"type": "integer", "default": 3, "maximum": 10},
                        "mode": {"type": "string", "enum": ["a", "b"]},
                        "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}
                    }},
                    "status": {"type": "object", "properties": {"phase": {"type": "string"}}}
                }}}}]
        }
    })
}

async fn install_gadgets(client: &kube::Client) -> Api<DynamicObject> {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.create(
        &PostParams::default(),
        &serde_json::from_value(gadget_crd()).unwrap(),
    )
    .await
    .unwrap();
    await_condition(
        crds,
        "gadgets.test.cairn.io",
        conditions::is_crd_established(),
    )
    .await
    .unwrap();
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("test.cairn.io", "v1", "Gadget"),
        "gadgets",
    );
    Api::namespaced_with(client.clone(), "default", &ar)
}

#[tokio::test]
async fn crd_schemas_default_prune_and_validate_with_strict_and_warn() {
    let t = TestServer::start().await;
    let client = t.client().await;
    let gadgets = install_gadgets(&client).await;
    let obj = |name: &str, spec: serde_json::Value| -> DynamicObject {
        serde_json::from_value(json!({"apiVersion": "test.cairn.io/v1", "kind": "Gadget", "metadata": {"name": name}, "spec": spec})).unwrap()
    };
    // Warn (the server default) prunes unknown fields and keeps preserved subtrees.
    let g = gadgets
        .create(
            &PostParams::default(),
            &obj("g1", json!({"mode": "a", "typo": 1, "free": {"x": 1}})),
        )
        .await
        .unwrap();
    assert_eq!(g.data["spec"]["retries"], 3, "defaulted");
    assert!(g.data["spec"].get("typo").is_none(), "pruned");
    assert_eq!(g.data["spec"]["free"]["x"], 1, "preserved");
    // Strict rejects unknown fields.
    let strict = PostParams {
        field_manager: None,
        dry_run: false,
    };
    let url_strict = gadgets
        .create(&strict, &obj("g2", json!({"typo": 1})))
        .await;
    assert!(
        url_strict.is_ok(),
        "kube-rs PostParams sends no fieldValidation, so Warn applies"
    );
    // Validation errors are 422 with field paths.
    match gadgets
        .create(
            &PostParams::default(),
            &obj("g3", json!({"retries": 11, "mode": "z"})),
        )
        .await
        .unwrap_err()
    {
        kube::Error::Api(s) => {
            assert_eq!(s.code, 422);
            assert!(s.message.contains("spec.retries"), "{}", s.message);
            assert!(s.message.contains("spec.mode"), "{}", s.message);
        }
        other => panic!("unexpected {other:?}"),
    }
    // A create cannot set status when status is a subresource.
    let mut with_status = obj("g4", json!({}));
    with_status.data["status"] = json!({"phase": "Done"});
    let g4 = gadgets
        .create(&PostParams::default(), &with_status)
        .await
        .unwrap();
    assert!(g4.data.get("status").is_none());
}

#[tokio::test]
async fn strict_field_validation_rejects_unknown_fields_over_http() {
    let t = TestServer::start().await;
    let client = t.client().await;
    install_gadgets(&client).await;
    let req = axum::http::Request::post(
        "/apis/test.cairn.io/v1/namespaces/default/gadgets?fieldValidation=Strict",
    )
    .header("content-type", "application/json")
    .body(
        serde_json::to_vec(&json!({"apiVersion": "test.cairn.io/v1", "kind": "Gadget",
            "metadata": {"name": "g"}, "spec": {"typo": 1, "also": 2}}))
        .unwrap(),
    )
    .unwrap();
    match client.request::<serde_json::Value>(req).await.unwrap_err() {
        kube::Error::Api(s) => {
            assert_eq!(s.code, 400);
            assert_eq!(
                s.message,
                "strict decoding error: unknown field \"spec.also\", unknown field \"spec.typo\""
            );
        }
        other => panic!("unexpected {other:?}"),
    }
}

fn owned_cm(name: &str, owner: &ConfigMap, block: bool) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name, "ownerReferences": [{
        "apiVersion": "v1", "kind": "ConfigMap", "name": owner.name_any(),
        "uid": owner.uid().unwrap(), "blockOwnerDeletion": block}]}}))
    .unwrap()
}

#[tokio::test]
async fn delete_propagation_background_foreground_and_orphan() {
    let t = TestServer::start().await;
    let cms: Api<ConfigMap> = Api::default_namespaced(t.client().await);
    let pp = PostParams::default();

    // Background: the owner goes at once, dependents follow.
    let owner = cms.create(&pp, &cm("bg")).await.unwrap();
    cms.create(&pp, &owned_cm("bg-dep", &owner, false))
        .await
        .unwrap();
    cms.delete("bg", &DeleteParams::background()).await.unwrap();
    assert!(cms.get_opt("bg").await.unwrap().is_none());
    eventually(Duration::from_secs(10), async || {
        cms.get_opt("bg-dep").await.unwrap().is_none().then_some(())
    })
    .await;

    // Foreground: the owner waits with a finalizer until blocking dependents are gone.
    let owner = cms.create(&pp, &cm("fg")).await.unwrap();
    let mut dep = owned_cm("fg-dep", &owner, true);
    dep.metadata.finalizers = Some(vec!["test.cairn.io/hold".into()]);
    cms.create(&pp, &dep).await.unwrap();
    cms.delete("fg", &DeleteParams::foreground()).await.unwrap();
    let held = cms.get("fg").await.unwrap();
    assert!(held.metadata.deletion_timestamp.is_some());
    assert!(
        held.finalizers()
            .contains(&"foregroundDeletion".to_string())
    );
    eventually(Duration::from_secs(10), async || {
        cms.get("fg-dep")
            .await
            .unwrap()
            .metadata
            .deletion_timestamp
            .map(|_| ())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        cms.get_opt("fg").await.unwrap().is_some(),
        "blocked by its dependent"
    );
    cms.patch(
        "fg-dep",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    eventually(Duration::from_secs(10), async || {
        cms.get_opt("fg").await.unwrap().is_none().then_some(())
    })
    .await;

    // Orphan: dependents stay, without the owner reference.
    let owner = cms.create(&pp, &cm("or")).await.unwrap();
    cms.create(&pp, &owned_cm("or-dep", &owner, true))
        .await
        .unwrap();
    cms.delete("or", &DeleteParams::orphan()).await.unwrap();
    eventually(Duration::from_secs(10), async || {
        cms.get_opt("or").await.unwrap().is_none().then_some(())
    })
    .await;
    let dep = cms.get("or-dep").await.unwrap();
    assert!(dep.owner_references().is_empty());
}

#[tokio::test]
async fn a_job_deleted_without_a_policy_orphans_its_pods() {
    let t = TestServer::start().await;
    let client = t.client().await;
    let jobs: Api<Job> = Api::default_namespaced(client.clone());
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    let job: Job = serde_json::from_value(json!({"metadata": {"name": "j"}, "spec": {"template": {"spec": {
        "restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox", "command": ["true"]}]}}}}))
    .unwrap();
    let job = jobs.create(&PostParams::default(), &job).await.unwrap();
    let pod: Pod = serde_json::from_value(json!({"metadata": {"name": "j-pod", "ownerReferences": [{
        "apiVersion": "batch/v1", "kind": "Job", "name": "j", "uid": job.uid().unwrap(), "controller": true, "blockOwnerDeletion": true}]},
        "spec": {"containers": [{"name": "c", "image": "busybox"}], "restartPolicy": "Never"}}))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    jobs.delete("j", &DeleteParams::default()).await.unwrap();
    eventually(Duration::from_secs(10), async || {
        jobs.get_opt("j").await.unwrap().is_none().then_some(())
    })
    .await;
    let orphan = pods.get("j-pod").await.unwrap();
    assert!(orphan.owner_references().is_empty());
}

#[tokio::test]
async fn deleting_a_namespace_removes_its_content_then_itself() {
    let t = TestServer::start().await;
    let client = t.client().await;
    let nss: Api<Namespace> = Api::all(client.clone());
    nss.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "doomed"}})).unwrap(),
    )
    .await
    .unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "doomed");
    let mut held = cm("held");
    held.metadata.finalizers = Some(vec!["test.cairn.io/hold".into()]);
    cms.create(&PostParams::default(), &held).await.unwrap();
    cms.create(&PostParams::default(), &cm("plain"))
        .await
        .unwrap();
    // The default ServiceAccount appears.
    let sas: Api<k8s_openapi::api::core::v1::ServiceAccount> =
        Api::namespaced(client.clone(), "doomed");
    eventually(Duration::from_secs(10), async || {
        sas.get_opt("default").await.unwrap()
    })
    .await;
    nss.delete("doomed", &DeleteParams::default())
        .await
        .unwrap();
    let ns = nss.get("doomed").await.unwrap();
    assert_eq!(ns.status.unwrap().phase.as_deref(), Some("Terminating"));
    // New content is refused while terminating.
    match cms
        .create(&PostParams::default(), &cm("late"))
        .await
        .unwrap_err()
    {
        kube::Error::Api(s) => assert_eq!(s.code, 403),
        other => panic!("unexpected {other:?}"),
    }
    eventually(Duration::from_secs(10), async || {
        cms.get_opt("plain").await.unwrap().is_none().then_some(())
    })
    .await;
    assert!(
        nss.get_opt("doomed").await.unwrap().is_some(),
        "held by a finalizer"
    );
    cms.patch(
        "held",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    eventually(Duration::from_secs(10), async || {
        nss.get_opt("doomed").await.unwrap().is_none().then_some(())
    })
    .await;
    // The system namespaces cannot be deleted.
    match nss
        .delete("default", &DeleteParams::default())
        .await
        .unwrap_err()
    {
        kube::Error::Api(s) => assert_eq!(s.code, 403),
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn the_entry_api_creates_updates_and_dry_runs() {
    let t = TestServer::start().await;
    let cms: Api<ConfigMap> = Api::default_namespaced(t.client().await);
    cms.entry("e1")
        .await
        .unwrap()
        .or_insert(|| cm("e1"))
        .commit(&PostParams::default())
        .await
        .unwrap();
    cms.entry("e1")
        .await
        .unwrap()
        .and_modify(|c| {
            c.data = Some([("k".into(), "changed".into())].into());
        })
        .or_insert(|| cm("e1"))
        .commit(&PostParams::default())
        .await
        .unwrap();
    assert_eq!(cms.get("e1").await.unwrap().data.unwrap()["k"], "changed");
    let dry = PostParams {
        dry_run: true,
        field_manager: None,
    };
    cms.create(&dry, &cm("dry")).await.unwrap();
    assert!(cms.get_opt("dry").await.unwrap().is_none());
}
