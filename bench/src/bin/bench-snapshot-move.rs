//! Snapshot data movement (ARCHITECTURE.md §K2.5a; issue 14's "Done when"): what the
//! deduplicating repository stores for a first and a second snapshot backup of a volume after
//! 5 % of its files changed, and the move's speed beside the repository engine's own backup
//! speed (`cairnctl repo backup` of the same directory).
//!
//! A standalone stack (localkube with its CSI snapshotter, a control plane, an agent, the local
//! repository) runs a pod whose `data` claim holds `--mib` files of 1 MiB of random bytes. Its
//! policy is annotated `cairn.io/snapshot-data-movement`. Backup `b1` snapshots and moves; then
//! 5 % of the files are rewritten with new random bytes and backup `b2` does the same. The
//! bytes stored are each copy's `bytesStored` (status.volumeSnapshotCopies); the move's time is
//! its action's start to completion (whole seconds, as the status records them). Then
//! `cairnctl repo backup` stores the same directory in a fresh repository on the same disk.
//!
//! ```text
//! cargo build --bins
//! target/debug/bench-snapshot-move --mib 1024
//! ```

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use cairn_e2e::{TestStack, dp, scenario};
use clap::Parser;

const NS: &str = "bench";
const APP: &str = "bm";

/// Snapshot data movement benchmark.
#[derive(Debug, Parser)]
struct Args {
    /// MiB of data on the volume (files of 1 MiB).
    #[arg(long, default_value_t = 1024)]
    mib: usize,
    /// Directory holding `localkube`, `cairn-control-plane`, `cairn-agent`, `datasafed` and
    /// `cairnctl` (default: the stack's, the build's target directory).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
}

/// Writes `count` files `f<i>` of 1 MiB of fresh random bytes, from `first`.
fn write_files(dir: &Path, first: usize, count: usize) -> anyhow::Result<()> {
    let mut random = std::fs::File::open("/dev/urandom").context("opening /dev/urandom")?;
    let mut chunk = vec![0u8; 1 << 20];
    for i in first..first + count {
        std::io::Read::read_exact(&mut random, &mut chunk).context("reading /dev/urandom")?;
        let path = dir.join(format!("f{i}"));
        let mut file =
            std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
        file.write_all(&chunk)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// Backs up with movement; returns (bytes stored by the data volume's copy, move seconds).
async fn backup(stack: &TestStack, name: &str) -> anyhow::Result<(i64, f64)> {
    scenario::backup(
        stack,
        NS,
        name,
        &format!("{APP}-snapshots"),
        "snap",
        "Retain",
    )
    .await?;
    let backup = dp::backup_completed(&stack.client, NS, name, Duration::from_secs(7200)).await?;
    let status = backup.status.unwrap_or_default();
    let stored = status
        .volume_snapshot_copies
        .iter()
        .flatten()
        .find(|c| c.volume_name == "data")
        .map(|c| c.bytes_stored)
        .context("no copy of the data volume")?;
    let action = status
        .actions
        .iter()
        .flatten()
        .find(|a| a.name.as_deref() == Some("moveVolumeData-0"))
        .context("no moveVolumeData-0 action")?;
    let (Some(start), Some(end)) = (&action.start_timestamp, &action.completion_timestamp) else {
        anyhow::bail!("the move action has no start or completion time: {action:?}");
    };
    let seconds = end.0.duration_since(start.0).as_secs_f64();
    Ok((stored, seconds.max(1.0)))
}

fn mib(bytes: i64) -> f64 {
    bytes as f64 / f64::from(1u32 << 20)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let bin_dir = args.bin_dir.clone();
    let stack = TestStack::up("bench-snapshot-move", |options| {
        if let Some(dir) = bin_dir {
            options.bin_dir = Some(dir);
        }
    })
    .await?;
    scenario::snapshot_workload(&stack, NS, APP, "60m").await?;
    stack
        .kubectl
        .run(&[
            "annotate",
            "backuppolicy",
            &format!("{APP}-snapshots"),
            "-n",
            NS,
            "cairn.io/snapshot-data-movement=true",
        ])
        .await?;
    let dir = dp::pvc_dir(&stack.client, NS, &format!("data-{APP}-0")).await?;
    eprintln!("writing {} MiB into {}", args.mib, dir.display());
    write_files(&dir, 0, args.mib)?;

    let (first, first_seconds) = backup(&stack, "b1").await?;
    let changed = args.mib.div_ceil(20);
    write_files(&dir, 0, changed)?;
    let (second, second_seconds) = backup(&stack, "b2").await?;

    // The engine's own backup of the same directory, into a fresh repository.
    let repo = stack.scratch.join("engine-repo");
    let url = format!("file://{}", repo.display());
    let cairnctl = stack.stack.bin_dir.join("cairnctl");
    let password = [("CAIRN_REPO_PASSWORD", "bench")];
    let status = std::process::Command::new(&cairnctl)
        .args(["repo", "init", "--repo", &url])
        .envs(password)
        .status()
        .context("running cairnctl repo init")?;
    anyhow::ensure!(status.success(), "cairnctl repo init failed");
    let started = Instant::now();
    let status = std::process::Command::new(&cairnctl)
        .args(["repo", "backup", "--json", "--repo", &url])
        .arg(&dir)
        .envs(password)
        .stdout(std::process::Stdio::null())
        .status()
        .context("running cairnctl repo backup")?;
    anyhow::ensure!(status.success(), "cairnctl repo backup failed");
    let engine_seconds = started.elapsed().as_secs_f64();

    let total = args.mib as f64;
    println!(
        "volume: {} MiB in {} files of 1 MiB; {changed} files rewritten for the second backup ({:.1} %)",
        args.mib,
        args.mib,
        100.0 * changed as f64 / args.mib as f64
    );
    println!(
        "first snapshot backup:  stored {:.1} MiB; move {:.0} s ({:.1} MiB/s)",
        mib(first),
        first_seconds,
        total / first_seconds
    );
    println!(
        "second snapshot backup: stored {:.1} MiB ({:.1} % of the first); move {:.0} s ({:.1} MiB/s)",
        mib(second),
        100.0 * second as f64 / first.max(1) as f64,
        second_seconds,
        total / second_seconds
    );
    println!(
        "cairnctl repo backup of the same directory: {engine_seconds:.1} s ({:.1} MiB/s)",
        total / engine_seconds
    );
    stack.shutdown().await
}
