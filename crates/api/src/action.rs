//! Actions an ActionSet runs: exec in a pod, or a Kubernetes Job, and how errors are treated.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// How an error from an action is treated (KubeBlocks never reads it: every failure fails the Backup).
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[schemars(transform = crate::schema::drop_description)]
pub enum ActionErrorMode {
    /// An error from the action is acceptable and can be ignored.
    Continue,
    /// An error from the action is a failure (the default).
    Fail,
}

/// An action that should be executed. Exactly one of `exec` and `job` may be set.
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ActionSpec {
    /// Run the action with the pod exec API in a container of the target pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exec: Option<ExecActionSpec>,
    /// Run the action as a Kubernetes Job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<JobActionSpec>,
}

/// An action that uses the pod exec API to execute a command in a container of a pod.
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ExecActionSpec {
    /// The container in the pod where the command is executed; the pod's first container when empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// The command and arguments to execute.
    #[schemars(length(min = 1))]
    pub command: Vec<String>,
    /// How to behave if an error is encountered (default `Fail`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "Fail"))]
    pub on_error: Option<ActionErrorMode>,
    /// The maximum time to wait for the hook to complete before considering it failed,
    /// a Kubernetes duration such as `30s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
}

/// An action that creates a Kubernetes Job to execute a command (image and command only).
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct BaseJobActionSpec {
    /// The image of the container; `$(VAR)` references are expanded from the container env.
    pub image: String,
    /// The command of the container.
    pub command: Vec<String>,
}

/// An action that creates a Kubernetes Job to execute a command.
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct JobActionSpec {
    /// The image and command (members of BaseJobActionSpec are embedded into this type).
    #[serde(flatten)]
    pub base: BaseJobActionSpec,
    /// Whether to run the job on the target pod's node; needed to mount the target pod's volumes,
    /// which are ignored otherwise (default false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = false))]
    pub run_on_target_pod_node: Option<bool>,
    /// How to behave if an error is encountered (default `Fail`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "Fail"))]
    pub on_error: Option<ActionErrorMode>,
}

/// How to back up data: a Job action plus progress synchronisation.
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct BackupDataActionSpec {
    /// The Job (members of JobActionSpec are embedded into this type).
    #[serde(flatten)]
    pub job: JobActionSpec,
    /// Whether to sync the backup progress and its interval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_progress: Option<SyncProgress>,
}

/// Whether and how often the backup progress is synced to the Backup status.
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct SyncProgress {
    /// Whether to sync the backup progress; if enabled, a sidecar syncs it to the Backup CR status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// The interval in seconds to sync the backup progress (CRD default 60).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = 60))]
    pub interval_seconds: Option<i32>,
}
