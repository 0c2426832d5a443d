//! Test harness: an in-process localkube per test (own temp dir, port 0), a kube-rs client
//! for it, and real kubectl invocations with their own discovery cache.

use kube::config::{KubeConfigOptions, Kubeconfig};
use localkube::{RunningServer, Server, ServerBuilder};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Once;
use std::time::Duration;
use tempfile::TempDir;

static CRYPTO: Once = Once::new();

pub fn install_crypto() {
    CRYPTO.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// A running localkube and the directory it owns.
pub struct TestServer {
    pub server: Option<RunningServer>,
    /// Owns the data directory for the server's lifetime.
    pub _dir: TempDir,
    pub home: TempDir,
}

pub fn builder(dir: &Path) -> ServerBuilder {
    Server::builder()
        .data_dir(dir.join("data"))
        .node_name("testnode")
        .kubelet(false)
}

impl TestServer {
    /// Starts a server without the kubelet.
    pub async fn start() -> TestServer {
        Self::start_with(|b| b).await
    }

    pub async fn start_with(configure: impl FnOnce(ServerBuilder) -> ServerBuilder) -> TestServer {
        install_crypto();
        let dir = tempfile::tempdir().expect("temp dir");
        let home = tempfile::tempdir().expect("temp home");
        let server = configure(builder(dir.path()))
            .start()
            .await
            .expect("localkube starts");
        TestServer {
            server: Some(server),
            _dir: dir,
            home,
        }
    }

    pub fn server(&self) -> &RunningServer {
        self.server.as_ref().expect("server is running")
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.server().kubeconfig_path().to_path_buf()
    }

    pub async fn client(&self) -> kube::Client {
        client_for(&self.kubeconfig()).await
    }
}

pub async fn client_for(kubeconfig: &Path) -> kube::Client {
    install_crypto();
    let kc = Kubeconfig::read_from(kubeconfig).expect("kubeconfig parses");
    let config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .expect("kubeconfig loads");
    kube::Client::try_from(config).expect("client builds")
}

/// Runs a kubectl binary; panics with a pointer to ./test.sh when it is missing.
pub fn kubectl_run(
    binary: &str,
    kubeconfig: &Path,
    home: &Path,
    args: &[&str],
    stdin: Option<&str>,
    env: &[(&str, &str)],
) -> Output {
    let mut cmd = Command::new(binary);
    cmd.args(args)
        .env("KUBECONFIG", kubeconfig)
        .env("HOME", home)
        .env("KUBECACHEDIR", home.join("cache"))
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap_or_else(|e| {
        panic!("{binary} is required ({e}); run ./test.sh to install test tools")
    });
    if let Some(input) = stdin {
        use std::io::Write;
        let mut pipe = child.stdin.take().expect("stdin pipe");
        pipe.write_all(input.as_bytes()).expect("write stdin");
    }
    child.wait_with_output().expect("kubectl runs")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Polls `check` until it returns Some or `timeout` passes.
pub async fn eventually<T>(timeout: Duration, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("condition not met within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
