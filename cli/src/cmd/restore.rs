//! `cairnctl restore create|list|describe|delete`: thin, friendly wrappers over Restore objects (a
//! Backup restored into new PersistentVolumeClaims), with progress, `--json` and `--wait`,
//! the same against standalone mode and a real cluster.

pub mod create;
pub mod delete;
pub mod describe;
pub mod list;
pub mod to_time;
pub mod wait;

use std::process::ExitCode;

use clap::Subcommand;

use crate::cmd::backup::ObjectArgs;

/// Arguments of `cairnctl restore`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: Command,
}

/// `cairnctl restore` subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Restore a Backup into new PersistentVolumeClaims (and follow it with --wait).
    Create(Box<create::Args>),
    /// List Restores: backup, phase, duration, age.
    #[command(alias = "ls")]
    List(list::Args),
    /// Show one Restore: its backup, stages, actions and why it failed.
    Describe(describe::Args),
    /// Print the logs of the Restore's actions (its Jobs' pods; `-f` follows them).
    Logs(crate::cmd::backup::logs::Args),
    /// Delete Restores (the PVCs they restored into stay).
    #[command(alias = "rm")]
    Delete(delete::Args),
}

/// Runs `cairnctl restore`.
pub async fn run(common: &ObjectArgs, args: Args) -> anyhow::Result<ExitCode> {
    let scope = common.scope().await?;
    match args.command {
        Command::Create(a) => {
            scope.refuse_list_options("restore create")?;
            create::run(&scope, *a).await
        }
        Command::List(a) => list::run(&scope, a).await,
        Command::Describe(a) => describe::run(&scope, a).await,
        Command::Delete(a) => {
            scope.refuse_list_options("restore delete")?;
            delete::run(&scope, a).await
        }
        Command::Logs(a) => {
            use crate::cmd::backup::logs;
            scope.refuse_list_options("restore logs")?;
            let restore =
                crate::cmd::backup::get::<cairn_api::restore::Restore>(&scope, &a.name).await?;
            let sources = logs::choose(
                logs::restore_sources(&restore),
                &a.actions,
                &format!("Restore {}", a.name),
            )?;
            logs::print(&scope.client, &sources, &a).await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
