//! API errors, rendered as `metav1.Status` with the messages kubectl prints verbatim.

use serde_json::{Value, json};
use std::fmt;

/// One field-level validation failure, printed like apimachinery's `field.Error`.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldError {
    pub kind: FieldErrorKind,
    /// The field path, e.g. `spec.containers[0].name`.
    pub field: String,
    /// The offending value, when the error kind prints one.
    pub value: Option<Value>,
    pub detail: String,
}

/// The apimachinery `field.ErrorType`s localkube produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldErrorKind {
    Invalid,
    Required,
    NotFound,
    NotSupported,
    Forbidden,
    Duplicate,
    TooLong,
    TooMany,
    /// An error rendered elsewhere (the schema engine); `detail` is the whole body.
    Rendered(&'static str),
}

impl FieldErrorKind {
    /// The `details.causes[].reason` of a Status.
    pub fn reason(self) -> &'static str {
        match self {
            FieldErrorKind::Invalid => "FieldValueInvalid",
            FieldErrorKind::Required => "FieldValueRequired",
            FieldErrorKind::NotFound => "FieldValueNotFound",
            FieldErrorKind::NotSupported => "FieldValueNotSupported",
            FieldErrorKind::Forbidden => "FieldValueForbidden",
            FieldErrorKind::Duplicate => "FieldValueDuplicate",
            FieldErrorKind::TooLong => "FieldValueTooLong",
            FieldErrorKind::TooMany => "FieldValueTooMany",
            FieldErrorKind::Rendered(reason) => reason,
        }
    }
}

impl FieldError {
    pub fn invalid(field: impl Into<String>, value: Value, detail: impl Into<String>) -> Self {
        FieldError {
            kind: FieldErrorKind::Invalid,
            field: field.into(),
            value: Some(value),
            detail: detail.into(),
        }
    }

    pub fn required(field: impl Into<String>, detail: impl Into<String>) -> Self {
        FieldError {
            kind: FieldErrorKind::Required,
            field: field.into(),
            value: None,
            detail: detail.into(),
        }
    }

    pub fn forbidden(field: impl Into<String>, detail: impl Into<String>) -> Self {
        FieldError {
            kind: FieldErrorKind::Forbidden,
            field: field.into(),
            value: None,
            detail: detail.into(),
        }
    }

    pub fn not_supported(field: impl Into<String>, value: Value, supported: &[&str]) -> Self {
        let list = supported
            .iter()
            .map(|s| format!("{s:?}"))
            .collect::<Vec<_>>()
            .join(", ");
        FieldError {
            kind: FieldErrorKind::NotSupported,
            field: field.into(),
            value: Some(value),
            detail: format!("supported values: {list}"),
        }
    }

    pub fn duplicate(field: impl Into<String>, value: Value) -> Self {
        FieldError {
            kind: FieldErrorKind::Duplicate,
            field: field.into(),
            value: Some(value),
            detail: String::new(),
        }
    }

    pub fn too_long(field: impl Into<String>, max: usize) -> Self {
        FieldError {
            kind: FieldErrorKind::TooLong,
            field: field.into(),
            value: None,
            detail: format!("may not be more than {max} bytes"),
        }
    }

    /// An error whose body was rendered elsewhere, with its `details.causes[].reason`.
    pub fn rendered(
        field: impl Into<String>,
        body: impl Into<String>,
        reason: &'static str,
    ) -> Self {
        FieldError {
            kind: FieldErrorKind::Rendered(reason),
            field: field.into(),
            value: None,
            detail: body.into(),
        }
    }

    /// The text after `<field>: `, as `field.Error.ErrorBody()` renders it.
    pub fn body(&self) -> String {
        if let FieldErrorKind::Rendered(_) = self.kind {
            return self.detail.clone();
        }
        let value = self.value.as_ref().map(go_value);
        let head = match self.kind {
            FieldErrorKind::Invalid => match &value {
                Some(v) => format!("Invalid value: {v}"),
                None => "Invalid value".to_string(),
            },
            FieldErrorKind::Required => "Required value".to_string(),
            FieldErrorKind::NotFound => match &value {
                Some(v) => format!("Not found: {v}"),
                None => "Not found".to_string(),
            },
            FieldErrorKind::NotSupported => match &value {
                Some(v) => format!("Unsupported value: {v}"),
                None => "Unsupported value".to_string(),
            },
            FieldErrorKind::Forbidden => "Forbidden".to_string(),
            FieldErrorKind::Duplicate => match &value {
                Some(v) => format!("Duplicate value: {v}"),
                None => "Duplicate value".to_string(),
            },
            FieldErrorKind::TooLong => "Too long".to_string(),
            FieldErrorKind::TooMany => "Too many".to_string(),
            FieldErrorKind::Rendered(_) => String::new(),
        };
        if self.detail.is_empty() {
            head
        } else {
            format!("{head}: {}", self.detail)
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            write!(f, "{}", self.body())
        } else {
            write!(f, "{}: {}", self.field, self.body())
        }
    }
}

/// Formats a JSON value the way Go's `%#v`/`%q` shows it in field errors: strings quoted,
/// scalars bare, anything else as compact JSON.
fn go_value(value: &Value) -> String {
    match value {
        Value::String(s) => format!("{s:?}"),
        Value::Null => "null".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        other => other.to_string(),
    }
}

/// An error answered to a client as a `metav1.Status`.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    pub details: Option<Value>,
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}): {}", self.code, self.reason, self.message)
    }
}

impl std::error::Error for ApiError {}

/// A resource named the way errors name it: `configmaps` for the core group,
/// `backups.dataprotection.kubeblocks.io` otherwise.
pub fn qualified(plural: &str, group: &str) -> String {
    if group.is_empty() {
        plural.to_string()
    } else {
        format!("{plural}.{group}")
    }
}

fn details(name: &str, group: &str, plural: &str) -> Value {
    let mut d = json!({ "name": name, "kind": plural });
    if !group.is_empty() {
        d["group"] = json!(group);
    }
    d
}

impl ApiError {
    fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }

    pub fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    pub fn not_found(group: &str, plural: &str, name: &str) -> Self {
        ApiError::new(
            404,
            "NotFound",
            format!("{} {name:?} not found", qualified(plural, group)),
        )
        .with_details(details(name, group, plural))
    }

    /// An unknown route, answered like the apiserver's default 404.
    pub fn route_not_found() -> Self {
        ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
        .with_details(json!({}))
    }

    pub fn already_exists(group: &str, plural: &str, name: &str) -> Self {
        ApiError::new(
            409,
            "AlreadyExists",
            format!("{} {name:?} already exists", qualified(plural, group)),
        )
        .with_details(details(name, group, plural))
    }

    pub fn conflict(group: &str, plural: &str, name: &str, why: &str) -> Self {
        ApiError::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} {name:?}: {why}",
                qualified(plural, group)
            ),
        )
        .with_details(details(name, group, plural))
    }

    /// The optimistic-concurrency conflict every client knows.
    pub fn modified(group: &str, plural: &str, name: &str) -> Self {
        ApiError::conflict(
            group,
            plural,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    /// `<Kind>.<group> "<name>" is invalid: <errors>` with one cause per field error.
    pub fn invalid(kind: &str, group: &str, name: &str, errors: &[FieldError]) -> Self {
        let qualified_kind = if group.is_empty() {
            kind.to_string()
        } else {
            format!("{kind}.{group}")
        };
        let aggregate = match errors {
            [one] => one.to_string(),
            many => format!(
                "[{}]",
                many.iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        let causes: Vec<Value> = errors
            .iter()
            .map(|e| {
                json!({
                    "reason": e.kind.reason(),
                    "message": e.body(),
                    "field": e.field,
                })
            })
            .collect();
        let mut d = json!({ "name": name, "kind": kind, "causes": causes });
        if !group.is_empty() {
            d["group"] = json!(group);
        }
        ApiError::new(
            422,
            "Invalid",
            format!("{qualified_kind} {name:?} is invalid: {aggregate}"),
        )
        .with_details(d)
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(400, "BadRequest", message)
    }

    pub fn unauthorized() -> Self {
        ApiError::new(401, "Unauthorized", "Unauthorized")
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        ApiError::new(403, "Forbidden", message)
    }

    pub fn method_not_allowed(message: impl Into<String>) -> Self {
        ApiError::new(405, "MethodNotAllowed", message)
    }

    pub fn expired(message: impl Into<String>) -> Self {
        ApiError::new(410, "Expired", message)
    }

    pub fn too_old(requested: u64, oldest: u64) -> Self {
        ApiError::expired(format!("too old resource version: {requested} ({oldest})"))
    }

    pub fn unsupported_media_type(message: impl Into<String>) -> Self {
        ApiError::new(415, "UnsupportedMediaType", message)
    }

    pub fn not_acceptable(message: impl Into<String>) -> Self {
        ApiError::new(406, "NotAcceptable", message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        ApiError::new(500, "InternalError", message)
    }

    pub fn timeout(message: impl Into<String>) -> Self {
        ApiError::new(504, "Timeout", message)
    }

    pub fn too_many_requests(message: impl Into<String>) -> Self {
        ApiError::new(429, "TooManyRequests", message)
    }

    pub fn request_entity_too_large(message: impl Into<String>) -> Self {
        ApiError::new(413, "RequestEntityTooLarge", message)
    }

    /// The `metav1.Status` body.
    pub fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(d) = &self.details {
            status["details"] = d.clone();
        }
        status
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_found_names_core_resources_without_a_group() {
        let e = ApiError::not_found("", "configmaps", "c1");
        assert_eq!(e.message, "configmaps \"c1\" not found");
        assert_eq!(
            e.to_status()["details"],
            json!({"name":"c1","kind":"configmaps"})
        );
    }

    #[test]
    fn not_found_names_group_resources_with_their_group() {
        let e = ApiError::not_found("dataprotection.kubeblocks.io", "backups", "b1");
        assert_eq!(
            e.message,
            "backups.dataprotection.kubeblocks.io \"b1\" not found"
        );
    }

    #[test]
    fn conflict_message_matches_the_apiserver() {
        let e = ApiError::modified("", "configmaps", "c1");
        assert_eq!(e.code, 409);
        assert_eq!(
            e.message,
            "Operation cannot be fulfilled on configmaps \"c1\": the object has been modified; please apply your changes to the latest version and try again"
        );
    }

    #[test]
    fn invalid_lists_one_error_bare_and_many_in_brackets() {
        let one = ApiError::invalid(
            "Backup",
            "dataprotection.kubeblocks.io",
            "b1",
            &[FieldError::invalid("spec.x", json!("y"), "must be z")],
        );
        assert_eq!(
            one.message,
            "Backup.dataprotection.kubeblocks.io \"b1\" is invalid: spec.x: Invalid value: \"y\": must be z"
        );
        let many = ApiError::invalid(
            "ConfigMap",
            "",
            "c",
            &[
                FieldError::required("metadata.name", ""),
                FieldError::forbidden("spec", "no"),
            ],
        );
        assert_eq!(
            many.message,
            "ConfigMap \"c\" is invalid: [metadata.name: Required value, spec: Forbidden: no]"
        );
        assert_eq!(
            many.to_status()["details"]["causes"][0]["reason"],
            "FieldValueRequired"
        );
    }

    #[test]
    fn not_supported_lists_the_supported_values_quoted() {
        let e =
            FieldError::not_supported("spec.scope", json!("Galaxy"), &["Cluster", "Namespaced"]);
        assert_eq!(
            e.to_string(),
            "spec.scope: Unsupported value: \"Galaxy\": supported values: \"Cluster\", \"Namespaced\""
        );
    }
}
