//! `cairnctl backup list`: one line per Backup (policy, method, parent in its chain, repository,
//! phase, stored size, duration, age), or a JSON array of the objects with `--json`.

use std::process::ExitCode;

use cairn_api::backup::Backup;
use jiff::Timestamp;

use super::Scope;
use super::table::{age, cell, list_and_print, render};
use super::wait::phase_text;

/// Arguments of `cairnctl backup list`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// List the Backups of every namespace.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
}

/// The table `backup list` prints, oldest first.
pub fn table(backups: &[Backup], all_namespaces: bool, now: Timestamp) -> String {
    let mut sorted: Vec<&Backup> = backups.iter().collect();
    sorted.sort_by_key(|b| {
        (
            b.metadata.creation_timestamp.as_ref().map(|t| t.0),
            b.metadata.name.clone(),
        )
    });
    let rows: Vec<Vec<String>> = sorted
        .iter()
        .map(|b| {
            let status = b.status.clone().unwrap_or_default();
            let mut row = Vec::new();
            if all_namespaces {
                row.push(b.metadata.namespace.clone().unwrap_or_default());
            }
            row.extend([
                b.metadata.name.clone().unwrap_or_default(),
                b.spec.backup_policy_name.clone(),
                b.spec.backup_method.clone(),
                cell(status.parent_backup_name.as_deref()),
                cell(status.backup_repo_name.as_deref()),
                phase_text(b),
                cell(status.total_size.as_deref()),
                cell(status.duration.as_deref()),
                age(b.metadata.creation_timestamp.as_ref(), now),
            ]);
            row
        })
        .collect();
    let mut header = vec![];
    if all_namespaces {
        header.push("NAMESPACE");
    }
    header.extend([
        "NAME",
        "POLICY",
        "METHOD",
        "PARENT",
        "REPO",
        "STATUS",
        "TOTAL-SIZE",
        "DURATION",
        "AGE",
    ]);
    render(&header, &rows)
}

/// Runs `cairnctl backup list`.
pub async fn run(scope: &Scope, args: Args) -> anyhow::Result<ExitCode> {
    list_and_print(scope, args.all_namespaces, "Backups", table).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backup(name: &str, created: &str, status: serde_json::Value) -> Backup {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "dataprotection.kubeblocks.io/v1alpha1",
            "kind": "Backup",
            "metadata": {"name": name, "namespace": "ns", "creationTimestamp": created},
            "spec": {"backupPolicyName": "pol", "backupMethod": "tar"},
            "status": status,
        }))
        .expect("backup")
    }

    #[test]
    fn backups_are_listed_oldest_first_with_phase_size_and_age() {
        let now: Timestamp = "2026-01-10T12:00:00Z".parse().expect("time");
        let items = [
            backup(
                "new",
                "2026-01-10T11:59:30Z",
                serde_json::json!({"phase": "Running", "backupRepoName": "local"}),
            ),
            backup(
                "old",
                "2026-01-10T10:00:00Z",
                serde_json::json!({"phase": "Completed", "backupRepoName": "local", "totalSize": "1234", "duration": "2s"}),
            ),
        ];
        let text = table(&items, false, now);
        let lines: Vec<Vec<&str>> = text
            .lines()
            .map(|l| l.split_whitespace().collect())
            .collect();
        assert_eq!(
            lines[0],
            [
                "NAME",
                "POLICY",
                "METHOD",
                "PARENT",
                "REPO",
                "STATUS",
                "TOTAL-SIZE",
                "DURATION",
                "AGE"
            ]
        );
        assert_eq!(
            lines[1],
            [
                "old",
                "pol",
                "tar",
                "<none>",
                "local",
                "Completed",
                "1234",
                "2s",
                "2h"
            ]
        );
        assert_eq!(
            lines[2],
            [
                "new", "pol", "tar", "<none>", "local", "Running", "<none>", "<none>", "30s"
            ]
        );
        let all = table(&items, true, now);
        assert!(all.starts_with("NAMESPACE"));
        assert!(all.lines().nth(1).expect("row").starts_with("ns "));
    }
}
