//! `cairn-control-plane`: reconciles the data-protection CRDs and serves the agent API.

use std::process::ExitCode;

use cairn_control_plane::args::{Args, Command, LogFormat};
use clap::Parser;
use tokio_util::sync::CancellationToken;

/// jemalloc instead of glibc's malloc: with glibc, the memory of objects freed after a burst
/// (thousands of Backups completed, then deleted) stays resident, fragmented over the worker
/// threads' arenas (bench/README.md, "scale": +30 KiB per Backup ever run, which
/// `malloc_trim` does not give back). jemalloc's background thread returns pages unused for
/// a second, so the memory follows what is live.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options (read once at start-up; a NUL-terminated C string): purge from a
/// background thread, so an idle process also returns memory, and keep freed pages at most
/// about a second; one arena, not four per core: the control plane's allocations are few
/// beside its I/O, and one arena leaves fewer partly used pages and less allocator metadata
/// after a burst (1,000 agents / 10,000 Backups: +8.4 % anonymous memory after the soak, +10.1 %
/// with the default arenas; bench/README.md, "scale"). `_RJEM_MALLOC_CONF` overrides these.
#[allow(non_upper_case_globals)]
#[unsafe(export_name = "_rjem_malloc_conf")]
pub static malloc_conf: &[u8] =
    b"background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0,narenas:1\0";

fn main() -> ExitCode {
    let args = Args::parse();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("cairn-control-plane: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    // Logs, and OTLP trace export when the OTEL_* variables ask for it (the gRPC exporter
    // needs the runtime).
    let telemetry = {
        let _runtime = runtime.enter();
        match cairn_telemetry::init(
            "cairn-control-plane",
            args.run.log_format == LogFormat::Json,
        ) {
            Ok(telemetry) => telemetry,
            Err(err) => {
                eprintln!("cairn-control-plane: {err}");
                return ExitCode::FAILURE;
            }
        }
    };
    if let Some(Command::Ca(ca)) = args.command {
        // `ca issue-agent --every` (the agent pod's renewal container) runs until stopped. As a
        // container's PID 1 it gets no default SIGTERM action from the kernel, so the signal is
        // handled here: the pod stops at once instead of after its whole grace period.
        let result = runtime.block_on(async {
            let work = tokio::task::spawn_blocking(move || cairn_control_plane::ca_cmd::run(ca));
            tokio::select! {
                joined = work => joined.map_err(anyhow::Error::from).and_then(|done| done),
                () = wait_for_signal() => Ok(()),
            }
        });
        runtime.shutdown_background();
        return match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("cairn-control-plane: {err:#}");
                ExitCode::FAILURE
            }
        };
    }
    let result = runtime.block_on(async {
        let shutdown = CancellationToken::new();
        let signal = shutdown.clone();
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("shutting down");
            signal.cancel();
        });
        cairn_control_plane::run::run(args.run, shutdown).await
    });
    {
        let _runtime = runtime.enter();
        telemetry.shutdown();
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("cairn-control-plane: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn wait_for_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    /// The process's anonymous resident memory (heap and stacks), in bytes.
    fn anon_rss() -> u64 {
        let status =
            std::fs::read_to_string("/proc/self/status").expect("reading /proc/self/status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("RssAnon:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|kb| kb.parse::<u64>().ok())
            .expect("RssAnon in /proc/self/status")
            * 1024
    }

    /// What the soak of bench-scale showed with glibc's malloc: a burst of small objects made
    /// and freed on a worker thread (Backups read, planned and deleted), with a few objects of
    /// the same time still alive, stays resident after everything else is freed.
    #[test]
    fn memory_freed_after_a_burst_goes_back_to_the_system() {
        const BURST: usize = 128 * 1024 * 1024;
        const OBJECT: usize = 1024;
        let before = anon_rss();
        let pinned = std::thread::spawn(|| {
            let mut burst: Vec<Box<[u8]>> = Vec::with_capacity(BURST / OBJECT);
            for i in 0..BURST / OBJECT {
                burst.push(vec![i as u8; OBJECT].into_boxed_slice());
            }
            // One survivor made last (a cache entry that outlives the burst).
            let survivor = vec![1u8; 64].into_boxed_slice();
            drop(burst);
            survivor
        })
        .join()
        .expect("the burst thread");
        let freed_at = Instant::now();
        let mut after = anon_rss();
        while after > before + BURST as u64 / 4 && freed_at.elapsed() < Duration::from_secs(30) {
            std::thread::sleep(Duration::from_millis(200));
            after = anon_rss();
        }
        assert_eq!(pinned.len(), 64);
        assert!(
            after <= before + BURST as u64 / 4,
            "{} MiB of the {} MiB burst still resident 30 s after it was freed ({} MiB before)",
            (after.saturating_sub(before)) >> 20,
            BURST >> 20,
            before >> 20
        );
    }
}
