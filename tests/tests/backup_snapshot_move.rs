//! Snapshot data movement (ARCHITECTURE.md §K2.5a) end to end on localkube's CSI snapshotter
//! and the stack's local repository: a policy annotated `cairn.io/snapshot-data-movement`
//! copies each VolumeSnapshot into the deduplicating repository through a short-lived claim
//! and holder pod; a second backup after 5 % of the files changed stores about 5 % more; with
//! the snapshot deleted a Restore fills an empty claim from the copy, byte-equal to the volume
//! at the backup; a move that fails leaves no temporary claim or pod.

use std::time::Duration;

use anyhow::{Context as _, ensure};
use cairn_api::backup::{Backup, VolumeSnapshotCopy};
use cairn_e2e::stack::TestStack;
use cairn_e2e::{dp, files, run, scenario};

const NS: &str = "snapmove";
const TIMEOUT: Duration = Duration::from_secs(240);
/// Files of 100 KiB the test writes on the data volume; one of them is 5 %.
const FILES: usize = 20;

async fn deploy(stack: &TestStack, app: &str, timeout: &str) -> anyhow::Result<()> {
    scenario::snapshot_workload(stack, NS, app, timeout).await?;
    stack
        .kubectl
        .run(&[
            "annotate",
            "backuppolicy",
            &format!("{app}-snapshots"),
            "-n",
            NS,
            "cairn.io/snapshot-data-movement=snap",
        ])
        .await?;
    Ok(())
}

fn copies(backup: &Backup) -> Vec<VolumeSnapshotCopy> {
    backup
        .status
        .as_ref()
        .and_then(|s| s.volume_snapshot_copies.clone())
        .unwrap_or_default()
}

fn copy_of<'c>(
    copies: &'c [VolumeSnapshotCopy],
    volume: &str,
) -> anyhow::Result<&'c VolumeSnapshotCopy> {
    copies
        .iter()
        .find(|c| c.volume_name == volume)
        .with_context(|| format!("no repository copy of volume {volume}: {copies:?}"))
}

/// The names of the claims and pods of the namespace that are data movement leftovers.
async fn leftovers(stack: &TestStack) -> anyhow::Result<Vec<String>> {
    let out = stack
        .kubectl
        .run(&["get", "pvc,pods", "-n", NS, "-o", "name"])
        .await?;
    Ok(out
        .lines()
        .filter(|l| l.ends_with("-dm"))
        .map(str::to_string)
        .collect())
}

async fn no_leftovers(stack: &TestStack) -> anyhow::Result<()> {
    cairn_e2e::wait::until("the temporary claims and pods to go", TIMEOUT, async || {
        let left = leftovers(stack).await?;
        Ok(if left.is_empty() {
            cairn_e2e::wait::Check::Done(())
        } else {
            cairn_e2e::wait::Check::Pending(left.join(", "))
        })
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moved_snapshots_deduplicate_and_restore_from_the_repository_once_the_snapshot_is_gone()
-> anyhow::Result<()> {
    run("snapshot-move", async |stack| {
        deploy(stack, "mv", "5m").await?;
        stack
            .kubectl
            .run(&[
                "exec", "-n", NS, "mv-0", "-c", "main", "--", "sh", "-c",
                &format!("for i in $(seq 1 {FILES}); do head -c 102400 /dev/urandom > /data/f$i; done"),
            ])
            .await?;
        scenario::backup(stack, NS, "b1", "mv-snapshots", "snap", "Delete").await?;
        let b1 = dp::backup_completed(&stack.client, NS, "b1", TIMEOUT).await?;
        let source = dp::pvc_dir(&stack.client, NS, "data-mv-0").await?;
        let data_then = files::tree(&source)?;
        let status = b1.status.clone().unwrap_or_default();
        ensure!(
            status.kopia_repo_path.as_deref().is_some_and(|p| p.ends_with("/kopia")),
            "the copies go into the policy's deduplicating repository: {:?}",
            status.kopia_repo_path
        );
        ensure!(status.path.is_some() && status.backup_repo_name.is_some(), "{status:?}");
        let first = copies(&b1);
        let data1 = copy_of(&first, "data")?.clone();
        copy_of(&first, "log")?;
        ensure!(data1.volume_snapshot_name == "b1-0-data", "{data1:?}");
        ensure!(data1.size.as_deref() == Some("1Gi"), "{data1:?}");
        ensure!(
            data1.bytes_read >= (FILES * 102_400) as i64,
            "the copy read every file: {data1:?}"
        );
        let vs = stack.kubectl.get_json(&["volumesnapshot", "b1-0-data", "-n", NS]).await?;
        ensure!(vs["status"]["readyToUse"] == true, "the snapshot is kept: {vs}");
        no_leftovers(stack).await?;

        // 5 % of the files change; the second copy stores about that much.
        stack
            .kubectl
            .run(&[
                "exec", "-n", NS, "mv-0", "-c", "main", "--", "sh", "-c",
                "head -c 102400 /dev/urandom > /data/f1",
            ])
            .await?;
        scenario::backup(stack, NS, "b2", "mv-snapshots", "snap", "Delete").await?;
        let b2 = dp::backup_completed(&stack.client, NS, "b2", TIMEOUT).await?;
        let data2 = copy_of(&copies(&b2), "data")?.clone();
        eprintln!(
            "first copy stored {} bytes, second after 5 % changed stored {} bytes",
            data1.bytes_stored, data2.bytes_stored
        );
        ensure!(
            data2.bytes_stored > 0 && data2.bytes_stored * 5 < data1.bytes_stored,
            "the second copy stores about the changed 5 % only: first {}, second {}",
            data1.bytes_stored,
            data2.bytes_stored
        );

        // The snapshot goes; a Restore of b1 fills an empty claim from the repository copy.
        stack
            .kubectl
            .run(&["delete", "volumesnapshot", "b1-0-data", "-n", NS, "--timeout=60s"])
            .await?;
        stack
            .kubectl
            .create(&format!(
                "apiVersion: dataprotection.kubeblocks.io/v1alpha1\nkind: Restore\nmetadata: {{name: r1, namespace: {NS}}}\n\
                 spec:\n  backup: {{name: b1, namespace: {NS}}}\n  prepareDataConfig:\n    volumeClaims:\n\
                 \x20     - metadata: {{name: restored-data}}\n        volumeSource: data\n        volumeClaimSpec:\n\
                 \x20         storageClassName: local-csi\n          accessModes: [ReadWriteOnce]\n          resources: {{requests: {{storage: 1Gi}}}}\n"
            ))
            .await?;
        dp::restore_completed(&stack.client, NS, "r1", TIMEOUT).await?;
        let pvc = stack.kubectl.get_json(&["pvc", "restored-data", "-n", NS]).await?;
        ensure!(pvc["spec"]["dataSource"].is_null(), "made empty, not from the snapshot: {pvc}");
        ensure!(
            pvc["metadata"]["annotations"]["cairn.io/restored-from-copy"]
                == serde_json::json!(data1.repository_path),
            "{pvc}"
        );
        let restored = files::tree(&dp::pvc_dir(&stack.client, NS, "restored-data").await?)?;
        let differences = files::differences(&data_then, &restored);
        ensure!(
            differences.is_empty(),
            "the restored claim is byte-equal to the volume at b1: {differences:?}"
        );
        no_leftovers(stack).await?;

        // Deleting b2 forgets its copies (b1's stay restorable) and deletes its snapshots.
        stack.kubectl.run(&["delete", "backup", "b2", "-n", NS, "--timeout=120s"]).await?;
        let out = stack
            .kubectl
            .output(&["get", "volumesnapshot", "b2-0-data", "-n", NS], None)
            .await?;
        ensure!(!out.success, "b2's snapshot went with it");
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_move_fails_the_backup_and_leaves_no_temporary_claim_or_pod() -> anyhow::Result<()>
{
    run("snapshot-move-fails", async |stack| {
        // A 20 s timeout: the claim made from a snapshot deleted under the move never binds.
        deploy(stack, "mf", "20s").await?;
        let side = stack.scratch.join("mf-side");
        // The thaw hook waits for the test, which deletes the snapshot meanwhile.
        stack
            .kubectl
            .run(&[
                "patch", "actionset", "mf-freeze", "--type=json", "-p",
                r#"[{"op": "replace", "path": "/spec/backup/postBackup/0/exec/command", "value": ["sh", "-c", "while [ ! -f /side/go ]; do sleep 0.2; done; echo thawed >> /side/hooks.log"]}]"#,
            ])
            .await?;
        scenario::backup(stack, NS, "b1", "mf-snapshots", "snap", "Delete").await?;
        // The snapshot action must have seen its snapshot ready (the thaw hook then holds the
        // move back): deleting a snapshot the action has not yet seen ready fails the snapshot
        // action, not the move.
        cairn_e2e::wait::until("the snapshot action to complete", TIMEOUT, async || {
            let out = stack
                .kubectl
                .output(
                    &[
                        "get", "backup", "b1", "-n", NS, "-o",
                        r#"jsonpath={.status.actions[?(@.name=="createVolumeSnapshot-0")].phase}"#,
                    ],
                    None,
                )
                .await?;
            Ok(if out.stdout.trim() == "Completed" {
                cairn_e2e::wait::Check::Done(())
            } else {
                cairn_e2e::wait::Check::Pending(out.stdout.clone())
            })
        })
        .await?;
        stack
            .kubectl
            .run(&["delete", "volumesnapshot", "b1-0-data", "-n", NS, "--timeout=60s"])
            .await?;
        std::fs::write(side.join("go"), b"")?;
        let backup = dp::backup_finished(&stack.client, NS, "b1", TIMEOUT).await?;
        ensure!(dp::backup_phase(&backup) == "Failed", "{:?}", backup.status);
        let reason = dp::failure_reason(&backup);
        let action = backup
            .status
            .as_ref()
            .and_then(|s| s.actions.as_ref())
            .into_iter()
            .flatten()
            .find(|a| a.name.as_deref() == Some("moveVolumeData-0"))
            .cloned()
            .context("no moveVolumeData-0 action")?;
        let message = action.failure_reason.clone().unwrap_or_default();
        ensure!(
            message.contains("b1-0-data-dm") && message.contains("20s"),
            "the move failed naming its claim and the timeout: {message:?} ({reason})"
        );
        no_leftovers(stack).await?;
        Ok(())
    })
    .await
}
