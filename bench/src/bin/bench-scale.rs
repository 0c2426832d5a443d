//! The control plane at scale: N simulated node agents (real gRPC over mTLS, certificates from
//! the CA the control plane trusts) in this process, and M Backups through localkube, against
//! the release `localkube` and `cairn-control-plane` processes.
//!
//! Each simulated agent is one node: it dials the control plane's agent port, sends `Hello`,
//! heartbeats, and answers every `Assign` with `Accepted` and then, after `--action-ms`, a
//! `Result` that says Succeeded (a no-op action). Each node has one Running and Ready pod with
//! its own BackupPolicy, so every Backup targets a pod on some simulated node.
//!
//! Measured per scenario: dispatch latency (create request → `Assign` received by the agent),
//! create → `Completed` (through a watch), the control plane's peak RSS (`VmHWM`) and its RSS
//! over time (`VmRSS`, sampled every 250 ms), API requests per second at steady state
//! (localkube's `GET /debug/requests`, every client but the benchmark's own; and the
//! control plane's reconciles per second from `/metrics`), and a soak: the RSS after every
//! Backup was created, completed and deleted, against the RSS before (after a warm-up).
//!
//! ```text
//! cargo build --release -p cairn-control-plane -p localkube -p cairn-bench
//! cargo run --release -p cairn-bench --bin bench-scale                 # 100 agents, 1,000 backups
//! cargo run --release -p cairn-bench --bin bench-scale -- --matrix     # 100/1,000, 1,000/1,000, 1,000/10,000
//! ```

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use cairn_api::backup::{Backup, BackupPhase};
use cairn_certs::{Ca, Validity};
use cairn_cli::standalone::process::Child;
use cairn_cli::standalone::{install_crds, manifests, metrics};
use cairn_proto::agent::v1::agent_service_client::AgentServiceClient;
use cairn_proto::agent::v1::{
    ActionPhase, ActionState, AgentMessage, Heartbeat, Hello, Result as ResultMsg, agent_message,
    control_message,
};
use clap::Parser;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use serde_json::json;
use tokio::sync::{Notify, Semaphore, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

const NODE_LABEL: &str = "bench.cairn.io/node";
/// The benchmark's own `User-Agent`: every other client of localkube is the control plane.
const BENCH_USER_AGENT: &str = "cairn-bench-scale";
const MIB: f64 = 1024.0 * 1024.0;
/// Words run in front of the control plane's command line, e.g. `heaptrack -o /tmp/cp`: the
/// benchmark measures the control plane's own process below the wrapper and, at the end of a
/// scenario, kills it with SIGKILL so that a heap profiler reports every allocation still live
/// after the soak as leaked, then waits for the wrapper to finish writing.
const WRAPPER_ENV: &str = "CAIRN_BENCH_CONTROL_PLANE_WRAPPER";
/// The log filter (`RUST_LOG`) of localkube and the control plane (default `warn`), e.g.
/// `warn,kube_runtime=debug`; their logs are in the data directory's `logs/` (see `--keep`).
const LOG_ENV: &str = "CAIRN_BENCH_LOG";

/// The log filter of the stack's processes: [`LOG_ENV`], or `warn`.
fn log_filter() -> String {
    std::env::var(LOG_ENV)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| "warn".into())
}

/// Control-plane scale benchmark.
#[derive(Debug, Parser)]
struct Args {
    /// Simulated agents (nodes), each with one target pod.
    #[arg(long, default_value_t = 100)]
    agents: usize,
    /// Backups created (at `--rate`), completed, then deleted.
    #[arg(long, default_value_t = 1000)]
    backups: usize,
    /// Run the three scenarios 100/1,000, 1,000/1,000 and 1,000/10,000 (agents/backups), each
    /// on a fresh stack, and print them side by side.
    #[arg(long)]
    matrix: bool,
    /// Backups created per second.
    #[arg(long, default_value_t = 25.0)]
    rate: f64,
    /// Milliseconds a simulated action takes before its Succeeded result.
    #[arg(long, default_value_t = 0)]
    action_ms: u64,
    /// Target pods (and their BackupPolicies) per namespace.
    #[arg(long, default_value_t = 10)]
    pods_per_namespace: usize,
    /// Backups created, completed and deleted before the starting RSS of the soak is taken; at
    /// least one per simulated pod, so that what the control plane keeps per BackupPolicy (its
    /// metric series) is in the starting memory and only what a Backup leaves counts as growth.
    #[arg(long, default_value_t = 100)]
    warmup: usize,
    /// Skip deleting the backups (no soak).
    #[arg(long)]
    no_soak: bool,
    /// Directory holding `localkube` and `cairn-control-plane` (default: this executable's).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// Another `localkube` binary (e.g. one that counts requests).
    #[arg(long)]
    localkube: Option<PathBuf>,
    /// Keep the data directory (logs) of each scenario.
    #[arg(long)]
    keep: bool,
    /// Seconds to keep the stack running after the soak's measurement, e.g. to attach a
    /// debugger to the control plane (its pid is printed).
    #[arg(long, default_value_t = 0)]
    hold: u64,
}

/// Shared observations of one scenario.
#[derive(Default)]
struct Seen {
    /// Backup name → when its create request was sent.
    created: HashMap<String, Instant>,
    /// Backup name → first `Assign` for it received by a simulated agent.
    assigned: HashMap<String, Instant>,
    /// Backup name → first watch event showing it Completed.
    completed: HashMap<String, Instant>,
    /// Backup name → failure reason.
    failed: HashMap<String, String>,
    /// Backups seen deleted by the watch.
    deleted: usize,
}

struct Shared {
    seen: Mutex<Seen>,
    changed: Notify,
    assigns: AtomicU64,
    results_acked: AtomicU64,
    disconnects: AtomicU64,
    connected: AtomicUsize,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.seen.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A mark of the steady-state window: when, the API request counts (total per second and by
/// resource) and the control plane's RSS.
type WindowMark = (
    Instant,
    Option<(f64, Vec<(String, f64)>)>,
    f64,
    HashMap<String, (f64, f64)>,
);

/// Nearest-rank percentile of sorted samples.
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

fn object<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> anyhow::Result<T> {
    serde_json::from_value(value).context("building a benchmark object")
}

/// `VmRSS`, `VmHWM` and `RssAnon` of a process, in bytes.
fn rss(pid: u32) -> Option<(u64, u64, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<u64>().ok())
            .map(|kb| kb * 1024)
    };
    Some((field("VmRSS:")?, field("VmHWM:")?, field("RssAnon:")?))
}

fn node_name(i: usize) -> String {
    format!("sim-{i:04}")
}

fn namespace_of(i: usize, per_ns: usize) -> String {
    format!("bench-{:03}", i / per_ns.max(1))
}

/// One simulated agent: dial, Hello, then answer every Assign until the stream ends.
async fn run_agent(
    endpoint: Endpoint,
    node: String,
    shared: Arc<Shared>,
    action_delay: Duration,
    ready: tokio::sync::oneshot::Sender<anyhow::Result<()>>,
) {
    let channel = match endpoint.connect().await {
        Ok(channel) => channel,
        Err(err) => {
            let _ = ready.send(Err(anyhow::anyhow!("agent {node}: connecting: {err}")));
            return;
        }
    };
    let (tx, rx) = mpsc::channel::<AgentMessage>(1024);
    let hello = AgentMessage {
        msg: Some(agent_message::Msg::Hello(Hello {
            node_name: node.clone(),
            version: env!("CARGO_PKG_VERSION").into(),
            actions: Vec::new(),
            capabilities: ["exec", "job", "repo-check", "delete-path", "put-object"]
                .map(String::from)
                .to_vec(),
        })),
    };
    let _ = tx.try_send(hello);
    let mut client = AgentServiceClient::new(channel);
    let mut inbound = match client.session(ReceiverStream::new(rx)).await {
        Ok(response) => response.into_inner(),
        Err(status) => {
            let _ = ready.send(Err(anyhow::anyhow!(
                "agent {node}: session refused: {status}"
            )));
            return;
        }
    };
    match inbound.message().await {
        Ok(Some(msg)) if matches!(msg.msg, Some(control_message::Msg::Welcome(_))) => {}
        other => {
            let _ = ready.send(Err(anyhow::anyhow!(
                "agent {node}: expected Welcome, got {other:?}"
            )));
            return;
        }
    }
    shared.connected.fetch_add(1, Ordering::Relaxed);
    let _ = ready.send(Ok(()));
    let mut heartbeat = tokio::time::interval(Duration::from_secs(5));
    loop {
        tokio::select! {
            _ = heartbeat.tick() => {
                let beat = AgentMessage {
                    msg: Some(agent_message::Msg::Heartbeat(Heartbeat {
                        sent_at: jiff::Timestamp::now().to_string(),
                    })),
                };
                if tx.send(beat).await.is_err() {
                    break;
                }
            }
            message = inbound.message() => {
                let msg = match message {
                    Ok(Some(msg)) => msg,
                    Ok(None) | Err(_) => break,
                };
                match msg.msg {
                    Some(control_message::Msg::Assign(assign)) => {
                        let now = Instant::now();
                        shared.assigns.fetch_add(1, Ordering::Relaxed);
                        let Some(action) = assign.action else { continue };
                        if let Some(owner) = &action.owner
                            && owner.kind == "Backup"
                        {
                            shared.lock().assigned.entry(owner.name.clone()).or_insert(now);
                        }
                        let accepted = AgentMessage {
                            msg: Some(agent_message::Msg::Accepted(
                                cairn_proto::agent::v1::Accepted {
                                    action_id: action.id.clone(),
                                    already_known: false,
                                },
                            )),
                        };
                        let started = jiff::Timestamp::now().to_string();
                        let result = AgentMessage {
                            msg: Some(agent_message::Msg::Result(ResultMsg {
                                state: Some(ActionState {
                                    action_id: action.id.clone(),
                                    phase: ActionPhase::Succeeded as i32,
                                    started_at: started,
                                    finished_at: jiff::Timestamp::now().to_string(),
                                    exit_code: -1,
                                    owner: action.owner.clone(),
                                    ..ActionState::default()
                                }),
                            })),
                        };
                        let tx = tx.clone();
                        tokio::spawn(async move {
                            if tx.send(accepted).await.is_err() {
                                return;
                            }
                            if !action_delay.is_zero() {
                                tokio::time::sleep(action_delay).await;
                            }
                            let _ = tx.send(result).await;
                        });
                    }
                    Some(control_message::Msg::ResultAck(_)) => {
                        shared.results_acked.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {}
                }
            }
        }
    }
    shared.connected.fetch_sub(1, Ordering::Relaxed);
    shared.disconnects.fetch_add(1, Ordering::Relaxed);
    eprintln!("agent {node}: session ended");
}

async fn watch_backups(api: Api<Backup>, shared: Arc<Shared>) {
    let mut events = std::pin::pin!(watcher(api, watcher::Config::default()));
    while let Some(event) = events.next().await {
        let now = Instant::now();
        match event {
            Ok(watcher::Event::Apply(backup) | watcher::Event::InitApply(backup)) => {
                let name = backup.metadata.name.clone().unwrap_or_default();
                let status = backup.status.unwrap_or_default();
                let mut seen = shared.lock();
                match status.phase {
                    Some(BackupPhase::Completed) => {
                        seen.completed.entry(name).or_insert(now);
                    }
                    Some(BackupPhase::Failed) => {
                        seen.failed
                            .entry(name)
                            .or_insert(status.failure_reason.unwrap_or_default());
                    }
                    _ => continue,
                }
            }
            Ok(watcher::Event::Delete(_)) => shared.lock().deleted += 1,
            _ => continue,
        }
        shared.changed.notify_waiters();
    }
}

/// Waits until `done` holds, waking on every watch event, for at most `timeout`.
async fn wait_until(
    shared: &Shared,
    timeout: Duration,
    mut done: impl FnMut(&Seen) -> bool,
) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let notified = shared.changed.notified();
        if done(&shared.lock()) {
            return true;
        }
        let tick = tokio::time::Instant::now() + Duration::from_secs(1);
        if tokio::time::timeout_at(tick.min(deadline), notified)
            .await
            .is_err()
            && tokio::time::Instant::now() >= deadline
        {
            return done(&shared.lock());
        }
    }
}

/// Total of `cairn_reconciles_total` over kinds.
/// Reconciles by kind so far from a `/metrics` text: kind → (count, seconds spent).
fn reconcile_times(text: &str) -> HashMap<String, (f64, f64)> {
    let mut by_kind: HashMap<String, (f64, f64)> = HashMap::new();
    for line in text.lines() {
        let (counted, rest) =
            if let Some(rest) = line.strip_prefix("cairn_reconcile_duration_seconds_count{") {
                (true, rest)
            } else if let Some(rest) = line.strip_prefix("cairn_reconcile_duration_seconds_sum{") {
                (false, rest)
            } else {
                continue;
            };
        let Some(kind) = rest
            .split_once("kind=\"")
            .and_then(|(_, k)| k.split('"').next())
        else {
            continue;
        };
        let Some(value) = rest.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()) else {
            continue;
        };
        let entry = by_kind.entry(kind.to_owned()).or_default();
        if counted {
            entry.0 += value;
        } else {
            entry.1 += value;
        }
    }
    by_kind
}

fn reconciles(text: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with("cairn_reconciles_total"))
        .filter_map(|l| l.rsplit(' ').next())
        .filter_map(|v| v.parse::<f64>().ok())
        .sum()
}

/// Requests by the control plane so far, from localkube's `GET /debug/requests`; `None` when
/// this localkube does not count requests.
async fn api_requests(client: &kube::Client) -> Option<(f64, Vec<(String, f64)>)> {
    let request = http::Request::get("/debug/requests")
        .body(Vec::new())
        .ok()?;
    let text = client.request_text(request).await.ok()?;
    let value: serde_json::Value = serde_json::from_str(&text).ok()?;
    let mut total = 0.0;
    let mut by_kind: HashMap<String, f64> = HashMap::new();
    for row in value.get("requests")?.as_array()? {
        let agent = row.get("userAgent").and_then(|v| v.as_str()).unwrap_or("");
        if agent == BENCH_USER_AGENT {
            continue;
        }
        let count = row.get("count").and_then(|v| v.as_f64()).unwrap_or(0.0);
        total += count;
        let key = format!(
            "{} {}",
            row.get("verb").and_then(|v| v.as_str()).unwrap_or(""),
            row.get("resource").and_then(|v| v.as_str()).unwrap_or("")
        );
        *by_kind.entry(key).or_default() += count;
    }
    let mut by_kind: Vec<(String, f64)> = by_kind.into_iter().collect();
    by_kind.sort_by(|a, b| b.1.total_cmp(&a.1));
    Some((total, by_kind))
}

/// What one scenario measured.
#[derive(Debug, Default, Clone)]
struct Outcome {
    agents: usize,
    backups: usize,
    connect: Duration,
    dispatch: Vec<Duration>,
    completed: Vec<Duration>,
    failed: usize,
    missing: usize,
    peak_rss: u64,
    rss_before: Memory,
    rss_loaded: Memory,
    rss_after: Option<Memory>,
    api_per_s: Option<f64>,
    api_per_backup: Option<f64>,
    api_top: Vec<(String, f64)>,
    reconciles_per_s: f64,
    /// Reconciles at steady state by kind: (kind, reconciles, seconds spent in them).
    reconcile_kinds: Vec<(String, f64, f64)>,
    disconnects: u64,
    deleted: Option<usize>,
    elapsed: Duration,
}

struct Scenario {
    _dir: tempfile::TempDir,
    data: PathBuf,
    localkube: Child,
    /// The control plane, or the wrapper that runs it (see [`WRAPPER_ENV`]).
    control_plane: Child,
    /// The control plane's own process (under a wrapper, not the wrapper's).
    control_plane_pid: u32,
    /// The control plane runs under [`WRAPPER_ENV`].
    wrapped: bool,
    client: kube::Client,
    health: SocketAddr,
}

/// A kube client that names itself [`BENCH_USER_AGENT`].
async fn bench_client(kubeconfig: &Path) -> anyhow::Result<kube::Client> {
    let file = kube::config::Kubeconfig::read_from(kubeconfig)
        .with_context(|| format!("reading {}", kubeconfig.display()))?;
    let mut config = kube::Config::from_custom_kubeconfig(file, &Default::default())
        .await
        .context("loading the kubeconfig")?;
    config.headers.push((
        http::header::USER_AGENT,
        http::HeaderValue::from_static(BENCH_USER_AGENT),
    ));
    kube::Client::try_from(config).context("creating the Kubernetes client")
}

async fn start(bin_dir: &Path, localkube: &Path, keep: bool) -> anyhow::Result<Scenario> {
    let dir = tempfile::Builder::new()
        .prefix("cairn-bench-scale-")
        .disable_cleanup(keep)
        .tempdir()
        .context("creating a data directory")?;
    let data = dir.path().to_path_buf();
    for sub in ["kube", "tls", "repo", "logs"] {
        std::fs::create_dir_all(data.join(sub))?;
    }
    eprintln!("data directory {}", data.display());
    let api_addr = SocketAddr::from(([127, 0, 0, 1], free_port()?));
    let mut localkube = Child::spawn(
        "localkube",
        localkube,
        &[
            "--data-dir".into(),
            data.join("kube").display().to_string(),
            "--listen".into(),
            api_addr.to_string(),
            "--node-name".into(),
            "bench-host".into(),
        ],
        &[("RUST_LOG", log_filter())],
        &data.join("logs/localkube.log"),
    )?;
    let kubeconfig = data.join("kube/kubeconfig");
    let deadline = Instant::now() + Duration::from_secs(60);
    let client = loop {
        localkube.check_alive()?;
        if kubeconfig.is_file()
            && let Ok(client) = bench_client(&kubeconfig).await
            && client.apiserver_version().await.is_ok()
        {
            break client;
        }
        if Instant::now() > deadline {
            bail!("localkube did not answer within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    install_crds(&client).await?;
    let tls_dir = data.join("tls");
    cairn_certs::ensure::ensure_server_cert(
        &tls_dir,
        &["localhost".to_string(), "127.0.0.1".to_string()],
    )
    .context("creating the control plane's certificate")?;
    let agent_addr = SocketAddr::from(([127, 0, 0, 1], free_port()?));
    let health = SocketAddr::from(([127, 0, 0, 1], free_port()?));
    let program = bin_dir.join("cairn-control-plane");
    let mut args = vec![
        "--tls-dir".into(),
        tls_dir.display().to_string(),
        "--agent-listen".into(),
        agent_addr.to_string(),
        "--health-listen".into(),
        health.to_string(),
        "--leader-elect=false".into(),
    ];
    let wrapper = control_plane_wrapper();
    let launcher = match &wrapper {
        Some(words) => {
            let mut wrapped: Vec<String> = words[1..].to_vec();
            wrapped.push(program.display().to_string());
            wrapped.append(&mut args);
            args = wrapped;
            eprintln!("control plane wrapped in: {}", words.join(" "));
            PathBuf::from(&words[0])
        }
        None => program,
    };
    let mut control_plane = Child::spawn(
        "cairn-control-plane",
        &launcher,
        &args,
        &[
            ("KUBECONFIG", kubeconfig.display().to_string()),
            ("RUST_LOG", log_filter()),
        ],
        &data.join("logs/control-plane.log"),
    )?;
    let launched = control_plane
        .pid()
        .context("the control plane is not running")?;
    let control_plane_pid = if wrapper.is_some() {
        wrapped_pid(&mut control_plane, launched).await?
    } else {
        launched
    };
    std::fs::write(data.join("agent-addr"), agent_addr.to_string())?;
    Ok(Scenario {
        _dir: dir,
        data,
        localkube,
        control_plane,
        control_plane_pid,
        wrapped: wrapper.is_some(),
        client,
        health,
    })
}

/// The words of [`WRAPPER_ENV`], when set and not blank.
fn control_plane_wrapper() -> Option<Vec<String>> {
    let value = std::env::var(WRAPPER_ENV).ok()?;
    let words: Vec<String> = value.split_whitespace().map(String::from).collect();
    (!words.is_empty()).then_some(words)
}

/// The processes whose parent is `pid`.
fn children_of(pid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|child| {
            std::fs::read_to_string(format!("/proc/{child}/stat"))
                .ok()
                // The command name (field 2) may hold spaces: the parent is the 2nd field
                // after its closing parenthesis.
                .and_then(|stat| {
                    let rest = stat.rsplit_once(')')?.1;
                    rest.split_whitespace().nth(1)?.parse::<u32>().ok()
                })
                == Some(pid)
        })
        .collect()
}

/// The `cairn-control-plane` process a wrapper (e.g. `heaptrack`) started, among the
/// descendants of `launched`.
async fn wrapped_pid(child: &mut Child, launched: u32) -> anyhow::Result<u32> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        child.check_alive()?;
        let mut queue = vec![launched];
        while let Some(pid) = queue.pop() {
            let exe = std::fs::read_link(format!("/proc/{pid}/exe")).ok();
            if exe
                .as_deref()
                .and_then(Path::file_name)
                .is_some_and(|name| name == "cairn-control-plane")
            {
                return Ok(pid);
            }
            queue.extend(children_of(pid));
        }
        if Instant::now() > deadline {
            bail!("no cairn-control-plane process under the wrapper ({WRAPPER_ENV}) within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Nodes, namespaces, Running pods (one per node), one BackupPolicy per pod, the ActionSet.
async fn setup(client: &kube::Client, agents: usize, per_ns: usize) -> anyhow::Result<()> {
    let nodes: Api<Node> = Api::all(client.clone());
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let actionsets: Api<cairn_api::actionset::ActionSet> = Api::all(client.clone());
    actionsets
        .create(
            &PostParams::default(),
            &object(json!({
                "apiVersion": "dataprotection.kubeblocks.io/v1alpha1",
                "kind": "ActionSet",
                "metadata": {"name": "noop"},
                "spec": {
                    "backupType": "Full",
                    "backup": {"backupData": {
                        "image": "busybox",
                        "runOnTargetPodNode": false,
                        "command": ["sh", "-c", "true"]
                    }}
                }
            }))?,
        )
        .await
        .context("creating ActionSet noop")?;
    let mut made_ns = std::collections::BTreeSet::new();
    let ready = Arc::new(Semaphore::new(16));
    let mut tasks = Vec::new();
    for i in 0..agents {
        let ns = namespace_of(i, per_ns);
        if made_ns.insert(ns.clone()) {
            namespaces
                .create(
                    &PostParams::default(),
                    &object(json!({"metadata": {"name": ns}}))?,
                )
                .await
                .with_context(|| format!("creating namespace {ns}"))?;
        }
        let client = client.clone();
        let nodes = nodes.clone();
        let permit = ready.clone().acquire_owned().await?;
        tasks.push(tokio::spawn(async move {
            let _permit = permit;
            let node = node_name(i);
            nodes
                .create(
                    &PostParams::default(),
                    &object(json!({
                        "metadata": {"name": node, "labels": {"kubernetes.io/hostname": node}},
                        "status": {"conditions": [{"type": "Ready", "status": "True"}]}
                    }))?,
                )
                .await
                .with_context(|| format!("creating Node {node}"))?;
            let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
            let pod = format!("db-{i:04}");
            pods.create(
                &PostParams::default(),
                &object(json!({
                    "metadata": {"name": pod, "labels": {"app": "db", NODE_LABEL: node}},
                    "spec": {
                        "nodeName": node,
                        "containers": [{"name": "main", "image": "busybox"}]
                    }
                }))?,
            )
            .await
            .with_context(|| format!("creating pod {ns}/{pod}"))?;
            let now = jiff::Timestamp::now().to_string();
            pods.patch_status(
                &pod,
                &PatchParams::default(),
                &Patch::Merge(json!({"status": {
                    "phase": "Running",
                    "podIP": "10.0.0.1",
                    "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": now}],
                    "containerStatuses": [{"name": "main", "image": "busybox", "imageID": "",
                        "ready": true, "restartCount": 0, "started": true,
                        "state": {"running": {"startedAt": now}}}]
                }})),
            )
            .await
            .with_context(|| format!("marking pod {ns}/{pod} Running"))?;
            let policies: Api<cairn_api::backup_policy::BackupPolicy> =
                Api::namespaced(client.clone(), &ns);
            policies
                .create(
                    &PostParams::default(),
                    &object(json!({
                        "apiVersion": "dataprotection.kubeblocks.io/v1alpha1",
                        "kind": "BackupPolicy",
                        "metadata": {"name": pod, "namespace": ns},
                        "spec": {
                            "target": {"podSelector": {
                                "matchLabels": {"app": "db", NODE_LABEL: node},
                                "strategy": "Any"
                            }},
                            "backupMethods": [{"name": "noop", "actionSetName": "noop"}]
                        }
                    }))?,
                )
                .await
                .with_context(|| format!("creating BackupPolicy {ns}/{pod}"))?;
            anyhow::Ok(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    Ok(())
}

/// Connects `agents` simulated agents with certificates from the CA in `tls_dir`.
async fn connect_agents(
    tls_dir: &Path,
    agent_addr: &str,
    agents: usize,
    shared: &Arc<Shared>,
    action_delay: Duration,
) -> anyhow::Result<Vec<tokio::task::JoinHandle<()>>> {
    let ca = Ca::load(tls_dir).context("loading the CA")?;
    let ca_pem = std::fs::read_to_string(tls_dir.join("ca.pem")).context("reading ca.pem")?;
    let limit = Arc::new(Semaphore::new(32));
    let mut handles = Vec::new();
    let mut waits = Vec::new();
    for i in 0..agents {
        let node = node_name(i);
        let cert = ca
            .issue_agent(&node, Validity::days(2))
            .with_context(|| format!("issuing the certificate of {node}"))?;
        let tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&ca_pem))
            .identity(Identity::from_pem(&cert.cert_pem, &cert.key_pem))
            .domain_name("localhost");
        let endpoint = Endpoint::from_shared(format!("https://{agent_addr}"))?
            .tls_config(tls)?
            .connect_timeout(Duration::from_secs(30))
            .tcp_nodelay(true);
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let permit = limit.clone().acquire_owned().await?;
        handles.push(tokio::spawn(run_agent(
            endpoint,
            node,
            shared.clone(),
            action_delay,
            ready_tx,
        )));
        waits.push(tokio::spawn(async move {
            let outcome = ready_rx.await;
            drop(permit);
            outcome
        }));
    }
    for wait in waits {
        wait.await?.context("an agent task ended early")??;
    }
    Ok(handles)
}

fn backup(name: &str, ns: &str, policy: &str) -> anyhow::Result<Backup> {
    object(json!({
        "apiVersion": "dataprotection.kubeblocks.io/v1alpha1",
        "kind": "Backup",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"backupPolicyName": policy, "backupMethod": "noop", "deletionPolicy": "Delete"}
    }))
}

/// Creates `names` at `rate` per second; calls `at(i)` before each create.
async fn create_backups(
    client: &kube::Client,
    shared: &Arc<Shared>,
    names: &[(String, String, String)],
    rate: f64,
    mut at: impl AsyncFnMut(usize),
) -> anyhow::Result<()> {
    let limit = Arc::new(Semaphore::new(32));
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / rate.max(0.1)));
    let mut tasks = Vec::new();
    for (i, (name, ns, policy)) in names.iter().enumerate() {
        ticker.tick().await;
        at(i).await;
        let permit = limit.clone().acquire_owned().await?;
        let api: Api<Backup> = Api::namespaced(client.clone(), ns);
        let body = backup(name, ns, policy)?;
        let shared = shared.clone();
        let name = name.clone();
        tasks.push(tokio::spawn(async move {
            let _permit = permit;
            shared.lock().created.insert(name.clone(), Instant::now());
            api.create(&PostParams::default(), &body)
                .await
                .with_context(|| format!("creating Backup {name}"))
                .map(|_| ())
        }));
    }
    for task in tasks {
        task.await??;
    }
    Ok(())
}

/// Deletes `names` at `rate` per second.
async fn delete_backups(
    client: &kube::Client,
    names: &[(String, String, String)],
    rate: f64,
) -> anyhow::Result<()> {
    let limit = Arc::new(Semaphore::new(32));
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / rate.max(0.1)));
    let mut tasks = Vec::new();
    for (name, ns, _) in names {
        ticker.tick().await;
        let permit = limit.clone().acquire_owned().await?;
        let api: Api<Backup> = Api::namespaced(client.clone(), ns);
        let name = name.clone();
        tasks.push(tokio::spawn(async move {
            let _permit = permit;
            api.delete(&name, &DeleteParams::default())
                .await
                .with_context(|| format!("deleting Backup {name}"))
                .map(|_| ())
        }));
    }
    for task in tasks {
        task.await??;
    }
    Ok(())
}

/// Samples the control plane's RSS every 250 ms while it runs.
fn sample_rss(
    pid: u32,
    samples: Arc<Mutex<Vec<(Instant, u64, u64)>>>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            if let Some((now, peak, _)) = rss(pid) {
                samples
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push((Instant::now(), now, peak));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    })
}

/// A process's memory after it has been idle for a while: the lowest of a few samples.
///
/// `anon` (`RssAnon`) is the memory the process allocated (heap, stacks); `rss` adds the pages
/// of its executable and libraries read from disk, which grow as code runs for the first time
/// (a debug build's binary is large) and which the kernel can drop at any time. `heap` and
/// `allocator_resident` are the control plane's allocator's own account (jemalloc's
/// `stats.allocated`, the live heap, and `stats.resident`, its pages in RAM including freed
/// ones not yet returned), from `cairn_allocator_bytes` on `/metrics` (`None` from a control
/// plane that does not report them).
#[derive(Debug, Default, Clone, Copy)]
struct Memory {
    rss: u64,
    anon: u64,
    heap: Option<u64>,
    allocator_resident: Option<u64>,
}

impl Memory {
    /// E.g. `105.4 MiB (anon 98.0 MiB, heap 40.2 MiB, allocator resident 60.1 MiB)`.
    fn describe(&self) -> String {
        let mut parts = vec![format!("anon {}", mib(self.anon))];
        if let Some(heap) = self.heap {
            parts.push(format!("heap {}", mib(heap)));
        }
        if let Some(resident) = self.allocator_resident {
            parts.push(format!("allocator resident {}", mib(resident)));
        }
        format!("{} ({})", mib(self.rss), parts.join(", "))
    }
}

/// `cairn_allocator_bytes{state="<state>"}` in a `/metrics` text.
fn allocator_bytes(text: &str, state: &str) -> Option<u64> {
    let prefix = format!("cairn_allocator_bytes{{state=\"{state}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .and_then(|v| v.trim().parse::<u64>().ok())
}

async fn settled_rss(pid: u32, health: SocketAddr) -> Memory {
    tokio::time::sleep(Duration::from_secs(5)).await;
    let mut low = Memory {
        rss: u64::MAX,
        anon: u64::MAX,
        ..Memory::default()
    };
    for _ in 0..10 {
        if let Some((now, _, anon)) = rss(pid) {
            low.rss = low.rss.min(now);
            low.anon = low.anon.min(anon);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    if let Some(text) = metrics(health).await {
        low.heap = allocator_bytes(&text, "allocated");
        low.allocator_resident = allocator_bytes(&text, "resident");
    }
    low
}

async fn run_scenario(args: &Args, agents: usize, backups: usize) -> anyhow::Result<Outcome> {
    let begun = Instant::now();
    let bin_dir = match &args.bin_dir {
        Some(dir) => dir.clone(),
        None => cairn_cli::standalone::default_bin_dir()?,
    };
    eprintln!("== {agents} agents, {backups} backups");
    let localkube = args
        .localkube
        .clone()
        .unwrap_or_else(|| bin_dir.join("localkube"));
    let mut scenario = start(&bin_dir, &localkube, args.keep).await?;
    let client = scenario.client.clone();
    setup(&client, agents, args.pods_per_namespace).await?;
    let pid = scenario.control_plane_pid;
    let samples = Arc::new(Mutex::new(Vec::new()));
    let sampler = sample_rss(pid, samples.clone());

    let shared = Arc::new(Shared {
        seen: Mutex::new(Seen::default()),
        changed: Notify::new(),
        assigns: AtomicU64::new(0),
        results_acked: AtomicU64::new(0),
        disconnects: AtomicU64::new(0),
        connected: AtomicUsize::new(0),
    });
    let agent_addr = std::fs::read_to_string(scenario.data.join("agent-addr"))?;
    // The control plane needs a moment to listen.
    let deadline = Instant::now() + Duration::from_secs(60);
    while metrics(scenario.health).await.is_none() {
        scenario.control_plane.check_alive()?;
        if Instant::now() > deadline {
            bail!("the control plane did not serve /metrics within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let connecting = Instant::now();
    let agent_tasks = connect_agents(
        &scenario.data.join("tls"),
        &agent_addr,
        agents,
        &shared,
        Duration::from_millis(args.action_ms),
    )
    .await?;
    let connect = connecting.elapsed();
    eprintln!("{agents} agents connected in {connect:?}");
    manifests::install_local_repository(&client, &scenario.data.join("repo")).await?;
    let watch = tokio::spawn(watch_backups(Api::all(client.clone()), shared.clone()));

    let per_ns = args.pods_per_namespace;
    let names = |prefix: &str, count: usize| -> Vec<(String, String, String)> {
        (0..count)
            .map(|k| {
                let pod = k % agents;
                (
                    format!("{prefix}-{k:05}"),
                    namespace_of(pod, per_ns),
                    format!("db-{pod:04}"),
                )
            })
            .collect()
    };

    // Warm-up: connections, caches and allocator arenas settle before the starting RSS.
    let warm = names("warm", args.warmup.max(agents));
    if !warm.is_empty() {
        create_backups(&client, &shared, &warm, args.rate, async |_| {}).await?;
        let warm_names: Vec<String> = warm.iter().map(|w| w.0.clone()).collect();
        if !wait_until(&shared, Duration::from_secs(300), |s| {
            warm_names
                .iter()
                .all(|n| s.completed.contains_key(n) || s.failed.contains_key(n))
        })
        .await
        {
            bail!("the warm-up backups did not finish within 300 s");
        }
        if !args.no_soak {
            delete_backups(&client, &warm, args.rate).await?;
            let want = warm.len();
            if !wait_until(&shared, Duration::from_secs(300), |s| s.deleted >= want).await {
                bail!("the warm-up backups were not deleted within 300 s");
            }
        }
    }
    let rss_before = settled_rss(pid, scenario.health).await;
    eprintln!("starting RSS {}", rss_before.describe());

    let list = names("b", backups);
    let first = backups / 5;
    let last = backups * 4 / 5;
    let mut window: Vec<WindowMark> = Vec::new();
    eprintln!("creating {backups} backups at {}/s", args.rate);
    let health = scenario.health;
    create_backups(&client, &shared, &list, args.rate, async |i| {
        if i == first || i == last {
            let api = api_requests(&client).await;
            let text = metrics(health).await;
            let rec = text.as_deref().map(reconciles).unwrap_or(0.0);
            let times = text.as_deref().map(reconcile_times).unwrap_or_default();
            window.push((Instant::now(), api, rec, times));
        }
    })
    .await?;
    let all: Vec<String> = list.iter().map(|l| l.0.clone()).collect();
    let finish_budget = Duration::from_secs(300 + backups as u64 / 10);
    let finished = wait_until(&shared, finish_budget, |s| {
        all.iter()
            .all(|n| s.completed.contains_key(n) || s.failed.contains_key(n))
    })
    .await;
    if !finished {
        eprintln!("not every backup finished within {finish_budget:?}");
    }
    let rss_loaded = settled_rss(pid, scenario.health).await;

    let mut outcome = Outcome {
        agents,
        backups,
        connect,
        rss_before,
        rss_loaded,
        ..Outcome::default()
    };
    {
        let seen = shared.lock();
        for name in &all {
            let Some(created) = seen.created.get(name) else {
                continue;
            };
            if let Some(at) = seen.assigned.get(name) {
                outcome
                    .dispatch
                    .push(at.saturating_duration_since(*created));
            }
            match (seen.completed.get(name), seen.failed.get(name)) {
                (Some(at), _) => outcome
                    .completed
                    .push(at.saturating_duration_since(*created)),
                (None, Some(reason)) => {
                    if outcome.failed == 0 {
                        eprintln!("Backup {name} failed: {reason}");
                    }
                    outcome.failed += 1;
                }
                (None, None) => outcome.missing += 1,
            }
        }
    }
    outcome.dispatch.sort();
    outcome.completed.sort();
    if let [(t0, a0, r0, k0), (t1, a1, r1, k1)] = window.as_slice() {
        let seconds = (*t1 - *t0).as_secs_f64().max(0.001);
        outcome.reconciles_per_s = (r1 - r0) / seconds;
        let mut kinds: Vec<(String, f64, f64)> = k1
            .iter()
            .map(|(kind, (n1, s1))| {
                let (n0, s0) = k0.get(kind).copied().unwrap_or_default();
                (kind.clone(), n1 - n0, s1 - s0)
            })
            .filter(|(_, n, _)| *n > 0.0)
            .collect();
        kinds.sort_by(|a, b| b.2.total_cmp(&a.2));
        outcome.reconcile_kinds = kinds;
        if let (Some((a0, _)), Some((a1, top))) = (a0, a1) {
            outcome.api_per_s = Some((a1 - a0) / seconds);
            outcome.api_per_backup = Some((a1 - a0) / (last - first).max(1) as f64);
            outcome.api_top = top.iter().take(8).cloned().collect();
        }
    }

    if !args.no_soak {
        eprintln!("deleting {backups} backups at {}/s", args.rate);
        let before = shared.lock().deleted;
        delete_backups(&client, &list, args.rate).await?;
        let want = before + list.len();
        let gone = wait_until(&shared, finish_budget, |s| s.deleted >= want).await;
        let deleted = shared.lock().deleted - before;
        if !gone {
            eprintln!("only {deleted} of {backups} backups were deleted in time");
        }
        outcome.deleted = Some(deleted);
        outcome.rss_after = Some(settled_rss(pid, scenario.health).await);
    }
    if args.hold > 0 {
        eprintln!(
            "holding the stack for {} s: control plane pid {pid}, anonymous RSS {}",
            args.hold,
            mib(rss(pid).map(|r| r.2).unwrap_or(0))
        );
        tokio::time::sleep(Duration::from_secs(args.hold)).await;
    }
    outcome.peak_rss = rss(pid).map(|r| r.1).unwrap_or(0);
    outcome.disconnects = shared.disconnects.load(Ordering::Relaxed);
    outcome.elapsed = begun.elapsed();
    scenario.control_plane.check_alive()?;
    scenario.localkube.check_alive()?;

    sampler.abort();
    watch.abort();
    for task in agent_tasks {
        task.abort();
    }
    let samples = samples
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    if let Ok(mut file) = std::fs::File::create(scenario.data.join("rss.csv")) {
        use std::io::Write;
        let t0 = samples.first().map(|s| s.0).unwrap_or_else(Instant::now);
        for (at, now, peak) in &samples {
            let _ = writeln!(file, "{:.2},{now},{peak}", (*at - t0).as_secs_f64());
        }
    }
    if scenario.wrapped {
        // The live heap at this instant is what a profiler under the wrapper reports as leaked.
        if let Ok(pid) = i32::try_from(pid) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let deadline = Instant::now() + Duration::from_secs(600);
        while scenario.control_plane.check_alive().is_ok() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        eprintln!(
            "the wrapped control plane was killed; the wrapper's output is in {}",
            scenario.control_plane.log_path().display()
        );
    }
    scenario
        .control_plane
        .terminate(Duration::from_secs(10))
        .await;
    scenario.localkube.terminate(Duration::from_secs(30)).await;
    Ok(outcome)
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / MIB)
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "MISSED" }
}

fn print_table(outcomes: &[Outcome], load: &str, bin_dir: &Path) {
    println!();
    println!(
        "Control plane at scale (binaries in {}; machine load average at the end: {load})",
        bin_dir.display()
    );
    println!(
        "{:<22} {:<34} {:>14} {:>14} {:>8}",
        "scenario", "metric", "value", "target", ""
    );
    for o in outcomes {
        let scenario = format!("{} agents/{} backups", o.agents, o.backups);
        let line = |metric: &str, value: String, target: &str, met: Option<bool>| {
            println!(
                "{:<22} {:<34} {:>14} {:>14} {:>8}",
                scenario,
                metric,
                value,
                target,
                met.map(verdict).unwrap_or("")
            );
        };
        line(
            "agents connected in",
            format!("{:.1} s", o.connect.as_secs_f64()),
            "",
            None,
        );
        line(
            "control plane peak RSS (VmHWM)",
            mib(o.peak_rss),
            "<= 512 MiB",
            Some(o.peak_rss <= 512 * 1024 * 1024),
        );
        let d99 = percentile(&o.dispatch, 99.0);
        line("dispatch p50", ms(percentile(&o.dispatch, 50.0)), "", None);
        line(
            "dispatch p99",
            ms(d99),
            "<= 200 ms",
            Some(d99 <= Duration::from_millis(200)),
        );
        line(
            "create → Completed p50",
            ms(percentile(&o.completed, 50.0)),
            "",
            None,
        );
        line(
            "create → Completed p99",
            ms(percentile(&o.completed, 99.0)),
            "",
            None,
        );
        line(
            "backups Completed / Failed / lost",
            format!("{}/{}/{}", o.completed.len(), o.failed, o.missing),
            &format!("{}/0/0", o.backups),
            Some(o.completed.len() == o.backups),
        );
        line(
            "API requests/s (steady state)",
            o.api_per_s
                .map(|r| format!("{r:.0}"))
                .unwrap_or_else(|| "n/a".into()),
            "",
            None,
        );
        line(
            "API requests per backup",
            o.api_per_backup
                .map(|r| format!("{r:.1}"))
                .unwrap_or_else(|| "n/a".into()),
            "",
            None,
        );
        line(
            "reconciles/s (steady state)",
            format!("{:.0}", o.reconciles_per_s),
            "",
            None,
        );
        for (metric, memory) in [
            ("RSS before (after warm-up)", o.rss_before),
            ("RSS with all backups Completed", o.rss_loaded),
        ] {
            line(metric, memory.describe(), "", None);
        }
        if let Some(after) = o.rss_after {
            let growth = |after: u64, before: u64| after as f64 / before.max(1) as f64 - 1.0;
            let all_deleted = o.deleted == Some(o.backups);
            line(
                "RSS after all deleted (soak)",
                format!(
                    "{} ({:+.1} %)",
                    mib(after.rss),
                    growth(after.rss, o.rss_before.rss) * 100.0
                ),
                "",
                None,
            );
            if let (Some(before), Some(heap)) = (o.rss_before.heap, after.heap) {
                line(
                    "live heap after all deleted",
                    format!("{} ({:+.1} %)", mib(heap), growth(heap, before) * 100.0),
                    "",
                    None,
                );
            }
            if let Some(resident) = after.allocator_resident {
                line("allocator resident after", mib(resident), "", None);
            }
            let anon = growth(after.anon, o.rss_before.anon);
            line(
                "anonymous RSS after all deleted",
                format!("{} ({:+.1} %)", mib(after.anon), anon * 100.0),
                "within 10 %",
                Some(anon.abs() <= 0.10 && all_deleted),
            );
        }
        line(
            "agent sessions lost",
            o.disconnects.to_string(),
            "0",
            Some(o.disconnects == 0),
        );
        line(
            "scenario wall time",
            format!("{:.0} s", o.elapsed.as_secs_f64()),
            "",
            None,
        );
    }
    for o in outcomes {
        if !o.reconcile_kinds.is_empty() {
            let kinds: Vec<String> = o
                .reconcile_kinds
                .iter()
                .map(|(kind, n, secs)| {
                    format!(
                        "{kind} {n:.0} (mean {:.1} ms, {secs:.1} s)",
                        secs * 1000.0 / n.max(1.0)
                    )
                })
                .collect();
            println!(
                "Reconciles at steady state, {} agents/{} backups: {}",
                o.agents,
                o.backups,
                kinds.join(", ")
            );
        }
        if !o.api_top.is_empty() {
            let top: Vec<String> = o
                .api_top
                .iter()
                .map(|(k, v)| format!("{k} {v:.0}"))
                .collect();
            println!(
                "API requests of the control plane at the end, {} agents/{} backups: {}",
                o.agents,
                o.backups,
                top.join(", ")
            );
        }
    }
    let find = |a: usize, b: usize| outcomes.iter().find(|o| o.agents == a && o.backups == b);
    let growth = |from: &Outcome, to: &Outcome, what: &str| {
        let ratio = |x: f64, y: f64| {
            if x > 0.0 {
                format!("{:.2}×", y / x)
            } else {
                "-".into()
            }
        };
        println!(
            "{what}: peak RSS {}, dispatch p99 {}, create → Completed p99 {}, API requests/s {}",
            ratio(from.peak_rss as f64, to.peak_rss as f64),
            ratio(
                percentile(&from.dispatch, 99.0).as_secs_f64(),
                percentile(&to.dispatch, 99.0).as_secs_f64()
            ),
            ratio(
                percentile(&from.completed, 99.0).as_secs_f64(),
                percentile(&to.completed, 99.0).as_secs_f64()
            ),
            ratio(from.api_per_s.unwrap_or(0.0), to.api_per_s.unwrap_or(0.0)),
        );
    };
    if let (Some(a), Some(b)) = (find(100, 1000), find(1000, 1000)) {
        growth(a, b, "100 → 1,000 agents (1,000 backups)");
    }
    if let (Some(a), Some(b)) = (find(1000, 1000), find(1000, 10000)) {
        growth(a, b, "1,000 → 10,000 backups (1,000 agents)");
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let scenarios: Vec<(usize, usize)> = if args.matrix {
        vec![(100, 1000), (1000, 1000), (1000, 10000)]
    } else {
        vec![(args.agents, args.backups)]
    };
    let mut outcomes = Vec::new();
    for (agents, backups) in scenarios {
        let outcome = run_scenario(&args, agents, backups).await?;
        eprintln!(
            "done: {} completed, {} failed, {} lost in {:.0} s",
            outcome.completed.len(),
            outcome.failed,
            outcome.missing,
            outcome.elapsed.as_secs_f64()
        );
        outcomes.push(outcome);
    }
    let load = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| {
            let mut f = l.split_whitespace();
            Some(format!("{} {} {}", f.next()?, f.next()?, f.next()?))
        })
        .unwrap_or_default();
    let bin_dir = match &args.bin_dir {
        Some(dir) => dir.clone(),
        None => cairn_cli::standalone::default_bin_dir()?,
    };
    print_table(&outcomes, &load, &bin_dir);
    Ok(())
}
