//! How the agent dials the control plane: never in plaintext (docs/PROTOCOL.md §2.1), and when
//! the TLS handshake is refused it says which side refused which certificate and what to check.
//! Real processes, real TCP and TLS on 127.0.0.1; the "control plane" that must receive nothing
//! is a plain TCP listener recording every byte it is sent.

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use cairn_agent::session::{self, ActionRunner, Reporter, SessionConfig, SessionError};
use cairn_agent::tls::{ClientTls, Dial};
use cairn_certs::{Ca, IssuedCert, Validity, server_config};
use cairn_control_plane::grpc::{AgentHub, HubConfig, serve};
use cairn_proto::agent::v1::Action;
use jiff::Timestamp;
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;

const WAIT: Duration = Duration::from_secs(10);
/// A node name that appears in the agent's Hello and nowhere in a TLS ClientHello.
const NODE: &str = "node-plaintext-probe";

// ---------------------------------------------------------------- logs

#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    async fn wait_for(&self, needle: &str) -> String {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Some(line) = self.text().lines().find(|l| l.contains(needle)) {
                return line.to_owned();
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no log line containing {needle:?} in:\n{}",
                self.text()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Captures this test's logs (`#[tokio::test]` polls every task on the test's thread).
fn capture_logs() -> (Logs, tracing::subscriber::DefaultGuard) {
    let logs = Logs::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::DEBUG)
        .finish();
    (logs, tracing::subscriber::set_default(subscriber))
}

// ---------------------------------------------------------------- a listener that records

/// Accepts TCP connections, never answers, and keeps every byte received.
struct Recorder {
    addr: SocketAddr,
    received: Arc<Mutex<Vec<u8>>>,
    connections: Arc<Mutex<usize>>,
}

impl Recorder {
    async fn start() -> Recorder {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(Mutex::new(0));
        let (bytes, count) = (received.clone(), connections.clone());
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                *count.lock().unwrap() += 1;
                let bytes = bytes.clone();
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    while let Ok(n @ 1..) = socket.read(&mut buf).await {
                        bytes.lock().unwrap().extend_from_slice(&buf[..n]);
                    }
                });
            }
        });
        Recorder {
            addr,
            received,
            connections,
        }
    }

    fn received(&self) -> Vec<u8> {
        self.received.lock().unwrap().clone()
    }

    fn connections(&self) -> usize {
        *self.connections.lock().unwrap()
    }

    /// What was received, for a failure message.
    fn shown(&self) -> String {
        String::from_utf8_lossy(&self.received())
            .escape_debug()
            .to_string()
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

// ---------------------------------------------------------------- agent

/// Runs nothing: these tests never get as far as an action.
struct NoRunner;

#[async_trait]
impl ActionRunner for NoRunner {
    async fn start(&self, _action: Action, _reporter: Reporter) {}
    async fn adopt(&self, _action: Action, _reporter: Reporter) {}
    async fn cancel(&self, _action_id: &str, _reason: &str) {}
}

fn session_config(endpoint: String, ca: &Ca, cert: &IssuedCert, state: &Path) -> SessionConfig {
    let tls = ClientTls::from_pem(ca.cert_pem(), &cert.cert_pem, &cert.key_pem).unwrap();
    let dial = Dial {
        endpoint,
        server_name: Some("localhost".to_owned()),
        tls,
        connect_timeout: Duration::from_secs(2),
    };
    let mut config = SessionConfig::new(NODE, dial, state);
    config.reconnect_min_delay = Duration::from_millis(50);
    config.reconnect_max_delay = Duration::from_millis(300);
    config
}

type Running = tokio::task::JoinHandle<Result<(), SessionError>>;

fn spawn_session(config: SessionConfig) -> (tokio::sync::oneshot::Sender<()>, Running) {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(session::run(config, Arc::new(NoRunner), async move {
        let _ = stopped.await;
    }));
    (stop, task)
}

async fn stop_session(stop: tokio::sync::oneshot::Sender<()>, task: Running) {
    let _ = stop.send(());
    tokio::time::timeout(WAIT, task)
        .await
        .expect("the session stops")
        .unwrap()
        .unwrap();
}

// ---------------------------------------------------------------- plaintext is refused

/// Writes the agent's TLS files and a kubeconfig naming an API server nobody listens on (the
/// agent builds its Kubernetes client before dialling, but does not call it).
fn agent_files(dir: &Path) -> [String; 8] {
    let ca = Ca::generate(Validity::days(1)).unwrap();
    let cert = ca.issue_agent(NODE, Validity::days(1)).unwrap();
    std::fs::write(dir.join("ca.pem"), ca.cert_pem()).unwrap();
    std::fs::write(dir.join("agent.pem"), &cert.cert_pem).unwrap();
    std::fs::write(dir.join("agent-key.pem"), &cert.key_pem).unwrap();
    std::fs::write(
        dir.join("kubeconfig"),
        "apiVersion: v1\nkind: Config\n\
         clusters: [{name: c, cluster: {server: \"https://127.0.0.1:1\"}}]\n\
         users: [{name: u, user: {token: t}}]\n\
         contexts: [{name: x, context: {cluster: c, user: u}}]\n\
         current-context: x\n",
    )
    .unwrap();
    let path = |name: &str| dir.join(name).display().to_string();
    [
        "--tls-ca".to_owned(),
        path("ca.pem"),
        "--tls-cert".to_owned(),
        path("agent.pem"),
        "--tls-key".to_owned(),
        path("agent-key.pem"),
        "--datasafed-bin".to_owned(),
        "/bin/true".to_owned(),
    ]
}

#[tokio::test]
async fn the_agent_binary_refuses_an_http_control_plane_at_start_up_and_sends_nothing() {
    let recorder = Recorder::start().await;
    let dir = tempfile::tempdir().unwrap();
    let tls_flags = agent_files(dir.path());
    let endpoint = format!("http://{}", recorder.addr);
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_cairn-agent"))
        .args(["--node-name", NODE, "--control-plane", &endpoint])
        .args(&tls_flags)
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .arg("--agent-dir")
        .arg(dir.path().join("node"))
        .env("KUBECONFIG", dir.path().join("kubeconfig"))
        .env("HOME", dir.path())
        .env_remove("NODE_NAME")
        .env_remove("CAIRN_CONTROL_PLANE")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let Ok(output) = tokio::time::timeout(WAIT, child.wait_with_output()).await else {
        panic!(
            "the agent was still running {WAIT:?} after start with {endpoint}; the listener received {} bytes on {} connections: {}",
            recorder.received().len(),
            recorder.connections(),
            recorder.shown()
        );
    };
    let output = output.unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "cairn-agent: control plane address \"{endpoint}\" is not an https:// URL: the agent reaches the control plane only over mutual TLS; give --control-plane https://HOST:PORT"
        )),
        "{stderr}"
    );
    // Give a dial that should not happen the time to land, then look.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(recorder.connections(), 0, "{}", recorder.shown());
    assert!(recorder.received().is_empty(), "{}", recorder.shown());
}

#[tokio::test]
async fn the_session_refuses_an_http_endpoint_without_dialling() {
    let recorder = Recorder::start().await;
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::generate(Validity::days(1)).unwrap();
    let cert = ca.issue_agent(NODE, Validity::days(1)).unwrap();
    for endpoint in [
        format!("http://{}", recorder.addr),
        format!("HTTP://{}", recorder.addr),
        recorder.addr.to_string(),
    ] {
        let config = session_config(endpoint.clone(), &ca, &cert, dir.path());
        let (_stop, task) = spawn_session(config);
        let result = tokio::time::timeout(Duration::from_secs(3), task).await;
        let Ok(joined) = result else {
            panic!(
                "the session with {endpoint} was still running; the listener received: {}",
                recorder.shown()
            );
        };
        let err = joined.unwrap().unwrap_err();
        assert!(err.to_string().contains("https://HOST:PORT"), "{err}");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(recorder.connections(), 0, "{}", recorder.shown());
    assert!(recorder.received().is_empty(), "{}", recorder.shown());
}

#[tokio::test]
async fn an_https_endpoint_gets_a_tls_client_hello_and_no_plaintext() {
    let recorder = Recorder::start().await;
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::generate(Validity::days(1)).unwrap();
    let cert = ca.issue_agent(NODE, Validity::days(1)).unwrap();
    let config = session_config(format!("https://{}", recorder.addr), &ca, &cert, dir.path());
    let (stop, task) = spawn_session(config);
    let deadline = tokio::time::Instant::now() + WAIT;
    while recorder.received().len() < 5 {
        assert!(tokio::time::Instant::now() < deadline, "nothing received");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop_session(stop, task).await;
    let received = recorder.received();
    // A TLS handshake record (content type 22, version 3.x): a ClientHello.
    assert_eq!(&received[..2], &[0x16, 0x03], "{}", recorder.shown());
    assert!(
        !contains(&received, NODE.as_bytes()),
        "{}",
        recorder.shown()
    );
    assert!(
        !contains(&received, b"PRI * HTTP/2.0"),
        "{}",
        recorder.shown()
    );
}

// ---------------------------------------------------------------- refused certificates

struct ControlPlane {
    ca: Ca,
    addr: SocketAddr,
}

async fn control_plane() -> ControlPlane {
    let ca = Ca::generate(Validity::days(30)).unwrap();
    let server = ca
        .issue_server(&["localhost".to_owned()], &[], Validity::days(30))
        .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let tls = server_config(ca.cert_pem(), &server.cert_pem, &server.key_pem).unwrap();
    let hub = AgentHub::new(HubConfig::default());
    tokio::spawn(serve(listener, tls, hub, std::future::pending()));
    ControlPlane { ca, addr }
}

/// What the agent must say when the control plane refuses its certificate.
const REFUSED: &str = "the control plane refused this agent's certificate";
const WHAT_TO_CHECK: &str = "check that the agent certificate (--tls-cert) was issued by the CA the control plane uses (cairn-control-plane ca issue-agent --node NODE), is currently valid and names this node";

#[tokio::test]
async fn a_certificate_from_another_ca_is_reported_as_refused_with_what_to_check() {
    let (logs, _guard) = capture_logs();
    let cp = control_plane().await;
    let dir = tempfile::tempdir().unwrap();
    let stranger = Ca::generate(Validity::days(1)).unwrap();
    let cert = stranger.issue_agent(NODE, Validity::days(1)).unwrap();
    // The agent trusts the control plane; the control plane does not trust the agent.
    let tls = ClientTls::from_pem(cp.ca.cert_pem(), &cert.cert_pem, &cert.key_pem).unwrap();
    let mut config = session_config(format!("https://{}", cp.addr), &cp.ca, &cert, dir.path());
    config.dial.tls = tls;
    let (stop, task) = spawn_session(config);
    let line = logs.wait_for(REFUSED).await;
    assert!(line.contains(WHAT_TO_CHECK), "{line}");
    // rustls names the alert by what failed: the issuer is unknown, or (a CA of the same
    // name) its signature does not verify.
    assert!(
        line.contains("(TLS alert UnknownCA)") || line.contains("(TLS alert DecryptError)"),
        "{line}"
    );
    assert!(!line.contains("Unknown: transport error"), "{line}");
    stop_session(stop, task).await;
}

#[tokio::test]
async fn an_expired_certificate_is_reported_as_refused_with_what_to_check() {
    let (logs, _guard) = capture_logs();
    let cp = control_plane().await;
    let dir = tempfile::tempdir().unwrap();
    let expired = Validity::between(
        "2020-01-01T00:00:00Z".parse::<Timestamp>().unwrap(),
        "2020-02-01T00:00:00Z".parse::<Timestamp>().unwrap(),
    )
    .unwrap();
    let cert = cp.ca.issue_agent(NODE, expired).unwrap();
    let config = session_config(format!("https://{}", cp.addr), &cp.ca, &cert, dir.path());
    let (stop, task) = spawn_session(config);
    let line = logs.wait_for(REFUSED).await;
    assert!(line.contains(WHAT_TO_CHECK), "{line}");
    stop_session(stop, task).await;
}

#[tokio::test]
async fn a_control_plane_the_agent_does_not_trust_is_named_with_what_to_check() {
    let (logs, _guard) = capture_logs();
    let cp = control_plane().await;
    let dir = tempfile::tempdir().unwrap();
    let cert = cp.ca.issue_agent(NODE, Validity::days(1)).unwrap();
    let other = Ca::generate(Validity::days(1)).unwrap();
    let mut config = session_config(format!("https://{}", cp.addr), &cp.ca, &cert, dir.path());
    config.dial.tls = ClientTls::from_pem(other.cert_pem(), &cert.cert_pem, &cert.key_pem).unwrap();
    let (stop, task) = spawn_session(config);
    let line = logs
        .wait_for("this agent does not trust the control plane's certificate")
        .await;
    assert!(
        line.contains("check that --tls-ca holds the CA that issued the control plane's certificate and that the certificate names the address dialled (or --server-name)"),
        "{line}"
    );
    stop_session(stop, task).await;
}
