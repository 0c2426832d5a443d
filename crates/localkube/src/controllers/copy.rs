//! Copying a volume directory for snapshots and restores: files are reflinked (FICLONE)
//! where the filesystem allows and copied otherwise; modes, owners and symlinks are kept
//! (a database's data directory must stay owned by its user).

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

/// `FICLONE`, `_IOW(0x94, 9, int)`.
const FICLONE: nix::libc::c_ulong = 0x4004_9409;

fn copy_file(src: &Path, dst: &Path) -> std::io::Result<u64> {
    use std::os::fd::AsRawFd;
    let from = std::fs::File::open(src)?;
    let to = std::fs::File::create(dst)?;
    // SAFETY: both descriptors are open files owned by this function.
    let cloned = unsafe { nix::libc::ioctl(to.as_raw_fd(), FICLONE as _, from.as_raw_fd()) } == 0;
    if cloned {
        return Ok(from.metadata()?.len());
    }
    drop(to);
    std::fs::copy(src, dst)
}

/// Copies the tree at `src` into `dst` (created); returns the bytes of regular files.
pub fn copy_tree(src: &Path, dst: &Path) -> std::io::Result<u64> {
    let meta = std::fs::symlink_metadata(src)?;
    let mut total = 0;
    if meta.file_type().is_symlink() {
        std::os::unix::fs::symlink(std::fs::read_link(src)?, dst)?;
    } else if meta.is_dir() {
        std::fs::create_dir_all(dst)?;
        for entry in std::fs::read_dir(src)? {
            let entry = entry?;
            total += copy_tree(&entry.path(), &dst.join(entry.file_name()))?;
        }
        std::fs::set_permissions(dst, std::fs::Permissions::from_mode(meta.mode()))?;
    } else if meta.is_file() {
        total += copy_file(src, dst)?;
        std::fs::set_permissions(dst, std::fs::Permissions::from_mode(meta.mode()))?;
    } else {
        // Sockets, FIFOs and devices are not part of a volume's data.
        return Ok(0);
    }
    if nix::unistd::geteuid().is_root() {
        let _ = std::os::unix::fs::lchown(dst, Some(meta.uid()), Some(meta.gid()));
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trees_copy_with_content_modes_and_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        std::fs::create_dir_all(src.join("sub")).unwrap();
        std::fs::write(src.join("sub/data"), b"12345").unwrap();
        std::fs::set_permissions(src.join("sub/data"), std::fs::Permissions::from_mode(0o600))
            .unwrap();
        std::os::unix::fs::symlink("sub/data", src.join("link")).unwrap();
        let dst = dir.path().join("dst");
        assert_eq!(copy_tree(&src, &dst).unwrap(), 5);
        assert_eq!(std::fs::read(dst.join("sub/data")).unwrap(), b"12345");
        assert_eq!(
            std::fs::metadata(dst.join("sub/data")).unwrap().mode() & 0o777,
            0o600
        );
        assert_eq!(
            std::fs::read_link(dst.join("link")).unwrap(),
            Path::new("sub/data")
        );
    }
}
