//! `cairnctl repo repair index [--dry-run]`: rebuild the index from the pack headers.

use std::process::ExitCode;

use cairn_repo::dedup::{RepairIndexOptions, repair_index};
use clap::Subcommand;

use super::open::{RepoArgs, print_json};
use super::progress::bar;

/// `repair` subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Rebuild index/ from the pack headers: commits every pack whose header opens, drops packs
    /// the store lacks, replaces index objects that do not open (run it when no prune runs).
    Index {
        /// Report what would change; write and delete nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

/// Runs `repair`.
pub async fn run(repo: &RepoArgs, command: Command) -> anyhow::Result<ExitCode> {
    let opened = repo.open().await?;
    match command {
        Command::Index { dry_run } => {
            let (progress, visible) = bar(repo.json, "repairing");
            let report = repair_index(&opened, &RepairIndexOptions { dry_run }, progress).await?;
            if let Some(b) = visible {
                b.finish_and_clear();
            }
            if repo.json {
                print_json(&report)?;
                return Ok(ExitCode::SUCCESS);
            }
            for e in &report.unreadable_indexes {
                println!("unreadable index: {e}");
            }
            for e in &report.unreadable_gc_lists {
                println!(
                    "unreadable condemned list: {e}{}",
                    if dry_run { "" } else { " (removed)" }
                );
            }
            for e in &report.unreadable_packs {
                println!("cannot index: {e} (a pack header cannot be rebuilt)");
            }
            println!(
                "{} index objects, {} packs: {} packs indexed ({} recovered from headers, {} missing dropped, {} condemned left out), {} content lists recovered",
                report.indexes,
                report.packs,
                report.packs_indexed,
                report.packs_recovered,
                report.missing_packs_dropped,
                report.condemned_left_out,
                report.segments_recovered
            );
            match (report.needed, dry_run, report.new_index) {
                (false, _, _) => println!("the index is complete: nothing to repair"),
                (true, true, _) => println!("dry run: nothing written"),
                (true, false, Some(id)) => println!(
                    "wrote index {} replacing {} index objects",
                    id.short(),
                    report.removed_indexes
                ),
                (true, false, None) => println!("repaired"),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
