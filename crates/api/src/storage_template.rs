//! Renders a StorageProvider's Go templates (`datasafedConfigTemplate`, `csiDriverSecretTemplate`,
//! `storageClassTemplate`, `persistentVolumeClaimTemplate`) the way KubeBlocks does
//! (ARCHITECTURE.md §K5.2): Go `text/template` with the sprig functions, through gtmpl-ng and
//! its Helm function set, plus `nindent`, which that set lacks.

use std::collections::{BTreeMap, HashMap};

use gtmpl_ng::{Context, ExecError, FuncError, Template, Value};

use crate::storage_provider::StorageProviderSpec;

/// What a template sees.
#[derive(Debug, Clone, Default)]
pub struct TemplateContext {
    /// `.Parameters`: schema defaults overlaid by `config`, overlaid by the credential Secret.
    pub parameters: BTreeMap<String, String>,
    /// `.CSIDriverSecretRef.Name` / `.Namespace`.
    pub csi_driver_secret: Option<(String, String)>,
    /// `.GeneratedStorageClassName` (PVC templates only).
    pub generated_storage_class_name: Option<String>,
}

/// A template that could not be rendered. The message never contains a parameter value, nor
/// anything computed from one, since parameters include credentials: parse errors only quote the
/// template text, and a render error's message comes from a render that never saw the values
/// (see [`render`]).
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    /// The template text does not parse.
    #[error("parsing {field}: {message}")]
    Parse {
        field: &'static str,
        message: String,
    },
    /// Executing the template failed.
    #[error("rendering {field}: {message}")]
    Render {
        field: &'static str,
        message: String,
    },
}

/// Renders `text` (the StorageProvider field named `field`, for error messages) with `context`.
///
/// The template engine's render errors quote values (`range can't iterate over S3CR3T`), and a
/// template may have computed that value from a parameter in any way (`b64enc`, `substr`,
/// `upper`…), so no message of a render that saw the parameters is ever returned. On failure
/// the template is rendered again with every non-empty parameter replaced by `<value of KEY>`
/// (every parameter, not only the provider's `credentialFields`: a Secret may hold more keys);
/// if that render fails at the same place, its message is returned, and it can only quote the
/// placeholders. Otherwise the message names the place and the construct there (template text,
/// which is no secret) and says the engine's message is withheld.
pub fn render(
    field: &'static str,
    text: &str,
    context: &TemplateContext,
) -> Result<String, TemplateError> {
    let mut template = Template::default();
    template.add_funcs(gtmpl_ng::helm_functions::HELM_FUNCTIONS);
    template.add_func("nindent", nindent);
    template.add_func("index", index);
    template.parse(text).map_err(|err| TemplateError::Parse {
        field,
        message: err.to_string(),
    })?;
    template
        .render(&Context::from(to_value(context)))
        .map_err(|err| TemplateError::Render {
            field,
            message: value_free_message(&template, text, &err, context),
        })
}

/// A message for `err` that quotes no parameter value (see [`render`]).
fn value_free_message(
    template: &Template,
    text: &str,
    err: &ExecError,
    context: &TemplateContext,
) -> String {
    let failed_at = place(err);
    let masked = TemplateContext {
        parameters: context
            .parameters
            .iter()
            .map(|(key, value)| {
                let shown = if value.is_empty() {
                    String::new()
                } else {
                    format!("<value of {key}>")
                };
                (key.clone(), shown)
            })
            .collect(),
        ..context.clone()
    };
    if let Err(again) = template.render(&Context::from(to_value(&masked)))
        && place(&again) == failed_at
    {
        return again.to_string();
    }
    let withheld = "the template engine's message is withheld: it would quote a value computed from the parameters";
    match failed_at {
        Some((line, col, len)) => {
            let construct = text
                .lines()
                .nth(line.saturating_sub(1))
                .and_then(|l| l.get(col.saturating_sub(1)..col.saturating_sub(1) + len))
                .filter(|c| c.chars().count() <= 200)
                .map(|c| format!(" `{c}`"))
                .unwrap_or_default();
            format!("line {line}, column {col}{construct} failed; {withheld}")
        }
        None => format!("the template failed; {withheld}"),
    }
}

/// Where a render error happened: line, column and length of the failing construct.
fn place(err: &ExecError) -> Option<(usize, usize, usize)> {
    err.as_structured()
        .map(|s| (s.context.line, s.context.col, s.context.len))
}

fn to_value(context: &TemplateContext) -> Value {
    let parameters: HashMap<String, Value> = context
        .parameters
        .iter()
        .map(|(k, v)| (k.clone(), Value::from(v.clone())))
        .collect();
    let mut root: HashMap<String, Value> = HashMap::new();
    root.insert("Parameters".into(), Value::Map(parameters));
    if let Some((name, namespace)) = &context.csi_driver_secret {
        let mut secret: HashMap<String, Value> = HashMap::new();
        secret.insert("Name".into(), Value::from(name.clone()));
        secret.insert("Namespace".into(), Value::from(namespace.clone()));
        root.insert("CSIDriverSecretRef".into(), Value::Map(secret));
    }
    if let Some(name) = &context.generated_storage_class_name {
        root.insert(
            "GeneratedStorageClassName".into(),
            Value::from(name.clone()),
        );
    }
    Value::Map(root)
}

/// Go's `index` over `.Parameters`, which KubeBlocks passes as `map[string]string`: a missing key
/// yields the zero value `""`, not `<no value>`.
fn index(args: &[Value]) -> Result<Value, FuncError> {
    let Some((collection, keys)) = args.split_first() else {
        return Err(FuncError::AtLeastXArgs("index".into(), 1));
    };
    let mut current = collection.clone();
    for key in keys {
        current = match (&current, key) {
            (Value::Map(map), Value::String(k)) | (Value::Object(map), Value::String(k)) => map
                .get(k)
                .cloned()
                .unwrap_or_else(|| Value::from(String::new())),
            (Value::Array(items), Value::Number(n)) => {
                let at = n.as_u64().and_then(|i| usize::try_from(i).ok());
                match at.and_then(|i| items.get(i)) {
                    Some(item) => item.clone(),
                    None => {
                        return Err(FuncError::IndexOutOfRange {
                            index: n.to_string(),
                        });
                    }
                }
            }
            (Value::NoValue | Value::Nil, _) => Value::from(String::new()),
            _ => return Err(FuncError::Generic("can't index item".into())),
        };
    }
    Ok(current)
}

/// sprig's `nindent N TEXT`: a newline, then TEXT with every line indented by N spaces.
fn nindent(args: &[Value]) -> Result<Value, FuncError> {
    let (width, text) = match args {
        [Value::Number(n), text] => (n.as_u64().unwrap_or(0) as usize, value_text(text)),
        _ => return Err(FuncError::ExactlyXArgs("nindent".into(), 2)),
    };
    let pad = " ".repeat(width);
    let indented: Vec<String> = text
        .split('\n')
        .map(|line| format!("{pad}{line}"))
        .collect();
    Ok(Value::from(format!("\n{}", indented.join("\n"))))
}

fn value_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The parameters templates see (§5.2): the provider schema's property defaults (string
/// defaults unquoted, other values as their raw JSON text), overlaid by the repository's
/// `spec.config`, overlaid by every key of its credential Secret.
pub fn parameters(
    provider: &StorageProviderSpec,
    config: Option<&BTreeMap<String, String>>,
    secret: Option<&BTreeMap<String, String>>,
) -> BTreeMap<String, String> {
    let mut merged = schema_defaults(provider);
    for layer in [config, secret].into_iter().flatten() {
        merged.extend(layer.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    merged
}

fn schema_defaults(provider: &StorageProviderSpec) -> BTreeMap<String, String> {
    let properties = provider
        .parameters_schema
        .as_ref()
        .and_then(|s| s.open_api_v3_schema.as_ref())
        .and_then(|s| s.get("properties"))
        .and_then(serde_json::Value::as_object);
    properties
        .into_iter()
        .flatten()
        .filter_map(|(name, property)| {
            let default = property.get("default")?;
            let text = match default {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            Some((name.clone(), text))
        })
        .collect()
}

/// KubeBlocks passes `.Parameters` as Go's `map[string]string`, where a missing key read as a
/// field (`.Parameters.mountOptions`) is `""`; the template engine would give nil (printed as
/// `%!s(<nil>)` by `printf`). Every parameter the template reads as a field is therefore given
/// as `""` when it is not set.
pub fn with_referenced_parameters(text: &str, context: &TemplateContext) -> TemplateContext {
    const FIELD: &str = ".Parameters.";
    let mut context = context.clone();
    for (at, _) in text.match_indices(FIELD) {
        let rest = &text[at + FIELD.len()..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() {
            context.parameters.entry(name).or_default();
        }
    }
    context
}

/// [`render`] with every parameter the template reads as a field present (see
/// [`with_referenced_parameters`]), as KubeBlocks' `map[string]string` behaves.
pub fn render_reading_fields(
    field: &'static str,
    text: &str,
    context: &TemplateContext,
) -> Result<String, TemplateError> {
    render(field, text, &with_referenced_parameters(text, context))
}

/// The datasafed configuration of a Tool repository, rendered from its provider's
/// `datasafedConfigTemplate` with the repository's `spec.config` and credential Secret, the way
/// the control plane renders it for agents (`None` when the provider has no such template).
/// The result holds credentials: never print it.
pub fn datasafed_config(
    provider: &StorageProviderSpec,
    config: Option<&BTreeMap<String, String>>,
    secret: Option<&BTreeMap<String, String>>,
) -> Option<Result<String, TemplateError>> {
    let text = provider
        .datasafed_config_template
        .as_deref()
        .filter(|t| !t.trim().is_empty())?;
    let context = TemplateContext {
        parameters: parameters(provider, config, secret),
        csi_driver_secret: Some(Default::default()),
        generated_storage_class_name: Some(String::new()),
    };
    Some(render_reading_fields(
        "datasafedConfigTemplate",
        text,
        &context,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> TemplateContext {
        TemplateContext {
            parameters: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn index_reads_parameters() {
        let out = render(
            "t",
            r#"root = {{ index .Parameters "bucket" }}"#,
            &params(&[("bucket", "b1")]),
        )
        .unwrap();
        assert_eq!(out, "root = b1");
    }

    #[test]
    fn missing_parameter_renders_empty_like_go_maps() {
        let out = render(
            "t",
            r#"endpoint = {{ index .Parameters "endpoint" }}"#,
            &params(&[]),
        )
        .unwrap();
        assert_eq!(out.trim_end(), "endpoint =");
    }

    #[test]
    fn variables_if_and_has_prefix_pick_a_default_endpoint() {
        let text = r#"{{- $region := index .Parameters "region" }}
{{- $endpoint := index .Parameters "endpoint" }}
{{- if not $endpoint }}
  {{- if hasPrefix "cn-" $region }}
    {{- $endpoint = (printf "https://s3.%s.amazonaws.com.cn" $region) }}
  {{- else }}
    {{- $endpoint = (printf "https://s3.%s.amazonaws.com" $region) }}
  {{- end }}
{{- end }}
endpoint: {{ $endpoint }}"#;
        assert_eq!(
            render("t", text, &params(&[("region", "cn-north-1")]))
                .unwrap()
                .trim(),
            "endpoint: https://s3.cn-north-1.amazonaws.com.cn"
        );
        assert_eq!(
            render("t", text, &params(&[("region", "us-west-1")]))
                .unwrap()
                .trim(),
            "endpoint: https://s3.us-west-1.amazonaws.com"
        );
    }

    #[test]
    fn default_and_nindent_work() {
        let text =
            r#"size: {{ default "100Gi" (index .Parameters "size") }}{{ "a: 1" | nindent 2 }}"#;
        assert_eq!(
            render("t", text, &params(&[])).unwrap(),
            "size: 100Gi\n  a: 1"
        );
    }

    #[test]
    fn csi_secret_ref_and_storage_class_name_are_visible() {
        let context = TemplateContext {
            csi_driver_secret: Some(("secret-r1-abc".into(), "kb-system".into())),
            generated_storage_class_name: Some("sc-r1-abc".into()),
            ..Default::default()
        };
        let out = render(
            "t",
            "{{ .CSIDriverSecretRef.Name }}/{{ .CSIDriverSecretRef.Namespace }} {{ .GeneratedStorageClassName }}",
            &context,
        )
        .unwrap();
        assert_eq!(out, "secret-r1-abc/kb-system sc-r1-abc");
    }

    #[test]
    fn parse_errors_name_the_field_and_not_the_values() {
        let err = render(
            "datasafedConfigTemplate",
            "{{ index .Parameters ",
            &params(&[("secretAccessKey", "S3CR3T")]),
        )
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("parsing datasafedConfigTemplate"), "{err}");
        assert!(!err.contains("S3CR3T"));
    }

    fn render_error(text: &str, pairs: &[(&str, &str)]) -> String {
        render("datasafedConfigTemplate", text, &params(pairs))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn a_render_error_shows_a_placeholder_for_the_value_it_quotes() {
        let err = render_error(
            "a\n{{ range .Parameters.secretAccessKey }}x{{ end }}",
            &[("secretAccessKey", "S3CR3T")],
        );
        assert!(!err.contains("S3CR3T"), "{err}");
        assert!(
            err.starts_with("rendering datasafedConfigTemplate: template: :2:"),
            "{err}"
        );
        assert!(
            err.contains("range can't iterate over <value of secretAccessKey>"),
            "{err}"
        );
    }

    #[test]
    fn every_parameter_is_redacted_not_only_credentials() {
        let err = render_error(
            "{{ range .Parameters.bucket }}x{{ end }}",
            &[("bucket", "private-bucket-name")],
        );
        assert!(!err.contains("private-bucket-name"), "{err}");
        assert!(err.contains("<value of bucket>"), "{err}");
    }

    #[test]
    fn values_computed_from_parameters_are_redacted_too() {
        for text in [
            "{{ range (b64enc .Parameters.secretAccessKey) }}x{{ end }}",
            "{{ range (upper .Parameters.secretAccessKey) }}x{{ end }}",
            "{{ range (substr 0 4 .Parameters.secretAccessKey) }}x{{ end }}",
            "{{ fail (printf \"bad key %s\" .Parameters.secretAccessKey) }}",
        ] {
            let err = render_error(text, &[("secretAccessKey", "s3cr3tvalue")]);
            for needle in ["s3cr3tvalue", "S3CR3TVALUE", "s3cr", "czNjcjN0dmFsdWU"] {
                assert!(!err.contains(needle), "{text}: {err}");
            }
        }
    }

    #[test]
    fn an_error_that_depends_on_a_value_names_the_place_and_withholds_the_message() {
        // The failing branch is only taken with the real value, so the render with
        // placeholders does not fail there: only the place and the template text are shown.
        let text = "k = v\n{{ if eq .Parameters.mode \"strict\" }}{{ range .Parameters.secretAccessKey }}x{{ end }}{{ end }}";
        let err = render_error(text, &[("mode", "strict"), ("secretAccessKey", "S3CR3T")]);
        assert!(!err.contains("S3CR3T"), "{err}");
        assert_eq!(
            err,
            "rendering datasafedConfigTemplate: line 2, column 47 `.Parameters.secretAccessKey` failed; the template engine's message is withheld: it would quote a value computed from the parameters"
        );
    }
}
