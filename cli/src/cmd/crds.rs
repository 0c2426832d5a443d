//! `cairnctl crds`.

use std::process::ExitCode;

/// Arguments of `cairnctl crds`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `cairnctl crds`.
pub async fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("cairnctl crds is not implemented yet")
}
