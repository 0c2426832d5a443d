//! `cairn-agent install-datasafed --from FILE DIR`: what the init container of every action
//! Job runs (in the agent's own image, which has no shell): copies the `datasafed` client into
//! the Job's emptyDir as `DIR/datasafed`, executable by every user, as KubeBlocks' datasafed
//! init container does.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::Parser;

/// The subcommand's name (the first argument).
pub const SUBCOMMAND: &str = "install-datasafed";

/// Copies `datasafed` into a directory (the action Job's init container).
#[derive(Debug, Parser)]
#[command(name = "cairn-agent install-datasafed")]
pub struct InstallArgs {
    /// The `datasafed` binary to copy.
    #[arg(long)]
    pub from: PathBuf,
    /// The directory to copy it into (as `datasafed`).
    pub dir: PathBuf,
}

/// Copies `from` to `dir/datasafed` with mode 0755, through a temporary name.
pub fn install(from: &Path, dir: &Path) -> anyhow::Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt as _;
    let target = dir.join("datasafed");
    let staging = dir.join(".datasafed.new");
    std::fs::copy(from, &staging).with_context(|| {
        format!(
            "copying the datasafed client from {} to {}",
            from.display(),
            staging.display()
        )
    })?;
    std::fs::set_permissions(&staging, std::fs::Permissions::from_mode(0o755))
        .with_context(|| format!("making {} executable", staging.display()))?;
    std::fs::rename(&staging, &target)
        .with_context(|| format!("installing {}", target.display()))?;
    Ok(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn installs_an_executable_copy() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().expect("tempdir");
        let source = dir.path().join("source");
        std::fs::write(&source, b"#!binary").expect("write");
        let into = dir.path().join("bin");
        std::fs::create_dir(&into).expect("mkdir");
        let installed = install(&source, &into).expect("install");
        assert_eq!(std::fs::read(&installed).expect("read"), b"#!binary");
        let mode = std::fs::metadata(&installed)
            .expect("stat")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o755);
        let err = install(&dir.path().join("missing"), &into).unwrap_err();
        assert!(format!("{err:#}").contains("missing"), "{err:#}");
    }
}
