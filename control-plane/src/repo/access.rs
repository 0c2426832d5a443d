//! How a BackupRepo is reached, rendered from its StorageProvider (ARCHITECTURE.md §K5.2):
//! the parameters, their digest, the datasafed configuration agents use (Tool access), and the
//! CSI Secret, StorageClass and PVC a Mount repository needs.
//!
//! The rendered datasafed configuration and CSI Secret hold credentials. They only ever go to
//! agents (inside a `StorageGrant`, over mTLS) or, for the CSI Secret, into the control plane's
//! own namespace where the CSI driver reads it; never into a status, an event or a log. No error
//! of this module quotes a parameter value or rendered text.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use cairn_api::storage_provider::StorageProviderSpec;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, SecretReference};
use k8s_openapi::api::storage::v1::StorageClass;
use serde_json::Value;

use super::template::{self, TemplateContext, TemplateError};
use crate::plan::backup::repo::RepoAccess;

/// Why a repository's access could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    /// A template did not parse or execute.
    #[error("failed to render {what} template")]
    Render {
        what: &'static str,
        #[source]
        source: TemplateError,
    },
    /// The rendered text is not the YAML object it should be. The text itself is not quoted: it
    /// may hold credentials.
    #[error("failed to unmarshal the rendered {what}: not valid YAML for it{location}")]
    Yaml {
        what: &'static str,
        /// ` (line L, column C)` when known, else empty.
        location: String,
    },
    /// The provider lacks the template this access method needs.
    #[error("the storage provider has no {field}")]
    NoTemplate { field: &'static str },
}

impl AccessError {
    /// The error and its causes on one line, for a condition message.
    pub fn chain(&self) -> String {
        let mut text = self.to_string();
        let mut source = std::error::Error::source(self);
        while let Some(cause) = source {
            let _ = write!(text, ": {cause}");
            source = cause.source();
        }
        text
    }
}

pub use cairn_api::storage_template::parameters;

/// The digest of everything a repository's rendered objects depend on: the parameters (sorted
/// by key) and the StorageClass, PVC, CSI Secret and datasafed templates, as KubeBlocks lists
/// them. KubeBlocks hashes `k1=v1;k2=v2;…` plus the templates with MD5; Cairn length-prefixes
/// every piece (so `a="b=c"` and `"a=b"=c` differ) and takes BLAKE3 (already in the tree) cut to
/// the same 32 hex characters. The digest is only ever compared with digests Cairn computed, so
/// neither choice is visible outside.
pub fn digest(parameters: &BTreeMap<String, String>, provider: &StorageProviderSpec) -> String {
    let mut hasher = blake3::Hasher::new();
    let mut piece = |text: &str| {
        hasher.update(&(text.len() as u64).to_le_bytes());
        hasher.update(text.as_bytes());
    };
    for (key, value) in parameters {
        piece(key);
        piece(value);
    }
    for text in [
        &provider.storage_class_template,
        &provider.persistent_volume_claim_template,
        &provider.csi_driver_secret_template,
        &provider.datasafed_config_template,
    ] {
        piece(text.as_deref().unwrap_or_default());
    }
    hasher.finalize().to_hex()[..32].to_string()
}

/// What a template sees, with Go's zero values where KubeBlocks' render context has them:
/// `.CSIDriverSecretRef` and `.GeneratedStorageClassName` always exist, empty when unset.
pub fn context(
    parameters: &BTreeMap<String, String>,
    csi_secret: Option<&SecretReference>,
    storage_class: Option<&str>,
) -> TemplateContext {
    let secret = csi_secret.map(|r| {
        (
            r.name.clone().unwrap_or_default(),
            r.namespace.clone().unwrap_or_default(),
        )
    });
    TemplateContext {
        parameters: parameters.clone(),
        csi_driver_secret: Some(secret.unwrap_or_default()),
        generated_storage_class_name: Some(storage_class.unwrap_or_default().to_string()),
    }
}

/// The rendered datasafed configuration (Tool access): an INI file with a `[storage]` section.
pub fn datasafed_config(
    provider: &StorageProviderSpec,
    context: &TemplateContext,
) -> Result<String, AccessError> {
    let text = non_empty(&provider.datasafed_config_template).ok_or(AccessError::NoTemplate {
        field: "datasafedConfigTemplate",
    })?;
    render("tool config", "datasafedConfigTemplate", text, context)
}

/// The access agents use for a Tool repository.
pub fn tool_access(
    repo_name: &str,
    provider: &StorageProviderSpec,
    context: &TemplateContext,
) -> Result<RepoAccess, AccessError> {
    Ok(RepoAccess {
        repo_name: repo_name.to_string(),
        datasafed_config: datasafed_config(provider, context)?,
        ..Default::default()
    })
}

/// The access of a Mount repository: its PVC, which every Backup's and Restore's namespace gets.
pub fn mount_access(repo_name: &str, claim: &str) -> RepoAccess {
    RepoAccess {
        repo_name: repo_name.to_string(),
        mount_claim: Some(claim.to_string()),
        ..Default::default()
    }
}

/// The data of the Secret the CSI driver reads (`None` without `csiDriverSecretTemplate`): the
/// rendered YAML map, scalar values as text, empty values as "".
pub fn csi_secret_data(
    provider: &StorageProviderSpec,
    context: &TemplateContext,
) -> Result<Option<BTreeMap<String, String>>, AccessError> {
    let Some(text) = non_empty(&provider.csi_driver_secret_template) else {
        return Ok(None);
    };
    let what = "secret";
    let rendered = render(what, "csiDriverSecretTemplate", text, context)?;
    let value = yaml_keeping_nulls(what, &rendered)?;
    let Value::Object(map) = value else {
        return Err(not_an_object(what));
    };
    let mut data = BTreeMap::new();
    for (key, value) in map {
        let text = match value {
            Value::String(s) => s,
            Value::Null => String::new(),
            Value::Bool(_) | Value::Number(_) => value.to_string(),
            Value::Array(_) | Value::Object(_) => return Err(not_an_object(what)),
        };
        data.insert(key, text);
    }
    Ok(Some(data))
}

/// The StorageClass rendered from `storageClassTemplate` (`None` without one); the caller names
/// it and sets the fields KubeBlocks forces.
pub fn storage_class(
    provider: &StorageProviderSpec,
    context: &TemplateContext,
) -> Result<Option<StorageClass>, AccessError> {
    let Some(text) = non_empty(&provider.storage_class_template) else {
        return Ok(None);
    };
    let what = "storage class";
    let rendered = render(what, "storageClassTemplate", text, context)?;
    let mut value = yaml_keeping_nulls(what, &rendered)?;
    // Go unmarshals into map[string]string leniently; do the same for `parameters`.
    if let Some(Value::Object(params)) = value.get_mut("parameters") {
        for param in params.values_mut() {
            let text = match &*param {
                Value::String(_) => continue,
                Value::Null => String::new(),
                other => other.to_string(),
            };
            *param = Value::String(text);
        }
    }
    serde_json::from_value(prune_nulls(value))
        .map(Some)
        .map_err(|_| not_an_object(what))
}

/// The PVC rendered from `persistentVolumeClaimTemplate` (`None` without one); the caller names
/// it and fills in defaults.
pub fn pvc_template(
    provider: &StorageProviderSpec,
    context: &TemplateContext,
) -> Result<Option<PersistentVolumeClaim>, AccessError> {
    let Some(text) = non_empty(&provider.persistent_volume_claim_template) else {
        return Ok(None);
    };
    let what = "PVC";
    let rendered = render(what, "persistentVolumeClaimTemplate", text, context)?;
    let value = yaml(what, &rendered)?;
    serde_json::from_value(value)
        .map(Some)
        .map_err(|_| not_an_object(what))
}

fn non_empty(text: &Option<String>) -> Option<&str> {
    text.as_deref().filter(|t| !t.trim().is_empty())
}

fn render(
    what: &'static str,
    field: &'static str,
    text: &str,
    context: &TemplateContext,
) -> Result<String, AccessError> {
    template::render_reading_fields(field, text, context)
        .map_err(|source| AccessError::Render { what, source })
}

fn not_an_object(what: &'static str) -> AccessError {
    AccessError::Yaml {
        what,
        location: String::new(),
    }
}

/// Parses rendered YAML into a JSON object the way Kubernetes' YAML decoding reads it, except
/// that null members are dropped (Go leaves such fields at their zero value). An empty document
/// is `{}`.
fn yaml(what: &'static str, text: &str) -> Result<Value, AccessError> {
    yaml_keeping_nulls(what, text).map(prune_nulls)
}

/// [`yaml`] with null members kept, for maps whose nulls mean "".
fn yaml_keeping_nulls(what: &'static str, text: &str) -> Result<Value, AccessError> {
    if text.trim().is_empty() {
        return Ok(Value::Object(Default::default()));
    }
    let value: Value = serde_saphyr::from_str(text).map_err(|err| AccessError::Yaml {
        what,
        location: err
            .location()
            .map(|l| format!(" (line {}, column {})", l.line(), l.column()))
            .unwrap_or_default(),
    })?;
    match value {
        Value::Null => Ok(Value::Object(Default::default())),
        object @ Value::Object(_) => Ok(object),
        _ => Err(not_an_object(what)),
    }
}

fn prune_nulls(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, prune_nulls(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(prune_nulls).collect()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use cairn_api::storage_provider::ParametersSchema;
    use serde_json::json;

    use super::*;

    fn provider(extra: Value) -> StorageProviderSpec {
        let mut value = json!({
            "datasafedConfigTemplate": "[storage]\ntype = s3\nroot = {{ index .Parameters \"bucket\" }}\nsecret_access_key = {{ index .Parameters \"secretAccessKey\" }}\n",
            "parametersSchema": {"openAPIV3Schema": {"type": "object", "properties": {
                "bucket": {"type": "string"},
                "region": {"type": "string", "default": "us-east-1"},
                "insecure": {"type": "boolean", "default": false},
                "memoryLimit": {"type": "integer", "default": 512},
                "ratio": {"type": "number", "default": 0.5},
                "tags": {"type": "array", "default": ["a", "b"]}
            }}}
        });
        json_patch::merge(&mut value, &extra);
        serde_json::from_value(value).unwrap()
    }

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn schema_defaults_are_unquoted_strings_or_raw_json_text() {
        let params = parameters(&provider(json!({})), None, None);
        assert_eq!(
            params,
            map(&[
                ("insecure", "false"),
                ("memoryLimit", "512"),
                ("ratio", "0.5"),
                ("region", "us-east-1"),
                ("tags", "[\"a\",\"b\"]"),
            ])
        );
    }

    #[test]
    fn config_overrides_defaults_and_the_secret_overrides_config() {
        let config = map(&[
            ("region", "eu-west-1"),
            ("bucket", "b1"),
            ("insecure", "true"),
        ]);
        let secret = map(&[("bucket", "from-secret"), ("secretAccessKey", "S3CR3T")]);
        let params = parameters(&provider(json!({})), Some(&config), Some(&secret));
        assert_eq!(params["region"], "eu-west-1");
        assert_eq!(params["insecure"], "true");
        assert_eq!(params["bucket"], "from-secret");
        assert_eq!(params["secretAccessKey"], "S3CR3T");
        assert_eq!(params["memoryLimit"], "512");
    }

    #[test]
    fn a_provider_without_a_schema_has_no_defaults() {
        let bare = StorageProviderSpec::default();
        assert!(parameters(&bare, None, None).is_empty());
        let no_properties = StorageProviderSpec {
            parameters_schema: Some(ParametersSchema {
                open_api_v3_schema: Some(json!({"type": "object"})),
                credential_fields: None,
            }),
            ..Default::default()
        };
        assert!(parameters(&no_properties, None, None).is_empty());
    }

    #[test]
    fn the_digest_changes_with_any_parameter_or_template_and_only_then() {
        let p = provider(json!({}));
        let base = digest(&map(&[("a", "1")]), &p);
        assert_eq!(base.len(), 32);
        assert!(base.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(base, digest(&map(&[("a", "1")]), &p));
        assert_ne!(base, digest(&map(&[("a", "2")]), &p));
        assert_ne!(base, digest(&map(&[("a", "1"), ("b", "")]), &p));
        for field in [
            "datasafedConfigTemplate",
            "storageClassTemplate",
            "persistentVolumeClaimTemplate",
            "csiDriverSecretTemplate",
        ] {
            let changed = provider(json!({ field: "x" }));
            assert_ne!(base, digest(&map(&[("a", "1")]), &changed), "{field}");
        }
    }

    #[test]
    fn the_digest_separates_keys_from_values() {
        let p = StorageProviderSpec::default();
        assert_ne!(
            digest(&map(&[("a", "b=c")]), &p),
            digest(&map(&[("a=b", "c")]), &p)
        );
    }

    proptest::proptest! {
        #[test]
        fn different_parameters_give_different_digests(
            a in proptest::collection::btree_map("[a-z=;]{0,4}", "[a-z=;]{0,4}", 0..4),
            b in proptest::collection::btree_map("[a-z=;]{0,4}", "[a-z=;]{0,4}", 0..4),
        ) {
            let p = StorageProviderSpec::default();
            proptest::prop_assert_eq!(digest(&a, &p) == digest(&b, &p), a == b);
        }
    }

    #[test]
    fn tool_access_holds_the_rendered_datasafed_config() {
        let params = map(&[("bucket", "b1"), ("secretAccessKey", "S3CR3T")]);
        let access =
            tool_access("repo1", &provider(json!({})), &context(&params, None, None)).unwrap();
        assert_eq!(access.repo_name, "repo1");
        assert_eq!(
            access.datasafed_config,
            "[storage]\ntype = s3\nroot = b1\nsecret_access_key = S3CR3T\n"
        );
        assert_eq!(access.mount_claim, None);
        assert!(!format!("{access:?}").contains("S3CR3T"));
    }

    #[test]
    fn a_provider_without_a_datasafed_template_has_no_tool_access() {
        let err = tool_access(
            "repo1",
            &provider(json!({"datasafedConfigTemplate": "  \n"})),
            &context(&BTreeMap::new(), None, None),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "the storage provider has no datasafedConfigTemplate"
        );
    }

    #[test]
    fn a_broken_template_is_reported_without_the_parameter_values() {
        let params = map(&[("secretAccessKey", "S3CR3T")]);
        let err = datasafed_config(
            &provider(json!({"datasafedConfigTemplate": "key = {{ index .Parameters "})),
            &context(&params, None, None),
        )
        .unwrap_err();
        let text = err.chain();
        assert!(
            text.starts_with(
                "failed to render tool config template: parsing datasafedConfigTemplate"
            ),
            "{text}"
        );
        assert!(!text.contains("S3CR3T"));
    }

    #[test]
    fn the_csi_secret_is_a_map_of_strings_with_empty_and_scalar_values_kept() {
        let p = provider(json!({"csiDriverSecretTemplate":
            "accessKeyID: {{ index .Parameters \"accessKeyId\" }}\nsecretAccessKey: {{ index .Parameters \"secretAccessKey\" }}\nport: 9000\nendpoint: {{ index .Parameters \"endpoint\" }}\n"}));
        let params = map(&[("accessKeyId", "AK"), ("secretAccessKey", "SK")]);
        let data = csi_secret_data(&p, &context(&params, None, None))
            .unwrap()
            .unwrap();
        assert_eq!(
            data,
            map(&[
                ("accessKeyID", "AK"),
                ("endpoint", ""),
                ("port", "9000"),
                ("secretAccessKey", "SK")
            ])
        );
        assert_eq!(
            csi_secret_data(&provider(json!({})), &context(&params, None, None)).unwrap(),
            None
        );
    }

    #[test]
    fn a_csi_secret_that_is_not_a_map_is_refused_without_quoting_it() {
        let p = provider(json!({"csiDriverSecretTemplate":
            "- {{ index .Parameters \"secretAccessKey\" }}\n"}));
        let params = map(&[("secretAccessKey", "S3CR3T")]);
        let err = csi_secret_data(&p, &context(&params, None, None)).unwrap_err();
        let text = err.chain();
        assert!(
            text.starts_with("failed to unmarshal the rendered secret"),
            "{text}"
        );
        assert!(!text.contains("S3CR3T"));
        let bad_yaml = provider(json!({"csiDriverSecretTemplate":
            "key: [{{ index .Parameters \"secretAccessKey\" }}\n"}));
        let err = csi_secret_data(&bad_yaml, &context(&params, None, None)).unwrap_err();
        assert!(!err.chain().contains("S3CR3T"));
        assert!(err.chain().contains("line"), "{}", err.chain());
    }

    #[test]
    fn the_storage_class_sees_the_csi_secret_and_gets_string_parameters() {
        let p = provider(json!({"storageClassTemplate":
            "provisioner: ru.yandex.s3.csi\nparameters:\n  bucket: {{ index .Parameters \"bucket\" }}\n  limit: 512\n  secret: {{ .CSIDriverSecretRef.Name }}/{{ .CSIDriverSecretRef.Namespace }}\n"}));
        let secret = SecretReference {
            name: Some("secret-r1-abcdef".into()),
            namespace: Some("cairn-system".into()),
        };
        let sc = storage_class(&p, &context(&BTreeMap::new(), Some(&secret), None))
            .unwrap()
            .unwrap();
        assert_eq!(sc.provisioner, "ru.yandex.s3.csi");
        let params = sc.parameters.unwrap();
        assert_eq!(params["bucket"], "");
        assert_eq!(params["limit"], "512");
        assert_eq!(params["secret"], "secret-r1-abcdef/cairn-system");
    }

    #[test]
    fn the_pvc_template_sees_the_generated_storage_class_and_go_defaults() {
        let p = provider(json!({"persistentVolumeClaimTemplate":
            "spec:\n  storageClassName: {{ .GeneratedStorageClassName }}\n  accessModes:\n    - {{ .Parameters.accessMode | default \"ReadWriteOnce\" }}\n  volumeMode: {{ .Parameters.volumeMode | default \"Filesystem\" }}\n"}));
        let pvc = pvc_template(&p, &context(&BTreeMap::new(), None, Some("sc-r1-abcdef")))
            .unwrap()
            .unwrap();
        let spec = pvc.spec.unwrap();
        assert_eq!(spec.storage_class_name.as_deref(), Some("sc-r1-abcdef"));
        assert_eq!(spec.access_modes, Some(vec!["ReadWriteOnce".to_string()]));
        assert_eq!(spec.volume_mode.as_deref(), Some("Filesystem"));
    }

    #[test]
    fn an_empty_storage_class_name_in_the_pvc_template_means_the_default_class() {
        let p = provider(json!({"persistentVolumeClaimTemplate":
            "spec:\n  storageClassName: {{ .Parameters.storageClassName | default \"\" }}\n"}));
        let pvc = pvc_template(&p, &context(&BTreeMap::new(), None, None))
            .unwrap()
            .unwrap();
        assert_eq!(pvc.spec.unwrap().storage_class_name, None);
    }

    #[test]
    fn a_missing_parameter_read_as_a_field_renders_empty_like_go() {
        let p = provider(json!({"storageClassTemplate":
            "provisioner: x\nparameters:\n  options: {{ printf \"--limit %s %s\" .Parameters.memoryLimit .Parameters.mountOptions }}\n"}));
        let params = parameters(&p, None, None);
        let sc = storage_class(&p, &context(&params, None, None))
            .unwrap()
            .unwrap();
        assert_eq!(sc.parameters.unwrap()["options"], "--limit 512");
    }

    #[test]
    fn mount_access_names_the_claim_and_holds_no_configuration() {
        let access = mount_access("repo1", "pvc-repo1-abcdef");
        assert_eq!(access.mount_claim.as_deref(), Some("pvc-repo1-abcdef"));
        assert!(access.datasafed_config.is_empty());
    }
}
