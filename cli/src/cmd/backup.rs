//! `cairnctl backup create|list|describe|delete|windows`: thin, friendly wrappers over Backup objects,
//! with live progress on a terminal, plain lines in a pipe, `--json` for machines and `--wait`.
//! They work the same against standalone mode (localkube) and a real cluster.
//!
//! `kube` (cluster connection), `table` (kubectl-style output) and `wait` (following an object
//! until it finishes) are shared with `cairnctl restore` and `cairnctl repo list`.

pub mod create;
pub mod delete;
pub mod describe;
pub mod import;
pub mod kube;
pub mod list;
pub mod repo_list;
pub mod table;
pub mod wait;
pub mod windows;

use std::process::ExitCode;

use clap::Subcommand;

pub use self::kube::KubeArgs;

/// Arguments of `cairnctl backup`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub common: ObjectArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// The options of every command on cluster objects (`backup`, `restore`, `schedule`).
#[derive(Debug, clap::Args)]
pub struct ObjectArgs {
    #[command(flatten)]
    pub kube: KubeArgs,
    /// Namespace of the objects (default: the kubeconfig's namespace).
    #[arg(short = 'n', long, global = true)]
    pub namespace: Option<String>,
    /// Print JSON instead of text: JSON lines while waiting, the object(s) at the end.
    #[arg(long, global = true)]
    pub json: bool,
}

impl ObjectArgs {
    /// Connects to the cluster; the namespace is `-n`, else the kubeconfig's.
    pub async fn scope(&self) -> anyhow::Result<Scope> {
        let connection = self.kube.connect().await?;
        Ok(Scope {
            client: connection.client,
            namespace: self
                .namespace
                .clone()
                .unwrap_or(connection.default_namespace),
            json: self.json,
        })
    }
}

/// `cairnctl backup` subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a Backup with a method of a BackupPolicy (and follow it with --wait).
    Create(create::Args),
    /// List Backups: phase, size, duration, age.
    #[command(alias = "ls")]
    List(list::Args),
    /// Show one Backup: where its data is, its progress and actions, why it failed.
    Describe(describe::Args),
    /// Delete a Backup (and, with deletionPolicy Delete, its data in the repository).
    #[command(alias = "rm")]
    Delete(delete::Args),
    /// Show what point-in-time restores can reach: per policy, the earliest and latest
    /// restorable times of its Continuous backups, and the gaps.
    Windows(windows::Args),
    /// Rebuild Backups from the kubeblocks-backup.json manifests in a BackupRepo's repository
    /// (backups another cluster took), so that they restore here. Dry run unless --apply.
    Import(import::Args),
}

/// Runs `cairnctl backup`.
pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let explicit_namespace = args.common.namespace.clone();
    let scope = args.common.scope().await?;
    match args.command {
        Command::Create(a) => create::run(&scope, a).await,
        Command::List(a) => list::run(&scope, a).await,
        Command::Describe(a) => describe::run(&scope, a).await,
        Command::Delete(a) => delete::run(&scope, a).await,
        Command::Windows(a) => windows::run(&scope, a).await,
        Command::Import(a) => import::run(&scope, explicit_namespace, a).await,
    }
}

/// What every subcommand works with.
pub struct Scope {
    pub client: ::kube::Client,
    pub namespace: String,
    pub json: bool,
}
