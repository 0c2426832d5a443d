//! `cairnctl repo backup PATH|-`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use cairn_repo::dedup::{BackupOptions, ParentChoice, Snapshot, backup_stream, backup_tree};

use super::open::{RepoArgs, print_json};
use super::progress::bar;

/// Arguments of `backup`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A directory, or `-` for stdin.
    pub source: String,
    /// Name of the stream when backing up stdin.
    #[arg(long, default_value = "stdin")]
    pub stream_name: String,
    /// Tag the snapshot (`key=value`, repeatable).
    #[arg(long = "tag", value_name = "KEY=VALUE")]
    pub tags: Vec<String>,
    /// Parent snapshot id, or `none` (default: the newest of the same host and path).
    #[arg(long)]
    pub parent: Option<String>,
}

/// Runs `backup`.
pub async fn run(repo: &RepoArgs, args: Args) -> anyhow::Result<ExitCode> {
    let opened = repo.open().await?;
    let mut tags = BTreeMap::new();
    for tag in &args.tags {
        let (k, v) = tag
            .split_once('=')
            .with_context(|| format!("--tag {tag:?} is not KEY=VALUE"))?;
        if k.is_empty() {
            bail!("--tag {tag:?} has an empty key");
        }
        tags.insert(k.to_string(), v.to_string());
    }
    let parent = match args.parent.as_deref() {
        None => ParentChoice::Auto,
        Some("none") => ParentChoice::None,
        Some(id) => ParentChoice::Snapshot(opened.find_snapshot(id).await?.id),
    };
    let options = BackupOptions { tags, parent };
    let (progress, visible) = bar(repo.json, "backing up");
    let snapshot = if args.source == "-" {
        backup_stream(
            &opened,
            &args.stream_name,
            tokio::io::stdin(),
            &options,
            None,
            progress,
        )
        .await?
    } else {
        backup_tree(&opened, &PathBuf::from(&args.source), &options, progress).await?
    };
    if let Some(b) = visible {
        b.finish_and_clear();
    }
    report(repo.json, &snapshot)?;
    Ok(ExitCode::SUCCESS)
}

fn report(json: bool, s: &Snapshot) -> anyhow::Result<()> {
    if json {
        return print_json(s);
    }
    let secs = s.end_time.duration_since(s.time).as_secs_f64().max(0.001);
    let mb = s.summary.bytes as f64 / 1e6;
    println!("snapshot {} saved", s.id.short());
    println!(
        "  {} files ({} unchanged), {} dirs, {:.1} MB in {:.1}s ({:.1} MB/s)",
        s.summary.files,
        s.summary.unchanged_files,
        s.summary.dirs,
        mb,
        secs,
        mb / secs
    );
    println!(
        "  new: {} chunks, {:.1} MB raw, {:.1} MB stored; reused {} chunks; uploaded {:.1} MB",
        s.summary.new_chunks,
        s.summary.new_bytes_raw as f64 / 1e6,
        s.summary.new_bytes_stored as f64 / 1e6,
        s.summary.reused_chunks,
        s.summary.uploaded_bytes as f64 / 1e6
    );
    Ok(())
}
