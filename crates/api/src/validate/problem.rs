//! One problem found in an object: a Kubernetes field path, a message and a severity.

use std::fmt;

use serde::Serialize;

/// How bad a problem is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The API server or the controller would reject or fail the object.
    Error,
    /// The object is accepted but probably not what was meant.
    Warning,
}

/// A problem at a field, e.g. `spec.schedules[0].cronExpression: invalid cron expression "x": ...`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Problem {
    /// The field path as Kubernetes writes it (`spec.targets[1].name`; empty for the whole object).
    pub path: String,
    /// What is wrong, with the bad value quoted.
    pub message: String,
    /// Error or warning.
    pub severity: Severity,
}

impl Problem {
    /// An error at `path`.
    pub fn error(path: impl Into<String>, message: impl Into<String>) -> Problem {
        Problem {
            path: path.into(),
            message: message.into(),
            severity: Severity::Error,
        }
    }

    /// A warning at `path`.
    pub fn warning(path: impl Into<String>, message: impl Into<String>) -> Problem {
        Problem {
            path: path.into(),
            message: message.into(),
            severity: Severity::Warning,
        }
    }

    /// The problem for a schema field error (its body is the message).
    pub fn from_field_error(e: &cairn_schema::FieldError) -> Problem {
        Problem::error(e.field.clone(), e.body())
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Joins a parent path and a child field name (`spec` + `target` = `spec.target`).
pub fn child(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_string()
    } else {
        format!("{parent}.{name}")
    }
}

/// Appends a list index to a path (`spec.targets` + 1 = `spec.targets[1]`).
pub fn index(parent: &str, i: usize) -> String {
    format!("{parent}[{i}]")
}
