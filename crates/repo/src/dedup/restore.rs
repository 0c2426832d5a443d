//! Restore: parallel, out-of-order ranged reads written with `pwrite` (tree restores), or in
//! order through a bounded reorder window (stream restores) (docs/FORMAT.md §6.3).

use std::collections::HashMap;
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::blobref::BlobRef;
use super::id::Id;
use super::pack::{BlobType, open_blob, pack_key};
use super::repository::Repository;
use super::snapshot::{Node, NodeType, Snapshot, SnapshotKind, Tree};
use crate::progress::SharedProgress;
use crate::{Error, ErrorKind, Result};

/// What to restore and how.
#[derive(Debug, Clone, Default)]
pub struct RestoreOptions {
    /// Only this path of the snapshot (a file or a directory), restored at the same
    /// relative place under the target.
    pub include: Option<String>,
    /// Restore owners (needs root; default: when running as root).
    pub owners: Option<bool>,
}

/// Counts of a restore.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct RestoreSummary {
    /// Files written.
    pub files: u64,
    /// Directories created.
    pub dirs: u64,
    /// Bytes of file content (including holes).
    pub bytes: u64,
    /// Bytes fetched from the store.
    pub fetched: u64,
}

/// One ranged read and the blobs it carries.
#[derive(Debug)]
struct Fetch {
    pack: Id,
    start: u64,
    end: u64,
    pieces: Vec<Piece>,
}

#[derive(Debug, Clone, Copy)]
struct Piece {
    file: u64,
    offset: u64,
    r: BlobRef,
}

/// Coalesces consecutive refs that are adjacent in one pack into ranged reads.
struct Coalescer {
    max_range: u64,
    current: Option<Fetch>,
}

impl Coalescer {
    fn new(max_range: u64) -> Coalescer {
        Coalescer {
            max_range,
            current: None,
        }
    }

    /// Adds a blob; returns a finished fetch if this blob could not join the open one.
    fn push(&mut self, piece: Piece) -> Option<Fetch> {
        let r = piece.r;
        if let Some(f) = &mut self.current
            && f.pack == r.pack
            && f.end == r.offset as u64
            && f.end + r.stored_len as u64 - f.start <= self.max_range
            && f.pieces.len() < 4096
        {
            f.end += r.stored_len as u64;
            f.pieces.push(piece);
            return None;
        }
        self.current.replace(Fetch {
            pack: r.pack,
            start: r.offset as u64,
            end: r.end(),
            pieces: vec![piece],
        })
    }

    fn finish(&mut self) -> Option<Fetch> {
        self.current.take()
    }
}

/// Fetches a range and opens its blobs (on a blocking thread).
async fn fetch_and_open(repo: &Repository, fetch: Fetch) -> Result<(Vec<(Piece, Vec<u8>)>, u64)> {
    let key = pack_key(&fetch.pack);
    let bytes = match repo.store().get_range(&key, fetch.start..fetch.end).await {
        Ok(b) => b,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            return Err(Error::not_found(format!("pack {key} is missing")));
        }
        Err(e) => return Err(e),
    };
    let fetched = bytes.len() as u64;
    let keys = repo.keys().clone();
    let opened = tokio::task::spawn_blocking(move || {
        let aead = keys.pack_aead(&fetch.pack);
        fetch
            .pieces
            .into_iter()
            .map(|piece| {
                let at = (piece.r.offset as u64 - fetch.start) as usize;
                let stored = &bytes[at..at + piece.r.stored_len as usize];
                open_blob(&aead, BlobType::Data, &piece.r, stored).map(|plain| (piece, plain))
            })
            .collect::<Result<Vec<_>>>()
    })
    .await
    .map_err(|e| Error::new(ErrorKind::Io, "a restore worker failed").with_source(e))??;
    Ok((opened, fetched))
}

/// Streams a file's or stream's content into `out`, in order, with a bounded reorder window.
pub async fn restore_stream<W>(
    repo: &Repository,
    node: &Node,
    mut out: W,
    progress: SharedProgress,
) -> Result<u64>
where
    W: AsyncWrite + Unpin + Send,
{
    progress.set_total(node.size);
    let (tx, rx) = mpsc::channel::<Result<StreamJob>>(64);
    let producer = {
        let repo = repo.clone();
        let content = node.content.clone();
        // Decoded blobs wait in order here, so ranges are smaller than for tree restores.
        let max_range = repo.options().restore_range.min(4 << 20);
        async move {
            let mut coalescer = Coalescer::new(max_range);
            for list in &content {
                let refs = match repo.read_content_list(list).await {
                    Ok(refs) => refs,
                    Err(e) => {
                        let _ = tx.send(Err(e)).await;
                        return;
                    }
                };
                for r in refs {
                    if r.is_zero_run() {
                        if let Some(f) = coalescer.finish()
                            && tx.send(Ok(StreamJob::Fetch(f))).await.is_err()
                        {
                            return;
                        }
                        if tx
                            .send(Ok(StreamJob::Zero(r.raw_len as u64)))
                            .await
                            .is_err()
                        {
                            return;
                        }
                        continue;
                    }
                    if let Some(f) = coalescer.push(Piece {
                        file: 0,
                        offset: 0,
                        r,
                    }) && tx.send(Ok(StreamJob::Fetch(f))).await.is_err()
                    {
                        return;
                    }
                }
            }
            if let Some(f) = coalescer.finish() {
                let _ = tx.send(Ok(StreamJob::Fetch(f))).await;
            }
        }
    };
    let consumer = async {
        let window = repo.options().restore_fetches.clamp(1, 8);
        let mut results = ReceiverStream::new(rx)
            .map(|job| {
                let repo = repo.clone();
                async move {
                    match job? {
                        StreamJob::Zero(len) => Ok(StreamOut::Zero(len)),
                        StreamJob::Fetch(f) => fetch_and_open(&repo, f)
                            .await
                            .map(|(blobs, _)| StreamOut::Data(blobs)),
                    }
                }
            })
            .buffered(window);
        let mut written = 0u64;
        let zeros = vec![0u8; 1 << 20];
        while let Some(result) = results.next().await {
            match result? {
                StreamOut::Zero(mut len) => {
                    while len > 0 {
                        let n = len.min(zeros.len() as u64) as usize;
                        out.write_all(&zeros[..n])
                            .await
                            .map_err(|e| Error::io("writing restored data", e))?;
                        len -= n as u64;
                        written += n as u64;
                        progress.add(n as u64);
                    }
                }
                StreamOut::Data(blobs) => {
                    for (_, plain) in blobs {
                        out.write_all(&plain)
                            .await
                            .map_err(|e| Error::io("writing restored data", e))?;
                        written += plain.len() as u64;
                        progress.add(plain.len() as u64);
                    }
                }
            }
        }
        out.flush()
            .await
            .map_err(|e| Error::io("writing restored data", e))?;
        Ok::<u64, Error>(written)
    };
    let ((), written) = tokio::join!(producer, consumer);
    let written = written?;
    if written != node.size {
        return Err(Error::corrupt(format!(
            "restored {written} bytes of {} but the snapshot says {}",
            node.name, node.size
        )));
    }
    Ok(written)
}

enum StreamJob {
    Fetch(Fetch),
    Zero(u64),
}

enum StreamOut {
    Data(Vec<(Piece, Vec<u8>)>),
    Zero(u64),
}

/// A file being restored.
struct Slot {
    path: PathBuf,
    node: Node,
    file: Option<Arc<std::fs::File>>,
    pending: u64,
    produced: bool,
}

#[derive(Default)]
struct Files {
    slots: HashMap<u64, Slot>,
    next: u64,
}

/// Applies mode, owner and times; `owners` only as root.
fn apply_meta(path: &Path, node: &Node, owners: bool) -> Result<()> {
    let symlink = node.kind == NodeType::Symlink;
    if owners {
        std::os::unix::fs::lchown(path, Some(node.uid), Some(node.gid))
            .map_err(|e| Error::io(format!("setting the owner of {}", path.display()), e))?;
    }
    if !symlink && node.kind != NodeType::Hardlink {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(node.mode & 0o7777))
            .map_err(|e| Error::io(format!("setting the mode of {}", path.display()), e))?;
    }
    let secs = node.mtime_ns.div_euclid(1_000_000_000) as i64;
    let nanos = node.mtime_ns.rem_euclid(1_000_000_000) as i64;
    let time = nix::sys::time::TimeSpec::new(secs, nanos);
    nix::sys::stat::utimensat(
        nix::fcntl::AT_FDCWD,
        path,
        &time,
        &time,
        nix::sys::stat::UtimensatFlags::NoFollowSymlink,
    )
    .map_err(|e| {
        Error::io(
            format!("setting the time of {}", path.display()),
            std::io::Error::from(e),
        )
    })?;
    Ok(())
}

/// Restores a snapshot (or the `include` part of it) under `target`.
pub async fn restore_tree(
    repo: &Repository,
    snapshot: &Snapshot,
    target: &Path,
    options: &RestoreOptions,
    progress: SharedProgress,
) -> Result<RestoreSummary> {
    let owners = options
        .owners
        .unwrap_or_else(|| nix::unistd::geteuid().is_root());
    std::fs::create_dir_all(target)
        .map_err(|e| Error::io(format!("creating {}", target.display()), e))?;
    if snapshot.kind == SnapshotKind::Stream {
        let name = snapshot
            .root
            .name
            .rsplit('/')
            .next()
            .filter(|n| !n.is_empty())
            .unwrap_or("stream");
        let path = target.join(name);
        let file = tokio::fs::File::create(&path)
            .await
            .map_err(|e| Error::io(format!("creating {}", path.display()), e))?;
        let bytes = restore_stream(repo, &snapshot.root, file, progress).await?;
        return Ok(RestoreSummary {
            files: 1,
            dirs: 0,
            bytes,
            fetched: 0,
        });
    }
    let (start_node, start_rel) = find_include(repo, snapshot, options.include.as_deref()).await?;
    progress.set_total(subtree_size_hint(&start_node));
    let files = Arc::new(Mutex::new(Files::default()));
    let summary = Arc::new(Mutex::new(RestoreSummary::default()));
    let (tx, rx) = mpsc::channel::<Result<Fetch>>(64);
    let planner = Planner {
        repo: repo.clone(),
        files: files.clone(),
        summary: summary.clone(),
        tx,
        owners,
        dirs: Vec::new(),
        hardlinks: Vec::new(),
        coalescer: Coalescer::new(repo.options().restore_range),
        progress: progress.clone(),
        produced_on_send: Vec::new(),
        prefetched: HashMap::new(),
    };
    let plan = planner.run(target.to_path_buf(), start_node, start_rel);
    let execute = async {
        let fetched: Vec<u64> = ReceiverStream::new(rx)
            .map(|fetch| {
                let repo = repo.clone();
                let files = files.clone();
                let progress = progress.clone();
                async move { write_fetch(&repo, fetch?, &files, owners, &progress).await }
            })
            .buffer_unordered(repo.options().restore_fetches.max(1))
            .collect::<Vec<Result<u64>>>()
            .await
            .into_iter()
            .collect::<Result<_>>()?;
        Ok::<u64, Error>(fetched.iter().sum())
    };
    let (planned, fetched) = tokio::join!(plan, execute);
    let fetched = fetched?;
    let (dirs, hardlinks) = planned?;
    for (link, first) in hardlinks {
        std::fs::hard_link(&first, &link).map_err(|e| {
            Error::io(
                format!("linking {} to {}", link.display(), first.display()),
                e,
            )
        })?;
    }
    // Directories last, deepest first, so writing into them does not change their times.
    for (path, node) in dirs.iter().rev() {
        apply_meta(path, node, owners)?;
    }
    let mut result = *summary.lock().unwrap_or_else(|e| e.into_inner());
    result.fetched = fetched;
    Ok(result)
}

fn subtree_size_hint(node: &Node) -> u64 {
    if node.kind == NodeType::File {
        node.size
    } else {
        0
    }
}

/// The node at `include` (or the root) and its path relative to the snapshot root.
async fn find_include(
    repo: &Repository,
    snapshot: &Snapshot,
    include: Option<&str>,
) -> Result<(Node, String)> {
    let mut node = snapshot.root.clone();
    let Some(include) = include else {
        return Ok((node, String::new()));
    };
    let parts: Vec<&str> = include
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    for (i, part) in parts.iter().enumerate() {
        let subtree = node
            .subtree
            .filter(|_| node.kind == NodeType::Dir)
            .ok_or_else(|| {
                Error::not_found(format!(
                    "{include} is not in snapshot {}: {} is not a directory",
                    snapshot.id.short(),
                    parts[..i].join("/")
                ))
            })?;
        let tree = repo.read_tree(&subtree).await?;
        node = tree
            .nodes
            .into_iter()
            .find(|n| n.name == *part)
            .ok_or_else(|| {
                Error::not_found(format!(
                    "{include} is not in snapshot {}",
                    snapshot.id.short()
                ))
            })?;
    }
    let mut rel = parts.join("/");
    if node.kind != NodeType::Dir {
        rel = parts[..parts.len().saturating_sub(1)].join("/");
    }
    Ok((node, rel))
}

struct Planner {
    repo: Repository,
    files: Arc<Mutex<Files>>,
    summary: Arc<Mutex<RestoreSummary>>,
    tx: mpsc::Sender<Result<Fetch>>,
    owners: bool,
    dirs: Vec<(PathBuf, Node)>,
    hardlinks: Vec<(PathBuf, PathBuf)>,
    coalescer: Coalescer,
    progress: SharedProgress,
    /// Files whose last blobs sit in the open fetch: they become `produced` when that fetch is
    /// sent and counted, never before (a writer finishing the file's earlier fetches in between
    /// would otherwise finalize it and then meet the open fetch's blobs).
    produced_on_send: Vec<u64>,
    /// Content lists of the small files of the batch of tree entries being planned, read
    /// ahead concurrently: reading them one by one costs a store round trip per file.
    prefetched: HashMap<Id, Vec<BlobRef>>,
}

/// Tree entries whose small files' content lists are read ahead together.
const PREFETCH_ENTRIES: usize = 256;
/// Content-list reads in flight while reading ahead.
const PREFETCH_READS: usize = 16;

type Planned = (Vec<(PathBuf, Node)>, Vec<(PathBuf, PathBuf)>);

impl Planner {
    async fn run(mut self, target: PathBuf, start: Node, rel: String) -> Result<Planned> {
        let base = if rel.is_empty() {
            target.clone()
        } else {
            target.join(&rel)
        };
        let outcome = async {
            std::fs::create_dir_all(&base)
                .map_err(|e| Error::io(format!("creating {}", base.display()), e))?;
            if start.kind == NodeType::Dir {
                let Some(subtree) = start.subtree else {
                    return Err(Error::corrupt(format!(
                        "directory {} has no tree",
                        start.name
                    )));
                };
                if !rel.is_empty() {
                    self.dirs.push((base.clone(), start.clone()));
                }
                self.dir(&target, base, subtree).await
            } else {
                self.node(&target, &base, start).await
            }
        }
        .await;
        if let Err(e) = outcome {
            let message = Error::new(e.kind(), e.message().to_string());
            let _ = self.tx.send(Err(message)).await;
            return Err(e);
        }
        if let Some(f) = self.coalescer.finish() {
            self.send(f).await?;
        }
        Ok((
            std::mem::take(&mut self.dirs),
            std::mem::take(&mut self.hardlinks),
        ))
    }

    async fn send(&mut self, fetch: Fetch) -> Result<()> {
        {
            let mut files = self.files.lock().unwrap_or_else(|e| e.into_inner());
            let mut seen = Vec::new();
            for piece in &fetch.pieces {
                if !seen.contains(&piece.file) {
                    seen.push(piece.file);
                    if let Some(slot) = files.slots.get_mut(&piece.file) {
                        slot.pending += 1;
                    }
                }
            }
            self.produced_on_send.retain(|id| {
                if !seen.contains(id) {
                    return true;
                }
                if let Some(slot) = files.slots.get_mut(id) {
                    slot.produced = true;
                }
                false
            });
        }
        self.tx
            .send(Ok(fetch))
            .await
            .map_err(|_| Error::new(ErrorKind::Io, "restore writers stopped"))
    }

    fn dir<'a>(
        &'a mut self,
        root: &'a Path,
        path: PathBuf,
        tree: BlobRef,
    ) -> futures::future::BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let tree: Tree = self.repo.read_tree(&tree).await?;
            let mut nodes = tree.nodes;
            while !nodes.is_empty() {
                let rest = nodes.split_off(nodes.len().min(PREFETCH_ENTRIES));
                self.prefetch_lists(&nodes).await?;
                for node in nodes {
                    self.node(root, &path, node).await?;
                }
                self.prefetched.clear();
                nodes = rest;
            }
            Ok(())
        })
    }

    /// Reads the content lists of the small files (one or two lists) among `nodes` at once.
    async fn prefetch_lists(&mut self, nodes: &[Node]) -> Result<()> {
        let refs: Vec<BlobRef> = nodes
            .iter()
            .filter(|n| n.kind == NodeType::File && n.content.len() <= 2)
            .flat_map(|n| n.content.iter().copied())
            .collect();
        if refs.len() < 2 {
            return Ok(());
        }
        let repo = self.repo.clone();
        let mut reads = futures::stream::iter(refs)
            .map(|r| {
                let repo = repo.clone();
                async move { repo.read_content_list(&r).await.map(|list| (r.id, list)) }
            })
            .buffer_unordered(PREFETCH_READS);
        while let Some(read) = reads.next().await {
            let (id, list) = read?;
            self.prefetched.insert(id, list);
        }
        Ok(())
    }

    async fn node(&mut self, root: &Path, dir: &Path, node: Node) -> Result<()> {
        if node.name.contains('/') || node.name == ".." || node.name == "." || node.name.is_empty()
        {
            return Err(Error::corrupt(format!(
                "tree entry {:?} is not a valid file name",
                node.name
            )));
        }
        let path = dir.join(&node.name);
        match node.kind {
            NodeType::Dir => {
                std::fs::create_dir_all(&path)
                    .map_err(|e| Error::io(format!("creating {}", path.display()), e))?;
                self.summary.lock().unwrap_or_else(|e| e.into_inner()).dirs += 1;
                let subtree = node.subtree.ok_or_else(|| {
                    Error::corrupt(format!("directory {} has no tree", path.display()))
                })?;
                self.dirs.push((path.clone(), node));
                self.dir(root, path, subtree).await?;
            }
            NodeType::File => self.file(path, node).await?,
            NodeType::Symlink => {
                let target = node.target.clone().unwrap_or_default();
                remove_existing(&path)?;
                std::os::unix::fs::symlink(&target, &path)
                    .map_err(|e| Error::io(format!("creating symlink {}", path.display()), e))?;
                apply_meta(&path, &node, self.owners)?;
            }
            NodeType::Hardlink => {
                let first = node.link.clone().unwrap_or_default();
                if first.split('/').any(|p| p == "..") {
                    return Err(Error::corrupt(format!(
                        "hard link {} points outside the snapshot",
                        path.display()
                    )));
                }
                self.hardlinks.push((path, root.join(first)));
            }
            NodeType::Fifo | NodeType::Chardev | NodeType::Blockdev => {
                use nix::sys::stat::{Mode, SFlag, mknod};
                remove_existing(&path)?;
                let kind = match node.kind {
                    NodeType::Fifo => SFlag::S_IFIFO,
                    NodeType::Chardev => SFlag::S_IFCHR,
                    _ => SFlag::S_IFBLK,
                };
                mknod(
                    &path,
                    kind,
                    Mode::from_bits_truncate(node.mode & 0o7777),
                    node.rdev as nix::sys::stat::dev_t,
                )
                .map_err(|e| {
                    Error::io(
                        format!("creating {}", path.display()),
                        std::io::Error::from(e),
                    )
                })?;
                apply_meta(&path, &node, self.owners)?;
            }
        }
        Ok(())
    }

    async fn file(&mut self, path: PathBuf, node: Node) -> Result<()> {
        remove_existing(&path)?;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(&path)
            .map_err(|e| Error::io(format!("creating {}", path.display()), e))?;
        file.set_len(node.size)
            .map_err(|e| Error::io(format!("sizing {}", path.display()), e))?;
        drop(file);
        let content = node.content.clone();
        let size = node.size;
        let slot_id = {
            let mut files = self.files.lock().unwrap_or_else(|e| e.into_inner());
            let id = files.next;
            files.next += 1;
            files.slots.insert(
                id,
                Slot {
                    path: path.clone(),
                    node,
                    file: None,
                    pending: 0,
                    produced: false,
                },
            );
            id
        };
        {
            let mut summary = self.summary.lock().unwrap_or_else(|e| e.into_inner());
            summary.files += 1;
            summary.bytes += size;
        }
        let mut offset = 0u64;
        for list in &content {
            let refs = match self.prefetched.remove(&list.id) {
                Some(refs) => refs,
                None => self.repo.read_content_list(list).await?,
            };
            for r in refs {
                if r.is_zero_run() {
                    self.progress.add(r.raw_len as u64);
                } else if let Some(f) = self.coalescer.push(Piece {
                    file: slot_id,
                    offset,
                    r,
                }) {
                    self.send(f).await?;
                }
                offset += r.raw_len as u64;
            }
        }
        if offset != size {
            return Err(Error::corrupt(format!(
                "{}: content lists hold {offset} bytes but the node says {size}",
                path.display()
            )));
        }
        // Count the blobs still in the open fetch for this file before marking it produced.
        let in_open = self
            .coalescer
            .current
            .as_ref()
            .is_some_and(|f| f.pieces.iter().any(|p| p.file == slot_id));
        let finished = {
            let mut files = self.files.lock().unwrap_or_else(|e| e.into_inner());
            let ready = match files.slots.get_mut(&slot_id) {
                Some(_) if in_open => {
                    // The open fetch is sent later; `send` counts it and marks the file then.
                    self.produced_on_send.push(slot_id);
                    false
                }
                Some(slot) => {
                    slot.produced = true;
                    slot.pending == 0
                }
                None => false,
            };
            if ready {
                files.slots.remove(&slot_id)
            } else {
                None
            }
        };
        if let Some(slot) = finished {
            apply_meta(&slot.path, &slot.node, self.owners)?;
        }
        Ok(())
    }
}

fn remove_existing(path: &Path) -> Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => Err(Error::invalid(format!(
            "{} exists and is a directory",
            path.display()
        ))),
        Ok(_) => std::fs::remove_file(path)
            .map_err(|e| Error::io(format!("replacing {}", path.display()), e)),
        Err(_) => Ok(()),
    }
}

/// Fetches one range and writes its blobs at their offsets, one blob in memory at a time;
/// finalizes the files it completes.
async fn write_fetch(
    repo: &Repository,
    fetch: Fetch,
    files: &Arc<Mutex<Files>>,
    owners: bool,
    progress: &SharedProgress,
) -> Result<u64> {
    let key = pack_key(&fetch.pack);
    let bytes = match repo.store().get_range(&key, fetch.start..fetch.end).await {
        Ok(b) => b,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            return Err(Error::not_found(format!("pack {key} is missing")));
        }
        Err(e) => return Err(e),
    };
    let fetched = bytes.len() as u64;
    let files = files.clone();
    let progress = progress.clone();
    let keys = repo.keys().clone();
    tokio::task::spawn_blocking(move || -> Result<u64> {
        let aead = keys.pack_aead(&fetch.pack);
        let mut touched: Vec<u64> = Vec::new();
        for piece in &fetch.pieces {
            let at = (piece.r.offset as u64 - fetch.start) as usize;
            let plain = open_blob(
                &aead,
                BlobType::Data,
                &piece.r,
                &bytes[at..at + piece.r.stored_len as usize],
            )?;
            let (file, path) = {
                let mut guard = files.lock().unwrap_or_else(|e| e.into_inner());
                let slot = guard.slots.get_mut(&piece.file).ok_or_else(|| {
                    Error::corrupt("a restore job names a file that is already complete")
                })?;
                if slot.file.is_none() {
                    let f = std::fs::OpenOptions::new()
                        .write(true)
                        .open(&slot.path)
                        .map_err(|e| Error::io(format!("opening {}", slot.path.display()), e))?;
                    slot.file = Some(Arc::new(f));
                }
                (slot.file.clone(), slot.path.clone())
            };
            if let Some(file) = file {
                file.write_all_at(&plain, piece.offset)
                    .map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
            }
            progress.add(plain.len() as u64);
            if !touched.contains(&piece.file) {
                touched.push(piece.file);
            }
        }
        let mut done = Vec::new();
        {
            let mut guard = files.lock().unwrap_or_else(|e| e.into_inner());
            for id in touched {
                let finished = match guard.slots.get_mut(&id) {
                    Some(slot) => {
                        slot.pending = slot.pending.saturating_sub(1);
                        slot.produced && slot.pending == 0
                    }
                    None => false,
                };
                if finished && let Some(slot) = guard.slots.remove(&id) {
                    done.push(slot);
                }
            }
        }
        for slot in done {
            drop(slot.file);
            apply_meta(&slot.path, &slot.node, owners)?;
        }
        Ok(fetched)
    })
    .await
    .map_err(|e| Error::new(ErrorKind::Io, "a restore writer failed").with_source(e))?
}
