//! `cairnctl repo`.

use std::process::ExitCode;

/// Arguments of `cairnctl repo`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `cairnctl repo`.
pub async fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("cairnctl repo is not implemented yet")
}
