//! Certificates rotate under running processes: the control plane's agent port and the agent
//! both read their PEM files again for each new connection, so a renewed certificate or a
//! rotated CA takes effect without a restart, and what the rotation retired is refused.
//! Real TCP and mutual TLS on 127.0.0.1, the control plane's real agent service and the agent's
//! real session loop; the rotation writes new files the way cert-manager and the renewal sidecar
//! do (atomic replacement).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use cairn_agent::session::{self, ActionRunner, Reporter, SessionConfig};
use cairn_agent::tls::{ClientTls, Dial};
use cairn_certs::pem_files::{PUBLIC_MODE, write_atomically};
use cairn_certs::{Ca, CertFiles, IssuedCert, Validity, reloading_server_config};
use cairn_control_plane::grpc::{AgentHub, HubConfig, serve};
use cairn_proto::agent::v1::agent_service_client::AgentServiceClient;
use cairn_proto::agent::v1::{Action, AgentMessage, Hello, agent_message, control_message};
use jiff::Timestamp;
use tokio::net::TcpListener;
use tokio_stream::StreamExt;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

/// Generous: the machine running the tests may be loaded.
const WAIT: Duration = Duration::from_secs(30);
const NODE: &str = "node-rotating";

struct NoRunner;

#[async_trait]
impl ActionRunner for NoRunner {
    async fn start(&self, _action: Action, _reporter: Reporter) {}
    async fn adopt(&self, _action: Action, _reporter: Reporter) {}
    async fn cancel(&self, _action_id: &str, _reason: &str) {}
}

/// One generation of the PKI: a CA, the control plane's server certificate and the agent's.
struct Generation {
    ca: Ca,
    server: IssuedCert,
    agent: IssuedCert,
}

fn generation() -> Generation {
    let ca = Ca::generate(Validity::days(30)).unwrap();
    let server = ca
        .issue_server(
            &["localhost".to_owned()],
            &["127.0.0.1".parse().unwrap()],
            Validity::days(30),
        )
        .unwrap();
    let agent = ca.issue_agent(NODE, Validity::days(30)).unwrap();
    Generation { ca, server, agent }
}

/// The files both processes read: `cp/{ca,server,server-key}.pem`, `agent/{ca,agent,agent-key}.pem`.
fn install(dir: &Path, generation: &Generation) {
    for sub in ["cp", "agent"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
        write_atomically(
            &dir.join(sub).join("ca.pem"),
            generation.ca.cert_pem().as_bytes(),
            PUBLIC_MODE,
        )
        .unwrap();
    }
    generation
        .server
        .write(&CertFiles::from_stem(&dir.join("cp/server")))
        .unwrap();
    generation
        .agent
        .write(&CertFiles::from_stem(&dir.join("agent/agent")))
        .unwrap();
}

/// Opens an agent session with explicit TLS material and returns whether it was welcomed, or
/// why not.
async fn welcomed(
    addr: std::net::SocketAddr,
    trust: &str,
    identity: &IssuedCert,
) -> Result<(), String> {
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(trust))
        .identity(Identity::from_pem(&identity.cert_pem, &identity.key_pem))
        .domain_name("localhost");
    let channel = Endpoint::from_shared(format!("https://{addr}"))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect_timeout(WAIT)
        .connect()
        .await
        .map_err(|e| format!("connect: {e:?}"))?;
    let mut client = AgentServiceClient::new(channel);
    let hello = AgentMessage {
        msg: Some(agent_message::Msg::Hello(Hello {
            node_name: NODE.to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            actions: vec![],
            capabilities: vec!["exec".to_owned()],
        })),
    };
    let outbound = tokio_stream::iter(vec![hello]).chain(tokio_stream::pending());
    let response = tokio::time::timeout(WAIT, client.session(outbound))
        .await
        .map_err(|_| "timed out".to_owned())?
        .map_err(|status| format!("{:?}: {}", status.code(), status.message()))?;
    let mut inbound = response.into_inner();
    match tokio::time::timeout(WAIT, inbound.message()).await {
        Ok(Ok(Some(message))) => match message.msg {
            Some(control_message::Msg::Welcome(_)) => Ok(()),
            other => Err(format!("first message {other:?}")),
        },
        Ok(Ok(None)) => Err("stream ended".to_owned()),
        Ok(Err(status)) => Err(format!("{:?}: {}", status.code(), status.message())),
        Err(_) => Err("timed out".to_owned()),
    }
}

async fn wait_connected(hub: &AgentHub, connected: bool, what: &str) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while hub.connected_nodes().contains(&NODE.to_owned()) != connected {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: connected nodes {:?}",
            hub.connected_nodes()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_rotation_on_disk_applies_to_the_next_connection_of_both_sides_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let old = generation();
    install(dir.path(), &old);

    // The control plane's agent port, configured from files as `cairn-control-plane run` does.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let tls = reloading_server_config(
        &dir.path().join("cp/ca.pem"),
        &dir.path().join("cp/server.pem"),
        &dir.path().join("cp/server-key.pem"),
    )
    .unwrap();
    let hub = AgentHub::new(HubConfig {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        ..HubConfig::default()
    });
    tokio::spawn(serve(listener, tls, hub.clone(), std::future::pending()));

    // The agent, configured from files as `cairn-agent` does.
    let client_tls = ClientTls::from_files(
        &dir.path().join("agent/ca.pem"),
        &dir.path().join("agent/agent.pem"),
        &dir.path().join("agent/agent-key.pem"),
    )
    .unwrap();
    let state = dir.path().join("state");
    let mut config = SessionConfig::new(
        NODE,
        Dial {
            endpoint: format!("https://{addr}"),
            server_name: Some("localhost".to_owned()),
            tls: client_tls,
            connect_timeout: WAIT,
        },
        &state,
    );
    config.reconnect_min_delay = Duration::from_millis(50);
    config.reconnect_max_delay = Duration::from_millis(300);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let agent = tokio::spawn(session::run(config, Arc::new(NoRunner), async move {
        let _ = stopped.await;
    }));
    wait_connected(&hub, true, "the agent connects with the first certificates").await;

    // Rotate everything: a new CA, a new server certificate, a new agent certificate.
    let new = generation();
    install(dir.path(), &new);
    // The open session is unaffected by the files; end it so that the agent dials again.
    hub.close_all("the test rotated the certificates");
    wait_connected(&hub, false, "the session ends").await;
    // The agent's next dial presents the new certificate and trusts the new CA, and the
    // control plane presents its new certificate and trusts only the new CA: nothing else
    // could connect now.
    wait_connected(
        &hub,
        true,
        "the agent reconnects with the rotated certificates",
    )
    .await;
    stop.send(()).unwrap();
    tokio::time::timeout(WAIT, agent)
        .await
        .expect("the agent stops")
        .unwrap()
        .unwrap();
    wait_connected(&hub, false, "the agent stopped").await;

    // The new generation is welcomed...
    welcomed(addr, new.ca.cert_pem(), &new.agent).await.unwrap();
    // ...the retired CA's agent certificate is refused, even by a client trusting the new
    // server certificate...
    let refused = welcomed(addr, new.ca.cert_pem(), &old.agent).await;
    assert!(refused.is_err(), "the old CA's certificate was accepted");
    // ...a client trusting only the retired CA no longer trusts the control plane...
    let refused = welcomed(addr, old.ca.cert_pem(), &old.agent).await;
    assert!(
        refused.is_err(),
        "the old server certificate is still served"
    );
    // ...and an expired certificate of the new CA is refused.
    let expired = new
        .ca
        .issue_agent(
            NODE,
            Validity::between(
                "2020-01-01T00:00:00Z".parse::<Timestamp>().unwrap(),
                "2020-02-01T00:00:00Z".parse::<Timestamp>().unwrap(),
            )
            .unwrap(),
        )
        .unwrap();
    let refused = welcomed(addr, new.ca.cert_pem(), &expired).await;
    assert!(refused.is_err(), "an expired certificate was accepted");
}

#[tokio::test]
async fn a_half_written_rotation_keeps_the_agent_on_its_last_complete_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let first = generation();
    install(dir.path(), &first);
    let tls = ClientTls::from_files(
        &dir.path().join("agent/ca.pem"),
        &dir.path().join("agent/agent.pem"),
        &dir.path().join("agent/agent-key.pem"),
    )
    .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = cairn_certs::server_config(
        first.ca.cert_pem(),
        &first.server.cert_pem,
        &first.server.key_pem,
    )
    .unwrap();
    let hub = AgentHub::new(HubConfig {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        ..HubConfig::default()
    });
    tokio::spawn(serve(listener, server, hub.clone(), std::future::pending()));
    // A renewal that wrote the certificate but not yet its key.
    let next = first.ca.issue_agent(NODE, Validity::days(30)).unwrap();
    write_atomically(
        &dir.path().join("agent/agent.pem"),
        next.cert_pem.as_bytes(),
        PUBLIC_MODE,
    )
    .unwrap();
    let dial = Dial {
        endpoint: format!("https://{addr}"),
        server_name: Some("localhost".to_owned()),
        tls,
        connect_timeout: WAIT,
    };
    let channel = dial.connect().await.unwrap();
    let mut client = AgentServiceClient::new(channel);
    let hello = AgentMessage {
        msg: Some(agent_message::Msg::Hello(Hello {
            node_name: NODE.to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            actions: vec![],
            capabilities: vec!["exec".to_owned()],
        })),
    };
    let outbound = tokio_stream::iter(vec![hello]).chain(tokio_stream::pending());
    let mut inbound = tokio::time::timeout(WAIT, client.session(outbound))
        .await
        .unwrap()
        .unwrap()
        .into_inner();
    let message = tokio::time::timeout(WAIT, inbound.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(
        matches!(message.msg, Some(control_message::Msg::Welcome(_))),
        "{message:?}"
    );
}
