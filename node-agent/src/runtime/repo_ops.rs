//! Repository actions the agent carries out itself: the BackupRepo pre-check, deleting a
//! backup's files (ARCHITECTURE.md §K2.8), and writing `kubeblocks-backup.json`.
//! Errors become failure reasons with their causes, never with credentials.

use std::io::Cursor;

use cairn_repo::RepoFiles;
use cairn_repo::plain::ListOptions;
use cairn_repo::progress::no_progress;

use super::runner::chain;

const PROBE: &[u8] = b"cairn backup repository pre-check\n";

/// Pushes, pulls back and compares, then removes a small object at `probe_path`.
pub async fn check(files: &RepoFiles, probe_path: &str) -> Result<u64, String> {
    let path = if probe_path.trim_matches('/').is_empty() {
        "precheck.txt".to_string()
    } else {
        probe_path.to_string()
    };
    files
        .put(&path, Cursor::new(PROBE.to_vec()), None, no_progress())
        .await
        .map_err(|err| format!("writing {path}: {}", chain(&err)))?;
    let (writer, mut reader) = tokio::io::duplex(64 * 1024);
    let (got, read_back) =
        tokio::join!(files.get(&path, writer, None, no_progress()), async move {
            let mut buf = Vec::new();
            let _ = tokio::io::AsyncReadExt::read_to_end(&mut reader, &mut buf).await;
            buf
        });
    got.map_err(|err| format!("reading {path} back: {}", chain(&err)))?;
    if read_back != PROBE {
        return Err(format!(
            "reading {path} back returned {} bytes that differ from the {} written",
            read_back.len(),
            PROBE.len()
        ));
    }
    files
        .remove(&path, false)
        .await
        .map_err(|err| format!("removing {path}: {}", chain(&err)))?;
    Ok(PROBE.len() as u64)
}

/// Removes `path` recursively, then each parent directory that became empty, up to the root.
pub async fn delete_path(files: &RepoFiles, path: &str) -> Result<u64, String> {
    let trimmed = path.trim_matches('/');
    if trimmed.is_empty() {
        return Err("refusing to delete the repository root".into());
    }
    let removed = match files.remove(trimmed, true).await {
        Ok(removed) => removed,
        Err(err) if err.kind() == cairn_repo::ErrorKind::NotFound => 0,
        Err(err) => return Err(format!("deleting {path}: {}", chain(&err))),
    };
    let mut parent = trimmed;
    while let Some((up, _)) = parent.rsplit_once('/') {
        parent = up;
        let entries = match files.list(parent, &ListOptions::default()).await {
            Ok(entries) => entries,
            Err(err) if err.kind() == cairn_repo::ErrorKind::NotFound => Vec::new(),
            Err(err) => return Err(format!("listing {parent}: {}", chain(&err))),
        };
        if !entries.is_empty() {
            break;
        }
        match files.rmdir(parent).await {
            Ok(()) => {}
            Err(err) if err.kind() == cairn_repo::ErrorKind::NotFound => {}
            Err(err) => {
                return Err(format!(
                    "removing the empty directory {parent}: {}",
                    chain(&err)
                ));
            }
        }
    }
    Ok(removed)
}

/// Writes `content` at `path`, replacing what is there.
pub async fn put_object(files: &RepoFiles, path: &str, content: Vec<u8>) -> Result<u64, String> {
    let size = content.len() as u64;
    files
        .put(path, Cursor::new(content), None, no_progress())
        .await
        .map_err(|err| format!("writing {path}: {}", chain(&err)))?;
    Ok(size)
}

#[cfg(test)]
mod tests {
    use cairn_repo::{PlainRepo, Store};

    use super::*;

    fn local() -> (tempfile::TempDir, RepoFiles) {
        let dir = tempfile::tempdir().unwrap();
        let config = cairn_repo::StorageConfig::local(dir.path());
        let store = Store::open(&config).unwrap();
        (dir, RepoFiles::Plain(PlainRepo::new(store, None)))
    }

    #[tokio::test]
    async fn pre_check_leaves_nothing_behind() {
        let (dir, files) = local();
        check(&files, "/prefix/precheck.txt").await.unwrap();
        assert!(!dir.path().join("prefix/precheck.txt").exists());
    }

    #[tokio::test]
    async fn deleting_a_backup_removes_its_files_and_empty_parents_only() {
        let (dir, files) = local();
        put_object(&files, "ns/policy/b1/data.tar", b"x".to_vec())
            .await
            .unwrap();
        put_object(
            &files,
            "ns/policy/b1/kubeblocks-backup.json",
            b"{}".to_vec(),
        )
        .await
        .unwrap();
        put_object(&files, "ns/other/b2/data.tar", b"y".to_vec())
            .await
            .unwrap();
        delete_path(&files, "/ns/policy/b1").await.unwrap();
        assert!(!dir.path().join("ns/policy/b1").exists());
        assert!(!dir.path().join("ns/policy").exists());
        assert!(dir.path().join("ns/other/b2/data.tar").exists());
    }

    #[tokio::test]
    async fn deleting_a_missing_backup_succeeds() {
        let (_dir, files) = local();
        assert_eq!(delete_path(&files, "/ns/policy/gone").await, Ok(0));
    }

    #[tokio::test]
    async fn the_root_is_never_deleted() {
        let (_dir, files) = local();
        assert!(delete_path(&files, "/").await.is_err());
    }
}
