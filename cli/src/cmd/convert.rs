//! `cairnctl convert`: convert objects of the old API (KubeBlocks ≤ 0.6: BackupTool, RestoreJob, the
//! old BackupPolicy and Backup shapes) to the new one.
//!
//! Prints the new objects as multi-document YAML on stdout (other objects pass through unchanged)
//! and one warning per field without an equivalent on stderr, naming the source object and path.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use cairn_api::legacy::convert;
use cairn_api::object::{ApiObject, ObjectError};
use serde_json::Value;

use super::validate::input;

/// Arguments of `cairnctl convert`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Files or directories with old-API objects (`-` reads stdin).
    #[arg(short = 'f', long = "filename", value_name = "FILE|DIR", required = true, num_args = 1..)]
    pub files: Vec<PathBuf>,
}

/// Runs `cairnctl convert`.
pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut out = String::new();
    let mut warnings = Vec::new();
    for source in input::collect(&args.files)? {
        let documents = input::documents(&source).map_err(|e| {
            let at = e.line.map(|l| format!(" at line {l}")).unwrap_or_default();
            anyhow::anyhow!("{}: {}{at}: {}", source.label, e.heading, e.message)
        })?;
        for document in documents {
            let values = match ApiObject::from_value(document.clone()) {
                Ok(object) => {
                    let conversion = convert::convert_one(&object);
                    warnings.extend(conversion.warnings);
                    conversion
                        .objects
                        .iter()
                        .map(ApiObject::to_value)
                        .collect::<Result<Vec<_>, _>>()
                        .context("serializing a converted object")?
                }
                // Objects of other kinds (ConfigMaps, Secrets...) pass through unchanged.
                Err(ObjectError::UnknownKind { .. }) => vec![document],
                Err(e) => {
                    let name = document
                        .pointer("/metadata/name")
                        .and_then(Value::as_str)
                        .unwrap_or("");
                    return Err(
                        anyhow::Error::new(e).context(format!("{}: reading {name}", source.label))
                    );
                }
            };
            for value in values {
                out.push_str("---\n");
                out.push_str(&serde_saphyr::to_string(&value).context("writing YAML")?);
                if !out.ends_with('\n') {
                    out.push('\n');
                }
            }
        }
    }
    print!("{out}");
    for warning in &warnings {
        eprintln!("warning: {warning}");
    }
    Ok(ExitCode::SUCCESS)
}
