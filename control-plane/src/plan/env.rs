//! Environment lists for action containers: ordered merges with "later wins", and Kubernetes
//! `$(VAR)` expansion (ARCHITECTURE.md §K2.3, §K3.1).

use k8s_openapi::api::core::v1::EnvVar;

/// A literal `name=value` variable.
pub fn var(name: &str, value: impl Into<String>) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value.into()),
        value_from: None,
    }
}

/// Appends `vars`; a variable whose name is already present replaces it in place
/// (KubeBlocks' `MergeEnv`: later duplicates win, order of first appearance is kept).
pub fn merge(env: &mut Vec<EnvVar>, vars: impl IntoIterator<Item = EnvVar>) {
    for v in vars {
        match env.iter_mut().find(|e| e.name == v.name) {
            Some(existing) => *existing = v,
            None => env.push(v),
        }
    }
}

/// Expands `$(VAR)` references in `text` against the literal values in `env`, as Kubernetes
/// does for command, args and (in KubeBlocks) images: `$$` is a literal `$`, and a reference to
/// an unknown variable (or one set through `valueFrom`) is left as written.
pub fn expand(text: &str, env: &[EnvVar]) -> String {
    let lookup = |name: &str| {
        env.iter()
            .rev()
            .find(|e| e.name == name)
            .and_then(|e| e.value.clone())
    };
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'$' && i + 1 < bytes.len() {
            match bytes[i + 1] {
                b'$' => {
                    out.push('$');
                    i += 2;
                    continue;
                }
                b'(' => {
                    if let Some(close) = text[i + 2..].find(')') {
                        let name = &text[i + 2..i + 2 + close];
                        match lookup(name) {
                            Some(value) => out.push_str(&value),
                            None => out.push_str(&text[i..i + 3 + close]),
                        }
                        i += 3 + close;
                        continue;
                    }
                }
                _ => {}
            }
        }
        let ch = text[i..].chars().next().unwrap_or('$');
        out.push(ch);
        i += ch.len_utf8();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_variables_are_expanded() {
        let env = vec![var("IMAGE_TAG", "14.7")];
        assert_eq!(
            expand("docker.io/postgres:$(IMAGE_TAG)", &env),
            "docker.io/postgres:14.7"
        );
    }

    #[test]
    fn later_definitions_win() {
        let env = vec![var("TAG", "1"), var("TAG", "2")];
        assert_eq!(expand("$(TAG)", &env), "2");
    }

    #[test]
    fn unknown_references_stay_verbatim() {
        assert_eq!(expand("x:$(NOPE)", &[]), "x:$(NOPE)");
    }

    #[test]
    fn double_dollar_escapes() {
        let env = vec![var("A", "a")];
        assert_eq!(expand("$$(A) $$ $(A)", &env), "$(A) $ a");
    }

    #[test]
    fn unterminated_references_and_lone_dollars_are_kept() {
        assert_eq!(expand("cost: 5$ $(OPEN", &[]), "cost: 5$ $(OPEN");
    }

    #[test]
    fn value_from_variables_are_not_expanded() {
        let env = vec![EnvVar {
            name: "SECRET".into(),
            value: None,
            value_from: Some(Default::default()),
        }];
        assert_eq!(expand("$(SECRET)", &env), "$(SECRET)");
    }

    #[test]
    fn merge_replaces_in_place_and_appends_new_names() {
        let mut env = vec![var("A", "1"), var("B", "2")];
        merge(&mut env, [var("A", "9"), var("C", "3")]);
        let pairs: Vec<_> = env
            .iter()
            .map(|e| (e.name.as_str(), e.value.as_deref().unwrap()))
            .collect();
        assert_eq!(pairs, [("A", "9"), ("B", "2"), ("C", "3")]);
    }

    #[test]
    fn non_ascii_text_survives_expansion() {
        assert_eq!(expand("größe $(X) ü", &[var("X", "ß")]), "größe ß ü");
    }
}
