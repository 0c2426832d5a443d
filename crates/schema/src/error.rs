//! Field errors worded as the Kubernetes API server words them, and the error of loading a schema.

use std::fmt;

use serde_json::Value;

use crate::gofmt;

/// The kind of a field error; its `Display` is the API server's prefix (`Required value`, `Invalid value`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// A required field is missing (`Required value`).
    Required,
    /// A value breaks a rule (`Invalid value`).
    Invalid,
    /// A value has the wrong JSON type or string format (`Invalid value`, `FieldValueTypeInvalid`).
    TypeInvalid,
    /// A value is not in the enum (`Unsupported value`).
    NotSupported,
    /// A string is longer than `maxLength` (`Too long`).
    TooLong,
    /// A list or map has more entries than allowed (`Too many`).
    TooMany,
    /// A list declared as a set or map holds the same entry twice (`Duplicate value`).
    Duplicate,
    /// A field must not be set (`Forbidden`).
    Forbidden,
}

impl ErrorKind {
    /// The API server's reason string (`FieldValueRequired`, ...), as it appears in `details.causes[].reason`.
    pub fn reason(self) -> &'static str {
        match self {
            ErrorKind::Required => "FieldValueRequired",
            ErrorKind::Invalid => "FieldValueInvalid",
            ErrorKind::TypeInvalid => "FieldValueTypeInvalid",
            ErrorKind::NotSupported => "FieldValueNotSupported",
            ErrorKind::TooLong => "FieldValueTooLong",
            ErrorKind::TooMany => "FieldValueTooMany",
            ErrorKind::Duplicate => "FieldValueDuplicate",
            ErrorKind::Forbidden => "FieldValueForbidden",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ErrorKind::Required => "Required value",
            ErrorKind::Invalid | ErrorKind::TypeInvalid => "Invalid value",
            ErrorKind::NotSupported => "Unsupported value",
            ErrorKind::TooLong => "Too long",
            ErrorKind::TooMany => "Too many",
            ErrorKind::Duplicate => "Duplicate value",
            ErrorKind::Forbidden => "Forbidden",
        })
    }
}

/// One problem with one field, printed exactly as the API server prints a `field.Error`:
/// `spec.backoffLimit: Invalid value: 11: spec.backoffLimit in body should be less than or equal to 10`.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldError {
    /// What is wrong.
    pub kind: ErrorKind,
    /// The Kubernetes field path, e.g. `spec.schedules[0].cronExpression` (empty for the object itself).
    pub field: String,
    /// The offending value as decoded JSON (ignored in the message for `Required`, `Forbidden`, `Too long`).
    pub bad_value: Value,
    /// The explanation after the value, e.g. `supported values: "Delete", "Retain"`.
    pub detail: String,
}

impl FieldError {
    pub(crate) fn new(kind: ErrorKind, field: &str, bad_value: Value, detail: String) -> Self {
        FieldError {
            kind,
            field: field.to_string(),
            bad_value,
            detail,
        }
    }

    /// The message without the field path (`field.Error.ErrorBody`).
    pub fn body(&self) -> String {
        let mut s = match self.kind {
            ErrorKind::Required | ErrorKind::Forbidden | ErrorKind::TooLong => {
                self.kind.to_string()
            }
            _ => format!("{}: {}", self.kind, gofmt::bad_value(&self.bad_value)),
        };
        if !self.detail.is_empty() {
            s.push_str(": ");
            s.push_str(&self.detail);
        }
        s
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.body())
    }
}

impl std::error::Error for FieldError {}

/// A schema that cannot be used: a keyword with the wrong JSON type, an invalid `pattern`, a `$ref`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid schema at {path}: {message}")]
pub struct SchemaError {
    /// Where in the schema, e.g. `properties[spec].properties[backoffLimit].maximum`.
    pub path: String,
    /// What is wrong there.
    pub message: String,
}

/// The API server's strict field validation message for an unknown field path: `unknown field "spec.foo"`.
pub fn unknown_field_message(path: &str) -> String {
    format!("unknown field {}", gofmt::quote(path))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn required_errors_print_no_value() {
        let e = FieldError::new(
            ErrorKind::Required,
            "spec.backupMethod",
            json!(""),
            String::new(),
        );
        assert_eq!(e.to_string(), "spec.backupMethod: Required value");
    }

    #[test]
    fn unsupported_values_list_the_allowed_ones() {
        let e = FieldError::new(
            ErrorKind::NotSupported,
            "spec.deletionPolicy",
            json!("x"),
            "supported values: \"Delete\", \"Retain\"".into(),
        );
        assert_eq!(
            e.to_string(),
            r#"spec.deletionPolicy: Unsupported value: "x": supported values: "Delete", "Retain""#
        );
    }

    #[test]
    fn composite_bad_values_print_as_json() {
        let e = FieldError::new(
            ErrorKind::Invalid,
            "spec.x",
            json!({"b": [1]}),
            "bad".into(),
        );
        assert_eq!(e.to_string(), r#"spec.x: Invalid value: {"b":[1]}: bad"#);
    }

    #[test]
    fn unknown_fields_are_quoted() {
        assert_eq!(
            unknown_field_message("spec.foo"),
            r#"unknown field "spec.foo""#
        );
    }
}
