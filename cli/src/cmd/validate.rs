//! `cairnctl validate`: check manifests as the API server and the controller would, offline.
//!
//! Reads YAML/JSON like the API server (multi-document, `-` for stdin, directories recursively,
//! `kind: List` expanded, duplicate keys refused; any number of documents, each within limits
//! that every object of the API server's 3 MiB fits, a breach naming the limit),
//! then checks every object of this API for unknown fields (errors under strict field validation,
//! warnings with `--allow-unknown-fields`), against the generated CRD schemas, the Rust types and
//! the semantic checks, and across objects given together (schedule and Backup methods in their
//! policy, parameters against the ActionSet). Objects of other kinds are reported as skipped.
//! Exits 1 when any error was found.

pub(crate) mod input;
mod report;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use cairn_api::validate::manifest::{Checker, UnknownFields};
use cairn_api::validate::{self as checks, Severity};

use report::{Entry, Report, Skipped};

/// Arguments of `cairnctl validate`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Files or directories to check (`-` reads stdin); directories are searched recursively for
    /// *.yaml, *.yml and *.json.
    #[arg(short = 'f', long = "filename", value_name = "FILE|DIR", required = true, num_args = 1..)]
    pub files: Vec<PathBuf>,
    /// Report unknown fields as warnings instead of errors (like `--validate=warn`).
    #[arg(long)]
    pub allow_unknown_fields: bool,
    /// Print the problems and the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs `cairnctl validate`.
pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let sources = input::collect(&args.files)?;
    let checker = Checker::new().context("compiling the CRD schemas")?;
    let unknown = if args.allow_unknown_fields {
        UnknownFields::Warning
    } else {
        UnknownFields::Error
    };
    let mut report = Report::default();
    let mut typed = Vec::new();
    for source in &sources {
        let documents = match input::documents(source) {
            Ok(docs) => docs,
            Err(syntax) => {
                report.entries.push(Entry::syntax(&source.label, syntax));
                continue;
            }
        };
        for document in documents {
            let kind = document
                .get("kind")
                .and_then(|k| k.as_str())
                .unwrap_or("")
                .to_string();
            let name = document
                .pointer("/metadata/name")
                .and_then(|n| n.as_str())
                .unwrap_or("")
                .to_string();
            let checked = checker.check(&document, unknown);
            if checked.kind.is_none() {
                let api_version = document
                    .get("apiVersion")
                    .and_then(|v| v.as_str())
                    .unwrap_or("")
                    .to_string();
                report.skipped.push(Skipped {
                    file: source.label.clone(),
                    kind,
                    name,
                    api_version,
                });
                continue;
            }
            report.objects += 1;
            for problem in checked.problems {
                report
                    .entries
                    .push(Entry::new(&source.label, &kind, &name, problem));
            }
            if let Some(object) = checked.object {
                typed.push((source.label.clone(), kind, name, object));
            }
        }
    }
    let objects: Vec<_> = typed.iter().map(|(_, _, _, o)| o.clone()).collect();
    for (i, problem) in checks::related(&objects) {
        let (file, kind, name, _) = &typed[i];
        report.entries.push(Entry::new(file, kind, name, problem));
    }
    report.sort_by_input(&sources.iter().map(|s| s.label.clone()).collect::<Vec<_>>());
    let out = if args.json {
        report.to_json()?
    } else {
        report.to_text()
    };
    print!("{out}");
    let errors = report.count(Severity::Error);
    Ok(if errors > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
