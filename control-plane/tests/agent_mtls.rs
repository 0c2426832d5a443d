//! The agent port refuses every client that is not a current agent of this CA, and says why in
//! one log line naming the peer (docs/PROTOCOL.md §2.1, §4). Real TCP and TLS on 127.0.0.1.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cairn_certs::{Ca, IssuedCert, Validity, server_config};
use cairn_control_plane::grpc::{AgentHub, HubConfig, serve};
use cairn_proto::agent::v1::agent_service_client::AgentServiceClient;
use cairn_proto::agent::v1::{AgentMessage, ControlMessage, Heartbeat, Hello, agent_message};
use jiff::Timestamp;
use tokio::net::TcpListener;
use tokio_stream::StreamExt;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    async fn wait_for(&self, needle: &str) -> String {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            let text = self.text();
            if let Some(line) = text.lines().find(|l| l.contains(needle)) {
                return line.to_owned();
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no log line containing {needle:?} in:\n{text}"
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

/// Captures this test's logs: `#[tokio::test]` runs every task on the test's thread.
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

struct Pki {
    ca: Ca,
    server: IssuedCert,
}

fn pki() -> Pki {
    let ca = Ca::generate(Validity::days(30)).unwrap();
    let server = ca
        .issue_server(
            &["localhost".to_owned()],
            &["127.0.0.1".parse().unwrap()],
            Validity::days(30),
        )
        .unwrap();
    Pki { ca, server }
}

async fn start_server(pki: &Pki) -> SocketAddr {
    start_server_with(
        pki,
        HubConfig {
            version: "1.2.3".to_owned(),
            ..HubConfig::default()
        },
    )
    .await
}

async fn start_server_with(pki: &Pki, config: HubConfig) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let tls = server_config(pki.ca.cert_pem(), &pki.server.cert_pem, &pki.server.key_pem).unwrap();
    let hub = AgentHub::new(config);
    tokio::spawn(serve(listener, tls, hub, std::future::pending()));
    addr
}

/// Dials with TLS trusting `trust`, presenting `identity` if any, and sends `first`.
async fn session(
    addr: SocketAddr,
    trust: &str,
    identity: Option<&IssuedCert>,
    first: AgentMessage,
) -> Result<ControlMessage, String> {
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(trust))
        .domain_name("localhost");
    if let Some(id) = identity {
        tls = tls.identity(Identity::from_pem(&id.cert_pem, &id.key_pem));
    }
    let endpoint = Endpoint::from_shared(format!("https://{addr}"))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect_timeout(Duration::from_secs(5));
    let channel = endpoint
        .connect()
        .await
        .map_err(|e| format!("connect: {e:?}"))?;
    exchange(channel, first).await
}

async fn exchange(
    channel: tonic::transport::Channel,
    first: AgentMessage,
) -> Result<ControlMessage, String> {
    let mut client = AgentServiceClient::new(channel);
    let outbound = tokio_stream::iter(vec![first]).chain(tokio_stream::pending());
    let response = tokio::time::timeout(Duration::from_secs(5), client.session(outbound))
        .await
        .map_err(|_| "timed out".to_owned())?
        .map_err(|status| format!("{:?}: {}", status.code(), status.message()))?;
    let mut inbound = response.into_inner();
    match tokio::time::timeout(Duration::from_secs(5), inbound.message()).await {
        Ok(Ok(Some(message))) => Ok(message),
        Ok(Ok(None)) => Err("stream ended".to_owned()),
        Ok(Err(status)) => Err(format!("{:?}: {}", status.code(), status.message())),
        Err(_) => Err("timed out".to_owned()),
    }
}

fn hello(node: &str, version: &str) -> AgentMessage {
    AgentMessage {
        msg: Some(agent_message::Msg::Hello(Hello {
            node_name: node.to_owned(),
            version: version.to_owned(),
            actions: vec![],
            capabilities: vec!["exec".to_owned()],
        })),
    }
}

fn expired_window() -> Validity {
    Validity::between(
        "2020-01-01T00:00:00Z".parse::<Timestamp>().unwrap(),
        "2020-02-01T00:00:00Z".parse::<Timestamp>().unwrap(),
    )
    .unwrap()
}

#[tokio::test]
async fn agent_with_a_valid_certificate_for_its_node_is_welcomed() {
    let (_logs, _guard) = capture_logs();
    let pki = pki();
    let addr = start_server(&pki).await;
    let agent = pki.ca.issue_agent("node-a", Validity::days(1)).unwrap();
    let reply = session(
        addr,
        pki.ca.cert_pem(),
        Some(&agent),
        hello("node-a", "1.0.0"),
    )
    .await
    .unwrap();
    assert!(
        matches!(
            reply.msg,
            Some(cairn_proto::agent::v1::control_message::Msg::Welcome(_))
        ),
        "{reply:?}"
    );
}

#[tokio::test]
async fn certificate_from_another_ca_is_refused_and_logged() {
    let (logs, _guard) = capture_logs();
    let pki = pki();
    let addr = start_server(&pki).await;
    let stranger = Ca::generate(Validity::days(1)).unwrap();
    let agent = stranger.issue_agent("node-a", Validity::days(1)).unwrap();
    let result = session(
        addr,
        pki.ca.cert_pem(),
        Some(&agent),
        hello("node-a", "1.0.0"),
    )
    .await;
    assert!(result.is_err(), "{result:?}");
    let line = logs
        .wait_for("agent refused: client certificate is not signed by the Cairn CA")
        .await;
    assert!(line.contains("peer.addr=127.0.0.1:"), "{line}");
}

#[tokio::test]
async fn client_without_certificate_is_refused_and_logged() {
    let (logs, _guard) = capture_logs();
    let pki = pki();
    let addr = start_server(&pki).await;
    let result = session(addr, pki.ca.cert_pem(), None, hello("node-a", "1.0.0")).await;
    assert!(result.is_err(), "{result:?}");
    let line = logs.wait_for("agent refused: no client certificate").await;
    assert!(line.contains("peer.addr=127.0.0.1:"), "{line}");
}

#[tokio::test]
async fn plaintext_client_is_refused_and_logged() {
    let (logs, _guard) = capture_logs();
    let pki = pki();
    let addr = start_server(&pki).await;
    let result = match Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
    {
        Ok(channel) => exchange(channel, hello("node-a", "1.0.0")).await,
        Err(err) => Err(err.to_string()),
    };
    assert!(result.is_err(), "{result:?}");
    let line = logs.wait_for("agent refused: plaintext connection").await;
    assert!(line.contains("peer.addr=127.0.0.1:"), "{line}");
}

#[tokio::test]
async fn expired_certificate_is_refused_and_logged() {
    let (logs, _guard) = capture_logs();
    let pki = pki();
    let addr = start_server(&pki).await;
    let agent = pki.ca.issue_agent("node-a", expired_window()).unwrap();
    let result = session(
        addr,
        pki.ca.cert_pem(),
        Some(&agent),
        hello("node-a", "1.0.0"),
    )
    .await;
    assert!(result.is_err(), "{result:?}");
    let line = logs
        .wait_for("agent refused: client certificate expired at 2020-02-01T00:00:00Z")
        .await;
    assert!(line.contains("peer.addr=127.0.0.1:"), "{line}");
}

#[tokio::test]
async fn certificate_for_node_a_claiming_node_b_is_permission_denied_and_logged() {
    let (logs, _guard) = capture_logs();
    let pki = pki();
    let addr = start_server(&pki).await;
    let agent = pki.ca.issue_agent("node-a", Validity::days(1)).unwrap();
    let result = session(
        addr,
        pki.ca.cert_pem(),
        Some(&agent),
        hello("node-b", "1.0.0"),
    )
    .await;
    assert_eq!(
        result.unwrap_err(),
        "PermissionDenied: certificate is for node \"node-a\" but Hello claims node \"node-b\""
    );
    let line = logs
        .wait_for(
            r#"agent refused: certificate is for node "node-a" but Hello claims node "node-b""#,
        )
        .await;
    assert!(line.contains("peer.addr=127.0.0.1:"), "{line}");
}

#[tokio::test]
async fn operator_certificate_without_node_is_permission_denied() {
    let (logs, _guard) = capture_logs();
    let pki = pki();
    let addr = start_server(&pki).await;
    let operator = pki.ca.issue_client("alice", Validity::days(1)).unwrap();
    let result = session(
        addr,
        pki.ca.cert_pem(),
        Some(&operator),
        hello("alice", "1.0.0"),
    )
    .await;
    assert!(result.unwrap_err().starts_with("PermissionDenied"));
    logs.wait_for("agent refused: certificate is not an agent certificate")
        .await;
}

#[tokio::test]
async fn agent_of_another_major_version_is_failed_precondition_naming_both() {
    let (logs, _guard) = capture_logs();
    let pki = pki();
    let addr = start_server(&pki).await;
    let agent = pki.ca.issue_agent("node-a", Validity::days(1)).unwrap();
    let result = session(
        addr,
        pki.ca.cert_pem(),
        Some(&agent),
        hello("node-a", "2.0.0"),
    )
    .await;
    let err = result.unwrap_err();
    assert!(err.starts_with("FailedPrecondition"), "{err}");
    assert!(err.contains("2.0.0") && err.contains("1.2.3"), "{err}");
    logs.wait_for("agent refused: agent version 2.0.0").await;
}

#[tokio::test]
async fn stream_not_starting_with_hello_is_failed_precondition() {
    let (_logs, _guard) = capture_logs();
    let pki = pki();
    let addr = start_server(&pki).await;
    let agent = pki.ca.issue_agent("node-a", Validity::days(1)).unwrap();
    let heartbeat = AgentMessage {
        msg: Some(agent_message::Msg::Heartbeat(Heartbeat::default())),
    };
    let err = session(addr, pki.ca.cert_pem(), Some(&agent), heartbeat)
        .await
        .unwrap_err();
    assert_eq!(
        err,
        "FailedPrecondition: the first message of a session must be Hello, got Heartbeat"
    );
}

#[tokio::test]
async fn agent_that_never_sends_hello_is_dropped_after_the_hello_timeout() {
    let (logs, _guard) = capture_logs();
    let pki = pki();
    let addr = start_server_with(
        &pki,
        HubConfig {
            hello_timeout: Duration::from_millis(300),
            ..HubConfig::default()
        },
    )
    .await;
    let agent = pki.ca.issue_agent("node-a", Validity::days(1)).unwrap();
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(pki.ca.cert_pem()))
        .identity(Identity::from_pem(&agent.cert_pem, &agent.key_pem))
        .domain_name("localhost");
    let channel = Endpoint::from_shared(format!("https://{addr}"))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect()
        .await
        .unwrap();
    let silent = tokio_stream::pending::<AgentMessage>();
    let status = tokio::time::timeout(
        Duration::from_secs(5),
        AgentServiceClient::new(channel).session(silent),
    )
    .await
    .expect("the server answers")
    .unwrap_err();
    assert_eq!(status.code(), tonic::Code::DeadlineExceeded, "{status:?}");
    logs.wait_for("agent refused: no Hello within").await;
}

#[tokio::test]
async fn agent_that_does_not_trust_the_server_is_logged_as_aborting_the_handshake() {
    let (logs, _guard) = capture_logs();
    let pki = pki();
    let addr = start_server(&pki).await;
    let agent = pki.ca.issue_agent("node-a", Validity::days(1)).unwrap();
    let other = Ca::generate(Validity::days(1)).unwrap();
    let result = session(
        addr,
        other.cert_pem(),
        Some(&agent),
        hello("node-a", "1.0.0"),
    )
    .await;
    assert!(result.is_err(), "{result:?}");
    let line = logs
        .wait_for("agent refused: the client aborted the TLS handshake with alert")
        .await;
    assert!(line.contains("peer.addr=127.0.0.1:"), "{line}");
}

#[tokio::test]
async fn agent_limited_to_tls_1_2_completes_the_handshake() {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

    let (_logs, _guard) = capture_logs();
    let pki = pki();
    let addr = start_server(&pki).await;
    let agent = pki.ca.issue_agent("node-a", Validity::days(1)).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(pki.ca.cert_pem().as_bytes()).unwrap())
        .unwrap();
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS12])
    .unwrap()
    .with_root_certificates(roots)
    .with_client_auth_cert(
        vec![CertificateDer::from_pem_slice(agent.cert_pem.as_bytes()).unwrap()],
        PrivateKeyDer::from_pem_slice(agent.key_pem.as_bytes()).unwrap(),
    )
    .unwrap();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    assert_eq!(
        tls.get_ref().1.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_2)
    );
}
