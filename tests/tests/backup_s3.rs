//! The file backup and byte-for-byte restore against an S3-compatible server on loopback
//! (SeaweedFS): a Cairn StorageProvider for S3 (datasafed `type = s3`), a BackupRepo whose keys
//! come from a credential Secret, and a policy naming that repository.

use std::time::Duration;

use cairn_e2e::s3::SeaweedFs;
use cairn_e2e::{dp, files, manifests, run, scenario};

const NS: &str = "shop";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_backup_to_s3_restores_into_a_new_pvc_byte_for_byte() -> anyhow::Result<()> {
    run("backup-s3", async |stack| {
        let s3 = SeaweedFs::start(&stack.scratch.join("s3"))?;
        stack
            .kubectl
            .apply(&manifests::render(
                "s3-repo.yaml",
                &[
                    ("REPO", "e2e-s3"),
                    ("CREDENTIAL_NS", "storage-keys"),
                    ("ACCESS_KEY", &s3.access_key),
                    ("SECRET_KEY", &s3.secret_key),
                    ("BUCKET", &s3.bucket),
                    ("ENDPOINT", &s3.endpoint),
                    ("PATH_PREFIX", "e2e"),
                ],
            )?)
            .await?;
        dp::repo_ready(&stack.client, "e2e-s3", Duration::from_secs(60)).await?;

        let workload = scenario::workload(stack, NS, "db", 2 << 20).await?;
        let source = files::tree(&workload.data_dir)?;
        let policy =
            scenario::file_policy(stack, &workload, "db-s3", "files", "e2e-s3", "").await?;
        scenario::backup(stack, NS, "db-s3-1", &policy.name, &policy.method, "Delete").await?;
        let backup =
            dp::backup_completed(&stack.client, NS, "db-s3-1", Duration::from_secs(60)).await?;
        let status = backup.status.unwrap_or_default();
        anyhow::ensure!(
            status.backup_repo_name.as_deref() == Some("e2e-s3"),
            "the policy's repository was used, got {:?}",
            status.backup_repo_name
        );
        let path = status.path.unwrap_or_default();
        anyhow::ensure!(
            path.starts_with("/e2e/shop/"),
            "the path starts with the repo's pathPrefix and the namespace: {path}"
        );

        // What the bucket holds, seen with the keys directly (as an operator would).
        let config = stack.scratch.join("direct-s3.conf");
        std::fs::write(&config, s3.datasafed_config())?;
        let listing = std::process::Command::new(stack.stack.bin_dir.join("datasafed"))
            .arg("-c")
            .arg(&config)
            .args(["list", "-r", &path])
            .output()?;
        let listed = String::from_utf8_lossy(&listing.stdout);
        anyhow::ensure!(
            listing.status.success()
                && listed.contains("db-s3-1.tar.zst")
                && listed.contains("kubeblocks-backup.json"),
            "the bucket holds the archive and the backup manifest under {path}: {listed} {}",
            String::from_utf8_lossy(&listing.stderr)
        );
        anyhow::ensure!(
            !stack.local_repo().join("e2e").exists() && !stack.local_repo().join("shop").exists(),
            "nothing went to the local repository"
        );

        scenario::restore(stack, NS, "db-s3-restore", "db-s3-1", "data-db-restored").await?;
        dp::restore_completed(&stack.client, NS, "db-s3-restore", Duration::from_secs(60)).await?;
        let restored = files::tree(&dp::pvc_dir(&stack.client, NS, "data-db-restored").await?)?;
        let differences = files::differences(&source, &restored);
        anyhow::ensure!(
            differences.is_empty(),
            "the PVC restored from S3 differs from the original:\n{}",
            differences.join("\n")
        );
        dp::nothing_left_behind(&stack.client, NS, &[&workload.pod], Duration::from_secs(30)).await
    })
    .await
}
