//! One pod's lifecycle as local processes: volumes, sandboxes, init containers in order,
//! containers with restartPolicy and backoff, readiness and liveness probes, graceful
//! termination (SIGTERM, grace, SIGKILL) and status reporting through the API.

use super::env::{Sources, container_env, expand};
use super::probe::{ProbeResult, probe};
use super::process::{Exit, ProcessSpec, log_path, signal_group, spawn_container};
use super::sandbox::{Sandbox, VolumeMount};
use super::status::{Container, PodRuntime, State};
use super::volumes::{self, VolumeError, pod_dir};
use crate::admission::pod_qos_class;
use crate::resource::Builtin;
use crate::rest::{Api, DeleteOptions, Target, WriteOptions};
use crate::store::WatchEvent;
use crate::time::now_time;
use nix::sys::signal::Signal;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{broadcast, mpsc, watch};

/// How a container of this pod is run (also used by exec).
#[derive(Debug, Clone)]
pub struct Template {
    pub spec: ProcessSpec,
}

/// Templates of a pod's containers, by name.
pub type Templates = Arc<Mutex<BTreeMap<String, Template>>>;

pub struct Ctx {
    pub api: Arc<Api>,
    pub data_dir: PathBuf,
    /// Process groups of running containers, for an abrupt stop.
    pub running: Mutex<std::collections::HashSet<u32>>,
}

impl Ctx {
    fn track(&self, pid: u32, alive: bool) {
        let mut r = self.running.lock().unwrap_or_else(|p| p.into_inner());
        let record = super::leftovers::record_path(&self.data_dir, pid);
        if alive {
            r.insert(pid);
            super::leftovers::record(&record, pid);
        } else {
            r.remove(&pid);
            let _ = std::fs::remove_file(&record);
        }
    }
}

struct ApiSources<'a> {
    api: &'a Api,
    namespace: String,
}

impl Sources for ApiSources<'_> {
    fn config_map(&self, name: &str) -> Option<Value> {
        self.api
            .store()
            .get("core/configmaps", &self.namespace, name)
            .map(|o| o.value())
    }
    fn secret(&self, name: &str) -> Option<Value> {
        self.api
            .store()
            .get("core/secrets", &self.namespace, name)
            .map(|o| o.value())
    }
}

fn s<'a>(v: &'a Value, p: &str) -> &'a str {
    v.pointer(p).and_then(Value::as_str).unwrap_or_default()
}

enum Msg {
    Exited {
        idx: usize,
        init: bool,
        exit: Exit,
        started_at: String,
    },
    Restart(usize),
    Ready(usize, bool),
    LivenessFailed(usize),
}

const BACKOFF_BASE: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(30);

fn backoff(restarts: i64) -> Duration {
    (BACKOFF_BASE * 2u32.saturating_pow(restarts.clamp(0, 10) as u32)).min(BACKOFF_MAX)
}

/// The runtime view of a pod, continuing from its stored status (after a restart of
/// localkube, containers that were running are gone, as after a node reboot).
fn initial_runtime(pod: &Value) -> PodRuntime {
    let policy = match s(pod, "/spec/restartPolicy") {
        "" => "Always".to_string(),
        p => p.to_string(),
    };
    let containers = |list: &str, statuses: &str| -> Vec<Container> {
        pod.pointer(&format!("/spec/{list}"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|c| {
                let name = s(c, "/name");
                let mut out = Container::new(name, s(c, "/image"));
                let prev = pod
                    .pointer(&format!("/status/{statuses}"))
                    .and_then(Value::as_array)
                    .and_then(|ss| ss.iter().find(|x| s(x, "/name") == name));
                if let Some(p) = prev {
                    out.restart_count = p.get("restartCount").and_then(Value::as_i64).unwrap_or(0);
                    if let Some(t) = p.pointer("/state/terminated") {
                        out.state = State::Terminated {
                            exit_code: t.get("exitCode").and_then(Value::as_i64).unwrap_or(0)
                                as i32,
                            signal: None,
                            reason: s(t, "/reason").to_string(),
                            message: s(t, "/message").to_string(),
                            started_at: s(t, "/startedAt").to_string(),
                            finished_at: s(t, "/finishedAt").to_string(),
                        };
                        out.ever_started = true;
                    } else if let Some(r) = p.pointer("/state/running") {
                        // The process did not survive the restart.
                        out.state = State::Terminated {
                            exit_code: 137,
                            signal: None,
                            reason: "ContainerStatusUnknown".into(),
                            message:
                                "The container could not be located when the pod was restarted"
                                    .into(),
                            started_at: s(r, "/startedAt").to_string(),
                            finished_at: now_time(),
                        };
                        out.ever_started = true;
                    }
                }
                out
            })
            .collect()
    };
    PodRuntime {
        restart_policy: policy,
        init: containers("initContainers", "initContainerStatuses"),
        main: containers("containers", "containerStatuses"),
        sandbox_ready: false,
        start_time: pod
            .pointer("/status/startTime")
            .and_then(Value::as_str)
            .map(str::to_string),
        init_failed: false,
        reason: None,
        terminating: false,
    }
}

/// Writes the pod's status; false when the pod is gone or replaced.
fn write_status(ctx: &Ctx, pod: &Value, rt: &PodRuntime) -> bool {
    let ns = s(pod, "/metadata/namespace");
    let name = s(pod, "/metadata/name");
    let Some(cur) = ctx.api.store().get("core/pods", ns, name) else {
        return false;
    };
    let mut value = cur.value();
    if s(&value, "/metadata/uid") != s(pod, "/metadata/uid") {
        return false;
    }
    let qos = pod_qos_class(&value["spec"]);
    value["status"] = rt.status(value.get("status"), qos, &now_time());
    if let Some(m) = value.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("resourceVersion");
    }
    let rt_type = ctx.api.builtin(Builtin::Pod);
    match ctx.api.update(
        &rt_type,
        Some(ns),
        name,
        value,
        Target::Status,
        &WriteOptions::default(),
    ) {
        Ok(_) => true,
        Err(e) if e.code == 404 => false,
        Err(e) => {
            tracing::warn!(pod = name, error = %e, "writing pod status failed");
            true
        }
    }
}

/// Builds how `container` runs: argv with `$(VAR)` expansion, env, and its sandbox.
fn template(
    ctx: &Ctx,
    pod: &Value,
    container: &Value,
    vols: &BTreeMap<String, PathBuf>,
) -> Result<Template, (String, String)> {
    let ns = s(pod, "/metadata/namespace").to_string();
    let sources = ApiSources {
        api: &ctx.api,
        namespace: ns,
    };
    let env = container_env(pod, container, &sources)
        .map_err(|e| ("CreateContainerConfigError".to_string(), e.to_string()))?;
    let lookup: BTreeMap<String, String> = env.iter().cloned().collect();
    let vars = |k: &str| lookup.get(k).cloned();
    let mut argv: Vec<String> = container
        .get("command")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|a| expand(a, &vars))
        .collect();
    argv.extend(
        container
            .get("args")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(|a| expand(a, &vars)),
    );
    if argv.is_empty() {
        return Err((
            "CreateContainerError".to_string(),
            "localkube runs a container's command and args; the image's entrypoint is not available".to_string(),
        ));
    }
    let mut mounts = Vec::new();
    for m in container
        .get("volumeMounts")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let Some(host) = vols.get(s(m, "/name")) else {
            return Err((
                "CreateContainerConfigError".into(),
                format!("volume {:?} not found", s(m, "/name")),
            ));
        };
        let sub = s(m, "/subPath");
        let host_path = if sub.is_empty() {
            host.clone()
        } else {
            let p = host.join(sub);
            if !p.exists() {
                let _ = std::fs::create_dir_all(&p);
            }
            p
        };
        mounts.push(VolumeMount {
            container_path: PathBuf::from(s(m, "/mountPath")),
            host_path,
            read_only: m.get("readOnly").and_then(Value::as_bool).unwrap_or(false),
        });
    }
    let uid = s(pod, "/metadata/uid");
    let root = pod_dir(&ctx.data_dir, uid)
        .join("roots")
        .join(s(container, "/name"));
    let scratch = pod_dir(&ctx.data_dir, uid)
        .join("rootfs")
        .join(s(container, "/name"));
    let workdir = match s(container, "/workingDir") {
        "" => "/",
        w => w,
    };
    let sec = |field: &str| {
        container
            .pointer(&format!("/securityContext/{field}"))
            .or_else(|| pod.pointer(&format!("/spec/securityContext/{field}")))
            .and_then(Value::as_u64)
            .map(|v| v as u32)
    };
    let run_as = sec("runAsUser").map(|u| (u, sec("runAsGroup").unwrap_or(u)));
    let sandbox =
        Sandbox::plan(&root, &scratch, &mounts, Path::new(workdir), run_as).map_err(|e| {
            (
                "CreateContainerError".to_string(),
                crate::rest::error_chain(&e),
            )
        })?;
    Ok(Template {
        spec: ProcessSpec {
            argv,
            env,
            sandbox: Arc::new(sandbox),
            running: Default::default(),
        },
    })
}

/// The resources a pod's volumes come from: a change of one may make them ready.
const VOLUME_SOURCES: [&str; 4] = [
    "core/persistentvolumeclaims",
    "core/persistentvolumes",
    "core/configmaps",
    "core/secrets",
];

/// Returns when one of [`VOLUME_SOURCES`] changed after the subscription was taken (or changes
/// were missed), or after `limit`, whichever comes first; after `limit` alone without a
/// subscription.
async fn volume_source_changed(
    changes: Option<&mut broadcast::Receiver<Arc<WatchEvent>>>,
    limit: Duration,
) {
    let Some(changes) = changes else {
        tokio::time::sleep(limit).await;
        return;
    };
    let changed = async {
        loop {
            match changes.recv().await {
                Ok(event) if VOLUME_SOURCES.contains(&&*event.object.resource) => return,
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(_)) => return,
                Err(broadcast::error::RecvError::Closed) => std::future::pending::<()>().await,
            }
        }
    };
    let _ = tokio::time::timeout(limit, changed).await;
}

/// Runs a pod until it is terminal or stopped. `stop` carries the grace period.
pub async fn run(
    ctx: Arc<Ctx>,
    pod: Value,
    mut stop: watch::Receiver<Option<i64>>,
    templates: Templates,
) {
    let mut rt = initial_runtime(&pod);
    let dir = pod_dir(&ctx.data_dir, s(&pod, "/metadata/uid"));
    let (tx, mut rx) = mpsc::unbounded_channel::<Msg>();
    let mut tasks: Vec<tokio::task::JoinHandle<()>> = Vec::new();
    let mut pids: Vec<Option<u32>> = vec![None; rt.main.len()];
    let mut init_pid: Option<u32>;
    let init_specs: Vec<Value> = pod
        .pointer("/spec/initContainers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let main_specs: Vec<Value> = pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();

    if rt.phase() == "Failed" || rt.phase() == "Succeeded" {
        write_status(&ctx, &pod, &rt);
        return;
    }
    for c in rt.main.iter_mut().chain(rt.init.iter_mut()) {
        if c.state.exit_code().is_none() {
            c.state = State::waiting("ContainerCreating", "");
        }
    }
    if !write_status(&ctx, &pod, &rt) {
        return;
    }

    // Volumes and templates, retried until they are ready or the pod is stopped: at once when
    // an object they come from changes (the claim a Job's pod mounts gets bound a moment after
    // the pod is created), at the latest a second after the last try.
    // (A subscription from the newest resourceVersion on: no history, only what follows.)
    let mut sources = ctx
        .api
        .store()
        .watch_from(None, u64::MAX)
        .ok()
        .map(|s| s.receiver);
    let built: Option<(Vec<Template>, Vec<Template>)> = loop {
        if stop.borrow().is_some() {
            break None;
        }
        let attempt = volumes::prepare(&ctx.api, &pod, &ctx.data_dir)
            .map_err(|e| match e {
                VolumeError::Waiting(m) => ("ContainerCreating".to_string(), m),
                VolumeError::Failed(m) => ("CreateContainerConfigError".to_string(), m),
            })
            .and_then(|vols| {
                let init: Result<Vec<_>, _> = init_specs
                    .iter()
                    .map(|c| template(&ctx, &pod, c, &vols))
                    .collect();
                let main: Result<Vec<_>, _> = main_specs
                    .iter()
                    .map(|c| template(&ctx, &pod, c, &vols))
                    .collect();
                Ok((init?, main?))
            });
        match attempt {
            Ok(t) => break Some(t),
            Err((reason, message)) => {
                for c in rt.main.iter_mut().chain(rt.init.iter_mut()) {
                    if c.state.exit_code().is_none() {
                        c.state = State::waiting(&reason, message.clone());
                    }
                }
                write_status(&ctx, &pod, &rt);
                tokio::select! {
                    _ = volume_source_changed(sources.as_mut(), Duration::from_secs(1)) => {}
                    _ = stop.changed() => {}
                }
            }
        }
    };
    drop(sources);
    let Some((init_t, main_t)) = built else {
        finish(&ctx, &pod, &mut rt, &stop).await;
        return;
    };
    {
        let mut t = templates.lock().unwrap_or_else(|p| p.into_inner());
        for (spec, tpl) in init_specs
            .iter()
            .zip(&init_t)
            .chain(main_specs.iter().zip(&main_t))
        {
            t.insert(s(spec, "/name").to_string(), tpl.clone());
        }
    }
    rt.sandbox_ready = true;
    if rt.start_time.is_none() {
        rt.start_time = Some(now_time());
    }

    // Init containers, in order.
    for (idx, tpl) in init_t.iter().enumerate() {
        loop {
            if rt.init[idx].state.exit_code() == Some(0) {
                break;
            }
            if stop.borrow().is_some() {
                finish(&ctx, &pod, &mut rt, &stop).await;
                return;
            }
            let c = &mut rt.init[idx];
            if c.ever_started {
                c.restart_count += 1;
            }
            let run_id = c.restart_count;
            let started_at = now_time();
            let running = match spawn_container(&tpl.spec, &log_path(&dir, &c.name, run_id)).await {
                Ok(r) => r,
                Err(e) => {
                    c.state =
                        State::waiting("RunContainerError", format!("starting the process: {e}"));
                    write_status(&ctx, &pod, &rt);
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            init_pid = Some(running.pid);
            ctx.track(running.pid, true);
            c.pid = Some(running.pid);
            c.state = State::Running {
                started_at: started_at.clone(),
            };
            c.ever_started = true;
            c.started = true;
            for m in rt.main.iter_mut() {
                m.state = State::waiting("PodInitializing", "");
            }
            write_status(&ctx, &pod, &rt);
            let ctx2 = ctx.clone();
            let tx2 = tx.clone();
            tasks.push(tokio::spawn(async move {
                let pid = running.pid;
                let exit = running.wait().await;
                ctx2.track(pid, false);
                let _ = tx2.send(Msg::Exited {
                    idx,
                    init: true,
                    exit,
                    started_at,
                });
            }));
            let exit = loop {
                tokio::select! {
                    m = rx.recv() => match m {
                        Some(Msg::Exited { exit, init: true, started_at, .. }) => break (exit, started_at),
                        Some(_) => continue,
                        None => return,
                    },
                    _ = stop.changed() => {
                        let grace = *stop.borrow();
                        if let (Some(grace), Some(pid)) = (grace, init_pid) {
                            terminate(&[Some(pid)], grace, &mut rx).await;
                        }
                        finish(&ctx, &pod, &mut rt, &stop).await;
                        return;
                    }
                }
            };
            let c = &mut rt.init[idx];
            c.state = terminated(exit.0, exit.1);
            c.started = false;
            if exit.0.code == 0 {
                break;
            }
            if rt.restart_policy == "Never" {
                rt.init_failed = true;
                write_status(&ctx, &pod, &rt);
                return;
            }
            let wait = backoff(c.restart_count);
            c.last_state = Some(c.state.clone());
            c.state = State::waiting(
                "CrashLoopBackOff",
                format!(
                    "back-off {}s restarting failed container={} pod={}",
                    wait.as_secs(),
                    c.name,
                    s(&pod, "/metadata/name")
                ),
            );
            write_status(&ctx, &pod, &rt);
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = stop.changed() => {}
            }
        }
    }

    // Containers.
    let restart_allowed = |policy: &str, exit: &Exit| match policy {
        "Always" => true,
        "OnFailure" => exit.code != 0,
        _ => false,
    };
    for idx in 0..rt.main.len() {
        let done = rt.main[idx].state.exit_code();
        match done {
            Some(code) if !restart_allowed(&rt.restart_policy, &Exit { code, signal: None }) => {}
            _ => {
                let (pid, task) =
                    start_container(&ctx, idx, &main_t[idx], &mut rt.main[idx], &dir, &tx).await;
                pids[idx] = pid;
                tasks.extend(task);
            }
        }
    }
    // Probes.
    for (idx, spec) in main_specs.iter().enumerate() {
        for (kind, liveness) in [("readinessProbe", false), ("livenessProbe", true)] {
            let Some(p) = spec.get(kind).cloned() else {
                if !liveness {
                    rt.main[idx].ready = rt.main[idx].state.is_running();
                }
                continue;
            };
            let tx = tx.clone();
            let tpl = main_t[idx].clone();
            tasks.push(tokio::spawn(async move {
                let period = Duration::from_secs(
                    p.get("periodSeconds")
                        .and_then(Value::as_u64)
                        .unwrap_or(10)
                        .max(1),
                );
                let initial = Duration::from_secs(
                    p.get("initialDelaySeconds")
                        .and_then(Value::as_u64)
                        .unwrap_or(0),
                );
                let failure_threshold = p
                    .get("failureThreshold")
                    .and_then(Value::as_u64)
                    .unwrap_or(3);
                let success_threshold = p
                    .get("successThreshold")
                    .and_then(Value::as_u64)
                    .unwrap_or(1);
                tokio::time::sleep(initial).await;
                let (mut ok, mut bad) = (0u64, 0u64);
                loop {
                    match probe(&p, &tpl.spec).await {
                        ProbeResult::Success => {
                            ok += 1;
                            bad = 0;
                        }
                        ProbeResult::Failure(_) => {
                            bad += 1;
                            ok = 0;
                        }
                    }
                    let msg = if liveness {
                        (bad >= failure_threshold).then_some(Msg::LivenessFailed(idx))
                    } else if ok >= success_threshold {
                        Some(Msg::Ready(idx, true))
                    } else if bad >= failure_threshold {
                        Some(Msg::Ready(idx, false))
                    } else {
                        None
                    };
                    if let Some(m) = msg {
                        if liveness {
                            bad = 0;
                        }
                        if tx.send(m).is_err() {
                            return;
                        }
                    }
                    tokio::time::sleep(period).await;
                }
            }));
        }
    }
    let deadline = pod
        .pointer("/spec/activeDeadlineSeconds")
        .and_then(Value::as_u64)
        .map(|d| tokio::time::Instant::now() + Duration::from_secs(d));
    write_status(&ctx, &pod, &rt);

    loop {
        let phase = rt.phase();
        if phase == "Succeeded" || phase == "Failed" {
            write_status(&ctx, &pod, &rt);
            break;
        }
        tokio::select! {
            m = rx.recv() => {
                let Some(m) = m else { break };
                match m {
                    Msg::Exited { idx, init: false, exit, started_at } => {
                        pids[idx] = None;
                        let c = &mut rt.main[idx];
                        c.state = terminated(exit, started_at);
                        c.ready = false;
                        c.started = false;
                        if restart_allowed(&rt.restart_policy, &exit) && !rt.terminating {
                            let wait = backoff(c.restart_count);
                            c.last_state = Some(c.state.clone());
                            c.state = State::waiting("CrashLoopBackOff", format!("back-off {}s restarting failed container={} pod={}", wait.as_secs(), c.name, s(&pod, "/metadata/name")));
                            let tx = tx.clone();
                            tasks.push(tokio::spawn(async move {
                                tokio::time::sleep(wait).await;
                                let _ = tx.send(Msg::Restart(idx));
                            }));
                        }
                    }
                    Msg::Exited { .. } => {}
                    Msg::Restart(idx) => {
                        if !rt.terminating {
                            let (pid, task) = start_container(&ctx, idx, &main_t[idx], &mut rt.main[idx], &dir, &tx).await;
                            pids[idx] = pid;
                            tasks.extend(task);
                            if main_specs[idx].get("readinessProbe").is_none() {
                                rt.main[idx].ready = true;
                            }
                        }
                    }
                    Msg::Ready(idx, ready) => {
                        rt.main[idx].ready = ready && rt.main[idx].state.is_running();
                    }
                    Msg::LivenessFailed(idx) => {
                        if let Some(pid) = pids[idx] {
                            signal_group(pid, Signal::SIGKILL);
                        }
                    }
                }
                write_status(&ctx, &pod, &rt);
            }
            _ = stop.changed() => {
                let requested = *stop.borrow();
                let Some(grace) = requested else { continue };
                rt.terminating = true;
                let exits = terminate(&pids, grace, &mut rx).await;
                for (idx, exit) in exits {
                    let c = &mut rt.main[idx];
                    c.state = terminated(exit, match &c.state { State::Running { started_at } => started_at.clone(), _ => now_time() });
                    c.ready = false;
                    c.started = false;
                }
                for c in rt.main.iter_mut() {
                    if c.state.exit_code().is_none() {
                        c.state = terminated(Exit { code: 137, signal: None }, now_time());
                    }
                }
                break;
            }
            _ = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            } => {
                rt.reason = Some(("DeadlineExceeded".into(), "Pod was active on the node longer than the specified deadline".into()));
                rt.terminating = true;
                let exits = terminate(&pids, 0, &mut rx).await;
                for (idx, exit) in exits {
                    rt.main[idx].state = terminated(exit, now_time());
                }
                for c in rt.main.iter_mut() {
                    if c.state.exit_code().is_none() {
                        c.state = terminated(Exit { code: 137, signal: None }, now_time());
                    }
                }
                write_status(&ctx, &pod, &rt);
                break;
            }
        }
    }
    for t in tasks {
        t.abort();
    }
    if rt.terminating && stop.borrow().is_some() {
        finish(&ctx, &pod, &mut rt, &stop).await;
    }
}

/// Starts (or restarts) main container `idx`; its exit arrives as `Msg::Exited`.
async fn start_container(
    ctx: &Arc<Ctx>,
    idx: usize,
    tpl: &Template,
    c: &mut Container,
    dir: &Path,
    tx: &mpsc::UnboundedSender<Msg>,
) -> (Option<u32>, Option<tokio::task::JoinHandle<()>>) {
    if c.ever_started {
        if c.state.exit_code().is_some() {
            c.last_state = Some(c.state.clone());
        }
        c.restart_count += 1;
    }
    let log = log_path(dir, &c.name, c.restart_count);
    c.ever_started = true;
    c.ready = false;
    let started_at = now_time();
    match spawn_container(&tpl.spec, &log).await {
        Ok(running) => {
            c.started = true;
            c.pid = Some(running.pid);
            c.state = State::Running {
                started_at: started_at.clone(),
            };
            let pid = running.pid;
            ctx.track(pid, true);
            let tx = tx.clone();
            let ctx = ctx.clone();
            let task = tokio::spawn(async move {
                let exit = running.wait().await;
                ctx.track(pid, false);
                let _ = tx.send(Msg::Exited {
                    idx,
                    init: false,
                    exit,
                    started_at,
                });
            });
            (Some(pid), Some(task))
        }
        Err(e) => {
            c.started = false;
            c.state = State::waiting("RunContainerError", format!("starting the process: {e}"));
            let tx = tx.clone();
            let task = tokio::spawn(async move {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let _ = tx.send(Msg::Restart(idx));
            });
            (None, Some(task))
        }
    }
}

fn terminated(exit: Exit, started_at: String) -> State {
    State::Terminated {
        exit_code: exit.code,
        signal: exit.signal,
        reason: if exit.code == 0 {
            "Completed".into()
        } else {
            "Error".into()
        },
        message: String::new(),
        started_at,
        finished_at: now_time(),
    }
}

/// SIGTERM to every running container, SIGKILL after `grace` seconds; returns the exits seen.
async fn terminate(
    pids: &[Option<u32>],
    grace: i64,
    rx: &mut mpsc::UnboundedReceiver<Msg>,
) -> Vec<(usize, Exit)> {
    let running: Vec<(usize, u32)> = pids
        .iter()
        .enumerate()
        .filter_map(|(i, p)| p.map(|p| (i, p)))
        .collect();
    let mut exits = Vec::new();
    if running.is_empty() {
        return exits;
    }
    for (_, pid) in &running {
        signal_group(
            *pid,
            if grace <= 0 {
                Signal::SIGKILL
            } else {
                Signal::SIGTERM
            },
        );
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(grace.max(0) as u64);
    let mut killed = grace <= 0;
    while exits.len() < running.len() {
        tokio::select! {
            m = rx.recv() => match m {
                Some(Msg::Exited { idx, exit, .. }) => exits.push((idx, exit)),
                Some(_) => {}
                None => break,
            },
            _ = tokio::time::sleep_until(deadline), if !killed => {
                for (_, pid) in &running {
                    signal_group(*pid, Signal::SIGKILL);
                }
                killed = true;
            }
            _ = tokio::time::sleep(Duration::from_secs(5)), if killed => break,
        }
    }
    exits
}

/// After termination: report the final status and, for a pod being deleted, remove it.
async fn finish(ctx: &Ctx, pod: &Value, rt: &mut PodRuntime, stop: &watch::Receiver<Option<i64>>) {
    write_status(ctx, pod, rt);
    if stop.borrow().is_none() {
        return;
    }
    let ns = s(pod, "/metadata/namespace");
    let name = s(pod, "/metadata/name");
    let Some(cur) = ctx.api.store().get("core/pods", ns, name) else {
        return;
    };
    if cur.index.uid != s(pod, "/metadata/uid") || !cur.index.deleting {
        return;
    }
    let opts = DeleteOptions {
        grace_period: Some(0),
        precondition_uid: Some(cur.index.uid.clone()),
        ..Default::default()
    };
    let rt_type = ctx.api.builtin(Builtin::Pod);
    if let Err(e) = ctx.api.delete(&rt_type, Some(ns), name, &opts)
        && e.code != 404
    {
        tracing::warn!(pod = name, error = %e, "deleting a terminated pod failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn containers_that_were_running_before_a_restart_are_reported_gone() {
        let pod = json!({"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "i"}]},
            "status": {"containerStatuses": [{"name": "c", "restartCount": 2, "state": {"running": {"startedAt": "t"}}}]}});
        let rt = initial_runtime(&pod);
        assert_eq!(rt.main[0].restart_count, 2);
        assert_eq!(rt.main[0].state.exit_code(), Some(137));
        assert_eq!(rt.phase(), "Failed");
    }

    #[test]
    fn backoff_doubles_up_to_a_cap() {
        assert_eq!(backoff(0), Duration::from_secs(1));
        assert_eq!(backoff(3), Duration::from_secs(8));
        assert_eq!(backoff(20), BACKOFF_MAX);
    }
}
