//! `cairnctl restore list`: one line per Restore (backup, phase, duration, age), or a JSON
//! array of the objects with `--json`.

use std::process::ExitCode;

use cairn_api::restore::Restore;
use jiff::Timestamp;

use super::wait::phase_text;
use crate::cmd::backup::Scope;
use crate::cmd::backup::table::{Layout, age, cell, list_and_print, render};

/// Arguments of `cairnctl restore list` (`-A`, `-l`, `-o` are global).
#[derive(Debug, clap::Args)]
pub struct Args {}

/// The extra columns of `restore list -o wide`.
pub const WIDE: [&str; 3] = ["RESTORE-TIME", "COMPLETION-TIME", "BACKUP-NAMESPACE"];

/// The table `restore list` prints, oldest first.
pub fn table(restores: &[Restore], layout: Layout, now: Timestamp) -> String {
    let mut sorted: Vec<&Restore> = restores.iter().collect();
    sorted.sort_by_key(|r| {
        (
            r.metadata.creation_timestamp.as_ref().map(|t| t.0),
            r.metadata.name.clone(),
        )
    });
    let rows: Vec<Vec<String>> = sorted
        .iter()
        .map(|r| {
            let status = r.status.clone().unwrap_or_default();
            let claims: Vec<String> = r
                .spec
                .prepare_data_config
                .as_ref()
                .and_then(|c| c.volume_claims.clone())
                .unwrap_or_default()
                .iter()
                .filter_map(|c| c.metadata.name.clone())
                .collect();
            let mut row = Vec::new();
            if layout.namespaces {
                row.push(r.metadata.namespace.clone().unwrap_or_default());
            }
            row.extend([
                r.metadata.name.clone().unwrap_or_default(),
                r.spec.backup.name.clone(),
                phase_text(r),
                cell(Some(&claims.join(","))),
                cell(status.duration.as_deref()),
                age(r.metadata.creation_timestamp.as_ref(), now),
            ]);
            if layout.wide {
                row.extend([
                    cell(r.spec.restore_time.as_deref()),
                    cell(
                        status
                            .completion_timestamp
                            .as_ref()
                            .map(|t| t.0.to_string())
                            .as_deref(),
                    ),
                    cell(Some(&r.spec.backup.namespace)),
                ]);
            }
            row
        })
        .collect();
    let mut header = vec![];
    if layout.namespaces {
        header.push("NAMESPACE");
    }
    header.extend(["NAME", "BACKUP", "STATUS", "PVCS", "DURATION", "AGE"]);
    if layout.wide {
        header.extend(WIDE);
    }
    render(&header, &rows)
}

/// Runs `cairnctl restore list`.
pub async fn run(scope: &Scope, _args: Args) -> anyhow::Result<ExitCode> {
    list_and_print(scope, "Restores", table).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restores_are_listed_with_backup_phase_claims_and_age() {
        let restore: Restore = serde_json::from_value(serde_json::json!({
            "apiVersion": "dataprotection.kubeblocks.io/v1alpha1",
            "kind": "Restore",
            "metadata": {"name": "r1", "namespace": "ns", "creationTimestamp": "2026-01-10T11:59:00Z"},
            "spec": {
                "backup": {"name": "b1", "namespace": "ns"},
                "prepareDataConfig": {"volumeClaimRestorePolicy": "Parallel", "volumeClaims": [{
                    "metadata": {"name": "data-restored"},
                    "volumeClaimSpec": {},
                    "volumeSource": "data"
                }]}
            },
            "status": {"phase": "Completed", "duration": "3s"}
        }))
        .expect("restore");
        let now: Timestamp = "2026-01-10T12:00:00Z".parse().expect("time");
        let text = table(std::slice::from_ref(&restore), Layout::default(), now);
        let lines: Vec<Vec<&str>> = text
            .lines()
            .map(|l| l.split_whitespace().collect())
            .collect();
        assert_eq!(
            lines[0],
            ["NAME", "BACKUP", "STATUS", "PVCS", "DURATION", "AGE"]
        );
        assert_eq!(
            lines[1],
            ["r1", "b1", "Completed", "data-restored", "3s", "60s"]
        );
        let wide = table(
            &[restore],
            Layout {
                namespaces: false,
                wide: true,
            },
            now,
        );
        let lines: Vec<Vec<&str>> = wide
            .lines()
            .map(|l| l.split_whitespace().collect())
            .collect();
        assert_eq!(lines[0][6..], WIDE);
        assert_eq!(lines[1][6..], ["<none>", "<none>", "ns"]);
    }
}
