//! Agent/control-plane version compatibility: the major versions must match (PROTOCOL.md §4).

/// Why an agent's version is not accepted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VersionMismatch {
    /// The agent sent something that is not `MAJOR.MINOR.PATCH`.
    #[error("agent version {agent:?} is not a semantic version (MAJOR.MINOR.PATCH)")]
    Unparseable {
        /// What the agent sent.
        agent: String,
    },
    /// The major versions differ.
    #[error(
        "agent version {agent} has another major version than control plane version {control_plane}"
    )]
    MajorDiffers {
        /// The agent's version.
        agent: String,
        /// The control plane's version.
        control_plane: String,
    },
}

/// Accepts `agent` when its major version equals `control_plane`'s.
pub fn check_compatible(agent: &str, control_plane: &str) -> Result<(), VersionMismatch> {
    let agent_major = major(agent).ok_or_else(|| VersionMismatch::Unparseable {
        agent: agent.to_owned(),
    })?;
    // Our own version comes from Cargo and is always well-formed; compare as text otherwise.
    let ours = major(control_plane);
    if ours != Some(agent_major) {
        return Err(VersionMismatch::MajorDiffers {
            agent: agent.to_owned(),
            control_plane: control_plane.to_owned(),
        });
    }
    Ok(())
}

/// The major number of `MAJOR.MINOR.PATCH[-pre][+build]`.
fn major(version: &str) -> Option<u64> {
    let core = version.split(['-', '+']).next()?;
    let mut parts = core.split('.');
    let major = parts.next()?.parse::<u64>().ok()?;
    let minor_ok = parts.next().is_some_and(|p| p.parse::<u64>().is_ok());
    let patch_ok = parts.next().is_some_and(|p| p.parse::<u64>().is_ok());
    (minor_ok && patch_ok && parts.next().is_none()).then_some(major)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_major_is_compatible_whatever_minor_and_patch() {
        assert_eq!(check_compatible("1.2.3", "1.9.0"), Ok(()));
        assert_eq!(check_compatible("0.1.0", "0.7.2-rc.1"), Ok(()));
        assert_eq!(check_compatible("2.0.0+build.5", "2.1.0"), Ok(()));
    }

    #[test]
    fn other_major_is_refused_naming_both_versions() {
        let err = check_compatible("2.0.0", "1.4.0").unwrap_err();
        assert!(matches!(err, VersionMismatch::MajorDiffers { .. }));
        let text = err.to_string();
        assert!(text.contains("2.0.0") && text.contains("1.4.0"), "{text}");
    }

    #[test]
    fn garbage_version_is_refused_quoting_it() {
        for bad in ["", "1", "1.2", "v1.2.3", "1.2.3.4", "a.b.c"] {
            let err = check_compatible(bad, "1.0.0").unwrap_err();
            assert!(matches!(err, VersionMismatch::Unparseable { .. }), "{bad}");
            assert!(err.to_string().contains(&format!("{bad:?}")));
        }
    }
}
