//! Validation of a value against a schema node, in `kube-openapi`'s order and with its messages.
//!
//! Each node runs, like `validate.SchemaValidator`: the type check, `allOf`/`anyOf`/`oneOf`/`not`,
//! string rules (maxLength, then minLength, then pattern: the first failure only), format, number
//! bounds, list rules (items first, then minItems/maxItems/uniqueItems), `enum`, and object rules
//! (min/maxProperties, additionalProperties, properties, required). Errors become `field.Error`s
//! the way `apiextensions-apiserver`'s `kubeOpenAPIResultToFieldErrors` converts them.
//!
//! Known divergences: errors of `allOf`/`anyOf`/`oneOf`/`not` carry the node's path (the API server
//! prints `<nil>`), and errors come out in schema order rather than Go's random map order.

use serde_json::{Map, Value, json};

use crate::error::{ErrorKind, FieldError};
use crate::node::{Additional, Node};
use crate::{format, gofmt};

const IN: &str = "body";

/// Validates `value` at `path` against `node`, appending errors to `out`.
pub(crate) fn validate(node: &Node, value: &Value, path: &str, out: &mut Vec<FieldError>) {
    if value.is_null() {
        check_type(node, value, path, out);
        check_enum(node, value, path, out);
        return;
    }
    check_type(node, value, path, out);
    check_junctors(node, value, path, out);
    match value {
        Value::String(s) => {
            check_string(node, s, path, out);
            check_format(node, s, path, out);
        }
        Value::Number(n) => check_number(node, n, path, out),
        Value::Array(items) => check_array(node, items, path, out),
        _ => {}
    }
    check_enum(node, value, path, out);
    if let Value::Object(map) = value {
        check_object(node, map, path, out);
    }
}

/// Whether `value` passes `node` without any error.
pub(crate) fn is_valid(node: &Node, value: &Value, path: &str) -> bool {
    let mut errors = Vec::new();
    validate(node, value, path, &mut errors);
    errors.is_empty()
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.as_i64().is_some() || n.as_u64().is_some() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn type_error(path: &str, type_name: &str, actual: &str) -> FieldError {
    FieldError::new(
        ErrorKind::TypeInvalid,
        path,
        json!(actual),
        format!(
            "{path} in {IN} must be of type {type_name}: {}",
            gofmt::quote(actual)
        ),
    )
}

fn check_type(node: &Node, value: &Value, path: &str, out: &mut Vec<FieldError>) {
    if node.types.is_empty() && node.format.is_none() {
        return;
    }
    let contains = |t: &str| node.types.iter().any(|x| x == t);
    let joined = node.types.join(",");
    if value.is_null() {
        if !node.types.is_empty() && !contains("null") && !node.nullable {
            out.push(type_error(path, &joined, "null"));
        }
        return;
    }
    // Mirrors kube-openapi's `typeValidator.Validate`, quirks included.
    let actual = json_type(value);
    let data_format = match actual {
        "integer" => "int64",
        "number" => "float64",
        _ => "",
    };
    let is_float_int = actual == "number"
        && contains("integer")
        && value
            .as_f64()
            .is_some_and(|f| f.fract() == 0.0 && f.is_finite());
    let is_int_float = actual == "integer" && contains("number");
    let is_string_or_array = matches!(value, Value::String(_) | Value::Array(_));
    if let Some(format) = &node.format {
        if !(is_string_or_array
            || contains(actual)
            || data_format == format
            || is_float_int
            || is_int_float)
        {
            out.push(type_error(path, format, data_format));
            return;
        }
        if !(contains("number") || contains("integer")) && is_string_or_array {
            return;
        }
    }
    if !(contains(actual) || is_float_int || is_int_float) {
        out.push(type_error(path, &joined, actual));
    }
}

fn check_junctors(node: &Node, value: &Value, path: &str, out: &mut Vec<FieldError>) {
    let composite = |message: String| FieldError::new(ErrorKind::Invalid, path, json!(""), message);
    if !node.any_of.is_empty() && !node.any_of.iter().any(|n| is_valid(n, value, path)) {
        out.push(composite(format!(
            "{} must validate at least one schema (anyOf)",
            gofmt::quote(path)
        )));
        if let Some(first) = node.any_of.first() {
            validate(first, value, path, out);
        }
    }
    if !node.one_of.is_empty() {
        let valid = node
            .one_of
            .iter()
            .filter(|n| is_valid(n, value, path))
            .count();
        if valid != 1 {
            let extra = if valid == 0 {
                "Found none valid".to_string()
            } else {
                format!("Found {valid} valid alternatives")
            };
            out.push(composite(format!(
                "{} must validate one and only one schema (oneOf). {extra}",
                gofmt::quote(path)
            )));
        }
    }
    if !node.all_of.is_empty() {
        let mut valid = 0;
        for sub in &node.all_of {
            let before = out.len();
            validate(sub, value, path, out);
            if out.len() == before {
                valid += 1;
            }
        }
        if valid != node.all_of.len() {
            let extra = if valid == 0 { ". None validated" } else { "" };
            out.push(composite(format!(
                "{} must validate all the schemas (allOf){extra}",
                gofmt::quote(path)
            )));
        }
    }
    if let Some(not) = &node.not
        && is_valid(not, value, path)
    {
        out.push(composite(format!(
            "{} must not validate the schema (not)",
            gofmt::quote(path)
        )));
    }
}

fn check_string(node: &Node, s: &str, path: &str, out: &mut Vec<FieldError>) {
    let length = s.chars().count() as i64;
    if let Some(max) = node.max_length
        && length > max
    {
        out.push(FieldError::new(
            ErrorKind::TooLong,
            path,
            json!(""),
            too_long_detail(max),
        ));
        return;
    }
    if let Some(min) = node.min_length
        && length < min
    {
        out.push(FieldError::new(
            ErrorKind::Invalid,
            path,
            json!(s),
            format!("{path} in {IN} should be at least {min} chars long"),
        ));
        return;
    }
    if let Some((pattern, re)) = &node.pattern
        && !re.is_match(s)
    {
        out.push(FieldError::new(
            ErrorKind::Invalid,
            path,
            json!(s),
            format!("{path} in {IN} should match '{pattern}'"),
        ));
    }
}

fn too_long_detail(max: i64) -> String {
    if max < 0 {
        "value is too long".to_string()
    } else if max == 1 {
        "may not be more than 1 byte".to_string()
    } else {
        format!("may not be more than {max} bytes")
    }
}

fn check_format(node: &Node, s: &str, path: &str, out: &mut Vec<FieldError>) {
    if let Some(fmt) = &node.format
        && !format::is_valid(fmt, s)
    {
        out.push(FieldError::new(
            ErrorKind::TypeInvalid,
            path,
            json!(s),
            format!("{path} in {IN} must be of type {fmt}: {}", gofmt::quote(s)),
        ));
    }
}

fn check_number(node: &Node, n: &serde_json::Number, path: &str, out: &mut Vec<FieldError>) {
    let bad = Value::Number(n.clone());
    let as_int = n.as_i64();
    let value = n.as_f64().unwrap_or(f64::NAN);
    // Integer data is compared and printed as int64 (`MaximumNativeType`), other data as float64.
    let bound = |b: f64| match as_int {
        Some(_) => (b as i64).to_string(),
        None => gofmt::float_v(b),
    };
    let invalid = |detail: String| FieldError::new(ErrorKind::Invalid, path, bad.clone(), detail);
    // kube-openapi's IsValueValidAgainstRange: an int32 field must hold an int32.
    if node.types == ["integer"] && node.format.as_deref() == Some("int32") {
        let fits = as_int.is_some_and(|i| i32::try_from(i).is_ok())
            || (as_int.is_none()
                && value.fract() == 0.0
                && value >= f64::from(i32::MIN)
                && value <= f64::from(i32::MAX));
        if !fits {
            out.push(FieldError::new(
                ErrorKind::Invalid,
                path,
                json!(""),
                format!("Checked value must be of type integer with format int32 in {path}"),
            ));
        }
    }
    if let Some(factor) = node.multiple_of {
        if factor <= 0.0 {
            out.push(invalid(format!(
                "factor MultipleOf declared for {path} must be positive: {}",
                gofmt::float_v(factor)
            )));
        } else {
            let multiple = match as_int {
                Some(i) if factor.fract() == 0.0 => i % (factor as i64) == 0,
                _ => {
                    ((value / factor).round() * factor - value).abs()
                        <= f64::EPSILON * value.abs().max(1.0)
                }
            };
            if !multiple {
                out.push(invalid(format!(
                    "{path} in {IN} should be a multiple of {}",
                    bound(factor)
                )));
            }
        }
    }
    if let Some(min) = node.minimum {
        let fails = match as_int {
            Some(i) if node.exclusive_minimum => i <= min as i64,
            Some(i) => i < min as i64,
            None if node.exclusive_minimum => value <= min,
            None => value < min,
        };
        if fails {
            let relation = if node.exclusive_minimum {
                "greater than"
            } else {
                "greater than or equal to"
            };
            out.push(invalid(format!(
                "{path} in {IN} should be {relation} {}",
                bound(min)
            )));
        }
    }
    if let Some(max) = node.maximum {
        let fails = match as_int {
            Some(i) if node.exclusive_maximum => i >= max as i64,
            Some(i) => i > max as i64,
            None if node.exclusive_maximum => value >= max,
            None => value > max,
        };
        if fails {
            let relation = if node.exclusive_maximum {
                "less than"
            } else {
                "less than or equal to"
            };
            out.push(invalid(format!(
                "{path} in {IN} should be {relation} {}",
                bound(max)
            )));
        }
    }
}

fn check_array(node: &Node, items: &[Value], path: &str, out: &mut Vec<FieldError>) {
    if let Some(item_schema) = &node.items {
        for (i, item) in items.iter().enumerate() {
            validate(item_schema, item, &format!("{path}[{i}]"), out);
        }
    }
    let size = items.len() as i64;
    if let Some(min) = node.min_items
        && size < min
    {
        out.push(FieldError::new(
            ErrorKind::Invalid,
            path,
            json!(size),
            format!("{path} in {IN} should have at least {min} items"),
        ));
    }
    if let Some(max) = node.max_items
        && size > max
    {
        let noun = if max == 1 { "item" } else { "items" };
        out.push(FieldError::new(
            ErrorKind::TooMany,
            path,
            json!(size),
            format!("must have at most {max} {noun}"),
        ));
    }
    if node.unique_items && has_duplicates(items) {
        out.push(FieldError::new(
            ErrorKind::Invalid,
            path,
            json!(""),
            format!("{path} in {IN} shouldn't contain duplicates"),
        ));
    }
    match node.list_type.as_deref() {
        Some("set") => {
            for (i, item) in items.iter().enumerate() {
                if items[..i].contains(item) {
                    out.push(FieldError::new(
                        ErrorKind::Duplicate,
                        &format!("{path}[{i}]"),
                        item.clone(),
                        String::new(),
                    ));
                }
            }
        }
        Some("map") if !node.list_map_keys.is_empty() => {
            let key_of = |item: &Value| -> Value {
                let mut key = Map::new();
                for k in &node.list_map_keys {
                    if let Some(v) = item.get(k) {
                        key.insert(k.clone(), v.clone());
                    }
                }
                Value::Object(key)
            };
            let keys: Vec<Value> = items.iter().map(key_of).collect();
            for (i, key) in keys.iter().enumerate() {
                if keys[..i].contains(key) {
                    out.push(FieldError::new(
                        ErrorKind::Duplicate,
                        &format!("{path}[{i}]"),
                        key.clone(),
                        String::new(),
                    ));
                }
            }
        }
        _ => {}
    }
}

fn has_duplicates(items: &[Value]) -> bool {
    items
        .iter()
        .enumerate()
        .any(|(i, item)| items[..i].contains(item))
}

fn check_enum(node: &Node, value: &Value, path: &str, out: &mut Vec<FieldError>) {
    let Some(allowed) = &node.enum_values else {
        return;
    };
    if allowed.is_empty() || allowed.iter().any(|a| enum_equal(a, value)) {
        return;
    }
    let supported: Vec<String> = allowed
        .iter()
        .map(|a| match a {
            Value::String(s) => gofmt::quote(s),
            other => gofmt::quote(&gofmt::json(other)),
        })
        .collect();
    out.push(FieldError::new(
        ErrorKind::NotSupported,
        path,
        value.clone(),
        format!("supported values: {}", supported.join(", ")),
    ));
}

fn enum_equal(allowed: &Value, value: &Value) -> bool {
    match (allowed, value) {
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        (Value::Null, _) => false,
        (a, b) => a == b,
    }
}

fn check_object(node: &Node, map: &Map<String, Value>, path: &str, out: &mut Vec<FieldError>) {
    let size = map.len() as i64;
    if let Some(min) = node.min_properties
        && size < min
    {
        out.push(FieldError::new(
            ErrorKind::Invalid,
            path,
            json!(size),
            format!("{path} in {IN} should have at least {min} properties"),
        ));
    }
    if let Some(max) = node.max_properties
        && size > max
    {
        let noun = if max == 1 { "item" } else { "items" };
        out.push(FieldError::new(
            ErrorKind::TooMany,
            path,
            json!(size),
            format!("must have at most {max} {noun}"),
        ));
    }
    let child = |key: &str| {
        if path.is_empty() {
            key.to_string()
        } else {
            format!("{path}.{key}")
        }
    };
    match &node.additional {
        Additional::Allowed(false) => {
            for key in map.keys() {
                if node.property(key).is_none() {
                    out.push(FieldError::new(
                        ErrorKind::Invalid,
                        path,
                        json!(key),
                        format!("{path}.{key} in {IN} is a forbidden property"),
                    ));
                }
            }
        }
        Additional::Schema(schema) => {
            for (key, value) in map {
                if node.property(key).is_none() {
                    validate(schema, value, &child(key), out);
                }
            }
        }
        _ => {}
    }
    for (name, schema) in &node.properties {
        if let Some(value) = map.get(name) {
            validate(schema, value, &child(name), out);
        }
    }
    for name in &node.required {
        if !map.contains_key(name) {
            out.push(FieldError::new(
                ErrorKind::Required,
                &child(name),
                json!(""),
                String::new(),
            ));
        }
    }
}
