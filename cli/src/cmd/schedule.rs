//! `cairnctl schedule list|describe|enable|disable|trigger`: BackupSchedules as users handle
//! them: which entries exist and fire when, switching entries on and off (a merge patch of
//! `spec.schedules`, as `kubectl edit` would), and a backup now with an entry's method,
//! retention and parameters.

use std::fmt::Write as _;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use cairn_api::backup::Backup;
use cairn_api::backup_schedule::{BackupSchedule, SchedulePolicy};
use cairn_api::well_known;
use clap::Subcommand;
use jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::cmd::backup::table::{Layout, age, cell, describe_and_print, list_and_print, render};
use crate::cmd::backup::{ObjectArgs, Scope};

/// Arguments of `cairnctl schedule`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: Command,
}

/// `cairnctl schedule` subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// List BackupSchedules: policy, entries (enabled/all), phase, age.
    #[command(alias = "ls")]
    List(ListArgs),
    /// Show one BackupSchedule: each entry's method, cron, retention, state and last run.
    Describe(NameArgs),
    /// Enable entries (all, or those named with --method).
    Enable(ToggleArgs),
    /// Disable entries (all, or those named with --method).
    Disable(ToggleArgs),
    /// Create a Backup now with an entry's method, retention and parameters.
    Trigger(TriggerArgs),
}

/// `schedule list` (`-A`, `-l`, `-o` are global).
#[derive(Debug, clap::Args)]
pub struct ListArgs {}

/// The extra columns of `schedule list -o wide`: each entry's cron expression and when it
/// last fired.
pub const WIDE: [&str; 2] = ["CRON", "LAST-SCHEDULED"];

/// A schedule by name.
#[derive(Debug, clap::Args)]
pub struct NameArgs {
    /// The BackupSchedule.
    pub name: String,
}

/// `schedule enable|disable`.
#[derive(Debug, clap::Args)]
pub struct ToggleArgs {
    /// The BackupSchedule.
    pub name: String,
    /// Only the entries with this name or backup method (repeatable; default: every entry).
    #[arg(long = "method")]
    pub methods: Vec<String>,
}

/// `schedule trigger`.
#[derive(Debug, clap::Args)]
pub struct TriggerArgs {
    /// The BackupSchedule.
    pub name: String,
    /// The entry (its name or backup method); may be left out when the schedule has one entry.
    #[arg(long)]
    pub method: Option<String>,
}

/// Runs `cairnctl schedule`.
pub async fn run(common: &ObjectArgs, args: Args) -> anyhow::Result<ExitCode> {
    let scope = common.scope().await?;
    match args.command {
        Command::List(ListArgs {}) => list_and_print(&scope, "BackupSchedules", table).await,
        Command::Describe(a) => describe(&scope, &a.name).await,
        Command::Enable(a) => {
            scope.refuse_list_options("schedule enable")?;
            toggle(&scope, &a, true).await
        }
        Command::Disable(a) => {
            scope.refuse_list_options("schedule disable")?;
            toggle(&scope, &a, false).await
        }
        Command::Trigger(a) => {
            scope.refuse_list_options("schedule trigger")?;
            trigger(&scope, &a).await
        }
    }
}

fn entry_name(entry: &SchedulePolicy) -> String {
    entry
        .name
        .clone()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| entry.backup_method.clone())
}

fn matches(entry: &SchedulePolicy, wanted: &str) -> bool {
    entry_name(entry) == wanted || entry.backup_method == wanted
}

/// The table `schedule list` prints, by name.
pub fn table(schedules: &[BackupSchedule], layout: Layout, now: Timestamp) -> String {
    let mut sorted: Vec<&BackupSchedule> = schedules.iter().collect();
    sorted.sort_by_key(|s| (s.metadata.namespace.clone(), s.metadata.name.clone()));
    let rows: Vec<Vec<String>> = sorted
        .iter()
        .map(|s| {
            let mut row = Vec::new();
            if layout.namespaces {
                row.push(s.metadata.namespace.clone().unwrap_or_default());
            }
            let enabled: Vec<String> = s
                .spec
                .schedules
                .iter()
                .filter(|e| e.enabled.unwrap_or(false))
                .map(entry_name)
                .collect();
            row.extend([
                s.metadata.name.clone().unwrap_or_default(),
                s.spec.backup_policy_name.clone(),
                format!("{}/{}", enabled.len(), s.spec.schedules.len()),
                cell(Some(&enabled.join(","))),
                cell(
                    s.status
                        .as_ref()
                        .and_then(|st| st.phase)
                        .map(|p| format!("{p:?}"))
                        .as_deref(),
                ),
                age(s.metadata.creation_timestamp.as_ref(), now),
            ]);
            if layout.wide {
                let entries = &s.spec.schedules;
                let crons: Vec<String> = entries
                    .iter()
                    .map(|e| format!("{}={}", entry_name(e), e.cron_expression))
                    .collect();
                let last = s
                    .status
                    .as_ref()
                    .and_then(|st| st.schedules.as_ref())
                    .and_then(|m| {
                        m.values()
                            .filter_map(|e| e.last_schedule_time.clone())
                            .max()
                    })
                    .map(|t| t.0.to_string());
                row.extend([cell(Some(&crons.join(";"))), cell(last.as_deref())]);
            }
            row
        })
        .collect();
    let mut header = Vec::new();
    if layout.namespaces {
        header.push("NAMESPACE");
    }
    header.extend(["NAME", "POLICY", "ENABLED", "ENTRIES", "STATUS", "AGE"]);
    if layout.wide {
        header.extend(WIDE);
    }
    render(&header, &rows)
}

/// `schedule describe` in words.
pub fn describe_text(schedule: &BackupSchedule) -> String {
    let mut out = String::new();
    let status = schedule.status.clone().unwrap_or_default();
    let _ = writeln!(
        out,
        "Name:       {}\nNamespace:  {}\nPolicy:     {}\nStatus:     {}",
        schedule.metadata.name.clone().unwrap_or_default(),
        schedule.metadata.namespace.clone().unwrap_or_default(),
        schedule.spec.backup_policy_name,
        status
            .phase
            .map(|p| format!("{p:?}"))
            .unwrap_or_else(|| "<none>".into())
    );
    if let Some(reason) = status.failure_reason.as_deref().filter(|r| !r.is_empty()) {
        let _ = writeln!(out, "Failure:    {reason}");
    }
    let _ = writeln!(out, "Entries:");
    let rows: Vec<Vec<String>> = schedule
        .spec
        .schedules
        .iter()
        .map(|e| {
            let name = entry_name(e);
            let entry_status = status
                .schedules
                .as_ref()
                .and_then(|m| m.get(&name))
                .cloned()
                .unwrap_or_default();
            vec![
                name,
                e.backup_method.clone(),
                e.cron_expression.clone(),
                if e.enabled.unwrap_or(false) {
                    "yes".into()
                } else {
                    "no".into()
                },
                cell(e.retention_period.as_deref()),
                entry_status
                    .last_schedule_time
                    .map(|t| t.0.to_string())
                    .unwrap_or_else(|| "-".into()),
                cell(entry_status.failure_reason.as_deref()),
            ]
        })
        .collect();
    for line in render(
        &[
            "ENTRY",
            "METHOD",
            "CRON",
            "ENABLED",
            "RETENTION",
            "LAST-SCHEDULED",
            "FAILURE",
        ],
        &rows,
    )
    .lines()
    {
        let _ = writeln!(out, "  {line}");
    }
    out
}

async fn get(scope: &Scope, name: &str) -> anyhow::Result<(Api<BackupSchedule>, BackupSchedule)> {
    let api: Api<BackupSchedule> = Api::namespaced(scope.client.clone(), &scope.namespace);
    let schedule = api
        .get_opt(name)
        .await
        .with_context(|| format!("reading BackupSchedule {}/{name}", scope.namespace))?
        .with_context(|| {
            format!(
                "there is no BackupSchedule {name} in namespace {}",
                scope.namespace
            )
        })?;
    Ok((api, schedule))
}

async fn describe(scope: &Scope, name: &str) -> anyhow::Result<ExitCode> {
    describe_and_print(
        scope,
        "schedule describe",
        name,
        table,
        |schedule: BackupSchedule| async move {
            if scope.json {
                println!("{}", serde_json::to_string_pretty(&schedule)?);
            } else {
                print!("{}", describe_text(&schedule));
            }
            Ok(())
        },
    )
    .await
}

/// The entries with `enabled` set as asked; errors name an entry that does not exist.
pub fn toggled(
    schedule: &BackupSchedule,
    methods: &[String],
    enabled: bool,
) -> anyhow::Result<(Vec<SchedulePolicy>, Vec<String>)> {
    for wanted in methods {
        if !schedule.spec.schedules.iter().any(|e| matches(e, wanted)) {
            let known: Vec<String> = schedule.spec.schedules.iter().map(entry_name).collect();
            bail!(
                "BackupSchedule {} has no entry {wanted} (entries: {})",
                schedule.metadata.name.clone().unwrap_or_default(),
                known.join(", ")
            );
        }
    }
    let mut changed = Vec::new();
    let entries = schedule
        .spec
        .schedules
        .iter()
        .map(|e| {
            let chosen = methods.is_empty() || methods.iter().any(|m| matches(e, m));
            let mut e = e.clone();
            if chosen && e.enabled.unwrap_or(false) != enabled {
                e.enabled = Some(enabled);
                changed.push(entry_name(&e));
            }
            e
        })
        .collect();
    Ok((entries, changed))
}

async fn toggle(scope: &Scope, args: &ToggleArgs, enabled: bool) -> anyhow::Result<ExitCode> {
    let (api, schedule) = get(scope, &args.name).await?;
    let (entries, changed) = toggled(&schedule, &args.methods, enabled)?;
    let verb = if enabled { "enabled" } else { "disabled" };
    if !changed.is_empty() {
        // The whole list, guarded by the resourceVersion read: a concurrent edit fails the
        // patch instead of being overwritten.
        let patch = json!({
            "metadata": {"resourceVersion": schedule.metadata.resource_version},
            "spec": {"schedules": entries}
        });
        api.patch(&args.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .with_context(|| {
                format!("updating BackupSchedule {}/{}", scope.namespace, args.name)
            })?;
    }
    if scope.json {
        println!(
            "{}",
            json!({"kind": "BackupSchedule", "namespace": scope.namespace, "name": args.name,
                   verb: changed})
        );
    } else if changed.is_empty() {
        println!(
            "backupschedule.dataprotection.kubeblocks.io/{} unchanged (already {verb})",
            args.name
        );
    } else {
        println!(
            "backupschedule.dataprotection.kubeblocks.io/{} {verb}: {}",
            args.name,
            changed.join(", ")
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The Backup `schedule trigger` creates for `entry` at `now`: the entry's method, retention
/// and parameters, labelled with the schedule, named `<schedule>-<entry>-manual-<time>` (a
/// name the schedule never gives its own fire times).
pub fn manual_backup(
    schedule: &BackupSchedule,
    entry: &SchedulePolicy,
    now: Timestamp,
) -> anyhow::Result<Backup> {
    let schedule_name = schedule.metadata.name.clone().unwrap_or_default();
    let name = format!(
        "{schedule_name}-{}-manual-{}",
        entry_name(entry),
        now.strftime("%Y%m%d%H%M%S")
    );
    let backup = json!({
        "apiVersion": "dataprotection.kubeblocks.io/v1alpha1",
        "kind": "Backup",
        "metadata": {
            "name": name,
            "namespace": schedule.metadata.namespace,
            "labels": {well_known::label::BACKUP_SCHEDULE: schedule_name}
        },
        "spec": {
            "backupPolicyName": schedule.spec.backup_policy_name,
            "backupMethod": entry.backup_method,
            "retentionPeriod": entry.retention_period.clone().filter(|r| !r.is_empty()),
            "parameters": entry.parameters.clone().filter(|p| !p.is_empty())
        }
    });
    serde_json::from_value(backup).context("building the Backup")
}

async fn trigger(scope: &Scope, args: &TriggerArgs) -> anyhow::Result<ExitCode> {
    let (_, schedule) = get(scope, &args.name).await?;
    let entries = &schedule.spec.schedules;
    let entry = match (&args.method, entries.as_slice()) {
        (Some(wanted), _) => entries
            .iter()
            .find(|e| matches(e, wanted))
            .with_context(|| format!("BackupSchedule {} has no entry {wanted}", args.name))?,
        (None, [only]) => only,
        (None, _) => bail!(
            "BackupSchedule {} has {} entries: name one with --method ({})",
            args.name,
            entries.len(),
            entries
                .iter()
                .map(entry_name)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let backup = manual_backup(&schedule, entry, Timestamp::now())?;
    let api: Api<Backup> = Api::namespaced(scope.client.clone(), &scope.namespace);
    let created = api
        .create(&PostParams::default(), &backup)
        .await
        .with_context(|| format!("creating a Backup for BackupSchedule {}", args.name))?;
    let name = created.metadata.name.clone().unwrap_or_default();
    if scope.json {
        println!("{}", serde_json::to_string_pretty(&created)?);
    } else {
        println!(
            "backup.dataprotection.kubeblocks.io/{name} created (follow it with `cairnctl backup describe {name}`)"
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule() -> BackupSchedule {
        serde_json::from_value(json!({
            "apiVersion": "dataprotection.kubeblocks.io/v1alpha1", "kind": "BackupSchedule",
            "metadata": {"name": "pg-schedule", "namespace": "prod", "resourceVersion": "7"},
            "spec": {"backupPolicyName": "pg-policy", "schedules": [
                {"backupMethod": "basebackup", "cronExpression": "0 1 * * *", "enabled": true,
                 "retentionPeriod": "7d", "parameters": [{"name": "threads", "value": "4"}]},
                {"name": "wal", "backupMethod": "archive-wal", "cronExpression": "*/5 * * * *",
                 "enabled": false}
            ]},
            "status": {"phase": "Available", "schedules": {"basebackup": {
                "phase": "Running", "lastScheduleTime": "2026-12-06T01:00:00Z"}}}
        }))
        .unwrap()
    }

    #[test]
    fn the_list_counts_enabled_entries() {
        let text = table(&[schedule()], Layout::default(), Timestamp::now());
        let line = text.lines().nth(1).unwrap();
        assert!(line.starts_with("pg-schedule"), "{text}");
        assert!(
            line.contains("1/2") && line.contains("basebackup") && line.contains("Available"),
            "{text}"
        );
        let wide = table(
            &[schedule()],
            Layout {
                namespaces: false,
                wide: true,
            },
            Timestamp::now(),
        );
        let header = wide.lines().next().unwrap();
        assert!(
            header.ends_with("   CRON                                   LAST-SCHEDULED"),
            "{wide}"
        );
        let line = wide.lines().nth(1).unwrap();
        assert!(
            line.ends_with("basebackup=0 1 * * *;wal=*/5 * * * *   2026-12-06T01:00:00Z"),
            "{wide}"
        );
    }

    #[test]
    fn describe_shows_each_entry_and_its_last_run() {
        let text = describe_text(&schedule());
        assert!(text.contains("Policy:     pg-policy"), "{text}");
        let base = text.lines().find(|l| l.contains("basebackup")).unwrap();
        assert!(
            base.contains("0 1 * * *")
                && base.contains("yes")
                && base.contains("2026-12-06T01:00:00Z"),
            "{text}"
        );
        let wal = text.lines().find(|l| l.contains("archive-wal")).unwrap();
        assert!(
            wal.trim_start().starts_with("wal") && wal.contains(" no "),
            "{text}"
        );
    }

    #[test]
    fn toggling_names_what_changed_and_refuses_unknown_entries() {
        let (entries, changed) = toggled(&schedule(), &["wal".into()], true).unwrap();
        assert_eq!(changed, ["wal"]);
        assert!(entries.iter().all(|e| e.enabled == Some(true)));
        let (_, changed) = toggled(&schedule(), &[], true).unwrap();
        assert_eq!(changed, ["wal"], "only what was off changes");
        let (entries, changed) = toggled(&schedule(), &[], false).unwrap();
        assert_eq!(changed, ["basebackup"]);
        assert!(entries.iter().all(|e| e.enabled == Some(false)));
        let err = toggled(&schedule(), &["nope".into()], true)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("has no entry nope (entries: basebackup, wal)"),
            "{err}"
        );
    }

    #[test]
    fn a_triggered_backup_carries_the_entrys_method_retention_and_parameters() {
        let now: Timestamp = "2026-12-06T10:20:30Z".parse().unwrap();
        let s = schedule();
        let backup = manual_backup(&s, &s.spec.schedules[0], now).unwrap();
        assert_eq!(
            backup.metadata.name.as_deref(),
            Some("pg-schedule-basebackup-manual-20261206102030")
        );
        assert_eq!(backup.metadata.namespace.as_deref(), Some("prod"));
        assert_eq!(backup.spec.backup_policy_name, "pg-policy");
        assert_eq!(backup.spec.backup_method, "basebackup");
        assert_eq!(backup.spec.retention_period.as_deref(), Some("7d"));
        assert_eq!(backup.spec.parameters.unwrap()[0].value, "4");
        assert_eq!(
            backup.metadata.labels.unwrap()[well_known::label::BACKUP_SCHEDULE],
            "pg-schedule"
        );
    }
}
