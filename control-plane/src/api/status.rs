//! gRPC statuses with `google.rpc` details for the public API (docs/API.md §8).

use std::collections::HashMap;

use cairn_api::validate::{Problem, Severity};
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, FieldViolation, StatusExt as _};

/// The `ErrorInfo` domain of the API's errors.
pub const DOMAIN: &str = "api.cairn.io";

/// A missing or invalid request field: INVALID_ARGUMENT with one field violation.
pub fn invalid_field(field: &str, description: impl Into<String>) -> Status {
    let description = description.into();
    Status::with_error_details(
        Code::InvalidArgument,
        format!("{field}: {description}"),
        ErrorDetails::with_bad_request_violation(field, description),
    )
}

/// The errors among `problems` as INVALID_ARGUMENT with one field violation each; `None` when
/// there is no error (warnings do not refuse a request). `field` maps an object path to the
/// request field it came from.
pub fn invalid_object(problems: &[Problem], field: impl Fn(&str) -> String) -> Option<Status> {
    let errors: Vec<&Problem> = problems
        .iter()
        .filter(|p| p.severity == Severity::Error)
        .collect();
    if errors.is_empty() {
        return None;
    }
    let violations: Vec<FieldViolation> = errors
        .iter()
        .map(|p| FieldViolation::new(field(&p.path), p.message.clone()))
        .collect();
    let message = errors
        .iter()
        .map(|p| format!("{}: {}", field(&p.path), p.message))
        .collect::<Vec<_>>()
        .join("; ");
    Some(Status::with_error_details(
        Code::InvalidArgument,
        message,
        ErrorDetails::with_bad_request(violations),
    ))
}

/// A request field that must not be empty.
pub fn required(field: &str, value: &str) -> Result<(), Status> {
    if value.is_empty() {
        return Err(invalid_field(field, "required: the value is empty"));
    }
    Ok(())
}

/// The object a call addressed, for NOT_FOUND and ALREADY_EXISTS details.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    /// The resource, e.g. `backups`.
    pub resource: &'a str,
    /// Empty for cluster-scoped objects.
    pub namespace: &'a str,
    /// The object's name.
    pub name: &'a str,
}

impl Target<'_> {
    fn describe(&self) -> String {
        if self.namespace.is_empty() {
            format!("{} {:?}", self.resource, self.name)
        } else {
            format!("{} {}/{}", self.resource, self.namespace, self.name)
        }
    }

    /// NOT_FOUND for this object.
    pub fn not_found(&self) -> Status {
        let message = format!("{} not found", self.describe());
        Status::with_error_details(
            Code::NotFound,
            message.clone(),
            ErrorDetails::with_resource_info(self.resource, self.name, self.namespace, message),
        )
    }
}

/// A Kubernetes API error as a gRPC status for a call on `target`.
pub fn from_kube(err: &kube::Error, target: Target<'_>) -> Status {
    match err {
        kube::Error::Api(status) => {
            let describe = target.describe();
            if status.is_not_found() {
                return target.not_found();
            }
            if status.is_already_exists() {
                let message = format!("{describe} already exists");
                return Status::with_error_details(
                    Code::AlreadyExists,
                    message.clone(),
                    ErrorDetails::with_resource_info(
                        target.resource,
                        target.name,
                        target.namespace,
                        message,
                    ),
                );
            }
            if status.is_conflict() {
                return Status::aborted(format!(
                    "{describe} changed concurrently, retry: {}",
                    status.message
                ));
            }
            if status.code == 410 {
                return Status::with_error_details(
                    Code::FailedPrecondition,
                    format!("{describe}: {}", status.message),
                    ErrorDetails::with_precondition_failure_violation(
                        "EXPIRED",
                        describe.clone(),
                        "the page token or resource version is too old: start again without it",
                    ),
                );
            }
            if status.is_invalid() {
                return invalid_field("", format!("{describe}: {}", status.message));
            }
            if status.code == 400 {
                return Status::invalid_argument(format!("{describe}: {}", status.message));
            }
            Status::internal(format!(
                "the Kubernetes API refused an operation on {describe}: {} ({})",
                status.message, status.code
            ))
        }
        other => Status::unavailable(format!(
            "the Kubernetes API could not be reached for {}: {other}",
            target.describe()
        )),
    }
}

/// PERMISSION_DENIED with the authoriser's reason and `ErrorInfo` naming the access.
pub fn denied(message: String, verb: &str, resource: &str, namespace: &str) -> Status {
    let metadata: HashMap<String, String> = [
        ("verb".to_string(), verb.to_string()),
        ("resource".to_string(), resource.to_string()),
        ("namespace".to_string(), namespace.to_string()),
    ]
    .into();
    Status::with_error_details(
        Code::PermissionDenied,
        message,
        ErrorDetails::with_error_info("RBAC_DENIED", DOMAIN, metadata),
    )
}

/// `snake_case` of one camelCase path segment (`retentionPeriod` -> `retention_period`),
/// keeping index suffixes (`parameters[0]`).
pub fn snake_case(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len() + 4);
    for c in segment.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// The request field of an object path: `metadata.x` is the request's `x`, `spec.fooBar` its
/// `spec.foo_bar`.
pub fn request_field(path: &str) -> String {
    let path = path.strip_prefix("metadata.").unwrap_or(path);
    path.split('.')
        .map(snake_case)
        .collect::<Vec<_>>()
        .join(".")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_paths_become_request_fields() {
        assert_eq!(
            request_field("spec.retentionPeriod"),
            "spec.retention_period"
        );
        assert_eq!(request_field("metadata.name"), "name");
        assert_eq!(
            request_field("spec.parameters[0].name"),
            "spec.parameters[0].name"
        );
    }

    #[test]
    fn problems_become_field_violations_naming_field_and_value() {
        let problems = vec![
            Problem::warning("spec", "only a warning"),
            Problem::error("spec.retentionPeriod", "invalid retention period \"7x\""),
        ];
        let status = invalid_object(&problems, request_field).unwrap();
        assert_eq!(status.code(), Code::InvalidArgument);
        let bad = status.get_details_bad_request().unwrap();
        assert_eq!(bad.field_violations.len(), 1);
        assert_eq!(bad.field_violations[0].field, "spec.retention_period");
        assert!(bad.field_violations[0].description.contains("\"7x\""));
        assert!(invalid_object(&problems[..1], request_field).is_none());
    }
}
