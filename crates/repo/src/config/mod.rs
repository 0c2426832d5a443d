//! Where a repository lives: one [`StorageConfig`] built from a datasafed `[storage]` file or a
//! URL (docs/FORMAT.md §2.1).

mod datasafed;
mod size;
mod url;

use std::fmt;
use std::path::PathBuf;

pub use datasafed::{datasafed_config_value, parse_datasafed_config};
pub use size::parse_size;
pub use url::{is_credential_name, parse_storage_url, redact_url};

/// A secret string: `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the secret is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() { "\"\"" } else { "\"***\"" })
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() { "" } else { "***" })
    }
}

/// Where a repository lives and how to transfer to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageConfig {
    /// The store and its credentials.
    pub backend: BackendConfig,
    /// Multipart part size in bytes (`chunk_size` in datasafed configs); `None`: 16 MiB.
    pub part_size: Option<u64>,
}

/// The kind of store, with what it needs to connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackendConfig {
    /// A directory on the local file system.
    Local {
        /// The directory (must exist).
        root: PathBuf,
    },
    /// An in-memory store (tests, `memory://`).
    Memory,
    /// Amazon S3 or an S3-compatible store.
    S3(S3Config),
    /// Google Cloud Storage (native API).
    Gcs(GcsConfig),
    /// Azure Blob Storage.
    Azure(AzureConfig),
}

/// S3 and S3-compatible stores (MinIO, SeaweedFS, Ceph, OSS, COS, OBS, GCS interop, Wasabi).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct S3Config {
    /// rclone's `provider` (AWS, Minio, Alibaba, …); informational except for addressing style.
    pub provider: String,
    /// The bucket.
    pub bucket: String,
    /// The object prefix inside the bucket (no leading or trailing `/`).
    pub prefix: String,
    /// The region; `us-east-1` when empty.
    pub region: String,
    /// `https://host[:port]`; `None` means AWS.
    pub endpoint: Option<String>,
    /// Access key id; empty with `env_auth` or anonymous access.
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: Secret,
    /// Session token for temporary credentials.
    pub session_token: Secret,
    /// Path-style addressing (`endpoint/bucket/key`) instead of virtual-hosted
    /// (`bucket.endpoint/key`).
    pub path_style: bool,
    /// Allow plain HTTP endpoints.
    pub allow_http: bool,
    /// Skip TLS certificate verification (`no_check_certificate`).
    pub insecure: bool,
    /// Take credentials from the environment (`AWS_*` variables, instance metadata).
    pub env_auth: bool,
}

/// Google Cloud Storage (native API).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GcsConfig {
    /// The bucket.
    pub bucket: String,
    /// The object prefix inside the bucket.
    pub prefix: String,
    /// A service-account JSON file.
    pub service_account_path: Option<PathBuf>,
    /// Service-account JSON given inline.
    pub service_account_key: Secret,
    /// The service's base URL (rclone's `endpoint`: an emulator, a private endpoint);
    /// `None`: `https://storage.googleapis.com`.
    pub endpoint: Option<String>,
    /// Unsigned requests (rclone's `anonymous`: public buckets, emulators).
    pub anonymous: bool,
    /// Allow a plain HTTP endpoint.
    pub allow_http: bool,
}

/// Azure Blob Storage.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AzureConfig {
    /// Storage account name.
    pub account: String,
    /// Account access key.
    pub key: Secret,
    /// The container.
    pub container: String,
    /// The object prefix inside the container.
    pub prefix: String,
    /// A custom endpoint (Azurite, sovereign clouds).
    pub endpoint: Option<String>,
    /// Use the local Azurite emulator.
    pub use_emulator: bool,
    /// Allow plain HTTP endpoints.
    pub allow_http: bool,
}

impl StorageConfig {
    /// A local directory.
    pub fn local(root: impl Into<PathBuf>) -> Self {
        StorageConfig {
            backend: BackendConfig::Local { root: root.into() },
            part_size: None,
        }
    }

    /// A fresh in-memory store.
    pub fn memory() -> Self {
        StorageConfig {
            backend: BackendConfig::Memory,
            part_size: None,
        }
    }

    /// The storage type name as datasafed configs spell it.
    pub fn type_name(&self) -> &'static str {
        match self.backend {
            BackendConfig::Local { .. } => "local",
            BackendConfig::Memory => "memory",
            BackendConfig::S3(_) => "s3",
            BackendConfig::Gcs(_) => "gcs",
            BackendConfig::Azure(_) => "azureblob",
        }
    }
}

/// Prints the configuration as datasafed `[storage]` text with every secret redacted
/// (what `datasafed getconf` shows).
impl fmt::Display for StorageConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "[storage]")?;
        writeln!(f, "type = {}", self.type_name())?;
        match &self.backend {
            BackendConfig::Local { root } => writeln!(f, "root = {}", root.display())?,
            BackendConfig::Memory => {}
            BackendConfig::S3(s3) => {
                writeln!(f, "provider = {}", s3.provider)?;
                writeln!(f, "env_auth = {}", s3.env_auth)?;
                writeln!(f, "access_key_id = {}", s3.access_key_id)?;
                writeln!(f, "secret_access_key = {}", s3.secret_access_key)?;
                if !s3.session_token.is_empty() {
                    writeln!(f, "session_token = {}", s3.session_token)?;
                }
                writeln!(f, "region = {}", s3.region)?;
                writeln!(f, "endpoint = {}", s3.endpoint.as_deref().unwrap_or(""))?;
                writeln!(f, "root = {}", join_root(&s3.bucket, &s3.prefix))?;
                writeln!(f, "force_path_style = {}", s3.path_style)?;
                writeln!(f, "no_check_certificate = {}", s3.insecure)?;
            }
            BackendConfig::Gcs(gcs) => {
                if let Some(path) = &gcs.service_account_path {
                    writeln!(f, "service_account_file = {}", path.display())?;
                }
                if !gcs.service_account_key.is_empty() {
                    writeln!(
                        f,
                        "service_account_credentials = {}",
                        gcs.service_account_key
                    )?;
                }
                if let Some(endpoint) = &gcs.endpoint {
                    writeln!(f, "endpoint = {endpoint}")?;
                }
                if gcs.anonymous {
                    writeln!(f, "anonymous = true")?;
                }
                writeln!(f, "root = {}", join_root(&gcs.bucket, &gcs.prefix))?;
            }
            BackendConfig::Azure(az) => {
                writeln!(f, "account = {}", az.account)?;
                writeln!(f, "key = {}", az.key)?;
                if let Some(endpoint) = &az.endpoint {
                    writeln!(f, "endpoint = {endpoint}")?;
                }
                writeln!(f, "root = {}", join_root(&az.container, &az.prefix))?;
            }
        }
        if let Some(part) = self.part_size {
            writeln!(f, "chunk_size = {part}")?;
        }
        Ok(())
    }
}

fn join_root(bucket: &str, prefix: &str) -> String {
    if prefix.is_empty() {
        bucket.to_string()
    } else {
        format!("{bucket}/{prefix}")
    }
}

/// Splits `bucket/some/prefix` into the bucket and a normalised prefix.
pub(crate) fn split_root(root: &str) -> (String, String) {
    let trimmed = root.trim().trim_matches('/');
    match trimmed.split_once('/') {
        Some((bucket, prefix)) => (bucket.to_string(), normalize_prefix(prefix)),
        None => (trimmed.to_string(), String::new()),
    }
}

/// Drops empty segments and surrounding slashes: `"/a//b/"` → `"a/b"`.
pub(crate) fn normalize_prefix(prefix: &str) -> String {
    prefix
        .split('/')
        .filter(|s| !s.is_empty() && *s != ".")
        .collect::<Vec<_>>()
        .join("/")
}

/// Parses a datasafed/rclone boolean: `true/false/1/0/yes/no/on/off`, empty = false.
pub(crate) fn parse_bool(key: &str, value: &str) -> crate::Result<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "" | "false" | "0" | "no" | "off" => Ok(false),
        "true" | "1" | "yes" | "on" => Ok(true),
        other => Err(crate::Error::invalid(format!(
            "{key} = {other:?} is not a boolean (expected true or false)"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_never_shows_secrets() {
        let config = StorageConfig {
            backend: BackendConfig::S3(S3Config {
                bucket: "b".into(),
                access_key_id: "AKIA".into(),
                secret_access_key: Secret::new("very-secret"),
                session_token: Secret::new("token-secret"),
                ..Default::default()
            }),
            part_size: None,
        };
        let text = format!("{config} {config:?}");
        assert!(!text.contains("very-secret"), "{text}");
        assert!(!text.contains("token-secret"), "{text}");
        assert!(text.contains("AKIA"));
    }

    #[test]
    fn split_root_separates_bucket_and_prefix() {
        assert_eq!(split_root("bk"), ("bk".into(), "".into()));
        assert_eq!(split_root("/bk/a//b/"), ("bk".into(), "a/b".into()));
    }
}
