//! `cairnctl validate`.

use std::process::ExitCode;

/// Arguments of `cairnctl validate`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `cairnctl validate`.
pub async fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("cairnctl validate is not implemented yet")
}
