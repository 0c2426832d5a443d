//! `cairnctl repo restore SNAPSHOT|latest --target DIR|- [--include SUBPATH]`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::bail;
use cairn_repo::dedup::{
    NodeType, RestoreOptions, SnapshotKind, restore_stream, restore_tree_outcome,
};

use super::open::{RepoArgs, print_json};
use super::progress::bar;

/// Arguments of `restore`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Snapshot id, unique id prefix, or `latest`.
    pub snapshot: String,
    /// Target directory, or `-` to write a stream snapshot (or one file) to stdout.
    #[arg(long)]
    pub target: String,
    /// Restore only this path of the snapshot.
    #[arg(long)]
    pub include: Option<String>,
    /// Do not restore owners (default: restore them when running as root).
    #[arg(long)]
    pub no_owners: bool,
}

/// Runs `restore`.
pub async fn run(repo: &RepoArgs, args: Args) -> anyhow::Result<ExitCode> {
    let opened = repo.open().await?;
    let snapshot = opened.find_snapshot(&args.snapshot).await?;
    if args.target == "-" {
        let node = match (&snapshot.kind, &args.include) {
            (SnapshotKind::Stream, _) => snapshot.root.clone(),
            (SnapshotKind::Tree, Some(path)) => find_file(&opened, &snapshot, path).await?,
            (SnapshotKind::Tree, None) => bail!(
                "snapshot {} is a directory tree: give --target DIR, or --include FILE with --target -",
                snapshot.id.short()
            ),
        };
        let written = restore_stream(
            &opened,
            &node,
            tokio::io::stdout(),
            cairn_repo::progress::no_progress(),
        )
        .await?;
        if repo.json {
            eprintln!(
                "{}",
                serde_json::json!({ "snapshot": snapshot.id, "bytes": written })
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    let (progress, visible) = bar(repo.json, "restoring");
    let options = RestoreOptions {
        include: args.include,
        owners: args.no_owners.then_some(false),
    };
    let started = std::time::Instant::now();
    let outcome = restore_tree_outcome(
        &opened,
        &snapshot,
        &PathBuf::from(&args.target),
        &options,
        progress,
    )
    .await?;
    if let Some(b) = visible {
        b.finish_and_clear();
    }
    let summary = outcome.summary;
    let damaged: Vec<serde_json::Value> = outcome
        .damaged
        .iter()
        .map(|d| {
            serde_json::json!({
                "path": d.path.to_string_lossy(),
                "reason": d.reason,
                "kept_as": d.kept_as.as_ref().map(|p| p.to_string_lossy()),
            })
        })
        .collect();
    if repo.json {
        print_json(
            &serde_json::json!({ "snapshot": snapshot.id, "summary": summary, "damaged": damaged, "seconds": started.elapsed().as_secs_f64() }),
        )?;
    } else {
        let secs = started.elapsed().as_secs_f64().max(0.001);
        println!(
            "restored {} files, {} dirs, {:.1} MB in {:.1}s ({:.1} MB/s)",
            summary.files,
            summary.dirs,
            summary.bytes as f64 / 1e6,
            secs,
            summary.bytes as f64 / 1e6 / secs
        );
    }
    if outcome.damaged.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    // Every damaged path, after everything intact was restored; a non-zero exit.
    eprintln!(
        "error: {} paths of snapshot {} could not be restored intact (the repository is damaged; `cairnctl repo check` says which objects):",
        outcome.damaged.len(),
        snapshot.id.short()
    );
    for d in &outcome.damaged {
        match &d.kept_as {
            Some(kept) => eprintln!(
                "  {}: {} (its intact parts are in {}; damaged ranges read as zeros)",
                d.path.display(),
                d.reason,
                kept.display()
            ),
            None => eprintln!("  {}: {}", d.path.display(), d.reason),
        }
    }
    Ok(ExitCode::FAILURE)
}

async fn find_file(
    repo: &cairn_repo::dedup::Repository,
    snapshot: &cairn_repo::dedup::Snapshot,
    path: &str,
) -> anyhow::Result<cairn_repo::dedup::Node> {
    let mut node = snapshot.root.clone();
    for part in path.split('/').filter(|p| !p.is_empty()) {
        let Some(subtree) = node.subtree else {
            bail!("{path} is not in snapshot {}", snapshot.id.short())
        };
        let tree = repo.read_tree(&subtree).await?;
        node = tree
            .nodes
            .into_iter()
            .find(|n| n.raw_name() == part.as_bytes())
            .ok_or_else(|| anyhow::anyhow!("{path} is not in snapshot {}", snapshot.id.short()))?;
    }
    if node.kind != NodeType::File {
        bail!("{path} is not a regular file; restore it to a directory");
    }
    Ok(node)
}
