//! Remote paths of plain repositories: `/a//b/./c/` is `a/b/c`, `..` is refused.

use crate::{Error, Result};

/// Normalises a remote path to a store key (no leading, trailing or doubled `/`).
pub fn normalize(path: &str) -> Result<String> {
    let mut parts = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                return Err(Error::invalid(format!(
                    "remote path {path:?} contains \"..\", which is not allowed"
                )));
            }
            p if p.chars().any(|c| c.is_ascii_control()) => {
                return Err(Error::invalid(format!(
                    "remote path {path:?} contains a control character"
                )));
            }
            p => parts.push(p),
        }
    }
    Ok(parts.join("/"))
}

/// How an entry below `listed` is shown: the listed path exactly as the user typed it
/// (without trailing `/`), joined with the entry's path relative to it; below the root (`/`,
/// `.`, empty) the entry's path alone, with no leading `/`, as apecloud/datasafed prints
/// rclone's `entry.Remote()` (KubeBlocks' scripts parse `datasafed list /` by name:
/// ARCHITECTURE.md §K5.6).
pub fn display(listed: &str, relative: &str) -> String {
    let base = listed.trim_end_matches('/');
    if base.is_empty() || normalize(listed).is_ok_and(|key| key.is_empty()) {
        return relative.to_string();
    }
    format!("{base}/{relative}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn normalizes_slashes_and_dots() {
        assert_eq!(normalize("/a//b/./c/").ok().as_deref(), Some("a/b/c"));
        assert_eq!(normalize("/").ok().as_deref(), Some(""));
        assert_eq!(normalize("").ok().as_deref(), Some(""));
        assert!(normalize("a/../b").is_err());
    }

    #[test]
    fn display_keeps_what_the_user_typed() {
        assert_eq!(display("dir", "x"), "dir/x");
        assert_eq!(display("", "x"), "x");
        assert_eq!(display("/d/", "x"), "/d/x");
    }

    /// apecloud/datasafed prints rclone's `entry.Remote()`, relative to the repository root:
    /// `datasafed list /` shows `name`, not `/name`. KubeBlocks' redis-pitr-backup reads the
    /// archive's start as `datasafed list / | awk -F '.' '{print $1}'` and its restore pulls
    /// `${filename#*/}` below the data directory; qdrant's restore compares `${snapshot%.*}`
    /// with `kubeblocks-backup`.
    #[test]
    fn entries_below_the_root_are_shown_without_a_leading_slash() {
        for root in ["/", "//", ".", "./", ""] {
            assert_eq!(
                display(root, "1700000000.1.dir"),
                "1700000000.1.dir",
                "{root:?}"
            );
            assert_eq!(display(root, "d/x"), "d/x", "{root:?}");
        }
    }

    proptest! {
        #[test]
        fn normalized_paths_have_no_empty_or_dot_segments(path in "[a-z./]{0,30}") {
            if let Ok(norm) = normalize(&path) {
                prop_assert!(!norm.starts_with('/') && !norm.ends_with('/'));
                prop_assert!(norm.is_empty() || norm.split('/').all(|s| !s.is_empty() && s != "." && s != ".."));
                prop_assert_eq!(normalize(&norm).ok(), Some(norm.clone()));
            }
        }
    }
}
