//! `cairn-agent`: the per-node agent.

use std::process::ExitCode;

use cairn_agent::args::{Args, LogFormat};
use cairn_agent::install;
use clap::Parser;
use tokio_util::sync::CancellationToken;

fn main() -> ExitCode {
    if std::env::args_os().nth(1).as_deref() == Some(std::ffi::OsStr::new(install::SUBCOMMAND)) {
        let args = install::InstallArgs::parse_from(std::env::args_os().skip(1));
        return match install::install(&args.from, &args.dir) {
            Ok(path) => {
                println!("installed {}", path.display());
                ExitCode::SUCCESS
            }
            Err(err) => {
                eprintln!("cairn-agent install-datasafed: {err:#}");
                ExitCode::FAILURE
            }
        };
    }
    // A holder pod (runtime/holder_pod.rs): it only keeps its claim mounted, until it is
    // deleted.
    if std::env::args_os().nth(1).as_deref()
        == Some(std::ffi::OsStr::new(
            cairn_agent::runtime::holder_pod::HOLD_SUBCOMMAND,
        ))
    {
        loop {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        }
    }
    cairn_repo::memory::tune_allocator();
    // A daemon that restores: large buffers go back to the kernel when freed.
    cairn_repo::memory::tune_allocator_for_restores();
    let args = Args::parse();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("cairn-agent: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    // Logs, and OTLP trace export when the OTEL_* variables ask for it (the gRPC exporter
    // needs the runtime).
    let telemetry = {
        let _runtime = runtime.enter();
        match cairn_telemetry::init("cairn-agent", args.log_format == LogFormat::Json) {
            Ok(telemetry) => telemetry,
            Err(err) => {
                eprintln!("cairn-agent: {err}");
                return ExitCode::FAILURE;
            }
        }
    };
    let result = runtime.block_on(async {
        let shutdown = CancellationToken::new();
        let signal = shutdown.clone();
        tokio::spawn(async move {
            let mut term =
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(term) => term,
                    Err(_) => {
                        let _ = tokio::signal::ctrl_c().await;
                        signal.cancel();
                        return;
                    }
                };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            tracing::info!("shutting down");
            signal.cancel();
        });
        cairn_agent::run::run(args, shutdown).await
    });
    {
        let _runtime = runtime.enter();
        telemetry.shutdown();
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("cairn-agent: {err:#}");
            ExitCode::FAILURE
        }
    }
}
