//! `cairnctl repo list`: the cluster's BackupRepos (provider, access method, phase, whether it
//! is the default, why it failed its pre-check), or a JSON array of the objects with `--json`.

use std::process::ExitCode;

use anyhow::Context as _;
use cairn_api::backup_repo::{BackupRepo, BackupRepoPhase};
use cairn_api::well_known;
use jiff::Timestamp;
use kube::api::{Api, ListParams};

use super::kube::KubeArgs;
use super::table::{age, render};

/// Arguments of `cairnctl repo list`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub kube: KubeArgs,
}

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
pub fn table(repos: &[BackupRepo], now: Timestamp) -> String {
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
            vec![
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
            ]
        })
        .collect();
    render(
        &[
            "NAME",
            "STORAGE-PROVIDER",
            "ACCESS-METHOD",
            "STATUS",
            "DEFAULT",
            "AGE",
            "MESSAGE",
        ],
        &rows,
    )
}

/// Runs `cairnctl repo list`; `json` is `cairnctl repo --json`.
pub async fn run(args: Args, json: bool) -> anyhow::Result<ExitCode> {
    let connection = args.kube.connect().await?;
    let api: Api<BackupRepo> = Api::all(connection.client);
    let list = api
        .list(&ListParams::default())
        .await
        .context("listing BackupRepos")?;
    if json {
        println!("{}", serde_json::to_string(&list.items)?);
    } else if list.items.is_empty() {
        eprintln!("No BackupRepos found.");
    } else {
        print!("{}", table(&list.items, Timestamp::now()));
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
