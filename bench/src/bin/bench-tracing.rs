//! The overhead of OpenTelemetry tracing on backup throughput (issue 19's "Done when"; README
//! "Observability"): two standalone stacks of the same binaries run side by side, one exporting
//! its spans over OTLP to a collector in this process (`OTEL_EXPORTER_OTLP_ENDPOINT`, the
//! exporter's defaults otherwise), one without; backups alternate between them (off, on, on,
//! off, off, on... so a drift of the machine's load falls on both alike), one at a time, each of
//! freshly written random data (no deduplication against the previous one). A sample is the
//! wall time from creating the Backup to seeing it `Completed` (polled every 100 ms).
//!
//! ```text
//! cargo build -p cairn-bench --bin bench-tracing
//! target/debug/bench-tracing --bin-dir <dir of release localkube, cairn-control-plane, cairn-agent, datasafed> --mib 1024 --reps 5
//! ```
//!
//! The driver itself does little (it waits); the measured work is the release processes'.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use cairn_e2e::otlp::Collector;
use cairn_e2e::scenario::{self, Workload};
use cairn_e2e::{TestStack, dp};
use clap::Parser;

const NS: &str = "bench";

/// Tracing overhead benchmark.
#[derive(Debug, Parser)]
struct Args {
    /// Directory holding `localkube`, `cairn-control-plane`, `cairn-agent` and `datasafed`
    /// (release builds).
    #[arg(long)]
    bin_dir: PathBuf,
    /// MiB of fresh random data each backup pushes.
    #[arg(long, default_value_t = 1024)]
    mib: usize,
    /// Backups per mode (tracing off and on), interleaved.
    #[arg(long, default_value_t = 5)]
    reps: usize,
    /// `RUST_LOG` of the stacks' processes.
    #[arg(long, default_value = "info")]
    log_filter: String,
}

/// One stack and what it backs up.
struct Side {
    label: &'static str,
    stack: TestStack,
    workload: Workload,
    policy: scenario::Policy,
    seconds: Vec<f64>,
}

/// Overwrites the workload's `random.bin` with `mib` MiB of new random bytes.
fn refresh(data_dir: &Path, mib: usize) -> anyhow::Result<()> {
    let path = data_dir.join("random.bin");
    let mut file = std::io::BufWriter::new(
        std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?,
    );
    let mut random = std::fs::File::open("/dev/urandom").context("opening /dev/urandom")?;
    let mut chunk = vec![0u8; 1 << 20];
    for _ in 0..mib {
        std::io::Read::read_exact(&mut random, &mut chunk).context("reading /dev/urandom")?;
        file.write_all(&chunk)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    file.flush()
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// The 1-minute load average.
fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}

async fn side(
    label: &'static str,
    bin_dir: &Path,
    log_filter: &str,
    env: Vec<(String, String)>,
) -> anyhow::Result<Side> {
    let stack = TestStack::up(&format!("bench-tracing-{label}"), |options| {
        options.bin_dir = Some(bin_dir.to_path_buf());
        options.log_filter = log_filter.to_owned();
        options.env = env;
    })
    .await?;
    let workload = scenario::workload(&stack, NS, "db", 1 << 20).await?;
    let policy = scenario::file_policy(&stack, &workload, "db-files", "files", "", "").await?;
    Ok(Side {
        label,
        stack,
        workload,
        policy,
        seconds: Vec::new(),
    })
}

/// Backs up fresh data on `side` once; the wall seconds from create to `Completed`.
async fn measure(side: &mut Side, name: &str, mib: usize) -> anyhow::Result<f64> {
    refresh(&side.workload.data_dir, mib)?;
    let started = Instant::now();
    scenario::backup(
        &side.stack,
        NS,
        name,
        &side.policy.name,
        &side.policy.method,
        "Delete",
    )
    .await?;
    dp::backup_completed(&side.stack.client, NS, name, Duration::from_secs(3600)).await?;
    let seconds = started.elapsed().as_secs_f64();
    // Free the repository's space before the next one (not timed).
    side.stack
        .kubectl
        .run(&["delete", "backup", name, "-n", NS, "--wait=true"])
        .await?;
    Ok(seconds)
}

fn median(samples: &[f64]) -> f64 {
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let _ = rustls::crypto::ring::default_provider().install_default();
    for binary in [
        "localkube",
        "cairn-control-plane",
        "cairn-agent",
        "datasafed",
    ] {
        let path = args.bin_dir.join(binary);
        anyhow::ensure!(path.is_file(), "{} is missing", path.display());
    }
    let (collector, endpoint, server) = Collector::start().await?;
    eprintln!("starting the two stacks from {}", args.bin_dir.display());
    let mut off = side("off", &args.bin_dir, &args.log_filter, Vec::new()).await?;
    let mut on = side(
        "on",
        &args.bin_dir,
        &args.log_filter,
        vec![("OTEL_EXPORTER_OTLP_ENDPOINT".into(), endpoint)],
    )
    .await?;

    // A warm-up backup on each (connections, caches, the repository's first write).
    measure(&mut off, "warmup", 16).await?;
    measure(&mut on, "warmup", 16).await?;

    let mut loads = vec![load()];
    for rep in 0..args.reps {
        let order: [&mut Side; 2] = if rep % 2 == 0 {
            [&mut off, &mut on]
        } else {
            [&mut on, &mut off]
        };
        for side in order {
            let seconds = measure(side, &format!("b{rep}"), args.mib).await?;
            eprintln!(
                "rep {rep}, tracing {}: {seconds:.2} s ({:.1} MiB/s), load {}",
                side.label,
                args.mib as f64 / seconds,
                load()
            );
            side.seconds.push(seconds);
            loads.push(load());
        }
    }
    let spans = collector.len();
    server.abort();
    let (off_median, on_median) = (median(&off.seconds), median(&on.seconds));
    for side in [off, on] {
        let seconds = side.seconds.clone();
        let (min, max) = (
            seconds.iter().copied().fold(f64::INFINITY, f64::min),
            seconds.iter().copied().fold(0.0, f64::max),
        );
        let m = median(&seconds);
        println!(
            "tracing {:>3}: {} backups of {} MiB: median {m:.2} s ({:.1} MiB/s), min {min:.2} s, max {max:.2} s, spread {:.1} %; samples {seconds:.2?}",
            side.label,
            seconds.len(),
            args.mib,
            args.mib as f64 / m,
            (max - min) / m * 100.0,
        );
        side.stack.shutdown().await?;
    }
    println!(
        "tracing on vs off, medians: {:+.1} % time ({:+.1} % throughput); spans exported by the traced stack: {spans}",
        (on_median / off_median - 1.0) * 100.0,
        (off_median / on_median - 1.0) * 100.0,
    );
    println!("1-minute load average at the start and after each backup: {loads:?}");
    anyhow::ensure!(spans > 0, "the traced stack exported spans");
    Ok(())
}
