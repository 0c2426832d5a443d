//! Staging files of interrupted uploads on local stores.
//!
//! `object_store`'s `LocalFileSystem` writes every object (a `put` and each multipart upload)
//! to `<path>#<n>` (n = 1, 2, … the first free number) and renames it over `<path>` when the
//! upload completes. A writer killed in between (SIGKILL, OOM, node loss) leaves the staging
//! file behind, and `LocalFileSystem` hides every `<name>#<digits>` file from listings, so
//! nothing else ever sees it: space leaks for good. These functions find and delete them.
//!
//! Object stores (S3, GCS, Azure) have the same leak as *incomplete multipart uploads*, which
//! `object_store` can neither list nor abort once the process is gone; there a lifecycle rule
//! (S3 `AbortIncompleteMultipartUpload`) reclaims them. Nothing here applies to them.

use std::path::{Path, PathBuf};
use std::time::Duration;

use jiff::Timestamp;

use super::{ObjectInfo, Store};
use crate::{Error, Result};

/// Age after which a staging file of a plain repository is taken as abandoned (the same as a
/// deduplicating repository's default session timeout): an upload in progress keeps writing
/// its staging file, so its modification time stays recent.
pub const STALE_STAGING: Duration = Duration::from_secs(15 * 60);

/// Whether a file name is an `object_store` staging name: `<name>#<digits>`.
pub fn is_staging_name(name: &str) -> bool {
    match name.rsplit_once('#') {
        Some((base, digits)) => {
            !base.is_empty() && !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
        }
        None => false,
    }
}

impl Store {
    /// Staging files under `dir` (recursively), with their sizes and modification times;
    /// keys are relative to this store like every other key. Empty on stores that are not
    /// local directories. Symbolic links are not followed.
    pub async fn list_staging(&self, dir: &str) -> Result<Vec<ObjectInfo>> {
        let Some(base) = self.local_path("")? else {
            return Ok(Vec::new());
        };
        let Some(start) = self.local_path(dir)? else {
            return Ok(Vec::new());
        };
        tokio::task::spawn_blocking(move || walk_staging(&base, &start))
            .await
            .map_err(|e| {
                Error::new(crate::ErrorKind::Io, "the staging scan failed").with_source(e)
            })?
    }

    /// Deletes the staging file `key` (a key [`Store::list_staging`] returned). Refuses any
    /// other name, so it can never delete an object. A missing file is not an error.
    pub async fn delete_staging(&self, key: &str) -> Result<()> {
        let name = key.rsplit('/').next().unwrap_or(key);
        if !is_staging_name(name) {
            return Err(Error::invalid(format!(
                "{key:?} is not a staging file name (<name>#<digits>)"
            )));
        }
        let Some(path) = self.local_path(key)? else {
            return Ok(());
        };
        match tokio::fs::remove_file(&path).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io(
                format!("removing staging file {}", path.display()),
                e,
            )),
        }
    }

    /// Deletes the staging files under `dir` last modified at least `older_than` ago
    /// (`Duration::ZERO`: all of them); returns what was deleted.
    pub async fn sweep_staging(&self, dir: &str, older_than: Duration) -> Result<Vec<ObjectInfo>> {
        let now = Timestamp::now();
        let mut swept = Vec::new();
        for info in self.list_staging(dir).await? {
            if older_than.is_zero() || is_older(info.modified, now, older_than) {
                self.delete_staging(&info.key).await?;
                swept.push(info);
            }
        }
        Ok(swept)
    }
}

/// Whether `modified` is at least `age` before `now`.
pub fn is_older(modified: Timestamp, now: Timestamp, age: Duration) -> bool {
    let age = jiff::SignedDuration::try_from(age).unwrap_or(jiff::SignedDuration::MAX);
    now.duration_since(modified) >= age
}

fn walk_staging(base: &Path, start: &Path) -> Result<Vec<ObjectInfo>> {
    let mut out = Vec::new();
    let mut stack: Vec<PathBuf> = Vec::new();
    match std::fs::symlink_metadata(start) {
        Ok(meta) if meta.is_dir() => stack.push(start.to_path_buf()),
        Ok(meta) if meta.is_file() => {
            // A single key: its own staging files are its siblings `<key>#<n>`.
            if let Some(parent) = start.parent() {
                let prefix = format!(
                    "{}#",
                    start.file_name().and_then(|n| n.to_str()).unwrap_or("")
                );
                collect_dir(base, parent, Some(&prefix), &mut out, &mut Vec::new())?;
            }
            return Ok(out);
        }
        Ok(_) => return Ok(out),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // Nothing at the key itself: staging files of a key never written completely.
            if let Some(parent) = start.parent()
                && let Some(name) = start.file_name().and_then(|n| n.to_str())
            {
                let prefix = format!("{name}#");
                collect_dir(base, parent, Some(&prefix), &mut out, &mut Vec::new())?;
            }
            return Ok(out);
        }
        Err(e) => return Err(Error::io(format!("reading {}", start.display()), e)),
    }
    while let Some(dir) = stack.pop() {
        collect_dir(base, &dir, None, &mut out, &mut stack)?;
    }
    Ok(out)
}

/// Staging files directly in `dir` (whose names start with `prefix`, if given); pushes the
/// sub-directories onto `subdirs`.
fn collect_dir(
    base: &Path,
    dir: &Path,
    prefix: Option<&str>,
    out: &mut Vec<ObjectInfo>,
    subdirs: &mut Vec<PathBuf>,
) -> Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io(format!("listing {}", dir.display()), e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(format!("listing {}", dir.display()), e))?;
        // `file_type` of a directory entry does not follow symbolic links.
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            subdirs.push(entry.path());
            continue;
        }
        if !kind.is_file() {
            continue;
        }
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if !is_staging_name(name) || prefix.is_some_and(|p| !name.starts_with(p)) {
            continue;
        }
        let path = entry.path();
        let Ok(rel) = path.strip_prefix(base) else {
            continue;
        };
        let Some(key) = rel.to_str() else { continue };
        let Ok(meta) = entry.metadata() else { continue };
        let modified = meta
            .modified()
            .ok()
            .and_then(|t| Timestamp::try_from(t).ok())
            .unwrap_or(Timestamp::UNIX_EPOCH);
        out.push(ObjectInfo {
            key: key.to_string(),
            size: meta.len(),
            modified,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staging_names_are_name_hash_digits() {
        assert!(is_staging_name("abc#1"));
        assert!(is_staging_name("x.tar.zst#12"));
        assert!(!is_staging_name("abc"));
        assert!(!is_staging_name("abc#"));
        assert!(!is_staging_name("#1"));
        assert!(!is_staging_name("abc#1x"));
    }
}
