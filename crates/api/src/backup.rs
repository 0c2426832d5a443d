//! Backup (namespaced): one backup of a target, made with a method of a BackupPolicy.

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::backup_policy::BackupMethod;
use crate::common::{BackupTimeRange, EncryptionConfig, ParameterPair, RetentionPeriod};
use crate::schema::NAME_PATTERN;
use crate::target::BackupTarget;

/// The desired state of a Backup.
#[derive(CustomResource, Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq)]
#[kube(
    group = "dataprotection.kubeblocks.io",
    version = "v1alpha1",
    kind = "Backup",
    namespaced,
    status = "BackupStatus",
    category = "kubeblocks",
    category = "dataprotection",
    printcolumn(
        name = "POLICY",
        type_ = "string",
        json_path = ".spec.backupPolicyName"
    ),
    printcolumn(name = "METHOD", type_ = "string", json_path = ".spec.backupMethod"),
    printcolumn(name = "REPO", type_ = "string", json_path = ".status.backupRepoName"),
    printcolumn(name = "STATUS", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "TOTAL-SIZE", type_ = "string", json_path = ".status.totalSize"),
    printcolumn(name = "DURATION", type_ = "string", json_path = ".status.duration"),
    printcolumn(
        name = "CREATION-TIME",
        type_ = "string",
        json_path = ".metadata.creationTimestamp"
    ),
    printcolumn(
        name = "COMPLETION-TIME",
        type_ = "string",
        json_path = ".status.completionTimestamp"
    ),
    printcolumn(
        name = "EXPIRATION-TIME",
        type_ = "string",
        json_path = ".status.expiration"
    ),
    printcolumn(
        name = "PROGRESS",
        type_ = "integer",
        json_path = ".status.progress.bytesDone",
        description = "Bytes backed up so far (Cairn extension, live while Running)",
        priority = 1
    ),
    printcolumn(
        name = "TOTAL-BYTES",
        type_ = "integer",
        json_path = ".status.progress.bytesTotal",
        description = "Bytes to back up, when known (Cairn extension)",
        priority = 1
    ),
    printcolumn(
        name = "ETA-SECONDS",
        type_ = "integer",
        json_path = ".status.progress.etaSeconds",
        description = "Estimated seconds until the backup completes (Cairn extension)",
        priority = 1
    ),
    doc = "Backup is the Schema for the backups API.",
    derive = "PartialEq"
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{"message": "forbidden to update spec.parameters", "rule": "has(oldSelf.parameters) == has(self.parameters)"}]))]
pub struct BackupSpec {
    /// The BackupPolicy applied to perform this backup. Immutable.
    #[schemars(regex(pattern = NAME_PATTERN))]
    #[schemars(extend("x-kubernetes-validations" = [{"message": "forbidden to update spec.backupPolicyName", "rule": "self == oldSelf"}]))]
    pub backup_policy_name: String,
    /// The backup method, a name defined in the BackupPolicy. Immutable.
    #[schemars(extend("x-kubernetes-validations" = [{"message": "forbidden to update spec.backupMethod", "rule": "self == oldSelf"}]))]
    pub backup_method: String,
    /// Whether the backup data in the repository is deleted with the Backup (`Delete`, the default)
    /// or kept (`Retain`). KubeBlocks keeps a `Retain` Backup in `Deleting` forever instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "Delete"))]
    pub deletion_policy: Option<BackupDeletionPolicy>,
    /// How long the backup is kept, e.g. `30d` or `30d12h30m` (y, mo, w, d, h, m); kept forever if
    /// not set. The controller removes backups older than the period.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_period: Option<RetentionPeriod>,
    /// The parent backup of an incremental or differential backup. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-validations" = [{"message": "forbidden to update spec.parentBackupName", "rule": "self == oldSelf"}]))]
    pub parent_backup_name: Option<String>,
    /// Parameters for the ActionSet, matching its `parametersSchema` (at most 128). Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 128), extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    #[schemars(extend("x-kubernetes-validations" = [{"message": "forbidden to update spec.parameters", "rule": "self == oldSelf"}]))]
    pub parameters: Option<Vec<ParameterPair>>,
}

/// Whether a Backup's data is deleted with it.
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[schemars(transform = crate::schema::drop_description)]
pub enum BackupDeletionPolicy {
    /// The backup content and its physical snapshot in the repository are deleted.
    Delete,
    /// The backup content and its physical snapshot in the repository are kept.
    Retain,
}

/// The lifecycle phase of a Backup.
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[schemars(transform = crate::schema::drop_description)]
pub enum BackupPhase {
    /// Created but not yet processed by the controller.
    New,
    /// A leftover of the old API; never set by the controller.
    InProgress,
    /// The backup is executing.
    Running,
    /// The backup ran successfully.
    Completed,
    /// The backup ran but an error prevented it from completing.
    Failed,
    /// The backup and its data are being deleted.
    Deleting,
}

/// The observed state of a Backup.
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct BackupStatus {
    /// The backup format version (major.minor.patch), `0.1.0` for KubeBlocks 0.9.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format_version: Option<String>,
    /// The current phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<BackupPhase>,
    /// When the backup becomes eligible for garbage collection; none means it is never removed
    /// except by hand.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiration: Option<Time>,
    /// When the backup was started (server time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_timestamp: Option<Time>,
    /// When the backup was completed, recorded even on failure (server time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_timestamp: Option<Time>,
    /// How long the backup took, as a Go duration string such as `1h2m0.5s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
    /// The total size of the backed-up data, e.g. `1Gi`, `1Mi`, `1Ki`, or bytes without a unit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_size: Option<String>,
    /// The error that made the backup fail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_reason: Option<String>,
    /// Why deleting the backup data failed (KubeBlocks 1.x; kept apart from `failureReason`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_failure_reason: Option<String>,
    /// The name of the backup repository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_repo_name: Option<String>,
    /// The absolute directory in the backup repository where the backup data is stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The path of the Kopia repository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kopia_repo_path: Option<String>,
    /// The PVC that stores the backup data (Mount repositories and legacy backups).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistent_volume_claim_name: Option<String>,
    /// The time range of the backed-up data; for PITR, the range of recoverable data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_range: Option<BackupTimeRange>,
    /// The target of this backup (single-target policies).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<BackupStatusTarget>,
    /// The targets of this backup (multi-target policies).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub targets: Option<Vec<BackupStatusTarget>>,
    /// A copy of the backup method used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_method: Option<BackupMethod>,
    /// The encryption config used (inherited from the parent backup, else the policy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption_config: Option<EncryptionConfig>,
    /// The actions run for this backup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actions: Option<Vec<ActionStatus>>,
    /// The volume snapshots taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_snapshots: Option<Vec<VolumeSnapshotStatus>>,
    /// The parent backup of an incremental or differential backup; deleting it deletes this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_backup_name: Option<String>,
    /// The base full backup of an incremental or differential backup; deleting it deletes this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_backup_name: Option<String>,
    /// Extra information written by the backup action (string maps).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::schema::list_of_string_maps")]
    pub extras: Option<Vec<std::collections::BTreeMap<String, String>>>,
    /// Live progress of a running backup. Cairn extension, not part of the KubeBlocks API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<BackupProgress>,
    /// The repository copies of the backup's volume snapshots (snapshot data movement).
    /// Cairn extension, not part of the KubeBlocks API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_snapshot_copies: Option<Vec<VolumeSnapshotCopy>>,
    /// How a continuous backup's archiving goes (`ArchiveStalled`, `ArchiverRestarting`).
    /// Cairn extension, not part of the KubeBlocks API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition>>,
    /// The stretches inside a continuous backup's `timeRange` its archive does not hold (the
    /// archiver started a new window after the end it had reached), oldest first: no restore
    /// can reach a time strictly between a gap's start and end. Cairn extension, not part of
    /// the KubeBlocks API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gaps: Option<Vec<ArchiveGap>>,
}

/// A stretch of a continuous backup's time range its archive does not hold. Cairn extension.
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ArchiveGap {
    /// The last point archived before the gap (restorable).
    pub start: Time,
    /// The first point archived after the gap (restorable).
    pub end: Time,
}

/// One volume snapshot's copy in the deduplicating repository (`status.kopiaRepoPath`).
/// Cairn extension.
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct VolumeSnapshotCopy {
    /// The VolumeSnapshot the files were read from.
    pub volume_snapshot_name: String,
    /// The target pod's volume.
    pub volume_name: String,
    /// The target pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_pod_name: Option<String>,
    /// The repository snapshot's path tag (under `status.path`).
    pub repository_path: String,
    /// The repository snapshot's id.
    #[serde(rename = "snapshotID")]
    pub snapshot_id: String,
    /// The snapshot's restore size (a quantity): the size of a claim restored from the copy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<String>,
    /// Bytes of file content read from the snapshot.
    #[serde(default)]
    pub bytes_read: i64,
    /// Bytes the copy added to the repository (after deduplication and compression).
    #[serde(default)]
    pub bytes_stored: i64,
}

/// Live progress of a running backup, reported by Cairn's node agent. Cairn extension.
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct BackupProgress {
    /// Bytes read and stored so far.
    pub bytes_done: i64,
    /// Bytes to process in total, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_total: Option<i64>,
    /// Recent throughput in bytes per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_per_second: Option<i64>,
    /// Estimated seconds until completion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eta_seconds: Option<i64>,
    /// When this progress was measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_time: Option<Time>,
}

/// A backup target as recorded in the status, with the pods that were selected.
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct BackupStatusTarget {
    /// The target (members of BackupTarget are embedded into this type).
    #[serde(flatten)]
    pub target: BackupTarget,
    /// The pods selected by the target during the backup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selected_target_pods: Option<Vec<String>>,
}

/// The phase of one action of a Backup.
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[schemars(transform = crate::schema::drop_description)]
pub enum ActionPhase {
    /// Created but not yet processed by the controller.
    New,
    /// Executing.
    Running,
    /// Ran successfully.
    Completed,
    /// Ran but encountered an error.
    Failed,
}

/// The kind of workload an action runs as.
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[schemars(transform = crate::schema::drop_description)]
pub enum ActionType {
    /// A Kubernetes Job.
    Job,
    /// A StatefulSet (continuous backups).
    StatefulSet,
    /// No workload (volume snapshots).
    #[serde(rename = "")]
    None,
}

/// The status of one action of a Backup.
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ActionStatus {
    /// The name of the action.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The target pod the action backed up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_pod_name: Option<String>,
    /// The current phase of the action.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<ActionPhase>,
    /// When the action was started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_timestamp: Option<Time>,
    /// When the action was completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_timestamp: Option<Time>,
    /// The error that made the action fail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_reason: Option<String>,
    /// The type of the action.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action_type: Option<ActionType>,
    /// Available replicas of a StatefulSet action.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available_replicas: Option<i32>,
    /// The object the action created (Job, StatefulSet, VolumeSnapshot).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_ref: Option<ObjectReference>,
    /// The total size of the data the action backed up, e.g. `1Gi`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_size: Option<String>,
    /// The time range of the data the action backed up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_range: Option<BackupTimeRange>,
    /// The volume snapshots the action took.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_snapshots: Option<Vec<VolumeSnapshotStatus>>,
}

/// The status of one volume snapshot.
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct VolumeSnapshotStatus {
    /// The name of the volume snapshot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The name of the volume snapshot content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_name: Option<String>,
    /// The name of the volume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_name: Option<String>,
    /// The size of the volume snapshot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<String>,
    /// The target this snapshot belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_name: Option<String>,
}
