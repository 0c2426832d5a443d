//! `cairnctl`: the Cairn command line.

use std::process::ExitCode;

use cairn_cli::cmd;
use clap::{Parser, Subcommand};

/// Cairn: data protection for stateful workloads on Kubernetes (KubeBlocks data-protection API).
#[derive(Debug, Parser)]
#[command(name = "cairnctl", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check manifests against the API types, the CRD schema rules and the semantic checks.
    Validate(cmd::validate::Args),
    /// Convert objects of the old API (BackupTool, RestoreJob, old BackupPolicy/Backup) to the new one.
    Convert(cmd::convert::Args),
    /// Print the CustomResourceDefinitions generated from the API types.
    Crds(cmd::crds::Args),
    /// Work with a backup repository directly (init, backup, restore, snapshots, forget, prune, check).
    Repo(cmd::repo::Args),
    /// Run standalone mode: localkube, the control plane and one agent, until Ctrl-C.
    Up(cmd::up::Args),
    /// The main job in one run: standalone mode, a workload, a backup with live progress, a
    /// restore into a new PVC, proof that the data came back, and a summary.
    Quickstart(cmd::quickstart::Args),
    /// Create, list, describe and delete Backups (progress bars, --json, --wait).
    Backup(cmd::backup::Args),
    /// Create, list and describe Restores into new PVCs (progress, --json, --wait).
    Restore(cmd::restore::Args),
}

fn main() -> ExitCode {
    cairn_repo::memory::limit_malloc_arenas();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("cairnctl: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Validate(args) => cmd::validate::run(args).await,
            Command::Convert(args) => cmd::convert::run(args).await,
            Command::Crds(args) => cmd::crds::run(args).await,
            Command::Repo(args) => cmd::repo::run(args).await,
            Command::Up(args) => cmd::up::run(args).await,
            Command::Quickstart(args) => cmd::quickstart::run(args).await,
            Command::Backup(args) => cmd::backup::run(args).await,
            Command::Restore(args) => cmd::restore::run(args).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("cairnctl: {err:#}");
            ExitCode::FAILURE
        }
    }
}
