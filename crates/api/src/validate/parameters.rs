//! Backup, schedule and Restore `parameters` against the ActionSet's `withParameters` and
//! `parametersSchema` (KubeBlocks' messages, semantics §3.4).

use serde_json::Value;

use crate::common::ParameterPair;
use crate::validate::actionset::declared_parameters;
use crate::validate::problem::{Problem, index};

/// Checks `params` at `path` for ActionSet `actionset` whose stage declares `with_parameters`.
/// `prefix` starts every message (e.g. `fails to validate parameters with actionset <as>: `).
pub fn parameters(
    params: &[ParameterPair],
    with_parameters: &[String],
    schema: Option<&Value>,
    actionset: &str,
    path: &str,
    prefix: &str,
) -> Vec<Problem> {
    if params.is_empty() {
        return Vec::new();
    }
    if params.len() > with_parameters.len() {
        return vec![Problem::error(
            path,
            format!(
                "{prefix}some parameters are undeclared in withParameters of actionSet {actionset}"
            ),
        )];
    }
    let mut out = Vec::new();
    for (i, p) in params.iter().enumerate() {
        if !with_parameters.contains(&p.name) {
            out.push(Problem::error(
                index(path, i),
                format!(
                    "{prefix}parameter {} is undeclared in withParameters of actionSet {actionset}",
                    p.name
                ),
            ));
        }
    }
    if !out.is_empty() {
        return out;
    }
    let Some(declared) = declared_parameters(schema) else {
        return vec![Problem::error(
            path,
            format!("{prefix}the parametersSchema is invalid in actionSet {actionset}"),
        )];
    };
    let properties = schema.and_then(|s| s.get("properties"));
    for (i, p) in params.iter().enumerate() {
        if !declared.contains(&p.name) {
            continue;
        }
        let ty = properties
            .and_then(|props| props.get(&p.name))
            .and_then(|s| s.get("type"))
            .and_then(Value::as_str);
        let ok = match ty {
            Some("integer") => p.value.trim().parse::<i64>().is_ok(),
            Some("number") => p.value.trim().parse::<f64>().is_ok(),
            Some("boolean") => matches!(p.value.trim(), "true" | "false"),
            _ => true,
        };
        if !ok {
            out.push(Problem::error(
                index(path, i),
                format!(
                    "{prefix}parameter {} value {:?} is not of type {}",
                    p.name,
                    p.value,
                    ty.unwrap_or("string")
                ),
            ));
        }
    }
    if out.is_empty() {
        out = schema_problems(params, properties, path, prefix);
    }
    out
}

/// Each value against its property's schema (`enum`, `minimum`/`maximum`, `pattern`, lengths,
/// `format`...), by the OpenAPI engine the CRDs are validated with (`cairn-schema`, the API
/// server's messages). A value is read as its property's `type` says: a number for `integer` and
/// `number`, a boolean for `boolean`, JSON for `array` and `object` (a string when it is not
/// JSON, which the type check then names), else the string itself.
fn schema_problems(
    params: &[ParameterPair],
    properties: Option<&Value>,
    path: &str,
    prefix: &str,
) -> Vec<Problem> {
    let Some(properties) = properties.and_then(Value::as_object) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (i, p) in params.iter().enumerate() {
        let Some(property) = properties.get(&p.name) else {
            continue;
        };
        let mut one = serde_json::Map::new();
        one.insert(p.name.clone(), property.clone());
        let schema = serde_json::json!({"type": "object", "properties": one});
        let compiled = match cairn_schema::Schema::new(&schema) {
            Ok(compiled) => compiled,
            Err(err) => {
                out.push(Problem::error(
                    index(path, i),
                    format!(
                        "{prefix}the parametersSchema of parameter {} is invalid: {err}",
                        p.name
                    ),
                ));
                continue;
            }
        };
        let value = typed(&p.value, property.get("type").and_then(Value::as_str));
        let mut object = serde_json::Map::new();
        object.insert(p.name.clone(), value);
        for error in compiled.validate(&Value::Object(object)) {
            out.push(Problem::error(
                index(path, i),
                format!(
                    "{prefix}parameter {} value {:?} does not match the parametersSchema: {}",
                    p.name,
                    p.value,
                    error.body()
                ),
            ));
        }
    }
    out
}

/// A parameter's text as the JSON value its declared type reads it as.
fn typed(text: &str, ty: Option<&str>) -> Value {
    let trimmed = text.trim();
    let parsed = match ty {
        Some("integer") => trimmed.parse::<i64>().ok().map(Value::from),
        Some("number") => trimmed
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number),
        Some("boolean") => trimmed.parse::<bool>().ok().map(Value::Bool),
        Some("array" | "object") => serde_json::from_str(trimmed).ok(),
        _ => None,
    };
    parsed.unwrap_or_else(|| Value::String(text.to_string()))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn check(pairs: &[(&str, &str)]) -> Vec<String> {
        let schema = json!({"type": "object", "properties": {
            "mode": {"type": "string", "enum": ["full", "schema-only"]},
            "threads": {"type": "integer", "minimum": 1, "maximum": 16},
            "prefix": {"type": "string", "pattern": "^[a-z]+$", "maxLength": 8},
            "tables": {"type": "array", "items": {"type": "string"}}
        }});
        let params: Vec<ParameterPair> = pairs
            .iter()
            .map(|(n, v)| ParameterPair {
                name: n.to_string(),
                value: v.to_string(),
            })
            .collect();
        let declared: Vec<String> = ["mode", "threads", "prefix", "tables"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        parameters(
            &params,
            &declared,
            Some(&schema),
            "as",
            "spec.parameters",
            "",
        )
        .into_iter()
        .map(|p| p.to_string())
        .collect()
    }

    #[test]
    fn values_inside_the_schema_pass() {
        let ok = check(&[
            ("mode", "full"),
            ("threads", "4"),
            ("prefix", "abc"),
            ("tables", r#"["a","b"]"#),
        ]);
        assert_eq!(ok, Vec::<String>::new());
    }

    #[test]
    fn enum_bounds_pattern_and_length_are_enforced_naming_the_parameter_and_value() {
        let problems = check(&[("mode", "partial")]);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("spec.parameters[0]"), "{problems:?}");
        assert!(
            problems[0].contains("parameter mode value \"partial\" does not match the parametersSchema: Unsupported value: \"partial\": supported values: \"full\", \"schema-only\""),
            "{problems:?}"
        );
        let problems = check(&[("mode", "full"), ("threads", "32")]);
        assert!(
            problems.len() == 1 && problems[0].contains("spec.parameters[1]"),
            "{problems:?}"
        );
        assert!(
            problems[0].contains("should be less than or equal to 16"),
            "{problems:?}"
        );
        let problems = check(&[("prefix", "ABC")]);
        assert!(
            problems[0].contains("should match '^[a-z]+$'"),
            "{problems:?}"
        );
        let problems = check(&[("prefix", "abcdefghij")]);
        assert!(problems[0].contains("parameter prefix"), "{problems:?}");
        let problems = check(&[("tables", "not json")]);
        assert!(problems[0].contains("parameter tables"), "{problems:?}");
    }

    #[test]
    fn a_type_mismatch_keeps_kubeblocks_message() {
        let problems = check(&[("threads", "many")]);
        assert_eq!(problems.len(), 1);
        assert!(
            problems[0].contains("parameter threads value \"many\" is not of type integer"),
            "{problems:?}"
        );
    }
}
