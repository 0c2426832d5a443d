//! Backing up a directory tree or a byte stream into a snapshot.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use tokio::io::AsyncRead;
use tokio::sync::Semaphore;
use tokio_util::io::SyncIoBridge;

use super::blobref::{BlobRef, SMALL_FILE_LISTS};
use super::chunk::Mode;
use super::id::Id;
use super::keys::hostname;
use super::repository::Repository;
use super::restore::read_content_lists;
use super::snapshot::{Node, NodeType, Snapshot, SnapshotKind, Tree};
use super::writer::{Commit, Writer};
use crate::progress::SharedProgress;
use crate::{Error, Result};

/// Which snapshot a backup compares against (a tree: unchanged files; a stream: its dedup window).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ParentChoice {
    /// The newest snapshot of the same host and path.
    #[default]
    Auto,
    /// None: read every file.
    None,
    /// This one.
    Snapshot(Id),
}

/// Options of a backup.
#[derive(Debug, Clone, Default)]
pub struct BackupOptions {
    /// Tags recorded in the snapshot.
    pub tags: BTreeMap<String, String>,
    /// Parent selection (tree backups).
    pub parent: ParentChoice,
}

/// Backs up the directory tree at `root`.
pub async fn backup_tree(
    repo: &Repository,
    root: &Path,
    options: &BackupOptions,
    progress: SharedProgress,
) -> Result<Snapshot> {
    let root = std::fs::canonicalize(root)
        .map_err(|e| Error::io(format!("opening {}", root.display()), e))?;
    let meta = std::fs::metadata(&root)
        .map_err(|e| Error::io(format!("reading {}", root.display()), e))?;
    if !meta.is_dir() {
        return Err(Error::invalid(format!(
            "{} is not a directory",
            root.display()
        )));
    }
    let root_text = path_text(&root)?;
    progress.set_phase("scanning");
    progress.set_total(total_size(&root));
    progress.set_phase("backing up");
    // The marker first (W2): the parent is chosen, and its tree read, inside the session.
    let writer = Writer::start(repo).await?;
    if let Some(warning) = writer.view().unreadable_warning() {
        progress.warn(&warning);
    }
    let body = tree_body(&writer, root, root_text, meta, options, progress).await;
    writer.finish(body).await
}

async fn tree_body(
    writer: &Writer,
    root: PathBuf,
    root_text: String,
    meta: std::fs::Metadata,
    options: &BackupOptions,
    progress: SharedProgress,
) -> Result<Commit> {
    let repo = writer.repo();
    let parent = match &options.parent {
        ParentChoice::None => None,
        ParentChoice::Snapshot(id) => Some(repo.load_snapshot(id).await?),
        ParentChoice::Auto => {
            let host = hostname();
            repo.list_snapshots().await?.into_iter().rfind(|s| {
                s.kind == SnapshotKind::Tree && s.host == host && s.paths == [root_text.clone()]
            })
        }
    };
    let parent_tree = match parent.as_ref().and_then(|p| p.root.subtree) {
        Some(r) => Some(repo.read_tree(&r).await?),
        None => None,
    };
    let walker = Walker {
        writer,
        progress,
        files: Arc::new(Semaphore::new(4)),
        hardlinks: Mutex::new(HashMap::new()),
    };
    let subtree = walker.dir(root, Vec::new(), parent_tree).await?;
    let mut root_node = node_from_meta(b"", NodeType::Dir, &meta);
    root_node.subtree = Some(subtree);
    Ok(Commit {
        kind: SnapshotKind::Tree,
        paths: vec![root_text],
        tags: options.tags.clone(),
        root: root_node,
        parent: parent.map(|p| p.id),
        stream_compression: None,
    })
}

/// Backs up a byte stream as a snapshot whose root is a file node named `path`.
pub async fn backup_stream<R>(
    repo: &Repository,
    path: &str,
    reader: R,
    options: &BackupOptions,
    stream_compression: Option<String>,
    progress: SharedProgress,
) -> Result<Snapshot>
where
    R: AsyncRead + Send + Unpin + 'static,
{
    // The marker first (W2), then the parent.
    let writer = Writer::start(repo).await?;
    if let Some(warning) = writer.view().unreadable_warning() {
        progress.warn(&warning);
    }
    let body = stream_body(&writer, path, reader, options, stream_compression, progress).await;
    writer.finish(body).await
}

async fn stream_body<R>(
    writer: &Writer,
    path: &str,
    reader: R,
    options: &BackupOptions,
    stream_compression: Option<String>,
    progress: SharedProgress,
) -> Result<Commit>
where
    R: AsyncRead + Send + Unpin + 'static,
{
    let repo = writer.repo();
    let parent = match &options.parent {
        ParentChoice::None => None,
        ParentChoice::Snapshot(id) => Some(repo.load_snapshot(id).await?),
        ParentChoice::Auto => stream_parent(repo.list_snapshots().await?, path),
    };
    let parent_content = parent
        .as_ref()
        .filter(|p| p.root.kind == NodeType::File)
        .map(|p| p.root.content.clone())
        .unwrap_or_default();
    let input = SyncIoBridge::new(reader);
    let content = writer
        .write_content(Box::new(input), Mode::Stream, parent_content, progress)
        .await?;
    let mut root = Node::new(path, NodeType::File);
    root.mode = 0o100644;
    root.size = content.size;
    root.mtime_ns = jiff::Timestamp::now().as_nanosecond();
    root.content = content.content;
    Ok(Commit {
        kind: SnapshotKind::Stream,
        paths: vec![path.to_string()],
        tags: options.tags.clone(),
        root,
        parent: parent.map(|p| p.id),
        stream_compression,
    })
}

/// The snapshot a stream backup of `path` starts its dedup window from: the newest stream of
/// this host at the same path, else the newest at a sibling path (same depth, same file
/// suffix). KubeBlocks writes each backup under its own directory (`<ns>/<backup>/<file>`), so
/// the previous backup of the same data is at a sibling path, never at the same one. A wrong
/// guess costs two content-list reads; hooks still find the data.
fn stream_parent(snapshots: Vec<Snapshot>, path: &str) -> Option<Snapshot> {
    let host = hostname();
    let lineage = |p: &str| {
        let file = p.rsplit('/').next().unwrap_or(p);
        let suffix = file.split_once('.').map_or("", |(_, s)| s);
        (p.matches('/').count(), suffix.to_string())
    };
    let wanted = lineage(path);
    let streams: Vec<Snapshot> = snapshots
        .into_iter()
        .filter(|s| s.kind == SnapshotKind::Stream && s.host == host && s.paths.len() == 1)
        .collect();
    let newest = |same: &dyn Fn(&str) -> bool| {
        streams
            .iter()
            .filter(|s| same(&s.paths[0]))
            .max_by_key(|s| s.time)
            .cloned()
    };
    newest(&|p| p == path).or_else(|| newest(&|p| lineage(p) == wanted))
}

struct Walker<'a> {
    writer: &'a Writer,
    progress: SharedProgress,
    files: Arc<Semaphore>,
    /// (device, inode) of files with several names → the path of the first name seen.
    hardlinks: Mutex<HashMap<(u64, u64), Vec<u8>>>,
}

/// `rel/name` (or `name` at the root), as bytes: names need not be UTF-8.
fn join_rel(rel: &[u8], name: &[u8]) -> Vec<u8> {
    if rel.is_empty() {
        return name.to_vec();
    }
    let mut out = Vec::with_capacity(rel.len() + 1 + name.len());
    out.extend_from_slice(rel);
    out.push(b'/');
    out.extend_from_slice(name);
    out
}

impl Walker<'_> {
    fn dir<'s>(
        &'s self,
        abs: PathBuf,
        rel: Vec<u8>,
        parent: Option<Tree>,
    ) -> futures::future::BoxFuture<'s, Result<BlobRef>> {
        Box::pin(async move {
            self.writer.count_dir();
            let entries = read_dir_sorted(&abs)?;
            let parents: HashMap<Vec<u8>, Node> = parent
                .map(|t| {
                    t.nodes
                        .into_iter()
                        .map(|n| (n.raw_name().to_vec(), n))
                        .collect()
                })
                .unwrap_or_default();
            let verified = self.verify_unchanged(&entries, &parents).await;
            prefetch_small_files(&abs, &entries, &verified);
            let nodes: Vec<Node> = futures::stream::iter(entries)
                .map(|(name, meta)| {
                    let name_bytes = name.as_bytes().to_vec();
                    let child_rel = join_rel(&rel, &name_bytes);
                    let parent = parents.get(&name_bytes).cloned();
                    let reusable = verified.contains(&name_bytes);
                    let hardlink = self.hardlink_of(&meta, &child_rel);
                    self.entry(
                        abs.join(&name),
                        name_bytes,
                        child_rel,
                        meta,
                        parent,
                        reusable,
                        hardlink,
                    )
                })
                .buffered(8)
                .collect::<Vec<Result<Option<Node>>>>()
                .await
                .into_iter()
                .filter_map(Result::transpose)
                .collect::<Result<_>>()?;
            self.writer.write_tree(&Tree { nodes }).await
        })
    }

    /// The names of the files of this directory that are unchanged since the parent and whose
    /// content lists may be reused (W3: every pack they name is committed and not condemned).
    /// The content lists of small files are read together (a directory's lists are adjacent in
    /// a metadata pack); a large file's lists are checked one file at a time.
    async fn verify_unchanged(
        &self,
        entries: &[(OsString, std::fs::Metadata)],
        parents: &HashMap<Vec<u8>, Node>,
    ) -> HashSet<Vec<u8>> {
        let candidates: Vec<(&Vec<u8>, &Node)> = entries
            .iter()
            .filter_map(|(name, meta)| {
                let key = name.as_bytes();
                let parent = parents.get(key)?;
                let mut now = node_from_meta(key, NodeType::File, meta);
                now.size = meta.len();
                (meta.file_type().is_file() && unchanged(parent, &now))
                    .then(|| parents.get_key_value(key))
                    .flatten()
            })
            .collect();
        let small: Vec<BlobRef> = candidates
            .iter()
            .filter(|(_, n)| n.content.len() <= SMALL_FILE_LISTS)
            .flat_map(|(_, n)| n.content.iter().copied())
            .filter(|r| self.writer.view().usable(&r.pack))
            .collect();
        let lists = if small.len() >= 2 {
            // A damaged list among them: check file by file (the damaged one is read again).
            read_content_lists(self.writer.repo(), small)
                .await
                .unwrap_or_default()
        } else {
            HashMap::new()
        };
        let mut out = HashSet::new();
        for (name, node) in candidates {
            if self.writer.reusable(&node.content, Some(&lists)).await {
                out.insert(name.clone());
            }
        }
        out
    }

    /// For a file with several names: the first name seen, or `None` (and remember this one).
    fn hardlink_of(&self, meta: &std::fs::Metadata, rel: &[u8]) -> Option<Vec<u8>> {
        if !meta.is_file() || meta.nlink() < 2 {
            return None;
        }
        let mut links = self.hardlinks.lock().unwrap_or_else(|e| e.into_inner());
        match links.get(&(meta.dev(), meta.ino())) {
            Some(first) => Some(first.clone()),
            None => {
                links.insert((meta.dev(), meta.ino()), rel.to_vec());
                None
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn entry(
        &self,
        abs: PathBuf,
        name: Vec<u8>,
        rel: Vec<u8>,
        meta: std::fs::Metadata,
        parent: Option<Node>,
        reusable: bool,
        hardlink: Option<Vec<u8>>,
    ) -> Result<Option<Node>> {
        let file_type = meta.file_type();
        if let Some(first) = hardlink {
            let mut node = node_from_meta(&name, NodeType::Hardlink, &meta);
            node.set_raw_link(&first);
            return Ok(Some(node));
        }
        if file_type.is_dir() {
            let parent_tree = match parent
                .as_ref()
                .filter(|p| p.kind == NodeType::Dir)
                .and_then(|p| p.subtree)
            {
                Some(r) => self.writer.repo().read_tree(&r).await.ok(),
                None => None,
            };
            let mut node = node_from_meta(&name, NodeType::Dir, &meta);
            node.subtree = Some(self.dir(abs, rel, parent_tree).await?);
            return Ok(Some(node));
        }
        if file_type.is_symlink() {
            let target = std::fs::read_link(&abs)
                .map_err(|e| Error::io(format!("reading link {}", abs.display()), e))?;
            let mut node = node_from_meta(&name, NodeType::Symlink, &meta);
            node.set_raw_target(target.as_os_str().as_bytes());
            return Ok(Some(node));
        }
        if file_type.is_fifo() || file_type.is_char_device() || file_type.is_block_device() {
            let kind = if file_type.is_fifo() {
                NodeType::Fifo
            } else if file_type.is_char_device() {
                NodeType::Chardev
            } else {
                NodeType::Blockdev
            };
            let mut node = node_from_meta(&name, kind, &meta);
            node.rdev = meta.rdev();
            return Ok(Some(node));
        }
        if !file_type.is_file() {
            tracing::warn!(path = %abs.display(), "skipping a socket");
            return Ok(None);
        }
        let mut node = node_from_meta(&name, NodeType::File, &meta);
        node.size = meta.len();
        if let Some(p) = parent.as_ref()
            && reusable
            && unchanged(p, &node)
        {
            node.content = p.content.clone();
            self.writer.count_unchanged(node.size);
            self.progress.add(node.size);
            return Ok(Some(node));
        }
        let _permit = self
            .files
            .acquire()
            .await
            .map_err(|_| Error::invalid("backup was shut down"))?;
        let file = std::fs::File::open(&abs)
            .map_err(|e| Error::io(format!("opening {}", abs.display()), e))?;
        let parent_content = parent
            .filter(|p| p.kind == NodeType::File)
            .map(|p| p.content)
            .unwrap_or_default();
        // Small files were read ahead into the page cache with their directory: a direct read
        // would pass those pages by and wait for the disk again.
        let content = if node.size > PREFETCH_FILE {
            self.writer
                .write_file(file, parent_content, self.progress.clone())
                .await
        } else {
            self.writer
                .write_content(
                    Box::new(file),
                    Mode::Page,
                    parent_content,
                    self.progress.clone(),
                )
                .await
        }
        .map_err(|e| e.context(format!("backing up {}", abs.display())))?;
        node.size = content.size;
        node.content = content.content;
        Ok(Some(node))
    }
}

/// Files up to this size are read ahead when their directory is listed...
const PREFETCH_FILE: u64 = 1 << 20;
/// ...up to this many bytes per directory.
const PREFETCH_DIR: u64 = 32 << 20;

/// Asks the kernel to start reading a directory's small files now (`POSIX_FADV_WILLNEED`,
/// from a blocking thread, not waited for): the files are read a few at a time, and without it
/// each small file's read waits for the disk on its own.
/// Files `unchanged` since the parent snapshot are not read, so not read ahead either.
fn prefetch_small_files(
    dir: &Path,
    entries: &[(OsString, std::fs::Metadata)],
    unchanged: &HashSet<Vec<u8>>,
) {
    let chosen = to_prefetch(entries.iter().map(|(name, meta)| {
        let read = meta.is_file() && !unchanged.contains(name.as_bytes());
        (read, meta.len())
    }));
    if chosen.len() < 2 {
        return;
    }
    let paths: Vec<PathBuf> = chosen
        .into_iter()
        .map(|i| dir.join(&entries[i].0))
        .collect();
    tokio::task::spawn_blocking(move || {
        for path in paths {
            if let Ok(file) = std::fs::File::open(&path) {
                let _ = nix::fcntl::posix_fadvise(
                    &file,
                    0,
                    0,
                    nix::fcntl::PosixFadviseAdvice::POSIX_FADV_WILLNEED,
                );
            }
        }
    });
}

/// Which of a directory's entries (`(a regular file the backup will read, size)`, in order) to
/// read ahead: the non-empty files up to [`PREFETCH_FILE`], in order, until [`PREFETCH_DIR`]
/// bytes.
fn to_prefetch(entries: impl Iterator<Item = (bool, u64)>) -> Vec<usize> {
    let mut budget = PREFETCH_DIR;
    entries
        .enumerate()
        .filter(|(_, (file, len))| *file && *len > 0 && *len <= PREFETCH_FILE)
        .take_while(|(_, (_, len))| match budget.checked_sub(*len) {
            Some(left) => {
                budget = left;
                true
            }
            None => false,
        })
        .map(|(i, _)| i)
        .collect()
}

fn unchanged(parent: &Node, now: &Node) -> bool {
    parent.kind == NodeType::File
        && parent.size == now.size
        && parent.mtime_ns == now.mtime_ns
        && parent.ctime_ns == now.ctime_ns
        && parent.inode == now.inode
}

fn node_from_meta(name: &[u8], kind: NodeType, meta: &std::fs::Metadata) -> Node {
    let mut node = Node::with_raw_name(name, kind);
    node.mode = meta.mode();
    node.uid = meta.uid();
    node.gid = meta.gid();
    node.mtime_ns = meta.mtime() as i128 * 1_000_000_000 + meta.mtime_nsec() as i128;
    node.ctime_ns = meta.ctime() as i128 * 1_000_000_000 + meta.ctime_nsec() as i128;
    node.inode = meta.ino();
    node.dev = meta.dev();
    node
}

fn path_text(path: &Path) -> Result<String> {
    path.to_str().map(str::to_string).ok_or_else(|| {
        Error::unsupported(format!(
            "the backup root {} is not valid UTF-8 (names below it may be any bytes; the root path is recorded as text)",
            path.display()
        ))
    })
}

/// Directory entries with their `lstat`, sorted by name (byte order). Names are kept as
/// the file system gives them: they need not be UTF-8.
fn read_dir_sorted(dir: &Path) -> Result<Vec<(OsString, std::fs::Metadata)>> {
    let mut out = Vec::new();
    let entries =
        std::fs::read_dir(dir).map_err(|e| Error::io(format!("listing {}", dir.display()), e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(format!("listing {}", dir.display()), e))?;
        let name = entry.file_name();
        let meta = entry
            .metadata()
            .map_err(|e| Error::io(format!("reading {}", dir.join(&name).display()), e))?;
        out.push((name, meta));
    }
    out.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    Ok(out)
}

/// Bytes of regular files under `root` (for the progress total; errors count as 0).
fn total_size(root: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                stack.push(entry.path());
            } else if meta.is_file() {
                total += meta.len();
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_files_are_read_ahead_in_order_until_the_directory_budget() {
        let entries = [
            (true, 10),                // 0: small file
            (false, 4096),             // 1: a directory
            (true, 0),                 // 2: empty
            (true, PREFETCH_FILE + 1), // 3: too large
            (true, PREFETCH_FILE),     // 4: at the limit
            (true, 7),                 // 5
        ];
        assert_eq!(to_prefetch(entries.into_iter()), vec![0, 4, 5]);
        let many = std::iter::repeat_n((true, PREFETCH_FILE), 40);
        assert_eq!(to_prefetch(many).len() as u64, PREFETCH_DIR / PREFETCH_FILE);
        assert!(to_prefetch(std::iter::empty()).is_empty());
    }
}
