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
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use cairn_api::well_known;
use cairn_proto::agent::v1::{MovedVolume, VolumeMoveAction};
use cairn_repo::dedup::files::PATH_TAG;
use cairn_repo::dedup::{BackupOptions, Id, ParentChoice, Repository, SnapshotKind};
use cairn_repo::progress::{Counter, SharedProgress};
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim, Pod};
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::json;
use tokio::time::Instant;

/// How often the claim and the holder pod are read while waiting.
const POLL: Duration = Duration::from_millis(500);
/// The agent subcommand a holder pod runs: it sleeps until it is stopped.
pub const HOLD_SUBCOMMAND: &str = "hold-volume";
/// Where the holder pod mounts the claim (nothing reads it there; the agent reads the node's).
const HOLD_MOUNT: &str = "/data";

/// Why a data movement failed.
#[derive(Debug, thiserror::Error)]
pub enum MoveError {
    #[error("volume {index} of the action has an invalid claim: {reason}")]
    Invalid { index: usize, reason: String },
    #[error("{step} {kind} {namespace}/{name}")]
    Api {
        step: &'static str,
        kind: &'static str,
        namespace: String,
        name: String,
        #[source]
        source: Box<kube::Error>,
    },
    #[error(
        "{kind} {namespace}/{name} already exists and was not created by this action (action id {other:?})"
    )]
    NameTaken {
        kind: &'static str,
        namespace: String,
        name: String,
        other: Option<String>,
    },
    #[error("holder pod {namespace}/{name} of claim {name} failed: {reason}")]
    PodFailed {
        namespace: String,
        name: String,
        reason: String,
    },
    #[error("{what} after {seconds}s")]
    Timeout { what: String, seconds: u64 },
    #[error(
        "the volume of claim {namespace}/{claim} (PersistentVolume {pv}) is not mounted on this node under {dir}"
    )]
    NotMounted {
        namespace: String,
        claim: String,
        pv: String,
        dir: String,
    },
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

/// Where this agent runs, as a data movement needs it.
#[derive(Debug, Clone)]
pub struct MoveConfig<'a> {
    pub node: &'a str,
    pub kubelet_dir: &'a Path,
    /// The holder pod's image (the agent's own).
    pub image: &'a str,
    /// The agent binary inside that image.
    pub agent_binary: &'a str,
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
    config: &MoveConfig<'_>,
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
    let params = DeleteParams {
        grace_period_seconds: Some(0),
        ..DeleteParams::default()
    };
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    if let Err(err) = pods.delete(name, &params).await
        && !is_not_found(&err)
    {
        tracing::warn!(pod = %name, error = %err, "deleting a holder pod failed");
    }
    if claim_too {
        let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), namespace);
        if let Err(err) = claims.delete(name, &DeleteParams::default()).await
            && !is_not_found(&err)
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

fn is_not_found(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Api(status) if status.code == 404)
}

#[allow(clippy::too_many_arguments)]
async fn one(
    client: &kube::Client,
    config: &MoveConfig<'_>,
    action_id: &str,
    to_repository: bool,
    volume: &MovedVolume,
    p: &Parsed,
    timeout: Option<Duration>,
    repo: &Repository,
    counter: &Counter,
) -> Result<Moved, MoveError> {
    let started = Instant::now();
    if to_repository {
        create_or_adopt(client, "PersistentVolumeClaim", p, &p.claim, action_id).await?;
    }
    let pod = holder_pod(config, action_id, p, to_repository);
    create_or_adopt(client, "Pod", p, &pod, action_id).await?;
    let (uid, pv) = wait_running(client, p, timeout, started).await?;
    let dir = volume_dir(client, config, p, &uid, &pv).await?;
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

/// The holder pod: the claim mounted, on this node, sleeping until deleted.
fn holder_pod(config: &MoveConfig<'_>, action_id: &str, p: &Parsed, read_only: bool) -> Pod {
    let mut labels = p.claim.metadata.labels.clone().unwrap_or_default();
    labels.insert(well_known::label::ACTION_ID.into(), action_id.into());
    let pod = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": p.name,
            "namespace": p.namespace,
            "labels": labels,
            "ownerReferences": p.claim.metadata.owner_references.clone().unwrap_or_default(),
        },
        "spec": {
            // Scheduled (not `nodeName`): a WaitForFirstConsumer claim binds only once the
            // scheduler picked the pod's node.
            "nodeSelector": {"kubernetes.io/hostname": config.node},
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 0,
            "automountServiceAccountToken": false,
            "securityContext": {"runAsNonRoot": true, "runAsUser": 65532, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{
                "name": "hold",
                "image": config.image,
                "command": [config.agent_binary, HOLD_SUBCOMMAND],
                "securityContext": {
                    "allowPrivilegeEscalation": false,
                    "readOnlyRootFilesystem": true,
                    "capabilities": {"drop": ["ALL"]},
                },
                "volumeMounts": [{"name": "data", "mountPath": HOLD_MOUNT, "readOnly": read_only}],
            }],
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": p.name, "readOnly": read_only}}],
        },
    });
    serde_json::from_value(pod).unwrap_or_default()
}

async fn create_or_adopt<K>(
    client: &kube::Client,
    kind: &'static str,
    p: &Parsed,
    object: &K,
    action_id: &str,
) -> Result<(), MoveError>
where
    K: kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::Serialize
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), &p.namespace);
    let api_error = |step| {
        let (namespace, name) = (p.namespace.clone(), p.name.clone());
        move |source| MoveError::Api {
            step,
            kind,
            namespace,
            name,
            source: Box::new(source),
        }
    };
    match api.create(&PostParams::default(), object).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 409 => {
            let existing = api.get(&p.name).await.map_err(api_error("reading"))?;
            let owner = existing
                .meta()
                .labels
                .as_ref()
                .and_then(|l| l.get(well_known::label::ACTION_ID))
                .cloned();
            if owner.as_deref() == Some(action_id) {
                Ok(())
            } else {
                Err(MoveError::NameTaken {
                    kind,
                    namespace: p.namespace.clone(),
                    name: p.name.clone(),
                    other: owner,
                })
            }
        }
        Err(source) => Err(api_error("creating")(source)),
    }
}

/// Waits until the holder pod runs and its claim is bound; returns the pod's uid and the
/// claim's PersistentVolume.
async fn wait_running(
    client: &kube::Client,
    p: &Parsed,
    timeout: Option<Duration>,
    started: Instant,
) -> Result<(String, String), MoveError> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), &p.namespace);
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &p.namespace);
    let read = |kind: &'static str| {
        let (namespace, name) = (p.namespace.clone(), p.name.clone());
        move |source| MoveError::Api {
            step: "reading",
            kind,
            namespace,
            name,
            source: Box::new(source),
        }
    };
    loop {
        let pod = pods.get_opt(&p.name).await.map_err(read("Pod"))?;
        let claim = claims
            .get_opt(&p.name)
            .await
            .map_err(read("PersistentVolumeClaim"))?;
        let phase = pod
            .as_ref()
            .and_then(|p| p.status.as_ref())
            .and_then(|s| s.phase.clone())
            .unwrap_or_default();
        if phase == "Failed" || phase == "Succeeded" {
            let reason = pod
                .as_ref()
                .and_then(|p| p.status.as_ref())
                .and_then(|s| s.message.clone().or(s.reason.clone()))
                .unwrap_or_else(|| format!("the pod ended ({phase})"));
            return Err(MoveError::PodFailed {
                namespace: p.namespace.clone(),
                name: p.name.clone(),
                reason,
            });
        }
        let pv = claim
            .as_ref()
            .and_then(|c| c.spec.as_ref())
            .and_then(|s| s.volume_name.clone())
            .filter(|v| !v.is_empty());
        let uid = pod.as_ref().and_then(|p| p.metadata.uid.clone());
        if phase == "Running"
            && let (Some(uid), Some(pv)) = (uid, pv)
        {
            return Ok((uid, pv));
        }
        if let Some(limit) = timeout
            && started.elapsed() >= limit
        {
            let state = if claim.is_none() {
                "does not exist".to_string()
            } else if phase.is_empty() {
                "is not running (no phase yet)".to_string()
            } else {
                format!("is {phase}")
            };
            return Err(MoveError::Timeout {
                what: format!(
                    "claim {}/{} not mounted: its holder pod {state}",
                    p.namespace, p.name
                ),
                seconds: limit.as_secs(),
            });
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The directory of the claim's volume as the kubelet mounted it for the holder pod: a CSI
/// volume at `kubernetes.io~csi/<pv>/mount`, a local one at `kubernetes.io~local-volume/<pv>`,
/// a hostPath one at its path.
async fn volume_dir(
    client: &kube::Client,
    config: &MoveConfig<'_>,
    p: &Parsed,
    uid: &str,
    pv_name: &str,
) -> Result<PathBuf, MoveError> {
    let volumes = config.kubelet_dir.join("pods").join(uid).join("volumes");
    let pv = Api::<PersistentVolume>::all(client.clone())
        .get_opt(pv_name)
        .await
        .map_err(|source| MoveError::Api {
            step: "reading",
            kind: "PersistentVolume",
            namespace: String::new(),
            name: pv_name.into(),
            source: Box::new(source),
        })?;
    let mut candidates = vec![
        volumes
            .join("kubernetes.io~csi")
            .join(pv_name)
            .join("mount"),
        volumes.join("kubernetes.io~local-volume").join(pv_name),
    ];
    if let Some(path) = pv
        .as_ref()
        .and_then(|v| v.spec.as_ref())
        .and_then(|s| s.host_path.as_ref())
        .map(|h| PathBuf::from(&h.path))
    {
        candidates.push(path);
    }
    let found = tokio::task::spawn_blocking(move || candidates.into_iter().find(|c| c.is_dir()))
        .await
        .ok()
        .flatten();
    found.ok_or_else(|| MoveError::NotMounted {
        namespace: p.namespace.clone(),
        claim: p.name.clone(),
        pv: pv_name.into(),
        dir: volumes.display().to_string(),
    })
}
