//! BackupTool (old API, cluster-scoped): a container image and the commands that back up and restore.

use k8s_openapi::api::core::v1::{EnvFromSource, EnvVar, ResourceRequirements};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The desired state of a BackupTool.
#[derive(CustomResource, Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq, Default)]
#[kube(
    group = "dataprotection.kubeblocks.io",
    version = "v1alpha1",
    kind = "BackupTool",
    status = "BackupToolStatus",
    category = "kubeblocks",
    category = "dataprotection",
    doc = "BackupTool is the Schema for the backuptools API (defined by provider); old API, convert it to an ActionSet.",
    derive = "PartialEq"
)]
#[serde(rename_all = "camelCase")]
pub struct BackupToolSpec {
    /// The backup tool's container image.
    pub image: String,
    /// Which kind of workload runs the backup tool: `job` (default) or `statefulSet`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "job"))]
    pub deploy_kind: Option<DeployKind>,
    /// The type of backup tool: `file` (default) or `pitr`.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "file"))]
    pub tool_type: Option<BackupToolType>,
    /// Compute resources required by the container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Environment variables to set in the container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<EnvVar>>,
    /// Sources to populate environment variables in the container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env_from: Option<Vec<EnvFromSource>>,
    /// The commands that back up the database, run in order.
    pub backup_commands: Vec<String>,
    /// The commands of an incremental backup (e.g. xtrabackup incremental).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incremental_backup_commands: Option<Vec<String>>,
    /// Physical restore (the database must be restarted).
    pub physical: BackupToolRestoreCommand,
    /// Logical restore (the database is not restarted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logical: Option<LogicalConfig>,
}

/// The observed state of a BackupTool (empty).
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq, Eq, Default)]
pub struct BackupToolStatus {}

/// Which kind of workload runs a backup tool.
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[schemars(transform = crate::schema::drop_description)]
pub enum DeployKind {
    /// A Job per backup.
    #[serde(rename = "job")]
    Job,
    /// A StatefulSet running continuously (log backups).
    #[serde(rename = "statefulSet")]
    StatefulSet,
}

/// The type of a backup tool.
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[schemars(transform = crate::schema::drop_description)]
pub enum BackupToolType {
    /// Backs up files (full backups).
    #[serde(rename = "file")]
    File,
    /// Backs up logs for point-in-time recovery.
    #[serde(rename = "pitr")]
    Pitr,
}

/// The restore commands of a BackupTool.
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct BackupToolRestoreCommand {
    /// The commands that restore the database from the backup files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore_commands: Option<Vec<String>>,
    /// The commands of an incremental restore.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incremental_restore_commands: Option<Vec<String>>,
}

/// Logical restore: restore commands plus the pods they run on.
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct LogicalConfig {
    /// The commands (members of BackupToolRestoreCommand are embedded into this type).
    #[serde(flatten)]
    pub commands: BackupToolRestoreCommand,
    /// `All` (default) runs the restore command on all pods, `ReadWrite` on one read-write pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "All"))]
    pub pod_scope: Option<PodRestoreScope>,
}

/// The pods a logical restore runs on.
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[schemars(transform = crate::schema::drop_description)]
pub enum PodRestoreScope {
    /// Every pod.
    All,
    /// One read-write pod.
    ReadWrite,
}
