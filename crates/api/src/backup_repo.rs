//! BackupRepo (cluster-scoped): where backup data is stored, through a StorageProvider.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::SecretReference;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::schema::PATH_PREFIX_PATTERN;

/// The desired state of a BackupRepo.
#[derive(CustomResource, Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq)]
#[kube(
    group = "dataprotection.kubeblocks.io",
    version = "v1alpha1",
    kind = "BackupRepo",
    status = "BackupRepoStatus",
    category = "kubeblocks",
    category = "dataprotection",
    printcolumn(name = "STATUS", type_ = "string", json_path = ".status.phase"),
    printcolumn(
        name = "STORAGEPROVIDER",
        type_ = "string",
        json_path = ".spec.storageProviderRef"
    ),
    printcolumn(
        name = "ACCESSMETHOD",
        type_ = "string",
        json_path = ".spec.accessMethod"
    ),
    printcolumn(name = "DEFAULT", type_ = "boolean", json_path = ".status.isDefault"),
    printcolumn(
        name = "AGE",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    doc = "BackupRepo is a repository for storing backup data.",
    derive = "PartialEq"
)]
#[serde(rename_all = "camelCase")]
pub struct BackupRepoSpec {
    /// The StorageProvider used by this backup repository. Immutable.
    #[schemars(extend("x-kubernetes-validations" = [{"message": "StorageProviderRef is immutable", "rule": "self == oldSelf"}]))]
    pub storage_provider_ref: String,
    /// How the repository is accessed: `Mount` (default) or `Tool`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "Mount"))]
    pub access_method: Option<AccessMethod>,
    /// The capacity of the PVC created by this backup repository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::schema::quantity")]
    pub volume_capacity: Option<Quantity>,
    /// The reclaim policy of the PV created by this backup repository.
    pub pv_reclaim_policy: PersistentVolumeReclaimPolicy,
    /// The non-secret configuration parameters for the StorageProvider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<BTreeMap<String, String>>,
    /// The secret that holds the credentials for the StorageProvider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<SecretReference>,
    /// The prefix of the path under which backup data is stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = PATH_PREFIX_PATTERN))]
    pub path_prefix: Option<String>,
}

/// How a BackupRepo is accessed.
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[schemars(transform = crate::schema::drop_description)]
pub enum AccessMethod {
    /// The storage is mounted locally (a PVC), so remote files are accessed like local ones.
    Mount,
    /// A command-line tool (datasafed) accesses the storage.
    Tool,
}

/// The reclaim policy of a PersistentVolume.
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[schemars(transform = crate::schema::drop_description)]
pub enum PersistentVolumeReclaimPolicy {
    /// The volume is deleted with its claim.
    Delete,
    /// The volume is kept after its claim is deleted.
    Retain,
}

/// The stage a BackupRepo is in.
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[schemars(transform = crate::schema::drop_description)]
pub enum BackupRepoPhase {
    /// The repository is being pre-checked.
    PreChecking,
    /// The pre-check failed.
    Failed,
    /// The repository is ready for use.
    Ready,
    /// The repository is being deleted.
    Deleting,
}

/// The observed state of a BackupRepo.
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct BackupRepoStatus {
    /// The current phase: PreChecking, Failed, Ready or Deleting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<BackupRepoPhase>,
    /// A detailed description of the current state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<Condition>>,
    /// The latest generation observed by the controller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The secret generated for the StorageProvider's CSI driver.
    #[serde(
        rename = "generatedCSIDriverSecret",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub generated_csi_driver_secret: Option<SecretReference>,
    /// The name of the generated storage class.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generated_storage_class_name: Option<String>,
    /// The name of the PVC that stores backup data.
    #[serde(
        rename = "backupPVCName",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub backup_pvc_name: Option<String>,
    /// The name of the secret that holds the tool's configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_config_secret_name: Option<String>,
    /// Whether this backup repository is the default one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_default: Option<bool>,
}
