//! `cairnctl backup describe`: one Backup in words: policy and method, where its data is,
//! times, size, live progress, each action and why it failed; the object itself with `--json`.

use std::fmt::Write as _;
use std::process::ExitCode;

use anyhow::Context as _;
use cairn_api::backup::Backup;
use indicatif::HumanBytes;
use kube::api::Api;

use super::Scope;
use super::table::describe_and_print;
use super::wait::{failure, phase_text};

/// Arguments of `cairnctl backup describe`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The Backup.
    pub name: String,
}

fn time(t: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>) -> String {
    t.map(|t| t.0.to_string()).unwrap_or_else(|| "-".into())
}

/// The chain of an incremental or differential backup, oldest first (base, ancestors, the
/// backup itself), followed through `status.parentBackupName` among `others`; a missing link
/// or a cycle ends it, marked.
pub fn chain(backup: &Backup, others: &[Backup]) -> Vec<String> {
    let size = |b: &Backup| {
        let status = b.status.clone().unwrap_or_default();
        let size = status
            .total_size
            .as_deref()
            .and_then(|s| cairn_api::parse::quantity::parse_bytes(s).ok())
            .map(|bytes| HumanBytes(bytes).to_string())
            .unwrap_or_else(|| "size unknown".into());
        format!(
            "{} ({}, {size})",
            b.metadata.name.clone().unwrap_or_default(),
            phase_text(b)
        )
    };
    let parent_of = |b: &Backup| {
        b.status
            .as_ref()
            .and_then(|s| s.parent_backup_name.clone())
            .filter(|p| !p.is_empty())
    };
    let mut links = vec![size(backup)];
    let mut seen = vec![backup.metadata.name.clone().unwrap_or_default()];
    let mut current = backup;
    while let Some(parent) = parent_of(current) {
        if seen.contains(&parent) {
            links.push(format!("{parent} (cycle)"));
            break;
        }
        let Some(found) = others
            .iter()
            .find(|b| b.metadata.name.as_deref() == Some(parent.as_str()))
        else {
            links.push(format!("{parent} (missing)"));
            break;
        };
        links.push(size(found));
        seen.push(parent);
        current = found;
    }
    links.reverse();
    links
}

/// The text `backup describe` prints; `others` are the Backups of its namespace (its chain).
pub fn text(backup: &Backup, others: &[Backup]) -> String {
    let status = backup.status.clone().unwrap_or_default();
    let mut out = String::new();
    let mut field = |label: &str, value: String| {
        let _ = writeln!(out, "{:<14}{value}", format!("{label}:"));
    };
    field("Name", backup.metadata.name.clone().unwrap_or_default());
    field(
        "Namespace",
        backup.metadata.namespace.clone().unwrap_or_default(),
    );
    field("Policy", backup.spec.backup_policy_name.clone());
    field("Method", backup.spec.backup_method.clone());
    if let Some(action_set) = status
        .backup_method
        .as_ref()
        .and_then(|m| m.action_set_name.clone())
    {
        field("ActionSet", action_set);
    }
    field("Phase", phase_text(backup));
    if let Some(parent) = &status.parent_backup_name {
        field("Parent", parent.clone());
        field(
            "Base",
            status
                .base_backup_name
                .clone()
                .unwrap_or_else(|| "-".into()),
        );
        field("Chain", chain(backup, others).join(" -> "));
    }
    field(
        "Repository",
        status
            .backup_repo_name
            .clone()
            .unwrap_or_else(|| "-".into()),
    );
    field("Path", status.path.clone().unwrap_or_else(|| "-".into()));
    field("Started", time(status.start_timestamp.as_ref()));
    field("Completed", time(status.completion_timestamp.as_ref()));
    field(
        "Duration",
        status.duration.clone().unwrap_or_else(|| "-".into()),
    );
    let size = match status.total_size.as_deref() {
        Some(size) => match cairn_api::parse::quantity::parse_bytes(size) {
            Ok(bytes) => format!("{size} ({})", HumanBytes(bytes)),
            Err(_) => size.to_string(),
        },
        None => "-".into(),
    };
    field("Total size", size);
    if let Some(p) = &status.progress {
        let mut progress = format!(
            "{} done",
            HumanBytes(u64::try_from(p.bytes_done).unwrap_or(0))
        );
        if let Some(total) = p.bytes_total.and_then(|t| u64::try_from(t).ok()) {
            progress.push_str(&format!(" of {}", HumanBytes(total)));
        }
        if let Some(rate) = p.bytes_per_second.and_then(|r| u64::try_from(r).ok()) {
            progress.push_str(&format!(", {}/s", HumanBytes(rate)));
        }
        if let Some(eta) = p
            .eta_seconds
            .filter(|_| status.phase == Some(cairn_api::backup::BackupPhase::Running))
        {
            progress.push_str(&format!(", ETA {eta}s"));
        }
        field("Progress", progress);
    }
    if let Some(expiration) = &status.expiration {
        field("Expires", expiration.0.to_string());
    }
    field(
        "Deletion",
        backup
            .spec
            .deletion_policy
            .map(|d| format!("{d:?}"))
            .unwrap_or_else(|| "Delete".into()),
    );
    if let Some(target) = &status.target {
        let pods = target
            .selected_target_pods
            .clone()
            .unwrap_or_default()
            .join(", ");
        field(
            "Target pods",
            if pods.is_empty() { "-".into() } else { pods },
        );
    }
    if let Some(why) = status.failure_reason.as_ref().map(|_| failure(backup)) {
        field("Failure", why);
    }
    if let Some(why) = &status.deletion_failure_reason {
        field("Deletion failure", why.clone());
    }
    let actions = status.actions.clone().unwrap_or_default();
    if !actions.is_empty() {
        out.push_str("Actions:\n");
        for action in actions {
            let _ = write!(
                out,
                "  {:<22} {:<10}",
                action.name.clone().unwrap_or_default(),
                action
                    .phase
                    .map(|p| format!("{p:?}"))
                    .unwrap_or_else(|| "New".into())
            );
            if let Some(pod) = &action.target_pod_name {
                let _ = write!(out, " pod {pod}");
            }
            if let Some(object) = &action.object_ref {
                let _ = write!(
                    out,
                    " {}/{}",
                    object.kind.clone().unwrap_or_default(),
                    object.name.clone().unwrap_or_default()
                );
            }
            if let Some(size) = &action.total_size {
                let _ = write!(out, " size {size}");
            }
            if let Some(why) = &action.failure_reason {
                let _ = write!(out, " ({why})");
            }
            out.push('\n');
        }
    }
    out
}

/// Runs `cairnctl backup describe`.
pub async fn run(scope: &Scope, args: Args) -> anyhow::Result<ExitCode> {
    describe_and_print(
        scope,
        "backup describe",
        &args.name,
        super::list::table,
        |backup: Backup| async move {
            if scope.json {
                println!("{}", serde_json::to_string(&backup)?);
                return Ok(());
            }
            let chained = backup
                .status
                .as_ref()
                .is_some_and(|s| s.parent_backup_name.is_some());
            let others = if chained {
                let api: Api<Backup> = Api::namespaced(scope.client.clone(), &scope.namespace);
                api.list(&Default::default())
                    .await
                    .with_context(|| format!("listing the Backups of {}", scope.namespace))?
                    .items
            } else {
                Vec::new()
            };
            print!("{}", text(&backup, &others));
            Ok(())
        },
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describe_shows_where_the_data_is_and_each_action() {
        let backup: Backup = serde_json::from_value(serde_json::json!({
            "apiVersion": "dataprotection.kubeblocks.io/v1alpha1",
            "kind": "Backup",
            "metadata": {"name": "b1", "namespace": "ns"},
            "spec": {"backupPolicyName": "pol", "backupMethod": "tar"},
            "status": {
                "phase": "Failed",
                "backupRepoName": "local",
                "path": "/ns/b1",
                "totalSize": "2048",
                "failureReason": "there are failed actions",
                "progress": {"bytesDone": 1048576, "bytesPerSecond": 1024},
                "actions": [{
                    "name": "dp-backup-0", "phase": "Failed", "targetPodName": "w",
                    "objectRef": {"kind": "Job", "name": "dp-backup-0-b1-1234"},
                    "failureReason": "exit code 1"
                }]
            }
        }))
        .expect("backup");
        let text = text(&backup, &[]);
        for expected in [
            "Phase:        Failed",
            "Repository:   local",
            "Path:         /ns/b1",
            "Total size:   2048 (2.00 KiB)",
            "Progress:     1.00 MiB done, 1.00 KiB/s",
            "Failure:      there are failed actions; action dp-backup-0: exit code 1",
            "dp-backup-0",
            "Job/dp-backup-0-b1-1234",
        ] {
            assert!(text.contains(expected), "{expected:?} missing in\n{text}");
        }
    }

    fn linked(name: &str, parent: Option<&str>, size: &str) -> Backup {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "dataprotection.kubeblocks.io/v1alpha1",
            "kind": "Backup",
            "metadata": {"name": name, "namespace": "ns"},
            "spec": {"backupPolicyName": "pol", "backupMethod": "inc"},
            "status": {"phase": "Completed", "totalSize": size,
                       "parentBackupName": parent, "baseBackupName": parent.map(|_| "full")}
        }))
        .expect("backup")
    }

    #[test]
    fn describe_of_an_incremental_shows_its_whole_chain_with_sizes() {
        let others = [
            linked("full", None, "10485760"),
            linked("inc-1", Some("full"), "2048"),
            linked("inc-2", Some("inc-1"), "1024"),
        ];
        let text = text(&others[2], &others);
        for expected in [
            "Parent:       inc-1",
            "Base:         full",
            "Chain:        full (Completed, 10.00 MiB) -> inc-1 (Completed, 2.00 KiB) -> inc-2 (Completed, 1.00 KiB)",
        ] {
            assert!(text.contains(expected), "{expected:?} missing in\n{text}");
        }
        let broken = text_of_missing();
        assert!(
            broken.contains("Chain:        inc-1 (missing) -> inc-2"),
            "{broken}"
        );
    }

    fn text_of_missing() -> String {
        let lone = linked("inc-2", Some("inc-1"), "1024");
        text(&lone, &[])
    }
}
