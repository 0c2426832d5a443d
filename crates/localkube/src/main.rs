//! The `localkube` binary: serves until SIGTERM or Ctrl-C and prints where its kubeconfig is.

use anyhow::Context;
use clap::Parser;
use std::net::SocketAddr;
use std::path::PathBuf;

/// An embedded Kubernetes-compatible API server with a process kubelet.
#[derive(Debug, Parser)]
#[command(name = "localkube", version)]
struct Args {
    /// Where the store, certificates, kubeconfig and pod directories live.
    #[arg(long, env = "LOCALKUBE_DATA_DIR")]
    data_dir: PathBuf,
    /// The address to serve HTTPS on (loopback by default).
    #[arg(long, default_value = "127.0.0.1:6443")]
    listen: SocketAddr,
    /// The Node name and its kubernetes.io/hostname label (default: the host name).
    #[arg(long)]
    node_name: Option<String>,
    /// Do not run pods as processes (API server only).
    #[arg(long)]
    no_kubelet: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let mut builder = localkube::Server::builder()
        .data_dir(&args.data_dir)
        .listen(args.listen)
        .kubelet(!args.no_kubelet);
    if let Some(n) = &args.node_name {
        builder = builder.node_name(n);
    }
    let server = builder
        .start()
        .await
        .with_context(|| format!("starting localkube in {}", args.data_dir.display()))?;
    println!("localkube is serving on {}", server.url());
    println!("kubeconfig: {}", server.kubeconfig_path().display());
    println!("export KUBECONFIG={}", server.kubeconfig_path().display());
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    eprintln!("localkube: shutting down");
    server.shutdown().await.context("shutting down")?;
    Ok(())
}
