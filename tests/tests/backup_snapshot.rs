//! Volume snapshot backups (`snapshotVolumes: true`, ARCHITECTURE.md §K2.5) end to end on
//! localkube's CSI snapshotter: the freeze hook runs before the snapshots and the thaw hook
//! after, each target volume gets a VolumeSnapshot holding the data as it was, every
//! precondition fails the Backup naming what is wrong, and the snapshotter's errors and a
//! snapshot that never becomes ready fail it too. A Restore makes new claims from the snapshots
//! (ARCHITECTURE.md §K4.2a), byte-equal to the volumes at the backup, and fails naming the
//! claim, volume or snapshot that is wrong.

use std::time::Duration;

use anyhow::{Context as _, ensure};
use cairn_api::backup::{ActionPhase, Backup};
use cairn_e2e::stack::TestStack;
use cairn_e2e::{dp, files, run, scenario};

const NS: &str = "snaps";
const BACKUP_TIMEOUT: Duration = Duration::from_secs(120);

/// Deploys the snapshot workload `app-0` and its ActionSet and policy; returns the host
/// directory shared with the pod (`/side`).
async fn deploy(stack: &TestStack, app: &str, timeout: &str) -> anyhow::Result<std::path::PathBuf> {
    scenario::snapshot_workload(stack, NS, app, timeout).await
}

fn snapshot_action(backup: &Backup) -> anyhow::Result<cairn_api::backup::ActionStatus> {
    backup
        .status
        .as_ref()
        .and_then(|s| s.actions.as_ref())
        .into_iter()
        .flatten()
        .find(|a| a.name.as_deref() == Some("createVolumeSnapshot-0"))
        .cloned()
        .context("no createVolumeSnapshot-0 action in the status")
}

/// Reads `path` from a new claim made from VolumeSnapshot `snapshot`, through a pod.
async fn read_from_snapshot(
    stack: &TestStack,
    snapshot: &str,
    claim: &str,
    path: &str,
) -> anyhow::Result<String> {
    stack
        .kubectl
        .apply(&format!(
            "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {{name: {claim}, namespace: {NS}}}\n\
             spec:\n  storageClassName: local-csi\n  accessModes: [ReadWriteOnce]\n  resources: {{requests: {{storage: 1Gi}}}}\n\
             \x20 dataSource: {{apiGroup: snapshot.storage.k8s.io, kind: VolumeSnapshot, name: {snapshot}}}\n---\n\
             apiVersion: v1\nkind: Pod\nmetadata: {{name: read-{claim}, namespace: {NS}}}\nspec:\n  restartPolicy: Never\n\
             \x20 volumes: [{{name: d, persistentVolumeClaim: {{claimName: {claim}}}}}]\n\
             \x20 containers: [{{name: c, image: busybox:1.36, command: [cat, '/d/{path}'], volumeMounts: [{{name: d, mountPath: /d}}]}}]\n"
        ))
        .await?;
    stack
        .kubectl
        .run(&[
            "wait",
            "-n",
            NS,
            "--for=jsonpath={.status.phase}=Succeeded",
            &format!("pod/read-{claim}"),
            "--timeout=60s",
        ])
        .await?;
    stack
        .kubectl
        .run(&["logs", "-n", NS, &format!("read-{claim}")])
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_backup_freezes_snapshots_every_target_volume_and_keeps_the_data_as_it_was()
-> anyhow::Result<()> {
    run("snapshot-backup", async |stack| {
        let side = deploy(stack, "shop", "5m").await?;
        scenario::backup(stack, NS, "b1", "shop-snapshots", "snap", "Delete").await?;
        let backup = dp::backup_completed(&stack.client, NS, "b1", BACKUP_TIMEOUT).await?;
        // Changes after the backup must not reach the snapshot.
        stack
            .kubectl
            .run(&[
                "exec", "-n", NS, "shop-0", "-c", "main", "--", "sh", "-c",
                "echo 'version 2' > '/data/dir with spaces/state.txt'; echo 'log 2' >> /log/app.log",
            ])
            .await?;

        let hooks = std::fs::read_to_string(side.join("hooks.log")).unwrap_or_default();
        ensure!(
            hooks == "frozen\nthawed\n",
            "the freeze hook ran before the snapshots and the thaw hook after: {hooks:?}"
        );
        let status = backup.status.clone().unwrap_or_default();
        ensure!(status.path.is_none(), "no status.path: {:?}", status.path);
        ensure!(
            status.backup_repo_name.is_none(),
            "no repository: {:?}",
            status.backup_repo_name
        );
        let labels = backup.metadata.labels.clone().unwrap_or_default();
        ensure!(
            labels.get("dataprotection.kubeblocks.io/backup-type").map(String::as_str)
                == Some("Full"),
            "a snapshot backup is Full: {labels:?}"
        );
        let action = snapshot_action(&backup)?;
        ensure!(action.phase == Some(ActionPhase::Completed), "{action:?}");
        let snapshots = action.volume_snapshots.clone().unwrap_or_default();
        let seen: Vec<(String, String, String)> = snapshots
            .iter()
            .map(|s| {
                (
                    s.name.clone().unwrap_or_default(),
                    s.volume_name.clone().unwrap_or_default(),
                    s.size.clone().unwrap_or_default(),
                )
            })
            .collect();
        ensure!(
            seen == [
                ("b1-0-data".into(), "data".into(), "1Gi".into()),
                ("b1-0-log".into(), "log".into(), "512Mi".into())
            ],
            "one snapshot per target volume, sized like its volume: {seen:?}"
        );
        ensure!(
            snapshots.iter().all(|s| s.content_name.as_deref().is_some_and(|c| !c.is_empty())),
            "each snapshot names its content: {snapshots:?}"
        );
        ensure!(
            status.total_size.as_deref() == Some(&((1u64 << 30) + (512 << 20)).to_string()),
            "totalSize is the sum of the restore sizes: {:?}",
            status.total_size
        );
        let range = status.time_range.clone().context("no timeRange")?;
        ensure!(range.start.is_some() && range.end.is_some(), "{range:?}");

        let vs = stack
            .kubectl
            .get_json(&["volumesnapshot", "b1-0-data", "-n", NS])
            .await?;
        ensure!(vs["status"]["readyToUse"] == true, "{vs}");
        ensure!(vs["metadata"]["labels"]["dataprotection.kubeblocks.io/backup-name"] == "b1", "{vs}");
        ensure!(vs["metadata"]["ownerReferences"][0]["kind"] == "Backup", "{vs}");
        ensure!(vs["spec"]["volumeSnapshotClassName"] == "local-snapshot", "{vs}");

        let state = read_from_snapshot(stack, "b1-0-data", "from-data", "dir with spaces/state.txt").await?;
        ensure!(state == "version 1\n", "the snapshot holds the data as it was: {state:?}");
        let log = read_from_snapshot(stack, "b1-0-log", "from-log", "app.log").await?;
        ensure!(log == "log 1\n", "and the second volume too: {log:?}");

        // Deletion: Delete takes the snapshots (and, by their class, their contents) along,
        // Retain leaves them (and their contents) without an owner.
        scenario::backup(stack, NS, "b2", "shop-snapshots", "snap", "Retain").await?;
        dp::backup_completed(&stack.client, NS, "b2", BACKUP_TIMEOUT).await?;
        let content = |vs: &serde_json::Value| {
            vs["status"]["boundVolumeSnapshotContentName"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        };
        let b1_content = content(&vs);
        let b2_vs = stack
            .kubectl
            .get_json(&["volumesnapshot", "b2-0-data", "-n", NS])
            .await?;
        let b2_content = content(&b2_vs);
        for name in ["b1", "b2"] {
            stack
                .kubectl
                .run(&["delete", "backup", name, "-n", NS, "--timeout=60s"])
                .await?;
        }
        let gone = async |args: &[&str]| -> anyhow::Result<()> {
            for _ in 0..60 {
                let out = stack.kubectl.output(args, None).await?;
                if !out.success {
                    return Ok(());
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            anyhow::bail!("{args:?} still exists")
        };
        gone(&["get", "volumesnapshot", "b1-0-data", "-n", NS]).await?;
        gone(&["get", "volumesnapshot", "b1-0-log", "-n", NS]).await?;
        gone(&["get", "volumesnapshotcontent", &b1_content]).await?;
        for name in ["b2-0-data", "b2-0-log"] {
            let kept = stack
                .kubectl
                .get_json(&["volumesnapshot", name, "-n", NS])
                .await?;
            ensure!(
                kept["status"]["readyToUse"] == true && kept["metadata"]["ownerReferences"].is_null(),
                "Retain keeps {name}, owned by nothing: {kept}"
            );
        }
        stack
            .kubectl
            .run(&["get", "volumesnapshotcontent", &b2_content])
            .await
            .context("Retain keeps the snapshot's content")?;
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_precondition_fails_the_backup_naming_the_volume_and_pod() -> anyhow::Result<()> {
    run("snapshot-preconditions", async |stack| {
        deploy(stack, "pre", "5m").await?;
        let cases = [
            (
                "snap-plain",
                "persistentVolume \"pvc-",
                "of persistentVolumeClaim \"plain-pre-0\" (volume \"plain\" on pod \"pre-0\") is not a CSI volume",
            ),
            (
                "snap-scratch",
                "the type of volume \"scratch\" is not PersistentVolumeClaim on pod \"pre-0\"",
                "",
            ),
            (
                "snap-none",
                "can not find any volume by targetVolumes [\"nope\"] on pod \"pre-0\"",
                "",
            ),
        ];
        for (method, _, _) in cases {
            scenario::backup(stack, NS, method, "pre-snapshots", method, "Delete").await?;
        }
        for (method, starts, contains) in cases {
            let backup = dp::backup_finished(&stack.client, NS, method, BACKUP_TIMEOUT).await?;
            let reason = dp::failure_reason(&backup);
            ensure!(
                dp::backup_phase(&backup) == "Failed"
                    && reason.starts_with(starts)
                    && reason.contains(contains),
                "{method}: {} {reason:?}",
                dp::backup_phase(&backup)
            );
        }
        let left = stack
            .kubectl
            .run(&["get", "volumesnapshots", "-n", NS, "-o", "name"])
            .await?;
        ensure!(left.trim().is_empty(), "no snapshot was taken: {left}");
        Ok(())
    })
    .await
}

/// Makes VolumeSnapshotClass `name` (with `parameters`) the only default class of the driver.
async fn only_default_class(stack: &TestStack, name: &str, parameters: &str) -> anyhow::Result<()> {
    stack
        .kubectl
        .run(&[
            "annotate",
            "volumesnapshotclass",
            "--all",
            "--overwrite",
            "snapshot.storage.kubernetes.io/is-default-class=false",
        ])
        .await?;
    stack
        .kubectl
        .apply(&format!(
            "apiVersion: snapshot.storage.k8s.io/v1\nkind: VolumeSnapshotClass\nmetadata:\n  name: {name}\n  annotations: {{snapshot.storage.kubernetes.io/is-default-class: \"true\"}}\n\
             driver: localkube/local-path\ndeletionPolicy: Delete\nparameters: {parameters}\n"
        ))
        .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshotter_error_and_a_snapshot_never_ready_fail_the_backup_with_their_reason()
-> anyhow::Result<()> {
    run("snapshot-failures", async |stack| {
        deploy(stack, "flaky", "8s").await?;
        only_default_class(
            stack,
            "broken",
            "{localkube/snapshot-error: 'Failed to create snapshot content with error cannot find CSI PersistentVolumeSource for volume (injected)'}",
        )
        .await?;
        scenario::backup(stack, NS, "broken", "flaky-snapshots", "snap", "Delete").await?;
        let backup = dp::backup_finished(&stack.client, NS, "broken", BACKUP_TIMEOUT).await?;
        let action = snapshot_action(&backup)?;
        let reason = action.failure_reason.clone().unwrap_or_default();
        ensure!(
            dp::backup_phase(&backup) == "Failed"
                && reason.contains("VolumeSnapshot snaps/broken-0-data failed")
                && reason.contains("(injected)"),
            "the snapshotter's error fails the action: {} {reason:?}",
            dp::backup_phase(&backup)
        );

        only_default_class(stack, "slow", "{localkube/snapshot-delay-seconds: '3600'}").await?;
        let started = std::time::Instant::now();
        scenario::backup(stack, NS, "slow", "flaky-snapshots", "snap", "Delete").await?;
        let backup = dp::backup_finished(&stack.client, NS, "slow", BACKUP_TIMEOUT).await?;
        let action = snapshot_action(&backup)?;
        let reason = action.failure_reason.clone().unwrap_or_default();
        ensure!(
            dp::backup_phase(&backup) == "Failed"
                && reason.contains("snaps/slow-0-data")
                && reason.contains("not ready to use after 8s"),
            "a snapshot never ready fails after the timeout: {} {reason:?}",
            dp::backup_phase(&backup)
        );
        ensure!(
            started.elapsed() >= Duration::from_secs(8),
            "not before the timeout: {:?}",
            started.elapsed()
        );
        Ok(())
    })
    .await
}

/// A Restore of snapshot backup `backup` into `claims` (name, volumeSource, size), strategy
/// Any, in the backup's namespace.
fn snapshot_restore(name: &str, backup: &str, claims: &[(&str, &str, &str)]) -> String {
    let claims: String = claims
        .iter()
        .map(|(claim, volume, size)| {
            format!(
                "      - metadata: {{name: {claim}}}\n        volumeSource: {volume}\n        volumeClaimSpec:\n          storageClassName: local-csi\n          accessModes: [ReadWriteOnce]\n          resources: {{requests: {{storage: {size}}}}}\n"
            )
        })
        .collect();
    format!(
        "apiVersion: dataprotection.kubeblocks.io/v1alpha1\nkind: Restore\nmetadata: {{name: {name}, namespace: {NS}}}\n\
         spec:\n  backup: {{name: {backup}, namespace: {NS}}}\n  prepareDataConfig:\n    volumeClaims:\n{claims}"
    )
}

/// Waits until Restore `name` fails; returns the message of its PrepareData condition.
async fn restore_failure(stack: &TestStack, name: &str) -> anyhow::Result<String> {
    let api: kube::Api<cairn_api::restore::Restore> =
        kube::Api::namespaced(stack.client.clone(), NS);
    cairn_e2e::wait::until(
        &format!("Restore {name} to fail"),
        BACKUP_TIMEOUT,
        async || {
            let Some(restore) = api.get_opt(name).await? else {
                return Ok(cairn_e2e::wait::Check::Pending("no Restore yet".into()));
            };
            let status = restore.status.clone().unwrap_or_default();
            Ok(match status.phase {
                Some(cairn_api::restore::RestorePhase::Failed) => cairn_e2e::wait::Check::Done(
                    status
                        .conditions
                        .iter()
                        .flatten()
                        .find(|c| c.type_ == "PrepareData")
                        .map(|c| c.message.clone())
                        .unwrap_or_default(),
                ),
                Some(cairn_api::restore::RestorePhase::Completed) => {
                    anyhow::bail!("Restore {name} completed: {status:?}")
                }
                phase => cairn_e2e::wait::Check::Pending(format!("phase {phase:?}")),
            })
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_backup_restores_into_new_claims_holding_the_volumes_as_they_were()
-> anyhow::Result<()> {
    run("snapshot-restore", async |stack| {
        deploy(stack, "cart", "5m").await?;
        scenario::backup(stack, NS, "b1", "cart-snapshots", "snap", "Delete").await?;
        dp::backup_completed(&stack.client, NS, "b1", BACKUP_TIMEOUT).await?;
        let source_data = dp::pvc_dir(&stack.client, NS, "data-cart-0").await?;
        let source_log = dp::pvc_dir(&stack.client, NS, "log-cart-0").await?;
        let data_then = files::tree(&source_data)?;
        let log_then = files::tree(&source_log)?;
        ensure!(
            files::file_bytes(&data_then) >= 200_000,
            "the data volume holds the workload's files: {:?}",
            data_then.keys().collect::<Vec<_>>()
        );
        // Changes after the backup must not reach the restored claims.
        stack
            .kubectl
            .run(&[
                "exec", "-n", NS, "cart-0", "-c", "main", "--", "sh", "-c",
                "echo 'version 2' > '/data/dir with spaces/state.txt'; head -c 4096 /dev/urandom > /data/random.bin; \
                 echo new > /data/after.txt; echo 'log 2' >> /log/app.log",
            ])
            .await?;
        ensure!(
            !files::differences(&data_then, &files::tree(&source_data)?).is_empty(),
            "the source volume changed after the backup"
        );

        stack
            .kubectl
            .create(&snapshot_restore(
                "r1",
                "b1",
                &[("restored-data", "data", "1Gi"), ("restored-log", "log", "512Mi")],
            ))
            .await?;
        dp::restore_completed(&stack.client, NS, "r1", BACKUP_TIMEOUT).await?;
        for (claim, snapshot) in [("restored-data", "b1-0-data"), ("restored-log", "b1-0-log")] {
            let pvc = stack.kubectl.get_json(&["pvc", claim, "-n", NS]).await?;
            ensure!(
                pvc["spec"]["dataSource"]
                    == serde_json::json!({"apiGroup": "snapshot.storage.k8s.io", "kind": "VolumeSnapshot", "name": snapshot}),
                "{claim} is made from {snapshot}: {pvc}"
            );
        }
        let jobs = stack.kubectl.run(&["get", "jobs", "-A", "-o", "name"]).await?;
        ensure!(jobs.trim().is_empty(), "no restore Job ran: {jobs}");

        // The claims bind when a pod uses them (WaitForFirstConsumer), from the snapshots.
        stack
            .kubectl
            .apply(&format!(
                "apiVersion: v1\nkind: Pod\nmetadata: {{name: reader, namespace: {NS}}}\nspec:\n  restartPolicy: Never\n\
                 \x20 volumes: [{{name: d, persistentVolumeClaim: {{claimName: restored-data}}}}, {{name: l, persistentVolumeClaim: {{claimName: restored-log}}}}]\n\
                 \x20 containers: [{{name: c, image: busybox:1.36, command: [sh, -c, 'cat \"/d/dir with spaces/state.txt\" /l/app.log'],\n\
                 \x20   volumeMounts: [{{name: d, mountPath: /d}}, {{name: l, mountPath: /l}}]}}]\n"
            ))
            .await?;
        stack
            .kubectl
            .run(&[
                "wait", "-n", NS, "--for=jsonpath={.status.phase}=Succeeded", "pod/reader", "--timeout=90s",
            ])
            .await?;
        let seen = stack.kubectl.run(&["logs", "-n", NS, "reader"]).await?;
        ensure!(seen == "version 1\nlog 1\n", "the pod reads the data as it was: {seen:?}");
        for (claim, then) in [("restored-data", &data_then), ("restored-log", &log_then)] {
            let restored = files::tree(&dp::pvc_dir(&stack.client, NS, claim).await?)?;
            let differences = files::differences(then, &restored);
            ensure!(
                differences.is_empty(),
                "{claim} is byte-equal to its volume at the backup: {differences:?}"
            );
        }
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_restore_fails_naming_a_volume_not_snapshotted_or_a_snapshot_gone()
-> anyhow::Result<()> {
    run("snapshot-restore-errors", async |stack| {
        deploy(stack, "gone", "5m").await?;
        scenario::backup(stack, NS, "b1", "gone-snapshots", "snap", "Retain").await?;
        dp::backup_completed(&stack.client, NS, "b1", BACKUP_TIMEOUT).await?;

        stack
            .kubectl
            .create(&snapshot_restore("r-nope", "b1", &[("from-nope", "nope", "1Gi")]))
            .await?;
        let message = restore_failure(stack, "r-nope").await?;
        ensure!(
            message.contains("volume claim \"from-nope\"")
                && message.contains("no volume snapshot of volume \"nope\"")
                && message.contains("\"data\", \"log\""),
            "the failure names the claim, the volume and what was snapshotted: {message:?}"
        );

        stack
            .kubectl
            .run(&["delete", "volumesnapshot", "b1-0-log", "-n", NS, "--timeout=60s"])
            .await?;
        stack
            .kubectl
            .create(&snapshot_restore("r-gone", "b1", &[("from-log", "log", "512Mi")]))
            .await?;
        let message = restore_failure(stack, "r-gone").await?;
        ensure!(
            message == format!("VolumeSnapshot {NS}/b1-0-log (volume \"log\" of backup \"b1\", for volume claim \"from-log\") not found"),
            "the failure names the snapshot: {message:?}"
        );

        stack
            .kubectl
            .create(&snapshot_restore("r-small", "b1", &[("too-small", "data", "1Mi")]))
            .await?;
        let message = restore_failure(stack, "r-small").await?;
        ensure!(
            message.contains("volume claim \"too-small\" requests 1Mi of storage, less than the restore size 1Gi"),
            "{message:?}"
        );
        let claims = stack.kubectl.run(&["get", "pvc", "-n", NS, "-o", "name"]).await?;
        ensure!(
            !claims.contains("from-") && !claims.contains("too-small"),
            "no claim was created: {claims}"
        );
        Ok(())
    })
    .await
}
