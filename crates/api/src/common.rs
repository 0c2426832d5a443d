//! Types shared by several kinds: phases, parameters, encryption, time ranges, connection credentials.

use k8s_openapi::api::core::v1::SecretKeySelector;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::schema::{NAME_PATTERN, TIME_ZONE_PATTERN};

/// A duration in the format `1y2mo3w4d5h6m` (y=year of 365 days, mo=month of 30 days, w=week, d=day,
/// h=hour, m=minute), e.g. `30d` or `30d12h30m`.
pub type RetentionPeriod = String;

/// The phase of a BackupPolicy or an ActionSet (`.status.phase`).
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[schemars(transform = crate::schema::drop_description)]
pub enum Phase {
    /// The object passed validation and can be used.
    Available,
    /// The object failed validation; `status.message` says why.
    Unavailable,
}

/// A name-value pair of a parameter declared in an ActionSet's `parametersSchema`.
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ParameterPair {
    /// The name of the parameter.
    pub name: String,
    /// The value of the parameter, always a string; it is converted to the declared type.
    pub value: String,
}

/// An encryption algorithm for backup data (datasafed's AES stream ciphers).
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[schemars(transform = crate::schema::drop_description)]
pub enum EncryptionAlgorithm {
    /// AES with a 128-bit key in CFB mode.
    #[serde(rename = "AES-128-CFB")]
    Aes128Cfb,
    /// AES with a 192-bit key in CFB mode.
    #[serde(rename = "AES-192-CFB")]
    Aes192Cfb,
    /// AES with a 256-bit key in CFB mode (the default).
    #[serde(rename = "AES-256-CFB")]
    Aes256Cfb,
}

/// The parameters for encrypting backup data. Encryption is disabled when the field is not set.
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct EncryptionConfig {
    /// The encryption algorithm: `AES-128-CFB`, `AES-192-CFB` or `AES-256-CFB` (default).
    #[schemars(extend("default" = "AES-256-CFB"))]
    pub algorithm: EncryptionAlgorithm,
    /// Selects the key of a secret in the current namespace; its value is the encryption key.
    pub pass_phrase_secret_key_ref: SecretKeySelector,
}

/// The time range of backed-up data; for PITR, the time range of recoverable data.
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct BackupTimeRange {
    /// The time zone, only as a zone offset, documented range "-12:59 ~ +13:00" (e.g. `+08:00`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = TIME_ZONE_PATTERN))]
    pub time_zone: Option<String>,
    /// The start time of the backed-up data (UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<Time>,
    /// The end time of the backed-up data (UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<Time>,
}

/// The connection credential to connect to the target database cluster.
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionCredential {
    /// The Secret that contains the connection credential.
    #[schemars(regex(pattern = NAME_PATTERN))]
    pub secret_name: String,
    /// The key of the user name in the secret (default `username`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "username"))]
    pub username_key: Option<String>,
    /// The key of the password in the secret (default `password`). The password is saved,
    /// encrypted with `DP_ENCRYPTION_KEY`, in the backup annotation for full backups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "password"))]
    pub password_key: Option<String>,
    /// The key of the host in the secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_key: Option<String>,
    /// The key of the port in the secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_key: Option<String>,
}
