//! `cairnctl repo prune [--dry-run]`.

use std::process::ExitCode;

use cairn_repo::dedup::gc::{PruneOptions, PruneReport, prune};

use super::open::{RepoArgs, print_json};
use super::progress::bar;

/// Arguments of `prune`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Report what would be condemned, change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// Runs `prune`.
pub async fn run(repo: &RepoArgs, args: Args) -> anyhow::Result<ExitCode> {
    let opened = repo.open().await?;
    let (progress, visible) = bar(repo.json, "pruning");
    let report = prune(
        &opened,
        &PruneOptions {
            dry_run: args.dry_run,
        },
        progress,
    )
    .await?;
    if let Some(b) = visible {
        b.finish_and_clear();
    }
    print(repo.json, &report)?;
    Ok(ExitCode::SUCCESS)
}

/// Prints a prune report.
pub fn print(json: bool, r: &PruneReport) -> anyhow::Result<()> {
    if json {
        return print_json(r);
    }
    println!(
        "{} snapshots, {} packs ({} referenced)",
        r.snapshots, r.packs, r.referenced_packs
    );
    println!(
        "condemned {} packs ({:.1} MB)",
        r.condemned,
        r.condemned_bytes as f64 / 1e6
    );
    println!(
        "swept {} lists: deleted {} packs ({:.1} MB), resurrected {}",
        r.swept_lists,
        r.deleted_packs,
        r.deleted_bytes as f64 / 1e6,
        r.resurrected
    );
    if r.waiting_lists > 0 {
        let sessions: Vec<String> = r.blocking_sessions.iter().map(|s| s.short()).collect();
        println!(
            "{} lists wait for backups in progress to end: {}",
            r.waiting_lists,
            sessions.join(", ")
        );
    }
    if r.tombstones > 0 {
        println!(
            "{} lists kept as tombstones: the store rejected the index rewrite",
            r.tombstones
        );
    }
    if !r.dead_sessions.is_empty() {
        let sessions: Vec<String> = r.dead_sessions.iter().map(|s| s.short()).collect();
        println!(
            "removed the markers of {} dead sessions: {}",
            r.dead_sessions.len(),
            sessions.join(", ")
        );
    }
    if r.staging_files > 0 {
        println!(
            "removed {} staging files of interrupted uploads ({:.1} MB)",
            r.staging_files,
            r.staging_bytes as f64 / 1e6
        );
    }
    if let Some(e) = &r.mark_error {
        println!("{e}");
    }
    Ok(())
}
