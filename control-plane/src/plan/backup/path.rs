//! Where a backup's files live in its repository (ARCHITECTURE.md §K2.7).

use cairn_api::target::PodSelectionStrategy;

/// `/<repo prefix>/<namespace>/<policy prefix>`: the directory all backups of a policy share.
pub fn root_path(repo_prefix: &str, namespace: &str, policy_prefix: &str) -> String {
    join(&["/", repo_prefix, namespace, policy_prefix])
}

/// `<root>/<backup name>`: the backup's `status.path`.
pub fn backup_path(root: &str, backup: &str) -> String {
    join(&[root, backup])
}

/// `<root>/kopia`: the deduplicating repository of a `useKopia` policy (`status.kopiaRepoPath`).
pub fn kopia_repo_path(root: &str) -> String {
    join(&[root, "kopia"])
}

/// `DP_TARGET_RELATIVE_PATH`: `[target name][/pod]` (the pod only for strategy All).
pub fn target_relative_path(
    target_name: &str,
    strategy: PodSelectionStrategy,
    pod: &str,
) -> String {
    let pod = if strategy == PodSelectionStrategy::All {
        pod
    } else {
        ""
    };
    join(&[target_name, pod])
        .trim_start_matches('/')
        .to_string()
}

/// Go's `path.Join`: segments joined by `/`, empty ones dropped, `.` and `..` resolved,
/// duplicate slashes collapsed, no trailing slash; absolute when the first non-empty segment is.
pub fn join(parts: &[&str]) -> String {
    let joined = parts
        .iter()
        .filter(|p| !p.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join("/");
    if joined.is_empty() {
        return String::new();
    }
    let absolute = joined.starts_with('/');
    let mut stack: Vec<&str> = Vec::new();
    for segment in joined.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                if stack.last().is_some_and(|s| *s != "..") {
                    stack.pop();
                } else if !absolute {
                    stack.push("..");
                }
            }
            s => stack.push(s),
        }
    }
    let body = stack.join("/");
    match (absolute, body.is_empty()) {
        (true, _) => format!("/{body}"),
        (false, true) => ".".into(),
        (false, false) => body,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_path_joins_repo_prefix_namespace_and_policy_prefix() {
        assert_eq!(
            root_path("prod/", "default", "/mycluster-uid/postgresql"),
            "/prod/default/mycluster-uid/postgresql"
        );
    }

    #[test]
    fn empty_prefixes_vanish() {
        assert_eq!(root_path("", "ns", ""), "/ns");
        assert_eq!(backup_path(&root_path("", "ns", ""), "b1"), "/ns/b1");
    }

    #[test]
    fn relative_path_has_the_pod_only_for_strategy_all() {
        assert_eq!(
            target_relative_path("", PodSelectionStrategy::Any, "p0"),
            ""
        );
        assert_eq!(
            target_relative_path("t1", PodSelectionStrategy::Any, "p0"),
            "t1"
        );
        assert_eq!(
            target_relative_path("t1", PodSelectionStrategy::All, "p0"),
            "t1/p0"
        );
        assert_eq!(
            target_relative_path("", PodSelectionStrategy::All, "p0"),
            "p0"
        );
    }

    #[test]
    fn join_behaves_like_go_path_join() {
        assert_eq!(join(&["/a/", "/b//c/"]), "/a/b/c");
        assert_eq!(join(&["a", "..", "b"]), "b");
        assert_eq!(join(&["/", "..", "x"]), "/x");
        assert_eq!(join(&["", ""]), "");
        assert_eq!(join(&["/"]), "/");
    }
}
