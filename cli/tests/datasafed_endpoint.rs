//! The real `datasafed` binary against the node agent's real TLS storage endpoint, as an action
//! pod uses it (docs/PROTOCOL.md §3.1): the certificate in `CAIRN_STORAGE_CERT` is the only one
//! trusted, so another agent's (or an impostor's) endpoint is refused before the token is sent.

use std::process::{Command, Output};

use cairn_agent::socket::{EndpointServer, Grants, StorageIdentity};
use cairn_proto::agent::v1::StorageGrant;

/// An endpoint on loopback over a temporary local repository, stopped with its runtime.
struct Endpoint {
    _runtime: tokio::runtime::Runtime,
    url: String,
    cert_pem: String,
    grants: Grants,
    repo: tempfile::TempDir,
    _state: tempfile::TempDir,
}

impl Endpoint {
    fn start() -> Endpoint {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let state = tempfile::tempdir().expect("tempdir");
        let identity = StorageIdentity::load_or_create(state.path()).expect("identity");
        let server = runtime
            .block_on(EndpointServer::bind(
                "127.0.0.1:0".parse().expect("addr"),
                identity.clone(),
            ))
            .expect("bind");
        let url = format!("https://127.0.0.1:{}", server.local_addr().port());
        let grants = Grants::new();
        runtime.spawn(server.run(grants.clone(), std::future::pending()));
        Endpoint {
            _runtime: runtime,
            url,
            cert_pem: identity.cert_pem().to_string(),
            grants,
            repo: tempfile::tempdir().expect("tempdir"),
            _state: state,
        }
    }

    /// `datasafed ARGS` with only the action's environment: endpoint, pinned certificate, token.
    fn datasafed(&self, cert_pem: &str, token: &str, args: &[&str], stdin: &[u8]) -> Output {
        use std::io::Write as _;
        let mut child = Command::new(env!("CARGO_BIN_EXE_datasafed"))
            .args(args)
            .env_clear()
            .env("CAIRN_STORAGE_ENDPOINT", &self.url)
            .env("CAIRN_STORAGE_CERT", cert_pem)
            .env("CAIRN_STORAGE_TOKEN", token)
            .env("DATASAFED_BACKEND_BASE_PATH", "/ns/b1")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("datasafed runs");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(stdin)
            .expect("stdin written");
        child.wait_with_output().expect("datasafed ends")
    }
}

#[test]
fn datasafed_pushes_and_pulls_through_the_endpoint_and_trusts_only_the_pinned_certificate() {
    let endpoint = Endpoint::start();
    let grant = StorageGrant {
        repo_name: "local-repo".into(),
        local_path: endpoint.repo.path().display().to_string(),
        read_write_prefix: "/ns/b1".into(),
        ..Default::default()
    };
    let token = endpoint.grants.issue("action-1", &grant).expect("token");
    let data = b"bytes of a backup through the network".repeat(1000);

    let pushed = endpoint.datasafed(
        &endpoint.cert_pem,
        token.expose(),
        &["push", "-", "data.bin"],
        &data,
    );
    assert!(
        pushed.status.success(),
        "push: {}",
        String::from_utf8_lossy(&pushed.stderr)
    );
    assert_eq!(
        std::fs::read(endpoint.repo.path().join("ns/b1/data.bin")).expect("stored"),
        data
    );
    let pulled = endpoint.datasafed(
        &endpoint.cert_pem,
        token.expose(),
        &["pull", "data.bin", "-"],
        b"",
    );
    assert!(pulled.status.success());
    assert_eq!(pulled.stdout, data);

    // Another agent's certificate (same name, other key) is not trusted: nothing is sent.
    let other_state = tempfile::tempdir().expect("tempdir");
    let other = StorageIdentity::load_or_create(other_state.path()).expect("identity");
    let refused = endpoint.datasafed(
        other.cert_pem(),
        token.expose(),
        &["push", "-", "other.bin"],
        b"x",
    );
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success(),
        "an unpinned endpoint was trusted"
    );
    assert!(
        stderr.contains("connecting to the node agent's storage endpoint"),
        "{stderr}"
    );
    assert!(!endpoint.repo.path().join("ns/b1/other.bin").exists());

    // The token still authorises: a wrong one is refused by the agent.
    let wrong = endpoint.datasafed(
        &endpoint.cert_pem,
        "0".repeat(64).as_str(),
        &["list", "/"],
        b"",
    );
    assert!(!wrong.status.success());
}
