//! Turns a [`StorageConfig`] into an `object_store` client.

use std::sync::Arc;
use std::time::Duration;

use object_store::aws::AmazonS3Builder;
use object_store::azure::MicrosoftAzureBuilder;
use object_store::gcp::{GcpCredential, GoogleCloudStorageBuilder};
use object_store::memory::InMemory;
use object_store::{
    BackoffConfig, ClientOptions, ObjectStore, RetryConfig, StaticCredentialProvider,
};

use super::gcs::GcsStore;
use super::local::{ConfinedLocal, LocalRoot};
use crate::config::{BackendConfig, StorageConfig};
use crate::{Error, Result};

/// What [`build_object_store`] produced.
pub(crate) struct Built {
    pub store: Arc<dyn ObjectStore>,
    /// The key prefix inside the bucket or container.
    pub prefix: String,
    /// For local stores, the confined directory (for `mkdir`/`rmdir`).
    pub local_root: Option<Arc<LocalRoot>>,
}

/// Installs ring as the process-wide rustls provider when nobody did yet: object_store's
/// reqwest client is built without a provider (we use ring only, never aws-lc).
pub(crate) fn ensure_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Losing the race to another thread installing one is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

fn client_options(allow_http: bool, insecure: bool) -> ClientOptions {
    ClientOptions::new()
        .with_allow_http(allow_http)
        .with_allow_invalid_certificates(insecure)
        .with_connect_timeout(Duration::from_secs(10))
        .with_timeout(Duration::from_secs(300))
        .with_pool_max_idle_per_host(64)
}

/// The HTTP layer's own per-request retries (first of the two retry layers).
fn http_retry() -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(15),
            base: 2.0,
        },
        max_retries: 3,
        retry_timeout: Duration::from_secs(180),
    }
}

/// Whether requests to this S3 endpoint travel over TLS (no endpoint: AWS, always HTTPS).
/// There the SigV4 signature leaves the body out (`UNSIGNED-PAYLOAD`, as restic's and
/// rustic's clients do over HTTPS): TLS already protects it in transit, and hashing every pack
/// with SHA-256 cost 0.8 CPU s of a 2 GiB backup (1.2 GB of packs). Over plain HTTP the body's
/// hash stays in the signature, its only protection on the wire.
fn payload_protected_by_tls(endpoint: Option<&str>) -> bool {
    endpoint.is_none_or(|e| e.trim_start().to_ascii_lowercase().starts_with("https://"))
}

pub(crate) fn build_object_store(config: &StorageConfig) -> Result<Built> {
    let built = match &config.backend {
        BackendConfig::Local { root } => {
            let meta = std::fs::metadata(root).map_err(|e| {
                Error::io(
                    format!("opening local storage directory {}", root.display()),
                    e,
                )
            })?;
            if !meta.is_dir() {
                return Err(Error::invalid(format!(
                    "local storage root {} is not a directory",
                    root.display()
                )));
            }
            // Every access below the root is confined to it: no symbolic link is followed.
            let local = Arc::new(LocalRoot::new(root.clone()));
            Built {
                store: Arc::new(ConfinedLocal::new(Arc::clone(&local))),
                prefix: String::new(),
                local_root: Some(local),
            }
        }
        BackendConfig::Memory => Built {
            store: Arc::new(InMemory::new()),
            prefix: String::new(),
            local_root: None,
        },
        BackendConfig::S3(s3) => {
            ensure_crypto_provider();
            let mut builder = if s3.env_auth {
                AmazonS3Builder::from_env()
            } else {
                AmazonS3Builder::new()
            };
            builder = builder
                .with_bucket_name(&s3.bucket)
                .with_region(&s3.region)
                .with_client_options(client_options(s3.allow_http, s3.insecure))
                .with_retry(http_retry())
                .with_virtual_hosted_style_request(!s3.path_style)
                .with_unsigned_payload(payload_protected_by_tls(s3.endpoint.as_deref()));
            if let Some(endpoint) = &s3.endpoint {
                let endpoint = if s3.path_style {
                    endpoint.clone()
                } else {
                    virtual_hosted_endpoint(endpoint, &s3.bucket)
                };
                builder = builder.with_endpoint(endpoint);
            }
            if !s3.access_key_id.is_empty() {
                builder = builder
                    .with_access_key_id(&s3.access_key_id)
                    .with_secret_access_key(s3.secret_access_key.expose());
                if !s3.session_token.is_empty() {
                    builder = builder.with_token(s3.session_token.expose());
                }
            } else if !s3.env_auth {
                builder = builder.with_skip_signature(true);
            }
            let store = builder.build().map_err(|e| {
                Error::invalid(format!("configuring s3 bucket {:?}", s3.bucket)).with_source(e)
            })?;
            Built {
                store: Arc::new(store),
                prefix: s3.prefix.clone(),
                local_root: None,
            }
        }
        BackendConfig::Gcs(gcs) => {
            ensure_crypto_provider();
            let mut builder = if gcs.service_account_path.is_none()
                && gcs.service_account_key.is_empty()
                && !gcs.anonymous
            {
                GoogleCloudStorageBuilder::from_env()
            } else {
                GoogleCloudStorageBuilder::new()
            };
            builder = builder
                .with_bucket_name(&gcs.bucket)
                .with_client_options(client_options(gcs.allow_http, false))
                .with_retry(http_retry())
                .with_skip_signature(gcs.anonymous);
            if gcs.anonymous {
                // object_store 0.14 honours skip_signature on reads and listings but asks the
                // credential provider on writes anyway (the instance metadata server when none
                // is given): an empty token keeps every request unsigned-equivalent.
                builder = builder.with_credentials(Arc::new(StaticCredentialProvider::new(
                    GcpCredential {
                        bearer: String::new(),
                    },
                )));
            }
            if let Some(endpoint) = &gcs.endpoint {
                builder = builder.with_base_url(endpoint);
            }
            if let Some(path) = &gcs.service_account_path {
                builder = builder.with_service_account_path(path.to_string_lossy());
            }
            if !gcs.service_account_key.is_empty() {
                builder = builder.with_service_account_key(gcs.service_account_key.expose());
            }
            let reads = builder.build().map_err(|e| {
                Error::invalid(format!("configuring gcs bucket {:?}", gcs.bucket)).with_source(e)
            })?;
            // Writes go through the JSON API (see gcs.rs), signed by the same credentials.
            let store = GcsStore::new(
                reads,
                &gcs.bucket,
                gcs.endpoint.as_deref(),
                gcs.anonymous,
                gcs.allow_http,
            )
            .map_err(|e| {
                Error::invalid(format!("configuring gcs bucket {:?}", gcs.bucket)).with_source(e)
            })?;
            Built {
                store: Arc::new(store),
                prefix: gcs.prefix.clone(),
                local_root: None,
            }
        }
        BackendConfig::Azure(az) => {
            ensure_crypto_provider();
            let mut builder = MicrosoftAzureBuilder::new()
                .with_container_name(&az.container)
                .with_client_options(client_options(az.allow_http, false))
                .with_retry(http_retry())
                .with_allow_http(az.allow_http)
                .with_use_emulator(az.use_emulator);
            if !az.account.is_empty() {
                builder = builder.with_account(&az.account);
            }
            if !az.key.is_empty() {
                builder = builder.with_access_key(az.key.expose());
            }
            if let Some(endpoint) = &az.endpoint {
                builder = builder.with_endpoint(endpoint.clone());
            }
            let store = builder.build().map_err(|e| {
                Error::invalid(format!("configuring azure container {:?}", az.container))
                    .with_source(e)
            })?;
            Built {
                store: Arc::new(store),
                prefix: az.prefix.clone(),
                local_root: None,
            }
        }
    };
    Ok(built)
}

/// `https://oss.example.com` + `bk` → `https://bk.oss.example.com` (unless it already is).
fn virtual_hosted_endpoint(endpoint: &str, bucket: &str) -> String {
    match endpoint.split_once("://") {
        Some((scheme, host)) if !host.starts_with(&format!("{bucket}.")) => {
            format!("{scheme}://{bucket}.{host}")
        }
        _ => endpoint.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn virtual_hosted_endpoints_get_the_bucket_in_front() {
        assert_eq!(
            virtual_hosted_endpoint("https://oss-cn.aliyuncs.com", "bk"),
            "https://bk.oss-cn.aliyuncs.com"
        );
        assert_eq!(
            virtual_hosted_endpoint("https://bk.oss-cn.aliyuncs.com", "bk"),
            "https://bk.oss-cn.aliyuncs.com"
        );
    }

    #[test]
    fn only_bodies_sent_over_tls_leave_the_signature() {
        assert!(payload_protected_by_tls(None));
        assert!(payload_protected_by_tls(Some("https://s3.example.com")));
        assert!(payload_protected_by_tls(Some("HTTPS://minio.local:9000")));
        assert!(!payload_protected_by_tls(Some("http://127.0.0.1:8333")));
        assert!(!payload_protected_by_tls(Some("minio.local:9000")));
    }

    #[test]
    fn a_missing_local_root_is_an_error_naming_it() {
        let config = StorageConfig::local("/definitely/not/here/cairn");
        let err = build_object_store(&config).err().map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("opening local storage directory /definitely/not/here/cairn")
        );
    }
}
