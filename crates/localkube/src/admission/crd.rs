//! CustomResourceDefinitions: name, group, scope and version validation, defaults for
//! names and conversion, and the requirement that every version has a structural schema.

use super::{default_at, invalid};
use crate::error::{ApiError, FieldError};
use crate::resource::ResourceType;
use crate::rest::meta::meta_str;
use crate::validation::{is_dns1123_label, is_dns1123_subdomain};
use serde_json::{Value, json};

fn s<'a>(v: &'a Value, p: &str) -> &'a str {
    v.pointer(p).and_then(Value::as_str).unwrap_or_default()
}

pub fn on_write(rt: &ResourceType, crd: &mut Value) -> Result<(), ApiError> {
    let kind = s(crd, "/spec/names/kind").to_string();
    if !kind.is_empty() {
        default_at(
            crd,
            &["spec", "names", "singular"],
            json!(kind.to_lowercase()),
        );
        default_at(
            crd,
            &["spec", "names", "listKind"],
            json!(format!("{kind}List")),
        );
    }
    default_at(crd, &["spec", "conversion"], json!({"strategy": "None"}));
    let errors = validate(crd);
    invalid(rt, crd, errors)
}

fn validate(crd: &Value) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let group = s(crd, "/spec/group");
    let plural = s(crd, "/spec/names/plural");
    if group.is_empty() {
        errors.push(FieldError::required("spec.group", ""));
    } else if !group.contains('.') {
        errors.push(FieldError::invalid(
            "spec.group",
            json!(group),
            "should be a domain with at least one dot",
        ));
    } else if let Err(why) = is_dns1123_subdomain(group) {
        errors.push(FieldError::invalid("spec.group", json!(group), why));
    }
    let name = meta_str(crd, "name");
    if !plural.is_empty() && !group.is_empty() && name != format!("{plural}.{group}") {
        errors.push(FieldError::invalid(
            "metadata.name",
            json!(name),
            "must be spec.names.plural+\".\"+spec.group",
        ));
    }
    for field in ["plural", "singular", "kind", "listKind"] {
        let value = s(crd, &format!("/spec/names/{field}"));
        let path = format!("spec.names.{field}");
        if value.is_empty() {
            errors.push(FieldError::required(path, ""));
            continue;
        }
        let ok = if field == "kind" || field == "listKind" {
            value.chars().all(|c| c.is_ascii_alphanumeric())
        } else {
            is_dns1123_label(value).is_ok()
        };
        if !ok {
            errors.push(FieldError::invalid(
                path,
                json!(value),
                "must be a valid name",
            ));
        }
    }
    for list in ["shortNames", "categories"] {
        for (i, v) in crd
            .pointer(&format!("/spec/names/{list}"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            let text = v.as_str().unwrap_or_default();
            if is_dns1123_label(text).is_err() {
                errors.push(FieldError::invalid(
                    format!("spec.names.{list}[{i}]"),
                    v.clone(),
                    "must be a valid name",
                ));
            }
        }
    }
    let scope = s(crd, "/spec/scope");
    if !matches!(scope, "Namespaced" | "Cluster") {
        errors.push(FieldError::not_supported(
            "spec.scope",
            json!(scope),
            &["Cluster", "Namespaced"],
        ));
    }
    let versions = crd.pointer("/spec/versions").and_then(Value::as_array);
    match versions {
        None => errors.push(FieldError::required(
            "spec.versions",
            "must have exactly one version marked as storage version",
        )),
        Some(vs) if vs.is_empty() => errors.push(FieldError::invalid(
            "spec.versions",
            json!([]),
            "must have exactly one version marked as storage version",
        )),
        Some(vs) => {
            let storage = vs
                .iter()
                .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
                .count();
            if storage != 1 {
                errors.push(FieldError::invalid(
                    "spec.versions",
                    Value::Array(vs.clone()),
                    "must have exactly one version marked as storage version",
                ));
            }
            let mut names = Vec::new();
            for (i, v) in vs.iter().enumerate() {
                let vname = s(v, "/name");
                if vname.is_empty() || is_dns1123_label(vname).is_err() {
                    errors.push(FieldError::invalid(
                        format!("spec.versions[{i}].name"),
                        json!(vname),
                        "must be a valid version name",
                    ));
                }
                if names.contains(&vname) {
                    errors.push(FieldError::duplicate(
                        format!("spec.versions[{i}].name"),
                        json!(vname),
                    ));
                }
                names.push(vname);
                match v.pointer("/schema/openAPIV3Schema") {
                    None => errors.push(FieldError::required(
                        format!("spec.versions[{i}].schema.openAPIV3Schema"),
                        "schemas are required",
                    )),
                    Some(schema) => {
                        for e in crate::rest::structural_errors(schema) {
                            errors.push(FieldError {
                                field: format!(
                                    "spec.versions[{i}].schema.openAPIV3Schema{}",
                                    e.field
                                ),
                                ..e
                            });
                        }
                    }
                }
            }
        }
    }
    if let Some(strategy) = crd
        .pointer("/spec/conversion/strategy")
        .and_then(Value::as_str)
        && strategy != "None"
    {
        errors.push(FieldError::not_supported(
            "spec.conversion.strategy",
            json!(strategy),
            &["None"],
        ));
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crd() -> Value {
        json!({"metadata": {"name": "widgets.example.com"}, "spec": {
            "group": "example.com", "scope": "Namespaced",
            "names": {"plural": "widgets", "kind": "Widget"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                          "schema": {"openAPIV3Schema": {"type": "object"}}}]}})
    }

    #[test]
    fn a_valid_crd_gets_singular_list_kind_and_conversion_defaults() {
        let rt = crate::resource::Registry::new(&[])
            .lookup("apiextensions.k8s.io", "v1", "customresourcedefinitions")
            .unwrap();
        let mut c = crd();
        on_write(&rt, &mut c).unwrap();
        assert_eq!(c["spec"]["names"]["singular"], "widget");
        assert_eq!(c["spec"]["names"]["listKind"], "WidgetList");
        assert_eq!(c["spec"]["conversion"]["strategy"], "None");
    }

    #[test]
    fn the_name_must_be_plural_dot_group_and_one_version_must_be_storage() {
        let mut c = crd();
        c["metadata"]["name"] = json!("other.example.com");
        c["spec"]["versions"][0]["storage"] = json!(false);
        c["spec"]["names"]["singular"] = json!("widget");
        c["spec"]["names"]["listKind"] = json!("WidgetList");
        let fields: Vec<_> = validate(&c).into_iter().map(|e| e.field).collect();
        assert_eq!(fields, ["metadata.name", "spec.versions"]);
    }
}
