//! RestoreJob (old API, namespaced): restore one old Backup into volumes of a target workload.

use k8s_openapi::api::core::v1::{Volume, VolumeMount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::legacy::target::TargetCluster;

/// The desired state of a RestoreJob.
#[derive(CustomResource, Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq, Default)]
#[kube(
    group = "dataprotection.kubeblocks.io",
    version = "v1alpha1",
    kind = "RestoreJob",
    namespaced,
    status = "RestoreJobStatus",
    category = "kubeblocks",
    category = "dataprotection",
    printcolumn(name = "STATUS", type_ = "string", json_path = ".status.phase"),
    printcolumn(
        name = "COMPLETION-TIME",
        type_ = "date",
        json_path = ".status.completionTimestamp"
    ),
    printcolumn(
        name = "AGE",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    doc = "RestoreJob is the Schema for the restorejobs API (defined by User); old API, convert it to a Restore.",
    derive = "PartialEq"
)]
#[serde(rename_all = "camelCase")]
pub struct RestoreJobSpec {
    /// The backup to restore.
    pub backup_job_name: String,
    /// The target database workload to restore.
    pub target: TargetCluster,
    /// The volumes to restore into (at least one).
    #[schemars(length(min = 1))]
    pub target_volumes: Vec<Volume>,
    /// The mounts of the volumes to restore into (at least one).
    #[schemars(length(min = 1))]
    pub target_volume_mounts: Vec<VolumeMount>,
    /// How many times the restore is retried on failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_fail_attempted: Option<i32>,
}

/// The phase of a RestoreJob.
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[schemars(transform = crate::schema::drop_description)]
pub enum RestoreJobPhase {
    /// Created, not yet processed.
    New,
    /// Running a physical restore.
    InProgressPhy,
    /// Running a logical restore.
    InProgressLogic,
    /// Completed.
    Completed,
    /// Failed.
    Failed,
}

/// The observed state of a RestoreJob.
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct RestoreJobStatus {
    /// The current phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<RestoreJobPhase>,
    /// When the restore job is eligible for garbage collection; none means never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiration: Option<Time>,
    /// When the restore started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_timestamp: Option<Time>,
    /// When the restore finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_timestamp: Option<Time>,
    /// Why the job failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_reason: Option<String>,
}
