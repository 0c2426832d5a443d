//! kubectl's output formats for `cairnctl`'s list and describe commands (`-o`): `json` and
//! `yaml` (the object as the API server returns it, keys sorted as kubectl prints them; a list
//! is a `v1 List`), `name` (`backup.dataprotection.kubeblocks.io/b1`), `jsonpath=TEMPLATE`,
//! `custom-columns=HEADER:PATH,...`, and `wide` (the table with more columns). Without `-o`,
//! the table (or the describe text).

pub mod jsonpath;

use serde_json::{Map, Value, json};

pub use self::jsonpath::Template;

/// An `-o` value.
#[derive(Debug, Clone, PartialEq)]
pub enum Format {
    /// `-o wide`: the table with its extra columns.
    Wide,
    Json,
    Yaml,
    /// `-o name`: `<kind>.<group>/<name>` per object.
    Name,
    /// `-o jsonpath=TEMPLATE` (also `jsonpath-file=PATH`).
    JsonPath(Template),
    /// `-o custom-columns=HEADER:PATH,...` (also `custom-columns-file=PATH`).
    CustomColumns(Vec<(String, Template)>),
}

/// The formats `-o` takes, for messages.
pub const FORMATS: &str = "json, yaml, wide, name, jsonpath=TEMPLATE, jsonpath-file=FILE, custom-columns=HEADER:PATH,..., custom-columns-file=FILE";

impl Format {
    /// Parses an `-o` value as kubectl does.
    pub fn parse(text: &str) -> Result<Format, String> {
        let (kind, arg) = match text.split_once('=') {
            Some((kind, arg)) => (kind, Some(arg)),
            None => (text, None),
        };
        let file = |path: &str| {
            std::fs::read_to_string(path).map_err(|e| format!("reading -o {kind} file {path}: {e}"))
        };
        match (kind, arg) {
            ("json", None) => Ok(Format::Json),
            ("yaml", None) => Ok(Format::Yaml),
            ("wide", None) => Ok(Format::Wide),
            ("name", None) => Ok(Format::Name),
            ("jsonpath", Some(t)) => Template::parse(t)
                .map(Format::JsonPath)
                .map_err(|e| e.to_string()),
            ("jsonpath-file", Some(path)) => Template::parse(file(path)?.trim_end_matches('\n'))
                .map(Format::JsonPath)
                .map_err(|e| e.to_string()),
            ("custom-columns", Some(spec)) => columns(spec).map(Format::CustomColumns),
            ("custom-columns-file", Some(path)) => {
                columns_file(&file(path)?).map(Format::CustomColumns)
            }
            ("jsonpath" | "custom-columns" | "jsonpath-file" | "custom-columns-file", None) => {
                Err(format!("-o {kind} needs a value: {kind}=..."))
            }
            _ => Err(format!(
                "unknown output format {text:?}: use one of {FORMATS}"
            )),
        }
    }
}

/// `NAME:.metadata.name,STATUS:.status.phase`.
fn columns(spec: &str) -> Result<Vec<(String, Template)>, String> {
    if spec.trim().is_empty() {
        return Err("-o custom-columns= needs at least one HEADER:PATH".into());
    }
    spec.split(',')
        .map(|column| {
            let (header, path) = column.split_once(':').ok_or_else(|| {
                format!("custom-columns column {column:?} is not HEADER:PATH (such as NAME:.metadata.name)")
            })?;
            let template = Template::relaxed(path).map_err(|e| e.to_string())?;
            Ok((header.to_string(), template))
        })
        .collect()
}

/// A custom-columns file: a line of headers and a line of paths, separated by spaces.
fn columns_file(text: &str) -> Result<Vec<(String, Template)>, String> {
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let (Some(headers), Some(paths)) = (lines.next(), lines.next()) else {
        return Err("a custom-columns file has a line of headers and a line of paths".into());
    };
    let headers: Vec<&str> = headers.split_whitespace().collect();
    let paths: Vec<&str> = paths.split_whitespace().collect();
    if headers.len() != paths.len() {
        return Err(format!(
            "the custom-columns file has {} headers and {} paths",
            headers.len(),
            paths.len()
        ));
    }
    headers
        .into_iter()
        .zip(paths)
        .map(|(h, p)| {
            Ok((
                h.to_string(),
                Template::relaxed(p).map_err(|e| e.to_string())?,
            ))
        })
        .collect()
}

/// `value` with the keys of every object sorted, as kubectl (Go's encoding/json) prints them.
pub fn sorted(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let mut out = Map::new();
            for key in keys {
                if let Some(v) = map.get(key) {
                    out.insert(key.clone(), sorted(v));
                }
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

/// What kubectl prints for a list of objects: a `v1 List`.
pub fn list_object(items: Vec<Value>) -> Value {
    json!({"apiVersion": "v1", "items": items, "kind": "List", "metadata": {"resourceVersion": ""}})
}

/// `-o json`: four-space indents, keys sorted, `<`, `>`, `&`, U+2028 and U+2029 escaped as
/// Go's encoding/json escapes them, a newline at the end: byte for byte what kubectl prints.
pub fn json_text(value: &Value) -> anyhow::Result<String> {
    use serde::Serialize as _;
    let mut out = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, formatter);
    sorted(value).serialize(&mut serializer)?;
    out.push(b'\n');
    Ok(go_escaped(&String::from_utf8(out)?))
}

/// JSON text with the characters Go's encoding/json escapes escaped the same way (they only
/// occur inside strings, where the escapes mean the same).
pub fn go_escaped(json: &str) -> String {
    json.replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029")
}

/// `-o yaml`: keys sorted.
pub fn yaml_text(value: &Value) -> anyhow::Result<String> {
    Ok(serde_saphyr::to_string(&sorted(value))?)
}

/// The kind-and-group prefix of `-o name` (`backup.dataprotection.kubeblocks.io`).
pub fn name_prefix<K: kube::Resource<DynamicType = ()>>() -> String {
    let kind = K::kind(&()).to_lowercase();
    let group = K::group(&());
    if group.is_empty() {
        kind
    } else {
        format!("{kind}.{group}")
    }
}

fn name_of(item: &Value) -> &str {
    item.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// The custom-columns table for `items`: a missing value is `<none>`, several are joined by
/// commas, as kubectl prints them.
pub fn custom_columns(columns: &[(String, Template)], items: &[Value]) -> String {
    let header: Vec<&str> = columns.iter().map(|(h, _)| h.as_str()).collect();
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|item| {
            columns
                .iter()
                .map(|(_, template)| {
                    let values = template.values(item);
                    if values.is_empty() {
                        "<none>".into()
                    } else {
                        values.join(",")
                    }
                })
                .collect()
        })
        .collect();
    crate::cmd::backup::table::render(&header, &rows)
}

/// Prints `items` (objects of kind `K`, as the API server returned them) in `format`; `table`
/// draws the default and wide tables. `None` for the default format means the caller prints
/// its own table.
pub fn list_text<K: kube::Resource<DynamicType = ()>>(
    format: &Format,
    items: &[Value],
    table: impl FnOnce(bool) -> anyhow::Result<String>,
) -> anyhow::Result<String> {
    Ok(match format {
        Format::Wide => table(true)?,
        Format::Json => json_text(&list_object(items.to_vec()))?,
        Format::Yaml => yaml_text(&list_object(items.to_vec()))?,
        Format::Name => items
            .iter()
            .map(|i| format!("{}/{}\n", name_prefix::<K>(), name_of(i)))
            .collect(),
        Format::JsonPath(template) => template.render(&list_object(items.to_vec())),
        Format::CustomColumns(columns) => custom_columns(columns, items),
    })
}

/// Prints one object in `format` (what `kubectl get KIND NAME -o FORMAT` prints); `wide` draws
/// its one-row wide table.
pub fn object_text<K: kube::Resource<DynamicType = ()>>(
    format: &Format,
    item: &Value,
    wide: impl FnOnce() -> anyhow::Result<String>,
) -> anyhow::Result<String> {
    Ok(match format {
        Format::Wide => wide()?,
        Format::Json => json_text(item)?,
        Format::Yaml => yaml_text(item)?,
        Format::Name => format!("{}/{}\n", name_prefix::<K>(), name_of(item)),
        Format::JsonPath(template) => template.render(item),
        Format::CustomColumns(columns) => custom_columns(columns, std::slice::from_ref(item)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_api::backup::Backup;

    fn items() -> Vec<Value> {
        vec![
            json!({"kind": "Backup", "apiVersion": "dataprotection.kubeblocks.io/v1alpha1",
                   "metadata": {"name": "b1", "namespace": "ns"}, "status": {"phase": "Completed"}}),
            json!({"kind": "Backup", "apiVersion": "dataprotection.kubeblocks.io/v1alpha1",
                   "metadata": {"name": "b2", "namespace": "ns"}}),
        ]
    }

    fn text(format: &str) -> String {
        let format = Format::parse(format).expect(format);
        list_text::<Backup>(&format, &items(), |wide| Ok(format!("table wide={wide}")))
            .expect("prints")
    }

    #[test]
    fn formats_print_what_kubectl_prints() {
        assert_eq!(
            text("name"),
            "backup.dataprotection.kubeblocks.io/b1\nbackup.dataprotection.kubeblocks.io/b2\n"
        );
        assert_eq!(text("wide"), "table wide=true");
        let json = text("json");
        assert!(
            json.starts_with("{\n    \"apiVersion\": \"v1\",\n    \"items\": [\n        {\n            \"apiVersion\""),
            "{json}"
        );
        assert!(json.ends_with("\"kind\": \"List\",\n    \"metadata\": {\n        \"resourceVersion\": \"\"\n    }\n}\n"), "{json}");
        let yaml: Value = serde_saphyr::from_str(&text("yaml")).expect("yaml parses");
        assert_eq!(yaml, list_object(items()));
        assert_eq!(text("jsonpath={.items[*].metadata.name}"), "b1 b2");
        assert_eq!(
            text("custom-columns=NAME:.metadata.name,PHASE:.status.phase"),
            "NAME   PHASE\nb1     Completed\nb2     <none>\n"
        );
    }

    #[test]
    fn json_escapes_what_go_escapes() {
        let text = json_text(&json!({"b": "x<y>&z\u{2028}", "a": 1})).expect("json");
        assert_eq!(
            text,
            "{\n    \"a\": 1,\n    \"b\": \"x\\u003cy\\u003e\\u0026z\\u2028\"\n}\n"
        );
        let back: Value = serde_json::from_str(&text).expect("parses");
        assert_eq!(back["b"], "x<y>&z\u{2028}");
    }

    #[test]
    fn unknown_or_incomplete_formats_are_refused() {
        let err = Format::parse("tabular").unwrap_err();
        assert!(err.contains("unknown output format \"tabular\""), "{err}");
        assert!(err.contains("custom-columns="), "{err}");
        assert!(
            Format::parse("jsonpath")
                .unwrap_err()
                .contains("needs a value")
        );
        assert!(
            Format::parse("custom-columns=NAME")
                .unwrap_err()
                .contains("HEADER:PATH")
        );
        assert!(
            Format::parse("jsonpath={.x")
                .unwrap_err()
                .contains("unclosed")
        );
    }

    #[test]
    fn a_custom_columns_file_has_headers_then_paths() {
        let columns = columns_file("NAME   PHASE\n.metadata.name .status.phase\n").expect("file");
        assert_eq!(
            custom_columns(&columns, &items()),
            "NAME   PHASE\nb1     Completed\nb2     <none>\n"
        );
    }
}
