//! Parses the datasafed config text a StorageProvider's `datasafedConfigTemplate` renders to.
//!
//! The format is rclone's INI subset (ARCHITECTURE.md §K5.6): one `[storage]` section of
//! `key = value` lines. Hand-written because it is twenty lines and the exact rules (values
//! verbatim, unknown keys ignored, `.need_obscure` rejected) matter more than INI generality.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::{
    AzureConfig, BackendConfig, GcsConfig, S3Config, Secret, StorageConfig, parse_bool, parse_size,
    split_root,
};
use crate::{Error, Result};

/// Parses datasafed config text into a [`StorageConfig`].
pub fn parse_datasafed_config(text: &str) -> Result<StorageConfig> {
    let keys = parse_storage_section(text)?;
    let get = |k: &str| keys.get(k).map(String::as_str).unwrap_or("");
    if let Some(key) = keys.keys().find(|k| k.ends_with(".need_obscure")) {
        return Err(Error::unsupported(format!(
            "[storage] key {key:?} needs rclone obscuring, which only the unsupported ftp type uses"
        )));
    }
    let part_size = match get("chunk_size") {
        "" => None,
        value => Some(parse_size(value).map_err(|e| e.context("[storage] chunk_size"))?),
    };
    let type_name = get("type").trim().to_ascii_lowercase();
    let backend = match type_name.as_str() {
        "s3" => BackendConfig::S3(s3(&keys)?),
        "gcs" | "google cloud storage" | "googlecloudstorage" => BackendConfig::Gcs(gcs(&keys)?),
        "azureblob" => BackendConfig::Azure(azure(&keys)?),
        "local" => {
            let root = get("root");
            if root.is_empty() {
                return Err(Error::invalid("[storage] type = local needs root"));
            }
            BackendConfig::Local {
                root: PathBuf::from(root),
            }
        }
        "memory" => BackendConfig::Memory,
        "" => return Err(Error::invalid("[storage] has no type")),
        other => {
            return Err(Error::unsupported(format!(
                "unsupported storage type {other:?} in [storage] (supported: s3, gcs, azureblob, local, memory)"
            )));
        }
    };
    Ok(StorageConfig { backend, part_size })
}

/// The `key = value` pairs of the `[storage]` section; keys lower-cased.
fn parse_storage_section(text: &str) -> Result<BTreeMap<String, String>> {
    parse_sections(text)?
        .remove("storage")
        .ok_or_else(|| Error::invalid("datasafed config has no [storage] section"))
}

/// The value of `key` in `[section]` of a datasafed config (`datasafed getconf section.key`);
/// section and key names are matched without regard to case, as the parser lower-cases them.
pub fn datasafed_config_value(text: &str, section: &str, key: &str) -> Result<Option<String>> {
    Ok(parse_sections(text)?
        .remove(&section.trim().to_ascii_lowercase())
        .and_then(|mut keys| keys.remove(&key.trim().to_ascii_lowercase())))
}

/// Every section's `key = value` pairs; section and key names lower-cased.
fn parse_sections(text: &str) -> Result<BTreeMap<String, BTreeMap<String, String>>> {
    let mut sections: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut section: Option<String> = None;
    for (number, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[') {
            // The line itself is never quoted: the config holds credentials.
            let name = name.strip_suffix(']').ok_or_else(|| {
                Error::invalid(format!(
                    "datasafed config line {} starts with [ but is not a [section] header",
                    number + 1
                ))
            })?;
            let name = name.trim().to_ascii_lowercase();
            sections.entry(name.clone()).or_default();
            section = Some(name);
            continue;
        }
        let (key, value) = line.split_once('=').ok_or_else(|| {
            Error::invalid(format!(
                "datasafed config line {} is not key = value (it has no =; the line is not shown, as it may hold a credential)",
                number + 1
            ))
        })?;
        if let Some(name) = &section {
            sections
                .entry(name.clone())
                .or_default()
                .insert(key.trim().to_ascii_lowercase(), value.trim().to_string());
        }
    }
    Ok(sections)
}

/// Providers that need virtual-hosted addressing (`bucket.endpoint`); the others, like
/// rclone's default, use path style.
const VIRTUAL_HOSTED_PROVIDERS: &[&str] = &["alibaba", "tencentcos", "huaweiobs", "qiniu"];

fn s3(keys: &BTreeMap<String, String>) -> Result<S3Config> {
    let get = |k: &str| keys.get(k).map(String::as_str).unwrap_or("");
    let (bucket, prefix) = split_root(get("root"));
    if bucket.is_empty() {
        return Err(Error::invalid(
            "[storage] type = s3 needs root = <bucket> (the bucket is empty)",
        ));
    }
    let provider = get("provider").to_string();
    let endpoint = match get("endpoint") {
        "" => None,
        e if e.contains("://") => Some(e.trim_end_matches('/').to_string()),
        e => Some(format!("https://{}", e.trim_end_matches('/'))),
    };
    let allow_http = endpoint
        .as_deref()
        .is_some_and(|e| e.starts_with("http://"));
    let virtual_hosted_default = VIRTUAL_HOSTED_PROVIDERS
        .iter()
        .any(|p| provider.eq_ignore_ascii_case(p))
        || endpoint.is_none();
    let path_style = match keys.get("force_path_style") {
        Some(v) => parse_bool("force_path_style", v)?,
        None => !virtual_hosted_default,
    };
    let region = match get("region") {
        "" => "us-east-1".to_string(),
        r => r.to_string(),
    };
    Ok(S3Config {
        provider,
        bucket,
        prefix,
        region,
        endpoint,
        access_key_id: get("access_key_id").to_string(),
        secret_access_key: Secret::new(get("secret_access_key")),
        session_token: Secret::new(get("session_token")),
        path_style,
        allow_http,
        insecure: parse_bool("no_check_certificate", get("no_check_certificate"))?,
        env_auth: parse_bool("env_auth", get("env_auth"))?,
    })
}

fn gcs(keys: &BTreeMap<String, String>) -> Result<GcsConfig> {
    let get = |k: &str| keys.get(k).map(String::as_str).unwrap_or("");
    let root = match get("bucket_name") {
        "" => get("root"),
        bucket => bucket,
    };
    let (bucket, prefix) = split_root(root);
    if bucket.is_empty() {
        return Err(Error::invalid(
            "[storage] type = gcs needs root = <bucket> (the bucket is empty)",
        ));
    }
    let endpoint = gcs_endpoint(get("endpoint"));
    Ok(GcsConfig {
        allow_http: endpoint
            .as_deref()
            .is_some_and(|e| e.starts_with("http://")),
        endpoint,
        anonymous: parse_bool("anonymous", get("anonymous"))?,
        bucket,
        prefix,
        service_account_path: match get("service_account_file") {
            "" => None,
            p => Some(PathBuf::from(p)),
        },
        service_account_key: Secret::new(get("service_account_credentials")),
    })
}

/// rclone's GCS `endpoint` is the JSON API's base (`https://host/storage/v1/`); the store's
/// client wants the host root it puts `/storage/v1` and `/<bucket>/<object>` under. A host
/// without a scheme is HTTPS.
pub(crate) fn gcs_endpoint(value: &str) -> Option<String> {
    let value = value.trim().trim_end_matches('/');
    if value.is_empty() {
        return None;
    }
    let value = value
        .strip_suffix("/storage/v1")
        .unwrap_or(value)
        .trim_end_matches('/');
    Some(if value.contains("://") {
        value.to_string()
    } else {
        format!("https://{value}")
    })
}

fn azure(keys: &BTreeMap<String, String>) -> Result<AzureConfig> {
    let get = |k: &str| keys.get(k).map(String::as_str).unwrap_or("");
    let (container, prefix) = split_root(get("root"));
    if container.is_empty() {
        return Err(Error::invalid(
            "[storage] type = azureblob needs root = <container> (the container is empty)",
        ));
    }
    let endpoint = match get("endpoint") {
        "" => None,
        e if e.contains("://") => Some(e.trim_end_matches('/').to_string()),
        e => Some(format!("https://{}", e.trim_end_matches('/'))),
    };
    let use_emulator = parse_bool("use_emulator", get("use_emulator"))?;
    if get("account").is_empty() && !use_emulator {
        return Err(Error::invalid(
            "[storage] type = azureblob needs account (the account is empty)",
        ));
    }
    Ok(AzureConfig {
        account: get("account").to_string(),
        key: Secret::new(get("key")),
        container,
        prefix,
        allow_http: endpoint
            .as_deref()
            .is_some_and(|e| e.starts_with("http://")),
        endpoint,
        use_emulator,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // What kb-0.9_helm_minio_minio.yaml renders to.
    const MINIO: &str = "[storage]\ntype = s3\nprovider = Minio\nenv_auth = false\n\
        access_key_id = AK\nsecret_access_key = SK\nregion = \nendpoint = http://minio.kb:9000\n\
        root = backups\nno_check_certificate = \nchunk_size = 50Mi\n";

    #[test]
    fn minio_template_output_becomes_path_style_http_s3() {
        let config = parse_datasafed_config(MINIO).expect("parses");
        let BackendConfig::S3(s3) = &config.backend else {
            panic!("not s3: {config:?}")
        };
        assert_eq!(s3.bucket, "backups");
        assert_eq!(s3.endpoint.as_deref(), Some("http://minio.kb:9000"));
        assert!(s3.allow_http);
        assert!(s3.path_style);
        assert!(!s3.insecure);
        assert_eq!(s3.region, "us-east-1");
        assert_eq!(s3.secret_access_key.expose(), "SK");
        assert_eq!(config.part_size, Some(50 << 20));
    }

    #[test]
    fn aws_without_endpoint_uses_virtual_hosted_addressing() {
        let text = "[storage]\ntype = s3\nprovider = AWS\nregion = eu-west-1\nendpoint = \nroot = bk/pre/fix\n";
        let config = parse_datasafed_config(text).expect("parses");
        let BackendConfig::S3(s3) = config.backend else {
            panic!("not s3")
        };
        assert_eq!(s3.endpoint, None);
        assert!(!s3.path_style);
        assert_eq!(s3.prefix, "pre/fix");
        assert_eq!(s3.region, "eu-west-1");
    }

    #[test]
    fn alibaba_defaults_to_virtual_hosted_and_https() {
        let text = "[storage]\ntype = s3\nprovider = Alibaba\nendpoint = oss-cn-hangzhou.aliyuncs.com\nroot = bk\n";
        let BackendConfig::S3(s3) = parse_datasafed_config(text).expect("parses").backend else {
            panic!("not s3")
        };
        assert!(!s3.path_style);
        assert_eq!(
            s3.endpoint.as_deref(),
            Some("https://oss-cn-hangzhou.aliyuncs.com")
        );
    }

    #[test]
    fn gcs_interop_template_is_s3_with_google_endpoint() {
        let text = "[storage]\ntype = s3\nprovider = GCS\nenv_auth = false\naccess_key_id = a\n\
            secret_access_key = s\nendpoint = https://storage.googleapis.com\nregion = auto\n\
            root = bk\nno_check_certificate = false\nno_check_bucket = true\nchunk_size = 50Mi\n";
        let BackendConfig::S3(s3) = parse_datasafed_config(text).expect("parses").backend else {
            panic!("not s3")
        };
        assert_eq!(s3.provider, "GCS");
        assert!(s3.path_style);
    }

    #[test]
    fn native_gcs_takes_rclone_endpoint_and_anonymous() {
        let text = "[storage]\ntype = google cloud storage\nanonymous = true\n\
            endpoint = http://127.0.0.1:4443/storage/v1/\nroot = bk/pre\n";
        let BackendConfig::Gcs(gcs) = parse_datasafed_config(text).expect("parses").backend else {
            panic!("not gcs")
        };
        assert_eq!(gcs.endpoint.as_deref(), Some("http://127.0.0.1:4443"));
        assert!(gcs.anonymous && gcs.allow_http);
        assert_eq!((gcs.bucket.as_str(), gcs.prefix.as_str()), ("bk", "pre"));
        let text = "[storage]\ntype = gcs\nendpoint = storage.example.com\nroot = bk\n";
        let BackendConfig::Gcs(gcs) = parse_datasafed_config(text).expect("parses").backend else {
            panic!("not gcs")
        };
        assert_eq!(gcs.endpoint.as_deref(), Some("https://storage.example.com"));
        assert!(!gcs.anonymous && !gcs.allow_http);
    }

    #[test]
    fn azureblob_template_output_parses() {
        let text = "[storage]\ntype = azureblob\naccount = acct\nkey = k==\nroot = cont\n\
            no_check_container = \nchunk_size = 50Mi\n";
        let BackendConfig::Azure(az) = parse_datasafed_config(text).expect("parses").backend else {
            panic!("not azure")
        };
        assert_eq!(az.account, "acct");
        assert_eq!(az.container, "cont");
        assert_eq!(az.key.expose(), "k==");
    }

    #[test]
    fn ftp_is_a_clear_error_naming_the_type() {
        let text = "[storage]\ntype = ftp\nhost = h\nport = 21\nuser = u\npass = p\n";
        let err = parse_datasafed_config(text).expect_err("ftp unsupported");
        assert_eq!(err.kind(), crate::ErrorKind::Unsupported);
        assert!(err.to_string().contains("\"ftp\""), "{err}");
        let obscured = "[storage]\ntype = ftp\npass.need_obscure = p\n";
        let err = parse_datasafed_config(obscured).expect_err("ftp unsupported");
        assert!(err.to_string().contains("pass.need_obscure"), "{err}");
    }

    #[test]
    fn missing_section_bucket_and_type_are_named() {
        let err = parse_datasafed_config("type = s3\n").expect_err("no section");
        assert!(err.to_string().contains("[storage]"), "{err}");
        let err = parse_datasafed_config("[storage]\ntype = s3\nroot =\n").expect_err("no bucket");
        assert!(err.to_string().contains("bucket"), "{err}");
        let err = parse_datasafed_config("[storage]\nroot = x\n").expect_err("no type");
        assert!(err.to_string().contains("no type"), "{err}");
        let err = parse_datasafed_config(
            "[storage]\ntype = s3\nroot = b\nno_check_certificate = maybe\n",
        )
        .expect_err("bad bool");
        assert!(err.to_string().contains("no_check_certificate"), "{err}");
    }

    #[test]
    fn getconf_reads_any_section_and_key() {
        let text = "[storage]\ntype = s3\nRoot = bucket/x\n[other]\nk = v\n";
        let get = |s: &str, k: &str| datasafed_config_value(text, s, k).expect("parses");
        assert_eq!(get("storage", "type").as_deref(), Some("s3"));
        assert_eq!(get("storage", "root").as_deref(), Some("bucket/x"));
        assert_eq!(get("other", "k").as_deref(), Some("v"));
        assert_eq!(get("storage", "missing"), None);
        assert_eq!(get("nosuch", "type"), None);
    }

    #[test]
    fn comments_and_other_sections_are_ignored() {
        let text = "# comment\n[other]\ntype = ftp\n[storage]\n; c\ntype = local\nroot = /tmp\n";
        let config = parse_datasafed_config(text).expect("parses");
        assert_eq!(
            config.backend,
            BackendConfig::Local {
                root: PathBuf::from("/tmp")
            }
        );
    }

    #[test]
    fn malformed_lines_are_named_by_number_and_never_quoted() {
        for (text, expected) in [
            (
                "[storage]\ntype = s3\nsecret_access_key: S3CR3T\n",
                "datasafed config line 3 is not key = value",
            ),
            (
                "[storage]\n[S3CR3T\n",
                "datasafed config line 2 starts with [ but is not a [section] header",
            ),
        ] {
            let err = parse_datasafed_config(text).expect_err(text).to_string();
            assert!(err.contains(expected), "{err}");
            assert!(!err.contains("S3CR3T"), "{err}");
        }
    }

    proptest! {
        #[test]
        fn arbitrary_text_never_panics(text in "(\\[storage\\]\n)?([a-z_]{0,12} ?= ?[ -~]{0,20}\n){0,8}") {
            let _ = parse_datasafed_config(&text);
        }
    }
}
