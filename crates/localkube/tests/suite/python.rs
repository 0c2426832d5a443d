//! A second client implementation: the Python `kubernetes` package (PyPI) against
//! localkube, so nothing works only because server and kube-rs share assumptions.

use crate::common::{TestServer, stderr, stdout};
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::ResourceExt;
use kube::api::{Api, PostParams};
use kube::runtime::wait::{await_condition, conditions};
use serde_json::json;

/// The Python that has the `kubernetes` package; fails with a pointer to ./test.sh otherwise.
fn python() -> String {
    for candidate in ["python3", "python"] {
        let ok = std::process::Command::new(candidate)
            .args(["-c", "import kubernetes"])
            .output()
            .is_ok_and(|o| o.status.success());
        if ok {
            return candidate.to_string();
        }
    }
    panic!(
        "the Python `kubernetes` package is required on PATH (python3 -c 'import kubernetes'); run ./test.sh to install test tools"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_python_kubernetes_client_watches_execs_and_discovers() {
    let python = python();
    let t = TestServer::start_with(|b| b.kubelet(true)).await;
    let client = t.client().await;
    let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());
    let old: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "old"}})).unwrap();
    let old = cms.create(&PostParams::default(), &old).await.unwrap();
    for i in 0..3 {
        let c: ConfigMap =
            serde_json::from_value(json!({"metadata": {"name": format!("n{i}")}})).unwrap();
        cms.create(&PostParams::default(), &c).await.unwrap();
    }
    t.server().compact_history(1);
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    let pod: Pod =
        serde_json::from_value(json!({"metadata": {"name": "py"}, "spec": {"containers": [
        {"name": "c", "image": "x", "command": ["sleep", "1000"]}]}}))
        .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    await_condition(pods, "py", conditions::is_pod_running())
        .await
        .unwrap();
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/client_check.py");
    let out = tokio::task::spawn_blocking({
        let kubeconfig = t.kubeconfig();
        let rv = old.resource_version().unwrap();
        move || {
            std::process::Command::new(python)
                .arg(script)
                .arg(kubeconfig)
                .arg(rv)
                .arg("py")
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "stdout: {}\nstderr: {}",
        stdout(&out),
        stderr(&out)
    );
    assert!(stdout(&out).contains("python client checks passed"));
}
