//! `cairnctl repo snapshots`.

use std::process::ExitCode;

use super::open::{RepoArgs, print_json};

/// Arguments of `snapshots`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `snapshots`.
pub async fn run(repo: &RepoArgs, _args: Args) -> anyhow::Result<ExitCode> {
    let opened = repo.open().await?;
    // One damaged snapshot must not hide the others: list those that open, name the rest.
    let (snapshots, damaged) = opened.list_snapshots_lenient().await?;
    for e in &damaged {
        eprintln!("warning: {e} (`cairnctl repo check` says what repairs it)");
    }
    if repo.json {
        print_json(&snapshots)?;
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<10} {:<20} {:<12} {:<7} {:>12}  {:<30} tags",
        "id", "time", "host", "kind", "size", "paths"
    );
    for s in &snapshots {
        let tags: Vec<String> = s.tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
        println!(
            "{:<10} {:<20} {:<12} {:<7} {:>12}  {:<30} {}",
            s.id.short(),
            s.time.strftime("%Y-%m-%d %H:%M:%S"),
            s.host,
            format!("{:?}", s.kind).to_lowercase(),
            s.summary.bytes,
            s.paths.join(","),
            tags.join(",")
        );
    }
    println!("{} snapshots", snapshots.len());
    Ok(ExitCode::SUCCESS)
}
