//! `cairnctl restore describe`: one Restore in words: its backup, the claims it fills, times,
//! each condition and action; the object itself with `--json`.

use std::fmt::Write as _;
use std::process::ExitCode;

use cairn_api::restore::Restore;

use super::wait::{Outcome, failure, outcome, phase_text};
use crate::cmd::backup::Scope;
use crate::cmd::backup::table::describe_and_print;

/// Arguments of `cairnctl restore describe`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The Restore.
    pub name: String,
}

/// The text `restore describe` prints.
pub fn text(restore: &Restore) -> String {
    let status = restore.status.clone().unwrap_or_default();
    let mut out = String::new();
    let mut field = |label: &str, value: String| {
        let _ = writeln!(out, "{:<14}{value}", format!("{label}:"));
    };
    field("Name", restore.metadata.name.clone().unwrap_or_default());
    field(
        "Namespace",
        restore.metadata.namespace.clone().unwrap_or_default(),
    );
    field(
        "Backup",
        format!(
            "{}/{}",
            restore.spec.backup.namespace, restore.spec.backup.name
        ),
    );
    field("Phase", phase_text(restore));
    let time = |t: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>| {
        t.map(|t| t.0.to_string()).unwrap_or_else(|| "-".into())
    };
    field("Started", time(status.start_timestamp.as_ref()));
    field("Completed", time(status.completion_timestamp.as_ref()));
    field(
        "Duration",
        status.duration.clone().unwrap_or_else(|| "-".into()),
    );
    for claim in restore
        .spec
        .prepare_data_config
        .as_ref()
        .and_then(|c| c.volume_claims.clone())
        .unwrap_or_default()
    {
        let size = claim
            .volume_claim_spec
            .resources
            .as_ref()
            .and_then(|r| r.requests.as_ref())
            .and_then(|r| r.get("storage"))
            .map(|q| q.0.clone())
            .unwrap_or_else(|| "-".into());
        field(
            "Into PVC",
            format!(
                "{} ({size}, volume {}, mounted at {})",
                claim.metadata.name.clone().unwrap_or_default(),
                claim
                    .volume_config
                    .volume_source
                    .clone()
                    .unwrap_or_else(|| "-".into()),
                claim
                    .volume_config
                    .mount_path
                    .clone()
                    .unwrap_or_else(|| "-".into()),
            ),
        );
    }
    if let Some(Outcome::Failed(_)) = outcome(restore) {
        field("Failure", failure(restore));
    }
    let conditions = status.conditions.clone().unwrap_or_default();
    if !conditions.is_empty() {
        out.push_str("Conditions:\n");
        for c in conditions {
            let _ = writeln!(
                out,
                "  {:<18} {:<7} {:<28} {}",
                c.type_, c.status, c.reason, c.message
            );
        }
    }
    let actions = status.actions.clone().unwrap_or_default();
    let all: Vec<_> = actions
        .prepare_data
        .iter()
        .chain(actions.post_ready.iter())
        .flatten()
        .collect();
    if !all.is_empty() {
        out.push_str("Actions:\n");
        for a in all {
            let _ = writeln!(
                out,
                "  {:<16} {:<11} {} {}",
                a.name,
                a.status
                    .map(|s| format!("{s:?}"))
                    .unwrap_or_else(|| "-".into()),
                a.object_key,
                a.message.clone().unwrap_or_default()
            );
        }
    }
    out
}

/// Runs `cairnctl restore describe`.
pub async fn run(scope: &Scope, args: Args) -> anyhow::Result<ExitCode> {
    describe_and_print(
        scope,
        "restore describe",
        &args.name,
        super::list::table,
        |restore: Restore| async move {
            if scope.json {
                println!("{}", serde_json::to_string(&restore)?);
            } else {
                print!("{}", text(&restore));
            }
            Ok(())
        },
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describe_shows_the_claims_conditions_and_actions() {
        let restore: Restore = serde_json::from_value(serde_json::json!({
            "apiVersion": "dataprotection.kubeblocks.io/v1alpha1",
            "kind": "Restore",
            "metadata": {"name": "r1", "namespace": "ns"},
            "spec": {
                "backup": {"name": "b1", "namespace": "ns"},
                "prepareDataConfig": {"volumeClaimRestorePolicy": "Parallel", "volumeClaims": [{
                    "metadata": {"name": "data-restored"},
                    "volumeClaimSpec": {"resources": {"requests": {"storage": "2Gi"}}},
                    "volumeSource": "data", "mountPath": "/data"
                }]}
            },
            "status": {
                "phase": "Completed",
                "conditions": [{"type": "PrepareData", "status": "True", "reason": "Succeed",
                                "message": "done", "lastTransitionTime": "2026-01-10T12:00:00Z"}],
                "actions": {"prepareData": [{"name": "prepareData-0", "backupName": "b1",
                    "objectKey": "Job/j", "status": "Completed", "message": "successfully processed"}]}
            }
        }))
        .expect("restore");
        let text = text(&restore);
        for expected in [
            "Backup:       ns/b1",
            "Phase:        Completed",
            "Into PVC:     data-restored (2Gi, volume data, mounted at /data)",
            "PrepareData",
            "prepareData-0    Completed   Job/j successfully processed",
        ] {
            assert!(text.contains(expected), "{expected:?} missing in\n{text}");
        }
        assert!(!text.contains("Failure"));
    }
}
