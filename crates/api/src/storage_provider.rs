//! StorageProvider (cluster-scoped): how to reach a kind of storage (CSI driver and datasafed templates).
//!
//! The same kind also exists in the deprecated `storage.kubeblocks.io/v1alpha1` group
//! ([`LegacyStorageProvider`]); KubeBlocks copies such an object into the dataprotection group on
//! first use by a BackupRepo.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The desired state of a StorageProvider: Go templates rendered with the repository's parameters.
#[derive(CustomResource, Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq, Default)]
#[kube(
    group = "dataprotection.kubeblocks.io",
    version = "v1alpha1",
    kind = "StorageProvider",
    status = "StorageProviderStatus",
    category = "kubeblocks",
    category = "dataprotection",
    printcolumn(name = "STATUS", type_ = "string", json_path = ".status.phase"),
    printcolumn(
        name = "CSIDRIVER",
        type_ = "string",
        json_path = ".spec.csiDriverName"
    ),
    printcolumn(
        name = "AGE",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    doc = "StorageProvider comprises specifications that provide guidance on accessing remote storage. Currently the supported access methods are via a dedicated CSI driver or the datasafed tool.",
    derive = "PartialEq"
)]
#[serde(rename_all = "camelCase")]
pub struct StorageProviderSpec {
    /// The CSI driver used to access the storage; empty when the storage is not accessible via CSI.
    #[serde(
        rename = "csiDriverName",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub csi_driver_name: Option<String>,
    /// A Go template rendering the Secret a CSI driver needs (e.g. `accessKey` and `secretKey` for CSI-S3).
    #[serde(
        rename = "csiDriverSecretTemplate",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub csi_driver_secret_template: Option<String>,
    /// A Go template rendering a StorageClass that uses the CSI driver.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_template: Option<String>,
    /// A Go template rendering a PersistentVolumeClaim, which may use the StorageClass rendered from
    /// `storageClassTemplate`, so pods reach the storage by mounting it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistent_volume_claim_template: Option<String>,
    /// A Go template rendering the datasafed configuration (endpoint, bucket, region, keys...);
    /// empty when the storage is not accessible via datasafed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datasafed_config_template: Option<String>,
    /// The parameters the storage needs; they can be referenced in the templates above.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters_schema: Option<ParametersSchema>,
}

/// The parameters a kind of storage needs.
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ParametersSchema {
    /// The parameters as an OpenAPI v3 schema.
    #[serde(
        rename = "openAPIV3Schema",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(schema_with = "crate::schema::preserve_unknown_object")]
    pub open_api_v3_schema: Option<serde_json::Value>,
    /// The parameters that are credentials, to be stored in a Secret rather than a ConfigMap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_fields: Option<Vec<String>>,
}

/// The phase of a StorageProvider.
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[schemars(transform = crate::schema::drop_description)]
pub enum StorageProviderPhase {
    /// Not ready, usually because the CSI driver is not installed.
    NotReady,
    /// Ready for use.
    Ready,
}

/// The observed state of a StorageProvider.
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct StorageProviderStatus {
    /// `NotReady` or `Ready`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<StorageProviderPhase>,
    /// The current state (condition `CSIDriverInstalled`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<Condition>>,
}

/// The spec of the deprecated `storage.kubeblocks.io/v1alpha1` StorageProvider: identical to the
/// dataprotection one.
#[derive(CustomResource, Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq, Default)]
#[kube(
    group = "storage.kubeblocks.io",
    version = "v1alpha1",
    kind = "StorageProvider",
    root = "LegacyStorageProvider",
    status = "StorageProviderStatus",
    category = "kubeblocks",
    printcolumn(name = "STATUS", type_ = "string", json_path = ".status.phase"),
    printcolumn(
        name = "CSIDRIVER",
        type_ = "string",
        json_path = ".spec.csiDriverName"
    ),
    printcolumn(
        name = "AGE",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    deprecated = "storage.kubeblocks.io/v1alpha1 StorageProvider is deprecated; use dataprotection.kubeblocks.io/v1alpha1",
    doc = "StorageProvider (deprecated group storage.kubeblocks.io) is the same as dataprotection.kubeblocks.io StorageProvider.",
    derive = "PartialEq"
)]
#[serde(transparent)]
#[schemars(transparent)]
pub struct LegacyStorageProviderSpec(pub StorageProviderSpec);
