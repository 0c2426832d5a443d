//! What a storage grant lets its token touch: reads under the read-write or any read-only
//! prefix, writes only under the read-write prefix (docs/PROTOCOL.md §3).
//!
//! Every requested path is normalised with the repository engine's own
//! [`cairn_repo::plain::normalize`] (slashes collapsed, `.` dropped, `..` refused), and the
//! normalised key is both what is checked and what the engine is then given, so the check and
//! the access can never disagree about which object is meant.
//!
//! An empty prefix grants nothing; the repository root is granted by `/`.

use std::fmt;

/// What an operation does to the repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// Get, List, Stat.
    Read,
    /// Put, Remove, Rmdir, Mkdir.
    Write,
}

impl Operation {
    fn verb(self) -> &'static str {
        match self {
            Operation::Read => "reading",
            Operation::Write => "writing",
        }
    }
}

/// Why a path was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccessError {
    /// The path cannot be normalised (`..`, control characters).
    #[error("{message}")]
    InvalidPath {
        /// The engine's explanation, quoting the path.
        message: String,
    },
    /// The path is outside what the grant allows for this operation.
    #[error("{} {} is not allowed: {}", .operation.verb(), Shown(.path), .allowed)]
    Denied {
        /// The normalised path that was asked for.
        path: String,
        /// What was asked.
        operation: Operation,
        /// What the grant allows, for the message.
        allowed: Allowed,
    },
    /// A prefix of the grant itself is invalid.
    #[error("storage grant prefix {prefix:?} is invalid: {message}")]
    InvalidPrefix {
        /// The prefix as the control plane sent it.
        prefix: String,
        /// The engine's explanation.
        message: String,
    },
}

/// The prefixes an operation may use, as shown in a refusal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allowed {
    operation: Operation,
    prefixes: Vec<String>,
}

impl fmt::Display for Allowed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verb = match self.operation {
            Operation::Read => "read",
            Operation::Write => "write",
        };
        if self.prefixes.is_empty() {
            return write!(f, "this action may not {verb} anything in the repository");
        }
        write!(f, "this action may {verb} only under ")?;
        for (i, prefix) in self.prefixes.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{}", Shown(prefix))?;
        }
        Ok(())
    }
}

/// A normalised key shown as an absolute repository path (`/ns/b1`).
struct Shown<'a>(&'a str);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "/{}", self.0)
    }
}

/// The path rules of one grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    /// Normalised read-write prefix; `None`: no writes at all.
    read_write: Option<String>,
    /// Normalised read-only prefixes.
    read_only: Vec<String>,
}

impl Access {
    /// The rules of a grant's `read_write_prefix` and `read_only_prefixes`. Empty prefixes
    /// grant nothing; `/` grants the whole repository.
    pub fn new(
        read_write_prefix: &str,
        read_only_prefixes: &[String],
    ) -> Result<Access, AccessError> {
        Ok(Access {
            read_write: prefix(read_write_prefix)?,
            read_only: read_only_prefixes
                .iter()
                .map(|p| prefix(p))
                .filter_map(Result::transpose)
                .collect::<Result<_, _>>()?,
        })
    }

    /// Normalises `path` and checks it against the rules for `operation`. Returns the
    /// normalised key (no leading, trailing or doubled `/`) the engine must be given.
    pub fn check(&self, operation: Operation, path: &str) -> Result<String, AccessError> {
        let key = cairn_repo::plain::normalize(path).map_err(|e| AccessError::InvalidPath {
            message: e.message().to_string(),
        })?;
        let mut allowed = self.read_write.iter();
        let permitted = match operation {
            Operation::Write => allowed.any(|p| is_under(&key, p)),
            Operation::Read => allowed
                .chain(self.read_only.iter())
                .any(|p| is_under(&key, p)),
        };
        if permitted {
            return Ok(key);
        }
        Err(AccessError::Denied {
            path: key,
            operation,
            allowed: self.allowed(operation),
        })
    }

    fn allowed(&self, operation: Operation) -> Allowed {
        let mut prefixes: Vec<String> = self.read_write.iter().cloned().collect();
        if operation == Operation::Read {
            prefixes.extend(self.read_only.iter().cloned());
        }
        Allowed {
            operation,
            prefixes,
        }
    }
}

/// A grant prefix normalised; `None` when it is empty (grants nothing).
fn prefix(raw: &str) -> Result<Option<String>, AccessError> {
    if raw.trim().is_empty() {
        return Ok(None);
    }
    cairn_repo::plain::normalize(raw)
        .map(Some)
        .map_err(|e| AccessError::InvalidPrefix {
            prefix: raw.to_string(),
            message: e.message().to_string(),
        })
}

/// Whether `key` is `prefix` itself or inside it, segment-wise (`ns/b1` is not under `ns/b`).
fn is_under(key: &str, prefix: &str) -> bool {
    if prefix.is_empty() {
        return true;
    }
    match key.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn backup_grant() -> Access {
        Access::new("/ns/policy/b1", &["/ns/policy".to_string()]).expect("valid grant")
    }

    #[test]
    fn writes_inside_the_read_write_prefix_are_allowed_and_normalised() {
        let access = backup_grant();
        for (asked, key) in [
            ("/ns/policy/b1/data.tar.zst", "ns/policy/b1/data.tar.zst"),
            ("ns//policy/./b1/sub/x", "ns/policy/b1/sub/x"),
            ("/ns/policy/b1/", "ns/policy/b1"),
            ("/ns/policy/b1", "ns/policy/b1"),
        ] {
            assert_eq!(
                access.check(Operation::Write, asked),
                Ok(key.to_string()),
                "{asked}"
            );
        }
    }

    #[test]
    fn writes_to_a_sibling_under_a_read_only_prefix_are_denied_naming_path_and_prefix() {
        let err = backup_grant()
            .check(Operation::Write, "/ns/policy/b0/data")
            .expect_err("read-only sibling");
        assert_eq!(
            err.to_string(),
            "writing /ns/policy/b0/data is not allowed: this action may write only under /ns/policy/b1"
        );
    }

    #[test]
    fn reads_of_siblings_under_a_read_only_prefix_are_allowed() {
        let access = backup_grant();
        assert_eq!(
            access.check(Operation::Read, "/ns/policy/b0/data"),
            Ok("ns/policy/b0/data".to_string())
        );
        assert_eq!(
            access.check(Operation::Read, "/ns/policy"),
            Ok("ns/policy".to_string())
        );
    }

    #[test]
    fn reads_outside_every_prefix_are_denied_naming_all_prefixes() {
        let err = backup_grant()
            .check(Operation::Read, "/other/x")
            .expect_err("outside");
        assert_eq!(
            err.to_string(),
            "reading /other/x is not allowed: this action may read only under /ns/policy/b1, /ns/policy"
        );
        assert!(backup_grant().check(Operation::Read, "/").is_err());
        assert!(backup_grant().check(Operation::Read, "/ns").is_err());
    }

    #[test]
    fn a_prefix_matches_whole_segments_only() {
        let access = backup_grant();
        assert!(access.check(Operation::Write, "/ns/policy/b10/x").is_err());
        assert!(access.check(Operation::Write, "/ns/policy/b1x").is_err());
        assert!(access.check(Operation::Read, "/ns/policyx/b1").is_err());
    }

    #[test]
    fn dot_dot_escapes_are_refused_before_any_prefix_check() {
        let access = backup_grant();
        for path in [
            "/ns/policy/b1/../b0/x",
            "/ns/policy/b1/..",
            "../../etc/passwd",
            "/ns/policy/b1/sub/../../b1/x",
        ] {
            for op in [Operation::Read, Operation::Write] {
                let err = access.check(op, path).expect_err("escape");
                assert!(
                    matches!(err, AccessError::InvalidPath { .. }),
                    "{path}: {err}"
                );
                assert!(err.to_string().contains(".."), "{err}");
            }
        }
        let control = access
            .check(Operation::Write, "/ns/policy/b1/a\nb")
            .expect_err("control character");
        assert!(matches!(control, AccessError::InvalidPath { .. }));
    }

    #[test]
    fn an_empty_read_write_prefix_grants_no_writes_and_slash_grants_everything() {
        let restore = Access::new("", &["/ns/policy/b1".to_string()]).expect("grant");
        assert_eq!(
            restore
                .check(Operation::Write, "/ns/policy/b1/x")
                .expect_err("no writes")
                .to_string(),
            "writing /ns/policy/b1/x is not allowed: this action may not write anything in the repository"
        );
        assert!(restore.check(Operation::Read, "/ns/policy/b1/x").is_ok());
        let nothing = Access::new(" ", &[String::new()]).expect("grant");
        assert!(nothing.check(Operation::Read, "/").is_err());
        assert!(nothing.check(Operation::Read, "x").is_err());
        let root = Access::new("/", &[]).expect("grant");
        assert_eq!(
            root.check(Operation::Write, "/any/thing"),
            Ok("any/thing".to_string())
        );
        assert_eq!(root.check(Operation::Read, "/"), Ok(String::new()));
    }

    #[test]
    fn an_invalid_grant_prefix_is_named() {
        let err = Access::new("/ns/../x", &[]).expect_err("invalid");
        assert!(err.to_string().contains("\"/ns/../x\""), "{err}");
        assert!(Access::new("/ns/b1", &["/a/../b".to_string()]).is_err());
    }

    proptest! {
        #[test]
        fn an_allowed_write_is_always_under_the_read_write_prefix(path in "[a-z./]{0,24}") {
            let access = Access::new("/a/b", &["/a".to_string()]).expect("grant");
            if let Ok(key) = access.check(Operation::Write, &path) {
                prop_assert!(key == "a/b" || key.starts_with("a/b/"), "{key}");
                prop_assert!(!key.split('/').any(|s| s == ".."));
            }
            if let Ok(key) = access.check(Operation::Read, &path) {
                prop_assert!(key == "a" || key.starts_with("a/"), "{key}");
            }
        }

        #[test]
        fn checking_is_insensitive_to_slashes_and_dots(path in "[a-c]{1,3}(/[a-c]{1,3}){0,3}") {
            let access = Access::new("/a", &["/b".to_string()]).expect("grant");
            let messy = format!("//./{}/", path.replace('/', "//./"));
            for op in [Operation::Read, Operation::Write] {
                prop_assert_eq!(access.check(op, &path), access.check(op, &messy));
            }
        }
    }
}
