//! The old (≤ 0.6) shape of Backup: a backup type instead of a method, and `manifests` in the status.
//! Input to [`super::convert`] only; it has no CRD.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use serde::{Deserialize, Serialize};

/// An old-API Backup object.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Backup {
    /// `dataprotection.kubeblocks.io/v1alpha1`.
    pub api_version: String,
    /// `Backup`.
    pub kind: String,
    /// Standard object metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// The desired state.
    pub spec: BackupSpec,
    /// The observed state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<BackupStatus>,
}

/// The desired state of an old Backup.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct BackupSpec {
    /// The BackupPolicy applied.
    pub backup_policy_name: String,
    /// `datafile` (default), `logfile` or `snapshot`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_type: Option<BackupType>,
    /// The parent of an incremental backup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_backup_name: Option<String>,
}

/// The type of an old backup.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BackupType {
    /// Data files made by a BackupTool.
    #[serde(rename = "datafile")]
    Datafile,
    /// Log files made by a BackupTool (point-in-time recovery).
    #[serde(rename = "logfile")]
    Logfile,
    /// A volume snapshot.
    #[serde(rename = "snapshot")]
    Snapshot,
}

/// The phase of an old Backup.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BackupPhase {
    /// Created, not yet processed.
    New,
    /// Executing (old API).
    InProgress,
    /// Executing (StatefulSet tools).
    Running,
    /// Completed.
    Completed,
    /// Failed.
    Failed,
    /// Being deleted.
    Deleting,
}

/// The observed state of an old Backup.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct BackupStatus {
    /// The current phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<BackupPhase>,
    /// The parent of an incremental backup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_backup_name: Option<String>,
    /// When the backup is eligible for garbage collection; none means never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiration: Option<Time>,
    /// When the backup started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_timestamp: Option<Time>,
    /// When the backup finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_timestamp: Option<Time>,
    /// How long the backup took (`1h2m0.5s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
    /// The total size, e.g. `1Gi`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_size: Option<String>,
    /// Why the backup failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_reason: Option<String>,
    /// The PVC that holds the backup data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistent_volume_claim_name: Option<String>,
    /// The BackupTool that made the backup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_tool_name: Option<String>,
    /// The source cluster of the backup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_cluster: Option<String>,
    /// Available replicas of a StatefulSet backup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available_replicas: Option<i32>,
    /// Backup metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifests: Option<ManifestsStatus>,
}

/// Backup metadata of an old Backup.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ManifestsStatus {
    /// Start and stop time of the logged data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_log: Option<BackupLogStatus>,
    /// The target cluster's metadata as a JSON string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// The volume snapshot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_snapshot: Option<BackupSnapshotStatus>,
    /// The files the backup tool wrote.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_tool: Option<BackupToolManifestsStatus>,
    /// Loosely structured extra information.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_context: Option<BTreeMap<String, String>>,
}

/// Start and stop time of logged data.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct BackupLogStatus {
    /// When logging started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    /// When logging stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_time: Option<Time>,
}

/// The volume snapshot of an old Backup.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct BackupSnapshotStatus {
    /// The VolumeSnapshot name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_snapshot_name: Option<String>,
    /// The VolumeSnapshotContent name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_snapshot_content_name: Option<String>,
}

/// The files a BackupTool wrote.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct BackupToolManifestsStatus {
    /// The path of the backup files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_path: Option<String>,
    /// The volume of the backup PVC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_name: Option<String>,
    /// The uploaded size, e.g. `1Gi`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upload_total_size: Option<String>,
    /// The checksum (md5, sha1 or sha256) of the backup file (`checkSum` in 0.5).
    #[serde(alias = "checkSum", default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<String>,
    /// The checkpoint, for incremental backups (`CheckPoint` in 0.5).
    #[serde(alias = "CheckPoint", default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<String>,
}
