//! The hub over real mTLS sessions, driven by a scripted agent: assignment, results and acks,
//! heartbeats, replacement and shutdown (docs/PROTOCOL.md §2.2, §2.3).

use std::net::SocketAddr;
use std::time::Duration;

use cairn_certs::{Ca, IssuedCert, Validity, server_config};
use cairn_control_plane::grpc::{AgentHub, HubConfig, HubEvent, serve};
use cairn_proto::agent::v1::agent_service_client::AgentServiceClient;
use cairn_proto::agent::v1::{
    Accepted, Action, ActionPhase, ActionState, AgentMessage, ControlMessage, Hello, ObjectRef,
    Progress, Result as ResultMsg, agent_message, control_message,
};
use tokio::net::TcpListener;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};
use tonic::{Code, Status, Streaming};

const WAIT: Duration = Duration::from_secs(5);

struct Cluster {
    ca: Ca,
    addr: SocketAddr,
    hub: AgentHub,
    stop: Option<oneshot::Sender<()>>,
    server:
        Option<tokio::task::JoinHandle<Result<(), cairn_control_plane::grpc::server::ServeError>>>,
}

async fn cluster(heartbeat: Duration) -> Cluster {
    let ca = Ca::generate(Validity::days(30)).unwrap();
    let server: IssuedCert = ca
        .issue_server(&["localhost".to_owned()], &[], Validity::days(30))
        .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let tls = server_config(ca.cert_pem(), &server.cert_pem, &server.key_pem).unwrap();
    let hub = AgentHub::new(HubConfig {
        heartbeat_interval: heartbeat,
        ..HubConfig::default()
    });
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(serve(listener, tls, hub.clone(), async move {
        let _ = stopped.await;
    }));
    Cluster {
        ca,
        addr,
        hub,
        stop: Some(stop),
        server: Some(server),
    }
}

/// An agent whose every message the test writes by hand.
struct ScriptedAgent {
    tx: mpsc::Sender<AgentMessage>,
    inbound: Streaming<ControlMessage>,
}

impl ScriptedAgent {
    async fn connect(cluster: &Cluster, node: &str, reported: Vec<ActionState>) -> ScriptedAgent {
        let id = cluster.ca.issue_agent(node, Validity::days(1)).unwrap();
        let tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(cluster.ca.cert_pem()))
            .identity(Identity::from_pem(&id.cert_pem, &id.key_pem))
            .domain_name("localhost");
        let channel = Endpoint::from_shared(format!("https://{}", cluster.addr))
            .unwrap()
            .tls_config(tls)
            .unwrap()
            .connect()
            .await
            .unwrap();
        let (tx, rx) = mpsc::channel(16);
        tx.send(msg(agent_message::Msg::Hello(Hello {
            node_name: node.to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            actions: reported,
            capabilities: vec![],
        })))
        .await
        .unwrap();
        let inbound = AgentServiceClient::new(channel)
            .session(ReceiverStream::new(rx))
            .await
            .unwrap()
            .into_inner();
        ScriptedAgent { tx, inbound }
    }

    async fn send(&self, m: agent_message::Msg) {
        self.tx.send(msg(m)).await.unwrap();
    }

    /// The next control message other than a heartbeat.
    async fn next(&mut self) -> Result<control_message::Msg, Status> {
        loop {
            let message = tokio::time::timeout(WAIT, self.inbound.message())
                .await
                .expect("no control message in time")?
                .ok_or_else(|| Status::unknown("stream ended"))?;
            match message.msg {
                Some(control_message::Msg::Heartbeat(_)) => continue,
                Some(m) => return Ok(m),
                None => panic!("empty control message"),
            }
        }
    }

    /// Whether a non-heartbeat message arrives within `quiet`.
    async fn stays_quiet(&mut self, quiet: Duration) -> bool {
        tokio::time::timeout(quiet, self.next()).await.is_err()
    }
}

fn msg(m: agent_message::Msg) -> AgentMessage {
    AgentMessage { msg: Some(m) }
}

fn action(id: &str) -> Action {
    Action {
        id: id.to_owned(),
        name: "dp-backup-0".to_owned(),
        owner: Some(ObjectRef {
            api_version: "dataprotection.kubeblocks.io/v1alpha1".to_owned(),
            kind: "Backup".to_owned(),
            namespace: "default".to_owned(),
            name: "b1".to_owned(),
            uid: "uid-1".to_owned(),
        }),
        ..Action::default()
    }
}

fn succeeded(id: &str) -> ActionState {
    ActionState {
        action_id: id.to_owned(),
        phase: ActionPhase::Succeeded as i32,
        bytes_done: 42,
        exit_code: 0,
        ..ActionState::default()
    }
}

async fn next_event(events: &mut broadcast::Receiver<HubEvent>) -> HubEvent {
    tokio::time::timeout(WAIT, events.recv())
        .await
        .expect("no hub event in time")
        .unwrap()
}

async fn wait_for_event(
    events: &mut broadcast::Receiver<HubEvent>,
    mut pred: impl FnMut(&HubEvent) -> bool,
) -> HubEvent {
    loop {
        let event = next_event(events).await;
        if pred(&event) {
            return event;
        }
    }
}

fn assigned_id(m: &control_message::Msg) -> &str {
    match m {
        control_message::Msg::Assign(a) => &a.action.as_ref().unwrap().id,
        other => panic!("expected Assign, got {other:?}"),
    }
}

#[tokio::test]
async fn happy_path_assign_accept_progress_result_ack() {
    let cluster = cluster(Duration::from_secs(10)).await;
    let hub = &cluster.hub;
    let mut events = hub.events();
    hub.assign("node-a", action("a1")).unwrap();
    assert!(!hub.node_state("node-a").connected);

    let mut agent = ScriptedAgent::connect(&cluster, "node-a", vec![]).await;
    match agent.next().await.unwrap() {
        control_message::Msg::Welcome(w) => {
            assert!(!w.session_id.is_empty());
            assert_eq!(w.heartbeat_interval_seconds, 10);
        }
        other => panic!("expected Welcome, got {other:?}"),
    }
    assert_eq!(assigned_id(&agent.next().await.unwrap()), "a1");
    assert!(
        matches!(next_event(&mut events).await, HubEvent::Connected { node, .. } if node == "node-a")
    );
    assert!(hub.node_state("node-a").connected);

    agent
        .send(agent_message::Msg::Accepted(Accepted {
            action_id: "a1".into(),
            already_known: false,
        }))
        .await;
    assert_eq!(
        next_event(&mut events).await,
        HubEvent::Accepted {
            node: "node-a".into(),
            action_id: "a1".into(),
            already_known: false
        }
    );
    assert_eq!(
        hub.action_state("a1").unwrap().phase,
        ActionPhase::Running as i32
    );

    let progress = Progress {
        action_id: "a1".into(),
        bytes_done: 10,
        bytes_total: 100,
        phase: "uploading".into(),
        ..Progress::default()
    };
    agent
        .send(agent_message::Msg::Progress(progress.clone()))
        .await;
    assert!(
        matches!(next_event(&mut events).await, HubEvent::Progress { progress: p, .. } if p == progress)
    );
    assert_eq!(hub.progress("a1").unwrap().bytes_done, 10);

    agent
        .send(agent_message::Msg::Result(ResultMsg {
            state: Some(succeeded("a1")),
        }))
        .await;
    match next_event(&mut events).await {
        HubEvent::Result { node, state, owner } => {
            assert_eq!(node, "node-a");
            assert_eq!(state.action_id, "a1");
            assert_eq!(
                owner.unwrap().name,
                "b1",
                "owner comes from the wanted action"
            );
        }
        other => panic!("expected Result, got {other:?}"),
    }
    assert_eq!(
        hub.action_state("a1").unwrap().phase,
        ActionPhase::Succeeded as i32
    );

    hub.ack("a1").unwrap();
    match agent.next().await.unwrap() {
        control_message::Msg::ResultAck(ack) => assert_eq!(ack.action_id, "a1"),
        other => panic!("expected ResultAck, got {other:?}"),
    }
    hub.forget("a1");
    assert!(hub.action_state("a1").is_none());
}

#[tokio::test]
async fn assigning_the_same_action_twice_sends_one_assign() {
    let cluster = cluster(Duration::from_millis(200)).await;
    let mut agent = ScriptedAgent::connect(&cluster, "node-a", vec![]).await;
    agent.next().await.unwrap(); // Welcome
    cluster.hub.assign("node-a", action("a1")).unwrap();
    cluster.hub.assign("node-a", action("a1")).unwrap();
    assert_eq!(assigned_id(&agent.next().await.unwrap()), "a1");
    assert!(agent.stays_quiet(Duration::from_millis(500)).await);
}

#[tokio::test]
async fn silent_agent_is_dropped_after_three_missed_heartbeats() {
    let cluster = cluster(Duration::from_millis(100)).await;
    let mut events = cluster.hub.events();
    let mut agent = ScriptedAgent::connect(&cluster, "node-a", vec![]).await;
    agent.next().await.unwrap(); // Welcome
    let started = std::time::Instant::now();
    let event = wait_for_event(&mut events, |e| matches!(e, HubEvent::Disconnected { .. })).await;
    assert_eq!(
        event,
        HubEvent::Disconnected {
            node: "node-a".into(),
            reason: "heartbeat timeout".into()
        }
    );
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "{:?}",
        started.elapsed()
    );
    assert!(!cluster.hub.node_state("node-a").connected);
    let status = agent.next().await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
}

#[tokio::test]
async fn agent_that_keeps_heartbeating_stays_connected() {
    let cluster = cluster(Duration::from_millis(100)).await;
    let mut agent = ScriptedAgent::connect(&cluster, "node-a", vec![]).await;
    agent.next().await.unwrap(); // Welcome
    for _ in 0..8 {
        agent
            .send(agent_message::Msg::Heartbeat(Default::default()))
            .await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(cluster.hub.node_state("node-a").connected);
}

#[tokio::test]
async fn second_session_for_the_same_node_replaces_the_first() {
    let cluster = cluster(Duration::from_secs(10)).await;
    let mut first = ScriptedAgent::connect(&cluster, "node-a", vec![]).await;
    first.next().await.unwrap(); // Welcome
    let mut second = ScriptedAgent::connect(&cluster, "node-a", vec![]).await;
    second.next().await.unwrap(); // Welcome
    let status = first.next().await.unwrap_err();
    assert_eq!(status.code(), Code::Aborted);
    assert_eq!(status.message(), "replaced by a newer session");
    cluster.hub.assign("node-a", action("a1")).unwrap();
    assert_eq!(assigned_id(&second.next().await.unwrap()), "a1");
    assert!(cluster.hub.node_state("node-a").connected);
}

#[tokio::test]
async fn result_resent_in_hello_is_emitted_again_and_ack_waits_for_reconnect() {
    let cluster = cluster(Duration::from_secs(10)).await;
    let hub = &cluster.hub;
    let mut events = hub.events();
    hub.assign("node-a", action("a1")).unwrap();
    let mut agent = ScriptedAgent::connect(&cluster, "node-a", vec![]).await;
    agent.next().await.unwrap(); // Welcome
    agent.next().await.unwrap(); // Assign
    agent
        .send(agent_message::Msg::Result(ResultMsg {
            state: Some(succeeded("a1")),
        }))
        .await;
    wait_for_event(&mut events, |e| matches!(e, HubEvent::Result { .. })).await;
    drop(agent);
    wait_for_event(&mut events, |e| matches!(e, HubEvent::Disconnected { .. })).await;

    // The control plane applies the result while the agent is away.
    hub.ack("a1").unwrap();
    let mut agent = ScriptedAgent::connect(&cluster, "node-a", vec![succeeded("a1")]).await;
    agent.next().await.unwrap(); // Welcome
    let again = wait_for_event(&mut events, |e| matches!(e, HubEvent::Result { .. })).await;
    assert!(matches!(again, HubEvent::Result { state, .. } if state.action_id == "a1"));
    match agent.next().await.unwrap() {
        control_message::Msg::ResultAck(ack) => assert_eq!(ack.action_id, "a1"),
        other => panic!("expected ResultAck, got {other:?}"),
    }
    // Reported in Hello, so not assigned again.
    assert!(agent.stays_quiet(Duration::from_millis(300)).await);
}

#[tokio::test]
async fn result_for_an_action_the_hub_does_not_want_carries_its_owner() {
    let cluster = cluster(Duration::from_secs(10)).await;
    let mut events = cluster.hub.events();
    let mut state = succeeded("stray");
    state.owner = action("stray").owner;
    let mut agent = ScriptedAgent::connect(&cluster, "node-a", vec![state]).await;
    agent.next().await.unwrap(); // Welcome
    match wait_for_event(&mut events, |e| matches!(e, HubEvent::Result { .. })).await {
        HubEvent::Result { owner, .. } => assert_eq!(owner.unwrap().uid, "uid-1"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn shutting_down_the_server_ends_agent_sessions() {
    let mut cluster = cluster(Duration::from_secs(10)).await;
    let mut agent = ScriptedAgent::connect(&cluster, "node-a", vec![]).await;
    agent.next().await.unwrap(); // Welcome
    let _ = cluster.stop.take().unwrap().send(());
    let status = agent.next().await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(!cluster.hub.node_state("node-a").connected);
    drop(agent);
    let served = tokio::time::timeout(WAIT, cluster.server.take().unwrap())
        .await
        .expect("serve returns after shutdown");
    served.unwrap().unwrap();
}
