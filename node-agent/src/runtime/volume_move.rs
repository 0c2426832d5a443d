//! Volume data movement actions (docs/PROTOCOL.md §2.4 `VolumeMoveAction`, ARCHITECTURE.md
//! §K2.5a): each claim is mounted in a holder pod on this node, and its files are read or
//! written where the kubelet mounted them, under `<kubelet-dir>/pods/<uid>/volumes/`. Works for
//! any CSI driver: the driver mounts the volume, the agent only reads a directory.
//!
//! - To the repository: the short-lived claim (made from a VolumeSnapshot) is created (adopted
//!   when it carries this action's id), its files are stored as a tree snapshot of the
//!   deduplicating repository tagged with its path and lineage, whose parent is the newest
//!   snapshot of the same lineage; then the holder pod and the claim are deleted.
//! - From the repository: the claim exists (the control plane created it); the snapshot is
//!   restored into it; then the holder pod is deleted.
//!
//! The temporary objects are deleted however the action ends (success, failure, cancel).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use cairn_api::well_known;
use cairn_proto::agent::v1::{MovedVolume, VolumeMoveAction};
use cairn_repo::dedup::files::PATH_TAG;
use cairn_repo::dedup::{BackupOptions, Id, ParentChoice, Repository, SnapshotKind};
use cairn_repo::progress::{Counter, SharedProgress};
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use kube::api::{Api, DeleteParams};
use serde_json::json;
use tokio::time::Instant;

use super::holder_pod::{self, Holder, HolderConfig, HolderError};

/// Why a data movement failed.
#[derive(Debug, thiserror::Error)]
pub enum MoveError {
    #[error("volume {index} of the action has an invalid claim: {reason}")]
    Invalid { index: usize, reason: String },
    #[error(transparent)]
    Holder(#[from] HolderError),
    #[error("invalid repository snapshot id {id:?} for claim {claim}")]
    BadSnapshotId {
        id: String,
        claim: String,
        #[source]
        source: cairn_repo::Error,
    },
    #[error("{what} of claim {namespace}/{claim}")]
    Repo {
        what: &'static str,
        namespace: String,
        claim: String,
        #[source]
        source: cairn_repo::Error,
    },
}

/// One volume moved, as the result reports it.
#[derive(Debug, Clone, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Moved {
    volume_name: String,
    repository_path: String,
    snapshot_id: String,
    bytes_read: u64,
    bytes_stored: u64,
    files: u64,
}

struct Parsed {
    claim: PersistentVolumeClaim,
    namespace: String,
    name: String,
}

/// Runs the action against `repo`; `counter` counts bytes read (to) or restored (from), its
/// total the volumes' sizes. Returns the result JSON.
pub async fn run(
    client: kube::Client,
    config: &HolderConfig,
    action_id: &str,
    spec: &VolumeMoveAction,
    repo: &Repository,
    counter: Counter,
) -> Result<String, MoveError> {
    let total: u64 = spec.volumes.iter().map(|v| v.size_bytes).sum();
    cairn_repo::progress::Progress::set_total(&counter, total);
    let mut parsed = Vec::new();
    for (index, volume) in spec.volumes.iter().enumerate() {
        let mut claim: PersistentVolumeClaim =
            serde_json::from_str(&volume.claim_json).map_err(|err| MoveError::Invalid {
                index,
                reason: err.to_string(),
            })?;
        let namespace = claim.metadata.namespace.clone().unwrap_or_default();
        let name = claim.metadata.name.clone().unwrap_or_default();
        if namespace.is_empty() || name.is_empty() {
            return Err(MoveError::Invalid {
                index,
                reason: "it has no name or namespace".into(),
            });
        }
        claim
            .metadata
            .labels
            .get_or_insert_with(BTreeMap::new)
            .insert(well_known::label::ACTION_ID.into(), action_id.into());
        parsed.push(Parsed {
            claim,
            namespace,
            name,
        });
    }
    let timeout =
        (spec.timeout_seconds > 0).then(|| Duration::from_secs(u64::from(spec.timeout_seconds)));
    let mut moved = Vec::new();
    for (volume, p) in spec.volumes.iter().zip(&parsed) {
        let result = one(
            &client,
            config,
            action_id,
            spec.to_repository,
            volume,
            p,
            timeout,
            repo,
            &counter,
        )
        .await;
        cleanup(&client, &p.namespace, &p.name, spec.to_repository).await;
        moved.push(result?);
    }
    let key = if spec.to_repository {
        "volumeMoves"
    } else {
        "volumeRestores"
    };
    Ok(json!({ key: moved }).to_string())
}

/// Deletes the holder pod and, to the repository, the short-lived claim (best effort: the
/// control plane deletes them again after a failure, and their owner reference removes them
/// with their owner).
pub async fn cleanup(client: &kube::Client, namespace: &str, name: &str, claim_too: bool) {
    holder_pod::delete(client, namespace, name).await;
    if claim_too {
        let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), namespace);
        if let Err(err) = claims.delete(name, &DeleteParams::default()).await
            && !holder_pod::is_not_found(&err)
        {
            tracing::warn!(claim = %name, error = %err, "deleting a short-lived claim failed");
        }
    }
}

/// Deletes every temporary object of `spec` (a cancelled action).
pub async fn cleanup_all(client: &kube::Client, spec: &VolumeMoveAction) {
    for volume in &spec.volumes {
        let Ok(claim) = serde_json::from_str::<PersistentVolumeClaim>(&volume.claim_json) else {
            continue;
        };
        let namespace = claim.metadata.namespace.unwrap_or_default();
        let name = claim.metadata.name.unwrap_or_default();
        if !namespace.is_empty() && !name.is_empty() {
            cleanup(client, &namespace, &name, spec.to_repository).await;
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn one(
    client: &kube::Client,
    config: &HolderConfig,
    action_id: &str,
    to_repository: bool,
    volume: &MovedVolume,
    p: &Parsed,
    timeout: Option<Duration>,
    repo: &Repository,
    counter: &Counter,
) -> Result<Moved, MoveError> {
    let started = Instant::now();
    let holder = holder(action_id, p, to_repository);
    if to_repository {
        holder_pod::create_or_adopt(client, "PersistentVolumeClaim", &holder, &p.name, &p.claim)
            .await?;
    }
    let pod = holder_pod::pod(config, &holder);
    holder_pod::create_or_adopt(client, "Pod", &holder, &p.name, &pod).await?;
    let (uid, pv) = holder_pod::wait_running(client, &holder, timeout, started).await?;
    let dir = holder_pod::volume_dir(client, &config.kubelet_dir, &holder, &uid, &pv).await?;
    if !to_repository {
        holder_pod::ensure_writable(&config.kubelet_dir, &holder, &dir).await?;
    }
    let progress: SharedProgress = Arc::new(counter.clone());
    let repo_error = |what: &'static str| {
        let (namespace, claim) = (p.namespace.clone(), p.name.clone());
        move |source| MoveError::Repo {
            what,
            namespace,
            claim,
            source,
        }
    };
    if to_repository {
        let parent = repo
            .list_snapshots()
            .await
            .map_err(repo_error("listing the repository's snapshots for"))?
            .into_iter()
            .filter(|s| {
                s.kind == SnapshotKind::Tree
                    && s.tags.get(well_known::annotation::VOLUME_SOURCE_TAG)
                        == Some(&volume.lineage)
            })
            .max_by_key(|s| s.time);
        let mut options = BackupOptions {
            parent: parent.map_or(ParentChoice::None, |s| ParentChoice::Snapshot(s.id)),
            ..BackupOptions::default()
        };
        options
            .tags
            .insert(PATH_TAG.into(), volume.repository_path.clone());
        options.tags.insert(
            well_known::annotation::VOLUME_SOURCE_TAG.into(),
            volume.lineage.clone(),
        );
        options
            .tags
            .insert(well_known::label::ACTION_ID.into(), action_id.into());
        let snapshot = cairn_repo::dedup::backup_tree(repo, &dir, &options, progress)
            .await
            .map_err(repo_error("copying the files"))?;
        Ok(Moved {
            volume_name: volume.volume_name.clone(),
            repository_path: volume.repository_path.clone(),
            snapshot_id: snapshot.id.to_hex(),
            bytes_read: snapshot.summary.bytes,
            bytes_stored: snapshot.summary.uploaded_bytes,
            files: snapshot.summary.files,
        })
    } else {
        let id = Id::parse(&volume.snapshot_id).map_err(|source| MoveError::BadSnapshotId {
            id: volume.snapshot_id.clone(),
            claim: p.name.clone(),
            source,
        })?;
        let snapshot = repo
            .load_snapshot(&id)
            .await
            .map_err(repo_error("reading the repository snapshot for"))?;
        let summary = cairn_repo::dedup::restore_tree(
            repo,
            &snapshot,
            &dir,
            &cairn_repo::dedup::RestoreOptions::default(),
            progress,
        )
        .await
        .map_err(repo_error("restoring the files"))?;
        Ok(Moved {
            volume_name: volume.volume_name.clone(),
            repository_path: volume.repository_path.clone(),
            snapshot_id: volume.snapshot_id.clone(),
            bytes_read: summary.bytes,
            bytes_stored: 0,
            files: summary.files,
        })
    }
}

/// The holder of a moved claim: a pod named as the claim, labelled with the action's id (which
/// adopts both after a restart), owned as the claim; read-only when copying to the repository.
fn holder(action_id: &str, p: &Parsed, read_only: bool) -> Holder {
    let mut labels = p.claim.metadata.labels.clone().unwrap_or_default();
    labels.insert(well_known::label::ACTION_ID.into(), action_id.into());
    Holder {
        namespace: p.namespace.clone(),
        pod: p.name.clone(),
        claim: p.name.clone(),
        labels,
        owner_references: p
            .claim
            .metadata
            .owner_references
            .clone()
            .unwrap_or_default(),
        read_only,
        adopt_label: well_known::label::ACTION_ID.into(),
    }
}
