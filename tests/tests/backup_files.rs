//! A file-level ActionSet backs up a pod's PVC into the default local repository and a Restore
//! brings it back into a new PVC, byte for byte; every object is applied with the real kubectl
//! and the processes (localkube, control plane, agent) run separately over mTLS.

use std::time::Duration;

use cairn_e2e::{dp, files, run, scenario};

const NS: &str = "shop";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_backup_of_a_pvc_restores_into_a_new_pvc_byte_for_byte() -> anyhow::Result<()> {
    run("backup-files", async |stack| {
        let workload = scenario::workload(stack, NS, "db", 3 << 20).await?;
        let source = files::tree(&workload.data_dir)?;
        anyhow::ensure!(
            files::file_bytes(&source) > 3 << 20,
            "the pod wrote its data"
        );
        let policy = scenario::file_policy(stack, &workload, "db-files", "files", "", "").await?;
        scenario::backup(stack, NS, "db-1", &policy.name, &policy.method, "Delete").await?;
        let backup =
            dp::backup_completed(&stack.client, NS, "db-1", Duration::from_secs(60)).await?;

        let status = backup.status.unwrap_or_default();
        anyhow::ensure!(
            status.backup_repo_name.as_deref() == Some("local"),
            "the default repository was used, got {:?}",
            status.backup_repo_name
        );
        let total: u64 = status
            .total_size
            .as_deref()
            .unwrap_or_default()
            .parse()
            .unwrap_or(0);
        anyhow::ensure!(total > 0, "status.totalSize is {:?}", status.total_size);
        let path = status.path.unwrap_or_default();
        let stored = stack.local_repo().join(path.trim_start_matches('/'));
        let archive = stored.join("db-1.tar.zst");
        let archive_len = std::fs::metadata(&archive)
            .map(|m| m.len())
            .map_err(|e| anyhow::anyhow!("{} is not in the repository: {e}", archive.display()))?;
        anyhow::ensure!(archive_len > 0, "the archive is empty");
        let manifest = std::fs::read_to_string(stored.join("kubeblocks-backup.json"))?;
        anyhow::ensure!(
            manifest.contains("\"db-1\""),
            "kubeblocks-backup.json describes the backup: {manifest}"
        );
        let shown = stack
            .kubectl
            .run(&["get", "backup", "db-1", "-n", NS])
            .await?;
        anyhow::ensure!(shown.contains("Completed"), "kubectl get backup: {shown}");

        scenario::restore(stack, NS, "db-1-restore", "db-1", "data-db-restored").await?;
        dp::restore_completed(&stack.client, NS, "db-1-restore", Duration::from_secs(60)).await?;
        let restored_dir = dp::pvc_dir(&stack.client, NS, "data-db-restored").await?;
        anyhow::ensure!(
            restored_dir != workload.data_dir,
            "the restore went into a new volume"
        );
        let restored = files::tree(&restored_dir)?;
        let differences = files::differences(&source, &restored);
        anyhow::ensure!(
            differences.is_empty(),
            "the restored PVC differs from the original:\n{}",
            differences.join("\n")
        );
        dp::nothing_left_behind(&stack.client, NS, &[&workload.pod], Duration::from_secs(30)).await
    })
    .await
}

/// A backupData Job with `runOnTargetPodNode: false` mounts none of the target's volumes and
/// runs through a connected agent chosen by the control plane (the target's node here, the only
/// one: localkube runs one node), recorded in `cairn.io/backup-nodes` (ARCHITECTURE.md §K2.12).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_job_not_run_on_the_target_node_is_placed_on_a_connected_agent()
-> anyhow::Result<()> {
    run("backup-anywhere", async |stack| {
        let workload = scenario::workload(stack, NS, "db", 4096).await?;
        let actionset = cairn_e2e::manifests::render(
            "actionset-files.yaml",
            &[("ACTIONSET", "anywhere"), ("BEFORE_PUSH", "")],
        )?
        .replacen("runOnTargetPodNode: true", "runOnTargetPodNode: false", 1)
        .replace("tar -cf - -C /data .", "echo not-from-the-target-volume");
        anyhow::ensure!(
            actionset.contains("runOnTargetPodNode: false"),
            "{actionset}"
        );
        stack.kubectl.apply(&actionset).await?;
        let policy = scenario::policy_for(stack, &workload, "anywhere", "anywhere", "", 1).await?;
        scenario::backup(
            stack,
            NS,
            "anywhere-1",
            &policy.name,
            &policy.method,
            "Delete",
        )
        .await?;
        let backup =
            dp::backup_completed(&stack.client, NS, "anywhere-1", Duration::from_secs(90)).await?;
        let pods: kube::Api<k8s_openapi::api::core::v1::Pod> =
            kube::Api::namespaced(stack.client.clone(), NS);
        let node = pods
            .get(&workload.pod)
            .await?
            .spec
            .and_then(|s| s.node_name)
            .unwrap_or_default();
        let recorded = backup
            .metadata
            .annotations
            .unwrap_or_default()
            .get("cairn.io/backup-nodes")
            .cloned()
            .unwrap_or_default();
        let nodes: std::collections::BTreeMap<String, String> = serde_json::from_str(&recorded)?;
        anyhow::ensure!(
            !node.is_empty() && nodes.len() == 1 && nodes.values().all(|n| *n == node),
            "the backupData Job's node is recorded: {recorded:?} (pod on {node:?})"
        );
        Ok(())
    })
    .await
}
