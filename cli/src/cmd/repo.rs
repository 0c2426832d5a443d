//! `cairnctl repo`: work with a deduplicating backup repository directly: init, backup,
//! restore, snapshots, forget, prune, check, repair, stat, keys
//! (docs/FORMAT.md).
//!
//! The repository is named by `--repo URL` (`file:///p`, `s3://bucket/prefix?endpoint=..`,
//! `gs://`, `az://`, `memory://`) or by a datasafed config (`-c datasafed.conf`, plus
//! `--path` inside it); the password comes from `CAIRN_REPO_PASSWORD` or `--password-file`.
//! Progress bars go to a terminal; `--json` prints machine-readable results instead.

mod backup;
mod check;
mod forget;
mod init;
mod key;
mod open;
mod progress;
mod prune;
mod repair;
mod restore;
mod snapshots;
mod stat;

use std::process::ExitCode;

use clap::Subcommand;

pub use open::RepoArgs;

/// Arguments of `cairnctl repo`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub repo: Box<RepoArgs>,
    #[command(subcommand)]
    pub command: Command,
}

/// `cairnctl repo` subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a repository (a random master key wrapped by the password).
    Init(Box<init::Args>),
    /// Back up a directory, or stdin with `-`.
    Backup(Box<backup::Args>),
    /// Restore a snapshot (or `latest`) into a directory, or to stdout with `--target -`.
    Restore(Box<restore::Args>),
    /// List snapshots.
    Snapshots(snapshots::Args),
    /// Remove snapshots by id or by a retention policy.
    Forget(Box<forget::Args>),
    /// Delete data no snapshot needs (two-phase, safe with concurrent backups).
    Prune(Box<prune::Args>),
    /// Verify the repository structure, and with --read-data every blob.
    Check(Box<check::Args>),
    /// Repair what `check` found: `repair index` rebuilds the index from the pack headers.
    #[command(subcommand)]
    Repair(repair::Command),
    /// Show repository totals.
    Stat(stat::Args),
    /// Manage the passwords (key files) that unlock the repository.
    #[command(subcommand)]
    Key(key::Command),
    /// List the cluster's BackupRepos (kubeconfig from the usual places).
    List(crate::cmd::backup::repo_list::Args),
}

/// Runs `cairnctl repo`.
pub async fn run(common: &crate::cmd::backup::ObjectArgs, args: Args) -> anyhow::Result<ExitCode> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    match args.command {
        Command::Init(a) => init::run(&args.repo, *a).await,
        Command::Backup(a) => backup::run(&args.repo, *a).await,
        Command::Restore(a) => restore::run(&args.repo, *a).await,
        Command::Snapshots(a) => snapshots::run(&args.repo, a).await,
        Command::Forget(a) => forget::run(&args.repo, *a).await,
        Command::Prune(a) => prune::run(&args.repo, *a).await,
        Command::Check(a) => check::run(&args.repo, *a).await,
        Command::Repair(c) => repair::run(&args.repo, c).await,
        Command::Stat(a) => stat::run(&args.repo, a).await,
        Command::Key(c) => key::run(&args.repo, c).await,
        Command::List(a) => crate::cmd::backup::repo_list::run(common, a, args.repo.json).await,
    }
}
