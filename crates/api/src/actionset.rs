//! ActionSet (cluster-scoped, short name `as`): how a database engine is backed up and restored.

use k8s_openapi::api::core::v1::{EnvFromSource, EnvVar};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::action::{ActionSpec, BackupDataActionSpec, BaseJobActionSpec, JobActionSpec};
use crate::common::Phase;

/// The desired state of an ActionSet: the backup type, its parameters and the backup and restore actions.
#[derive(CustomResource, Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq)]
#[kube(
    group = "dataprotection.kubeblocks.io",
    version = "v1alpha1",
    kind = "ActionSet",
    status = "ActionSetStatus",
    shortname = "as",
    category = "kubeblocks",
    category = "dataprotection",
    printcolumn(name = "BACKUP-TYPE", type_ = "string", json_path = ".spec.backupType"),
    printcolumn(name = "STATUS", type_ = "string", json_path = ".status.phase"),
    printcolumn(
        name = "AGE",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    doc = "ActionSet is the Schema for the actionsets API",
    derive = "PartialEq"
)]
#[serde(rename_all = "camelCase")]
pub struct ActionSetSpec {
    /// The backup type: `Full`, `Incremental` (changes since the last backup, full or incremental),
    /// `Differential` (changes since the last full backup), `Continuous` (transaction logs, the base
    /// of point-in-time recovery) or `Selective` (part of the data, chosen by parameters). Default `Full`.
    #[schemars(extend("default" = "Full"))]
    pub backup_type: BackupType,
    /// The schema of the parameters accepted by backups and restores (`withParameters`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters_schema: Option<ActionSetParametersSchema>,
    /// Environment variables to set in the container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<EnvVar>>,
    /// Sources to populate environment variables in the container. The keys must be C_IDENTIFIERs;
    /// invalid keys are reported as an event when the container starts. When a key exists in several
    /// sources the last one wins; an `env` entry with the same key takes precedence. Cannot be updated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env_from: Option<Vec<EnvFromSource>>,
    /// The backup action.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<BackupActionSpec>,
    /// The restore action.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore: Option<RestoreActionSpec>,
}

/// The observed state of an ActionSet.
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ActionSetStatus {
    /// `Available` or `Unavailable`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// A human-readable message indicating why the ActionSet is in this phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The generation observed by the controller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// The backup type.
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[schemars(transform = crate::schema::drop_description)]
pub enum BackupType {
    /// A full backup.
    Full,
    /// Data changed since the last backup (full or incremental).
    Incremental,
    /// Data changed since the last full backup.
    Differential,
    /// Transaction logs backed up continuously; with a full backup it allows point-in-time recovery.
    Continuous,
    /// Part of the data (e.g. some databases or tables), chosen by parameters.
    Selective,
}

/// The schema of the parameters an ActionSet accepts.
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ActionSetParametersSchema {
    /// The parameters as an OpenAPI v3 schema (properties of type string, number, integer, boolean,
    /// or array of strings).
    #[serde(
        rename = "openAPIV3Schema",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(schema_with = "crate::schema::preserve_unknown_object")]
    pub open_api_v3_schema: Option<serde_json::Value>,
}

/// The backup side of an ActionSet.
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct BackupActionSpec {
    /// The action that backs up the data.
    pub backup_data: BackupDataActionSpec,
    /// Hooks executed before the backup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pre_backup: Option<Vec<ActionSpec>>,
    /// Hooks executed after the backup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_backup: Option<Vec<ActionSpec>>,
    /// A custom deletion action run before the built-in deletion of the backup data; it ignores env/envFrom.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pre_delete: Option<BaseJobActionSpec>,
    /// The parameters (names from `parametersSchema`) the backup action uses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub with_parameters: Option<Vec<String>>,
}

/// The restore side of an ActionSet.
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct RestoreActionSpec {
    /// The action that prepares the data (writes it into the volumes being restored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prepare_data: Option<JobActionSpec>,
    /// The actions executed after the data is ready and the cluster runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_ready: Option<Vec<ActionSpec>>,
    /// Whether a base (full) backup is required to restore (default true; continuous only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = true))]
    pub base_backup_required: Option<bool>,
    /// The parameters (names from `parametersSchema`) the restore action uses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub with_parameters: Option<Vec<String>>,
}
