//! Label selectors: the `labelSelector` grammar of apimachinery and `metav1.LabelSelector`.

use crate::validation::{is_label_value, is_qualified_name};
use serde_json::Value;
use std::collections::BTreeSet;

/// How one requirement compares a label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operator {
    Equals,
    NotEquals,
    In,
    NotIn,
    Exists,
    DoesNotExist,
    GreaterThan,
    LessThan,
}

/// One comma-separated term of a selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    pub key: String,
    pub operator: Operator,
    pub values: BTreeSet<String>,
}

/// A parsed label selector: all requirements must hold. The empty selector matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector {
    pub requirements: Vec<Requirement>,
    /// A selector that can never match (a `metav1.LabelSelector` that failed to convert).
    pub nothing: bool,
}

impl Requirement {
    fn matches<'a>(&self, get: &impl Fn(&str) -> Option<&'a str>) -> bool {
        let value = get(&self.key);
        match self.operator {
            Operator::Equals | Operator::In => value.is_some_and(|v| self.values.contains(v)),
            Operator::NotEquals | Operator::NotIn => value.is_none_or(|v| !self.values.contains(v)),
            Operator::Exists => value.is_some(),
            Operator::DoesNotExist => value.is_none(),
            Operator::GreaterThan | Operator::LessThan => {
                let Some(actual) = value.and_then(|v| v.parse::<i64>().ok()) else {
                    return false;
                };
                let Some(bound) = self
                    .values
                    .iter()
                    .next()
                    .and_then(|v| v.parse::<i64>().ok())
                else {
                    return false;
                };
                if self.operator == Operator::GreaterThan {
                    actual > bound
                } else {
                    actual < bound
                }
            }
        }
    }
}

impl LabelSelector {
    /// Parses the query-string form (`a=b,c in (x,y),!d`).
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut requirements = Vec::new();
        for term in split_terms(text)? {
            let term = term.trim();
            if term.is_empty() {
                continue;
            }
            requirements.push(parse_requirement(term)?);
        }
        Ok(LabelSelector {
            requirements,
            nothing: false,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty() && !self.nothing
    }

    /// Whether labels given as a lookup function satisfy every requirement.
    pub fn matches_with<'a>(&self, get: impl Fn(&str) -> Option<&'a str>) -> bool {
        !self.nothing && self.requirements.iter().all(|r| r.matches(&get))
    }

    /// Whether a list of `(key, value)` labels satisfies the selector.
    pub fn matches_pairs(&self, labels: &[(String, String)]) -> bool {
        self.matches_with(|k| {
            labels
                .iter()
                .find(|(lk, _)| lk == k)
                .map(|(_, v)| v.as_str())
        })
    }

    /// Whether an object's `metadata.labels` map satisfies the selector.
    pub fn matches_object(&self, object: &Value) -> bool {
        let labels = object.pointer("/metadata/labels");
        self.matches_with(|k| labels.and_then(|l| l.get(k)).and_then(Value::as_str))
    }

    /// Converts a `metav1.LabelSelector` (`matchLabels` + `matchExpressions`).
    /// An absent selector matches nothing, like `LabelSelectorAsSelector(nil)`.
    pub fn from_label_selector(selector: Option<&Value>) -> Result<Self, String> {
        let Some(selector) = selector.filter(|s| !s.is_null()) else {
            return Ok(LabelSelector {
                requirements: Vec::new(),
                nothing: true,
            });
        };
        let mut requirements = Vec::new();
        if let Some(labels) = selector.get("matchLabels").and_then(Value::as_object) {
            for (k, v) in labels {
                let v = v.as_str().unwrap_or_default();
                requirements.push(Requirement {
                    key: k.clone(),
                    operator: Operator::Equals,
                    values: [v.to_string()].into_iter().collect(),
                });
            }
        }
        if let Some(exprs) = selector.get("matchExpressions").and_then(Value::as_array) {
            for e in exprs {
                let key = e.get("key").and_then(Value::as_str).unwrap_or_default();
                let values: BTreeSet<String> = e
                    .get("values")
                    .and_then(Value::as_array)
                    .map(|vs| {
                        vs.iter()
                            .filter_map(Value::as_str)
                            .map(str::to_string)
                            .collect()
                    })
                    .unwrap_or_default();
                let operator = match e.get("operator").and_then(Value::as_str) {
                    Some("In") => Operator::In,
                    Some("NotIn") => Operator::NotIn,
                    Some("Exists") => Operator::Exists,
                    Some("DoesNotExist") => Operator::DoesNotExist,
                    other => {
                        return Err(format!("{other:?} is not a valid label selector operator"));
                    }
                };
                requirements.push(Requirement {
                    key: key.to_string(),
                    operator,
                    values,
                });
            }
        }
        Ok(LabelSelector {
            requirements,
            nothing: false,
        })
    }

    /// The query-string form of the selector.
    pub fn to_query(&self) -> String {
        self.requirements
            .iter()
            .map(|r| {
                let vals = r.values.iter().cloned().collect::<Vec<_>>();
                match r.operator {
                    Operator::Equals => format!("{}={}", r.key, vals.join("")),
                    Operator::NotEquals => format!("{}!={}", r.key, vals.join("")),
                    Operator::In => format!("{} in ({})", r.key, vals.join(",")),
                    Operator::NotIn => format!("{} notin ({})", r.key, vals.join(",")),
                    Operator::Exists => r.key.clone(),
                    Operator::DoesNotExist => format!("!{}", r.key),
                    Operator::GreaterThan => format!("{}>{}", r.key, vals.join("")),
                    Operator::LessThan => format!("{}<{}", r.key, vals.join("")),
                }
            })
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// Splits on commas that are not inside a parenthesised value set.
fn split_terms(text: &str) -> Result<Vec<&str>, String> {
    let mut terms = Vec::new();
    let mut depth = 0usize;
    let mut start = 0usize;
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth = depth.checked_sub(1).ok_or_else(|| {
                    format!("unable to parse requirement: unbalanced ')' in {text:?}")
                })?;
            }
            ',' if depth == 0 => {
                terms.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err(format!(
            "unable to parse requirement: unbalanced '(' in {text:?}"
        ));
    }
    terms.push(&text[start..]);
    Ok(terms)
}

fn check_key(key: &str) -> Result<(), String> {
    if let Err(why) = is_qualified_name(key) {
        return Err(format!(
            "unable to parse requirement: values[0][{key}]: Invalid value: {key:?}: {why}"
        ));
    }
    Ok(())
}

fn check_value(key: &str, value: &str) -> Result<(), String> {
    if let Err(why) = is_label_value(value) {
        return Err(format!(
            "unable to parse requirement: values[0][{key}]: Invalid value: {value:?}: {why}"
        ));
    }
    Ok(())
}

fn parse_requirement(term: &str) -> Result<Requirement, String> {
    let single = |key: &str, op: Operator, value: &str| -> Result<Requirement, String> {
        let key = key.trim();
        let value = value.trim();
        check_key(key)?;
        if matches!(op, Operator::GreaterThan | Operator::LessThan) {
            value
                .parse::<i64>()
                .map_err(|_| format!("unable to parse requirement: for 'Gt', 'Lt' operators, the value must be an integer: {value:?}"))?;
        } else {
            check_value(key, value)?;
        }
        Ok(Requirement {
            key: key.to_string(),
            operator: op,
            values: [value.to_string()].into_iter().collect(),
        })
    };
    if let Some(rest) = term.strip_prefix('!') {
        let key = rest.trim();
        check_key(key)?;
        return Ok(Requirement {
            key: key.to_string(),
            operator: Operator::DoesNotExist,
            values: BTreeSet::new(),
        });
    }
    if let Some((k, v)) = term.split_once("!=") {
        return single(k, Operator::NotEquals, v);
    }
    if let Some((k, v)) = term.split_once("==") {
        return single(k, Operator::Equals, v);
    }
    if let Some((k, v)) = term.split_once('=') {
        return single(k, Operator::Equals, v);
    }
    if let Some((k, v)) = term.split_once('>') {
        return single(k, Operator::GreaterThan, v);
    }
    if let Some((k, v)) = term.split_once('<') {
        return single(k, Operator::LessThan, v);
    }
    // `key in (a,b)`, `key notin (a,b)` or a bare `key`.
    let mut words = term.splitn(2, char::is_whitespace);
    let key = words.next().unwrap_or_default().trim();
    let rest = words.next().unwrap_or_default().trim();
    if rest.is_empty() {
        check_key(key)?;
        return Ok(Requirement {
            key: key.to_string(),
            operator: Operator::Exists,
            values: BTreeSet::new(),
        });
    }
    let (operator, set) = if let Some(set) = rest.strip_prefix("notin") {
        (Operator::NotIn, set)
    } else if let Some(set) = rest.strip_prefix("in") {
        (Operator::In, set)
    } else {
        return Err(format!(
            "unable to parse requirement: found '{rest}', expected: in, notin, =, ==, !=, gt, lt"
        ));
    };
    let set = set.trim();
    let inner = set
        .strip_prefix('(')
        .and_then(|s| s.strip_suffix(')'))
        .ok_or_else(|| format!("unable to parse requirement: found '{set}', expected: '('"))?;
    check_key(key)?;
    let mut values = BTreeSet::new();
    for v in inner.split(',') {
        let v = v.trim();
        check_value(key, v)?;
        values.insert(v.to_string());
    }
    Ok(Requirement {
        key: key.to_string(),
        operator,
        values,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn labels(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn every_operator_matches_like_apimachinery() {
        let l = labels(&[("app", "db"), ("tier", "a"), ("n", "5")]);
        let cases = [
            ("app=db", true),
            ("app==db", true),
            ("app!=db", false),
            ("app!=web", true),
            ("missing!=x", true),
            ("tier in (a,b)", true),
            ("tier in (b)", false),
            ("tier notin (b,c)", true),
            ("missing notin (b)", true),
            ("app", true),
            ("missing", false),
            ("!missing", true),
            ("!app", false),
            ("app=db,tier=a", true),
            ("app=db,tier=b", false),
            ("n>3", true),
            ("n<3", false),
            ("", true),
            (" app = db , tier in ( a , b ) ", true),
        ];
        for (sel, want) in cases {
            let s = LabelSelector::parse(sel).unwrap_or_else(|e| panic!("{sel}: {e}"));
            assert_eq!(s.matches_pairs(&l), want, "{sel}");
        }
    }

    #[test]
    fn malformed_selectors_are_rejected() {
        for bad in [
            "app in (a",
            "app in a",
            "a b c",
            "-bad=x",
            "app=bad value!",
            "n>x",
        ] {
            assert!(LabelSelector::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn label_selector_objects_convert_and_nil_matches_nothing() {
        let s = LabelSelector::from_label_selector(Some(&json!({
            "matchLabels": {"app": "db"},
            "matchExpressions": [{"key": "tier", "operator": "In", "values": ["a"]}]
        })))
        .unwrap();
        assert!(s.matches_pairs(&labels(&[("app", "db"), ("tier", "a")])));
        assert!(!s.matches_pairs(&labels(&[("app", "db")])));
        let nil = LabelSelector::from_label_selector(None).unwrap();
        assert!(!nil.matches_pairs(&labels(&[("app", "db")])));
        let empty = LabelSelector::from_label_selector(Some(&json!({}))).unwrap();
        assert!(empty.matches_pairs(&[]));
    }

    proptest! {
        #[test]
        fn printed_selectors_parse_back_to_the_same_requirements(
            key in "[a-z][a-z0-9]{0,8}",
            value in "[a-z0-9]{1,8}",
            op in 0usize..6,
        ) {
            let text = match op {
                0 => format!("{key}={value}"),
                1 => format!("{key}!={value}"),
                2 => format!("{key} in ({value},x)"),
                3 => format!("{key} notin ({value})"),
                4 => key.clone(),
                _ => format!("!{key}"),
            };
            let parsed = LabelSelector::parse(&text).unwrap();
            let again = LabelSelector::parse(&parsed.to_query()).unwrap();
            prop_assert_eq!(parsed, again);
        }

        #[test]
        fn the_parser_never_panics(text in ".{0,40}") {
            let _ = LabelSelector::parse(&text);
        }
    }
}
