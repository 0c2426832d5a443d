//! KubeBlocks' own manifests (test data outside the project): the directory named by
//! `$CAIRN_KUBEBLOCKS_FIXTURES`, applied unchanged with the real `kubectl`.
//!
//! One derived fixture carries a label value a real API server rejects
//! (`apps.kubeblocks.io/component-def-ref: vanilla-postgresql-\d+`, a regular expression
//! KubeBlocks' BackupPolicyTemplate puts where a value belongs). [`apply`] first applies every
//! file as it is; only when the API server refuses that label does it apply the file again with
//! exactly that one line removed, saying so in one line.

use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::stack::TestStack;

/// The variable naming the fixture directory.
pub const VARIABLE: &str = "CAIRN_KUBEBLOCKS_FIXTURES";

/// The one label line a real API server rejects, exactly as the derived fixtures write it.
pub const INVALID_LABEL_LINE: &str =
    "    apps.kubeblocks.io/component-def-ref: vanilla-postgresql-\\d+\n";

/// The fixture directory, or `None` (after printing one line saying the test is skipped) when
/// the variable is unset. A relative path is taken from the working directory or, failing
/// that, from the workspace root (CI sets `../shared/kubeblocks` there). A set variable that
/// names no directory is an error, not a skip.
pub fn dir(test: &str) -> anyhow::Result<Option<PathBuf>> {
    let Some(value) = std::env::var_os(VARIABLE).filter(|v| !v.is_empty()) else {
        println!("{test}: skipped: {VARIABLE} is unset (it names KubeBlocks' manifests)");
        return Ok(None);
    };
    let given = PathBuf::from(&value);
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let candidates = if given.is_absolute() {
        vec![given.clone()]
    } else {
        vec![given.clone(), workspace.join(&given)]
    };
    candidates
        .into_iter()
        .find(|c| c.is_dir())
        .map(Some)
        .with_context(|| {
            format!(
                "{VARIABLE}={} names no directory (looked in the working directory and in {})",
                given.display(),
                workspace.display()
            )
        })
}

/// The text of fixture `name`.
pub fn read(dir: &Path, name: &str) -> anyhow::Result<String> {
    let path = dir.join(name);
    std::fs::read_to_string(&path).with_context(|| format!("reading fixture {}", path.display()))
}

/// The fixture text without [`INVALID_LABEL_LINE`]: every other byte unchanged. `None` when the
/// text does not hold that line.
pub fn without_invalid_label(text: &str) -> Option<String> {
    text.contains(INVALID_LABEL_LINE)
        .then(|| text.replacen(INVALID_LABEL_LINE, "", 1))
}

/// `kubectl apply -f <fixture>`; when the API server refuses only the invalid label, the same
/// file without that line through stdin.
pub async fn apply(stack: &TestStack, dir: &Path, name: &str) -> anyhow::Result<()> {
    let path = dir.join(name);
    let path_text = path.display().to_string();
    let out = stack
        .kubectl
        .output(&["apply", "-f", &path_text], None)
        .await?;
    if out.success {
        return Ok(());
    }
    let text = read(dir, name)?;
    let refused_label = out.stderr.contains("vanilla-postgresql-\\d+")
        || out.stderr.contains("vanilla-postgresql-\\\\d+");
    match without_invalid_label(&text).filter(|_| refused_label) {
        Some(stripped) => {
            println!(
                "{name}: the API server refuses its label value `vanilla-postgresql-\\d+` (not a valid label value); applied with only that label line removed"
            );
            stack
                .kubectl
                .apply(&stripped)
                .await
                .with_context(|| format!("applying {name} without its invalid label"))?;
            Ok(())
        }
        None => anyhow::bail!("kubectl apply -f {path_text} failed: {}", out.stderr.trim()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removing_the_invalid_label_changes_nothing_else() {
        let text = "metadata:\n  labels:\n    app.kubernetes.io/instance: mycluster\n    apps.kubeblocks.io/component-def-ref: vanilla-postgresql-\\d+\n    app.kubernetes.io/managed-by: kubeblocks\nspec: {}\n";
        let stripped = without_invalid_label(text).expect("has the label");
        assert_eq!(
            stripped,
            "metadata:\n  labels:\n    app.kubernetes.io/instance: mycluster\n    app.kubernetes.io/managed-by: kubeblocks\nspec: {}\n"
        );
        assert_eq!(stripped.len() + INVALID_LABEL_LINE.len(), text.len());
    }

    #[test]
    fn a_fixture_without_the_invalid_label_is_left_alone() {
        assert_eq!(without_invalid_label("kind: ActionSet\n"), None);
    }
}
