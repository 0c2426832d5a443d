//! Field selectors: `a=b,c!=d` over the per-type field labels an object exposes.

/// One `field=value` or `field!=value` term.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldRequirement {
    pub field: String,
    pub value: String,
    pub negate: bool,
}

/// A parsed field selector; all requirements must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector {
    pub requirements: Vec<FieldRequirement>,
}

impl FieldSelector {
    /// Parses the query-string form, honouring `\,`, `\=` and `\\` escapes in values.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut requirements = Vec::new();
        for term in split_unescaped(text, ',') {
            if term.trim().is_empty() {
                continue;
            }
            let (field, value, negate) = split_operator(&term)
                .ok_or_else(|| format!("invalid selector: '{text}'; can't understand '{term}'"))?;
            requirements.push(FieldRequirement {
                field: field.trim().to_string(),
                value: unescape(value),
                negate,
            });
        }
        Ok(FieldSelector { requirements })
    }

    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// The first field not in `supported`, if any.
    pub fn unsupported_field<'a>(&'a self, supported: &[&str]) -> Option<&'a str> {
        self.requirements
            .iter()
            .map(|r| r.field.as_str())
            .find(|f| !supported.contains(f))
    }

    /// Whether the object's field values satisfy every requirement. A missing field reads as "".
    pub fn matches_with<'a>(&self, get: impl Fn(&str) -> Option<&'a str>) -> bool {
        self.requirements.iter().all(|r| {
            let actual = get(&r.field).unwrap_or("");
            (actual == r.value) != r.negate
        })
    }

    pub fn matches_pairs(&self, fields: &[(String, String)]) -> bool {
        self.matches_with(|k| {
            fields
                .iter()
                .find(|(fk, _)| fk == k)
                .map(|(_, v)| v.as_str())
        })
    }

    /// The value required by an equality term on `field`, used to narrow a scan.
    pub fn required_value(&self, field: &str) -> Option<&str> {
        self.requirements
            .iter()
            .find(|r| r.field == field && !r.negate)
            .map(|r| r.value.as_str())
    }

    /// Rewrites field names, e.g. events.k8s.io `regarding.name` to core `involvedObject.name`.
    pub fn map_fields(&self, f: impl Fn(&str) -> String) -> FieldSelector {
        FieldSelector {
            requirements: self
                .requirements
                .iter()
                .map(|r| FieldRequirement {
                    field: f(&r.field),
                    value: r.value.clone(),
                    negate: r.negate,
                })
                .collect(),
        }
    }
}

fn split_unescaped(text: &str, sep: char) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut escaped = false;
    for c in text.chars() {
        if escaped {
            cur.push('\\');
            cur.push(c);
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == sep {
            out.push(std::mem::take(&mut cur));
        } else {
            cur.push(c);
        }
    }
    if escaped {
        cur.push('\\');
    }
    out.push(cur);
    out
}

/// Splits `field<op>value` at the first unescaped operator.
fn split_operator(term: &str) -> Option<(&str, &str, bool)> {
    let bytes = term.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'!' if bytes.get(i + 1) == Some(&b'=') => {
                return Some((&term[..i], &term[i + 2..], true));
            }
            b'=' if bytes.get(i + 1) == Some(&b'=') => {
                return Some((&term[..i], &term[i + 2..], false));
            }
            b'=' => return Some((&term[..i], &term[i + 1..], false)),
            _ => i += 1,
        }
    }
    None
}

fn unescape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                out.push(n);
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn fields(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn equality_inequality_and_conjunction_match() {
        let f = fields(&[("metadata.name", "p1"), ("status.phase", "Running")]);
        let cases = [
            ("metadata.name=p1", true),
            ("metadata.name==p1", true),
            ("metadata.name!=p1", false),
            ("metadata.name=p1,status.phase=Running", true),
            ("metadata.name=p1,status.phase!=Running", false),
            ("spec.nodeName=", true),
            ("", true),
        ];
        for (sel, want) in cases {
            assert_eq!(
                FieldSelector::parse(sel).unwrap().matches_pairs(&f),
                want,
                "{sel}"
            );
        }
    }

    #[test]
    fn escaped_separators_stay_in_the_value() {
        let s = FieldSelector::parse(r"a=x\,y\=z,b=c").unwrap();
        assert_eq!(s.requirements.len(), 2);
        assert_eq!(s.requirements[0].value, "x,y=z");
    }

    #[test]
    fn terms_without_an_operator_are_rejected() {
        assert!(FieldSelector::parse("metadata.name").is_err());
    }

    #[test]
    fn unsupported_fields_are_reported() {
        let s = FieldSelector::parse("metadata.name=a,spec.bogus=b").unwrap();
        assert_eq!(s.unsupported_field(&["metadata.name"]), Some("spec.bogus"));
    }

    proptest! {
        #[test]
        fn the_parser_never_panics(text in ".{0,40}") {
            let _ = FieldSelector::parse(&text);
        }
    }
}
