//! BackupPolicy (namespaced, short name `bp`): the targets, repository and methods backups of a workload use.

use k8s_openapi::api::core::v1::{EnvVar, ResourceRequirements, VolumeMount};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{EncryptionConfig, Phase};
use crate::schema::NAME_PATTERN;
use crate::target::BackupTarget;

/// The desired state of a BackupPolicy. Exactly one of `target` and `targets` must be set.
#[derive(CustomResource, Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq)]
#[kube(
    group = "dataprotection.kubeblocks.io",
    version = "v1alpha1",
    kind = "BackupPolicy",
    plural = "backuppolicies",
    namespaced,
    status = "BackupPolicyStatus",
    shortname = "bp",
    category = "kubeblocks",
    category = "dataprotection",
    printcolumn(
        name = "BACKUP-REPO",
        type_ = "string",
        json_path = ".spec.backupRepoName"
    ),
    printcolumn(name = "STATUS", type_ = "string", json_path = ".status.phase"),
    printcolumn(
        name = "AGE",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    doc = "BackupPolicy is the Schema for the backuppolicies API.",
    derive = "PartialEq"
)]
#[serde(rename_all = "camelCase")]
pub struct BackupPolicySpec {
    /// The BackupRepo where the backup data is stored; the default repository if not set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = NAME_PATTERN))]
    pub backup_repo_name: Option<String>,
    /// The directory inside the backup repository, relative to the repository's path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_prefix: Option<String>,
    /// The number of retries before the backup is marked failed (0..10, default 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 10), extend("default" = 2))]
    pub backoff_limit: Option<i32>,
    /// The target to back up: the pods, the connection credential.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<BackupTarget>,
    /// Several targets, all backed up together, each into a sub-directory named after it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub targets: Option<Vec<BackupTarget>>,
    /// The backup methods.
    pub backup_methods: Vec<BackupMethod>,
    /// Whether backup data is stored in a Kopia repository (compressed, encrypted, deduplicated).
    /// Must not be enabled with KubeBlocks Community Edition, which then does not process the backup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = false))]
    pub use_kopia: Option<bool>,
    /// The parameters for encrypting backup data; encryption is disabled when not set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption_config: Option<EncryptionConfig>,
}

/// The observed state of a BackupPolicy.
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct BackupPolicyStatus {
    /// `Available` or `Unavailable`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// A human-readable message indicating why the BackupPolicy is in this phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The most recent generation observed for this BackupPolicy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// The phases the reference lists for a BackupPolicy (the status actually uses Available and Unavailable).
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[schemars(transform = crate::schema::drop_description)]
pub enum BackupPolicyPhase {
    /// The policy is usable.
    Available,
    /// The policy failed its checks.
    Failed,
}

/// A backup method: an ActionSet or volume snapshots, plus what to mount and how to run it.
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct BackupMethod {
    /// The name of the backup method.
    #[schemars(regex(pattern = NAME_PATTERN))]
    pub name: String,
    /// The compatible full backup method, used by incremental backups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = NAME_PATTERN))]
    pub compatible_method: Option<String>,
    /// Whether to take snapshots of persistent volumes with the CSI volume snapshotter; then no
    /// ActionSet is required (default false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = false))]
    pub snapshot_volumes: Option<bool>,
    /// The ActionSet that defines the backup actions (not required for volume snapshots).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action_set_name: Option<String>,
    /// The volumes of the target mounted in the backup workload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_volumes: Option<TargetVolumeInfo>,
    /// Environment variables for the backup workload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<EnvVar>>,
    /// Runtime settings of the backup workload container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_settings: Option<RuntimeSettings>,
    /// The target to back up; overrides the policy's target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<BackupTarget>,
    /// Several targets; overrides the policy's targets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub targets: Option<Vec<BackupTarget>>,
}

/// The volumes of the target application, and their mounts, to mount in the backup workload.
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct TargetVolumeInfo {
    /// The volumes of the target application mounted in the backup job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volumes: Option<Vec<String>>,
    /// The mounts of the volumes listed in `volumes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_mounts: Option<Vec<VolumeMount>>,
}

/// Runtime settings of the backup workload container.
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct RuntimeSettings {
    /// The resources required by the container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
}
