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
    out
}
