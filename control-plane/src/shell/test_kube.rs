//! Tests' API server: an in-process localkube (own temp dir, port 0, no kubelet) and a kube
//! client for it.

use kube::config::{KubeConfigOptions, Kubeconfig};
use localkube::{RunningServer, Server};
use tempfile::TempDir;

/// A running localkube; stops when dropped.
pub struct TestKube {
    pub client: kube::Client,
    _server: RunningServer,
    _dir: TempDir,
}

impl TestKube {
    pub async fn start() -> TestKube {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = tempfile::tempdir().expect("temp dir");
        let server = Server::builder()
            .data_dir(dir.path().join("data"))
            .node_name("testnode")
            .kubelet(false)
            .start()
            .await
            .expect("localkube starts");
        let kubeconfig = Kubeconfig::read_from(server.kubeconfig_path()).expect("kubeconfig");
        let config =
            kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
                .await
                .expect("kubeconfig loads");
        let client = kube::Client::try_from(config).expect("client builds");
        TestKube {
            client,
            _server: server,
            _dir: dir,
        }
    }
}
