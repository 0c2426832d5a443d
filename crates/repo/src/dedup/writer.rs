//! A writer session: chunks inputs, stores new chunks in packs, writes content lists and
//! trees, and commits packs → index → snapshot (docs/FORMAT.md §6.1, §7.1 W1).
//!
//! One input runs as a pipeline: a blocking thread reads, chunks and hashes; the async
//! stage looks chunks up in the dedup window and sends misses to blocking compression
//! workers (order kept with `FuturesOrdered`); the last stage appends blobs to packs in order
//! and cuts content lists every `segment_refs` refs.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::FuturesOrdered;
use jiff::Timestamp;
use tokio::sync::mpsc;

use super::blobref::{BlobRef, encode_content_list};
use super::chunk::{ChunkReader, Mode};
use super::gc::load_condemned;
use super::id::Id;
use super::index::{IndexFile, IndexView, SegmentRecord, encode_hooks, index_key};
use super::keys::hostname;
use super::pack::BlobType;
use super::packer::Packer;
use super::repository::Repository;
use super::sealed::{self, Kind};
use super::session::Session;
use super::snapshot::{Node, Snapshot, SnapshotKind, Summary, Tree};
use super::window::{Window, is_hook};
use crate::progress::SharedProgress;
use crate::{Error, ErrorKind, Result};

/// What [`Writer::write_input`] reads.
enum Input {
    Reader(Box<dyn Read + Send>, Mode),
    File(std::fs::File),
}

/// Bytes of input per pipeline batch.
const BATCH_BYTES: usize = 2 << 20;

/// The content of one file or stream as stored.
#[derive(Debug, Clone, Default)]
pub struct FileContent {
    /// Bytes read.
    pub size: u64,
    /// Its content lists.
    pub content: Vec<BlobRef>,
}

#[derive(Debug, Default)]
struct SessionIndex {
    segments: Vec<SegmentRecord>,
    hooks: Vec<(u64, u32)>,
}

/// A backup in progress. Drop without [`Writer::commit`] leaves only garbage (uncommitted
/// packs) that prune removes.
pub struct Writer {
    repo: Repository,
    view: Arc<IndexView>,
    packer: Arc<Packer>,
    /// Batches being compressed or waiting to be packed, across all files of the session:
    /// bounds memory however many files are written at once.
    compressing: Arc<tokio::sync::Semaphore>,
    session: Session,
    index: Mutex<SessionIndex>,
    stats: Mutex<Summary>,
    started: Timestamp,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("session", &self.session.id())
            .finish_non_exhaustive()
    }
}

enum Item {
    Zero(u32),
    Hit(BlobRef),
    Miss {
        id: Id,
        data: Bytes,
    },
    Packed {
        id: Id,
        /// The chunk itself when stored raw (no copy), else its compressed form.
        payload: Bytes,
        compressed: bool,
        raw_len: u32,
    },
}

impl Writer {
    /// Starts a session: marker first, then condemned lists and indexes (W2).
    pub async fn start(repo: &Repository) -> Result<Writer> {
        let options = repo.options();
        let session = Session::start(
            repo.store(),
            repo.keys().clone(),
            options.heartbeat,
            options.session_timeout,
        )
        .await?;
        let condemned = load_condemned(repo).await?;
        let mut view = IndexView::load(repo.store(), repo.keys()).await?;
        view.condemned = condemned;
        Ok(Writer {
            repo: repo.clone(),
            view: Arc::new(view),
            packer: Arc::new(Packer::new(repo.clone())),
            compressing: Arc::new(tokio::sync::Semaphore::new(options.workers.max(1) * 2)),
            session,
            index: Mutex::new(SessionIndex::default()),
            stats: Mutex::new(Summary::default()),
            started: Timestamp::now(),
        })
    }

    /// The repository.
    pub fn repo(&self) -> &Repository {
        &self.repo
    }

    /// What the writer loaded from the indexes.
    pub fn view(&self) -> &Arc<IndexView> {
        &self.view
    }

    fn stats(&self) -> std::sync::MutexGuard<'_, Summary> {
        self.stats.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts a file not read because its parent node was unchanged.
    pub(crate) fn count_unchanged(&self, size: u64) {
        let mut stats = self.stats();
        stats.unchanged_files += 1;
        stats.files += 1;
        stats.bytes += size;
    }

    /// Counts a directory.
    pub(crate) fn count_dir(&self) {
        self.stats().dirs += 1;
    }

    /// Stores everything `input` yields. `parent` are the content lists of the same file in
    /// the parent snapshot (the window starts from them); streams pass none and rely on hooks.
    pub async fn write_content(
        &self,
        input: Box<dyn Read + Send>,
        mode: Mode,
        parent: Vec<BlobRef>,
        progress: SharedProgress,
    ) -> Result<FileContent> {
        self.write_input(Input::Reader(input, mode), parent, progress)
            .await
    }

    /// Stores a regular file's content, read past the page cache where the file system allows
    /// it ([`ChunkReader::direct`]).
    pub(crate) async fn write_file(
        &self,
        file: std::fs::File,
        parent: Vec<BlobRef>,
        progress: SharedProgress,
    ) -> Result<FileContent> {
        self.write_input(Input::File(file), parent, progress).await
    }

    async fn write_input(
        &self,
        input: Input,
        parent: Vec<BlobRef>,
        progress: SharedProgress,
    ) -> Result<FileContent> {
        let keys = self.repo.keys().clone();
        let params = self.repo.config().chunker;
        let (tx, mut rx) = mpsc::channel::<Result<Vec<(Bytes, Option<Id>)>>>(2);
        let reader = tokio::task::spawn_blocking(move || {
            let mut chunks = match input {
                Input::Reader(reader, mode) => {
                    ChunkReader::new(reader, mode, &params, keys.chunker_key())
                }
                Input::File(file) => ChunkReader::direct(file, &params, keys.chunker_key()),
            };
            let mut batch = Vec::new();
            let mut batch_bytes = 0;
            loop {
                match chunks.next_chunk() {
                    Ok(Some(chunk)) => {
                        progress.add(chunk.data.len() as u64);
                        batch_bytes += chunk.data.len();
                        let id = (!is_all_zero(&chunk.data)).then(|| keys.chunk_id(&chunk.data));
                        batch.push((chunk.data, id));
                        if batch_bytes >= BATCH_BYTES {
                            batch_bytes = 0;
                            if tx.blocking_send(Ok(std::mem::take(&mut batch))).is_err() {
                                return;
                            }
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        let _ = tx.blocking_send(Err(Error::io("reading the data to back up", e)));
                        return;
                    }
                }
            }
            if !batch.is_empty() {
                let _ = tx.blocking_send(Ok(batch));
            }
        });

        let mut window = Window::new(self.repo.clone(), self.view.clone());
        window.start_from_parent(parent).await;
        let level = self.repo.config().zstd_level;
        let mut content = ContentBuilder::default();
        let mut in_flight = FuturesOrdered::new();
        let mut input_done = false;
        loop {
            while !input_done {
                // Wait for a permit only with nothing in flight: a file never waits for
                // permits while holding some (no deadlock between files).
                let permit = if in_flight.is_empty() {
                    self.compressing
                        .clone()
                        .acquire_owned()
                        .await
                        .map_err(|_| Error::new(ErrorKind::Io, "the backup was shut down"))?
                } else {
                    match self.compressing.clone().try_acquire_owned() {
                        Ok(permit) => permit,
                        Err(_) => break,
                    }
                };
                match rx.recv().await {
                    Some(Ok(batch)) => {
                        let mut items = Vec::with_capacity(batch.len());
                        for (data, id) in batch {
                            items.push(match id {
                                None => Item::Zero(data.len() as u32),
                                Some(id) => match window.lookup(&id) {
                                    Some(r) => Item::Hit(r),
                                    None => match window.on_miss(&id).await {
                                        Some(r) => Item::Hit(r),
                                        None => Item::Miss { id, data },
                                    },
                                },
                            });
                        }
                        // Let prefetches of content lists make progress.
                        tokio::task::yield_now().await;
                        in_flight.push_back(tokio::task::spawn_blocking(move || {
                            (compress_batch(items, level), permit)
                        }));
                    }
                    Some(Err(e)) => return Err(e),
                    None => input_done = true,
                }
            }
            let Some(done) = in_flight.next().await else {
                break;
            };
            let (items, _permit) = done.map_err(|e| {
                Error::new(ErrorKind::Io, "a compression worker failed").with_source(e)
            })?;
            for item in items {
                let r = match item {
                    Item::Zero(len) => {
                        content.size += len as u64;
                        content.push_zero(len);
                        continue;
                    }
                    Item::Hit(r) => {
                        self.stats().reused_chunks += 1;
                        r
                    }
                    Item::Packed {
                        id,
                        payload,
                        compressed,
                        raw_len,
                    } => {
                        let r = self
                            .packer
                            .add(BlobType::Data, id, &payload, compressed, raw_len)
                            .await?;
                        let mut stats = self.stats();
                        stats.new_chunks += 1;
                        stats.new_bytes_stored += payload.len() as u64;
                        stats.new_bytes_raw += raw_len as u64;
                        drop(stats);
                        window.remember(r);
                        r
                    }
                    Item::Miss { .. } => unreachable!("compress_batch packs every miss"),
                };
                content.size += r.raw_len as u64;
                content.refs.push(r);
                if content.refs.len() >= self.repo.config().segment_refs as usize {
                    self.flush_segment(&mut content).await?;
                }
            }
        }
        reader
            .await
            .map_err(|e| Error::new(ErrorKind::Io, "the reading thread failed").with_source(e))?;
        if !content.refs.is_empty() {
            self.flush_segment(&mut content).await?;
        }
        let mut stats = self.stats();
        stats.files += 1;
        stats.bytes += content.size;
        Ok(FileContent {
            size: content.size,
            content: content.segments,
        })
    }

    /// Writes the pending refs as a content list, chains it and samples its hooks.
    async fn flush_segment(&self, content: &mut ContentBuilder) -> Result<()> {
        let refs = std::mem::take(&mut content.refs);
        let encoded = encode_content_list(&refs);
        let id = self.repo.keys().chunk_id(&encoded);
        let (payload, compressed) = compress_one(&encoded, 3);
        let r = self
            .packer
            .add(
                BlobType::Content,
                id,
                &payload,
                compressed,
                encoded.len() as u32,
            )
            .await?;
        content.segments.push(r);
        let bits = self.repo.config().hook_bits;
        let mut index = self.index.lock().unwrap_or_else(|e| e.into_inner());
        let ordinal = index.segments.len() as u32;
        index.segments.push(SegmentRecord { r, next: -1 });
        if let Some(prev) = content.last_ordinal {
            index.segments[prev as usize].next = ordinal as i64;
        }
        content.last_ordinal = Some(ordinal);
        for chunk in refs
            .iter()
            .filter(|c| !c.is_zero_run() && is_hook(&c.id, bits))
        {
            index.hooks.push((chunk.id.prefix_u64(), ordinal));
        }
        Ok(())
    }

    /// Stores a tree blob.
    pub async fn write_tree(&self, tree: &Tree) -> Result<BlobRef> {
        let json = serde_json::to_vec(tree)
            .map_err(|e| Error::invalid("encoding a tree").with_source(e))?;
        let id = self.repo.keys().chunk_id(&json);
        let (payload, compressed) = compress_one(&json, 3);
        self.packer
            .add(BlobType::Tree, id, &payload, compressed, json.len() as u32)
            .await
    }

    /// Gives up: ends the session without committing. Uploaded packs stay uncommitted and
    /// `prune` removes them.
    pub async fn abort(self) -> Result<()> {
        let _ = self.packer.finish().await;
        self.session.end().await
    }

    /// Commits: the last packs, then the index, then the snapshot (W1); ends the session,
    /// whether the commit succeeded or not.
    pub async fn commit(
        self,
        kind: SnapshotKind,
        paths: Vec<String>,
        tags: BTreeMap<String, String>,
        root: Node,
        parent: Option<Id>,
        stream_compression: Option<String>,
    ) -> Result<Snapshot> {
        let result = self
            .write_commit(kind, paths, tags, root, parent, stream_compression)
            .await;
        if let Err(e) = self.session.end().await {
            tracing::warn!(error = %e, "removing the session marker failed; it expires on its own");
        }
        result
    }

    async fn write_commit(
        &self,
        kind: SnapshotKind,
        paths: Vec<String>,
        tags: BTreeMap<String, String>,
        root: Node,
        parent: Option<Id>,
        stream_compression: Option<String>,
    ) -> Result<Snapshot> {
        let packs = self.packer.finish().await?;
        self.session.check_alive()?;
        let index = std::mem::take(&mut *self.index.lock().unwrap_or_else(|e| e.into_inner()));
        let mut hooks = index.hooks;
        hooks.sort_unstable();
        let file = IndexFile {
            version: 1,
            session: self.session.id(),
            created: Timestamp::now(),
            supersedes: Vec::new(),
            packs,
            segments: index.segments,
            hooks: encode_hooks(&hooks),
        };
        let index_id = Id::random();
        let key = index_key(&index_id);
        let bytes = sealed::seal(self.repo.keys(), Kind::Index, &key, &file)?;
        let index_len = bytes.len() as u64;
        self.repo.store().put(&key, bytes.into()).await?;
        let mut summary = *self.stats();
        summary.uploaded_bytes = self.packer.uploaded_bytes() + index_len;
        let snapshot = Snapshot {
            version: 1,
            id: Id::random(),
            time: self.started,
            end_time: Timestamp::now(),
            host: hostname(),
            kind,
            paths,
            tags,
            root,
            parent,
            session: self.session.id(),
            summary,
            stream_compression,
        };
        let snapshot_len = self.repo.save_snapshot(&snapshot).await?;
        let mut snapshot = snapshot;
        snapshot.summary.uploaded_bytes += snapshot_len;
        Ok(snapshot)
    }

    /// Commits what a backup's body produced, or, when the body failed, ends the session
    /// without committing and returns the body's error. Either way the session marker is
    /// gone when this returns: a failed backup must not leave a marker that holds back prune.
    pub async fn finish(self, body: Result<Commit>) -> Result<Snapshot> {
        match body {
            Ok(c) => {
                self.commit(
                    c.kind,
                    c.paths,
                    c.tags,
                    c.root,
                    c.parent,
                    c.stream_compression,
                )
                .await
            }
            Err(e) => {
                if let Err(abort) = self.abort().await {
                    tracing::warn!(error = %abort, "removing the session marker of a failed backup failed; prune removes it once it is stale");
                }
                Err(e)
            }
        }
    }

    /// Whether the content lists `content` of an unchanged file may be reused as they are
    /// (W3): every pack they and the refs in them name is committed by a live index and not
    /// condemned. `lists` are the decoded lists when already read; otherwise they are read
    /// here. A list that cannot be read makes the file "changed", so it is read again.
    pub(crate) async fn reusable(
        &self,
        content: &[BlobRef],
        lists: Option<&HashMap<Id, Vec<BlobRef>>>,
    ) -> bool {
        if !content.iter().all(|r| self.view.usable(&r.pack)) {
            return false;
        }
        let usable = |refs: &[BlobRef]| {
            refs.iter()
                .all(|r| r.is_zero_run() || self.view.usable(&r.pack))
        };
        let mut missing = Vec::new();
        for r in content {
            match lists.and_then(|l| l.get(&r.id)) {
                Some(refs) => {
                    if !usable(refs) {
                        return false;
                    }
                }
                None => missing.push(*r),
            }
        }
        let mut reads = futures::stream::iter(missing)
            .map(|r| {
                let repo = self.repo.clone();
                async move { repo.read_content_list(&r).await }
            })
            .buffered(8);
        while let Some(read) = reads.next().await {
            match read {
                Ok(refs) if usable(&refs) => {}
                _ => return false,
            }
        }
        true
    }
}

/// What a backup body hands to [`Writer::run`] to commit.
#[derive(Debug)]
pub struct Commit {
    /// Tree or stream.
    pub kind: SnapshotKind,
    /// Source paths.
    pub paths: Vec<String>,
    /// Tags.
    pub tags: BTreeMap<String, String>,
    /// The root node.
    pub root: Node,
    /// The parent snapshot, if any.
    pub parent: Option<Id>,
    /// `push -z` name, if any.
    pub stream_compression: Option<String>,
}

#[derive(Default)]
struct ContentBuilder {
    refs: Vec<BlobRef>,
    segments: Vec<BlobRef>,
    last_ordinal: Option<u32>,
    size: u64,
}

impl ContentBuilder {
    fn push_zero(&mut self, len: u32) {
        if let Some(last) = self.refs.last_mut()
            && last.is_zero_run()
            && let Some(total) = last.raw_len.checked_add(len)
        {
            last.raw_len = total;
            return;
        }
        self.refs.push(BlobRef::zero_run(len));
    }
}

fn is_all_zero(data: &[u8]) -> bool {
    let mut blocks = data.chunks_exact(64);
    blocks.all(|block| block.iter().fold(0u8, |acc, &b| acc | b) == 0)
        && blocks.remainder().iter().all(|&b| b == 0)
}

thread_local! {
    static COMPRESSOR: RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> = const { RefCell::new(None) };
}

/// zstd with a thread-local context; returns the payload and whether it is compressed
/// (only when that saves at least 1/32).
fn compress_one(data: &[u8], level: i32) -> (Vec<u8>, bool) {
    match try_compress(data, level) {
        Some(z) => (z, true),
        None => (data.to_vec(), false),
    }
}

/// `data` compressed with zstd (a thread-local context), if that saves at least 1/32.
fn try_compress(data: &[u8], level: i32) -> Option<Vec<u8>> {
    COMPRESSOR
        .with(|cell| {
            let mut slot = cell.borrow_mut();
            if slot.as_ref().is_none_or(|(l, _)| *l != level) {
                *slot = zstd::bulk::Compressor::new(level).ok().map(|c| (level, c));
            }
            slot.as_mut().and_then(|(_, c)| c.compress(data).ok())
        })
        .filter(|z| z.len() < data.len() - data.len() / 32)
}

/// Compresses the misses of a batch. After four chunks in a row that do not compress, the
/// rest of the batch is stored raw without trying (random or already compressed data).
fn compress_batch(items: Vec<Item>, level: i32) -> Vec<Item> {
    let mut failures = 0;
    items
        .into_iter()
        .map(|item| match item {
            Item::Miss { id, data } => {
                let (payload, compressed) = if failures >= 4 {
                    (data.clone(), false)
                } else {
                    match try_compress(&data, level) {
                        Some(z) => (Bytes::from(z), true),
                        None => (data.clone(), false),
                    }
                };
                failures = if compressed { 0 } else { failures + 1 };
                Item::Packed {
                    id,
                    payload,
                    compressed,
                    raw_len: data.len() as u32,
                }
            }
            other => other,
        })
        .collect()
}
