//! A point-in-time restore across processes: a real Full backup of a file workload, a Continuous
//! Backup whose status (time range, zone) the test writes itself (the restore side only reads
//! it), and a Restore to a time inside its window. The base's set is restored first (its files,
//! byte for byte), then the continuous set, whose action records the env it received: its base,
//! and the restore time in the ActionSet's layout and the backup's zone. Real kubectl, localkube,
//! control plane and agent, each its own process.

use std::time::Duration;

use cairn_e2e::manifests::render;
use cairn_e2e::{dp, files, run, scenario};
use serde_json::json;

const NS: &str = "pitr";
const WAIT: Duration = Duration::from_secs(90);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_to_a_time_restores_the_base_then_the_continuous_backup() -> anyhow::Result<()> {
    run("restore-pitr", async |stack| {
        let workload = scenario::workload(stack, NS, "files", 1 << 20).await?;
        stack
            .kubectl
            .apply(&render(
                "actionset-files.yaml",
                &[("ACTIONSET", "files-full"), ("BEFORE_PUSH", "true")],
            )?)
            .await?;
        stack
            .kubectl
            .apply(&render(
                "actionset-files-pitr.yaml",
                &[("ACTIONSET", "files-pitr")],
            )?)
            .await?;
        stack
            .kubectl
            .apply(&render(
                "policy-chain.yaml",
                &[
                    ("POLICY", "files-pitr"),
                    ("NS", NS),
                    ("APP", &workload.app),
                    ("FULL_AS", "files-full"),
                    ("INC_AS", "files-pitr"),
                ],
            )?)
            .await?;
        scenario::backup(stack, NS, "full-1", "files-pitr", "full", "Delete").await?;
        let full = dp::backup_completed(&stack.client, NS, "full-1", WAIT).await?;
        let status = full.status.clone().unwrap_or_default();
        let end = status
            .time_range
            .as_ref()
            .and_then(|r| r.end.clone())
            .or(status.completion_timestamp.clone())
            .ok_or_else(|| anyhow::anyhow!("full-1 has no end time"))?
            .0;
        let at = |secs: i64| {
            cairn_api::parse::restore_time::format(
                end.checked_add(jiff::SignedDuration::from_secs(secs))
                    .expect("in range"),
            )
        };
        let source = files::tree(&workload.data_dir)?;

        // The continuous backup: archiving from a minute before the base ended to a minute after,
        // in zone +02:00, still Running; data protection leaves the object alone.
        let repo = status.backup_repo_name.clone().unwrap_or_default();
        let path = status.path.clone().unwrap_or_default();
        let continuous_path = format!(
            "{}/pitr-1",
            path.rsplit_once('/').map(|p| p.0).unwrap_or("")
        );
        let object = json!({
            "apiVersion": "dataprotection.kubeblocks.io/v1alpha1", "kind": "Backup",
            "metadata": {"name": "pitr-1", "namespace": NS,
                "annotations": {"dataprotection.kubeblocks.io/skip-reconciliation": "true"},
                "labels": {"dataprotection.kubeblocks.io/backup-type": "Continuous",
                           "dataprotection.kubeblocks.io/backup-policy": "files-pitr"}},
            "spec": {"backupPolicyName": "files-pitr", "backupMethod": "inc"}
        });
        stack
            .kubectl
            .apply(&serde_json::to_string(&object)?)
            .await?;
        let patch = json!({"status": {
            "phase": "Running",
            "path": continuous_path,
            "backupRepoName": repo,
            "backupMethod": status.backup_method.clone().map(|mut m| {
                m.name = "inc".into();
                m.action_set_name = Some("files-pitr".into());
                m
            }),
            "target": status.target,
            "timeRange": {"start": at(-60), "end": at(60), "timeZone": "+02:00"}
        }});
        stack
            .kubectl
            .run(&[
                "patch",
                "backup",
                "pitr-1",
                "-n",
                NS,
                "--subresource=status",
                "--type=merge",
                "-p",
                &patch.to_string(),
            ])
            .await?;

        let restore_time = at(30);
        let restore = json!({
            "apiVersion": "dataprotection.kubeblocks.io/v1alpha1", "kind": "Restore",
            "metadata": {"name": "pitr-restore", "namespace": NS},
            "spec": {
                "backup": {"name": "pitr-1", "namespace": NS},
                "restoreTime": restore_time,
                "prepareDataConfig": {"volumeClaimRestorePolicy": "Parallel", "volumeClaims": [{
                    "metadata": {"name": "data-pitr-restored", "namespace": NS},
                    "volumeSource": "data",
                    "volumeClaimSpec": {"accessModes": ["ReadWriteOnce"],
                                        "resources": {"requests": {"storage": "1Gi"}}}}]}
            }
        });
        stack
            .kubectl
            .create(&serde_json::to_string(&restore)?)
            .await?;
        let done = dp::restore_completed(&stack.client, NS, "pitr-restore", WAIT).await?;

        // The sets, in order: the base's action, then the continuous one.
        let actions = done
            .status
            .and_then(|s| s.actions)
            .and_then(|a| a.prepare_data)
            .unwrap_or_default();
        let sets: Vec<(String, String)> = actions
            .iter()
            .map(|a| (a.name.clone(), a.backup_name.clone()))
            .collect();
        anyhow::ensure!(
            sets == [
                ("prepareData-0".to_string(), "full-1".to_string()),
                ("prepareData-1".to_string(), "pitr-1".to_string())
            ],
            "the base's set, then the continuous one: {sets:?}"
        );

        // The base's files, byte for byte, and the env the continuous action received.
        let restored_dir = dp::pvc_dir(&stack.client, NS, "data-pitr-restored").await?;
        let env = std::fs::read_to_string(restored_dir.join("pitr-env.txt"))?;
        let mut restored = files::tree(&restored_dir)?;
        restored.remove("pitr-env.txt");
        let differences = files::differences(&source, &restored);
        anyhow::ensure!(
            differences.is_empty(),
            "the restored PVC differs from the base:\n{}",
            differences.join("\n")
        );
        let restore_at = cairn_api::parse::restore_time::parse(&restore_time)?;
        let local = restore_at
            .to_zoned(jiff::tz::TimeZone::fixed(jiff::tz::offset(2)))
            .strftime("%Y-%m-%d %H:%M:%S +02:00")
            .to_string();
        for line in [
            "DP_BACKUP_NAME=pitr-1".to_string(),
            "DP_BASE_BACKUP_NAME=full-1".to_string(),
            format!("DP_RESTORE_TIME={local}"),
            format!("DP_RESTORE_TIMESTAMP={}", restore_at.as_second()),
        ] {
            anyhow::ensure!(
                env.lines().any(|l| l == line),
                "the continuous action's env has {line}:\n{env}"
            );
        }
        Ok(())
    })
    .await
}
