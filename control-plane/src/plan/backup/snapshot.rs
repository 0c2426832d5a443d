//! Volume snapshot backups (`snapshotVolumes: true`, ARCHITECTURE.md §K2.5): for each target
//! pod, one `snapshot.storage.k8s.io/v1` VolumeSnapshot per target volume, taken by the agent of
//! the pod's node as one action (`createVolumeSnapshot-<T><i>`) between the pod's preBackup and
//! postBackup hooks.
//!
//! # Expected flow
//! 1. New: the method must name `targetVolumes` ([`check_method`]); a snapshot backup has no
//!    repository and no `status.path`, and is `Full`.
//! 2. Per pod, [`action`] checks every precondition (the volume is PVC-backed, its claim is
//!    bound to a CSI volume, a VolumeSnapshotClass has that driver) and builds the snapshots:
//!    named `<backup>[-<target>]-<i>-<volume>`, labelled like the backup's Jobs, owned by the
//!    Backup, with the class whose driver matches (the default one when several do).
//! 3. The agent creates them and reports them once all are `readyToUse`; [`record`] writes
//!    `volumeSnapshots`, `totalSize` (the sum of their restore sizes) and `timeRange` (their
//!    creation times) into the action's status entry.
//!
//! Who creates the objects: the agent (the action engine's `VolumeSnapshot` kind,
//! docs/PROTOCOL.md §2.4), so that waiting, timeouts and results follow every other action.

use std::collections::BTreeMap;
use std::time::Duration;

use cairn_api::action::ActionErrorMode;
use cairn_api::backup::{
    ActionPhase, ActionStatus, Backup, BackupStatus, VolumeSnapshotCopy, VolumeSnapshotStatus,
};
use cairn_api::backup_policy::{BackupMethod, BackupPolicy};
use cairn_api::common::BackupTimeRange;
use cairn_api::well_known;
use k8s_openapi::api::core::v1::{ObjectReference, PersistentVolume, PersistentVolumeClaim, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde_json::json;

use super::actions::{PlannedAction, owner_reference, target_prefix, workload_labels};
use super::targets::ResolvedTarget;
use crate::plan::action::{MovedVolume, PlannedSnapshot, VolumeMovement, Workload};
use crate::plan::intent::Intent;
use crate::plan::names::restore_job_name;

/// The annotation marking the default VolumeSnapshotClass of a driver.
pub const DEFAULT_CLASS_ANNOTATION: &str = "snapshot.storage.kubernetes.io/is-default-class";
/// How long a snapshot may take to become ready when the policy does not say.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

/// A VolumeSnapshotClass, as far as the planner reads it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SnapshotClass {
    pub name: String,
    pub driver: String,
    /// Annotated `snapshot.storage.kubernetes.io/is-default-class: "true"`.
    pub default: bool,
    /// `Delete` or `Retain`: what becomes of a snapshot's content when the snapshot goes.
    pub deletion_policy: String,
}

impl SnapshotClass {
    /// Reads a VolumeSnapshotClass object.
    pub fn from_object(object: &serde_json::Value) -> SnapshotClass {
        let text = |pointer: &str| {
            object
                .pointer(pointer)
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_string()
        };
        SnapshotClass {
            name: text("/metadata/name"),
            driver: text("/driver"),
            default: text("/metadata/annotations/snapshot.storage.kubernetes.io~1is-default-class")
                == "true",
            deletion_policy: text("/deletionPolicy"),
        }
    }
}

/// What a snapshot backup reads beyond a file backup (the claims are `Observed::claims`).
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    /// The PersistentVolumes the target pods' claims are bound to.
    pub volumes: Vec<PersistentVolume>,
    /// Every VolumeSnapshotClass of the cluster (none when the CRD is not installed).
    pub classes: Vec<SnapshotClass>,
}

/// Why a snapshot action cannot be built (KubeBlocks' messages where it has one, §K2.5).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    #[error("targetVolumes is required for snapshotVolumes")]
    NoTargetVolumes,
    #[error("the type of volume \"{volume}\" is not PersistentVolumeClaim on pod \"{pod}\"")]
    NotClaim { volume: String, pod: String },
    #[error("can not find any volume by targetVolumes {volumes:?} on pod \"{pod}\"")]
    NoVolume { volumes: Vec<String>, pod: String },
    #[error("persistentVolumeClaim \"{claim}\" of volume \"{volume}\" on pod \"{pod}\" not found")]
    ClaimNotFound {
        claim: String,
        volume: String,
        pod: String,
    },
    #[error(
        "persistentVolumeClaim \"{claim}\" of volume \"{volume}\" on pod \"{pod}\" is not bound to a persistentVolume"
    )]
    ClaimNotBound {
        claim: String,
        volume: String,
        pod: String,
    },
    #[error("persistentVolume \"{pv}\" of persistentVolumeClaim \"{claim}\" not found")]
    VolumeNotFound { pv: String, claim: String },
    #[error(
        "persistentVolume \"{pv}\" of persistentVolumeClaim \"{claim}\" (volume \"{volume}\" on pod \"{pod}\") is not a CSI volume, and only CSI volumes can be snapshotted"
    )]
    NotCsi {
        pv: String,
        claim: String,
        volume: String,
        pod: String,
    },
    #[error(
        "cannot find any VolumeSnapshotClass of persistentVolumeClaim \"{claim}\" to do volume snapshot on pod \"{pod}\": no VolumeSnapshotClass has driver \"{driver}\""
    )]
    NoClass {
        claim: String,
        pod: String,
        driver: String,
    },
    #[error(
        "annotation {annotation} of backupPolicy \"{policy}\": invalid duration {value:?}: {reason}"
    )]
    Timeout {
        annotation: &'static str,
        policy: String,
        value: String,
        reason: String,
    },
}

/// The method's own checks (New phase): a snapshot method must name its volumes.
pub fn check_method(method: &BackupMethod) -> Result<(), SnapshotError> {
    match &method.target_volumes {
        Some(_) => Ok(()),
        None => Err(SnapshotError::NoTargetVolumes),
    }
}

/// How long the snapshots of a backup of `policy` may take to become ready: the policy's
/// `cairn.io/volume-snapshot-timeout` (a Go duration), else [`DEFAULT_TIMEOUT`].
pub fn timeout(policy: &BackupPolicy) -> Result<Duration, SnapshotError> {
    let annotation = well_known::annotation::VOLUME_SNAPSHOT_TIMEOUT;
    let Some(value) = policy
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(annotation))
    else {
        return Ok(DEFAULT_TIMEOUT);
    };
    crate::plan::time::go_duration(value).map_err(|reason| SnapshotError::Timeout {
        annotation,
        policy: policy.metadata.name.clone().unwrap_or_default(),
        value: value.clone(),
        reason,
    })
}

/// Everything [`action`] reads.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    pub backup: &'a Backup,
    pub policy: &'a BackupPolicy,
    pub method: &'a BackupMethod,
    /// The labels the Backup carries once its metadata is patched.
    pub labels: &'a BTreeMap<String, String>,
    /// The claims of the Backup's namespace.
    pub claims: &'a [PersistentVolumeClaim],
    pub inputs: &'a Inputs,
}

/// The action's name for the `pod_index`th pod of a target (`T` = `<target>-` or empty).
pub fn action_name(target: &ResolvedTarget, pod_index: usize) -> String {
    format!("createVolumeSnapshot-{}{pod_index}", target_prefix(target))
}

/// The snapshot action of the `pod_index`th pod of `target`. Once the Backup's status records
/// the action as ended, nothing is checked again (the pod or its claims may since have gone).
pub fn action(
    ctx: &Context<'_>,
    target: &ResolvedTarget,
    pod: &Pod,
    pod_index: usize,
) -> Result<PlannedAction, SnapshotError> {
    let name = action_name(target, pod_index);
    let pod_name = pod.metadata.name.clone().unwrap_or_default();
    let ended = ctx
        .backup
        .status
        .as_ref()
        .and_then(|s| s.actions.as_ref())
        .into_iter()
        .flatten()
        .any(|a| {
            a.name.as_deref() == Some(&name)
                && a.target_pod_name.as_deref() == Some(&pod_name)
                && matches!(a.phase, Some(ActionPhase::Completed | ActionPhase::Failed))
        });
    let snapshots = if ended {
        Vec::new()
    } else {
        snapshots(ctx, target, pod, pod_index)?
    };
    let timeout = timeout(ctx.policy)?;
    Ok(PlannedAction {
        work: Workload::VolumeSnapshot {
            snapshots,
            timeout_seconds: u32::try_from(timeout.as_secs().max(1)).unwrap_or(u32::MAX),
        },
        backup_data: false,
        on_error: ActionErrorMode::Fail,
        pinned: true,
        name,
    })
}

/// One VolumeSnapshot per target volume of the pod, in the order of the pod's volumes.
fn snapshots(
    ctx: &Context<'_>,
    target: &ResolvedTarget,
    pod: &Pod,
    pod_index: usize,
) -> Result<Vec<PlannedSnapshot>, SnapshotError> {
    let wanted = ctx
        .method
        .target_volumes
        .as_ref()
        .ok_or(SnapshotError::NoTargetVolumes)?
        .volumes
        .clone()
        .unwrap_or_default();
    let pod_name = pod.metadata.name.clone().unwrap_or_default();
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let mut planned = Vec::new();
    for volume in pod
        .spec
        .as_ref()
        .and_then(|s| s.volumes.as_ref())
        .into_iter()
        .flatten()
        .filter(|v| wanted.contains(&v.name))
    {
        let claim_name = volume
            .persistent_volume_claim
            .as_ref()
            .map(|c| c.claim_name.clone())
            .ok_or_else(|| SnapshotError::NotClaim {
                volume: volume.name.clone(),
                pod: pod_name.clone(),
            })?;
        let class = class_for(ctx, &claim_name, &volume.name, &pod_name, &namespace)?;
        let snapshot_name = snapshot_name(ctx.backup, target, pod_index, &volume.name);
        planned.push(PlannedSnapshot {
            volume_name: volume.name.clone(),
            snapshot: snapshot_object(ctx, &snapshot_name, &namespace, &claim_name, &class),
        });
    }
    if planned.is_empty() {
        return Err(SnapshotError::NoVolume {
            volumes: wanted,
            pod: pod_name,
        });
    }
    Ok(planned)
}

/// The class for the claim's volume: the one whose driver is the volume's CSI driver, the
/// default one when several are, the first by name when none of those is the default.
fn class_for(
    ctx: &Context<'_>,
    claim_name: &str,
    volume: &str,
    pod: &str,
    namespace: &str,
) -> Result<String, SnapshotError> {
    let claim = ctx
        .claims
        .iter()
        .find(|c| {
            c.metadata.name.as_deref() == Some(claim_name)
                && c.metadata.namespace.as_deref() == Some(namespace)
        })
        .ok_or_else(|| SnapshotError::ClaimNotFound {
            claim: claim_name.into(),
            volume: volume.into(),
            pod: pod.into(),
        })?;
    let pv_name = claim
        .spec
        .as_ref()
        .and_then(|s| s.volume_name.clone())
        .filter(|n| !n.is_empty())
        .ok_or_else(|| SnapshotError::ClaimNotBound {
            claim: claim_name.into(),
            volume: volume.into(),
            pod: pod.into(),
        })?;
    let pv = ctx
        .inputs
        .volumes
        .iter()
        .find(|v| v.metadata.name.as_deref() == Some(&pv_name))
        .ok_or_else(|| SnapshotError::VolumeNotFound {
            pv: pv_name.clone(),
            claim: claim_name.into(),
        })?;
    let driver = pv
        .spec
        .as_ref()
        .and_then(|s| s.csi.as_ref())
        .map(|c| c.driver.clone())
        .ok_or_else(|| SnapshotError::NotCsi {
            pv: pv_name.clone(),
            claim: claim_name.into(),
            volume: volume.into(),
            pod: pod.into(),
        })?;
    let mut matching: Vec<&SnapshotClass> = ctx
        .inputs
        .classes
        .iter()
        .filter(|c| c.driver == driver)
        .collect();
    matching.sort_by(|a, b| a.name.cmp(&b.name));
    matching
        .iter()
        .find(|c| c.default)
        .or(matching.first())
        .map(|c| c.name.clone())
        .ok_or_else(|| SnapshotError::NoClass {
            claim: claim_name.into(),
            pod: pod.into(),
            driver,
        })
}

/// Whether `policy` asks for the snapshots of `method` to be copied into its deduplicating
/// repository (§K2.5a): `cairn.io/snapshot-data-movement` is `"true"` or lists the method.
pub fn data_movement(policy: &BackupPolicy, method: &BackupMethod) -> bool {
    if method.snapshot_volumes != Some(true) {
        return false;
    }
    let Some(value) = annotation(policy, well_known::annotation::SNAPSHOT_DATA_MOVEMENT) else {
        return false;
    };
    let value = value.trim();
    value.eq_ignore_ascii_case("true") || value.split(',').any(|m| m.trim() == method.name)
}

/// Whether `policy` asks for the VolumeSnapshots to go once their copy is stored.
pub fn delete_after_move(policy: &BackupPolicy) -> bool {
    annotation(policy, well_known::annotation::DELETE_SNAPSHOT_AFTER_MOVE)
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
}

fn annotation<'p>(policy: &'p BackupPolicy, key: &str) -> Option<&'p String> {
    policy
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(key))
}

/// The data movement action's name for the `pod_index`th pod of a target.
pub fn move_action_name(target: &ResolvedTarget, pod_index: usize) -> String {
    format!("moveVolumeData-{}{pod_index}", target_prefix(target))
}

/// The short-lived claim (and holder pod) made from snapshot `snapshot`: `<snapshot>-dm`,
/// within 63 characters.
pub fn move_claim_name(snapshot: &str) -> String {
    restore_job_name(&format!("{snapshot}-dm"))
}

/// The data movement action of the `pod_index`th pod of `target` (§K2.5a): one short-lived
/// claim per snapshot the pod's snapshot action takes, each copied to
/// `<backup_path>/<snapshot>` in the deduplicating repository. Once the Backup's status
/// records the action as ended, it lists no volume (nothing is checked again).
pub fn move_action(
    ctx: &Context<'_>,
    target: &ResolvedTarget,
    pod: &Pod,
    pod_index: usize,
    backup_path: &str,
) -> PlannedAction {
    let name = move_action_name(target, pod_index);
    let pod_name = pod.metadata.name.clone().unwrap_or_default();
    let ended = recorded_entry(ctx.backup, &name, &pod_name)
        .is_some_and(|a| matches!(a.phase, Some(ActionPhase::Completed | ActionPhase::Failed)));
    let timeout = timeout(ctx.policy).unwrap_or(DEFAULT_TIMEOUT);
    let volumes = if ended {
        Vec::new()
    } else {
        // A precondition that no longer holds was reported by the snapshot action already.
        snapshots(ctx, target, pod, pod_index)
            .unwrap_or_default()
            .iter()
            .map(|planned| moved_volume(ctx, target, pod, pod_index, planned, backup_path))
            .collect()
    };
    PlannedAction {
        work: Workload::VolumeMove(VolumeMovement {
            to_repository: true,
            volumes,
            timeout_seconds: u32::try_from(timeout.as_secs().max(1)).unwrap_or(u32::MAX),
        }),
        backup_data: false,
        on_error: ActionErrorMode::Fail,
        // The move reads claims made from the target's snapshots: the target's node's agent,
        // as for the snapshots themselves.
        pinned: true,
        name,
    }
}

fn recorded_entry<'b>(backup: &'b Backup, name: &str, pod: &str) -> Option<&'b ActionStatus> {
    backup
        .status
        .as_ref()
        .and_then(|s| s.actions.as_ref())
        .into_iter()
        .flatten()
        .find(|a| a.name.as_deref() == Some(name) && a.target_pod_name.as_deref() == Some(pod))
}

fn moved_volume(
    ctx: &Context<'_>,
    target: &ResolvedTarget,
    pod: &Pod,
    pod_index: usize,
    planned: &PlannedSnapshot,
    backup_path: &str,
) -> MovedVolume {
    let snapshot = &planned.snapshot;
    let text = |pointer: &str| {
        snapshot
            .pointer(pointer)
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_string()
    };
    let snapshot_name = text("/metadata/name");
    let namespace = text("/metadata/namespace");
    let source_claim = text("/spec/source/persistentVolumeClaimName");
    let source = ctx.claims.iter().find(|c| {
        c.metadata.name.as_deref() == Some(source_claim.as_str())
            && c.metadata.namespace.as_deref() == Some(namespace.as_str())
    });
    // The restore size the snapshot action recorded, else the source claim's capacity or request.
    let pod_name = pod.metadata.name.clone().unwrap_or_default();
    let recorded_size = recorded_entry(ctx.backup, &action_name(target, pod_index), &pod_name)
        .and_then(|a| a.volume_snapshots.as_ref())
        .into_iter()
        .flatten()
        .find(|v| v.name.as_deref() == Some(snapshot_name.as_str()))
        .and_then(|v| v.size.clone());
    let claim_size = source.and_then(|c| {
        let capacity = c
            .status
            .as_ref()
            .and_then(|s| s.capacity.as_ref())
            .and_then(|c| c.get("storage"));
        let request = c
            .spec
            .as_ref()
            .and_then(|s| s.resources.as_ref())
            .and_then(|r| r.requests.as_ref())
            .and_then(|r| r.get("storage"));
        capacity.or(request).map(|q| q.0.clone())
    });
    let size = recorded_size.or(claim_size).unwrap_or_default();
    let spec = source.and_then(|c| c.spec.as_ref());
    let mut claim_spec = json!({
        "accessModes": spec
            .and_then(|s| s.access_modes.clone())
            .unwrap_or_else(|| vec!["ReadWriteOnce".into()]),
        "dataSource": {
            "apiGroup": "snapshot.storage.k8s.io",
            "kind": "VolumeSnapshot",
            "name": snapshot_name,
        },
    });
    if let Some(class) = spec.and_then(|s| s.storage_class_name.clone()) {
        claim_spec["storageClassName"] = json!(class);
    }
    if let Some(mode) = spec.and_then(|s| s.volume_mode.clone()) {
        claim_spec["volumeMode"] = json!(mode);
    }
    if !size.is_empty() {
        claim_spec["resources"] = json!({"requests": {"storage": size}});
    }
    let claim = json!({
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {
            "name": move_claim_name(&snapshot_name),
            "namespace": namespace,
            "labels": workload_labels(ctx.labels, ctx.backup),
            "ownerReferences": [owner_reference(ctx.backup)],
        },
        "spec": claim_spec,
    });
    MovedVolume {
        volume_name: planned.volume_name.clone(),
        claim,
        repository_path: format!("{}/{snapshot_name}", backup_path.trim_matches('/')),
        lineage: format!("{namespace}/{source_claim}"),
        snapshot_id: String::new(),
        size_bytes: quantity_bytes(&size)
            .and_then(|b| u64::try_from(b).ok())
            .unwrap_or(0),
    }
}

/// The movement with each claim sized by its snapshot's restore size as `status` records it
/// for pod `pod` (the snapshot action may have completed in this very reconcile).
pub fn sized(movement: &VolumeMovement, status: &BackupStatus, pod: &str) -> VolumeMovement {
    let mut movement = movement.clone();
    for volume in &mut movement.volumes {
        let snapshot = volume
            .claim
            .pointer("/spec/dataSource/name")
            .and_then(|n| n.as_str())
            .unwrap_or_default()
            .to_string();
        let size = status
            .actions
            .iter()
            .flatten()
            .filter(|a| a.target_pod_name.as_deref() == Some(pod))
            .flat_map(|a| a.volume_snapshots.iter().flatten())
            .find(|v| v.name.as_deref() == Some(snapshot.as_str()))
            .and_then(|v| v.size.clone());
        if let Some(size) = size.filter(|s| !s.is_empty()) {
            volume.claim["spec"]["resources"] = json!({"requests": {"storage": size}});
            volume.size_bytes = quantity_bytes(&size)
                .and_then(|b| u64::try_from(b).ok())
                .unwrap_or(0);
        }
    }
    movement
}

/// One volume as the agent reports its move (docs/PROTOCOL.md §2.4).
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct ReportedMove {
    #[serde(default)]
    volume_name: String,
    #[serde(default)]
    repository_path: String,
    #[serde(default)]
    snapshot_id: String,
    #[serde(default)]
    bytes_read: u64,
    #[serde(default)]
    bytes_stored: u64,
}

#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct MoveReport {
    #[serde(default)]
    volume_moves: Vec<ReportedMove>,
}

/// Records a completed data movement of pod `pod` in `status.volumeSnapshotCopies` (§K2.5a),
/// with each snapshot's restore size from the pod's snapshot entry; returns the names of the
/// VolumeSnapshots copied.
pub fn record_move(
    status: &mut BackupStatus,
    report_json: &str,
    pod: &str,
    moved: &[MovedVolume],
) -> Result<Vec<String>, String> {
    let report: MoveReport = serde_json::from_str(report_json)
        .map_err(|err| format!("the volume data movement report is not valid: {err}"))?;
    let recorded: Vec<VolumeSnapshotStatus> = status
        .actions
        .iter()
        .flatten()
        .filter(|a| a.target_pod_name.as_deref() == Some(pod))
        .flat_map(|a| a.volume_snapshots.iter().flatten().cloned())
        .collect();
    let mut names = Vec::new();
    let copies = status.volume_snapshot_copies.get_or_insert_with(Vec::new);
    for reported in report.volume_moves {
        // The snapshot a copy is of: the planned volume with that repository path.
        let snapshot = moved
            .iter()
            .find(|m| m.repository_path == reported.repository_path)
            .and_then(|m| m.claim.pointer("/spec/dataSource/name"))
            .and_then(|n| n.as_str())
            .unwrap_or_default()
            .to_string();
        let size = recorded
            .iter()
            .find(|v| v.name.as_deref() == Some(snapshot.as_str()))
            .and_then(|v| v.size.clone());
        let copy = VolumeSnapshotCopy {
            volume_snapshot_name: snapshot.clone(),
            volume_name: reported.volume_name,
            target_pod_name: Some(pod.to_string()),
            repository_path: reported.repository_path,
            snapshot_id: reported.snapshot_id,
            size,
            bytes_read: i64::try_from(reported.bytes_read).unwrap_or(i64::MAX),
            bytes_stored: i64::try_from(reported.bytes_stored).unwrap_or(i64::MAX),
        };
        copies.retain(|c| c.repository_path != copy.repository_path);
        copies.push(copy);
        if !snapshot.is_empty() {
            names.push(snapshot);
        }
    }
    Ok(names)
}

/// The short-lived claims and holder pods of a data movement, deleted after it failed (the
/// agent deletes them itself whenever it can; this covers an agent that went away).
pub fn move_leftovers(moved: &[MovedVolume]) -> Vec<Intent> {
    let mut intents = Vec::new();
    for m in moved {
        let name = m.claim["metadata"]["name"].as_str().unwrap_or_default();
        let namespace = m.claim["metadata"]["namespace"]
            .as_str()
            .map(str::to_string);
        if name.is_empty() {
            continue;
        }
        for (api_version, kind) in [("v1", "Pod"), ("v1", "PersistentVolumeClaim")] {
            intents.push(Intent::Delete {
                api_version: api_version.into(),
                kind: kind.into(),
                namespace: namespace.clone(),
                name: name.into(),
            });
        }
    }
    intents
}

/// Deletes VolumeSnapshots whose copy is stored (`cairn.io/delete-snapshot-after-move`).
pub fn delete_moved(namespace: Option<String>, names: &[String]) -> Vec<Intent> {
    let mut intents: Vec<Intent> = names
        .iter()
        .map(|name| Intent::Delete {
            api_version: "snapshot.storage.k8s.io/v1".into(),
            kind: "VolumeSnapshot".into(),
            namespace: namespace.clone(),
            name: name.clone(),
        })
        .collect();
    if !names.is_empty() {
        intents.push(Intent::normal(
            "DeleteMovedVolumeSnapshots",
            format!(
                "the volume snapshots {} are copied into the repository and deleted, as the policy's {} asks",
                names.join(", "),
                well_known::annotation::DELETE_SNAPSHOT_AFTER_MOVE
            ),
        ));
    }
    intents
}

/// `<backup>[-<target>]-<i>-<volume>` (§K2.5).
pub fn snapshot_name(
    backup: &Backup,
    target: &ResolvedTarget,
    pod_index: usize,
    volume: &str,
) -> String {
    let backup_name = backup.metadata.name.as_deref().unwrap_or_default();
    format!(
        "{backup_name}-{}{pod_index}-{volume}",
        target_prefix(target)
    )
}

fn snapshot_object(
    ctx: &Context<'_>,
    name: &str,
    namespace: &str,
    claim: &str,
    class: &str,
) -> serde_json::Value {
    json!({
        "apiVersion": "snapshot.storage.k8s.io/v1",
        "kind": "VolumeSnapshot",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": workload_labels(ctx.labels, ctx.backup),
            "ownerReferences": [owner_reference(ctx.backup)],
        },
        "spec": {
            "source": {"persistentVolumeClaimName": claim},
            "volumeSnapshotClassName": class,
        },
    })
}

/// One snapshot as the agent reports it (docs/PROTOCOL.md §2.4).
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Reported {
    #[serde(default)]
    name: String,
    #[serde(default)]
    content_name: String,
    #[serde(default)]
    volume_name: String,
    #[serde(default)]
    size: String,
    #[serde(default)]
    creation_time: Option<Time>,
}

#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Report {
    #[serde(default)]
    volume_snapshots: Vec<Reported>,
}

/// Records what the agent reported for a completed snapshot action: `volumeSnapshots`,
/// `totalSize` (the restore sizes summed, in bytes, when every size is a quantity) and
/// `timeRange` (earliest to latest creation time), and the first snapshot as `objectRef`.
pub fn record(entry: &mut ActionStatus, report_json: &str, namespace: &str) -> Result<(), String> {
    let report: Report = serde_json::from_str(report_json)
        .map_err(|err| format!("the volume snapshot report is not valid: {err}"))?;
    entry.volume_snapshots = Some(
        report
            .volume_snapshots
            .iter()
            .map(|s| VolumeSnapshotStatus {
                name: Some(s.name.clone()),
                content_name: Some(s.content_name.clone()).filter(|c| !c.is_empty()),
                volume_name: Some(s.volume_name.clone()),
                size: Some(s.size.clone()).filter(|s| !s.is_empty()),
                target_name: None,
            })
            .collect(),
    );
    let sizes: Option<Vec<u128>> = report
        .volume_snapshots
        .iter()
        .map(|s| quantity_bytes(&s.size))
        .collect();
    entry.total_size = sizes.map(|s| s.iter().sum::<u128>().to_string());
    let times: Vec<&Time> = report
        .volume_snapshots
        .iter()
        .filter_map(|s| s.creation_time.as_ref())
        .collect();
    if let (Some(start), Some(end)) = (
        times.iter().min_by_key(|t| t.0),
        times.iter().max_by_key(|t| t.0),
    ) {
        entry.time_range = Some(BackupTimeRange {
            start: Some((*start).clone()),
            end: Some((*end).clone()),
            ..Default::default()
        });
    }
    entry.object_ref = report.volume_snapshots.first().map(|s| ObjectReference {
        api_version: Some("snapshot.storage.k8s.io/v1".into()),
        kind: Some("VolumeSnapshot".into()),
        name: Some(s.name.clone()),
        namespace: Some(namespace.into()),
        ..Default::default()
    });
    Ok(())
}

/// What becomes of a deleted Backup's VolumeSnapshots (those its status records): with
/// `retain` they lose their owner reference and stay (with their contents), else they are
/// deleted, and their contents go or stay as their class's `deletionPolicy` says (the
/// snapshotter's part). Snapshots an unfinished action created are not recorded: they go with
/// the Backup through their owner reference.
pub fn on_deletion(backup: &Backup, status: &BackupStatus, retain: bool) -> Vec<Intent> {
    let namespace = backup.metadata.namespace.clone();
    let names: Vec<String> = status
        .actions
        .iter()
        .flatten()
        .flat_map(|a| a.volume_snapshots.iter().flatten())
        .filter_map(|s| s.name.clone())
        .collect();
    let mut intents: Vec<Intent> = names
        .iter()
        .map(|name| {
            let (api_version, kind) = (
                "snapshot.storage.k8s.io/v1".to_string(),
                "VolumeSnapshot".to_string(),
            );
            if retain {
                Intent::Orphan {
                    api_version,
                    kind,
                    namespace: namespace.clone(),
                    name: name.clone(),
                }
            } else {
                Intent::Delete {
                    api_version,
                    kind,
                    namespace: namespace.clone(),
                    name: name.clone(),
                }
            }
        })
        .collect();
    if retain && !names.is_empty() {
        intents.push(Intent::normal(
            "RetainVolumeSnapshots",
            format!(
                "deletionPolicy is Retain: the volume snapshots {} are kept",
                names.join(", ")
            ),
        ));
    }
    intents
}

/// Bytes in a Kubernetes quantity (`1Gi`, `500M`, `1048576`); `None` if it is not one.
pub fn quantity_bytes(quantity: &str) -> Option<u128> {
    let quantity = quantity.trim();
    let split = quantity
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(quantity.len());
    let (number, unit) = quantity.split_at(split);
    let number: u128 = number.parse().ok()?;
    let multiplier: u128 = match unit {
        "" => 1,
        "k" => 1_000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        "T" => 1_000_000_000_000,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "Ti" => 1 << 40,
        _ => return None,
    };
    number.checked_mul(multiplier)
}
