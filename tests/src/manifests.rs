//! Cairn's test manifests (`tests/manifests/*.yaml`) with `@NAME@` placeholders filled in.
//!
//! `@NAME@` is used instead of `${NAME}` because the ActionSets hold shell scripts full of
//! `${VAR}` that must reach the pods unchanged.

use std::path::PathBuf;

use anyhow::Context as _;

/// The directory holding the templates.
pub fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("manifests")
}

/// The template `name` with every `@KEY@` replaced by its value; fails when a placeholder is
/// left without a value, naming it.
pub fn render(name: &str, vars: &[(&str, &str)]) -> anyhow::Result<String> {
    let path = dir().join(name);
    let template = std::fs::read_to_string(&path)
        .with_context(|| format!("reading the test manifest {}", path.display()))?;
    fill(&template, vars).with_context(|| format!("rendering {}", path.display()))
}

/// Replaces `@KEY@` placeholders in `template`.
pub fn fill(template: &str, vars: &[(&str, &str)]) -> anyhow::Result<String> {
    let mut text = template.to_string();
    for (key, value) in vars {
        text = text.replace(&format!("@{key}@"), value);
    }
    let placeholder = regex::Regex::new(r"@[A-Z][A-Z0-9_]*@")?;
    if let Some(left) = placeholder.find(&text) {
        anyhow::bail!("no value for the placeholder {}", left.as_str());
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_filled_and_shell_variables_left_alone() {
        let text = fill(
            "name: @NAME@\nrun: echo ${DP_BACKUP_NAME} $HOME\n",
            &[("NAME", "b1")],
        )
        .expect("fill");
        assert_eq!(text, "name: b1\nrun: echo ${DP_BACKUP_NAME} $HOME\n");
    }

    #[test]
    fn a_placeholder_without_a_value_is_an_error_naming_it() {
        let error = fill("a: @A@\nb: @MISSING_ONE@\n", &[("A", "1")]).expect_err("missing");
        assert!(error.to_string().contains("@MISSING_ONE@"), "{error}");
    }
}
