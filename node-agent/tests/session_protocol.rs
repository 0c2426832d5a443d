//! The agent session against the real control-plane server and hub, over real mTLS on
//! 127.0.0.1, through a TCP proxy the tests can unplug or freeze (docs/PROTOCOL.md §2.3).
//! The action runner is a fake: the session is what is under test.

use std::collections::HashMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use cairn_agent::session::{
    self, ActionRunner, Outcome, ProgressUpdate, ReportError, Reporter, SessionConfig, SessionError,
};
use cairn_agent::tls::{ClientTls, Dial};
use cairn_certs::{Ca, Validity, server_config};
use cairn_control_plane::grpc::{AgentHub, HubConfig, HubEvent, serve};
use cairn_proto::agent::v1::{Action, ActionPhase, ArchiverAction, ObjectRef, action};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{broadcast, oneshot, watch};
use tokio::task::JoinHandle;

const WAIT: Duration = Duration::from_secs(10);
const NODE: &str = "node-a";

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

// ---------------------------------------------------------------- network

/// A TCP forwarder between agent and control plane that can cut or freeze the link.
struct Proxy {
    addr: SocketAddr,
    plugged: watch::Sender<bool>,
    freezes: watch::Sender<u64>,
}

impl Proxy {
    async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (plugged, plugged_rx) = watch::channel(true);
        let (freezes, freezes_rx) = watch::channel(0u64);
        tokio::spawn(async move {
            loop {
                let Ok((mut down, _)) = listener.accept().await else {
                    return;
                };
                if !*plugged_rx.borrow() {
                    continue; // dropped: the dialler sees the connection closed
                }
                let mut plugged = plugged_rx.clone();
                let mut freezes = freezes_rx.clone();
                freezes.borrow_and_update();
                tokio::spawn(async move {
                    let Ok(mut up) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    let frozen = {
                        let copy = tokio::io::copy_bidirectional(&mut down, &mut up);
                        tokio::pin!(copy);
                        tokio::select! {
                            _ = &mut copy => false,
                            _ = plugged.wait_for(|p| !*p) => false,
                            _ = freezes.changed() => true,
                        }
                    };
                    if frozen {
                        // Hold both sockets open and silent until the link is cut.
                        let _ = plugged.wait_for(|p| !*p).await;
                    }
                });
            }
        });
        Proxy {
            addr,
            plugged,
            freezes,
        }
    }

    /// Cuts every connection and refuses new ones.
    fn unplug(&self) {
        self.plugged.send_replace(false);
    }

    fn plug(&self) {
        self.plugged.send_replace(true);
    }

    /// Existing connections stop carrying bytes but stay open (a half-dead peer); new ones
    /// work.
    fn freeze_existing(&self) {
        self.freezes.send_modify(|n| *n += 1);
    }
}

struct ControlPlane {
    ca: Ca,
    hub: AgentHub,
    proxy: Proxy,
}

async fn control_plane() -> ControlPlane {
    let ca = Ca::generate(Validity::days(30)).unwrap();
    let server = ca
        .issue_server(&["localhost".to_owned()], &[], Validity::days(30))
        .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream = listener.local_addr().unwrap();
    let tls = server_config(ca.cert_pem(), &server.cert_pem, &server.key_pem).unwrap();
    let hub = AgentHub::new(HubConfig {
        heartbeat_interval: Duration::from_secs(1),
        ..HubConfig::default()
    });
    tokio::spawn(serve(listener, tls, hub.clone(), std::future::pending()));
    let proxy = Proxy::start(upstream).await;
    ControlPlane { ca, hub, proxy }
}

// ---------------------------------------------------------------- agent

#[derive(Default)]
struct FakeState {
    started: Vec<String>,
    adopted: Vec<String>,
    cancelled: Vec<String>,
    /// `(id, spec digest)` of every revised archiver handed to the runner.
    revised: Vec<(String, String)>,
    reporters: HashMap<String, Reporter>,
}

/// Holds each action's reporter until the test finishes it; `cancel` finishes it cancelled.
/// An action named "drop-reporter" has its reporter dropped at once.
#[derive(Default)]
struct FakeRunner {
    state: Mutex<FakeState>,
}

impl FakeRunner {
    async fn wait_until(&self, what: &str, check: impl Fn(&FakeState) -> bool) {
        let deadline = tokio::time::Instant::now() + WAIT;
        while !check(&self.state.lock().unwrap()) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "runner never saw {what}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn wait_started(&self, id: &str) {
        self.wait_until(id, |s| s.reporters.contains_key(id)).await;
    }

    fn starts(&self, id: &str) -> usize {
        let state = self.state.lock().unwrap();
        state.started.iter().filter(|s| *s == id).count()
    }

    fn progress(&self, id: &str, bytes_done: u64) {
        let state = self.state.lock().unwrap();
        state.reporters[id].progress(ProgressUpdate {
            bytes_done,
            bytes_total: 1000,
            bytes_per_second: 10,
            phase: "uploading".to_owned(),
            ..ProgressUpdate::default()
        });
    }

    async fn finish(&self, id: &str, outcome: Outcome) -> Result<(), ReportError> {
        let reporter = self.state.lock().unwrap().reporters.remove(id).unwrap();
        reporter.finish(outcome).await
    }
}

#[async_trait]
impl ActionRunner for FakeRunner {
    async fn start(&self, action: Action, reporter: Reporter) {
        let mut state = self.state.lock().unwrap();
        state.started.push(action.id.clone());
        if action.name != "drop-reporter" {
            state.reporters.insert(action.id, reporter);
        }
    }

    async fn adopt(&self, action: Action, reporter: Reporter) {
        let mut state = self.state.lock().unwrap();
        state.adopted.push(action.id.clone());
        state.reporters.insert(action.id, reporter);
    }

    async fn revise(&self, action: Action) {
        if let Some(action::Kind::Archiver(a)) = &action.kind {
            let mut state = self.state.lock().unwrap();
            state
                .revised
                .push((action.id.clone(), a.spec_digest.clone()));
        }
    }

    async fn cancel(&self, action_id: &str, reason: &str) {
        let reporter = {
            let mut state = self.state.lock().unwrap();
            state.cancelled.push(action_id.to_owned());
            state.reporters.remove(action_id)
        };
        if let Some(reporter) = reporter {
            reporter.finish(Outcome::cancelled(reason)).await.unwrap();
        }
    }
}

struct Agent {
    runner: Arc<FakeRunner>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), SessionError>>,
}

impl Agent {
    /// Ends the agent like `kill -9`: no shutdown path runs.
    fn kill(self) {
        self.task.abort();
    }

    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(WAIT, self.task)
            .await
            .expect("agent stops")
            .unwrap()
            .unwrap();
    }
}

fn config(cp: &ControlPlane, cert_node: &str, hello_node: &str, state_dir: &Path) -> SessionConfig {
    let cert = cp.ca.issue_agent(cert_node, Validity::days(1)).unwrap();
    let tls = ClientTls::from_pem(cp.ca.cert_pem(), &cert.cert_pem, &cert.key_pem).unwrap();
    let dial = Dial {
        endpoint: format!("https://{}", cp.proxy.addr),
        server_name: Some("localhost".to_owned()),
        tls,
        connect_timeout: Duration::from_secs(2),
    };
    let mut config = SessionConfig::new(hello_node, dial, state_dir);
    config.reconnect_min_delay = Duration::from_millis(50);
    config.reconnect_max_delay = Duration::from_millis(300);
    config.result_resend_interval = Duration::from_secs(30);
    config
}

fn spawn_agent(config: SessionConfig) -> Agent {
    let runner = Arc::new(FakeRunner::default());
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(session::run(config, runner.clone(), async move {
        let _ = stopped.await;
    }));
    Agent {
        runner,
        stop: Some(stop),
        task,
    }
}

fn action(id: &str) -> Action {
    Action {
        id: id.to_owned(),
        name: format!("dp-backup-{id}"),
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

// ---------------------------------------------------------------- events

async fn wait_event(
    events: &mut broadcast::Receiver<HubEvent>,
    what: &str,
    mut pred: impl FnMut(&HubEvent) -> bool,
) -> HubEvent {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let event = tokio::time::timeout(left, events.recv())
            .await
            .unwrap_or_else(|_| panic!("no hub event: {what}"))
            .unwrap();
        if pred(&event) {
            return event;
        }
    }
}

/// Events matching `pred` during `window`.
async fn collect_events(
    events: &mut broadcast::Receiver<HubEvent>,
    window: Duration,
    mut pred: impl FnMut(&HubEvent) -> bool,
) -> Vec<HubEvent> {
    let deadline = tokio::time::Instant::now() + window;
    let mut seen = Vec::new();
    while let Ok(Ok(event)) = tokio::time::timeout_at(deadline, events.recv()).await {
        if pred(&event) {
            seen.push(event);
        }
    }
    seen
}

fn is_connected(e: &HubEvent) -> bool {
    matches!(e, HubEvent::Connected { .. })
}

fn is_result_of<'a>(id: &'a str) -> impl FnMut(&HubEvent) -> bool + 'a {
    move |e| matches!(e, HubEvent::Result { state, .. } if state.action_id == id)
}

fn result_phase(event: &HubEvent) -> i32 {
    match event {
        HubEvent::Result { state, .. } => state.phase,
        other => panic!("not a result: {other:?}"),
    }
}

fn journal_text(state_dir: &Path) -> String {
    std::fs::read_to_string(state_dir.join("journal")).unwrap_or_default()
}

// ---------------------------------------------------------------- tests

#[tokio::test]
async fn assigned_action_runs_reports_coalesced_progress_and_a_result_that_is_acked() {
    let cp = control_plane().await;
    let mut events = cp.hub.events();
    let dir = tempfile::tempdir().unwrap();
    let agent = spawn_agent(config(&cp, NODE, NODE, dir.path()));
    wait_event(&mut events, "connected", is_connected).await;

    cp.hub.assign(NODE, action("a1")).unwrap();
    agent.runner.wait_started("a1").await;
    let accepted = wait_event(&mut events, "accepted", |e| {
        matches!(e, HubEvent::Accepted { .. })
    })
    .await;
    assert_eq!(
        accepted,
        HubEvent::Accepted {
            node: NODE.into(),
            action_id: "a1".into(),
            already_known: false
        }
    );
    assert!(journal_text(dir.path()).contains(r#""op":"accepted","id":"a1""#));

    // A burst of 50 reports: the first goes out, the rest coalesce into the newest, which goes
    // out once a second has passed.
    let burst = tokio::time::Instant::now();
    for bytes in 1..=50 {
        agent.runner.progress("a1", bytes);
    }
    let mut bytes = Vec::new();
    while bytes.last() != Some(&50) {
        match wait_event(&mut events, "progress", |e| {
            matches!(e, HubEvent::Progress { .. })
        })
        .await
        {
            HubEvent::Progress { progress, .. } => bytes.push(progress.bytes_done),
            _ => unreachable!(),
        }
    }
    assert!(
        burst.elapsed() >= Duration::from_millis(950),
        "{:?}",
        burst.elapsed()
    );
    assert_eq!(bytes, [1, 50]);
    let more = collect_events(&mut events, Duration::from_millis(1200), |e| {
        matches!(e, HubEvent::Progress { .. })
    })
    .await;
    assert!(more.is_empty(), "{more:?}");
    assert_eq!(cp.hub.progress("a1").unwrap().bytes_done, 50);

    agent
        .runner
        .finish(
            "a1",
            Outcome::succeeded().with_bytes_done(50).with_exit_code(0),
        )
        .await
        .unwrap();
    match wait_event(&mut events, "result", is_result_of("a1")).await {
        HubEvent::Result { node, state, owner } => {
            assert_eq!(node, NODE);
            assert_eq!(state.phase, ActionPhase::Succeeded as i32);
            assert_eq!(state.bytes_done, 50);
            assert!(!state.started_at.is_empty() && !state.finished_at.is_empty());
            assert_eq!(owner.unwrap().uid, "uid-1");
        }
        other => panic!("{other:?}"),
    }

    cp.hub.ack("a1").unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    while !journal_text(dir.path()).contains(r#""op":"acked","id":"a1""#) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "ack never journaled"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    agent.stop().await;
}

#[tokio::test]
async fn the_same_assign_twice_runs_once_and_repeats_the_result() {
    let cp = control_plane().await;
    let mut events = cp.hub.events();
    let dir = tempfile::tempdir().unwrap();
    let agent = spawn_agent(config(&cp, NODE, NODE, dir.path()));
    wait_event(&mut events, "connected", is_connected).await;

    cp.hub.assign(NODE, action("a1")).unwrap();
    agent.runner.wait_started("a1").await;
    // The hub deduplicates by id; forgetting first makes it send the same Assign again.
    cp.hub.forget("a1");
    cp.hub.assign(NODE, action("a1")).unwrap();
    let again = wait_event(&mut events, "second accepted", |e| {
        matches!(
            e,
            HubEvent::Accepted {
                already_known: true,
                ..
            }
        )
    })
    .await;
    assert!(matches!(again, HubEvent::Accepted { action_id, .. } if action_id == "a1"));
    assert_eq!(agent.runner.starts("a1"), 1);

    agent
        .runner
        .finish("a1", Outcome::failed("exit 3"))
        .await
        .unwrap();
    wait_event(&mut events, "result", is_result_of("a1")).await;
    cp.hub.forget("a1");
    cp.hub.assign(NODE, action("a1")).unwrap();
    let repeated = wait_event(&mut events, "repeated result", is_result_of("a1")).await;
    assert_eq!(result_phase(&repeated), ActionPhase::Failed as i32);
    assert_eq!(agent.runner.starts("a1"), 1);
    agent.stop().await;
}

fn archiver(id: &str, digest: &str) -> Action {
    Action {
        kind: Some(action::Kind::Archiver(ArchiverAction {
            spec_digest: digest.into(),
            ..ArchiverAction::default()
        })),
        ..action(id)
    }
}

#[tokio::test]
async fn a_running_archiver_assigned_with_another_spec_digest_is_revised_not_started_again() {
    let cp = control_plane().await;
    let mut events = cp.hub.events();
    let dir = tempfile::tempdir().unwrap();
    let agent = spawn_agent(config(&cp, NODE, NODE, dir.path()));
    wait_event(&mut events, "connected", is_connected).await;

    cp.hub.assign(NODE, archiver("c1", "d1")).unwrap();
    agent.runner.wait_started("c1").await;
    // The same spec again is not even sent.
    cp.hub.assign(NODE, archiver("c1", "d1")).unwrap();
    cp.hub.assign(NODE, archiver("c1", "d2")).unwrap();
    agent
        .runner
        .wait_until("the revised archiver", |s| {
            s.revised == [("c1".to_string(), "d2".to_string())]
        })
        .await;
    assert_eq!(agent.runner.starts("c1"), 1);
    // A job assigned again under its id is never handed over as a revision.
    cp.hub.assign(NODE, action("j1")).unwrap();
    agent.runner.wait_started("j1").await;
    cp.hub.forget("j1");
    cp.hub.assign(NODE, action("j1")).unwrap();
    wait_event(&mut events, "j1 known", |e| {
        matches!(e, HubEvent::Accepted { action_id, already_known: true, .. } if action_id == "j1")
    })
    .await;
    assert_eq!(agent.runner.state.lock().unwrap().revised.len(), 1);
    agent.stop().await;
}

#[tokio::test]
async fn unacknowledged_result_is_resent_until_the_ack_arrives() {
    let cp = control_plane().await;
    let mut events = cp.hub.events();
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(&cp, NODE, NODE, dir.path());
    cfg.result_resend_interval = Duration::from_millis(300);
    let agent = spawn_agent(cfg);
    wait_event(&mut events, "connected", is_connected).await;
    cp.hub.assign(NODE, action("a1")).unwrap();
    agent.runner.wait_started("a1").await;
    agent
        .runner
        .finish("a1", Outcome::succeeded())
        .await
        .unwrap();

    let before_ack =
        collect_events(&mut events, Duration::from_millis(1500), is_result_of("a1")).await;
    assert!(before_ack.len() >= 3, "resent {} times", before_ack.len());
    cp.hub.ack("a1").unwrap();
    // Resends already on the wire, or sent before a loaded machine delivers the ack, may still
    // arrive: let five resend intervals pass before expecting silence.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let _ = collect_events(&mut events, Duration::from_millis(10), is_result_of("a1")).await;
    let after_ack =
        collect_events(&mut events, Duration::from_millis(1000), is_result_of("a1")).await;
    assert!(after_ack.is_empty(), "{after_ack:?}");
    agent.stop().await;
}

#[tokio::test]
async fn result_delivered_twice_across_a_reconnect_is_emitted_twice_and_the_ack_stops_it() {
    let cp = control_plane().await;
    let mut events = cp.hub.events();
    let dir = tempfile::tempdir().unwrap();
    let agent = spawn_agent(config(&cp, NODE, NODE, dir.path()));
    wait_event(&mut events, "connected", is_connected).await;
    cp.hub.assign(NODE, action("a1")).unwrap();
    agent.runner.wait_started("a1").await;
    agent
        .runner
        .finish("a1", Outcome::succeeded())
        .await
        .unwrap();
    wait_event(&mut events, "first result", is_result_of("a1")).await;

    // The session ends before the control plane acknowledged: the result comes again.
    cp.hub.close_all("test: control plane restart");
    wait_event(&mut events, "reconnected", is_connected).await;
    let _second = wait_event(&mut events, "second result", is_result_of("a1")).await;

    // What a reconciler does once the status is patched: ack, then stop wanting the action.
    cp.hub.ack("a1").unwrap();
    cp.hub.forget("a1");
    let deadline = tokio::time::Instant::now() + WAIT;
    while !journal_text(dir.path()).contains(r#""op":"acked","id":"a1""#) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "ack never journaled"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cp.hub.close_all("test: control plane restart");
    wait_event(&mut events, "reconnected again", is_connected).await;
    let after_ack =
        collect_events(&mut events, Duration::from_millis(700), is_result_of("a1")).await;
    assert!(after_ack.is_empty(), "{after_ack:?}");
    agent.stop().await;
}

#[tokio::test]
async fn agent_cut_off_mid_action_reports_the_result_after_reconnecting() {
    let cp = control_plane().await;
    let mut events = cp.hub.events();
    let dir = tempfile::tempdir().unwrap();
    let agent = spawn_agent(config(&cp, NODE, NODE, dir.path()));
    wait_event(&mut events, "connected", is_connected).await;
    cp.hub.assign(NODE, action("a1")).unwrap();
    agent.runner.wait_started("a1").await;

    cp.proxy.unplug();
    wait_event(&mut events, "disconnected", |e| {
        matches!(e, HubEvent::Disconnected { .. })
    })
    .await;
    // The action goes on without a session and ends while the agent is cut off.
    agent
        .runner
        .finish("a1", Outcome::succeeded())
        .await
        .unwrap();
    let lost = collect_events(&mut events, Duration::from_millis(300), is_result_of("a1")).await;
    assert!(lost.is_empty());

    cp.proxy.plug();
    wait_event(&mut events, "reconnected", is_connected).await;
    let result = wait_event(&mut events, "result after reconnect", is_result_of("a1")).await;
    assert_eq!(result_phase(&result), ActionPhase::Succeeded as i32);
    assert_eq!(agent.runner.starts("a1"), 1);
    agent.stop().await;
}

#[tokio::test]
async fn restarted_agent_never_reruns_an_id_from_its_journal() {
    let cp = control_plane().await;
    let mut events = cp.hub.events();
    let dir = tempfile::tempdir().unwrap();

    let first = spawn_agent(config(&cp, NODE, NODE, dir.path()));
    wait_event(&mut events, "connected", is_connected).await;
    cp.hub.assign(NODE, action("running")).unwrap();
    cp.hub.assign(NODE, action("finished")).unwrap();
    first.runner.wait_started("running").await;
    first.runner.wait_started("finished").await;
    first
        .runner
        .finish("finished", Outcome::succeeded().with_bytes_done(7))
        .await
        .unwrap();
    wait_event(&mut events, "result", is_result_of("finished")).await;
    first.kill();
    wait_event(&mut events, "disconnected", |e| {
        matches!(e, HubEvent::Disconnected { .. })
    })
    .await;

    // A new agent process on the same journal: nothing starts again.
    let second = spawn_agent(config(&cp, NODE, NODE, dir.path()));
    wait_event(&mut events, "reconnected", is_connected).await;
    second
        .runner
        .wait_until("adopt", |s| s.adopted == ["running"])
        .await;
    let resent = wait_event(
        &mut events,
        "unacked result in Hello",
        is_result_of("finished"),
    )
    .await;
    assert_eq!(result_phase(&resent), ActionPhase::Succeeded as i32);
    assert_eq!(
        cp.hub.action_state("running").unwrap().phase,
        ActionPhase::Running as i32,
        "Hello reports the running action"
    );

    for id in ["running", "finished"] {
        cp.hub.forget(id);
        cp.hub.assign(NODE, action(id)).unwrap();
        let accepted = wait_event(
            &mut events,
            "accepted",
            |e| matches!(e, HubEvent::Accepted { action_id, .. } if action_id == id),
        )
        .await;
        assert!(
            matches!(
                accepted,
                HubEvent::Accepted {
                    already_known: true,
                    ..
                }
            ),
            "{accepted:?}"
        );
    }
    assert!(second.runner.state.lock().unwrap().started.is_empty());

    // The adopted action still reports through its new reporter.
    second
        .runner
        .finish("running", Outcome::succeeded())
        .await
        .unwrap();
    wait_event(&mut events, "adopted result", is_result_of("running")).await;
    second.stop().await;
}

#[tokio::test]
async fn silent_control_plane_is_dropped_after_three_heartbeats_and_the_agent_reconnects() {
    let (logs, _guard) = capture_logs();
    let cp = control_plane().await;
    let mut events = cp.hub.events();
    let dir = tempfile::tempdir().unwrap();
    let agent = spawn_agent(config(&cp, NODE, NODE, dir.path()));
    let first = wait_event(&mut events, "connected", is_connected).await;
    // Freeze only once the Welcome has reached the agent.
    logs.wait_for("connected to the control plane").await;

    cp.proxy.freeze_existing();
    let line = logs
        .wait_for("disconnected from the control plane: no message from the control plane for")
        .await;
    assert!(
        line.contains("agent.node=node-a") || line.contains("agent_session"),
        "{line}"
    );
    let second = wait_event(&mut events, "reconnected", is_connected).await;
    assert_ne!(first, second, "a new session");
    agent.stop().await;
}

#[tokio::test]
async fn cancel_reaches_the_runner_and_the_cancelled_result_comes_back() {
    let cp = control_plane().await;
    let mut events = cp.hub.events();
    let dir = tempfile::tempdir().unwrap();
    let agent = spawn_agent(config(&cp, NODE, NODE, dir.path()));
    wait_event(&mut events, "connected", is_connected).await;
    cp.hub.assign(NODE, action("a1")).unwrap();
    agent.runner.wait_started("a1").await;
    cp.hub.cancel(NODE, "a1", "the Backup was deleted");
    match wait_event(&mut events, "cancelled result", is_result_of("a1")).await {
        HubEvent::Result { state, .. } => {
            assert_eq!(state.phase, ActionPhase::Cancelled as i32);
            assert_eq!(state.failure_reason, "the Backup was deleted");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(agent.runner.state.lock().unwrap().cancelled, ["a1"]);
    agent.stop().await;
}

#[tokio::test]
async fn runner_that_drops_its_reporter_gets_the_action_reported_failed() {
    let cp = control_plane().await;
    let mut events = cp.hub.events();
    let dir = tempfile::tempdir().unwrap();
    let agent = spawn_agent(config(&cp, NODE, NODE, dir.path()));
    wait_event(&mut events, "connected", is_connected).await;
    let mut dropped = action("d1");
    dropped.name = "drop-reporter".to_owned();
    cp.hub.assign(NODE, dropped).unwrap();
    match wait_event(&mut events, "failed result", is_result_of("d1")).await {
        HubEvent::Result { state, .. } => {
            assert_eq!(state.phase, ActionPhase::Failed as i32);
            assert_eq!(
                state.failure_reason,
                "the action runner ended without reporting a result"
            );
        }
        other => panic!("{other:?}"),
    }
    agent.stop().await;
}

#[tokio::test]
async fn agent_claiming_another_node_is_refused_and_keeps_retrying() {
    let (logs, _guard) = capture_logs();
    let cp = control_plane().await;
    let dir = tempfile::tempdir().unwrap();
    let agent = spawn_agent(config(&cp, "node-a", "node-b", dir.path()));
    logs.wait_for(
        r#"connecting to the control plane failed: the control plane refused the session: PermissionDenied: certificate is for node "node-a" but Hello claims node "node-b""#,
    )
    .await;
    // The control plane logged the refusal too, and the agent tries again.
    logs.wait_for(
        r#"agent refused: certificate is for node "node-a" but Hello claims node "node-b""#,
    )
    .await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while logs
        .text()
        .matches("the control plane refused the session")
        .count()
        < 2
    {
        assert!(tokio::time::Instant::now() < deadline, "no retry");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!cp.hub.node_state("node-b").connected);
    agent.stop().await;
}
