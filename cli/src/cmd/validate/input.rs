//! Reading manifests: files, directories (recursively: *.yaml, *.yml, *.json) and stdin, split into
//! documents as the API server reads them.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde_json::Value;

/// One input: its label in reports and its text.
pub struct Source {
    /// The path as given (joined for directory entries), or `<stdin>`.
    pub label: String,
    /// The whole text.
    pub text: String,
    /// Whether the text is JSON (by extension).
    pub is_json: bool,
}

/// Reads every input, expanding directories in sorted order.
pub fn collect(paths: &[PathBuf]) -> anyhow::Result<Vec<Source>> {
    let mut out = Vec::new();
    for path in paths {
        if path.as_os_str() == "-" {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .context("reading stdin")?;
            out.push(Source {
                label: "<stdin>".to_string(),
                text,
                is_json: false,
            });
        } else if path.is_dir() {
            let mut files = Vec::new();
            walk(path, &mut files)?;
            files.sort();
            for file in files {
                out.push(read(&file)?);
            }
        } else {
            out.push(read(path)?);
        }
    }
    Ok(out)
}

fn walk(dir: &Path, files: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    for entry in
        std::fs::read_dir(dir).with_context(|| format!("reading directory {}", dir.display()))?
    {
        let path = entry
            .with_context(|| format!("reading directory {}", dir.display()))?
            .path();
        if path.is_dir() {
            walk(&path, files)?;
        } else if path
            .extension()
            .is_some_and(|e| e == "yaml" || e == "yml" || e == "json")
        {
            files.push(path);
        }
    }
    Ok(())
}

fn read(path: &Path) -> anyhow::Result<Source> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(Source {
        label: path.display().to_string(),
        text,
        is_json: path.extension().is_some_and(|e| e == "json"),
    })
}

/// A syntax error: where and what.
pub struct SyntaxError {
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// 1-based column, when known.
    pub column: Option<usize>,
    /// The parser's message.
    pub message: String,
}

/// Splits a source into its non-empty documents. YAML is read as the API server reads it:
/// unquoted timestamps stay strings, an alias refers to the latest definition of its anchor.
pub fn documents(source: &Source) -> Result<Vec<Value>, SyntaxError> {
    if source.is_json {
        return match serde_json::from_str::<Value>(&source.text) {
            Ok(Value::Object(map)) if map.get("kind").and_then(Value::as_str) == Some("List") => {
                Ok(map
                    .get("items")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default())
            }
            Ok(v) => Ok(vec![v]),
            Err(e) => Err(SyntaxError {
                line: Some(e.line()),
                column: Some(e.column()),
                message: e.to_string(),
            }),
        };
    }
    match serde_saphyr::from_multiple::<Value>(&source.text) {
        Ok(docs) => Ok(docs.into_iter().filter(|d| !d.is_null()).collect()),
        Err(e) => {
            let location = e.location();
            let text = e.to_string();
            let first = text.lines().next().unwrap_or_default();
            let message = first
                .rsplit_once(": ")
                .map(|(_, m)| m)
                .unwrap_or(first)
                .trim_start_matches("error: ");
            Err(SyntaxError {
                line: location.as_ref().map(|l| l.line() as usize),
                column: location.as_ref().map(|l| l.column() as usize),
                message: message.to_string(),
            })
        }
    }
}
