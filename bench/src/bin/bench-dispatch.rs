//! Dispatch latency of Cairn beside KubeBlocks' floor, on one standalone stack (localkube, the
//! control plane and an agent as separate release processes):
//!
//! - Cairn: 100 Backups, one after another, of an ActionSet whose backupData job does nothing;
//!   per Backup the time from the create request to the agent's Job appearing (dispatch) and to
//!   the Backup being `Completed`, both seen through watch events with millisecond clocks.
//! - KubeBlocks' floor on the same localkube: 100 Jobs shaped like a KubeBlocks 0.9 backup Job
//!   (a data container that writes the info file and a `manager` sidecar that polls for it
//!   every 5 s); the time from creating the Job to its `Complete` condition. This is what
//!   KubeBlocks needs at least *after* its controller created the Job.
//! - Progress: one slow backup (about 12 s of pushing); the intervals between changes of its
//!   `status.progress` seen by a watch.
//!
//! ```text
//! cargo build --release -p localkube -p cairn-control-plane -p cairn-agent -p cairn-cli --bins
//! cargo run --release -p cairn-bench --bin bench-dispatch
//! ```

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use cairn_api::backup::{Backup, BackupPhase};
use cairn_api::well_known;
use cairn_cli::standalone::{Stack, StackOptions};
use clap::Parser;
use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, PostParams};
use kube::runtime::watcher;
use serde_json::json;
use tokio::sync::Notify;

const NS: &str = "bench";
const FLOOR_LABEL: &str = "bench.cairn.io/floor";

/// Dispatch benchmark.
#[derive(Debug, Parser)]
struct Args {
    /// Backups measured (one at a time).
    #[arg(long, default_value_t = 100)]
    backups: usize,
    /// KubeBlocks-floor Jobs measured.
    #[arg(long, default_value_t = 100)]
    floor_jobs: usize,
    /// Floor Jobs running at once (each mostly sleeps in its 5 s poll).
    #[arg(long, default_value_t = 10)]
    floor_concurrency: usize,
    /// The manager sidecar's poll interval (KubeBlocks' DP_CHECK_INTERVAL default).
    #[arg(long, default_value_t = 5)]
    floor_interval_seconds: u32,
    /// Milliseconds the backup action itself takes, in Cairn's ActionSet and in the floor's
    /// data container alike (0: an action that does nothing). With a real action the data
    /// container no longer wins the race with the sidecar's first check, and the floor shows
    /// its poll interval.
    #[arg(long, default_value_t = 0)]
    action_ms: u32,
    /// Seconds the slow backup spends pushing (for the progress interval).
    #[arg(long, default_value_t = 12)]
    slow_seconds: u32,
}

/// When things were first seen by the watches, by object name.
#[derive(Default)]
struct Seen {
    /// Backup name → first watch event showing it Completed (or Failed, with the reason).
    backup_done: HashMap<String, (Instant, Result<(), String>)>,
    /// Backup name → first watch event showing a Job for it (the agent started the action).
    job_created: HashMap<String, Instant>,
    /// Backup name → first watch event showing its action pod Running.
    pod_running: HashMap<String, Instant>,
    /// Floor Job name → first watch event showing it Complete.
    floor_complete: HashMap<String, Instant>,
    /// Floor Job name → first watch event showing its pod Running.
    floor_pod_running: HashMap<String, Instant>,
    /// Slow backup: (time, bytesDone) at each change of status.progress.
    progress: Vec<(Instant, i64)>,
}

type Shared = Arc<(Mutex<Seen>, Notify)>;

fn lock(shared: &Shared) -> std::sync::MutexGuard<'_, Seen> {
    shared.0.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Nearest-rank percentile of sorted samples.
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

async fn watch_backups(api: Api<Backup>, shared: Shared) {
    let mut events = std::pin::pin!(watcher(api, watcher::Config::default()));
    let mut last_progress: Option<i64> = None;
    while let Some(event) = events.next().await {
        let now = Instant::now();
        let Ok(watcher::Event::Apply(backup) | watcher::Event::InitApply(backup)) = event else {
            continue;
        };
        let name = backup.metadata.name.clone().unwrap_or_default();
        let status = backup.status.clone().unwrap_or_default();
        let mut seen = lock(&shared);
        if name == "slow"
            && let Some(progress) = status.progress.as_ref()
            && last_progress != Some(progress.bytes_done)
        {
            last_progress = Some(progress.bytes_done);
            seen.progress.push((now, progress.bytes_done));
        }
        let outcome = match status.phase {
            Some(BackupPhase::Completed) => Ok(()),
            Some(BackupPhase::Failed) => Err(status.failure_reason.unwrap_or_default()),
            _ => continue,
        };
        seen.backup_done.entry(name).or_insert((now, outcome));
        drop(seen);
        shared.1.notify_waiters();
    }
}

async fn watch_jobs(api: Api<Job>, shared: Shared) {
    let mut events = std::pin::pin!(watcher(api, watcher::Config::default()));
    while let Some(event) = events.next().await {
        let now = Instant::now();
        let Ok(watcher::Event::Apply(job) | watcher::Event::InitApply(job)) = event else {
            continue;
        };
        let labels = job.metadata.labels.clone().unwrap_or_default();
        let mut seen = lock(&shared);
        if let Some(backup) = labels.get(well_known::label::BACKUP_NAME) {
            seen.job_created.entry(backup.clone()).or_insert(now);
        }
        if labels.contains_key(FLOOR_LABEL) {
            let complete = job
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|c| {
                    c.iter()
                        .any(|c| c.type_ == "Complete" && c.status == "True")
                });
            if complete {
                let name = job.metadata.name.clone().unwrap_or_default();
                seen.floor_complete.entry(name).or_insert(now);
            }
        }
        drop(seen);
        shared.1.notify_waiters();
    }
}

async fn watch_pods(api: Api<Pod>, shared: Shared) {
    let mut events = std::pin::pin!(watcher(api, watcher::Config::default()));
    while let Some(event) = events.next().await {
        let now = Instant::now();
        let Ok(watcher::Event::Apply(pod) | watcher::Event::InitApply(pod)) = event else {
            continue;
        };
        let running = pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
            || pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Succeeded");
        if !running {
            continue;
        }
        let labels = pod.metadata.labels.clone().unwrap_or_default();
        let mut seen = lock(&shared);
        if let Some(backup) = labels.get(well_known::label::BACKUP_NAME) {
            seen.pod_running.entry(backup.clone()).or_insert(now);
        }
        if let Some(job) = labels.get("job-name")
            && labels.contains_key(FLOOR_LABEL)
        {
            seen.floor_pod_running.entry(job.clone()).or_insert(now);
        }
    }
}

/// Waits until `done` says yes, waking on every watch event, for at most `timeout`.
async fn wait_for<T>(
    shared: &Shared,
    timeout: Duration,
    what: &str,
    mut done: impl FnMut(&Seen) -> Option<T>,
) -> anyhow::Result<T> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let notified = shared.1.notified();
        if let Some(value) = done(&lock(shared)) {
            return Ok(value);
        }
        if tokio::time::timeout_at(deadline, notified).await.is_err() {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
    }
}

fn object<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> anyhow::Result<T> {
    serde_json::from_value(value).context("building a benchmark object")
}

async fn setup(client: &kube::Client, slow_seconds: u32, action_ms: u32) -> anyhow::Result<()> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &object(json!({"metadata": {"name": NS}}))?,
        )
        .await
        .context("creating the namespace")?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    pods.create(
        &PostParams::default(),
        &object(json!({
            "metadata": {"name": "db-0", "labels": {"app": "db"}},
            "spec": {
                "terminationGracePeriodSeconds": 1,
                "containers": [{"name": "main", "image": "busybox", "command": ["sleep", "36000"]}]
            }
        }))?,
    )
    .await
    .context("creating the target pod")?;
    let slow_loops = slow_seconds * 4;
    let actionsets: Api<cairn_api::actionset::ActionSet> = Api::all(client.clone());
    for (name, script) in [
        ("noop", action_script(action_ms, "true")),
        (
            "slow",
            format!(
                "set -e; export PATH=\"$PATH:$DP_DATASAFED_BIN_PATH\"; \
                 export DATASAFED_BACKEND_BASE_PATH=\"$DP_BACKUP_BASE_PATH\"; \
                 i=0; while [ $i -lt {slow_loops} ]; do head -c 1048576 /dev/zero; sleep 0.25; i=$((i+1)); done \
                 | datasafed push - /slow.bin"
            ),
        ),
    ] {
        actionsets
            .create(
                &PostParams::default(),
                &object(json!({
                    "apiVersion": "dataprotection.kubeblocks.io/v1alpha1",
                    "kind": "ActionSet",
                    "metadata": {"name": name},
                    "spec": {
                        "backupType": "Full",
                        "backup": {"backupData": {
                            "image": "busybox",
                            "runOnTargetPodNode": false,
                            "command": ["sh", "-c", script]
                        }}
                    }
                }))?,
            )
            .await
            .with_context(|| format!("creating ActionSet {name}"))?;
    }
    let policies: Api<cairn_api::backup_policy::BackupPolicy> = Api::namespaced(client.clone(), NS);
    policies
        .create(
            &PostParams::default(),
            &object(json!({
                "apiVersion": "dataprotection.kubeblocks.io/v1alpha1",
                "kind": "BackupPolicy",
                "metadata": {"name": "db", "namespace": NS},
                "spec": {
                    "target": {"podSelector": {"matchLabels": {"app": "db"}, "strategy": "Any"}},
                    "backupMethods": [
                        {"name": "noop", "actionSetName": "noop"},
                        {"name": "slow", "actionSetName": "slow"}
                    ]
                }
            }))?,
        )
        .await
        .context("creating the BackupPolicy")?;
    Ok(())
}

fn backup(name: &str, method: &str) -> anyhow::Result<Backup> {
    object(json!({
        "apiVersion": "dataprotection.kubeblocks.io/v1alpha1",
        "kind": "Backup",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"backupPolicyName": "db", "backupMethod": method, "deletionPolicy": "Delete"}
    }))
}

/// The shell of an action that takes `ms` milliseconds, then runs `then`.
fn action_script(ms: u32, then: &str) -> String {
    if ms == 0 {
        then.to_string()
    } else {
        format!("sleep {}.{:03}; {then}", ms / 1000, ms % 1000)
    }
}

/// A Job shaped like KubeBlocks 0.9's backup Job: the data container writes the info file at
/// once; the `manager` sidecar checks for it, sleeping the interval between checks.
fn floor_job(name: &str, interval: u32, action_ms: u32) -> anyhow::Result<Job> {
    object(json!({
        "metadata": {"name": name, "namespace": NS, "labels": {FLOOR_LABEL: "true"}},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "metadata": {"labels": {FLOOR_LABEL: "true"}},
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [
                        {
                            "name": "backupdata",
                            "image": "busybox",
                            "command": ["sh", "-c", action_script(action_ms, "echo '{}' > /dp-manager/backup.info")],
                            "volumeMounts": [{"name": "dp-manager", "mountPath": "/dp-manager"}]
                        },
                        {
                            "name": "manager",
                            "image": "busybox",
                            "env": [{"name": "DP_CHECK_INTERVAL", "value": interval.to_string()}],
                            "command": ["sh", "-c",
                                "while true; do \
                                   if [ -f /dp-manager/backup.info.exit ]; then exit 1; fi; \
                                   if [ -f /dp-manager/backup.info ]; then break; fi; \
                                   sleep \"$DP_CHECK_INTERVAL\"; \
                                 done"],
                            "volumeMounts": [{"name": "dp-manager", "mountPath": "/dp-manager"}]
                        }
                    ],
                    "volumes": [{"name": "dp-manager", "emptyDir": {}}]
                }
            }
        }
    }))
}

struct Row {
    what: &'static str,
    samples: Vec<Duration>,
}

fn row(what: &'static str, mut samples: Vec<Duration>) -> Row {
    samples.sort();
    Row { what, samples }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::Builder::new()
        .prefix("cairn-bench-dispatch-")
        .tempdir()
        .context("creating a data directory")?;
    eprintln!("starting the stack in {}", dir.path().display());
    let mut options = StackOptions::new(dir.path().join("data"));
    options.log_filter = "warn".into();
    let stack = Stack::up(options).await?;
    let client = stack.client().await?;
    setup(&client, args.slow_seconds, args.action_ms).await?;

    let shared: Shared = Arc::new((Mutex::new(Seen::default()), Notify::new()));
    let watches = [
        tokio::spawn(watch_backups(
            Api::namespaced(client.clone(), NS),
            shared.clone(),
        )),
        tokio::spawn(watch_jobs(
            Api::namespaced(client.clone(), NS),
            shared.clone(),
        )),
        tokio::spawn(watch_pods(
            Api::namespaced(client.clone(), NS),
            shared.clone(),
        )),
    ];
    let backups: Api<Backup> = Api::namespaced(client.clone(), NS);

    // Warm-up: the first backup pays for connections and caches.
    backups
        .create(&PostParams::default(), &backup("warmup", "noop")?)
        .await?;
    wait_for(
        &shared,
        Duration::from_secs(60),
        "the warm-up backup",
        |s| s.backup_done.get("warmup").map(|_| ()),
    )
    .await?;

    eprintln!("measuring {} backups", args.backups);
    let mut completed = Vec::new();
    let mut dispatched = Vec::new();
    let mut running = Vec::new();
    for i in 0..args.backups {
        let name = format!("noop-{i:03}");
        let created = Instant::now();
        backups
            .create(&PostParams::default(), &backup(&name, "noop")?)
            .await
            .with_context(|| format!("creating Backup {name}"))?;
        let (done, outcome) = wait_for(&shared, Duration::from_secs(60), &name, |s| {
            s.backup_done.get(&name).cloned()
        })
        .await?;
        if let Err(reason) = outcome {
            bail!("Backup {name} failed: {reason}");
        }
        let seen = lock(&shared);
        completed.push(done - created);
        if let Some(job) = seen.job_created.get(&name) {
            dispatched.push(*job - created);
        }
        if let Some(pod) = seen.pod_running.get(&name) {
            running.push(*pod - created);
        }
    }

    eprintln!(
        "measuring {} KubeBlocks-floor jobs, {} at a time",
        args.floor_jobs, args.floor_concurrency
    );
    let jobs: Api<Job> = Api::namespaced(client.clone(), NS);
    let mut floor_complete = Vec::new();
    let mut floor_running = Vec::new();
    let mut next = 0;
    while next < args.floor_jobs {
        let batch: Vec<usize> =
            (next..args.floor_jobs.min(next + args.floor_concurrency)).collect();
        next += batch.len();
        let mut created = Vec::new();
        for i in &batch {
            let name = format!("floor-{i:03}");
            let at = Instant::now();
            jobs.create(
                &PostParams::default(),
                &floor_job(&name, args.floor_interval_seconds, args.action_ms)?,
            )
            .await
            .with_context(|| format!("creating Job {name}"))?;
            created.push((name, at));
        }
        for (name, at) in created {
            let done = wait_for(&shared, Duration::from_secs(120), &name, |s| {
                s.floor_complete.get(&name).copied()
            })
            .await?;
            floor_complete.push(done - at);
            if let Some(pod) = lock(&shared).floor_pod_running.get(&name) {
                floor_running.push(*pod - at);
            }
        }
    }

    eprintln!("measuring the progress of a slow backup");
    let slow_created = Instant::now();
    backups
        .create(&PostParams::default(), &backup("slow", "slow")?)
        .await?;
    let (slow_done, outcome) = wait_for(
        &shared,
        Duration::from_secs(u64::from(args.slow_seconds) + 120),
        "the slow backup",
        |s| s.backup_done.get("slow").cloned(),
    )
    .await?;
    if let Err(reason) = outcome {
        bail!("the slow backup failed: {reason}");
    }
    let progress = lock(&shared).progress.clone();
    let mut intervals: Vec<Duration> = progress.windows(2).map(|w| w[1].0 - w[0].0).collect();
    intervals.sort();
    let first_progress = progress.first().map(|p| p.0 - slow_created);
    let last_to_done = progress.last().map(|p| slow_done - p.0);
    for watch in watches {
        watch.abort();
    }

    let rows = [
        row("create → Completed", completed),
        row("create → agent's Job created (dispatch)", dispatched),
        row("create → action pod Running", running),
    ];
    let floor_rows = [
        row("Job created → Complete", floor_complete),
        row("Job created → pod Running", floor_running),
    ];
    println!();
    println!(
        "Cairn, {} backups one at a time (ActionSet job: `{}`), release build, same localkube:",
        args.backups,
        action_script(args.action_ms, "true")
    );
    println!(
        "{:<42} {:>9} {:>9} {:>9} {:>9}",
        "", "p50", "p99", "max", "samples"
    );
    for r in &rows {
        println!(
            "{:<42} {:>9} {:>9} {:>9} {:>9}",
            r.what,
            ms(percentile(&r.samples, 50.0)),
            ms(percentile(&r.samples, 99.0)),
            ms(r.samples.last().copied().unwrap_or_default()),
            r.samples.len()
        );
    }
    println!(
        "KubeBlocks 0.9 floor, {} Jobs ({} at a time) with a `manager` sidecar polling every {} s:",
        args.floor_jobs, args.floor_concurrency, args.floor_interval_seconds
    );
    for r in &floor_rows {
        println!(
            "{:<42} {:>9} {:>9} {:>9} {:>9}",
            r.what,
            ms(percentile(&r.samples, 50.0)),
            ms(percentile(&r.samples, 99.0)),
            ms(r.samples.last().copied().unwrap_or_default()),
            r.samples.len()
        );
    }
    println!(
        "Progress of a {} s backup: {} status.progress changes; between changes median {}, max {}; \
         first change {} after create; Completed {} after the last change \
         (KubeBlocks 0.9: no byte progress, the status is patched once at the end)",
        args.slow_seconds,
        progress.len(),
        ms(percentile(&intervals, 50.0)),
        ms(intervals.last().copied().unwrap_or_default()),
        first_progress.map(ms).unwrap_or_else(|| "-".into()),
        last_to_done.map(ms).unwrap_or_else(|| "-".into()),
    );
    println!(
        "Targets: create → Completed p50 <= 2000 ms; dispatch p99 <= 200 ms; progress at least every 2000 ms"
    );
    stack.shutdown().await?;
    Ok(())
}
