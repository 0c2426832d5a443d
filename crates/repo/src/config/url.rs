//! Parses repository URLs (`file://`, `memory://`, `s3://`, `gs://`, `az://`) into a
//! [`StorageConfig`] (docs/FORMAT.md §2.1).

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::{
    AzureConfig, BackendConfig, GcsConfig, S3Config, Secret, StorageConfig, normalize_prefix,
    parse_bool, parse_size,
};
use crate::{Error, Result};

/// Whether a URL query parameter (or datasafed key) named `name` carries a credential: the
/// known ones (`secret_access_key`, `session_token`, az `key`, `service_account_credentials`,
/// …) and, for names this version does not know, any that mentions a secret, token, password,
/// credential or key other than the access key *id*.
pub fn is_credential_name(name: &str) -> bool {
    let name = name.trim().to_ascii_lowercase();
    if name == "access_key_id" {
        return false;
    }
    [
        "secret",
        "token",
        "password",
        "passwd",
        "credential",
        "key",
        "sas",
        "signature",
    ]
    .iter()
    .any(|word| name.contains(word))
}

/// `text` as it may appear in an error or a log line: the value of every query parameter that
/// carries a credential ([`is_credential_name`]) and any user information (`user:password@`)
/// replaced by `<redacted>`. Works on any text, so a URL that does not parse is redacted too;
/// parameter names are compared after percent-decoding, as the parser reads them.
pub fn redact_url(text: &str) -> String {
    let (before, query) = match text.split_once('?') {
        Some((before, query)) => (before, Some(query)),
        None => (text, None),
    };
    let mut out = redact_user_info(before);
    if let Some(query) = query {
        out.push('?');
        let pairs: Vec<String> = query
            .split('&')
            .map(|pair| {
                let Some((raw_name, raw_value)) = pair.split_once('=') else {
                    // A bare word may be a value typed without its name.
                    return if pair.is_empty() {
                        String::new()
                    } else {
                        "<redacted>".to_string()
                    };
                };
                let decode = |raw: &str| -> String {
                    url::form_urlencoded::parse(raw.as_bytes())
                        .map(|(k, v)| format!("{k}{v}"))
                        .collect()
                };
                let (name, value) = (decode(raw_name), decode(raw_value));
                if name.contains('=') {
                    // `secret_access_key%3DVALUE`: the name holds the value.
                    return "<redacted>".to_string();
                }
                // An endpoint may carry `user:password@` too.
                if is_credential_name(&name) || redact_user_info(&value) != value {
                    format!("{raw_name}=<redacted>")
                } else {
                    pair.to_string()
                }
            })
            .collect();
        out.push_str(&pairs.join("&"));
    }
    out
}

/// `scheme://user:password@host/…` → `scheme://<redacted>@host/…`.
fn redact_user_info(text: &str) -> String {
    let Some((scheme, rest)) = text.split_once("://") else {
        return text.to_string();
    };
    let end = rest.find(['/', '#']).unwrap_or(rest.len());
    match rest[..end].rfind('@') {
        Some(at) => format!("{scheme}://<redacted>{}", &rest[at..]),
        None => text.to_string(),
    }
}

/// Parses a repository URL. A bare absolute path is a local directory. No error quotes a
/// credential: the URL is shown through [`redact_url`].
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
    let shown = redact_url(text);
    let url = url::Url::parse(text).map_err(|e| {
        Error::invalid(format!("repository URL {shown:?} is not a URL")).with_source(e)
    })?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Error::invalid(format!(
            "repository URL {shown:?} carries user information, which is not used: give credentials as query parameters (access_key_id, secret_access_key) or through the environment"
        )));
    }
    if url.query().is_some_and(|q| {
        q.split('&')
            .any(|pair| !pair.is_empty() && !pair.contains('='))
    }) {
        return Err(Error::invalid(format!(
            "repository URL {shown:?} has a query parameter without a value (name=value expected)"
        )));
    }
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
        "gs" | "gcs" => &["service_account", "endpoint", "anonymous", "part_size"],
        "az" | "azure" => &["account", "key", "endpoint", "use_emulator", "part_size"],
        _ => &["part_size"],
    };
    if let Some(unknown) = query.keys().find(|k| !known.contains(&k.as_str())) {
        // A name is shown only if it cannot be a value typed in the wrong place.
        let name = if unknown.len() <= 40
            && unknown
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        {
            format!("{unknown:?}")
        } else {
            "with an unexpected name".to_string()
        };
        return Err(Error::invalid(format!(
            "repository URL parameter {name} is not known for {}:// (known: {})",
            url.scheme(),
            known.join(", ")
        )));
    }
    let q = |k: &str| query.get(k).map(String::as_str).unwrap_or("");
    // The store's client would quote the endpoint in its errors.
    if redact_user_info(q("endpoint")) != q("endpoint") {
        return Err(Error::invalid(format!(
            "repository URL {shown:?}: the endpoint carries user information; give credentials as their own parameters"
        )));
    }
    let part_size = match q("part_size") {
        "" => None,
        v => Some(parse_size(v).map_err(|e| e.context("repository URL part_size"))?),
    };
    let bucket = url.host_str().unwrap_or("").to_string();
    let prefix = normalize_prefix(url.path());
    let need_bucket = || {
        if bucket.is_empty() {
            Err(Error::invalid(format!(
                "repository URL {shown:?} has no bucket or container"
            )))
        } else {
            Ok(())
        }
    };
    let backend = match url.scheme() {
        "file" => {
            let path = url.to_file_path().map_err(|()| {
                Error::invalid(format!(
                    "repository URL {shown:?} is not an absolute file path"
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
            let gcs_endpoint = super::datasafed::gcs_endpoint(q("endpoint"));
            BackendConfig::Gcs(GcsConfig {
                bucket,
                prefix,
                service_account_path: match q("service_account") {
                    "" => None,
                    p => Some(PathBuf::from(p)),
                },
                service_account_key: Secret::default(),
                allow_http: gcs_endpoint
                    .as_deref()
                    .is_some_and(|e| e.starts_with("http://")),
                endpoint: gcs_endpoint,
                anonymous: parse_bool("anonymous", q("anonymous"))?,
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

    #[test]
    fn redact_url_hides_credentials_and_user_information() {
        for (text, shown) in [
            (
                "s3://b/p?endpoint=http://h:1&access_key_id=AK&secret_access_key=S&session_token=T",
                "s3://b/p?endpoint=http://h:1&access_key_id=AK&secret_access_key=<redacted>&session_token=<redacted>",
            ),
            ("az://c?account=a&key=S", "az://c?account=a&key=<redacted>"),
            ("s3://u:S@b/p", "s3://<redacted>@b/p"),
            (
                "s3://b?endpoint=https%3A%2F%2Fu%3AS%40h",
                "s3://b?endpoint=<redacted>",
            ),
            (
                "s3://b?secret%5Faccess%5Fkey=S",
                "s3://b?secret%5Faccess%5Fkey=<redacted>",
            ),
            ("s3://b?secret_access_key%3DS", "s3://b?<redacted>"),
            ("s3://b?S&region=r", "s3://b?<redacted>&region=r"),
            ("s3://b?my_api_token=S#x", "s3://b?my_api_token=<redacted>"),
            ("file:///var/backups", "file:///var/backups"),
        ] {
            assert_eq!(redact_url(text), shown, "{text}");
        }
    }

    #[test]
    fn no_error_quotes_a_credential() {
        for text in [
            "s3://?secret_access_key=S3CR3T",
            "s3 ://b?secret_access_key=S3CR3T",
            "s3://b?secret_access_key=S3CR3T&insecure=maybe",
            "s3://b?secret_access_key=S3CR3T&part_size=lots",
            "s3://b?secret_access_key=S3CR3T&unknown=1",
            "s3://b?secret_access_key%3DS3CR3T",
            "s3://b?S3CR3T",
            "s3://b?s3cr3t",
            "s3://AK:S3CR3T@b/p",
            "s3://?endpoint=http://u:S3CR3T@h",
            "s3://b?endpoint=http://u:S3CR3T@h",
            "az://c?account=a&endpoint=http://u:S3CR3T@h",
            "az://?key=S3CR3T",
            "gs://?service_account=/sa.json&key=S3CR3T",
            "file://host/x?secret=S3CR3T",
            "ftp://h?session_token=S3CR3T",
        ] {
            let err = parse_storage_url(text).expect_err(text);
            let mut chain = err.to_string();
            let mut source = std::error::Error::source(&err);
            while let Some(cause) = source {
                chain.push_str(&format!(": {cause}"));
                source = cause.source();
            }
            assert!(!chain.to_lowercase().contains("s3cr3t"), "{text}: {chain}");
        }
    }

    proptest! {
        #[test]
        fn arbitrary_text_never_panics(text in "[a-z0-9:/?&=%._-]{0,40}") {
            let _ = parse_storage_url(&text);
        }
    }
}
