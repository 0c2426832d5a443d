//! Parses repository URLs (`file://`, `memory://`, `s3://`, `gs://`, `az://`) into a
//! [`StorageConfig`] (docs/FORMAT.md §2.1).

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::{
    AzureConfig, BackendConfig, GcsConfig, S3Config, Secret, StorageConfig, normalize_prefix,
    parse_bool, parse_size,
};
use crate::{Error, Result};

/// Parses a repository URL. A bare absolute path is a local directory.
///
/// Query parameters: s3 `endpoint`, `region`, `path_style`, `allow_http`, `insecure`,
/// `access_key_id`, `secret_access_key`, `session_token`, `provider`; gs `service_account`;
/// az `account`, `key`, `endpoint`, `use_emulator`; all `part_size`. Credentials missing from
/// the URL are read from the usual environment variables (`AWS_ACCESS_KEY_ID`, …) by the
/// caller through [`StorageConfig`] fields left empty with `env_auth`.
pub fn parse_storage_url(text: &str) -> Result<StorageConfig> {
    if text.starts_with('/') {
        return Ok(StorageConfig::local(text));
    }
    let url = url::Url::parse(text).map_err(|e| {
        Error::invalid(format!("repository URL {text:?} is not a URL")).with_source(e)
    })?;
    let query: BTreeMap<String, String> = url.query_pairs().into_owned().collect();
    let known: &[&str] = match url.scheme() {
        "s3" => &[
            "endpoint",
            "region",
            "path_style",
            "allow_http",
            "insecure",
            "access_key_id",
            "secret_access_key",
            "session_token",
            "provider",
            "part_size",
        ],
        "gs" | "gcs" => &["service_account", "part_size"],
        "az" | "azure" => &["account", "key", "endpoint", "use_emulator", "part_size"],
        _ => &["part_size"],
    };
    if let Some(unknown) = query.keys().find(|k| !known.contains(&k.as_str())) {
        return Err(Error::invalid(format!(
            "repository URL parameter {unknown:?} is not known for {}:// (known: {})",
            url.scheme(),
            known.join(", ")
        )));
    }
    let q = |k: &str| query.get(k).map(String::as_str).unwrap_or("");
    let part_size = match q("part_size") {
        "" => None,
        v => Some(parse_size(v).map_err(|e| e.context("repository URL part_size"))?),
    };
    let bucket = url.host_str().unwrap_or("").to_string();
    let prefix = normalize_prefix(url.path());
    let need_bucket = || {
        if bucket.is_empty() {
            Err(Error::invalid(format!(
                "repository URL {text:?} has no bucket or container"
            )))
        } else {
            Ok(())
        }
    };
    let backend = match url.scheme() {
        "file" => {
            let path = url.to_file_path().map_err(|()| {
                Error::invalid(format!(
                    "repository URL {text:?} is not an absolute file path"
                ))
            })?;
            BackendConfig::Local { root: path }
        }
        "memory" => BackendConfig::Memory,
        "s3" => {
            need_bucket()?;
            let endpoint = match q("endpoint") {
                "" => None,
                e => Some(e.trim_end_matches('/').to_string()),
            };
            let allow_http = match query.get("allow_http") {
                Some(v) => parse_bool("allow_http", v)?,
                None => endpoint
                    .as_deref()
                    .is_some_and(|e| e.starts_with("http://")),
            };
            let path_style = match query.get("path_style") {
                Some(v) => parse_bool("path_style", v)?,
                None => endpoint.is_some(),
            };
            let access_key_id = q("access_key_id").to_string();
            BackendConfig::S3(S3Config {
                provider: match q("provider") {
                    "" => "Other".to_string(),
                    p => p.to_string(),
                },
                bucket,
                prefix,
                region: match q("region") {
                    "" => "us-east-1".to_string(),
                    r => r.to_string(),
                },
                endpoint,
                env_auth: access_key_id.is_empty(),
                access_key_id,
                secret_access_key: Secret::new(q("secret_access_key")),
                session_token: Secret::new(q("session_token")),
                path_style,
                allow_http,
                insecure: parse_bool("insecure", q("insecure"))?,
            })
        }
        "gs" | "gcs" => {
            need_bucket()?;
            BackendConfig::Gcs(GcsConfig {
                bucket,
                prefix,
                service_account_path: match q("service_account") {
                    "" => None,
                    p => Some(PathBuf::from(p)),
                },
                service_account_key: Secret::default(),
            })
        }
        "az" | "azure" => {
            need_bucket()?;
            let endpoint = match q("endpoint") {
                "" => None,
                e => Some(e.trim_end_matches('/').to_string()),
            };
            BackendConfig::Azure(AzureConfig {
                account: q("account").to_string(),
                key: Secret::new(q("key")),
                container: bucket,
                prefix,
                allow_http: endpoint
                    .as_deref()
                    .is_some_and(|e| e.starts_with("http://")),
                endpoint,
                use_emulator: parse_bool("use_emulator", q("use_emulator"))?,
            })
        }
        other => {
            return Err(Error::unsupported(format!(
                "repository URL scheme {other:?} is not supported (supported: file, memory, s3, gs, az)"
            )));
        }
    };
    Ok(StorageConfig { backend, part_size })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn s3_url_with_local_endpoint_is_path_style_http() {
        let config = parse_storage_url(
            "s3://bucket/some/prefix?endpoint=http://127.0.0.1:8333&region=r1&access_key_id=a&secret_access_key=s%2Fx",
        )
        .expect("parses");
        let BackendConfig::S3(s3) = config.backend else {
            panic!("not s3")
        };
        assert_eq!(s3.bucket, "bucket");
        assert_eq!(s3.prefix, "some/prefix");
        assert_eq!(s3.region, "r1");
        assert!(s3.path_style && s3.allow_http);
        assert_eq!(s3.secret_access_key.expose(), "s/x");
    }

    #[test]
    fn file_and_bare_paths_are_local() {
        assert_eq!(
            parse_storage_url("file:///var/backups")
                .expect("parses")
                .backend,
            BackendConfig::Local {
                root: PathBuf::from("/var/backups")
            }
        );
        assert_eq!(
            parse_storage_url("/var/backups").expect("parses").backend,
            BackendConfig::Local {
                root: PathBuf::from("/var/backups")
            }
        );
        assert_eq!(
            parse_storage_url("memory://").expect("parses").backend,
            BackendConfig::Memory
        );
    }

    #[test]
    fn gs_and_az_urls_parse() {
        let BackendConfig::Gcs(gcs) = parse_storage_url("gs://bk/p?service_account=/sa.json")
            .expect("parses")
            .backend
        else {
            panic!("not gcs")
        };
        assert_eq!(gcs.bucket, "bk");
        assert_eq!(gcs.service_account_path, Some(PathBuf::from("/sa.json")));
        let BackendConfig::Azure(az) = parse_storage_url("az://cont/p?account=acct&key=k")
            .expect("parses")
            .backend
        else {
            panic!("not azure")
        };
        assert_eq!(
            (az.container.as_str(), az.account.as_str()),
            ("cont", "acct")
        );
    }

    #[test]
    fn unknown_scheme_and_parameter_are_named() {
        let err = parse_storage_url("ftp://host/x").expect_err("unsupported");
        assert!(err.to_string().contains("\"ftp\""), "{err}");
        let err = parse_storage_url("s3://b/x?endpiont=x").expect_err("typo");
        assert!(err.to_string().contains("endpiont"), "{err}");
        let err = parse_storage_url("s3:///x").expect_err("no bucket");
        assert!(err.to_string().contains("bucket"), "{err}");
    }

    proptest! {
        #[test]
        fn arbitrary_text_never_panics(text in "[a-z0-9:/?&=%._-]{0,40}") {
            let _ = parse_storage_url(&text);
        }
    }
}
