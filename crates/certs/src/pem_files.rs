//! Writing certificate and key files atomically, keys readable by their owner only.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// File mode of private keys.
pub const PRIVATE_MODE: u32 = 0o600;
/// File mode of certificates.
pub const PUBLIC_MODE: u32 = 0o644;

/// A certificate file and its private key file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertFiles {
    /// PEM certificate.
    pub cert: PathBuf,
    /// PEM private key (mode 0600).
    pub key: PathBuf,
}

impl CertFiles {
    /// `<stem>.pem` and `<stem>-key.pem`, the layout `ca issue-*` writes with `--out <stem>`.
    pub fn from_stem(stem: &Path) -> CertFiles {
        let mut cert = stem.as_os_str().to_owned();
        cert.push(".pem");
        let mut key = stem.as_os_str().to_owned();
        key.push("-key.pem");
        CertFiles {
            cert: PathBuf::from(cert),
            key: PathBuf::from(key),
        }
    }

    /// Whether both files exist.
    pub fn exist(&self) -> bool {
        self.cert.is_file() && self.key.is_file()
    }
}

/// Replaces `path` with `contents` so that a reader sees the old or the new file, never a part;
/// the file gets `mode` from its creation on, so a key is never briefly world-readable.
pub fn write_atomically(path: &Path, contents: &[u8], mode: u32) -> io::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let file_name = path.file_name().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} names no file", path.display()),
        )
    })?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(file_name);
    tmp_name.push(format!(".tmp-{}", std::process::id()));
    let tmp = dir.join(tmp_name);
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        file.write_all(contents)?;
        file.sync_all()?;
        fs::rename(&tmp, path)?;
        File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn keys_are_written_owner_only_and_replace_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.pem");
        write_atomically(&path, b"old", PRIVATE_MODE).unwrap();
        write_atomically(&path, b"new", PRIVATE_MODE).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"new");
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let leftovers: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "temporary files remain: {leftovers:?}");
    }

    #[test]
    fn stem_names_the_pem_and_key_files() {
        let files = CertFiles::from_stem(Path::new("/x/agent-a"));
        assert_eq!(files.cert, Path::new("/x/agent-a.pem"));
        assert_eq!(files.key, Path::new("/x/agent-a-key.pem"));
    }
}
