//! A Mount BackupRepo on a volume that is not a local directory of the node (ARCHITECTURE.md
//! §K5.5): the repository PVCs come from localkube's shared CSI driver (`shared.localkube.io`,
//! NFS-like: `csi.volumeAttributes` name the directory, no node affinity), as KubeBlocks' `pvc`
//! and `nfs` StorageProviders produce. The agent reaches the volume through a holder pod on its
//! node, reading and writing where the kubelet mounted it; a file backup and a restore go
//! through it, the holder pod survives a kill -9 of the agent and is taken over by the restarted
//! agent, and it goes once idle.

use std::time::Duration;

use anyhow::Context as _;
use cairn_api::backup::Backup;
use cairn_api::backup_repo::BackupRepo;
use cairn_e2e::manifests::render;
use cairn_e2e::wait::{Check, until};
use cairn_e2e::{dp, files, run, scenario};
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim, Pod};
use kube::api::{Api, ListParams};

const NS: &str = "shop";
const REPO: &str = "shared-repo";
const HOLDER_LABEL: &str = "cairn.io/mount-holder-node";

async fn holder_pods(client: &kube::Client) -> anyhow::Result<Vec<String>> {
    Ok(Api::<Pod>::all(client.clone())
        .list(&ListParams::default().labels(HOLDER_LABEL))
        .await?
        .items
        .into_iter()
        .map(|p| {
            format!(
                "{}/{}",
                p.metadata.namespace.unwrap_or_default(),
                p.metadata.name.unwrap_or_default()
            )
        })
        .collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mount_repository_on_a_shared_csi_volume_backs_up_and_restores_through_a_holder_pod()
-> anyhow::Result<()> {
    run("mount-shared", async |stack| {
        let workload = scenario::workload(stack, NS, "db", 2 << 20).await?;
        let source = files::tree(&workload.data_dir)?;
        stack
            .kubectl
            .apply(&render("db/pvc-provider.yaml", &[])?)
            .await?;
        let repo = render(
            "db/mount-repo.yaml",
            &[("REPO", REPO), ("PROVIDER", "cairn-pvc")],
        )?
        .replace(
            "storageClassName: local-path",
            "storageClassName: localkube-shared\n    accessMode: ReadWriteMany",
        );
        anyhow::ensure!(repo.contains("localkube-shared"), "{repo}");
        stack.kubectl.apply(&repo).await?;
        dp::repo_ready(&stack.client, REPO, Duration::from_secs(90)).await?;

        let policy = scenario::file_policy(stack, &workload, "db-files", "files", REPO, "").await?;
        scenario::backup(stack, NS, "db-1", &policy.name, &policy.method, "Delete").await?;
        let backup: Backup =
            dp::backup_completed(&stack.client, NS, "db-1", Duration::from_secs(120)).await?;
        let status = backup.status.clone().unwrap_or_default();
        anyhow::ensure!(
            status.backup_repo_name.as_deref() == Some(REPO),
            "backup repository {:?}",
            status.backup_repo_name
        );

        // The repository PVC is a CSI volume of the shared driver, with no local path the agent
        // could open itself.
        let claim = Api::<BackupRepo>::all(stack.client.clone())
            .get(REPO)
            .await?
            .status
            .and_then(|s| s.backup_pvc_name)
            .context("the BackupRepo names its PVC")?;
        let pvc = Api::<PersistentVolumeClaim>::namespaced(stack.client.clone(), NS)
            .get(&claim)
            .await?;
        let volume = pvc.spec.and_then(|s| s.volume_name).unwrap_or_default();
        let pv = Api::<PersistentVolume>::all(stack.client.clone())
            .get(&volume)
            .await?
            .spec
            .unwrap_or_default();
        anyhow::ensure!(
            pv.csi.as_ref().map(|c| c.driver.as_str()) == Some("shared.localkube.io")
                && pv.local.is_none()
                && pv.host_path.is_none(),
            "the repository volume is a shared CSI volume: {pv:?}"
        );
        // What the agent wrote (the archive through datasafed, kubeblocks-backup.json) is in
        // the shared volume, where action pods see it at /backupdata.
        let stored = dp::pvc_dir(&stack.client, NS, &claim)
            .await?
            .join(status.path.unwrap_or_default().trim_start_matches('/'));
        let archive = std::fs::metadata(stored.join("db-1.tar.zst"))
            .with_context(|| format!("the archive in {}", stored.display()))?;
        anyhow::ensure!(archive.len() > 0, "the archive is empty");
        let manifest = std::fs::read_to_string(stored.join("kubeblocks-backup.json"))
            .with_context(|| format!("kubeblocks-backup.json in {}", stored.display()))?;
        anyhow::ensure!(manifest.contains("\"db-1\""), "{manifest}");
        // The agent held the claim on its node to get there.
        let log = stack.log("agent.log");
        anyhow::ensure!(
            log.contains("holding a repository PVC on this node"),
            "the agent did not hold the repository PVC:\n{log}"
        );

        // The holder stays while idle; kill -9 of the agent leaves it, and the restarted agent
        // takes it over (then uses it again or deletes it once idle).
        // (The repository's pre-check held its own PVC in the control plane's namespace.)
        let held: Vec<String> = holder_pods(&stack.client)
            .await?
            .into_iter()
            .filter(|pod| pod.starts_with(&format!("{NS}/")))
            .collect();
        anyhow::ensure!(held.len() == 1, "one holder pod after the backup: {held:?}");
        stack.stack.agent().kill9();
        stack.stack.restart_agent().await?;
        until(
            "the restarted agent to take over the holder pod",
            Duration::from_secs(60),
            async || {
                Ok(
                    if stack
                        .log("agent.log")
                        .contains("adopted a repository holder pod left by a previous run")
                    {
                        Check::Done(())
                    } else {
                        Check::Pending(format!(
                            "holder pods {:?}",
                            holder_pods(&stack.client).await?
                        ))
                    },
                )
            },
        )
        .await?;

        scenario::restore(stack, NS, "db-1-restore", "db-1", "data-db-restored").await?;
        dp::restore_completed(&stack.client, NS, "db-1-restore", Duration::from_secs(120)).await?;
        let restored = files::tree(&dp::pvc_dir(&stack.client, NS, "data-db-restored").await?)?;
        let differences = files::differences(&source, &restored);
        anyhow::ensure!(
            differences.is_empty(),
            "the restored PVC differs from the original:\n{}",
            differences.join("\n")
        );

        // Idle (30 s by default), the holder pod goes.
        until(
            "the repository holder pods to be deleted once idle",
            Duration::from_secs(90),
            async || {
                let left = holder_pods(&stack.client).await?;
                Ok(if left.is_empty() {
                    Check::Done(())
                } else {
                    Check::Pending(left.join(", "))
                })
            },
        )
        .await?;
        anyhow::ensure!(
            stack
                .log("agent.log")
                .contains("deleting an idle repository holder pod"),
            "the agent deleted its holder pod"
        );
        dp::nothing_left_behind(&stack.client, NS, &[&workload.pod], Duration::from_secs(30)).await
    })
    .await
}
