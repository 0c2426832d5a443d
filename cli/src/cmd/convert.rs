//! `cairnctl convert`.

use std::process::ExitCode;

/// Arguments of `cairnctl convert`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `cairnctl convert`.
pub async fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("cairnctl convert is not implemented yet")
}
