//! `cairnctl repo forget [IDS…] [--keep-*]`: the plan is a value, printed with `--dry-run`.

use std::process::ExitCode;

use anyhow::{Context, bail};
use cairn_repo::dedup::gc::{
    ForgetPlan, GroupBy, KeepPolicy, PruneOptions, forget, plan_forget, prune,
};
use jiff::SignedDuration;

use super::open::{RepoArgs, print_json};
use super::progress::bar;

/// Arguments of `forget`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Snapshot ids (or unique prefixes) to forget.
    pub ids: Vec<String>,
    /// Keep the newest N snapshots.
    #[arg(long)]
    pub keep_last: Option<usize>,
    /// Keep the newest snapshot of each of the newest N hours.
    #[arg(long)]
    pub keep_hourly: Option<usize>,
    /// … days.
    #[arg(long)]
    pub keep_daily: Option<usize>,
    /// … weeks.
    #[arg(long)]
    pub keep_weekly: Option<usize>,
    /// … months.
    #[arg(long)]
    pub keep_monthly: Option<usize>,
    /// … years.
    #[arg(long)]
    pub keep_yearly: Option<usize>,
    /// Keep everything within this duration of the newest snapshot (e.g. 7d, 36h, 2w, 1y).
    #[arg(long)]
    pub keep_within: Option<String>,
    /// Keep snapshots with this tag (`key` or `key=value`, repeatable).
    #[arg(long)]
    pub keep_tag: Vec<String>,
    /// Group snapshots by host, paths, tags (comma-separated).
    #[arg(long, default_value = "host,paths")]
    pub group_by: String,
    /// Show the plan, forget nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Prune afterwards.
    #[arg(long)]
    pub prune: bool,
}

/// Parses `7d`, `36h`, `90m`, `2w`, `1y` (days of 24 h, years of 365 days).
pub fn parse_duration(text: &str) -> anyhow::Result<SignedDuration> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (n, unit) = t.split_at(split);
    let n: i64 = n
        .parse()
        .with_context(|| format!("--keep-within {text:?} needs a number and a unit like 7d"))?;
    let hours = match unit {
        "h" => n,
        "d" => n * 24,
        "w" => n * 24 * 7,
        "m" | "mo" => n * 24 * 30,
        "y" => n * 24 * 365,
        "min" => return Ok(SignedDuration::from_mins(n)),
        _ => bail!("--keep-within {text:?}: unit {unit:?} is not one of min, h, d, w, mo, y"),
    };
    Ok(SignedDuration::from_hours(hours))
}

/// Runs `forget`.
pub async fn run(repo: &RepoArgs, args: Args) -> anyhow::Result<ExitCode> {
    let opened = repo.open().await?;
    let policy = KeepPolicy {
        last: args.keep_last,
        hourly: args.keep_hourly,
        daily: args.keep_daily,
        weekly: args.keep_weekly,
        monthly: args.keep_monthly,
        yearly: args.keep_yearly,
        within: args
            .keep_within
            .as_deref()
            .map(parse_duration)
            .transpose()?,
        tags: args.keep_tag.clone(),
    };
    let removals = if !args.ids.is_empty() {
        if !policy.is_empty() {
            bail!("give snapshot ids or a --keep-* policy, not both");
        }
        let mut ids = Vec::new();
        for spec in &args.ids {
            // By id without opening it, so a damaged snapshot can be forgotten too.
            ids.push(opened.resolve_snapshot_id(spec).await?);
        }
        ids
    } else {
        if policy.is_empty() {
            bail!("no snapshot ids and no --keep-* policy: refusing to guess what to forget");
        }
        let plan: ForgetPlan = plan_forget(
            &opened.list_snapshots().await?,
            &policy,
            GroupBy::parse(&args.group_by)?,
        );
        if repo.json {
            print_json(&plan)?;
        } else {
            for group in &plan.groups {
                println!(
                    "group {}: keep {}, remove {}",
                    group.group,
                    group.keep.len(),
                    group.remove.len()
                );
                for d in &group.keep {
                    println!(
                        "  keep   {} {} ({})",
                        d.id.short(),
                        d.time,
                        d.reasons.join(", ")
                    );
                }
                for d in &group.remove {
                    println!("  remove {} {}", d.id.short(), d.time);
                }
            }
        }
        plan.removals()
    };
    if args.dry_run {
        return Ok(ExitCode::SUCCESS);
    }
    forget(&opened, &removals).await?;
    if !repo.json {
        println!("forgot {} snapshots", removals.len());
    }
    if args.prune {
        let (progress, visible) = bar(repo.json, "pruning");
        let report = prune(&opened, &PruneOptions::default(), progress).await?;
        if let Some(b) = visible {
            b.finish_and_clear();
        }
        super::prune::print(repo.json, &report)?;
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(
            parse_duration("7d").ok(),
            Some(SignedDuration::from_hours(168))
        );
        assert_eq!(
            parse_duration("36h").ok(),
            Some(SignedDuration::from_hours(36))
        );
        assert!(parse_duration("7").is_err());
        assert!(parse_duration("x7d").is_err());
    }
}
