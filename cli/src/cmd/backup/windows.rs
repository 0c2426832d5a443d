//! `cairnctl backup windows`: the recoverability window of each BackupPolicy (and cluster) with
//! Continuous backups: the earliest and latest points a point-in-time restore can reach, the gaps
//! between, and the continuous backups that reach nothing and why (`cairn_api::window`).

use std::collections::BTreeSet;
use std::process::ExitCode;

use anyhow::Context as _;
use cairn_api::actionset::ActionSet;
use cairn_api::backup::Backup;
use cairn_api::parse::restore_time::format;
use cairn_api::window::{self, Window};
use kube::api::{Api, ListParams};
use serde_json::json;

use super::Scope;
use super::table::{Layout, fetch_list, render, typed};
use crate::exit::Usage;
use crate::output::{self, Format};

/// Arguments of `cairnctl backup windows` (`-A`, `-l`, `-o` are global: `-l` selects the
/// Backups the windows are made of).
#[derive(Debug, clap::Args)]
pub struct Args {}

/// The ActionSets whose restore needs no base backup (`baseBackupRequired: false`).
pub fn no_base(actionsets: &[ActionSet]) -> BTreeSet<String> {
    actionsets
        .iter()
        .filter(|a| a.spec.restore.as_ref().and_then(|r| r.base_backup_required) == Some(false))
        .filter_map(|a| a.metadata.name.clone())
        .collect()
}

/// The Backups of `namespace` (or every namespace) that `selector` matches, and every
/// ActionSet.
pub async fn read(
    client: &kube::Client,
    namespace: Option<&str>,
    selector: Option<&str>,
) -> anyhow::Result<(Vec<Backup>, BTreeSet<String>)> {
    let items = fetch_list::<Backup>(client, namespace, selector).await?;
    let backups = typed(&items)?;
    let actionsets: Api<ActionSet> = Api::all(client.clone());
    let actionsets = actionsets
        .list(&ListParams::default())
        .await
        .context("listing ActionSets")?
        .items;
    Ok((backups, no_base(&actionsets)))
}

/// The extra columns of `backup windows -o wide`: how many spans make each window and how
/// many continuous backups reach nothing.
pub const WIDE: [&str; 2] = ["SPANS", "UNUSABLE"];

/// The text `backup windows` prints: one line per window, then the gaps and the continuous
/// backups that reach nothing.
pub fn text(windows: &[Window], layout: Layout) -> String {
    let mut header = Vec::new();
    if layout.namespaces {
        header.push("NAMESPACE");
    }
    header.extend(["POLICY", "CLUSTER", "FIRST", "LAST", "GAPS"]);
    if layout.wide {
        header.extend(WIDE);
    }
    let rows: Vec<Vec<String>> = windows
        .iter()
        .map(|w| {
            let mut row = Vec::new();
            if layout.namespaces {
                row.push(w.namespace.clone());
            }
            let time =
                |t: Option<jiff::Timestamp>| t.map(format).unwrap_or_else(|| "<none>".into());
            row.extend([
                w.policy.clone(),
                w.cluster.clone().unwrap_or_else(|| "<none>".into()),
                time(w.first()),
                time(w.last()),
                w.gaps().len().to_string(),
            ]);
            if layout.wide {
                row.extend([w.spans.len().to_string(), w.unusable.len().to_string()]);
            }
            row
        })
        .collect();
    let mut out = render(&header, &rows);
    for w in windows {
        for (from, to) in w.gaps() {
            out.push_str(&format!(
                "{}: gap from {} to {} (nothing in between can be restored)\n",
                w.policy,
                format(from),
                format(to)
            ));
        }
        for why in &w.unusable {
            out.push_str(&format!("{}: {why}\n", w.policy));
        }
    }
    out
}

/// The JSON of a window.
pub fn to_json(w: &Window) -> serde_json::Value {
    json!({
        "namespace": w.namespace,
        "policy": w.policy,
        "cluster": w.cluster,
        "first": w.first().map(format),
        "last": w.last().map(format),
        "spans": w.spans.iter().map(|s| json!({
            "start": format(s.start), "end": format(s.end), "continuous": s.continuous,
        })).collect::<Vec<_>>(),
        "gaps": w.gaps().iter().map(|(a, b)| json!({"from": format(*a), "to": format(*b)}))
            .collect::<Vec<_>>(),
        "unusable": w.unusable,
    })
}

/// Runs `cairnctl backup windows`. Windows are not API objects: `-o json|yaml` print the
/// array of windows, `jsonpath` and `custom-columns` read it (`{[*].policy}`, one row per
/// window), `-o name` is refused.
pub async fn run(scope: &Scope, _args: Args) -> anyhow::Result<ExitCode> {
    if scope.output == Some(Format::Name) {
        return Err(Usage(
            "cairnctl backup windows does not take -o name (windows are not API objects; try -o jsonpath={[*].policy})".into(),
        )
        .into());
    }
    let namespace = (!scope.all_namespaces).then_some(scope.namespace.as_str());
    let (backups, no_base) = read(&scope.client, namespace, scope.selector.as_deref()).await?;
    let windows = window::windows(&backups, &no_base);
    let all: Vec<serde_json::Value> = windows.iter().map(to_json).collect();
    let layout = Layout {
        namespaces: scope.all_namespaces,
        wide: scope.output == Some(Format::Wide),
    };
    match &scope.output {
        Some(Format::Json) => print!("{}", output::json_text(&json!(all))?),
        Some(Format::Yaml) => print!("{}", output::yaml_text(&json!(all))?),
        Some(Format::JsonPath(template)) => print!("{}", template.render(&json!(all))),
        Some(Format::CustomColumns(columns)) => print!("{}", output::custom_columns(columns, &all)),
        _ if scope.json => println!("{}", serde_json::to_string(&all)?),
        _ if windows.is_empty() => eprintln!(
            "No Continuous backups found{}.",
            if scope.all_namespaces {
                String::new()
            } else {
                format!(" in namespace {}", scope.namespace)
            }
        ),
        _ => print!("{}", text(&windows, layout)),
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A Backup of policy pg-policy in namespace db.
    pub(crate) fn backup(name: &str, kind: &str, status: serde_json::Value) -> Backup {
        serde_json::from_value(json!({
            "apiVersion": "dataprotection.kubeblocks.io/v1alpha1", "kind": "Backup",
            "metadata": {"name": name, "namespace": "db", "labels": {
                "dataprotection.kubeblocks.io/backup-type": kind,
                "dataprotection.kubeblocks.io/backup-policy": "pg-policy"}},
            "spec": {"backupPolicyName": "pg-policy", "backupMethod": "m"},
            "status": status
        }))
        .expect("backup")
    }

    /// Full f1 (08:30) under continuous c1 (08:00..09:00), full f2 (10:00) under continuous c2
    /// (09:30..11:00): restorable 08:30..09:00 and 10:00..11:00.
    pub(crate) fn backups() -> Vec<Backup> {
        vec![
            backup(
                "f1",
                "Full",
                json!({"phase": "Completed", "completionTimestamp": "2026-11-22T08:30:00Z"}),
            ),
            backup(
                "c1",
                "Continuous",
                json!({"phase": "Completed", "timeRange": {
                    "start": "2026-11-22T08:00:00Z", "end": "2026-11-22T09:00:00Z"}}),
            ),
            backup(
                "f2",
                "Full",
                json!({"phase": "Completed", "completionTimestamp": "2026-11-22T10:00:00Z"}),
            ),
            backup(
                "c2",
                "Continuous",
                json!({"phase": "Running", "timeRange": {
                    "start": "2026-11-22T09:30:00Z", "end": "2026-11-22T11:00:00Z"}}),
            ),
        ]
    }

    #[test]
    fn windows_are_printed_with_their_gaps_and_unusable_backups() {
        let mut backups = backups();
        backups.push(backup(
            "c3",
            "Continuous",
            json!({"phase": "Running", "timeRange": {
                "start": "2026-11-22T12:00:00Z", "end": "2026-11-22T12:10:00Z"}}),
        ));
        let windows = window::windows(&backups, &BTreeSet::new());
        let out = text(&windows, Layout::default());
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines[0].split_whitespace().collect::<Vec<_>>(),
            ["POLICY", "CLUSTER", "FIRST", "LAST", "GAPS"]
        );
        assert_eq!(
            lines[1].split_whitespace().collect::<Vec<_>>(),
            [
                "pg-policy",
                "<none>",
                "2026-11-22T08:30:00Z",
                "2026-11-22T11:00:00Z",
                "1"
            ]
        );
        assert_eq!(
            lines[2],
            "pg-policy: gap from 2026-11-22T09:00:00Z to 2026-11-22T10:00:00Z (nothing in between can be restored)"
        );
        assert_eq!(
            lines[3],
            "pg-policy: c3: no Completed Full or Incremental backup ends within its range 2026-11-22T12:00:00Z .. 2026-11-22T12:10:00Z"
        );
        let value = to_json(&windows[0]);
        assert_eq!(value["spans"][1]["continuous"], json!(["c2"]));
        assert_eq!(value["gaps"][0]["from"], "2026-11-22T09:00:00Z");
    }
}
