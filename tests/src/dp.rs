//! Reading and waiting for data-protection objects and what they leave on the node: Backups,
//! Restores, the directories of PVCs, and Jobs or action pods left behind.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use cairn_api::backup::{Backup, BackupPhase};
use cairn_api::backup_repo::{BackupRepo, BackupRepoPhase};
use cairn_api::restore::{Restore, RestorePhase};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim, Pod};
use kube::api::{Api, ListParams};

use crate::wait::{Check, until};

/// The continuous Backup a BackupSchedule made (labelled `backup-schedule: <schedule>`), when
/// there is one.
pub async fn schedule_backup(
    client: &kube::Client,
    namespace: &str,
    schedule: &str,
) -> anyhow::Result<Option<Backup>> {
    let api: Api<Backup> = Api::namespaced(client.clone(), namespace);
    let list = api
        .list(&ListParams::default().labels(&format!(
            "{}={schedule}",
            cairn_api::well_known::label::BACKUP_SCHEDULE
        )))
        .await?;
    Ok(list.items.into_iter().next())
}

/// A Backup's phase as text (`-` when it has none yet).
pub fn backup_phase(backup: &Backup) -> String {
    backup
        .status
        .as_ref()
        .and_then(|s| s.phase)
        .map(|p| format!("{p:?}"))
        .unwrap_or_else(|| "-".into())
}

/// A Backup's `status.failureReason` (empty when none).
pub fn failure_reason(backup: &Backup) -> String {
    backup
        .status
        .as_ref()
        .and_then(|s| s.failure_reason.clone())
        .unwrap_or_default()
}

/// Waits until the Backup is Completed or Failed and returns it.
pub async fn backup_finished(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    timeout: Duration,
) -> anyhow::Result<Backup> {
    let api: Api<Backup> = Api::namespaced(client.clone(), namespace);
    until(
        &format!("Backup {namespace}/{name} to finish"),
        timeout,
        async || {
            let Some(backup) = api.get_opt(name).await? else {
                return Ok(Check::Pending("the Backup does not exist".into()));
            };
            Ok(match backup.status.as_ref().and_then(|s| s.phase) {
                Some(BackupPhase::Completed | BackupPhase::Failed) => Check::Done(backup),
                _ => Check::Pending(format!(
                    "phase {}, failureReason {:?}",
                    backup_phase(&backup),
                    failure_reason(&backup)
                )),
            })
        },
    )
    .await
}

/// Waits until the Backup is Completed; fails at once, with its reason, when it fails.
pub async fn backup_completed(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    timeout: Duration,
) -> anyhow::Result<Backup> {
    let backup = backup_finished(client, namespace, name, timeout).await?;
    if backup.status.as_ref().and_then(|s| s.phase) != Some(BackupPhase::Completed) {
        anyhow::bail!(
            "Backup {namespace}/{name} failed: {}; actions: {}",
            failure_reason(&backup),
            serde_json::to_string(
                &backup
                    .status
                    .as_ref()
                    .and_then(|s| s.actions.clone())
                    .unwrap_or_default()
            )?
        );
    }
    Ok(backup)
}

/// Waits until the Restore is Completed; fails at once, with its status, when it fails.
pub async fn restore_completed(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    timeout: Duration,
) -> anyhow::Result<Restore> {
    let api: Api<Restore> = Api::namespaced(client.clone(), namespace);
    let restore = until(
        &format!("Restore {namespace}/{name} to finish"),
        timeout,
        async || {
            let Some(restore) = api.get_opt(name).await? else {
                return Ok(Check::Pending("the Restore does not exist".into()));
            };
            let phase = restore.status.as_ref().and_then(|s| s.phase);
            Ok(match phase {
                Some(RestorePhase::Completed | RestorePhase::Failed) => Check::Done(restore),
                _ => Check::Pending(format!(
                    "phase {phase:?}, status {}",
                    serde_json::to_string(&restore.status).unwrap_or_default()
                )),
            })
        },
    )
    .await?;
    if restore.status.as_ref().and_then(|s| s.phase) != Some(RestorePhase::Completed) {
        anyhow::bail!(
            "Restore {namespace}/{name} failed: {}",
            serde_json::to_string(&restore.status)?
        );
    }
    Ok(restore)
}

/// Waits until an object is gone from the API.
pub async fn gone<K>(api: &Api<K>, name: &str, timeout: Duration) -> anyhow::Result<()>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    until(&format!("{name} to be gone"), timeout, async || {
        Ok(match api.get_opt(name).await? {
            None => Check::Done(()),
            Some(object) => Check::Pending(format!(
                "still there (deletionTimestamp {:?})",
                object.meta().deletion_timestamp
            )),
        })
    })
    .await
}

/// Waits until a pod is Running and Ready.
pub async fn pod_ready(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    timeout: Duration,
) -> anyhow::Result<Pod> {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    until(
        &format!("pod {namespace}/{name} to be Ready"),
        timeout,
        async || {
            let Some(pod) = api.get_opt(name).await? else {
                return Ok(Check::Pending("the pod does not exist".into()));
            };
            let status = pod.status.clone().unwrap_or_default();
            let ready = status
                .conditions
                .iter()
                .flatten()
                .any(|c| c.type_ == "Ready" && c.status == "True");
            Ok(if ready {
                Check::Done(pod)
            } else {
                Check::Pending(format!("phase {:?}", status.phase))
            })
        },
    )
    .await
}

/// The directory on this host holding a bound PVC's volume (localkube's local-path PV).
pub async fn pvc_dir(
    client: &kube::Client,
    namespace: &str,
    claim: &str,
) -> anyhow::Result<PathBuf> {
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), namespace);
    let volume = until(
        &format!("PVC {namespace}/{claim} to be bound"),
        Duration::from_secs(30),
        async || {
            let pvc = claims.get_opt(claim).await?;
            let volume = pvc
                .as_ref()
                .and_then(|p| p.spec.as_ref())
                .and_then(|s| s.volume_name.clone());
            Ok(match volume {
                Some(volume) => Check::Done(volume),
                None => Check::Pending(format!(
                    "phase {:?}",
                    pvc.and_then(|p| p.status).and_then(|s| s.phase)
                )),
            })
        },
    )
    .await?;
    let volumes: Api<PersistentVolume> = Api::all(client.clone());
    let pv = volumes
        .get(&volume)
        .await
        .with_context(|| format!("reading PersistentVolume {volume}"))?;
    let spec = pv.spec.unwrap_or_default();
    let path = spec
        .local
        .map(|l| l.path)
        .or_else(|| spec.host_path.map(|h| h.path))
        .or_else(|| {
            let csi = spec.csi?;
            let attributes = csi.volume_attributes.unwrap_or_default();
            Some(match (attributes.get("share"), attributes.get("subdir")) {
                // localkube's shared driver (StorageClass localkube-shared): `share/subdir`.
                (Some(share), Some(subdir)) if csi.driver == "shared.localkube.io" => {
                    format!("{}/{subdir}", share.trim_end_matches('/'))
                }
                // localkube's CSI volumes (StorageClass local-csi) are directories named by
                // their handle.
                _ => csi.volume_handle,
            })
        })
        .with_context(|| {
            format!("PersistentVolume {volume} has neither local, hostPath nor CSI source")
        })?;
    Ok(PathBuf::from(path))
}

/// Waits until no Job exists in the cluster and no pod other than `keep` exists in
/// `namespace`: what a finished backup or restore must leave behind.
pub async fn nothing_left_behind(
    client: &kube::Client,
    namespace: &str,
    keep: &[&str],
    timeout: Duration,
) -> anyhow::Result<()> {
    let jobs: Api<Job> = Api::all(client.clone());
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    until(
        "finished actions to leave no Job or pod behind",
        timeout,
        async || {
            let mut left: Vec<String> = jobs
                .list(&ListParams::default())
                .await?
                .items
                .iter()
                .map(|j| {
                    format!(
                        "Job {}/{}",
                        j.metadata.namespace.as_deref().unwrap_or_default(),
                        j.metadata.name.as_deref().unwrap_or_default()
                    )
                })
                .collect();
            left.extend(
                pods.list(&ListParams::default())
                    .await?
                    .items
                    .iter()
                    .filter_map(|p| p.metadata.name.clone())
                    .filter(|n| !keep.contains(&n.as_str()))
                    .map(|n| format!("Pod {namespace}/{n}")),
            );
            Ok(if left.is_empty() {
                Check::Done(())
            } else {
                Check::Pending(left.join(", "))
            })
        },
    )
    .await
}

/// Waits until the cluster-scoped BackupRepo is Ready; fails at once, with its conditions,
/// when it fails its pre-check.
pub async fn repo_ready(
    client: &kube::Client,
    name: &str,
    timeout: Duration,
) -> anyhow::Result<BackupRepo> {
    let api: Api<BackupRepo> = Api::all(client.clone());
    until(
        &format!("BackupRepo {name} to be Ready"),
        timeout,
        async || {
            let Some(repo) = api.get_opt(name).await? else {
                return Ok(Check::Pending("the BackupRepo does not exist".into()));
            };
            let status = repo.status.clone().unwrap_or_default();
            let conditions = status
                .conditions
                .iter()
                .flatten()
                .map(|c| format!("{}={} ({})", c.type_, c.status, c.message))
                .collect::<Vec<_>>()
                .join("; ");
            match status.phase {
                Some(BackupRepoPhase::Ready) => Ok(Check::Done(repo)),
                Some(BackupRepoPhase::Failed) => {
                    anyhow::bail!("BackupRepo {name} failed: {conditions}")
                }
                phase => Ok(Check::Pending(format!("phase {phase:?}: {conditions}"))),
            }
        },
    )
    .await
}

/// Waits until the populated claim is Bound and the populator let go of it (no finalizer
/// left: its Jobs and shadow claim are deleted); fails at once when its `Populating`
/// condition says Failed.
pub async fn claim_populated(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    timeout: Duration,
) -> anyhow::Result<PersistentVolumeClaim> {
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), namespace);
    until(
        &format!("PVC {namespace}/{name} to be populated"),
        timeout,
        async || {
            let Some(claim) = claims.get_opt(name).await? else {
                return Ok(Check::Pending("the claim does not exist".into()));
            };
            let status = claim.status.clone().unwrap_or_default();
            let populating = status
                .conditions
                .iter()
                .flatten()
                .find(|c| c.type_ == "Populating");
            if let Some(c) = populating.filter(|c| c.reason.as_deref() == Some("Failed")) {
                anyhow::bail!(
                    "populating PVC {namespace}/{name} failed: {}",
                    c.message.clone().unwrap_or_default()
                );
            }
            let held = claim.metadata.finalizers.iter().flatten().next().is_some();
            Ok(if status.phase.as_deref() == Some("Bound") && !held {
                Check::Done(claim)
            } else {
                Check::Pending(format!(
                    "phase {:?}, finalizers {:?}, Populating {:?}",
                    status.phase,
                    claim.metadata.finalizers,
                    populating.and_then(|c| c.message.clone())
                ))
            })
        },
    )
    .await
}
