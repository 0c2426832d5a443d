//! The storage socket's memory is bounded by the repository engine's upload buffers, not by
//! the file size: a 200 MiB push from the real `datasafed` through the socket grows this
//! process's (the server's) peak RSS by less than the engine's multipart budget plus a small
//! socket overhead, well under the file's size. Alone in its test binary so that no other test
//! shares the peak.

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use cairn_agent::socket::{Grants, SocketServer};
use cairn_proto::agent::v1::StorageGrant;
use cairn_repo::backend::TransferOptions;
use tokio::sync::oneshot;

const MIB: u64 = 1024 * 1024;
/// What the socket itself may hold for one push: a received message, the engine's 1 MiB copy
/// buffer, HTTP/2 windows.
const SOCKET_OVERHEAD: u64 = 8 * MIB;

/// The engine's own worst case for one upload: the part being filled, two queued, the two it
/// holds before starting a multipart upload, and the parts in flight.
fn engine_budget() -> u64 {
    let options = TransferOptions::default();
    options.part_size * (options.upload_parallelism as u64 + 4)
}

/// A `kB` field of /proc/self/status, in bytes.
fn status_bytes(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .map(|kib| kib * 1024)
        .expect("field present")
}

#[test]
fn a_200_mib_push_and_pull_are_buffered_by_parts_not_by_file_size() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let socket_dir = tempfile::tempdir().expect("tempdir");
    let repo = tempfile::tempdir().expect("tempdir");
    let grants = Grants::new();
    let server = runtime
        .block_on(async { SocketServer::bind(socket_dir.path()) })
        .expect("bind");
    let socket = server.path().to_path_buf();
    let (stop, stopped) = oneshot::channel::<()>();
    runtime.spawn(server.run(grants.clone(), async {
        let _ = stopped.await;
    }));
    let token = grants
        .issue(
            "big",
            &StorageGrant {
                repo_name: "local".into(),
                local_path: repo.path().display().to_string(),
                read_write_prefix: "/ns/b1".into(),
                ..Default::default()
            },
        )
        .expect("issue");
    let datasafed_dir = PathBuf::from(env!("CARGO_BIN_EXE_datasafed"))
        .parent()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let push = |script: &str| {
        Command::new("sh")
            .arg("-c")
            .arg(script)
            .env_clear()
            .env("PATH", format!("{datasafed_dir}:/usr/bin:/bin"))
            .env("CAIRN_STORAGE_SOCKET", &socket)
            .env("CAIRN_STORAGE_TOKEN", token.expose())
            .env("DATASAFED_BACKEND_BASE_PATH", "/ns/b1")
            .output()
            .expect("sh runs")
    };
    // Warm up (thread stacks, allocator arenas), then reset the peak to the current RSS.
    let warm = push("head -c 8388608 /dev/zero | datasafed push - /warm.bin");
    assert!(
        warm.status.success(),
        "{}",
        String::from_utf8_lossy(&warm.stderr)
    );
    std::fs::write("/proc/self/clear_refs", "5").expect("reset the peak RSS");
    let baseline = status_bytes("VmRSS:");

    let started = Instant::now();
    let big = push("head -c 209715200 /dev/zero | datasafed push - /big.bin");
    let elapsed = started.elapsed();
    assert!(
        big.status.success(),
        "{}",
        String::from_utf8_lossy(&big.stderr)
    );
    let growth = status_bytes("VmHWM:").saturating_sub(baseline);
    eprintln!(
        "200 MiB push through the socket: {:.1} s, server peak RSS growth {:.1} MiB (baseline {:.1} MiB)",
        elapsed.as_secs_f64(),
        growth as f64 / MIB as f64,
        baseline as f64 / MIB as f64
    );
    let stored = std::fs::metadata(repo.path().join("ns/b1/big.bin")).expect("stored");
    assert_eq!(stored.len(), 200 * MIB);
    assert_eq!(grants.bytes("big"), 208 * MIB);
    let budget = engine_budget() + SOCKET_OVERHEAD;
    assert!(
        budget < 200 * MIB,
        "the budget must be below the file size to prove anything"
    );
    assert!(
        growth <= budget,
        "peak RSS grew by {} MiB during a 200 MiB push (budget {} MiB)",
        growth / MIB,
        budget / MIB
    );

    std::fs::write("/proc/self/clear_refs", "5").expect("reset the peak RSS");
    let baseline = status_bytes("VmRSS:");
    let started = Instant::now();
    let pulled = push("datasafed pull big.bin - | wc -c");
    let elapsed = started.elapsed();
    assert!(
        pulled.status.success(),
        "{}",
        String::from_utf8_lossy(&pulled.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&pulled.stdout).trim(),
        (200 * MIB).to_string()
    );
    let growth = status_bytes("VmHWM:").saturating_sub(baseline);
    eprintln!(
        "200 MiB pull through the socket: {:.1} s, server peak RSS growth {:.1} MiB",
        elapsed.as_secs_f64(),
        growth as f64 / MIB as f64
    );
    // Downloads hold fewer bytes than uploads (ranges in flight, then ≤ 1 MiB messages), but
    // allocator arenas of the decode and runtime threads make the peak noisy: the upload
    // budget bounds both, and is still well under the file size.
    assert!(
        growth <= budget,
        "peak RSS grew by {} MiB during a 200 MiB pull (budget {} MiB)",
        growth / MIB,
        budget / MIB
    );
    let _ = stop.send(());
}
