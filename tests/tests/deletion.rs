//! Deleting Backups with kubectl: `deletionPolicy: Delete` removes the files from the repository
//! and then the object; `Retain` removes the object and keeps the files (the API reference's
//! meaning, where KubeBlocks keeps the object in Deleting forever).

use std::time::Duration;

use cairn_api::backup::Backup;
use cairn_e2e::{dp, run, scenario};
use kube::api::Api;

const NS: &str = "shop";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_removes_a_backups_files_and_retain_keeps_them_while_both_objects_go()
-> anyhow::Result<()> {
    run("deletion", async |stack| {
        let workload = scenario::workload(stack, NS, "db", 256 << 10).await?;
        let policy = scenario::file_policy(stack, &workload, "db-files", "files", "", "").await?;
        scenario::backup(stack, NS, "drop-me", &policy.name, &policy.method, "Delete").await?;
        scenario::backup(stack, NS, "keep-me", &policy.name, &policy.method, "Retain").await?;
        let mut dirs = Vec::new();
        for name in ["drop-me", "keep-me"] {
            let backup =
                dp::backup_completed(&stack.client, NS, name, Duration::from_secs(60)).await?;
            let path = backup.status.and_then(|s| s.path).unwrap_or_default();
            let dir = stack.local_repo().join(path.trim_start_matches('/'));
            anyhow::ensure!(
                dir.join(format!("{name}.tar.zst")).is_file(),
                "{name}'s archive is in {}",
                dir.display()
            );
            dirs.push(dir);
        }
        let (drop_dir, keep_dir) = (&dirs[0], &dirs[1]);
        let backups: Api<Backup> = Api::namespaced(stack.client.clone(), NS);

        stack
            .kubectl
            .run(&["delete", "backup", "drop-me", "-n", NS, "--timeout=60s"])
            .await?;
        dp::gone(&backups, "drop-me", Duration::from_secs(30)).await?;
        anyhow::ensure!(
            !drop_dir.exists(),
            "the Delete backup's files are gone from {}",
            drop_dir.display()
        );
        anyhow::ensure!(
            keep_dir.join("keep-me.tar.zst").is_file(),
            "deleting one backup left the other's files alone"
        );

        stack
            .kubectl
            .run(&["delete", "backup", "keep-me", "-n", NS, "--timeout=60s"])
            .await?;
        dp::gone(&backups, "keep-me", Duration::from_secs(30)).await?;
        anyhow::ensure!(
            keep_dir.join("keep-me.tar.zst").is_file()
                && keep_dir.join("kubeblocks-backup.json").is_file(),
            "the Retain backup's files stay in {}",
            keep_dir.display()
        );
        let listed = stack.kubectl.run(&["get", "backups", "-n", NS]).await?;
        anyhow::ensure!(
            !listed.contains("drop-me") && !listed.contains("keep-me"),
            "kubectl lists no backup any more: {listed}"
        );
        dp::nothing_left_behind(&stack.client, NS, &[&workload.pod], Duration::from_secs(30)).await
    })
    .await
}
