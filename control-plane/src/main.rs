//! `cairn-control-plane`: reconciles the data-protection CRDs and serves the agent API.

use std::process::ExitCode;

use cairn_control_plane::args::{Args, Command, LogFormat};
use clap::Parser;
use tokio_util::sync::CancellationToken;

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
        return match cairn_control_plane::ca_cmd::run(ca) {
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
