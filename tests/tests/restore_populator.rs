//! A Restore as a volume populator (ARCHITECTURE.md §K4.6): a Full file backup, a Restore with
//! `prepareDataConfig.dataSourceRef` (phase AsDataSource), and a claim whose
//! `spec.dataSourceRef` names it, which becomes Bound holding the backup's files; the shadow
//! claim and the populate Job are gone and the volume says where it came from. A claim naming a
//! Restore of another namespace is refused. Everything is applied with the real kubectl against
//! localkube, with the control plane and the agent running as processes.

use std::time::Duration;

use anyhow::{Context as _, ensure};
use cairn_api::restore::{Restore, RestorePhase};
use cairn_e2e::wait::{Check, until};
use cairn_e2e::{dp, files, run, scenario};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Event, PersistentVolume, PersistentVolumeClaim, Pod};
use kube::api::{Api, ListParams};

const NS: &str = "populate";
const OTHER_NS: &str = "populate-elsewhere";

fn populating(claim: &PersistentVolumeClaim) -> Option<(String, String)> {
    claim
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Populating")
        .map(|c| {
            (
                c.reason.clone().unwrap_or_default(),
                c.message.clone().unwrap_or_default(),
            )
        })
}

async fn warnings(
    client: &kube::Client,
    namespace: &str,
    reason: &str,
) -> anyhow::Result<Vec<String>> {
    let events: Api<Event> = Api::namespaced(client.clone(), namespace);
    Ok(events
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some(reason))
        .filter_map(|e| e.message)
        .collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_naming_a_data_source_restore_is_bound_holding_the_backup() -> anyhow::Result<()> {
    run("restore-populator", async |stack| {
        let workload = scenario::workload(stack, NS, "db", 256 << 10).await?;
        let source = files::tree(&workload.data_dir)?;
        let policy = scenario::file_policy(stack, &workload, "db-files", "files", "", "").await?;
        scenario::backup(stack, NS, "b1", &policy.name, &policy.method, "Delete").await?;
        dp::backup_completed(&stack.client, NS, "b1", Duration::from_secs(90)).await?;

        scenario::data_source_restore(stack, NS, "r1", "b1").await?;
        let restores: Api<Restore> = Api::namespaced(stack.client.clone(), NS);
        until("Restore r1 to be a data source", Duration::from_secs(30), async || {
            let restore = restores.get("r1").await?;
            let phase = restore.status.as_ref().and_then(|s| s.phase);
            Ok(match phase {
                Some(RestorePhase::AsDataSource) => Check::Done(()),
                Some(RestorePhase::Failed) => anyhow::bail!(
                    "Restore r1 failed: {}",
                    serde_json::to_string(&restore.status)?
                ),
                _ => Check::Pending(format!("phase {phase:?}")),
            })
        })
        .await?;

        scenario::populated_claim(stack, NS, "data-copy", NS, "r1").await?;
        let pods: Api<Pod> = Api::namespaced(stack.client.clone(), NS);
        until("the reader pod to finish", Duration::from_secs(120), async || {
            let pod = pods.get("data-copy-reader").await?;
            let phase = pod.status.and_then(|s| s.phase).unwrap_or_default();
            Ok(match phase.as_str() {
                "Succeeded" => Check::Done(()),
                "Failed" => anyhow::bail!("the reader pod failed"),
                _ => Check::Pending(phase),
            })
        })
        .await?;
        let logs = stack
            .kubectl
            .run(&["logs", "-n", NS, "data-copy-reader"])
            .await?;
        ensure!(
            logs.starts_with("hello from cairn\n") && logs.contains("random.bin"),
            "the pod reads the backed-up files: {logs}"
        );

        let claims: Api<PersistentVolumeClaim> = Api::namespaced(stack.client.clone(), NS);
        let claim = claims.get("data-copy").await?;
        let uid = claim.metadata.uid.clone().unwrap_or_default();
        ensure!(
            populating(&claim).map(|c| c.0).as_deref() == Some("Succeed"),
            "condition Populating Succeed: {:?}",
            claim.status
        );
        let restored = files::tree(&dp::pvc_dir(&stack.client, NS, "data-copy").await?)?;
        let differences = files::differences(&source, &restored);
        ensure!(
            differences.is_empty(),
            "the populated claim differs from the backed-up one:\n{}",
            differences.join("\n")
        );
        let volume_name = claim
            .spec
            .as_ref()
            .and_then(|s| s.volume_name.clone())
            .context("the claim is bound")?;
        let volume = Api::<PersistentVolume>::all(stack.client.clone())
            .get(&volume_name)
            .await?;
        let from = volume
            .metadata
            .annotations
            .unwrap_or_default()
            .remove("dataprotection.kubeblocks.io/populate-from");
        ensure!(
            from.as_deref() == Some("r1"),
            "volume {volume_name} is annotated populate-from=r1: {from:?}"
        );

        // The shadow claim, the populate Job and the finalizer go once the claim is Bound.
        let shadow = format!("kb-populate-{uid}");
        let jobs: Api<Job> = Api::namespaced(stack.client.clone(), NS);
        until("the populator to clean up", Duration::from_secs(60), async || {
            let mut left = Vec::new();
            if claims.get_opt(&shadow).await?.is_some() {
                left.push(format!("PVC {shadow}"));
            }
            let selector = "dataprotection.kubeblocks.io/populate-pvc=data-copy";
            for job in jobs.list(&ListParams::default().labels(selector)).await?.items {
                left.push(format!("Job {}", job.metadata.name.unwrap_or_default()));
            }
            let claim = claims.get("data-copy").await?;
            if claim.metadata.finalizers.iter().flatten().next().is_some() {
                left.push(format!("finalizers {:?}", claim.metadata.finalizers));
            }
            Ok(if left.is_empty() {
                Check::Done(())
            } else {
                Check::Pending(left.join(", "))
            })
        })
        .await?;
        let started = warnings(&stack.client, NS, "StartToVolumePopulate").await?;
        let succeeded = warnings(&stack.client, NS, "VolumePopulateSucceed").await?;
        ensure!(
            started.len() == 1 && succeeded.len() == 1,
            "one StartToVolumePopulate and one VolumePopulateSucceed event: {started:?} {succeeded:?}"
        );
        ensure!(
            restores.get("r1").await?.status.and_then(|s| s.phase)
                == Some(RestorePhase::AsDataSource),
            "the Restore stays a data source"
        );

        // A claim of another namespace naming r1 is refused, once, and never populated.
        stack.ensure_namespace(OTHER_NS).await?;
        scenario::populated_claim(stack, OTHER_NS, "stolen", NS, "r1").await?;
        let others: Api<PersistentVolumeClaim> = Api::namespaced(stack.client.clone(), OTHER_NS);
        let (reason, message) = until(
            "the cross-namespace claim to be refused",
            Duration::from_secs(30),
            async || {
                let claim = others.get("stolen").await?;
                Ok(match populating(&claim) {
                    Some(c) => Check::Done(c),
                    None => Check::Pending(format!("{:?}", claim.status)),
                })
            },
        )
        .await?;
        ensure!(
            reason == "Failed"
                && message.contains(&format!("spec.dataSourceRef.namespace \"{NS}\""))
                && message.contains("cross-namespace"),
            "Populating {reason}: {message}"
        );
        tokio::time::sleep(Duration::from_secs(3)).await;
        let refused = warnings(&stack.client, OTHER_NS, "VolumePopulateFailed").await?;
        ensure!(
            refused.len() == 1 && refused[0] == message,
            "one VolumePopulateFailed warning: {refused:?}"
        );
        let stolen = others.get("stolen").await?;
        ensure!(
            stolen.spec.and_then(|s| s.volume_name).is_none()
                && stolen.metadata.finalizers.is_none(),
            "the refused claim is neither bound nor held"
        );
        let shadows = others
            .list(&ListParams::default().labels("dataprotection.kubeblocks.io/populate-pvc"))
            .await?;
        ensure!(shadows.items.is_empty(), "no shadow claim for a refused claim");
        stack
            .kubectl
            .run(&["delete", "pod", "-n", OTHER_NS, "stolen-reader", "--wait=false"])
            .await?;
        dp::nothing_left_behind(&stack.client, NS, &[&workload.pod, "data-copy-reader"], Duration::from_secs(30))
            .await
    })
    .await
}
