//! `cairnctl repo list`: the cluster's BackupRepos (provider, access method, phase, whether it
//! is the default, why it failed its pre-check), or a JSON array of the objects with `--json`.

use std::process::ExitCode;

use cairn_api::backup_repo::{BackupRepo, BackupRepoPhase};
use cairn_api::well_known;
use jiff::Timestamp;

use super::ObjectArgs;
use super::table::{age, fetch_list, render, typed};

/// Arguments of `cairnctl repo list` (the cluster, `-l` and `-o` are global options).
#[derive(Debug, clap::Args)]
pub struct Args {}

/// The extra columns of `repo list -o wide`.
pub const WIDE: [&str; 2] = ["PATH-PREFIX", "PV-RECLAIM-POLICY"];

fn is_default(repo: &BackupRepo) -> bool {
    repo.status
        .as_ref()
        .and_then(|s| s.is_default)
        .unwrap_or(false)
        || repo
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(well_known::annotation::DEFAULT_REPO))
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

/// The table `repo list` prints, by name.
pub fn table(repos: &[BackupRepo], wide: bool, now: Timestamp) -> String {
    let mut sorted: Vec<&BackupRepo> = repos.iter().collect();
    sorted.sort_by_key(|r| r.metadata.name.clone());
    let rows: Vec<Vec<String>> = sorted
        .iter()
        .map(|r| {
            let status = r.status.clone().unwrap_or_default();
            let phase = status
                .phase
                .map(|p| format!("{p:?}"))
                .unwrap_or_else(|| "<none>".into());
            let why = if status.phase == Some(BackupRepoPhase::Failed) {
                status
                    .conditions
                    .iter()
                    .flatten()
                    .filter(|c| c.status != "True")
                    .map(|c| c.message.clone())
                    .collect::<Vec<_>>()
                    .join("; ")
            } else {
                String::new()
            };
            let mut row = vec![
                r.metadata.name.clone().unwrap_or_default(),
                r.spec.storage_provider_ref.clone(),
                r.spec
                    .access_method
                    .map(|m| format!("{m:?}"))
                    .unwrap_or_else(|| "Mount".into()),
                phase,
                is_default(r).to_string(),
                age(r.metadata.creation_timestamp.as_ref(), now),
                why,
            ];
            if wide {
                row.extend([
                    super::table::cell(r.spec.path_prefix.as_deref()),
                    format!("{:?}", r.spec.pv_reclaim_policy),
                ]);
            }
            row
        })
        .collect();
    let mut header = vec![
        "NAME",
        "STORAGE-PROVIDER",
        "ACCESS-METHOD",
        "STATUS",
        "DEFAULT",
        "AGE",
        "MESSAGE",
    ];
    if wide {
        header.extend(WIDE);
    }
    render(&header, &rows)
}

/// Runs `cairnctl repo list`; `json` is `cairnctl repo --json`. BackupRepos are
/// cluster-scoped: `-n` and `-A` do not apply.
pub async fn run(common: &ObjectArgs, _args: Args, json: bool) -> anyhow::Result<ExitCode> {
    let connection = common.kube.connect().await?;
    let items =
        fetch_list::<BackupRepo>(&connection.client, None, common.selector.as_deref()).await?;
    if let Some(format) = &common.output {
        print!(
            "{}",
            crate::output::list_text::<BackupRepo>(format, &items, |wide| {
                Ok(table(&typed(&items)?, wide, Timestamp::now()))
            })?
        );
    } else if json || common.json {
        println!("{}", serde_json::to_string(&items)?);
    } else if items.is_empty() {
        eprintln!("No BackupRepos found.");
    } else {
        print!("{}", table(&typed(&items)?, false, Timestamp::now()));
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repos_show_provider_access_phase_default_and_failure() {
        let repo = |name: &str, default: bool, status: serde_json::Value| -> BackupRepo {
            let mut metadata =
                serde_json::json!({"name": name, "creationTimestamp": "2026-01-10T11:00:00Z"});
            if default {
                metadata["annotations"] =
                    serde_json::json!({well_known::annotation::DEFAULT_REPO: "true"});
            }
            serde_json::from_value(serde_json::json!({
                "apiVersion": "dataprotection.kubeblocks.io/v1alpha1",
                "kind": "BackupRepo",
                "metadata": metadata,
                "spec": {"storageProviderRef": "s3", "accessMethod": "Tool", "pvReclaimPolicy": "Retain"},
                "status": status,
            }))
            .expect("repo")
        };
        let now: Timestamp = "2026-01-10T12:00:00Z".parse().expect("time");
        let text = table(
            &[
                repo(
                    "s3-bad",
                    false,
                    serde_json::json!({"phase": "Failed", "conditions": [{
                    "type": "PreCheckPassed", "status": "False", "reason": "PreCheckFailed",
                    "message": "bucket not found", "lastTransitionTime": "2026-01-10T11:00:00Z"}]}),
                ),
                repo("local", true, serde_json::json!({"phase": "Ready"})),
            ],
            false,
            now,
        );
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[1].starts_with("local "), "{text}");
        assert_eq!(
            lines[1].split_whitespace().collect::<Vec<_>>(),
            ["local", "s3", "Tool", "Ready", "true", "60m"]
        );
        assert!(
            lines[2].contains("Failed") && lines[2].ends_with("bucket not found"),
            "{text}"
        );
    }
}
