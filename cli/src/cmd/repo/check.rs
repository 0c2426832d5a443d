//! `cairnctl repo check [--read-data | --read-data-subset N%]`; exits 1 on errors.

use std::process::ExitCode;

use anyhow::Context;
use cairn_repo::dedup::{CheckOptions, check};

use super::open::{RepoArgs, print_json};
use super::progress::bar;

/// Arguments of `check`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Read and authenticate every blob.
    #[arg(long)]
    pub read_data: bool,
    /// Read a random sample of the packs, e.g. `10%`.
    #[arg(long)]
    pub read_data_subset: Option<String>,
}

/// Runs `check`.
pub async fn run(repo: &RepoArgs, args: Args) -> anyhow::Result<ExitCode> {
    let opened = repo.open().await?;
    let subset = match &args.read_data_subset {
        None => None,
        Some(text) => {
            let number = text.trim().trim_end_matches('%');
            let value: f64 = number
                .parse()
                .with_context(|| format!("--read-data-subset {text:?} is not a percentage"))?;
            Some(if text.contains('%') {
                value / 100.0
            } else {
                value
            })
        }
    };
    let (progress, visible) = bar(repo.json, "checking");
    let report = check(
        &opened,
        &CheckOptions {
            read_data: args.read_data,
            read_data_subset: subset,
        },
        progress,
    )
    .await?;
    if let Some(b) = visible {
        b.finish_and_clear();
    }
    if repo.json {
        print_json(&report)?;
    } else {
        for w in &report.warnings {
            println!("warning: {w}");
        }
        for e in &report.errors {
            println!("error: {e}");
        }
        for r in &report.repairs {
            println!("repair: {} ({})", r.command, r.fixes);
        }
        println!(
            "{} snapshots, {} packs, {} packs read ({} blobs): {}",
            report.snapshots,
            report.packs,
            report.packs_read,
            report.blobs_read,
            if report.is_ok() {
                "no errors".to_string()
            } else {
                format!("{} errors", report.errors.len())
            }
        );
    }
    Ok(if report.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
