//! `cairnctl quickstart write-dataset` (hidden): the fallback workload's process. It writes the
//! data set into its volume (unless a previous run completed it), then stays up like a
//! service until SIGTERM or Ctrl-C.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;

use super::dataset::{self, MANIFEST};

/// Arguments of `cairnctl quickstart write-dataset`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Directory to fill.
    #[arg(long)]
    pub dir: PathBuf,
    /// Bytes of data to write.
    #[arg(long)]
    pub bytes: u64,
    /// Seed of the content (the same seed writes the same bytes).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Exit after writing instead of running until stopped.
    #[arg(long)]
    pub then_exit: bool,
}

/// Runs the writer.
pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    if args.dir.join(MANIFEST).is_file() {
        println!("data set already complete in {}", args.dir.display());
    } else {
        let dir = args.dir.clone();
        let (bytes, seed) = (args.bytes, args.seed);
        let manifest =
            tokio::task::spawn_blocking(move || dataset::write(&dir, bytes, seed, &mut |_| {}))
                .await
                .context("the writer thread panicked")??;
        println!(
            "wrote {} files ({} bytes) into {}",
            manifest.files,
            manifest.bytes,
            args.dir.display()
        );
    }
    if args.then_exit {
        return Ok(ExitCode::SUCCESS);
    }
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("listening for SIGTERM")?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    Ok(ExitCode::SUCCESS)
}
