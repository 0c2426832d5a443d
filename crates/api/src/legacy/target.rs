//! The old API's backup target: a label selector and a credential secret.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::schema::NAME_PATTERN;

/// The target database cluster (old API).
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct TargetCluster {
    /// Selects the pods of the target database.
    pub labels_selector: LabelSelector,
    /// The secret used to connect to the target database cluster; inherited from the backup policy
    /// template, else a data-protection system account, when not set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<BackupPolicySecret>,
}

/// The secret a backup tool uses to connect to the target database (old API).
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct BackupPolicySecret {
    /// The secret name.
    #[schemars(regex(pattern = NAME_PATTERN))]
    pub name: String,
    /// The key of the user name in the secret (default `username`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "username"))]
    pub username_key: Option<String>,
    /// The key of the password in the secret (default `password`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "password"))]
    pub password_key: Option<String>,
}
