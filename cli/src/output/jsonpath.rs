//! kubectl's JSONPath templates (`-o jsonpath=...`, the cells of `-o custom-columns=...`):
//! literal text around `{...}` expressions, `{range EXPR}...{end}`, quoted literals such as
//! `{"\n"}`, results of one expression joined by a space, maps and lists printed as compact
//! JSON, and missing keys printing nothing (kubectl's default `--allow-missing-template-keys`).
//!
//! The path expressions themselves (`.items[*].metadata.name`, `[?(@.status.phase=="Failed")]`,
//! `..name`, slices) are evaluated by `jsonpath-rust` (RFC 9535 JSONPath, already in the build
//! through kube-client), after turning kubectl's dialect (a leading `.` instead of `$`, `\.` in
//! key names) into RFC 9535 syntax. The template layer is written here because no crate
//! implements kubectl's template language; it is what client-go's `jsonpath` package adds on
//! top of its path parser.

use jsonpath_rust::JsonPath as _;
use serde_json::Value;

/// An error in a template, naming it and where.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TemplateError {
    #[error("jsonpath template {template:?}: unclosed '{{' at byte {at}")]
    Unclosed { template: String, at: usize },
    #[error("jsonpath template {template:?}: {{end}} without {{range}}")]
    EndWithoutRange { template: String },
    #[error("jsonpath template {template:?}: {{range}} without {{end}}")]
    RangeWithoutEnd { template: String },
    #[error("jsonpath template {template:?}: bad quoted text {text}")]
    Quote { template: String, text: String },
    #[error("jsonpath template {template:?}: bad expression {expression:?}: {why}")]
    Expression {
        template: String,
        expression: String,
        why: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
enum Node {
    Text(String),
    /// An RFC 9535 path (`$...`), evaluated on the current node.
    Path(String),
    Range(String, Vec<Node>),
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    source: String,
    nodes: Vec<Node>,
}

impl Template {
    /// Parses a kubectl JSONPath template such as `{range .items[*]}{.metadata.name}{"\n"}{end}`.
    pub fn parse(template: &str) -> Result<Self, TemplateError> {
        let mut stack: Vec<(String, Vec<Node>)> = Vec::new();
        let mut nodes = Vec::new();
        let mut rest = template;
        let mut offset = 0;
        while !rest.is_empty() {
            let Some(open) = rest.find('{') else {
                nodes.push(Node::Text(rest.to_string()));
                break;
            };
            if open > 0 {
                nodes.push(Node::Text(rest[..open].to_string()));
            }
            let close = closing_brace(&rest[open..]).ok_or_else(|| TemplateError::Unclosed {
                template: template.into(),
                at: offset + open,
            })?;
            let inner = rest[open + 1..open + close].trim();
            if inner == "end" {
                let (path, outer) = stack.pop().ok_or_else(|| TemplateError::EndWithoutRange {
                    template: template.into(),
                })?;
                let body = std::mem::replace(&mut nodes, outer);
                nodes.push(Node::Range(path, body));
            } else if let Some(expr) = inner.strip_prefix("range ") {
                let path = to_rfc9535(template, expr.trim())?;
                stack.push((path, std::mem::take(&mut nodes)));
            } else if inner.starts_with('"') || inner.starts_with('\'') {
                nodes.push(Node::Text(unquote(inner).ok_or_else(|| {
                    TemplateError::Quote {
                        template: template.into(),
                        text: inner.into(),
                    }
                })?));
            } else if !inner.is_empty() {
                nodes.push(Node::Path(to_rfc9535(template, inner)?));
            }
            offset += open + close + 1;
            rest = &rest[open + close + 1..];
        }
        if !stack.is_empty() {
            return Err(TemplateError::RangeWithoutEnd {
                template: template.into(),
            });
        }
        Ok(Template {
            source: template.into(),
            nodes,
        })
    }

    /// A custom-columns cell spec: `.metadata.name`, `metadata.name` or `{.metadata.name}`
    /// (kubectl's relaxed form).
    pub fn relaxed(spec: &str) -> Result<Self, TemplateError> {
        let spec = spec.trim();
        let inner = spec
            .strip_prefix('{')
            .and_then(|s| s.strip_suffix('}'))
            .unwrap_or(spec);
        let inner = if inner.starts_with('.') || inner.starts_with('$') {
            inner.to_string()
        } else {
            format!(".{inner}")
        };
        Self::parse(&format!("{{{inner}}}"))
    }

    /// The template as given.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Prints the template for `data`.
    pub fn render(&self, data: &Value) -> String {
        let mut out = String::new();
        render(&self.nodes, data, &mut out);
        out
    }

    /// The values each path of the template finds in `data`, in order (custom-columns cells).
    pub fn values(&self, data: &Value) -> Vec<String> {
        let mut values = Vec::new();
        for node in &self.nodes {
            if let Node::Path(path) = node {
                values.extend(query(path, data).into_iter().map(text));
            }
        }
        values
    }
}

fn render(nodes: &[Node], data: &Value, out: &mut String) {
    for node in nodes {
        match node {
            Node::Text(text) => out.push_str(text),
            Node::Path(path) => {
                let found: Vec<String> = query(path, data).into_iter().map(text).collect();
                out.push_str(&found.join(" "));
            }
            Node::Range(path, body) => {
                for item in query(path, data) {
                    render(body, item, out);
                }
            }
        }
    }
}

/// The nodes `path` selects; a path that matches nothing selects nothing.
fn query<'a>(path: &str, data: &'a Value) -> Vec<&'a Value> {
    data.query(path).unwrap_or_default()
}

/// How kubectl prints one result: strings as they are, maps and lists as compact JSON.
pub fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => "<nil>".into(),
        Value::Bool(_) | Value::Number(_) => value.to_string(),
        Value::Array(_) | Value::Object(_) => super::go_escaped(&super::sorted(value).to_string()),
    }
}

/// Where the `{` at the start of `text` closes: braces inside quotes and brackets do not count.
fn closing_brace(text: &str) -> Option<usize> {
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for (i, c) in text.char_indices().skip(1) {
        match (quote, c) {
            (Some(_), '\\') if !escaped => {
                escaped = true;
                continue;
            }
            (Some(q), c) if c == q && !escaped => quote = None,
            (None, '"' | '\'') => quote = Some(c),
            (None, '}') => return Some(i),
            _ => {}
        }
        escaped = false;
    }
    None
}

fn unquote(text: &str) -> Option<String> {
    let q = text.chars().next()?;
    let body = text.strip_prefix(q)?.strip_suffix(q)?;
    let mut out = String::new();
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        out.push(match chars.next()? {
            'n' => '\n',
            't' => '\t',
            'r' => '\r',
            '0' => '\0',
            other => other,
        });
    }
    Some(out)
}

/// kubectl's path dialect in RFC 9535 syntax: `.a.b[*]` becomes `$['a']['b'][*]`, `\.` stays
/// inside a key (`.metadata.labels.app\.kubernetes\.io/name`), `..k` is a descendant segment,
/// bracketed parts are kept as they are.
fn to_rfc9535(template: &str, expr: &str) -> Result<String, TemplateError> {
    let bad = |why: &str| TemplateError::Expression {
        template: template.into(),
        expression: expr.into(),
        why: why.into(),
    };
    let mut out = String::from("$");
    // `$` is the root, `@` the current node (in a range: the item); both are the node the
    // path is evaluated on.
    let body = expr
        .strip_prefix('$')
        .or_else(|| expr.strip_prefix('@'))
        .unwrap_or(expr);
    let chars: Vec<char> = body.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '.' => {
                let descendant = chars.get(i + 1) == Some(&'.');
                i += if descendant { 2 } else { 1 };
                let mut name = String::new();
                while i < chars.len() && chars[i] != '.' && chars[i] != '[' {
                    if chars[i] == '\\' && i + 1 < chars.len() {
                        i += 1;
                    }
                    name.push(chars[i]);
                    i += 1;
                }
                if descendant {
                    out.push_str("..");
                }
                match name.as_str() {
                    "" if descendant => {}
                    "" => {
                        if i < chars.len() && chars[i] != '[' {
                            return Err(bad("an empty key"));
                        }
                    }
                    "*" => out.push_str("[*]"),
                    _ => {
                        let quoted =
                            serde_json::to_string(&name).map_err(|e| bad(&e.to_string()))?;
                        out.push('[');
                        out.push_str(&quoted);
                        out.push(']');
                    }
                }
            }
            '[' => {
                let start = i;
                let mut depth = 0;
                let mut quote: Option<char> = None;
                while i < chars.len() {
                    let c = chars[i];
                    match (quote, c) {
                        (Some(_), '\\') => i += 1,
                        (Some(q), c) if c == q => quote = None,
                        (None, '"' | '\'') => quote = Some(c),
                        (None, '[') => depth += 1,
                        (None, ']') => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        _ => {}
                    }
                    i += 1;
                }
                if i >= chars.len() {
                    return Err(bad("an unclosed '['"));
                }
                out.extend(&chars[start..=i]);
                i += 1;
            }
            _ if i == 0 => {
                return Err(bad("a path starts with '.' (as .metadata.name) or '$'"));
            }
            c => return Err(bad(&format!("unexpected {c:?}"))),
        }
    }
    jsonpath_rust::parser::parse_json_path(&out).map_err(|e| bad(&e.to_string()))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn list() -> Value {
        json!({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": ""}, "items": [
            {"metadata": {"name": "b1", "labels": {"app.kubernetes.io/name": "pg"}},
             "status": {"phase": "Completed", "totalSize": "10"}},
            {"metadata": {"name": "b2", "labels": {}}, "status": {"phase": "Failed"}}
        ]})
    }

    fn run(template: &str) -> String {
        Template::parse(template).expect(template).render(&list())
    }

    #[test]
    fn kubectl_templates_print_as_kubectl_prints_them() {
        assert_eq!(run("{.items[*].metadata.name}"), "b1 b2");
        assert_eq!(
            run(r#"{range .items[*]}{.metadata.name}{"\t"}{.status.phase}{"\n"}{end}"#),
            "b1\tCompleted\nb2\tFailed\n"
        );
        assert_eq!(run("names: {.items[0].metadata.name}!"), "names: b1!");
        assert_eq!(run("{.items[-1:].metadata.name}"), "b2");
        assert_eq!(
            run(r#"{.items[?(@.status.phase=="Failed")].metadata.name}"#),
            "b2"
        );
        assert_eq!(
            run(r"{.items[0].metadata.labels.app\.kubernetes\.io/name}"),
            "pg"
        );
        assert_eq!(
            run("{.items[0].metadata.labels}"),
            r#"{"app.kubernetes.io/name":"pg"}"#
        );
        assert_eq!(run("{..phase}"), "Completed Failed");
        assert_eq!(run("{$.kind}"), "List");
        // Missing keys print nothing (kubectl's --allow-missing-template-keys=true).
        assert_eq!(run("[{.items[1].status.totalSize}]"), "[]");
        assert_eq!(
            run("{range .items[*]}{range .metadata.labels.*}{@}{end};{end}"),
            "pg;;"
        );
    }

    #[test]
    fn malformed_templates_are_refused_with_the_template() {
        for bad in [
            "{.items[*]",
            "{range .items[*]}{.x}",
            "{end}",
            "{.items[}",
            "{items}",
            r#"{"unterminated}"#,
        ] {
            let err = Template::parse(bad).expect_err(bad).to_string();
            assert!(err.contains("jsonpath template"), "{bad}: {err}");
        }
    }

    #[test]
    fn relaxed_specs_take_kubectls_three_forms() {
        let item = json!({"metadata": {"name": "b1"}});
        for spec in [".metadata.name", "metadata.name", "{.metadata.name}"] {
            assert_eq!(Template::relaxed(spec).expect(spec).values(&item), ["b1"]);
        }
    }
}
