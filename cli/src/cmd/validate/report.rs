//! The validation report: one line per problem (`<file>: <kind>/<name>: <path>: <message>`), skipped
//! objects, a one-line summary, or the same as JSON.

use cairn_api::validate::{Problem, Severity};
use serde::Serialize;

use super::input::SyntaxError;

/// One reported problem.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    /// The input it was found in.
    pub file: String,
    /// The object's kind (empty for syntax errors).
    pub kind: String,
    /// The object's name (empty for syntax errors).
    pub name: String,
    /// The field path.
    pub path: String,
    /// What is wrong.
    pub message: String,
    /// `error` or `warning`.
    pub severity: Severity,
}

impl Entry {
    /// A problem of an object.
    pub fn new(file: &str, kind: &str, name: &str, p: Problem) -> Entry {
        Entry {
            file: file.to_string(),
            kind: kind.to_string(),
            name: name.to_string(),
            path: p.path,
            message: p.message,
            severity: p.severity,
        }
    }

    /// An input that could not be read (syntax, size or a malformed List).
    pub fn syntax(file: &str, e: SyntaxError) -> Entry {
        let at = match (e.line, e.column) {
            (Some(l), Some(c)) => format!(" at line {l} column {c}"),
            (Some(l), None) => format!(" at line {l}"),
            _ => String::new(),
        };
        Entry {
            file: file.to_string(),
            kind: String::new(),
            name: String::new(),
            path: String::new(),
            message: format!("{}{at}: {}", e.heading, e.message),
            severity: Severity::Error,
        }
    }
}

/// An object of a kind this API does not know.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Skipped {
    /// The input it was found in.
    pub file: String,
    /// Its `kind`.
    pub kind: String,
    /// Its name.
    pub name: String,
    /// Its `apiVersion`.
    pub api_version: String,
}

/// Everything found.
#[derive(Debug, Default)]
pub struct Report {
    /// Objects of known kinds checked.
    pub objects: usize,
    /// Problems found.
    pub entries: Vec<Entry>,
    /// Objects skipped.
    pub skipped: Vec<Skipped>,
}

#[derive(Serialize)]
struct Summary {
    objects: usize,
    errors: usize,
    warnings: usize,
    skipped: usize,
}

#[derive(Serialize)]
struct JsonReport<'a> {
    problems: &'a [Entry],
    skipped: &'a [Skipped],
    summary: Summary,
}

impl Report {
    /// How many problems have this severity.
    pub fn count(&self, severity: Severity) -> usize {
        self.entries
            .iter()
            .filter(|e| e.severity == severity)
            .count()
    }

    /// Orders problems by input (in the order given), keeping each input's order stable.
    pub fn sort_by_input(&mut self, inputs: &[String]) {
        let position = |file: &str| inputs.iter().position(|i| i == file).unwrap_or(usize::MAX);
        self.entries.sort_by_key(|e| position(&e.file));
    }

    /// The text report.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for e in &self.entries {
            let object = if e.kind.is_empty() {
                String::new()
            } else {
                format!(" {}/{}:", e.kind, e.name)
            };
            let path = if e.path.is_empty() {
                String::new()
            } else {
                format!(" {}:", e.path)
            };
            let severity = if e.severity == Severity::Warning {
                " warning:"
            } else {
                ""
            };
            out.push_str(&format!(
                "{}:{object}{path}{severity} {}\n",
                e.file, e.message
            ));
        }
        for s in &self.skipped {
            out.push_str(&format!(
                "{}: {}/{}: skipped: not a kind of this API ({})\n",
                s.file, s.kind, s.name, s.api_version
            ));
        }
        out.push_str(&format!(
            "{} objects, {} errors, {} warnings\n",
            self.objects,
            self.count(Severity::Error),
            self.count(Severity::Warning)
        ));
        out
    }

    /// The JSON report: `{"problems": [...], "skipped": [...], "summary": {...}}`.
    pub fn to_json(&self) -> anyhow::Result<String> {
        let report = JsonReport {
            problems: &self.entries,
            skipped: &self.skipped,
            summary: Summary {
                objects: self.objects,
                errors: self.count(Severity::Error),
                warnings: self.count(Severity::Warning),
                skipped: self.skipped.len(),
            },
        };
        Ok(serde_json::to_string_pretty(&report)? + "\n")
    }
}
