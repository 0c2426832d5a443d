//! Benchmarks localkube (the release binary, as a separate process) with kube-rs over
//! HTTPS: creates per second (sequential and 8 concurrent clients), a list of 10,000
//! objects, watch event latency with 100 concurrent watchers, and the server's RSS.
//!
//! ```text
//! cargo build --release -p localkube --bin localkube
//! cargo run --release -p cairn-bench --bin bench-localkube
//! ```

use anyhow::{Context, bail};
use clap::Parser;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use std::io::BufRead;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// localkube benchmark.
#[derive(Debug, Parser)]
struct Args {
    /// The localkube binary (default: next to this benchmark).
    #[arg(long)]
    localkube: Option<PathBuf>,
    /// Objects created sequentially (the rest of --objects by 8 concurrent clients).
    #[arg(long, default_value_t = 2000)]
    sequential: usize,
    /// Objects in total (listed and measured for memory).
    #[arg(long, default_value_t = 10_000)]
    objects: usize,
    /// Concurrent watchers for the latency measurement.
    #[arg(long, default_value_t = 100)]
    watchers: usize,
    /// Writes observed by every watcher.
    #[arg(long, default_value_t = 200)]
    events: usize,
}

struct Server {
    child: Child,
    kubeconfig: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(binary: &PathBuf) -> anyhow::Result<Server> {
    let dir = tempfile::tempdir().context("creating a data directory")?;
    let mut child = Command::new(binary)
        .args(["--data-dir"])
        .arg(dir.path())
        .args(["--listen", "127.0.0.1:0", "--no-kubelet"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))?;
    let stdout = child.stdout.take().context("localkube stdout")?;
    let mut lines = std::io::BufReader::new(stdout).lines();
    loop {
        match lines.next() {
            Some(Ok(l)) if l.starts_with("kubeconfig: ") => break,
            Some(Ok(_)) => continue,
            _ => bail!("localkube exited before serving"),
        }
    }
    Ok(Server {
        child,
        kubeconfig: dir.path().join("kubeconfig"),
        _dir: dir,
    })
}

fn rss_mib(pid: u32) -> anyhow::Result<f64> {
    let status =
        std::fs::read_to_string(format!("/proc/{pid}/status")).context("reading /proc status")?;
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("VmRSS")?;
    Ok(kib / 1024.0)
}

fn cm(name: &str) -> ConfigMap {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": name, "labels": {"bench": "yes"}},
        "data": {"payload": "x".repeat(256)}
    }))
    .unwrap_or_default()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args = Args::parse();
    let binary = match &args.localkube {
        Some(p) => p.clone(),
        None => std::env::current_exe()?.with_file_name("localkube"),
    };
    let server = start(&binary)?;
    let kc = Kubeconfig::read_from(&server.kubeconfig)?;
    let config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await?;
    let client = kube::Client::try_from(config)?;
    let nss: Api<Namespace> = Api::all(client.clone());
    for ns in ["bench", "lat"] {
        let n: Namespace = serde_json::from_value(serde_json::json!({"metadata": {"name": ns}}))?;
        nss.create(&PostParams::default(), &n).await?;
    }
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "bench");

    let t = Instant::now();
    for i in 0..args.sequential {
        cms.create(&PostParams::default(), &cm(&format!("seq-{i:05}")))
            .await?;
    }
    let sequential = args.sequential as f64 / t.elapsed().as_secs_f64();

    let concurrent_total = args.objects.saturating_sub(args.sequential);
    let per = concurrent_total / 8;
    let t = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..8 {
        let cms = cms.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..per {
                cms.create(&PostParams::default(), &cm(&format!("c{w}-{i:05}")))
                    .await?;
            }
            Ok::<_, kube::Error>(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    let concurrent = (per * 8) as f64 / t.elapsed().as_secs_f64();

    let mut lists = Vec::new();
    let mut count = 0;
    for _ in 0..5 {
        let req = kube::core::Request::new("/api/v1/namespaces/bench/configmaps")
            .list(&kube::api::ListParams::default())
            .context("building the list request")?;
        let t = Instant::now();
        let body = client.request_text(req).await?;
        lists.push(t.elapsed());
        let parsed: serde_json::Value = serde_json::from_str(&body)?;
        count = parsed["items"].as_array().map_or(0, Vec::len);
    }
    lists.sort();
    let list_ms = lists[lists.len() / 2].as_secs_f64() * 1000.0;
    let rss = rss_mib(server.child.id())?;

    // Watch latency: every watcher sees every write; latency is from issuing the write.
    let lat: Api<ConfigMap> = Api::namespaced(client.clone(), "lat");
    let first = lat.create(&PostParams::default(), &cm("w")).await?;
    let rv = first.metadata.resource_version.clone().unwrap_or_default();
    let sent: Arc<std::sync::Mutex<Vec<Option<Instant>>>> =
        Arc::new(std::sync::Mutex::new(vec![None; args.events]));
    let mut watchers = Vec::new();
    for _ in 0..args.watchers {
        let lat = lat.clone();
        let sent = sent.clone();
        let events = args.events;
        let rv = rv.clone();
        let stream = lat
            .watch(&WatchParams::default().timeout(290), &rv)
            .await?
            .boxed();
        watchers.push(tokio::spawn(async move {
            let mut stream = stream;
            let mut samples = Vec::with_capacity(events);
            while samples.len() < events {
                match stream.try_next().await {
                    Ok(Some(WatchEvent::Modified(c))) => {
                        let now = Instant::now();
                        let idx: usize = c
                            .data
                            .as_ref()
                            .and_then(|d| d.get("i"))
                            .and_then(|v| v.parse().ok())
                            .unwrap_or(usize::MAX);
                        let at = sent.lock().ok().and_then(|s| s.get(idx).copied().flatten());
                        if let Some(at) = at {
                            samples.push(now.duration_since(at));
                        }
                    }
                    Ok(Some(_)) => {}
                    _ => break,
                }
            }
            samples
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    for i in 0..args.events {
        if let Ok(mut s) = sent.lock() {
            s[i] = Some(Instant::now());
        }
        lat.patch(
            "w",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"data": {"i": i.to_string()}})),
        )
        .await?;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut samples = Vec::new();
    for w in watchers {
        samples.extend(tokio::time::timeout(Duration::from_secs(60), w).await??);
    }
    samples.sort();

    println!(
        "localkube benchmark ({} objects of ~300 bytes, release build, HTTPS, kube-rs client)",
        args.objects
    );
    println!("creates/s sequential:            {sequential:>10.0}");
    println!("creates/s with 8 clients:        {concurrent:>10.0}   (target >= 2000)");
    println!("list of {count} objects (median):  {list_ms:>10.1} ms (target <= 150)");
    println!(
        "watch latency p50 ({} watchers):  {:>10.2} ms",
        args.watchers,
        percentile(&samples, 0.5).as_secs_f64() * 1000.0
    );
    println!(
        "watch latency p99:                {:>10.2} ms (target <= 10)",
        percentile(&samples, 0.99).as_secs_f64() * 1000.0
    );
    println!("watch samples:                    {:>10}", samples.len());
    println!(
        "server RSS after {} objects:    {rss:>10.1} MiB (target <= 200)",
        args.objects
    );
    Ok(())
}
