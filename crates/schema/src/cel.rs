//! `x-kubernetes-validations`: CEL rules, compiled and evaluated with the `cel` crate (cel-rust) the
//! way `apiextensions-apiserver` evaluates them for a 1.32 API server.
//!
//! - `self` is the value at the rule's node; at the root of a resource (and of an embedded
//!   resource) `metadata` shows only `name` and `generateName`.
//! - A rule that names `oldSelf` is a transition rule: it runs only on update, and only where the
//!   old value correlates with the new one (through object properties, maps that are not
//!   `x-kubernetes-map-type: atomic`, and `x-kubernetes-list-type: map` items by their keys). With
//!   `optionalOldSelf: true` it also runs without an old value, `oldSelf` being `optional.none()`.
//! - A failed rule gives `field.Invalid(path, <schema type>, message)`, the message being the
//!   `messageExpression` result (trimmed, non-empty, one line), else `message`, else
//!   `failed rule: <rule>`; `reason` picks Forbidden/Required/Duplicate instead; `fieldPath` is
//!   appended to the path.
//! - Ratcheting (`CRDValidationRatcheting`, on by default since 1.30): on update, a rule without
//!   `oldSelf` whose value is unchanged (or, where the value does not correlate, whose nearest
//!   correlated ancestor is unchanged) does not fail the request.
//! - Lists of `x-kubernetes-list-type: set` or `map` compare without regard to order, as in
//!   Kubernetes: they are handed to CEL in a canonical order.
//!
//! Divergences: there is no cost budget (cel-rust has no cost model; CEL has no loops beyond the
//! input's size), no static type check at compile time (type errors show at evaluation), and the
//! Kubernetes libraries beyond CEL's standard, strings and lists ones (`quantity`, `url`, `ip`,
//! `format`...) and the `duration`/`timestamp` conversions of `format: date-time|duration`
//! strings are not available.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use cel::common::value::Val;
use cel::objects::{Key, Map as CelMap, OptionalValue};
use cel::{Context, Env, Program, Value as CelValue};
use serde_json::Value;

use crate::error::{ErrorKind, FieldError, SchemaError};
use crate::node::{Additional, Node};

/// The variable a rule's value is bound to.
const SELF: &str = "self";
/// The variable the old value is bound to in a transition rule.
const OLD_SELF: &str = "oldSelf";

/// The reasons a rule may give (`FieldValueErrorReason`).
const REASONS: [&str; 4] = [
    "FieldValueInvalid",
    "FieldValueForbidden",
    "FieldValueRequired",
    "FieldValueDuplicate",
];

/// One compiled `x-kubernetes-validations` entry.
#[derive(Debug, Clone)]
pub(crate) struct Rule {
    pub rule: String,
    pub message: Option<String>,
    pub reason: Option<String>,
    pub field_path: Option<String>,
    pub optional_old_self: bool,
    pub uses_old_self: bool,
    program: Arc<Program>,
    message_program: Option<Arc<Program>>,
}

fn env() -> Result<&'static Arc<Env>, String> {
    static ENV: OnceLock<Result<Arc<Env>, String>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Env::stdlib();
        env.add_extension(cel::extensions::strings)
            .and_then(|()| env.add_extension(cel::extensions::lists))
            .map_err(|e| e.to_string())?;
        Ok(Arc::new(env))
    })
    .as_ref()
    .map_err(Clone::clone)
}

fn compile(source: &str) -> Result<Program, String> {
    env()?.compile(source).map_err(|e| e.to_string())
}

/// Why `x-kubernetes-validations` at `path` cannot be used, one entry per problem, each with the
/// path of the offending key (`<path>.x-kubernetes-validations[0].rule`) and its value. The API
/// server refuses such a CRD.
pub(crate) fn rule_problems(rules: &Value, path: &str) -> Vec<(String, Value, String)> {
    let mut out = Vec::new();
    let Some(list) = rules.as_array() else {
        out.push((
            format!("{path}.x-kubernetes-validations"),
            rules.clone(),
            "must be a list of rules".to_string(),
        ));
        return out;
    };
    for (i, entry) in list.iter().enumerate() {
        let at = format!("{path}.x-kubernetes-validations[{i}]");
        let text = |key: &str| entry.get(key).and_then(Value::as_str);
        let Some(rule) = text("rule") else {
            out.push((format!("{at}.rule"), Value::Null, "rule is required".into()));
            continue;
        };
        if let Err(e) = compile(rule) {
            out.push((
                format!("{at}.rule"),
                Value::String(rule.to_string()),
                format!("compilation failed: {e}"),
            ));
        }
        let message = text("message").unwrap_or("");
        if message.contains('\n') {
            out.push((
                format!("{at}.message"),
                Value::String(message.to_string()),
                "message must not contain line breaks".into(),
            ));
        }
        if message.is_empty() && text("messageExpression").is_none() && rule.contains('\n') {
            out.push((
                format!("{at}.message"),
                Value::Null,
                "message must be specified if rule contains line breaks".into(),
            ));
        }
        if let Some(expr) = text("messageExpression")
            && let Err(e) = compile(expr)
        {
            out.push((
                format!("{at}.messageExpression"),
                Value::String(expr.to_string()),
                format!("messageExpression compilation failed: {e}"),
            ));
        }
        if let Some(reason) = text("reason")
            && !REASONS.contains(&reason)
        {
            out.push((
                format!("{at}.reason"),
                Value::String(reason.to_string()),
                format!("supported values: \"{}\"", REASONS.join("\", \"")),
            ));
        }
    }
    out
}

/// Whether `rule` names `oldSelf` (false when it does not compile).
pub(crate) fn uses_old_self(rule: &str) -> bool {
    compile(rule).is_ok_and(|p| p.references().has_variable(OLD_SELF))
}

/// Parses and compiles the `x-kubernetes-validations` of a schema node.
pub(crate) fn parse_rules(rules: &Value, path: &str) -> Result<Vec<Rule>, SchemaError> {
    if let Some((at, _, message)) = rule_problems(rules, path).into_iter().next() {
        return Err(SchemaError { path: at, message });
    }
    let mut out = Vec::new();
    for entry in rules.as_array().map(Vec::as_slice).unwrap_or_default() {
        let text = |key: &str| entry.get(key).and_then(Value::as_str).map(str::to_string);
        let rule = text("rule").unwrap_or_default();
        let program = compile(&rule).map_err(|message| SchemaError {
            path: path.to_string(),
            message,
        })?;
        let message_program = match text("messageExpression") {
            Some(expr) => Some(Arc::new(compile(&expr).map_err(|message| SchemaError {
                path: path.to_string(),
                message,
            })?)),
            None => None,
        };
        let uses_old_self = program.references().has_variable(OLD_SELF);
        out.push(Rule {
            rule,
            message: text("message"),
            reason: text("reason"),
            field_path: text("fieldPath"),
            optional_old_self: entry.get("optionalOldSelf") == Some(&Value::Bool(true)),
            uses_old_self,
            program: Arc::new(program),
            message_program,
        });
    }
    Ok(out)
}

/// Runs every rule of `node` and its descendants on `value`; `old` is the object before an update.
pub(crate) fn validate(node: &Node, value: &Value, old: Option<&Value>, out: &mut Vec<FieldError>) {
    let ratchet = old.is_some_and(|o| o == value);
    walk(node, value, old, "", true, ratchet, out);
}

fn child_path(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn walk(
    node: &Node,
    value: &Value,
    old: Option<&Value>,
    path: &str,
    resource_root: bool,
    ratchet: bool,
    out: &mut Vec<FieldError>,
) {
    if value.is_null() {
        return;
    }
    if !node.validations.is_empty() {
        evaluate(node, value, old, path, resource_root, ratchet, out);
    }
    match value {
        Value::Object(map) => {
            let correlatable = node.map_type.as_deref() != Some("atomic");
            let mut visit = |key: &str, child: &Node, v: &Value, at: String| {
                let old_v = if correlatable {
                    old.and_then(|o| o.get(key))
                } else {
                    None
                };
                let child_ratchet = if correlatable {
                    old_v.is_some_and(|o| o == v)
                } else {
                    ratchet
                };
                walk(
                    child,
                    v,
                    old_v,
                    &at,
                    child.embedded_resource,
                    child_ratchet,
                    out,
                );
            };
            for (name, child) in &node.properties {
                if let Some(v) = map.get(name) {
                    visit(name, child, v, child_path(path, name));
                }
            }
            if let Additional::Schema(child) = &node.additional {
                for (key, v) in map {
                    if node.property(key).is_none() {
                        visit(key, child, v, format!("{path}[{key}]"));
                    }
                }
            }
        }
        Value::Array(items) => {
            let Some(item_node) = &node.items else {
                return;
            };
            let by_key = node.list_type.as_deref() == Some("map") && !node.list_map_keys.is_empty();
            let old_items = old.and_then(Value::as_array);
            for (i, item) in items.iter().enumerate() {
                let old_item = if by_key {
                    let key = map_key(item, &node.list_map_keys);
                    old_items.and_then(|olds| {
                        olds.iter().find(|o| map_key(o, &node.list_map_keys) == key)
                    })
                } else {
                    None
                };
                let item_ratchet = if by_key {
                    old_item.is_some_and(|o| o == item)
                } else {
                    ratchet
                };
                walk(
                    item_node,
                    item,
                    old_item,
                    &format!("{path}[{i}]"),
                    item_node.embedded_resource,
                    item_ratchet,
                    out,
                );
            }
        }
        _ => {}
    }
}

fn map_key(item: &Value, keys: &[String]) -> Vec<Value> {
    keys.iter()
        .map(|k| item.get(k).cloned().unwrap_or(Value::Null))
        .collect()
}

/// The schema type the API server prints as the bad value of a failed rule (`"string"`, `"object"`).
fn schema_type(node: &Node) -> String {
    if node.types.len() == 1 {
        node.types[0].clone()
    } else {
        String::new()
    }
}

fn evaluate(
    node: &Node,
    value: &Value,
    old: Option<&Value>,
    path: &str,
    resource_root: bool,
    ratchet: bool,
    out: &mut Vec<FieldError>,
) {
    let ty = Value::String(schema_type(node));
    let invalid = |detail: String| FieldError::new(ErrorKind::Invalid, path, ty.clone(), detail);
    let env = match env() {
        Ok(env) => env,
        Err(e) => {
            out.push(invalid(format!("rule compiler initialization error: {e}")));
            return;
        }
    };
    let self_value = to_cel(Some(node), value, resource_root);
    let old_value = old.map(|o| to_cel(Some(node), o, resource_root));
    for rule in &node.validations {
        if rule.uses_old_self && old.is_none() && !rule.optional_old_self {
            continue;
        }
        let old_self = if rule.optional_old_self {
            Some(CelValue::Opaque(Arc::new(match &old_value {
                Some(v) => OptionalValue::of(v.clone()),
                None => OptionalValue::none(),
            })))
        } else {
            old_value.clone()
        };
        let mut context = Context::with_env(Arc::clone(env));
        if let Err(e) = bind(&mut context, SELF, self_value.clone()).and_then(|()| match old_self {
            Some(v) if rule.uses_old_self => bind(&mut context, OLD_SELF, v),
            _ => Ok(()),
        }) {
            out.push(invalid(format!(
                "{e} evaluating rule: {}",
                rule_error_string(rule)
            )));
            continue;
        }
        match rule.program.execute(&context) {
            Ok(CelValue::Bool(true)) => continue,
            Ok(CelValue::Bool(false)) => {}
            Ok(other) => {
                out.push(invalid(format!(
                    "rule did not evaluate to a bool but to {other:?} evaluating rule: {}",
                    rule_error_string(rule)
                )));
                continue;
            }
            Err(e) => {
                out.push(invalid(format!(
                    "{e} evaluating rule: {}",
                    rule_error_string(rule)
                )));
                continue;
            }
        }
        if !rule.uses_old_self && ratchet {
            // Ratcheting: an unchanged value keeps passing even though the rule now fails.
            continue;
        }
        let detail =
            message_from_expression(rule, &context).unwrap_or_else(|| match &rule.message {
                Some(m) if !m.trim().is_empty() => m.trim().to_string(),
                _ => format!("failed rule: {}", rule_error_string(rule)),
            });
        let at = match rule.field_path.as_deref().map(normalize_field_path) {
            Some(extra) if !extra.is_empty() => {
                if path.is_empty() {
                    extra.trim_start_matches('.').to_string()
                } else {
                    format!("{path}{extra}")
                }
            }
            _ => path.to_string(),
        };
        let kind = match rule.reason.as_deref() {
            Some("FieldValueForbidden") => ErrorKind::Forbidden,
            Some("FieldValueRequired") => ErrorKind::Required,
            Some("FieldValueDuplicate") => ErrorKind::Duplicate,
            _ => ErrorKind::Invalid,
        };
        let detail = if kind == ErrorKind::Duplicate {
            String::new()
        } else {
            detail
        };
        out.push(FieldError::new(kind, &at, ty.clone(), detail));
    }
}

fn bind(context: &mut Context<'_, '_>, name: &str, value: CelValue) -> Result<(), String> {
    let val: Box<dyn Val> = value
        .try_into()
        .map_err(|e: cel::ExecutionError| e.to_string())?;
    context.add_variable_as_val(name, val);
    Ok(())
}

/// The result of `messageExpression` when it is a usable message (a one-line non-empty string).
fn message_from_expression(rule: &Rule, context: &Context<'_, '_>) -> Option<String> {
    let program = rule.message_program.as_ref()?;
    match program.execute(context) {
        Ok(CelValue::String(s)) => {
            let trimmed = s.trim();
            (!trimmed.is_empty() && !trimmed.contains('\n') && trimmed.len() <= 5 * 1024)
                .then(|| trimmed.to_string())
        }
        _ => None,
    }
}

/// `fieldPath` as a suffix of a Kubernetes field path: `.a.b`, `['x.y']` becomes `[x.y]`.
fn normalize_field_path(field_path: &str) -> String {
    let trimmed = field_path.trim();
    let mut out = String::new();
    let mut rest = trimmed;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix("['") {
            let end = after.find("']").unwrap_or(after.len());
            out.push('[');
            out.push_str(&after[..end]);
            out.push(']');
            rest = after.get(end + 2..).unwrap_or("");
        } else if let Some(after) = rest.strip_prefix('.') {
            let end = after.find(['.', '[']).unwrap_or(after.len());
            out.push('.');
            out.push_str(&after[..end]);
            rest = &after[end..];
        } else {
            let end = rest.find(['.', '[']).unwrap_or(rest.len());
            out.push('.');
            out.push_str(&rest[..end]);
            rest = &rest[end..];
        }
    }
    out
}

fn rule_error_string(rule: &Rule) -> String {
    match &rule.message {
        Some(m) if !m.trim().is_empty() => m.trim().to_string(),
        _ => rule.rule.trim().to_string(),
    }
}

/// A JSON value as CEL sees it under `node`: integers are `int` (or `double` where the schema
/// says `number`), sets and map-lists are in a canonical order, and a resource root's `metadata`
/// holds only `name` and `generateName`.
fn to_cel(node: Option<&Node>, value: &Value, resource_root: bool) -> CelValue {
    match value {
        Value::Null => CelValue::Null,
        Value::Bool(b) => CelValue::Bool(*b),
        Value::Number(n) => {
            let wants_double = node.is_some_and(|n| n.types == ["number"]);
            match (n.as_i64(), n.as_u64()) {
                (Some(i), _) if !wants_double => CelValue::Int(i),
                (None, Some(u)) if !wants_double => CelValue::UInt(u),
                _ => CelValue::Float(n.as_f64().unwrap_or(f64::NAN)),
            }
        }
        Value::String(s) => CelValue::String(Arc::new(s.clone())),
        Value::Array(items) => {
            let item_node = node.and_then(|n| n.items.as_deref());
            let mut ordered: Vec<&Value> = items.iter().collect();
            match node.and_then(|n| n.list_type.as_deref()) {
                Some("set") => ordered.sort_by_key(|v| v.to_string()),
                Some("map") => {
                    let keys = node.map(|n| n.list_map_keys.clone()).unwrap_or_default();
                    ordered.sort_by_key(|v| Value::Array(map_key(v, &keys)).to_string());
                }
                _ => {}
            }
            CelValue::List(Arc::new(
                ordered
                    .into_iter()
                    .map(|v| to_cel(item_node, v, false))
                    .collect(),
            ))
        }
        Value::Object(map) => {
            let mut entries: HashMap<Key, CelValue> = HashMap::with_capacity(map.len());
            for (key, v) in map {
                let child = node.and_then(|n| n.field_schema(key));
                let converted = if resource_root && key == "metadata" {
                    root_metadata(v)
                } else {
                    to_cel(child, v, child.is_some_and(|c| c.embedded_resource))
                };
                entries.insert(Key::String(Arc::new(key.clone())), converted);
            }
            CelValue::Map(CelMap {
                map: Arc::new(entries),
            })
        }
    }
}

fn root_metadata(metadata: &Value) -> CelValue {
    let mut entries: HashMap<Key, CelValue> = HashMap::new();
    if let Some(map) = metadata.as_object() {
        for key in ["name", "generateName"] {
            if let Some(Value::String(s)) = map.get(key) {
                entries.insert(
                    Key::String(Arc::new(key.to_string())),
                    CelValue::String(Arc::new(s.clone())),
                );
            }
        }
    }
    CelValue::Map(CelMap {
        map: Arc::new(entries),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::Schema;

    fn backup_schema() -> Schema {
        Schema::new(&json!({
            "type": "object",
            "properties": {"spec": {
                "type": "object",
                "x-kubernetes-validations": [{
                    "rule": "has(oldSelf.parameters) == has(self.parameters)",
                    "message": "forbidden to update spec.parameters",
                }],
                "properties": {
                    "backupMethod": {
                        "type": "string",
                        "x-kubernetes-validations": [{"rule": "self == oldSelf", "message": "forbidden to update spec.backupMethod"}],
                    },
                    "retentionPeriod": {"type": "string"},
                    "parameters": {
                        "type": "array",
                        "x-kubernetes-list-type": "map",
                        "x-kubernetes-list-map-keys": ["name"],
                        "items": {"type": "object", "properties": {"name": {"type": "string"}, "value": {"type": "string"}}},
                        "x-kubernetes-validations": [{"rule": "self == oldSelf", "message": "forbidden to update spec.parameters"}],
                    },
                },
            }},
        }))
        .expect("schema compiles")
    }

    fn messages(errors: Vec<crate::FieldError>) -> Vec<String> {
        errors.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn a_changed_immutable_field_is_refused_with_the_api_servers_wording() {
        let schema = backup_schema();
        let old = json!({"spec": {"backupMethod": "full"}});
        let new = json!({"spec": {"backupMethod": "xtrabackup"}});
        assert_eq!(
            messages(schema.validate_update(&new, &old)),
            vec![
                r#"spec.backupMethod: Invalid value: "string": forbidden to update spec.backupMethod"#
            ]
        );
    }

    #[test]
    fn transition_rules_do_not_run_on_create_or_on_an_unchanged_value() {
        let schema = backup_schema();
        let object = json!({"spec": {"backupMethod": "full", "retentionPeriod": "7d"}});
        assert!(schema.validate(&object).is_empty());
        let mut changed = object.clone();
        changed["spec"]["retentionPeriod"] = json!("30d");
        assert!(schema.validate_update(&changed, &object).is_empty());
    }

    #[test]
    fn a_field_added_on_update_has_no_old_value_to_compare() {
        let schema = backup_schema();
        let old = json!({"spec": {}});
        let new = json!({"spec": {"backupMethod": "full"}});
        assert!(schema.validate_update(&new, &old).is_empty());
    }

    #[test]
    fn an_object_rule_sees_the_presence_of_fields() {
        let schema = backup_schema();
        let old = json!({"spec": {"backupMethod": "full"}});
        let new =
            json!({"spec": {"backupMethod": "full", "parameters": [{"name": "a", "value": "1"}]}});
        assert_eq!(
            messages(schema.validate_update(&new, &old)),
            vec![r#"spec: Invalid value: "object": forbidden to update spec.parameters"#]
        );
    }

    #[test]
    fn map_lists_compare_without_order_and_refuse_a_changed_value() {
        let schema = backup_schema();
        let old = json!({"spec": {"parameters": [{"name": "a", "value": "1"}, {"name": "b", "value": "2"}]}});
        let reordered = json!({"spec": {"parameters": [{"name": "b", "value": "2"}, {"name": "a", "value": "1"}]}});
        assert!(schema.validate_update(&reordered, &old).is_empty());
        let changed = json!({"spec": {"parameters": [{"name": "a", "value": "9"}, {"name": "b", "value": "2"}]}});
        assert_eq!(
            messages(schema.validate_update(&changed, &old)),
            vec![r#"spec.parameters: Invalid value: "array": forbidden to update spec.parameters"#]
        );
    }

    #[test]
    fn rules_without_old_self_run_on_create_and_are_ratcheted_on_update() {
        let schema = Schema::new(&json!({
            "type": "object",
            "properties": {"spec": {
                "type": "object",
                "properties": {"replicas": {"type": "integer"}, "name": {"type": "string"}},
                "x-kubernetes-validations": [{"rule": "self.replicas <= 3"}],
            }},
        }))
        .expect("schema compiles");
        let bad = json!({"spec": {"replicas": 5}});
        assert_eq!(
            messages(schema.validate(&bad)),
            vec![r#"spec: Invalid value: "object": failed rule: self.replicas <= 3"#]
        );
        // Unchanged: ratcheted. Changed elsewhere inside spec: spec changed, so it fails.
        assert!(schema.validate_update(&bad, &bad).is_empty());
        let changed = json!({"spec": {"replicas": 5, "name": "x"}});
        assert_eq!(schema.validate_update(&changed, &bad).len(), 1);
    }

    #[test]
    fn message_expression_reason_and_field_path_shape_the_error() {
        let schema = Schema::new(&json!({
            "type": "object",
            "properties": {"spec": {
                "type": "object",
                "properties": {"min": {"type": "integer"}, "max": {"type": "integer"}},
                "x-kubernetes-validations": [
                    {"rule": "self.min <= self.max", "messageExpression": "'min ' + string(self.min) + ' exceeds max ' + string(self.max)", "fieldPath": ".min"},
                    {"rule": "self.max < 100", "message": "too big", "reason": "FieldValueForbidden"},
                    {"rule": "self.max < 100", "message": "fallback", "messageExpression": "self.max"},
                ],
            }},
        }))
        .expect("schema compiles");
        let object = json!({"spec": {"min": 200, "max": 150}});
        assert_eq!(
            messages(schema.validate(&object)),
            vec![
                r#"spec.min: Invalid value: "object": min 200 exceeds max 150"#,
                "spec: Forbidden: too big",
                r#"spec: Invalid value: "object": fallback"#,
            ]
        );
    }

    #[test]
    fn evaluation_errors_name_the_rule() {
        let schema = Schema::new(&json!({
            "type": "object",
            "properties": {"spec": {
                "type": "object",
                "properties": {"a": {"type": "string"}},
                "x-kubernetes-validations": [{"rule": "self.a == 'x'"}],
            }},
        }))
        .expect("schema compiles");
        let errors = messages(schema.validate(&json!({"spec": {}})));
        assert_eq!(errors.len(), 1);
        assert!(
            errors[0].starts_with(r#"spec: Invalid value: "object": "#)
                && errors[0].ends_with("evaluating rule: self.a == 'x'"),
            "{errors:?}"
        );
    }

    #[test]
    fn optional_old_self_runs_on_create_with_none() {
        let schema = Schema::new(&json!({
            "type": "object",
            "properties": {"spec": {
                "type": "object",
                "properties": {"a": {"type": "string"}},
                "x-kubernetes-validations": [{
                    "rule": "oldSelf.hasValue() || self.a == 'first'",
                    "optionalOldSelf": true,
                    "message": "must start as first",
                }],
            }},
        }))
        .expect("schema compiles");
        assert_eq!(
            messages(schema.validate(&json!({"spec": {"a": "second"}}))),
            vec![r#"spec: Invalid value: "object": must start as first"#]
        );
        assert!(schema.validate(&json!({"spec": {"a": "first"}})).is_empty());
        let old = json!({"spec": {"a": "first"}});
        assert!(
            schema
                .validate_update(&json!({"spec": {"a": "second"}}), &old)
                .is_empty()
        );
    }

    #[test]
    fn the_resource_root_shows_only_name_and_generate_name_of_metadata() {
        let schema = Schema::new(&json!({
            "type": "object",
            "x-kubernetes-validations": [
                {"rule": "self.metadata.name.startsWith('b-')", "message": "name must start with b-"},
                {"rule": "!has(self.metadata.labels)", "message": "labels are visible"},
            ],
            "properties": {"spec": {"type": "object"}},
        }))
        .expect("schema compiles");
        let object = json!({"metadata": {"name": "a", "labels": {"x": "y"}}, "spec": {}});
        assert_eq!(
            messages(schema.validate(&object)),
            vec![r#": Invalid value: "object": name must start with b-"#]
        );
    }

    #[test]
    fn a_rule_that_does_not_compile_is_a_schema_error() {
        let error = Schema::new(&json!({
            "type": "object",
            "properties": {"spec": {"type": "object", "x-kubernetes-validations": [{"rule": "self ==="}]}},
        }))
        .expect_err("a bad rule is refused");
        assert!(
            error.path.ends_with("x-kubernetes-validations[0].rule")
                && error.message.starts_with("compilation failed"),
            "{error}"
        );
    }
}
