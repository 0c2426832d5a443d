//! KubeBlocks' own StorageProviders (kb-0.9_helm_*.yaml in `$CAIRN_KUBEBLOCKS_FIXTURES`) render
//! with Cairn's template engine: every `datasafedConfigTemplate` renders with realistic
//! parameters to a datasafed configuration that cairn-repo's parser reads as the expected kind
//! of storage, and the Mount templates (CSI Secret, StorageClass, PVC) render to their objects.

use std::collections::BTreeMap;
use std::path::PathBuf;

use cairn_api::storage_provider::{LegacyStorageProvider, StorageProvider, StorageProviderSpec};
use cairn_control_plane::repo::access;
use cairn_repo::config::BackendConfig;
use k8s_openapi::api::core::v1::SecretReference;
use serde_json::Value;

const SECRET_KEY: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

/// The fixture files, or `None` (after saying so) when the variable is unset.
fn fixtures() -> Option<Vec<(String, PathBuf)>> {
    let Some(dir) = std::env::var_os("CAIRN_KUBEBLOCKS_FIXTURES") else {
        println!("skipped: CAIRN_KUBEBLOCKS_FIXTURES is not set");
        return None;
    };
    let mut files: Vec<(String, PathBuf)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|err| panic!("reading {}: {err}", PathBuf::from(&dir).display()))
        .filter_map(|entry| entry.ok())
        .map(|entry| {
            (
                entry.file_name().to_string_lossy().into_owned(),
                entry.path(),
            )
        })
        .filter(|(name, _)| name.starts_with("kb-0.9_helm_") && name.ends_with(".yaml"))
        .collect();
    files.sort();
    assert!(
        !files.is_empty(),
        "no kb-0.9_helm_*.yaml in the fixtures directory"
    );
    Some(files)
}

/// The provider in a fixture file, from either API group.
fn provider(path: &PathBuf) -> (String, StorageProviderSpec) {
    let text = std::fs::read_to_string(path).unwrap();
    let value: Value = serde_saphyr::from_str(&text)
        .unwrap_or_else(|err| panic!("{}: not YAML: {err}", path.display()));
    let group = value["apiVersion"].as_str().unwrap_or_default();
    assert_eq!(value["kind"], "StorageProvider", "{}", path.display());
    if group.starts_with("storage.kubeblocks.io/") {
        let p: LegacyStorageProvider = serde_json::from_value(value).unwrap();
        (p.metadata.name.unwrap_or_default(), p.spec.0)
    } else {
        let p: StorageProvider = serde_json::from_value(value).unwrap();
        (p.metadata.name.unwrap_or_default(), p.spec)
    }
}

/// Realistic values for the parameters the provider declares: `config` and the credential
/// Secret split by `credentialFields`, then merged with the schema defaults as a BackupRepo's
/// would be.
fn parameters(name: &str, spec: &StorageProviderSpec) -> BTreeMap<String, String> {
    let example = |key: &str| -> Option<&str> {
        Some(match key {
            "bucket" | "container" => "cairn-backups",
            "region" => "us-west-1",
            "endpoint" if name == "minio" => "http://minio.storage.svc:9000",
            "accessKeyId" => "AKIAIOSFODNN7EXAMPLE",
            "secretAccessKey" => SECRET_KEY,
            "accountName" => "cairnstore",
            "accountKey" => "c2VjcmV0LWFjY291bnQta2V5",
            "storageClassName" => "local-path",
            _ => return None,
        })
    };
    let schema = spec.parameters_schema.as_ref();
    let declared: Vec<String> = schema
        .and_then(|s| s.open_api_v3_schema.as_ref())
        .and_then(|s| s["properties"].as_object())
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default();
    let credential_fields = schema
        .and_then(|s| s.credential_fields.clone())
        .unwrap_or_default();
    let mut config = BTreeMap::new();
    let mut secret = BTreeMap::new();
    for key in &declared {
        if let Some(value) = example(key) {
            let layer = if credential_fields.contains(key) {
                &mut secret
            } else {
                &mut config
            };
            layer.insert(key.clone(), value.to_string());
        }
    }
    access::parameters(spec, Some(&config), Some(&secret))
}

fn expected_type(name: &str) -> &'static str {
    match name {
        "azureblob" => "azureblob",
        _ => "s3",
    }
}

#[test]
fn every_kubeblocks_datasafed_template_renders_to_a_config_cairn_repo_reads() {
    let Some(files) = fixtures() else { return };
    let mut rendered = 0;
    for (file, path) in files {
        let (name, spec) = provider(&path);
        let params = parameters(&name, &spec);
        let context = access::context(&params, None, None);
        if spec.datasafed_config_template.is_none() {
            println!("{file}: provider {name} has no datasafedConfigTemplate (Mount only)");
            assert!(
                access::tool_access("repo", &spec, &context).is_err(),
                "{file}: a provider without a datasafed template has no Tool access"
            );
            continue;
        }
        let access = access::tool_access("repo", &spec, &context)
            .unwrap_or_else(|err| panic!("{file}: {}", err.chain()));
        let config = cairn_repo::parse_datasafed_config(&access.datasafed_config)
            .unwrap_or_else(|err| panic!("{file}: the rendered config does not parse: {err}"));
        assert_eq!(config.type_name(), expected_type(&name), "{file}");
        match &config.backend {
            BackendConfig::S3(s3) => {
                assert_eq!(s3.bucket, "cairn-backups", "{file}");
                assert_eq!(s3.access_key_id, "AKIAIOSFODNN7EXAMPLE", "{file}");
                assert_eq!(s3.secret_access_key.expose(), SECRET_KEY, "{file}");
                assert!(!s3.insecure, "{file}: the insecure default is false");
                if name == "minio" {
                    assert_eq!(
                        s3.endpoint.as_deref(),
                        Some("http://minio.storage.svc:9000"),
                        "{file}"
                    );
                }
            }
            BackendConfig::Azure(azure) => {
                assert_eq!(azure.container, "cairn-backups", "{file}");
                assert_eq!(azure.account, "cairnstore", "{file}");
                assert_eq!(azure.key.expose(), "c2VjcmV0LWFjY291bnQta2V5", "{file}");
            }
            other => panic!("{file}: unexpected backend {other:?}"),
        }
        println!("{file}: {name} renders to a {} config", config.type_name());
        rendered += 1;
    }
    assert!(
        rendered >= 4,
        "only {rendered} providers had a datasafed template"
    );
}

#[test]
fn every_kubeblocks_mount_template_renders_to_its_object() {
    let Some(files) = fixtures() else { return };
    let secret = SecretReference {
        name: Some("secret-repo-bcdfgh".into()),
        namespace: Some("kb-system".into()),
    };
    for (file, path) in files {
        let (name, spec) = provider(&path);
        let params = parameters(&name, &spec);
        let context = access::context(&params, Some(&secret), Some("sc-repo-bcdfgh"));
        if let Some(data) = access::csi_secret_data(&spec, &context)
            .unwrap_or_else(|err| panic!("{file}: {}", err.chain()))
        {
            assert_eq!(
                data.get("secretAccessKey").map(String::as_str),
                Some(SECRET_KEY),
                "{file}"
            );
        }
        if let Some(class) = access::storage_class(&spec, &context)
            .unwrap_or_else(|err| panic!("{file}: {}", err.chain()))
        {
            assert_eq!(class.provisioner, "ru.yandex.s3.csi", "{file}");
            let parameters = class.parameters.unwrap_or_default();
            assert_eq!(
                parameters
                    .get("csi.storage.k8s.io/node-publish-secret-name")
                    .map(String::as_str),
                Some("secret-repo-bcdfgh"),
                "{file}"
            );
            let options = parameters.get("options").cloned().unwrap_or_default();
            assert!(options.contains("--memory-limit 512"), "{file}: {options}");
            // mountOptions is not set: Go renders a missing map key as "".
            assert!(
                !options.contains("nil") && !options.contains("no value"),
                "{file}: {options}"
            );
        }
        if let Some(pvc) = access::pvc_template(&spec, &context)
            .unwrap_or_else(|err| panic!("{file}: {}", err.chain()))
        {
            let pvc_spec = pvc.spec.unwrap_or_default();
            assert_eq!(
                pvc_spec.storage_class_name.as_deref(),
                Some("local-path"),
                "{file}"
            );
            assert_eq!(
                pvc_spec.access_modes,
                Some(vec!["ReadWriteOnce".to_string()]),
                "{file}"
            );
            assert_eq!(
                pvc_spec.volume_mode.as_deref(),
                Some("Filesystem"),
                "{file}"
            );
        }
    }
}
