//! Semantic checks of an ActionSet: `withParameters` against `parametersSchema` (KubeBlocks' only
//! ActionSet check, with its messages, semantics §1.1), exec/job actions, timeouts.

use serde_json::Value;

use crate::action::ActionSpec;
use crate::actionset::ActionSet;
use crate::parse;
use crate::validate::problem::{Problem, child, index};

/// Checks an ActionSet.
pub fn actionset(a: &ActionSet) -> Vec<Problem> {
    let mut out = Vec::new();
    let schema = a
        .spec
        .parameters_schema
        .as_ref()
        .and_then(|p| p.open_api_v3_schema.as_ref());
    if let Some(backup) = &a.spec.backup {
        out.extend(with_parameters(
            "backup",
            backup.with_parameters.as_deref(),
            schema,
            "spec.backup.withParameters",
        ));
        for (field, actions) in [
            ("preBackup", &backup.pre_backup),
            ("postBackup", &backup.post_backup),
        ] {
            for (i, action) in actions.iter().flatten().enumerate() {
                out.extend(action_spec(action, &index(&child("spec.backup", field), i)));
            }
        }
    }
    if let Some(restore) = &a.spec.restore {
        out.extend(with_parameters(
            "restore",
            restore.with_parameters.as_deref(),
            schema,
            "spec.restore.withParameters",
        ));
        for (i, action) in restore.post_ready.iter().flatten().enumerate() {
            out.extend(action_spec(action, &index("spec.restore.postReady", i)));
        }
    }
    if let Some(schema) = schema
        && let Err(e) = cairn_schema::Schema::new(schema)
    {
        out.push(Problem::error(
            "spec.parametersSchema.openAPIV3Schema",
            format!("invalid parameters schema: {e}"),
        ));
    }
    out
}

/// The declared parameter names of a `parametersSchema.openAPIV3Schema`, or `None` when the schema
/// is missing or has no properties.
pub fn declared_parameters(schema: Option<&Value>) -> Option<Vec<String>> {
    let props = schema?.get("properties")?.as_object()?;
    if props.is_empty() {
        return None;
    }
    Some(props.keys().cloned().collect())
}

fn with_parameters(
    stage: &str,
    names: Option<&[String]>,
    schema: Option<&Value>,
    path: &str,
) -> Vec<Problem> {
    let Some(names) = names.filter(|n| !n.is_empty()) else {
        return Vec::new();
    };
    let Some(declared) = declared_parameters(schema) else {
        return vec![Problem::error(
            path,
            format!("fails to validate {stage} withParameters: the parametersSchema is invalid"),
        )];
    };
    names
        .iter()
        .enumerate()
        .filter(|(_, name)| !declared.contains(name))
        .map(|(i, name)| {
            Problem::error(
                index(path, i),
                format!("fails to validate {stage} withParameters: parameter {name} is not defined in the parametersSchema"),
            )
        })
        .collect()
}

/// Checks one action: exactly one of `exec` and `job`, and a valid `exec.timeout`.
pub fn action_spec(action: &ActionSpec, path: &str) -> Vec<Problem> {
    let mut out = Vec::new();
    match (&action.exec, &action.job) {
        (None, None) => out.push(Problem::error(
            path,
            "action has no exec or job: set exactly one of them",
        )),
        (Some(_), Some(_)) => out.push(Problem::error(
            path,
            "action should have only one of exec or job",
        )),
        _ => {}
    }
    if let Some(timeout) = action.exec.as_ref().and_then(|e| e.timeout.as_deref())
        && let Err(e) = parse::duration::parse(timeout)
    {
        out.push(Problem::error(
            child(&child(path, "exec"), "timeout"),
            e.to_string(),
        ));
    }
    out
}
