//! A file-level backup chain (GNU tar `--listed-incremental`, the tar state carried from parent
//! to child through the repository): a Full, then Incrementals with files added, changed and
//! deleted in between, each finding its parent itself; the Restore of the last one replays the
//! chain into a new PVC, byte for byte, the deleted files absent; deleting the base then deletes
//! the whole chain and its files. Real kubectl, localkube, control plane and agent, each its own
//! process.

use std::path::Path;
use std::time::Duration;

use cairn_api::backup::Backup;
use cairn_e2e::manifests::render;
use cairn_e2e::{TestStack, dp, files, run, scenario};

const NS: &str = "chain";
const WAIT: Duration = Duration::from_secs(90);

async fn back_up(stack: &TestStack, name: &str, method: &str) -> anyhow::Result<Backup> {
    scenario::backup(stack, NS, name, "files-chain", method, "Delete").await?;
    dp::backup_completed(&stack.client, NS, name, WAIT).await
}

fn links(backup: &Backup) -> (String, String) {
    let status = backup.status.clone().unwrap_or_default();
    (
        status.parent_backup_name.unwrap_or_default(),
        status.base_backup_name.unwrap_or_default(),
    )
}

/// The size of the archive a backup stored.
fn archive_len(stack: &TestStack, backup: &Backup) -> anyhow::Result<u64> {
    let path = backup
        .status
        .as_ref()
        .and_then(|s| s.path.clone())
        .unwrap_or_default();
    let name = backup.metadata.name.clone().unwrap_or_default();
    let archive = stack
        .local_repo()
        .join(path.trim_start_matches('/'))
        .join(format!("{name}.tar.zst"));
    Ok(std::fs::metadata(&archive)
        .map_err(|e| anyhow::anyhow!("{} is not in the repository: {e}", archive.display()))?
        .len())
}

fn write(dir: &Path, relative: &str, bytes: &[u8]) -> anyhow::Result<()> {
    let path = dir.join(relative);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(path, bytes)?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incremental_chain_of_files_restores_the_last_state_exactly() -> anyhow::Result<()> {
    run("backup-chain-files", async |stack| {
        let workload = scenario::workload(stack, NS, "files", 2 << 20).await?;
        let data = workload.data_dir.clone();
        stack
            .kubectl
            .apply(&render(
                "actionset-files-chain.yaml",
                &[("FULL_AS", "files-full"), ("INC_AS", "files-inc")],
            )?)
            .await?;
        stack
            .kubectl
            .apply(&render(
                "policy-chain.yaml",
                &[
                    ("POLICY", "files-chain"),
                    ("NS", NS),
                    ("APP", &workload.app),
                    ("FULL_AS", "files-full"),
                    ("INC_AS", "files-inc"),
                ],
            )?)
            .await?;

        let full = back_up(stack, "full-1", "full").await?;
        anyhow::ensure!(
            links(&full) == (String::new(), String::new()),
            "a full backup has no parent: {:?}",
            links(&full)
        );

        // Incremental 1: a file added, one changed, one deleted, a directory added.
        write(&data, "added-1.txt", b"added before the first incremental")?;
        write(&data, "hello.txt", b"changed before the first incremental")?;
        std::fs::remove_file(data.join("empty.txt"))?;
        write(&data, "new-dir/inner.bin", &[7u8; 5000])?;
        let inc1 = back_up(stack, "inc-1", "inc").await?;
        anyhow::ensure!(
            links(&inc1) == ("full-1".into(), "full-1".into()),
            "inc-1 links to full-1: {:?}",
            links(&inc1)
        );
        // Only what changed was archived: far less than the 2 MiB of random data.
        let (full_len, inc_len) = (archive_len(stack, &full)?, archive_len(stack, &inc1)?);
        anyhow::ensure!(
            inc_len * 10 < full_len,
            "the incremental archive ({inc_len} bytes) holds only the changes, the full has {full_len}"
        );

        // Incremental 2: a deeper file deleted, a directory deleted, a file changed again.
        std::fs::remove_file(data.join("dir with spaces/deeper/small.bin"))?;
        std::fs::remove_dir(data.join("empty-dir"))?;
        write(&data, "added-1.txt", b"changed again before the second incremental")?;
        write(&data, "added-2.txt", b"added before the second incremental")?;
        let inc2 = back_up(stack, "inc-2", "inc").await?;
        anyhow::ensure!(
            links(&inc2) == ("inc-1".into(), "full-1".into()),
            "inc-2 links to inc-1 on base full-1: {:?}",
            links(&inc2)
        );

        // Incremental 3: the big file changed, the new directory removed.
        write(&data, "random.bin", &[1u8; 3000])?;
        std::fs::remove_dir_all(data.join("new-dir"))?;
        let inc3 = back_up(stack, "inc-3", "inc").await?;
        anyhow::ensure!(
            links(&inc3) == ("inc-2".into(), "full-1".into()),
            "inc-3 links to inc-2 on base full-1: {:?}",
            links(&inc3)
        );
        let source = files::tree(&data)?;
        for gone in ["empty.txt", "empty-dir", "new-dir", "dir with spaces/deeper/small.bin"] {
            anyhow::ensure!(!source.contains_key(gone), "{gone} was deleted");
        }

        scenario::restore(stack, NS, "inc-3-restore", "inc-3", "data-files-restored").await?;
        dp::restore_completed(&stack.client, NS, "inc-3-restore", WAIT).await?;
        let restored_dir = dp::pvc_dir(&stack.client, NS, "data-files-restored").await?;
        anyhow::ensure!(restored_dir != data, "the restore went into a new volume");
        let restored = files::tree(&restored_dir)?;
        let differences = files::differences(&source, &restored);
        anyhow::ensure!(
            differences.is_empty(),
            "the restored PVC differs from the last state:\n{}",
            differences.join("\n")
        );
        dp::nothing_left_behind(&stack.client, NS, &[&workload.pod], Duration::from_secs(30))
            .await?;

        // Deleting the base deletes its chain first, then its own files: nothing is left.
        let stored: Vec<_> = [&full, &inc1, &inc2, &inc3]
            .iter()
            .map(|b| {
                let path = b.status.as_ref().and_then(|s| s.path.clone()).unwrap_or_default();
                stack.local_repo().join(path.trim_start_matches('/'))
            })
            .collect();
        stack
            .kubectl
            .run(&["delete", "backup", "full-1", "-n", NS, "--wait=false"])
            .await?;
        let api: kube::Api<Backup> = kube::Api::namespaced(stack.client.clone(), NS);
        for name in ["inc-3", "inc-2", "inc-1", "full-1"] {
            dp::gone(&api, name, WAIT).await?;
        }
        for dir in stored {
            anyhow::ensure!(!dir.exists(), "{} was not deleted", dir.display());
        }
        Ok(())
    })
    .await
}
