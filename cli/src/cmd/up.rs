//! `cairnctl up`: standalone mode on this host until Ctrl-C.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::standalone::{Stack, StackOptions};

/// Arguments of `cairnctl up`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where everything lives (API server store, certificates, repository, logs). A second
    /// `up` on the same directory resumes with everything as it was.
    #[arg(long, default_value = "cairn-data", env = "CAIRN_DATA_DIR")]
    pub data_dir: PathBuf,
    /// How long the agent may be away before its actions fail: a duration such as 90s, 5m
    /// or 1h (checked here: a bad value is a usage error, not a control plane that will not
    /// start).
    #[arg(long, default_value = "5m", value_parser = go_duration)]
    pub agent_grace_period: String,
}

/// A duration for the control plane's flag: a Go duration (`90s`, `5m`, `1h30m`) as written,
/// or whole seconds (`300`) as `300s`.
fn go_duration(text: &str) -> Result<String, String> {
    let text = text.trim();
    if let Ok(seconds) = text.parse::<u64>() {
        return Ok(format!("{seconds}s"));
    }
    crate::exit::parse_timeout(text)?;
    Ok(text.to_string())
}

/// Runs `cairnctl up`.
pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut options = StackOptions::new(&args.data_dir);
    options.agent_grace_period = args.agent_grace_period;
    eprintln!(
        "starting localkube, the control plane and one agent in {} ...",
        args.data_dir.display()
    );
    let stack = Stack::up(options).await?;
    println!(
        "Cairn is running (standalone mode, node {}).",
        stack.node_name
    );
    println!("kubeconfig: {}", stack.kubeconfig.display());
    println!();
    println!("  export KUBECONFIG={}", stack.kubeconfig.display());
    println!("  kubectl get backuprepos,actionsets,backuppolicies,backups,restores");
    println!();
    println!(
        "gRPC API (docs/API.md): {} (endpoint in {}, CA in {})",
        stack.public_api_addr,
        stack.data_dir.join("api/endpoint").display(),
        stack.data_dir.join("api/ca.crt").display()
    );
    println!();
    println!(
        "Logs: {}/logs. Press Ctrl-C to stop.",
        stack.data_dir.display()
    );
    wait_for_signal().await;
    eprintln!("stopping ...");
    stack.shutdown().await?;
    eprintln!(
        "stopped; `cairnctl up --data-dir {}` resumes.",
        args.data_dir.display()
    );
    Ok(ExitCode::SUCCESS)
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
    use super::*;

    #[test]
    fn the_grace_period_takes_durations_and_seconds_and_refuses_the_rest() {
        assert_eq!(go_duration("10m"), Ok("10m".into()));
        assert_eq!(go_duration("300"), Ok("300s".into()));
        assert!(go_duration("five minutes").is_err());
    }
}
