//! Reading manifests: files, directories (recursively: *.yaml, *.yml, *.json) and stdin, split into
//! documents as the API server reads them.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Deserialize;
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

/// Why an input could not be read into documents: where and what.
pub struct SyntaxError {
    /// What kind of failure: `syntax error`, `too large` or `invalid List`.
    pub heading: &'static str,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// 1-based column, when known.
    pub column: Option<usize>,
    /// The parser's message.
    pub message: String,
}

/// The largest request body the API server accepts (3 MiB): no single object a user can
/// apply is larger, so the per-document YAML limits below are sized for a document of this
/// many bytes.
pub const MAX_DOCUMENT_BYTES: usize = 3 * 1024 * 1024;

/// The deepest nesting read, in YAML as in JSON (serde_json's recursion limit). Kubernetes
/// objects nest far less deeply; the CRDs with the deepest schemas reach about 40.
pub const MAX_DEPTH: usize = 128;

/// The stack of the thread that reads a manifest.
const READER_STACK_BYTES: usize = 64 * 1024 * 1024;

/// The YAML reading limits: per document (a file may hold any number of documents, as
/// `kubectl apply -f` reads them), each sized so that any document of
/// [`MAX_DOCUMENT_BYTES`] is read: one node per byte at most (`[a,b,...]` takes two bytes
/// per node, `{a,b,...}` two nodes per two bytes), two events per node.
fn yaml_options() -> serde_saphyr::Options {
    let mut budget = serde_saphyr::Budget::default();
    budget.max_nodes = MAX_DOCUMENT_BYTES;
    budget.max_events = 2 * MAX_DOCUMENT_BYTES;
    budget.max_depth = MAX_DEPTH;
    // The text is already in memory; its size is not limited (every document is).
    budget.max_reader_input_bytes = None;
    let mut options = serde_saphyr::Options::default();
    options.budget = Some(budget);
    options
}

/// The limit a budget breach crossed, in words.
fn budget_message(breach: &serde_saphyr::budget::BudgetBreach) -> String {
    use serde_saphyr::budget::BudgetBreach as B;
    let budget = yaml_options().budget.unwrap_or_default();
    match breach {
        B::Nodes { .. } => format!(
            "a document has more than {} nodes (values, lists and maps); no object the API server accepts ({MAX_DOCUMENT_BYTES} bytes) has more",
            budget.max_nodes
        ),
        B::Events { .. } => format!(
            "a document has more than {} YAML events; no object the API server accepts ({MAX_DOCUMENT_BYTES} bytes) has more",
            budget.max_events
        ),
        B::Depth { .. } => format!(
            "a document nests lists and maps more than {} levels deep",
            budget.max_depth
        ),
        B::Aliases { .. } => format!(
            "a document uses more than {} aliases (*name)",
            budget.max_aliases
        ),
        B::Anchors { .. } => format!(
            "a document defines more than {} anchors (&name)",
            budget.max_anchors
        ),
        B::AliasAnchorRatio { aliases, anchors } => format!(
            "a document uses {aliases} aliases of {anchors} anchors, more than {} per anchor (an alias bomb?)",
            budget.alias_anchor_ratio_multiplier
        ),
        B::ScalarBytes { .. } => format!(
            "a document holds more than {} bytes of values",
            budget.max_total_scalar_bytes
        ),
        B::MergeKeys { .. } => format!(
            "a document has more than {} merge keys (<<)",
            budget.max_merge_keys
        ),
        B::RecordedAnchorEvents { .. } | B::RecordedAnchorBytes { .. } => {
            "a document's anchors expand to more than the reader keeps (an alias bomb?)".into()
        }
        other => format!("a document is larger than the reader accepts ({other:?})"),
    }
}

/// Splits a source into its non-empty documents, a `kind: List` into its items. YAML is read
/// as the API server reads it: unquoted timestamps stay strings, an alias refers to the
/// latest definition of its anchor; duplicate keys are refused in YAML and JSON alike.
pub fn documents(source: &Source) -> Result<Vec<Value>, SyntaxError> {
    // Reading recurses once per level of nesting: on a thread whose stack holds
    // MAX_DEPTH levels with room to spare, whichever thread calls (a debug build takes
    // about 16 KiB a level).
    let read = || {
        if source.is_json {
            json_document(&source.text).map(|d| vec![d])
        } else {
            yaml_documents(&source.text)
        }
    };
    let documents = std::thread::scope(|scope| {
        std::thread::Builder::new()
            .name("read-manifest".into())
            .stack_size(READER_STACK_BYTES)
            .spawn_scoped(scope, read)
            .map(|handle| handle.join())
    });
    let documents = match documents {
        Ok(Ok(result)) => result?,
        Ok(Err(panic)) => std::panic::resume_unwind(panic),
        // No thread to be had: read on this one.
        Err(_) => read()?,
    };
    let mut out = Vec::with_capacity(documents.len());
    for document in documents {
        expand_list(document, &mut out)?;
    }
    Ok(out)
}

fn json_document(text: &str) -> Result<Value, SyntaxError> {
    let mut de = serde_json::Deserializer::from_str(text);
    let result = StrictValue::deserialize(&mut de).and_then(|v| de.end().map(|()| v.0));
    result.map_err(|e| {
        let text = e.to_string();
        let suffix = format!(" at line {} column {}", e.line(), e.column());
        SyntaxError {
            heading: "syntax error",
            line: Some(e.line()),
            column: Some(e.column()),
            message: text.strip_suffix(&suffix).unwrap_or(&text).to_string(),
        }
    })
}

fn yaml_documents(text: &str) -> Result<Vec<Value>, SyntaxError> {
    let mut reader = text.as_bytes();
    let mut out = Vec::new();
    for document in serde_saphyr::read_with_options::<_, Value>(&mut reader, yaml_options()) {
        match document {
            Ok(Value::Null) => {}
            Ok(v) => out.push(v),
            Err(e) => return Err(yaml_error(&e)),
        }
    }
    Ok(out)
}

fn yaml_error(e: &serde_saphyr::Error) -> SyntaxError {
    let location = e.location();
    let line = location.as_ref().map(|l| l.line() as usize);
    let column = location.as_ref().map(|l| l.column() as usize);
    let mut inner = e;
    while let serde_saphyr::Error::WithSnippet { error, .. }
    | serde_saphyr::Error::AliasError { error, .. } = inner
    {
        inner = error;
    }
    if let serde_saphyr::Error::Budget { breach, .. } = inner {
        return SyntaxError {
            heading: "too large",
            line,
            column,
            message: budget_message(breach),
        };
    }
    let text = e.to_string();
    let first = text.lines().next().unwrap_or_default();
    let message = first
        .rsplit_once(": ")
        .map(|(_, m)| m)
        .unwrap_or(first)
        .trim_start_matches("error: ");
    SyntaxError {
        heading: "syntax error",
        line,
        column,
        message: message.to_string(),
    }
}

/// Adds `document` to `out`, or its items when it is a `kind: List` (as kubectl does).
fn expand_list(document: Value, out: &mut Vec<Value>) -> Result<(), SyntaxError> {
    let is_list = document.get("kind").and_then(Value::as_str) == Some("List");
    if !is_list {
        out.push(document);
        return Ok(());
    }
    let invalid = |message: String| SyntaxError {
        heading: "invalid List",
        line: None,
        column: None,
        message,
    };
    let name = document
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .map(|n| format!(" {n:?}"))
        .unwrap_or_default();
    match document.get("items") {
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                if !item.is_object() {
                    return Err(invalid(format!(
                        "List{name}: items[{i}] is {}, not an object",
                        type_name(item)
                    )));
                }
                out.push(item.clone());
            }
            Ok(())
        }
        Some(other) => Err(invalid(format!(
            "List{name}: items is {}, not a list of objects",
            type_name(other)
        ))),
        None => Err(invalid(format!("List{name} has no items"))),
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// A JSON value read like `serde_json::Value`, except that an object with a key twice is
/// an error (serde_json keeps the last one silently; the API server's strict decoding and
/// YAML readers refuse it).
struct StrictValue(Value);

impl<'de> serde::Deserialize<'de> for StrictValue {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor).map(StrictValue)
    }
}

struct StrictVisitor;

impl<'de> serde::de::Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(StrictValue(v)) = seq.next_element()? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if out.contains_key(&key) {
                return Err(serde::de::Error::custom(format_args!(
                    "duplicate key {key:?}"
                )));
            }
            let StrictValue(v) = map.next_value()?;
            out.insert(key, v);
        }
        Ok(Value::Object(out))
    }
}
