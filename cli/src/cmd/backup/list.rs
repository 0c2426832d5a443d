//! `cairnctl backup list`: one line per Backup (policy, method, parent in its chain, repository,
//! phase, stored size, duration, age), or a JSON array of the objects with `--json`.

use std::process::ExitCode;

use cairn_api::backup::Backup;
use jiff::Timestamp;

use super::Scope;
use super::table::{Layout, age, cell, list_and_print, render};
use super::wait::phase_text;

/// Arguments of `cairnctl backup list` (`-A`, `-l`, `-o` are global).
#[derive(Debug, clap::Args)]
pub struct Args {}

/// The extra columns of `backup list -o wide`.
pub const WIDE: [&str; 5] = [
    "ACTIONSET",
    "TARGET-PODS",
    "COMPLETION-TIME",
    "EXPIRATION-TIME",
    "PATH",
];

fn time(t: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>) -> String {
    cell(t.map(|t| t.0.to_string()).as_deref())
}

/// The table `backup list` prints, oldest first.
pub fn table(backups: &[Backup], layout: Layout, now: Timestamp) -> String {
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
            if layout.namespaces {
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
            if layout.wide {
                let pods = status
                    .target
                    .as_ref()
                    .and_then(|t| t.selected_target_pods.clone())
                    .unwrap_or_default()
                    .join(",");
                row.extend([
                    cell(
                        status
                            .backup_method
                            .as_ref()
                            .and_then(|m| m.action_set_name.as_deref()),
                    ),
                    cell(Some(&pods)),
                    time(status.completion_timestamp.as_ref()),
                    time(status.expiration.as_ref()),
                    cell(status.path.as_deref()),
                ]);
            }
            row
        })
        .collect();
    let mut header = vec![];
    if layout.namespaces {
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
    if layout.wide {
        header.extend(WIDE);
    }
    render(&header, &rows)
}

/// Runs `cairnctl backup list`.
pub async fn run(scope: &Scope, _args: Args) -> anyhow::Result<ExitCode> {
    list_and_print(scope, "Backups", table).await
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
        let text = table(&items, Layout::default(), now);
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
        let all = table(
            &items,
            Layout {
                namespaces: true,
                wide: false,
            },
            now,
        );
        assert!(all.starts_with("NAMESPACE"));
        assert!(all.lines().nth(1).expect("row").starts_with("ns "));
        let wide = table(
            &items,
            Layout {
                namespaces: false,
                wide: true,
            },
            now,
        );
        let header: Vec<&str> = wide
            .lines()
            .next()
            .expect("header")
            .split_whitespace()
            .collect();
        assert_eq!(header[9..], WIDE);
        let old: Vec<&str> = wide
            .lines()
            .nth(1)
            .expect("row")
            .split_whitespace()
            .collect();
        assert_eq!(old[9..], ["<none>", "<none>", "<none>", "<none>", "<none>"]);
    }
}
