//! The old (≤ 0.6) shape of BackupPolicy: retention, schedule and one policy per backup type.
//! Input to [`super::convert`] only; it has no CRD.

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use serde::{Deserialize, Serialize};

use crate::legacy::target::TargetCluster;

/// An old-API BackupPolicy object.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct BackupPolicy {
    /// `dataprotection.kubeblocks.io/v1alpha1`.
    pub api_version: String,
    /// `BackupPolicy`.
    pub kind: String,
    /// Standard object metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// The desired state.
    pub spec: BackupPolicySpec,
    /// The observed state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<BackupPolicyStatus>,
}

/// The desired state of an old BackupPolicy.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct BackupPolicySpec {
    /// How long Backups are retained; forever if not set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<RetentionSpec>,
    /// The schedule policy for backups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<Schedule>,
    /// The policy for snapshot backups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<SnapshotPolicy>,
    /// The policy for datafile backups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datafile: Option<CommonBackupPolicy>,
    /// The policy for logfile backups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logfile: Option<CommonBackupPolicy>,
}

/// How long Backups are retained.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct RetentionSpec {
    /// A number of days or hours: `<n>d` or `<n>h` (case-insensitive); forever if not set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<String>,
}

/// The schedules of an old BackupPolicy, one per backup type.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Schedule {
    /// The deadline in minutes for starting a backup job that missed its time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub starting_deadline_minutes: Option<i64>,
    /// The schedule of snapshot backups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<SchedulePolicy>,
    /// The schedule of datafile backups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datafile: Option<SchedulePolicy>,
    /// The schedule of logfile backups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logfile: Option<SchedulePolicy>,
}

/// One schedule of an old BackupPolicy.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct SchedulePolicy {
    /// The cron expression, in UTC.
    pub cron_expression: String,
    /// Whether the schedule is enabled.
    pub enable: bool,
}

/// What every per-type policy has: target, history limit, retries and status updates.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct BasePolicy {
    /// The target database cluster.
    pub target: TargetCluster,
    /// The number of automatic backups to keep (0: no limit; default 7).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backups_history_limit: Option<i32>,
    /// How many times a failed backup is retried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_fail_attempted: Option<i32>,
    /// How the Backup status is updated with metadata from the target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_status_updates: Option<Vec<BackupStatusUpdate>>,
}

/// The policy for snapshot backups.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotPolicy {
    /// Target, limits and status updates (members of BasePolicy are embedded into this type).
    #[serde(flatten)]
    pub base: BasePolicy,
    /// Commands executed before and after the snapshot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hooks: Option<BackupPolicyHook>,
}

/// The policy for datafile and logfile backups.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct CommonBackupPolicy {
    /// Target, limits and status updates (members of BasePolicy are embedded into this type).
    #[serde(flatten)]
    pub base: BasePolicy,
    /// The PVC that stores the backup data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistent_volume_claim: Option<PersistentVolumeClaim>,
    /// The BackupRepo that stores the backup data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_repo_name: Option<String>,
    /// The BackupTool that performs the backup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_tool_name: Option<String>,
}

/// The PVC that stores old backups.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct PersistentVolumeClaim {
    /// The name of the PVC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The StorageClass of the PVC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,
    /// The initial size of a PVC created by the controller (default 100Gi).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_capacity: Option<Quantity>,
    /// `IfNotPresent` (default) creates the PVC when missing, `Never` does not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_policy: Option<CreatePvcPolicy>,
    /// A ConfigMap holding a PersistentVolume template (key `persistentVolume`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistent_volume_config_map: Option<PersistentVolumeConfigMap>,
}

/// How the backup PVC is created.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CreatePvcPolicy {
    /// Create the PVC if it is not present.
    IfNotPresent,
    /// Never create the PVC.
    Never,
}

/// A ConfigMap holding a PersistentVolume template.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct PersistentVolumeConfigMap {
    /// The ConfigMap name.
    pub name: String,
    /// The ConfigMap namespace.
    pub namespace: String,
}

/// Commands executed in the database before and after a snapshot.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct BackupPolicyHook {
    /// Commands executed before the backup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pre_commands: Option<Vec<String>>,
    /// Commands executed after the backup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_commands: Option<Vec<String>>,
    /// The image that runs the commands.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// The container the commands run in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_name: Option<String>,
}

/// How Backup status fields are filled from the target.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct BackupStatusUpdate {
    /// The JSON path under `status` to patch, e.g. `manifests.backupLog`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The container the script runs in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_name: Option<String>,
    /// The shell script that prints the status as JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub script: Option<String>,
    /// Whether the job uses the target pod's service account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub use_target_pod_service_account: Option<bool>,
    /// When to update: `pre` (before the backup) or `post` (after).
    pub update_stage: BackupStatusUpdateStage,
}

/// When a status update runs.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BackupStatusUpdateStage {
    /// Before the backup.
    #[serde(rename = "pre")]
    Pre,
    /// After the backup.
    #[serde(rename = "post")]
    Post,
}

/// The phase of an old BackupPolicy.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BackupPolicyPhase {
    /// The policy is usable.
    Available,
    /// The policy failed its checks.
    Failed,
}

/// The observed state of an old BackupPolicy.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct BackupPolicyStatus {
    /// The generation observed by the controller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Available` or `Failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<BackupPolicyPhase>,
    /// Why the policy check failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_reason: Option<String>,
    /// The last time a job was scheduled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_schedule_time: Option<Time>,
    /// The last time a job completed successfully.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_successful_time: Option<Time>,
}
