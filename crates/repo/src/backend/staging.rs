//! Staging files of interrupted uploads on local stores.
//!
//! The local store (`local.rs`) writes every object (a `put` and each multipart upload) to
//! `<path>#<n>` (n = 1, 2, … the first free number) and renames it over `<path>` when the
//! upload completes. A writer killed in between (SIGKILL, OOM, node loss) leaves the staging
//! file behind, and listings hide every `<name>#<digits>` file, so nothing else ever sees it:
//! space would leak for good. These functions find and delete them, through the same confined
//! walk as every other local access (no link is followed).
//!
//! Object stores (S3, GCS, Azure) have the same leak as *incomplete multipart uploads*, which
//! `object_store` can neither list nor abort once the process is gone; there a lifecycle rule
//! (S3 `AbortIncompleteMultipartUpload`) reclaims them. Nothing here applies to them.

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
    /// Staging files under `dir` (recursively; for an object key, its own `<key>#<n>`), with
    /// their sizes and modification times; keys are relative to this store like every other
    /// key. Empty on stores that are not local directories. Symbolic links are never followed
    /// (the confined walk of `local.rs`).
    pub async fn list_staging(&self, dir: &str) -> Result<Vec<ObjectInfo>> {
        let Some((root, parts)) = self.local_parts(dir)? else {
            return Ok(Vec::new());
        };
        let Some((_, base)) = self.local_parts("")? else {
            return Ok(Vec::new());
        };
        let found = tokio::task::spawn_blocking(move || {
            let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
            root.staging_files(&parts)
        })
        .await
        .map_err(|e| Error::new(crate::ErrorKind::Io, "the staging scan failed").with_source(e))?
        .map_err(|e| Error::new(crate::ErrorKind::Io, "the staging scan failed").with_source(e))?;
        let prefix_len = base.len();
        Ok(found
            .into_iter()
            .map(|meta| {
                let key = meta
                    .location
                    .parts()
                    .skip(prefix_len)
                    .map(|p| p.as_ref().to_string())
                    .collect::<Vec<_>>()
                    .join("/");
                ObjectInfo {
                    key,
                    size: meta.size,
                    modified: Timestamp::try_from(std::time::SystemTime::from(meta.last_modified))
                        .unwrap_or(Timestamp::UNIX_EPOCH),
                }
            })
            .collect())
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
        let Some((root, parts)) = self.local_parts(key)? else {
            return Ok(());
        };
        tokio::task::spawn_blocking(move || {
            let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
            root.delete_staging(&parts)
        })
        .await
        .map_err(|e| Error::new(crate::ErrorKind::Io, "removing a staging file").with_source(e))?
        .map_err(|e| {
            Error::new(crate::ErrorKind::Io, format!("removing staging file {key}")).with_source(e)
        })
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
