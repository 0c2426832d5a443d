//! Label selectors (`matchLabels` + `matchExpressions` with In/NotIn/Exists/DoesNotExist): validation
//! with the API server's messages and field paths, and matching against a pod's labels.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use cairn_schema::{ErrorKind, FieldError};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
use regex::Regex;
use serde_json::json;

use crate::validate::problem::{Problem, child, index};

const LABEL_KEY_FMT: &str = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";
const LABEL_KEY_MSG: &str = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const LABEL_VALUE_FMT: &str = "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?";
const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const DNS1123_SUBDOMAIN_FMT: &str =
    "[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";
const DNS1123_SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character";

static LABEL_KEY: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(&format!("^{LABEL_KEY_FMT}$")).ok());
static LABEL_VALUE: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(&format!("^{LABEL_VALUE_FMT}$")).ok());
static DNS1123_SUBDOMAIN: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(&format!("^{DNS1123_SUBDOMAIN_FMT}$")).ok());

fn is_match(re: &LazyLock<Option<Regex>>, s: &str) -> bool {
    re.as_ref().is_some_and(|re| re.is_match(s))
}

/// apimachinery's `RegexError`: the message, examples and the regex.
fn regex_error(msg: &str, fmt: &str, examples: &[&str]) -> String {
    let mut out = format!("{msg} (e.g. ");
    for (i, e) in examples.iter().enumerate() {
        if i > 0 {
            out.push_str(" or ");
        }
        out.push_str(&format!("'{e}', "));
    }
    out.push_str(&format!("regex used for validation is '{fmt}')"));
    out
}

/// Messages for an invalid label key (`IsQualifiedName`); empty when valid.
pub fn label_key_errors(key: &str) -> Vec<String> {
    let mut errs = Vec::new();
    let parts: Vec<&str> = key.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                errs.push("prefix part must be non-empty".to_string());
            } else {
                if prefix.len() > 253 {
                    errs.push("prefix part must be no more than 253 characters".to_string());
                }
                if !is_match(&DNS1123_SUBDOMAIN, prefix) {
                    errs.push(format!(
                        "prefix part {}",
                        regex_error(
                            DNS1123_SUBDOMAIN_MSG,
                            DNS1123_SUBDOMAIN_FMT,
                            &["example.com"]
                        )
                    ));
                }
            }
            name
        }
        _ => {
            errs.push(format!(
                "a valid label key {} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
                regex_error(LABEL_KEY_MSG, LABEL_KEY_FMT, &["MyName", "my.name", "123-abc"])
            ));
            return errs;
        }
    };
    if name.is_empty() {
        errs.push("name part must be non-empty".to_string());
    } else if name.len() > 63 {
        errs.push("name part must be no more than 63 characters".to_string());
    }
    if !is_match(&LABEL_KEY, name) {
        errs.push(format!(
            "name part {}",
            regex_error(
                LABEL_KEY_MSG,
                LABEL_KEY_FMT,
                &["MyName", "my.name", "123-abc"]
            )
        ));
    }
    errs
}

/// Messages for an invalid label value (`IsValidLabelValue`); empty when valid.
pub fn label_value_errors(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > 63 {
        errs.push("must be no more than 63 characters".to_string());
    }
    if !is_match(&LABEL_VALUE, value) {
        errs.push(regex_error(
            LABEL_VALUE_MSG,
            LABEL_VALUE_FMT,
            &["MyValue", "my_value", "12345"],
        ));
    }
    errs
}

fn problem(kind: ErrorKind, path: &str, bad: serde_json::Value, detail: &str) -> Problem {
    let e = FieldError {
        kind,
        field: path.to_string(),
        bad_value: bad,
        detail: detail.to_string(),
    };
    Problem::error(path, e.body())
}

/// Validates a label selector at `path`, as the API server's `ValidateLabelSelector` does.
pub fn validate(selector: &LabelSelector, path: &str) -> Vec<Problem> {
    let mut out = Vec::new();
    let labels_path = child(path, "matchLabels");
    for (key, value) in selector.match_labels.iter().flatten() {
        for msg in label_key_errors(key) {
            out.push(problem(ErrorKind::Invalid, &labels_path, json!(key), &msg));
        }
        for msg in label_value_errors(value) {
            out.push(problem(
                ErrorKind::Invalid,
                &labels_path,
                json!(value),
                &msg,
            ));
        }
    }
    for (i, req) in selector.match_expressions.iter().flatten().enumerate() {
        out.extend(validate_requirement(
            req,
            &index(&child(path, "matchExpressions"), i),
        ));
    }
    out
}

fn validate_requirement(req: &LabelSelectorRequirement, path: &str) -> Vec<Problem> {
    let mut out = Vec::new();
    let values = req.values.as_deref().unwrap_or_default();
    match req.operator.as_str() {
        "In" | "NotIn" if values.is_empty() => out.push(problem(
            ErrorKind::Required,
            &child(path, "values"),
            json!(""),
            "must be specified when `operator` is 'In' or 'NotIn'",
        )),
        "Exists" | "DoesNotExist" if !values.is_empty() => out.push(problem(
            ErrorKind::Forbidden,
            &child(path, "values"),
            json!(""),
            "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
        )),
        "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
        other => out.push(problem(
            ErrorKind::Invalid,
            &child(path, "operator"),
            json!(other),
            "not a valid selector operator",
        )),
    }
    for msg in label_key_errors(&req.key) {
        out.push(problem(
            ErrorKind::Invalid,
            &child(path, "key"),
            json!(req.key),
            &msg,
        ));
    }
    for (i, value) in values.iter().enumerate() {
        for msg in label_value_errors(value) {
            out.push(problem(
                ErrorKind::Invalid,
                &index(&child(path, "values"), i),
                json!(value),
                &msg,
            ));
        }
    }
    out
}

/// Whether `labels` satisfy the selector (every matchLabels pair and every expression). An empty
/// selector matches everything; an expression with an unknown operator matches nothing.
pub fn matches(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    let labels_match = selector
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    labels_match
        && selector.match_expressions.iter().flatten().all(|req| {
            let values = req.values.as_deref().unwrap_or_default();
            let value = labels.get(&req.key);
            match req.operator.as_str() {
                "In" => value.is_some_and(|v| values.contains(v)),
                "NotIn" => value.is_none_or(|v| !values.contains(v)),
                "Exists" => value.is_some(),
                "DoesNotExist" => value.is_none(),
                _ => false,
            }
        })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn selector(labels: &[(&str, &str)], exprs: &[(&str, &str, &[&str])]) -> LabelSelector {
        LabelSelector {
            match_labels: Some(
                labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            match_expressions: Some(
                exprs
                    .iter()
                    .map(|(k, op, vs)| LabelSelectorRequirement {
                        key: k.to_string(),
                        operator: op.to_string(),
                        values: if vs.is_empty() {
                            None
                        } else {
                            Some(vs.iter().map(|v| v.to_string()).collect())
                        },
                    })
                    .collect(),
            ),
        }
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn match_labels_and_expressions_all_must_hold() {
        let s = selector(
            &[("app.kubernetes.io/instance", "mycluster")],
            &[
                ("kubeblocks.io/role", "In", &["primary", "secondary"]),
                ("skip", "DoesNotExist", &[]),
            ],
        );
        let pod = labels(&[
            ("app.kubernetes.io/instance", "mycluster"),
            ("kubeblocks.io/role", "secondary"),
        ]);
        assert!(matches(&s, &pod));
        let mut other = pod.clone();
        other.insert("skip".into(), "yes".into());
        assert!(!matches(&s, &other));
        assert!(!matches(
            &s,
            &labels(&[
                ("app.kubernetes.io/instance", "mycluster"),
                ("kubeblocks.io/role", "arbiter")
            ])
        ));
        assert!(matches(
            &selector(&[], &[("role", "NotIn", &["primary"])]),
            &labels(&[])
        ));
        assert!(matches(
            &selector(&[], &[("role", "Exists", &[])]),
            &labels(&[("role", "")])
        ));
        assert!(matches(
            &LabelSelector::default(),
            &labels(&[("any", "thing")])
        ));
        assert!(!matches(
            &selector(&[], &[("role", "Near", &["x"])]),
            &labels(&[("role", "x")])
        ));
    }

    #[test]
    fn invalid_selectors_are_reported_with_kubernetes_paths_and_messages() {
        let s = selector(
            &[("bad key!", "ok")],
            &[
                ("role", "In", &[]),
                ("x", "Exists", &["y"]),
                ("z", "Near", &["-bad"]),
            ],
        );
        let problems: Vec<String> = validate(&s, "spec.target.podSelector")
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(problems.len(), 5, "{problems:#?}");
        assert!(problems[0].starts_with(r#"spec.target.podSelector.matchLabels: Invalid value: "bad key!": name part must consist of alphanumeric characters"#), "{}", problems[0]);
        assert_eq!(
            problems[1],
            "spec.target.podSelector.matchExpressions[0].values: Required value: must be specified when `operator` is 'In' or 'NotIn'"
        );
        assert_eq!(
            problems[2],
            "spec.target.podSelector.matchExpressions[1].values: Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'"
        );
        assert_eq!(
            problems[3],
            r#"spec.target.podSelector.matchExpressions[2].operator: Invalid value: "Near": not a valid selector operator"#
        );
        assert!(problems[4].starts_with(r#"spec.target.podSelector.matchExpressions[2].values[0]: Invalid value: "-bad": a valid label must be an empty string"#), "{}", problems[4]);
    }

    #[test]
    fn label_keys_follow_the_qualified_name_rules() {
        assert!(label_key_errors("app.kubernetes.io/instance").is_empty());
        assert!(label_key_errors("MyName").is_empty());
        assert_eq!(label_key_errors("/x"), ["prefix part must be non-empty"]);
        assert!(label_key_errors("a/b/c")[0].starts_with("a valid label key must consist"));
        assert_eq!(
            label_key_errors(&"a".repeat(64)),
            ["name part must be no more than 63 characters"]
        );
    }

    proptest! {
        #[test]
        fn a_selector_built_from_labels_matches_them(pairs in prop::collection::btree_map("[a-z]{1,8}", "[a-z0-9]{0,8}", 0..5)) {
            let s = LabelSelector { match_labels: Some(pairs.clone()), match_expressions: None };
            prop_assert!(validate(&s, "spec").is_empty());
            prop_assert!(matches(&s, &pairs));
        }

        #[test]
        fn no_input_panics(key in "\\PC{0,80}", value in "\\PC{0,80}", op in "[A-Za-z]{0,12}") {
            let s = selector(&[(&key, &value)], &[(&key, &op, &[&value])]);
            let _ = validate(&s, "spec");
            let _ = matches(&s, &labels(&[(&key, &value)]));
        }
    }
}
