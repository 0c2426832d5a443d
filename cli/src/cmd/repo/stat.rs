//! `cairnctl repo stat`: snapshots, packs and bytes.

use std::process::ExitCode;

use cairn_repo::dedup::index::IndexView;

use super::open::{RepoArgs, print_json};

/// Arguments of `stat`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `stat`.
pub async fn run(repo: &RepoArgs, _args: Args) -> anyhow::Result<ExitCode> {
    let opened = repo.open().await?;
    let snapshots = opened.list_snapshots().await?;
    let view = IndexView::load(opened.store(), opened.keys()).await?;
    let stored: u64 = view.packs.values().map(|p| p.stored).sum();
    let raw: u64 = view.packs.values().map(|p| p.raw).sum();
    let blobs: u64 = view.packs.values().map(|p| p.blobs as u64).sum();
    let logical: u64 = snapshots.iter().map(|s| s.summary.bytes).sum();
    let value = serde_json::json!({
        "id": opened.config().id,
        "snapshots": snapshots.len(),
        "packs": view.packs.len(),
        "blobs": blobs,
        "stored_bytes": stored,
        "raw_bytes": raw,
        "logical_bytes": logical,
        "indexes": view.indexes.len(),
        "hooks": view.hooks.len(),
        "segments": view.segments.len(),
    });
    if repo.json {
        print_json(&value)?;
    } else {
        println!("repository {}", opened.config().id);
        println!(
            "  {} snapshots holding {:.1} MB",
            snapshots.len(),
            logical as f64 / 1e6
        );
        println!(
            "  {} packs, {} blobs: {:.1} MB stored for {:.1} MB of unique data",
            view.packs.len(),
            blobs,
            stored as f64 / 1e6,
            raw as f64 / 1e6
        );
        println!(
            "  {} indexes, {} segments, {} hooks",
            view.indexes.len(),
            view.segments.len(),
            view.hooks.len()
        );
    }
    Ok(ExitCode::SUCCESS)
}
