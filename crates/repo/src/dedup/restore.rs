//! Restore: parallel, out-of-order ranged reads written with `pwrite` (tree restores), or in
//! order through a bounded reorder window (stream restores) (docs/FORMAT.md §6.3).

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use futures::{FutureExt, StreamExt};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::blobref::{BlobRef, SMALL_FILE_LISTS, decode_content_list};
use super::cache_release::CacheRelease;
use super::config::RepoOptions;
use super::id::Id;
use super::pack::{BlobType, open_blob, open_blob_into, pack_key};
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

/// A path of the snapshot that could not be restored intact because the repository is
/// damaged (a blob, content list or tree that is missing or fails authentication).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damaged {
    /// The path under the target.
    pub path: PathBuf,
    /// What was wrong (the object and the failure).
    pub reason: String,
    /// Where a damaged file's intact parts were left: the file is renamed to
    /// `<name>.cairn-damaged` (its damaged ranges read as zeros), so nothing under the
    /// original name looks complete. `None` for directories and links.
    pub kept_as: Option<PathBuf>,
}

/// What a tree restore did, including what it could not restore.
#[derive(Debug, Clone, Default)]
pub struct RestoreOutcome {
    /// Counts.
    pub summary: RestoreSummary,
    /// Every path that could not be restored intact, in the order found.
    pub damaged: Vec<Damaged>,
}

/// Suffix a damaged file is renamed with.
pub const DAMAGED_SUFFIX: &str = ".cairn-damaged";

/// Whether an error is damage of the repository's data (restore goes on with the rest and
/// reports the path) rather than a failure of the store or the target (restore stops).
fn is_damage(e: &Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::Corrupt | ErrorKind::Crypto | ErrorKind::NotFound
    )
}

/// An error with its causes, for a damage report.
fn reason(e: &Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

type Damages = Arc<Mutex<Vec<Damaged>>>;

fn record(damages: &Damages, path: PathBuf, reason: String, kept_as: Option<PathBuf>) {
    damages
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(Damaged {
            path,
            reason,
            kept_as,
        });
}

/// Renames a damaged file out of the way (`<name>.cairn-damaged`) and records it; when the
/// rename fails the file is removed, so no file under the original name looks complete.
fn set_aside(path: &Path, why: String, damages: &Damages) -> Result<()> {
    let mut name = path.as_os_str().to_owned();
    name.push(DAMAGED_SUFFIX);
    let aside = PathBuf::from(name);
    remove_existing(&aside)?;
    let kept = match std::fs::rename(path, &aside) {
        Ok(()) => Some(aside),
        Err(_) => {
            std::fs::remove_file(path)
                .map_err(|e| Error::io(format!("removing damaged {}", path.display()), e))?;
            None
        }
    };
    record(damages, path.to_path_buf(), why, kept);
    Ok(())
}

/// A file whose every fetch is written: applies its metadata and hands it to `release`, or
/// sets it aside if damaged.
fn finish_slot(slot: Slot, owners: bool, damages: &Damages, release: &CacheRelease) -> Result<()> {
    match slot.damaged {
        None => {
            apply_meta(&slot.path, &slot.node, owners)?;
            if slot.node.size > 0 {
                release.finished(slot.path);
            }
            Ok(())
        }
        Some(why) => set_aside(&slot.path, why, damages),
    }
}

/// One ranged read and the blobs it carries.
#[derive(Debug)]
struct Fetch {
    pack: Id,
    start: u64,
    end: u64,
    /// Bytes the blobs restore to.
    raw: u64,
    pieces: Pieces,
}

/// A fetch's blobs: a range of pieces that the fetches cut from one batch share, so a
/// batch is one allocation (freed when its last fetch is written), not a copy per fetch.
#[derive(Debug, Clone)]
struct Pieces {
    all: Arc<Vec<Piece>>,
    range: std::ops::Range<usize>,
}

impl std::ops::Deref for Pieces {
    type Target = [Piece];

    fn deref(&self) -> &[Piece] {
        &self.all[self.range.clone()]
    }
}

impl Fetch {
    /// The files this fetch writes to, each once.
    fn files(&self) -> Vec<u64> {
        let mut files: Vec<u64> = self.pieces.iter().map(|p| p.file).collect();
        files.sort_unstable();
        files.dedup();
        files
    }
}

#[derive(Debug, Clone, Copy)]
struct Piece {
    file: u64,
    offset: u64,
    r: BlobRef,
}

/// Unneeded bytes one ranged read may span rather than being cut in two (docs/FORMAT.md §6.3):
/// a request to an object store costs milliseconds, to a local directory microseconds.
const REMOTE_GAP: u64 = 256 << 10;
const LOCAL_GAP: u64 = 32 << 10;

fn max_gap(repo: &Repository) -> u64 {
    if repo.store().is_local() {
        LOCAL_GAP
    } else {
        REMOTE_GAP
    }
}

/// How a tree restore cuts a batch's refs into reads (docs/FORMAT.md §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ReadPattern {
    /// Bytes one read spans at most.
    max_range: u64,
    /// Unneeded bytes one read may span rather than being cut in two.
    max_gap: u64,
    /// Refs a batch holds, as a multiple of `restore_batch`.
    batch_scale: usize,
}

/// Bytes one read from an object store spans at most, as a multiple of `restore_range`
/// (32 MiB by default: a whole pack, packs are cut at 16 MiB, §5), so the needed span of a
/// pack in a batch is one request. SeaweedFS spent 3.2 CPU s serving a 2 GiB restore's 8 MiB
/// ranges cut at 256 KiB gaps (687 requests), 2.2 s serving whole spans (218).
const REMOTE_RANGE_SCALE: u64 = 4;
/// Batches from an object store hold this many times `restore_batch` refs: a pack's blobs
/// belong to the files backed up together, and a pack read in two batches is two requests.
const REMOTE_BATCH_SCALE: usize = 4;

/// The read pattern for a local directory (`local`) or an object store.
fn read_pattern(local: bool, options: &RepoOptions) -> ReadPattern {
    if local {
        ReadPattern {
            max_range: options.restore_range,
            max_gap: LOCAL_GAP,
            batch_scale: 1,
        }
    } else {
        let max_range = options.restore_range.saturating_mul(REMOTE_RANGE_SCALE);
        ReadPattern {
            max_range,
            max_gap: max_range,
            batch_scale: REMOTE_BATCH_SCALE,
        }
    }
}

/// Bytes of pack reads a restore holds in memory at once (`restore_memory`, 64 MiB by
/// default), tree or stream: fetches of whole packs wait for room rather than each of the 16
/// in flight holding 17 MB. Half of what 16 full ranges would take: the larger budget only
/// held more memory (10 GiB local tree restore: peak RSS 209–219 MiB with 128 MiB, 150–156
/// MiB with 64, as fast; 2 GiB stream pull from S3 202–226 → 147–163 MiB, as fast;
/// docs/FORMAT.md §6.3).
fn fetch_budget(options: &RepoOptions) -> u32 {
    options.restore_memory.clamp(1, u32::MAX as u64) as u32
}

/// Budget bytes a fetch holds while it is read and written: its range, at most the budget.
fn fetch_cost(fetch: &Fetch, budget: u32) -> u32 {
    (fetch.end - fetch.start).clamp(1, budget as u64) as u32
}

/// Blobs in one ranged read at most.
const MAX_PIECES: usize = 4096;
/// Content lists of one file read ahead of the planner.
const LIST_READ_AHEAD: usize = 8;

/// Cuts a sequence of refs into ranged reads: a ref joins the open read if it lies in the same
/// pack, at most `max_gap` past its end (or inside it), and the read stays within the limits.
struct Coalescer {
    max_range: u64,
    max_raw: u64,
    max_gap: u64,
    current: Option<Cut>,
}

/// The read a run of consecutive pieces makes.
#[derive(Debug, Clone, Copy)]
struct Cut {
    pack: Id,
    start: u64,
    end: u64,
    raw: u64,
    /// Pieces in the run.
    count: usize,
}

impl Cut {
    /// The fetch of the `count` pieces of `all` from `start` on.
    fn fetch(self, all: &Arc<Vec<Piece>>, start: usize) -> Fetch {
        let range = start..start + self.count;
        Fetch {
            pack: self.pack,
            start: self.start,
            end: self.end,
            raw: self.raw,
            pieces: Pieces {
                all: all.clone(),
                range,
            },
        }
    }
}

impl Coalescer {
    fn new(max_range: u64, max_raw: u64, max_gap: u64) -> Coalescer {
        Coalescer {
            max_range,
            max_raw,
            max_gap,
            current: None,
        }
    }

    /// Adds the next blob; returns the finished run if this blob could not join the open one
    /// (the blob then opens the next).
    fn push(&mut self, r: &BlobRef) -> Option<Cut> {
        if let Some(c) = &mut self.current
            && c.pack == r.pack
            && r.offset as u64 >= c.start
            && r.offset as u64 <= c.end + self.max_gap
            && c.end.max(r.end()) - c.start <= self.max_range
            && c.raw + r.raw_len as u64 <= self.max_raw
            && c.count < MAX_PIECES
        {
            c.end = c.end.max(r.end());
            c.raw += r.raw_len as u64;
            c.count += 1;
            return None;
        }
        self.current.replace(Cut {
            pack: r.pack,
            start: r.offset as u64,
            end: r.end(),
            raw: r.raw_len as u64,
            count: 1,
        })
    }

    fn finish(&mut self) -> Option<Cut> {
        self.current.take()
    }
}

/// Cuts pieces, in the order given, into ranged reads that share them.
fn cut_fetches(pieces: Vec<Piece>, mut coalescer: Coalescer) -> Vec<Fetch> {
    let all = Arc::new(pieces);
    let mut at = 0;
    let mut fetches = Vec::new();
    for piece in all.iter() {
        if let Some(cut) = coalescer.push(&piece.r) {
            fetches.push(cut.fetch(&all, at));
            at += cut.count;
        }
    }
    if let Some(cut) = coalescer.finish() {
        fetches.push(cut.fetch(&all, at));
    }
    fetches
}

/// Sorts pieces by pack and offset and cuts them into ranged reads.
fn plan_fetches(mut pieces: Vec<Piece>, max_range: u64, max_gap: u64) -> Vec<Fetch> {
    pieces.sort_unstable_by(|a, b| {
        (a.r.pack, a.r.offset, a.file, a.offset).cmp(&(b.r.pack, b.r.offset, b.file, b.offset))
    });
    cut_fetches(pieces, Coalescer::new(max_range, u64::MAX, max_gap))
}

/// Reads a fetch's range from its pack.
async fn read_range(repo: &Repository, fetch: &Fetch) -> Result<bytes::Bytes> {
    read_pack_range(repo, &fetch.pack, fetch.start..fetch.end).await
}

/// Reads a range of a pack.
async fn read_pack_range(
    repo: &Repository,
    pack: &Id,
    range: std::ops::Range<u64>,
) -> Result<bytes::Bytes> {
    let key = pack_key(pack);
    // Each pack range is read once: past the page cache where the store allows it.
    match repo.store().get_range_once(&key, range).await {
        Ok(b) => Ok(b),
        Err(e) if e.kind() == ErrorKind::NotFound => {
            Err(Error::not_found(format!("pack {key} is missing")))
        }
        Err(e) => Err(e),
    }
}

/// Fetches a range and opens its blobs in order (on a blocking thread); a blob named by
/// consecutive pieces is opened once.
async fn fetch_and_open(
    repo: &Repository,
    fetch: Fetch,
    kind: BlobType,
) -> Result<Vec<(Piece, Vec<u8>)>> {
    let bytes = read_range(repo, &fetch).await?;
    let keys = repo.keys().clone();
    tokio::task::spawn_blocking(move || {
        let aead = keys.pack_aead(&fetch.pack);
        let mut opened: Vec<(Piece, Vec<u8>)> = Vec::with_capacity(fetch.pieces.len());
        for &piece in fetch.pieces.iter() {
            let plain = match opened.last() {
                Some((last, plain)) if last.r.offset == piece.r.offset => plain.clone(),
                _ => {
                    let at = (piece.r.offset as u64 - fetch.start) as usize;
                    let stored = &bytes[at..at + piece.r.stored_len as usize];
                    open_blob(&aead, kind, &piece.r, stored)?
                }
            };
            opened.push((piece, plain));
        }
        Ok(opened)
    })
    .await
    .map_err(|e| Error::new(ErrorKind::Io, "a restore worker failed").with_source(e))?
}

/// Opens a stream job's blobs, in order, into one buffer; `bytes` holds the pack from `base`
/// (the job's own range, or the span read it belongs to).
fn decode_joined(
    aead: &crate::crypto::Aead,
    fetch: &Fetch,
    base: u64,
    bytes: &[u8],
) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(fetch.raw as usize);
    let mut last: Option<(u32, usize)> = None;
    for piece in fetch.pieces.iter() {
        let start = out.len();
        match last {
            Some((offset, at)) if offset == piece.r.offset => {
                out.extend_from_within(at..at + piece.r.raw_len as usize);
            }
            _ => {
                let at = (piece.r.offset as u64 - base) as usize;
                let stored = bytes
                    .get(at..at + piece.r.stored_len as usize)
                    .ok_or_else(|| {
                        Error::corrupt(format!(
                            "blob {} lies outside the read of pack {}",
                            piece.r.id.short(),
                            pack_key(&fetch.pack)
                        ))
                    })?;
                open_blob_into(aead, BlobType::Data, &piece.r, stored, &mut out)?;
            }
        }
        last = Some((piece.r.offset, start));
    }
    Ok(out)
}

/// Reads content lists with as few requests as their placement allows.
pub(crate) async fn read_content_lists(
    repo: &Repository,
    refs: Vec<BlobRef>,
) -> Result<HashMap<Id, Vec<BlobRef>>> {
    let pieces = refs
        .into_iter()
        .map(|r| Piece {
            file: 0,
            offset: 0,
            r,
        })
        .collect();
    let fetches = plan_fetches(pieces, repo.options().restore_range, max_gap(repo));
    let mut reads = futures::stream::iter(fetches)
        .map(|f| fetch_and_open(repo, f, BlobType::Content))
        .buffer_unordered(PREFETCH_READS);
    let mut lists = HashMap::new();
    while let Some(opened) = reads.next().await {
        for (piece, plain) in opened? {
            if lists.contains_key(&piece.r.id) {
                continue;
            }
            let list = decode_content_list(&plain, &|| {
                format!("{} in pack {}", piece.r.id.short(), pack_key(&piece.r.pack))
            })?;
            lists.insert(piece.r.id, list);
        }
    }
    Ok(lists)
}

/// The content lists `lists` name, in order; a list already known (`Some`) is passed through.
/// From an object store they are read [`LIST_READ_AHEAD`] at a time with coalesced requests
/// (they lie back to back in a metadata pack); a group that fails is read list by list, so the
/// caller stops at the first bad list. From a local directory one by one, [`LIST_READ_AHEAD`]
/// ahead.
fn content_lists_in_order(
    repo: Repository,
    lists: Vec<(BlobRef, Option<Vec<BlobRef>>)>,
) -> impl futures::Stream<Item = Result<Vec<BlobRef>>> + Send + 'static {
    let (group, ahead) = if repo.store().is_local() {
        (1, LIST_READ_AHEAD)
    } else {
        (LIST_READ_AHEAD, 2)
    };
    let groups: Vec<Vec<(BlobRef, Option<Vec<BlobRef>>)>> =
        lists.chunks(group).map(<[_]>::to_vec).collect();
    futures::stream::iter(groups)
        .map(move |group| {
            let repo = repo.clone();
            async move {
                let missing: Vec<BlobRef> = group
                    .iter()
                    .filter(|(_, known)| known.is_none())
                    .map(|(r, _)| *r)
                    .collect();
                let read = if missing.len() > 1 {
                    read_content_lists(&repo, missing).await.unwrap_or_default()
                } else {
                    HashMap::new()
                };
                let mut out = Vec::with_capacity(group.len());
                for (r, known) in group {
                    out.push(match known.or_else(|| read.get(&r.id).cloned()) {
                        Some(refs) => Ok(refs),
                        None => repo.read_content_list(&r).await,
                    });
                }
                out
            }
        })
        .buffered(ahead)
        .flat_map(futures::stream::iter)
}

/// Streams a file's or stream's content into `out`, in order, with a bounded reorder window
/// (docs/FORMAT.md §6.3).
///
/// The refs are cut into jobs of at most [`STREAM_JOB`] restored bytes, decoded in parallel
/// and written in order. From an object store, consecutive jobs of one pack share one read
/// of their span ([`StreamPlanner`]); those reads start ahead of the jobs, as far as the
/// memory budget ([`fetch_budget`]) allows. From a local directory each job reads its own
/// range when it starts.
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
    let local = repo.store().is_local();
    let (tx, rx) = mpsc::channel::<Result<StreamItem>>(64);
    let producer = {
        let repo = repo.clone();
        let content = node.content.clone();
        async move {
            let mut lists = std::pin::pin!(content_lists_in_order(
                repo.clone(),
                content.into_iter().map(|r| (r, None)).collect(),
            ));
            let mut planner = StreamPlanner::new(local, repo.options());
            let mut items = Vec::new();
            while let Some(refs) = lists.next().await {
                let refs = match refs {
                    Ok(refs) => refs,
                    Err(e) => {
                        let _ = tx.send(Err(e)).await;
                        return;
                    }
                };
                for r in refs {
                    planner.push(r, &mut items);
                    for item in items.drain(..) {
                        if tx.send(Ok(item)).await.is_err() {
                            return;
                        }
                    }
                }
            }
            planner.finish(&mut items);
            for item in items {
                if tx.send(Ok(item)).await.is_err() {
                    return;
                }
            }
        }
    };
    // Span reads start here, in order, each once its bytes fit in the budget (the earliest
    // always gets room: a span costs at most the whole budget, and the spans before it give
    // theirs back once their jobs are decoded, which needs nothing from later spans).
    let budget = fetch_budget(repo.options());
    let memory = Arc::new(tokio::sync::Semaphore::new(budget as usize));
    let (read_tx, read_rx) = mpsc::channel::<Result<StartedItem>>(STREAM_WINDOW);
    let reader = {
        let repo = repo.clone();
        async move {
            let mut items = ReceiverStream::new(rx);
            while let Some(item) = items.next().await {
                let started = match item {
                    Err(e) => Err(e),
                    Ok(StreamItem::Zero(len)) => Ok(StartedItem::Zero(len)),
                    Ok(StreamItem::Span(span)) => {
                        start_span(&repo, span, local, &memory, budget).await
                    }
                };
                if read_tx.send(started).await.is_err() {
                    return;
                }
            }
        }
    };
    let window = repo.options().restore_fetches.clamp(1, STREAM_WINDOW);
    // Jobs start as tasks, in order, as soon as the window has room, and their results are
    // taken in order: reading and decoding go on while the output is written (a future of
    // `buffered` would only run while its stream is polled, i.e. not during a write). At
    // most `window` started jobs wait here, plus the one being written and the one waiting
    // for room.
    let (started_tx, started) = mpsc::channel::<Task<Result<StreamOut>>>(window);
    let dispatcher = {
        let repo = repo.clone();
        async move {
            let mut items = ReceiverStream::new(read_rx);
            while let Some(item) = items.next().await {
                // Lazily: a span's job starts (and decodes) once the window has room for it.
                let tasks: Box<dyn Iterator<Item = Task<Result<StreamOut>>> + Send> = match item {
                    Err(e) => Box::new(std::iter::once_with(|| {
                        Task(tokio::spawn(async move { Err(e) }))
                    })),
                    Ok(StartedItem::Zero(len)) => Box::new(std::iter::once_with(move || {
                        Task(tokio::spawn(async move { Ok(StreamOut::Zero(len)) }))
                    })),
                    Ok(StartedItem::Span(span)) => Box::new(span_tasks(&repo, span)),
                };
                for task in tasks {
                    if started_tx.send(task).await.is_err() {
                        return;
                    }
                }
            }
        }
    };
    let consumer = async {
        // Owned here: when the consumer stops (an error), the receiver goes with it, so the
        // dispatcher and then the producer stop instead of waiting for room forever.
        let mut started = started;
        let mut written = 0u64;
        let zeros = vec![0u8; 1 << 20];
        while let Some(task) = started.recv().await {
            match task.await?? {
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
                StreamOut::Data(data) => {
                    out.write_all(&data)
                        .await
                        .map_err(|e| Error::io("writing restored data", e))?;
                    written += data.len() as u64;
                    progress.add(data.len() as u64);
                }
            }
        }
        out.flush()
            .await
            .map_err(|e| Error::io("writing restored data", e))?;
        Ok::<u64, Error>(written)
    };
    let ((), (), (), written) = tokio::join!(producer, reader, dispatcher, consumer);
    let written = written?;
    if written != node.size {
        return Err(Error::corrupt(format!(
            "restored {written} bytes of {} but the snapshot says {}",
            node.name, node.size
        )));
    }
    Ok(written)
}

/// A span read shared by the jobs decoded from it: its bytes, or why it failed.
type SharedRead = futures::future::Shared<
    futures::future::BoxFuture<'static, std::result::Result<bytes::Bytes, Arc<Error>>>,
>;

/// A span whose read has started (object stores) or will start with its first job (local).
struct StartedSpan {
    span: SpanRead,
    read: SharedRead,
    /// The span's share of the memory budget, given back when its last job is decoded.
    held: Option<Arc<tokio::sync::OwnedSemaphorePermit>>,
}

enum StartedItem {
    Span(StartedSpan),
    Zero(u64),
}

/// Takes a span's room in the budget and starts its read (object stores), or prepares it to
/// be read by its first job (local directories, which keep one short read per job).
async fn start_span(
    repo: &Repository,
    span: SpanRead,
    local: bool,
    memory: &Arc<tokio::sync::Semaphore>,
    budget: u32,
) -> Result<StartedItem> {
    let (pack, range) = (span.pack, span.start..span.end);
    let repo = repo.clone();
    let read = async move { read_pack_range(&repo, &pack, range).await };
    let (read, held): (futures::future::BoxFuture<'static, _>, _) = if local {
        (read.map(|r| r.map_err(Arc::new)).boxed(), None)
    } else {
        let cost = (span.end - span.start).clamp(1, budget as u64) as u32;
        let held = memory.clone().acquire_many_owned(cost).await.map_err(|e| {
            Error::new(ErrorKind::Io, "restore memory budget closed").with_source(e)
        })?;
        // Spawned: the read goes on whether or not a job waits for it yet.
        let task = Task(tokio::spawn(read));
        (
            task.map(|r| r.and_then(|r| r).map_err(Arc::new)).boxed(),
            Some(Arc::new(held)),
        )
    };
    Ok(StartedItem::Span(StartedSpan {
        span,
        read: read.shared(),
        held,
    }))
}

/// One task per job of a started span, in output order, each started when the iterator
/// reaches it: it waits for the span's read and decodes its slice on a blocking thread.
fn span_tasks(
    repo: &Repository,
    started: StartedSpan,
) -> impl Iterator<Item = Task<Result<StreamOut>>> + Send + use<> {
    let StartedSpan { span, read, held } = started;
    let base = span.start;
    let pack = span.pack;
    let keys = repo.keys().clone();
    span.jobs.into_iter().map(move |job| {
        let read = read.clone();
        let held = held.clone();
        let keys = keys.clone();
        Task(tokio::spawn(async move {
            let fetch = match job {
                StreamJob::Zero(len) => return Ok(StreamOut::Zero(len)),
                StreamJob::Fetch(fetch) => fetch,
            };
            let bytes = read
                .await
                .map_err(|e| Error::new(e.kind(), e.message()).transient(e.is_transient()))?;
            let data = tokio::task::spawn_blocking(move || {
                let aead = keys.pack_aead(&pack);
                decode_joined(&aead, &fetch, base, &bytes)
            })
            .await
            .map_err(|e| Error::new(ErrorKind::Io, "a restore worker failed").with_source(e))??;
            drop(held);
            Ok(StreamOut::Data(data))
        }))
    })
}

/// Cuts a stream's refs, in order, into jobs of at most [`STREAM_JOB`] restored bytes and
/// groups consecutive jobs of one pack into span reads (docs/FORMAT.md §6.3). From a local
/// directory every job is its own read (`restore_range` at most, short gaps); from an object
/// store a span is the needed part of a pack, up to the remote read limit, read once.
struct StreamPlanner {
    jobs: Coalescer,
    /// The pieces of the open job.
    pending: Vec<Piece>,
    /// Bytes one span read covers at most; spans of one job when `None` (local).
    span_range: Option<u64>,
    open: Option<SpanRead>,
}

/// One read of a pack and the stream jobs, in output order, decoded from it.
#[derive(Debug)]
struct SpanRead {
    pack: Id,
    start: u64,
    end: u64,
    jobs: Vec<StreamJob>,
}

#[derive(Debug)]
enum StreamItem {
    Span(SpanRead),
    Zero(u64),
}

/// Jobs one span read feeds at most (it holds its budget until the last is decoded).
const MAX_SPAN_JOBS: usize = 64;

impl StreamPlanner {
    fn new(local: bool, options: &RepoOptions) -> StreamPlanner {
        let pattern = read_pattern(local, options);
        if local {
            StreamPlanner {
                // Decoded blobs wait in order, so jobs are bounded by what they restore to.
                jobs: Coalescer::new(
                    options.restore_range.min(STREAM_JOB),
                    STREAM_JOB,
                    pattern.max_gap,
                ),
                span_range: None,
                pending: Vec::new(),
                open: None,
            }
        } else {
            StreamPlanner {
                // The span is read whole: jobs are cut by what they restore to, not by gaps.
                jobs: Coalescer::new(pattern.max_range, STREAM_JOB, pattern.max_gap),
                span_range: Some(pattern.max_range),
                pending: Vec::new(),
                open: None,
            }
        }
    }

    /// Adds the next ref of the stream; finished spans and zero runs go to `out`, in order.
    fn push(&mut self, r: BlobRef, out: &mut Vec<StreamItem>) {
        if r.is_zero_run() {
            if let Some(cut) = self.jobs.finish() {
                self.cut(cut, out);
            }
            match &mut self.open {
                Some(span) => span.jobs.push(StreamJob::Zero(r.raw_len as u64)),
                None => out.push(StreamItem::Zero(r.raw_len as u64)),
            }
            return;
        }
        if let Some(cut) = self.jobs.push(&r) {
            self.cut(cut, out);
        }
        self.pending.push(Piece {
            file: 0,
            offset: 0,
            r,
        });
    }

    /// Ends the stream: the open job and span go to `out`.
    fn finish(&mut self, out: &mut Vec<StreamItem>) {
        if let Some(cut) = self.jobs.finish() {
            self.cut(cut, out);
        }
        out.extend(self.open.take().map(StreamItem::Span));
    }

    /// Makes the job of a finished run from the pieces waiting for it.
    fn cut(&mut self, cut: Cut, out: &mut Vec<StreamItem>) {
        let pieces = Arc::new(self.pending.drain(..cut.count).collect());
        let job = cut.fetch(&pieces, 0);
        self.job(job, out);
    }

    fn job(&mut self, f: Fetch, out: &mut Vec<StreamItem>) {
        let Some(span_range) = self.span_range else {
            out.push(StreamItem::Span(SpanRead {
                pack: f.pack,
                start: f.start,
                end: f.end,
                jobs: vec![StreamJob::Fetch(f)],
            }));
            return;
        };
        if let Some(span) = &mut self.open
            && span.pack == f.pack
            && span.end.max(f.end) - span.start.min(f.start) <= span_range
            && span.jobs.len() < MAX_SPAN_JOBS
        {
            span.start = span.start.min(f.start);
            span.end = span.end.max(f.end);
            span.jobs.push(StreamJob::Fetch(f));
            return;
        }
        out.extend(self.open.take().map(StreamItem::Span));
        self.open = Some(SpanRead {
            pack: f.pack,
            start: f.start,
            end: f.end,
            jobs: vec![StreamJob::Fetch(f)],
        });
    }
}

/// A spawned task, aborted when dropped (a failed restore stops the reads it started).
struct Task<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for Task<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl<T> std::future::Future for Task<T> {
    type Output = Result<T>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<T>> {
        std::pin::Pin::new(&mut self.0).poll(cx).map(|joined| {
            joined.map_err(|e| Error::new(ErrorKind::Io, "a restore task failed").with_source(e))
        })
    }
}

/// Bytes one stream job restores to at most.
const STREAM_JOB: u64 = 4 << 20;
/// Stream jobs in flight ahead of the output position at most. 8 held 25–40 MiB less and
/// pulled as fast from S3, but from a local directory, where each job is its own read, a
/// 6 GiB pull took 5.21–5.70 s against 4.93–5.26 s (bench/README.md, "Restores by dataset
/// size").
const STREAM_WINDOW: usize = 16;

#[derive(Debug)]
enum StreamJob {
    Fetch(Fetch),
    Zero(u64),
}

enum StreamOut {
    Data(Vec<u8>),
    Zero(u64),
}

/// A file being restored.
struct Slot {
    path: PathBuf,
    node: Node,
    /// Fetches sent that write to this file and are not written yet.
    pending: u64,
    /// Every fetch of this file has been sent (and counted in `pending`).
    produced: bool,
    /// Why the file cannot be restored intact (the first damage found).
    damaged: Option<String>,
}

impl Files {
    fn damage(&mut self, id: u64, why: impl FnOnce() -> String) {
        if let Some(slot) = self.slots.get_mut(&id)
            && slot.damaged.is_none()
        {
            slot.damaged = Some(why());
        }
    }
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

/// Restores a snapshot (or the `include` part of it) under `target`. Damaged parts of the
/// repository do not stop it: everything intact is restored, and then, if anything was
/// damaged, this fails with a `Corrupt` error naming the damaged paths
/// ([`restore_tree_outcome`] returns them instead).
pub async fn restore_tree(
    repo: &Repository,
    snapshot: &Snapshot,
    target: &Path,
    options: &RestoreOptions,
    progress: SharedProgress,
) -> Result<RestoreSummary> {
    let outcome = restore_tree_outcome(repo, snapshot, target, options, progress).await?;
    if outcome.damaged.is_empty() {
        return Ok(outcome.summary);
    }
    Err(damage_error(&outcome.damaged))
}

/// The error of a restore that found damage: how many paths, and the first ones.
pub fn damage_error(damaged: &[Damaged]) -> Error {
    const SHOWN: usize = 10;
    let mut text = format!(
        "{} path{} could not be restored intact:",
        damaged.len(),
        if damaged.len() == 1 { "" } else { "s" }
    );
    for d in damaged.iter().take(SHOWN) {
        text.push_str(&format!(" {} ({});", d.path.display(), d.reason));
    }
    if damaged.len() > SHOWN {
        text.push_str(&format!(" and {} more", damaged.len() - SHOWN));
    }
    Error::corrupt(text.trim_end_matches(';').to_string())
}

/// Restores like [`restore_tree`] and returns what could not be restored intact rather
/// than failing: files whose content is damaged are renamed `<name>.cairn-damaged`,
/// directories whose listing is damaged are left empty, hard links to either are not made.
pub async fn restore_tree_outcome(
    repo: &Repository,
    snapshot: &Snapshot,
    target: &Path,
    options: &RestoreOptions,
    progress: SharedProgress,
) -> Result<RestoreOutcome> {
    let owners = options
        .owners
        .unwrap_or_else(|| nix::unistd::geteuid().is_root());
    std::fs::create_dir_all(target)
        .map_err(|e| Error::io(format!("creating {}", target.display()), e))?;
    let damages: Damages = Arc::new(Mutex::new(Vec::new()));
    if snapshot.kind == SnapshotKind::Stream {
        let name = snapshot
            .root
            .name
            .rsplit('/')
            .next()
            .filter(|n| !n.is_empty() && *n != "." && *n != "..")
            .unwrap_or("stream");
        let path = target.join(name);
        let file = tokio::fs::File::create(&path)
            .await
            .map_err(|e| Error::io(format!("creating {}", path.display()), e))?;
        let bytes = match restore_stream(repo, &snapshot.root, file, progress).await {
            Ok(bytes) => bytes,
            Err(e) if is_damage(&e) => {
                // A stream restores in order: it stops at the damage, the file is short.
                set_aside(&path, reason(&e), &damages)?;
                0
            }
            Err(e) => return Err(e),
        };
        return Ok(RestoreOutcome {
            summary: RestoreSummary {
                files: 1,
                dirs: 0,
                bytes,
                fetched: 0,
            },
            damaged: take_damages(&damages),
        });
    }
    let (start_node, start_rel) = find_include(repo, snapshot, options.include.as_deref()).await?;
    progress.set_total(subtree_size_hint(&start_node));
    let files = Arc::new(Mutex::new(Files::default()));
    let summary = Arc::new(Mutex::new(RestoreSummary::default()));
    let (tx, rx) = mpsc::channel::<Result<Fetch>>(64);
    let pattern = read_pattern(repo.store().is_local(), repo.options());
    let release = CacheRelease::start(repo.options().restore_page_cache);
    let planner = Planner {
        repo: repo.clone(),
        files: files.clone(),
        summary: summary.clone(),
        damages: damages.clone(),
        release: release.clone(),
        tx,
        owners,
        dirs: Vec::new(),
        hardlinks: Vec::new(),
        progress: progress.clone(),
        prefetched: HashMap::new(),
        batch: Batch::with_capacity(batch_refs(repo.options(), &pattern)),
        pattern,
        flushes: 0,
    };
    let budget = fetch_budget(repo.options());
    let memory = Arc::new(tokio::sync::Semaphore::new(budget as usize));
    let plan = planner.run(target.to_path_buf(), start_node, start_rel);
    let execute = async {
        // Each fetch is its own task: reads, decoding and writes go on on every worker
        // while the planner works; the first failure stops the restore (dropping the
        // stream aborts the fetches in flight).
        let mut results = ReceiverStream::new(rx)
            .map(|fetch| {
                let repo = repo.clone();
                let files = files.clone();
                let progress = progress.clone();
                let damages = damages.clone();
                let memory = memory.clone();
                let release = release.clone();
                Task(tokio::spawn(async move {
                    let fetch = fetch?;
                    let _held = memory
                        .acquire_many(fetch_cost(&fetch, budget))
                        .await
                        .map_err(|e| {
                            Error::new(ErrorKind::Io, "restore memory budget closed").with_source(e)
                        })?;
                    write_fetch(&repo, fetch, &files, owners, &progress, &damages, &release).await
                }))
            })
            .buffer_unordered(repo.options().restore_fetches.max(1));
        let mut fetched = 0u64;
        while let Some(result) = results.next().await {
            fetched += result??;
        }
        Ok::<u64, Error>(fetched)
    };
    let (planned, fetched) = tokio::join!(plan, execute);
    let fetched = fetched?;
    let (dirs, hardlinks) = planned?;
    for (link, first) in hardlinks {
        match std::fs::hard_link(&first, &link) {
            Ok(()) => {}
            // The first name was not restored (damaged, or under a damaged directory).
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => record(
                &damages,
                link.clone(),
                format!(
                    "hard link to {}, which could not be restored",
                    first.display()
                ),
                None,
            ),
            Err(e) => {
                return Err(Error::io(
                    format!("linking {} to {}", link.display(), first.display()),
                    e,
                ));
            }
        }
    }
    // Directories last, deepest first, so writing into them does not change their times.
    for (path, node) in dirs.iter().rev() {
        apply_meta(path, node, owners)?;
    }
    let mut result = *summary.lock().unwrap_or_else(|e| e.into_inner());
    result.fetched = fetched;
    Ok(RestoreOutcome {
        summary: result,
        damaged: take_damages(&damages),
    })
}

fn take_damages(damages: &Damages) -> Vec<Damaged> {
    std::mem::take(&mut *damages.lock().unwrap_or_else(|e| e.into_inner()))
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
            .find(|n| n.raw_name() == part.as_bytes())
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
    damages: Damages,
    release: CacheRelease,
    tx: mpsc::Sender<Result<Fetch>>,
    owners: bool,
    dirs: Vec<(PathBuf, Node)>,
    hardlinks: Vec<(PathBuf, PathBuf)>,
    progress: SharedProgress,
    /// Content lists of the small files of the tree entries being planned, read ahead
    /// together: reading them one by one costs a store round trip per file.
    prefetched: HashMap<Id, Vec<BlobRef>>,
    batch: Batch,
    pattern: ReadPattern,
    /// Batches sent so far (the first ones are small, so writing starts at once).
    flushes: u32,
}

/// Refs collected for sorting by pack and offset before they are cut into fetches.
struct Batch {
    pieces: Vec<Piece>,
    /// Files whose every ref is in this batch or an earlier one.
    complete: Vec<u64>,
    /// Files with refs in this batch.
    files: usize,
}

impl Batch {
    /// A batch with room for the refs it holds at most, so filling it never copies it.
    fn with_capacity(refs: usize) -> Batch {
        Batch {
            pieces: Vec::with_capacity(refs),
            complete: Vec::new(),
            files: 0,
        }
    }
}

/// Tree entries whose small files' content lists are read ahead together.
const PREFETCH_ENTRIES: usize = 256;
/// Decoded content lists one group of tree entries reads ahead at most (besides its first
/// entry's): 256 files of two full lists hold 84 MB, and such groups of database files made
/// a 10 GiB restore peak 30 MB above a 2 GiB one.
const PREFETCH_LIST_BYTES: u64 = 4 << 20;

/// Whether a tree entry's content lists are read ahead with its group's: a file of one or
/// two lists, whose own reads would cost a store round trip for little data.
fn lists_read_ahead(node: &Node) -> bool {
    node.kind == NodeType::File && node.content.len() <= SMALL_FILE_LISTS
}

/// How many of `nodes`, from the first, are planned as one group: at most
/// [`PREFETCH_ENTRIES`], whose lists read ahead decode to at most [`PREFETCH_LIST_BYTES`]
/// (the first entry whatever its lists).
fn prefetch_group(nodes: &[Node]) -> usize {
    let mut bytes = 0u64;
    for (i, node) in nodes.iter().take(PREFETCH_ENTRIES).enumerate() {
        if lists_read_ahead(node) {
            bytes += node
                .content
                .iter()
                .map(|r| u64::from(r.raw_len))
                .sum::<u64>();
        }
        if bytes > PREFETCH_LIST_BYTES {
            return i.max(1);
        }
    }
    nodes.len().min(PREFETCH_ENTRIES)
}
/// Ranged reads in flight while reading content lists ahead.
const PREFETCH_READS: usize = 16;

type Planned = (Vec<(PathBuf, Node)>, Vec<(PathBuf, PathBuf)>);

/// Refs a batch holds before it is sent (docs/FORMAT.md §6.3).
fn batch_refs(options: &RepoOptions, pattern: &ReadPattern) -> usize {
    options
        .restore_batch
        .max(1)
        .saturating_mul(pattern.batch_scale.max(1))
}

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
                self.dir(&target, base, subtree).await?;
            } else {
                self.node(&target, &base, start).await?;
            }
            self.flush().await
        }
        .await;
        if let Err(e) = outcome {
            let message = Error::new(e.kind(), e.message().to_string());
            let _ = self.tx.send(Err(message)).await;
            return Err(e);
        }
        Ok((
            std::mem::take(&mut self.dirs),
            std::mem::take(&mut self.hardlinks),
        ))
    }

    fn batch_refs(&self) -> usize {
        batch_refs(self.repo.options(), &self.pattern)
    }

    /// Whether the batch is full: the first batch at a quarter of the limits, so writing
    /// starts early; files count as 32 refs.
    fn batch_full(&self) -> bool {
        let limit = if self.flushes == 0 {
            self.batch_refs() / 4
        } else {
            self.batch_refs()
        };
        self.batch.pieces.len() + 32 * self.batch.files >= limit.max(1)
    }

    /// Sends the batch: cuts its refs into fetches, counts them against their files, marks
    /// the batch's complete files produced (finishing those with nothing left to write), and
    /// only then sends the fetches, so no writer can finish a file early.
    async fn flush(&mut self) -> Result<()> {
        let next = Batch::with_capacity(self.batch_refs());
        let batch = std::mem::replace(&mut self.batch, next);
        self.flushes += 1;
        let fetches = plan_fetches(batch.pieces, self.pattern.max_range, self.pattern.max_gap);
        let finished = {
            let mut files = self.files.lock().unwrap_or_else(|e| e.into_inner());
            for fetch in &fetches {
                for id in fetch.files() {
                    if let Some(slot) = files.slots.get_mut(&id) {
                        slot.pending += 1;
                    }
                }
            }
            let mut finished = Vec::new();
            for id in batch.complete {
                let done = match files.slots.get_mut(&id) {
                    Some(slot) => {
                        slot.produced = true;
                        slot.pending == 0
                    }
                    None => false,
                };
                if done && let Some(slot) = files.slots.remove(&id) {
                    finished.push(slot);
                }
            }
            finished
        };
        for slot in finished {
            finish_slot(slot, self.owners, &self.damages, &self.release)?;
        }
        for fetch in fetches {
            self.tx
                .send(Ok(fetch))
                .await
                .map_err(|_| Error::new(ErrorKind::Io, "restore writers stopped"))?;
        }
        Ok(())
    }

    fn dir<'a>(
        &'a mut self,
        root: &'a Path,
        path: PathBuf,
        tree: BlobRef,
    ) -> futures::future::BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let tree: Tree = match self.repo.read_tree(&tree).await {
                Ok(tree) => tree,
                Err(e) if is_damage(&e) => {
                    // Left empty; its metadata is still applied. Reported, not fatal.
                    record(
                        &self.damages,
                        path,
                        format!("its listing could not be read: {}", reason(&e)),
                        None,
                    );
                    return Ok(());
                }
                Err(e) => return Err(e),
            };
            let mut nodes = tree.nodes;
            while !nodes.is_empty() {
                let rest = nodes.split_off(prefetch_group(&nodes));
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

    /// Reads the content lists of the small files among `nodes` at once.
    async fn prefetch_lists(&mut self, nodes: &[Node]) -> Result<()> {
        let refs: Vec<BlobRef> = nodes
            .iter()
            .filter(|n| lists_read_ahead(n))
            .flat_map(|n| n.content.iter().copied())
            .collect();
        if refs.len() < 2 {
            return Ok(());
        }
        self.prefetched = match read_content_lists(&self.repo, refs).await {
            Ok(lists) => lists,
            // Each file then reads its own lists, so the damage is reported per file.
            Err(e) if is_damage(&e) => HashMap::new(),
            Err(e) => return Err(e),
        };
        Ok(())
    }

    async fn node(&mut self, root: &Path, dir: &Path, node: Node) -> Result<()> {
        let name = node.raw_name();
        if name.contains(&b'/')
            || name.contains(&0)
            || name == b".."
            || name == b"."
            || name.is_empty()
        {
            return Err(Error::corrupt(format!(
                "tree entry {:?} is not a valid file name",
                node.name
            )));
        }
        let path = dir.join(OsStr::from_bytes(name));
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
                let target = OsStr::from_bytes(node.raw_target().unwrap_or_default()).to_owned();
                remove_existing(&path)?;
                std::os::unix::fs::symlink(&target, &path)
                    .map_err(|e| Error::io(format!("creating symlink {}", path.display()), e))?;
                apply_meta(&path, &node, self.owners)?;
            }
            NodeType::Hardlink => {
                let first = node.raw_link().unwrap_or_default();
                if first.split(|b| *b == b'/').any(|p| p == b"..") || first.starts_with(b"/") {
                    return Err(Error::corrupt(format!(
                        "hard link {} points outside the snapshot",
                        path.display()
                    )));
                }
                self.hardlinks
                    .push((path, root.join(OsStr::from_bytes(first))));
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
        let size = node.size;
        let lists: Vec<(BlobRef, Option<Vec<BlobRef>>)> = node
            .content
            .iter()
            .map(|r| (*r, self.prefetched.get(&r.id).cloned()))
            .collect();
        let slot_id = {
            let mut files = self.files.lock().unwrap_or_else(|e| e.into_inner());
            let id = files.next;
            files.next += 1;
            files.slots.insert(
                id,
                Slot {
                    path: path.clone(),
                    node,
                    pending: 0,
                    produced: false,
                    damaged: None,
                },
            );
            id
        };
        {
            let mut summary = self.summary.lock().unwrap_or_else(|e| e.into_inner());
            summary.files += 1;
            summary.bytes += size;
        }
        self.batch.files += 1;
        // Damage stops the file at the first bad list.
        let mut lists = Box::pin(content_lists_in_order(self.repo.clone(), lists));
        let mut offset = 0u64;
        let mut damaged = false;
        while let Some(refs) = lists.next().await {
            let refs = match refs {
                Ok(refs) => refs,
                Err(e) if is_damage(&e) => {
                    // The offsets of the lists after this one are unknown: the file stops
                    // here; what was planned before it is still written.
                    let why = format!(
                        "a content list (from byte {offset} of {size}) could not be read: {}",
                        reason(&e)
                    );
                    self.files
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .damage(slot_id, || why);
                    damaged = true;
                    break;
                }
                Err(e) => return Err(e),
            };
            for r in refs {
                if r.is_zero_run() {
                    self.progress.add(r.raw_len as u64);
                } else {
                    self.batch.pieces.push(Piece {
                        file: slot_id,
                        offset,
                        r,
                    });
                    if self.batch.pieces.len() >= self.batch_refs() {
                        self.flush().await?;
                        // The file goes on in the next batch.
                        self.batch.files += 1;
                    }
                }
                offset += r.raw_len as u64;
            }
        }
        drop(lists);
        if !damaged && offset != size {
            self.files
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .damage(slot_id, || {
                    format!("its content lists hold {offset} bytes but the snapshot says {size}")
                });
        }
        self.batch.complete.push(slot_id);
        if self.batch_full() {
            self.flush().await?;
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

/// Fetches one range and writes its blobs at their offsets, one blob in memory at a time
/// (a blob named by consecutive pieces is opened once); finalizes the files it completes.
/// A missing range or a blob that fails to open marks the files it belongs to damaged; the
/// other blobs are still written.
async fn write_fetch(
    repo: &Repository,
    fetch: Fetch,
    files: &Arc<Mutex<Files>>,
    owners: bool,
    progress: &SharedProgress,
    damages: &Damages,
    release: &CacheRelease,
) -> Result<u64> {
    let bytes = match read_range(repo, &fetch).await {
        Ok(bytes) => Some(bytes),
        Err(e) if is_damage(&e) => {
            let why = reason(&e);
            let mut guard = files.lock().unwrap_or_else(|e| e.into_inner());
            for id in fetch.files() {
                guard.damage(id, || why.clone());
            }
            None
        }
        Err(e) => return Err(e),
    };
    let fetched = bytes.as_ref().map_or(0, |b| b.len() as u64);
    let files = files.clone();
    let progress = progress.clone();
    let keys = repo.keys().clone();
    let damages = damages.clone();
    let release = release.clone();
    tokio::task::spawn_blocking(move || -> Result<u64> {
        if let Some(bytes) = bytes {
            write_pieces(&keys, &fetch, &bytes, &files, &progress)?;
        }
        let mut done = Vec::new();
        {
            let mut guard = files.lock().unwrap_or_else(|e| e.into_inner());
            for id in fetch.files() {
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
            finish_slot(slot, owners, &damages, &release)?;
        }
        Ok(fetched)
    })
    .await
    .map_err(|e| Error::new(ErrorKind::Io, "a restore writer failed").with_source(e))?
}

/// Bytes one `pwrite` of a tree restore carries at most: the blobs of a fetch that land back
/// to back in one file are opened into one buffer and written with one call (a fetch of a
/// large file's pack is mostly such runs; a call per 17 KiB blob cost a syscall and the
/// file's write lock each).
const WRITE_RUN: usize = 1 << 20;

/// Blobs opened back to back for one file, not yet written.
struct Run {
    file: u64,
    /// File offset of `buf[0]`.
    start: u64,
    buf: Vec<u8>,
}

impl Run {
    /// Whether `piece` continues this run in its file (and the run has room for it).
    fn continues(&self, piece: &Piece) -> bool {
        self.file == piece.file
            && self.start + self.buf.len() as u64 == piece.offset
            && self.buf.len() + piece.r.raw_len as usize <= WRITE_RUN
            && !self.buf.is_empty()
    }
}

/// The file a writer has open (one at a time: a fetch may write to hundreds of small files).
type OpenFile = Option<(u64, std::fs::File, PathBuf)>;

/// Writes a run's bytes at its offset (opening its file if another one is open).
fn write_run(run: &Run, open: &mut OpenFile, files: &Arc<Mutex<Files>>) -> Result<()> {
    if run.buf.is_empty() {
        return Ok(());
    }
    if open.as_ref().is_none_or(|(id, _, _)| *id != run.file) {
        let path = files
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .slots
            .get(&run.file)
            .map(|slot| slot.path.clone())
            .ok_or_else(|| Error::corrupt("a restore job names a file that is already complete"))?;
        drop(open.take());
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
        *open = Some((run.file, file, path));
    }
    if let Some((_, file, path)) = open {
        file.write_all_at(&run.buf, run.start)
            .map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
    }
    Ok(())
}

/// Opens a fetch's blobs and writes them, runs of blobs that land back to back in one file
/// with one call; a blob that does not open damages its files.
fn write_pieces(
    keys: &super::keys::MasterKeys,
    fetch: &Fetch,
    bytes: &[u8],
    files: &Arc<Mutex<Files>>,
    progress: &SharedProgress,
) -> Result<()> {
    let aead = keys.pack_aead(&fetch.pack);
    let mut run = Run {
        file: 0,
        start: 0,
        buf: Vec::with_capacity(WRITE_RUN.min(fetch.raw as usize)),
    };
    // The last blob opened: its pack offset and where its plaintext starts in `run.buf`, or
    // why it did not open. (Pieces of one blob are adjacent: fetches are sorted by offset.)
    let mut last: Option<(u32, std::result::Result<usize, String>)> = None;
    let mut open: OpenFile = None;
    for piece in fetch.pieces.iter() {
        let raw = piece.r.raw_len as usize;
        let again = match &last {
            Some((offset, status)) if *offset == piece.r.offset => Some(status.clone()),
            _ => None,
        };
        match again {
            Some(Err(why)) => {
                damage_piece(files, piece, &why);
                continue;
            }
            Some(Ok(at)) => {
                if run.continues(piece) {
                    run.buf.extend_from_within(at..at + raw);
                } else {
                    // The blob's plaintext becomes the start of the next run.
                    write_run(&run, &mut open, files)?;
                    run.buf.drain(..at);
                    run.buf.truncate(raw);
                    run.file = piece.file;
                    run.start = piece.offset;
                }
                last = Some((piece.r.offset, Ok(run.buf.len() - raw)));
            }
            None => {
                if !run.continues(piece) {
                    write_run(&run, &mut open, files)?;
                    run.buf.clear();
                    run.file = piece.file;
                    run.start = piece.offset;
                }
                let at = (piece.r.offset as u64 - fetch.start) as usize;
                let before = run.buf.len();
                let opened = open_blob_into(
                    &aead,
                    BlobType::Data,
                    &piece.r,
                    &bytes[at..at + piece.r.stored_len as usize],
                    &mut run.buf,
                );
                match opened {
                    Ok(()) => last = Some((piece.r.offset, Ok(before))),
                    Err(e) if is_damage(&e) => {
                        let why = reason(&e);
                        damage_piece(files, piece, &why);
                        last = Some((piece.r.offset, Err(why)));
                        continue;
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        progress.add(raw as u64);
    }
    write_run(&run, &mut open, files)
}

/// Marks the file of a piece whose blob did not open damaged.
fn damage_piece(files: &Arc<Mutex<Files>>, piece: &Piece, why: &str) {
    files
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .damage(piece.file, || {
            format!(
                "bytes {}..{}: {why}",
                piece.offset,
                piece.offset + piece.r.raw_len as u64
            )
        });
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn pack(n: u8) -> Id {
        Id([n; 32])
    }

    fn piece(file: u64, pack_no: u8, offset: u32, stored: u32) -> Piece {
        Piece {
            file,
            offset: 0,
            r: BlobRef {
                id: Id([offset as u8; 32]),
                pack: pack(pack_no),
                index: 0,
                offset,
                stored_len: stored,
                raw_len: stored * 3,
            },
        }
    }

    fn cut(pieces: &[Piece], max_range: u64, max_raw: u64) -> Vec<Fetch> {
        cut_fetches(
            pieces.to_vec(),
            Coalescer::new(max_range, max_raw, REMOTE_GAP),
        )
    }

    fn spans(fetches: &[Fetch]) -> Vec<(u8, u64, u64, usize)> {
        fetches
            .iter()
            .map(|f| (f.pack.0[0], f.start, f.end, f.pieces.len()))
            .collect()
    }

    fn file_with_lists(list_bytes: &[u32]) -> Node {
        let mut node = Node::new("f", NodeType::File);
        node.content = list_bytes
            .iter()
            .map(|&raw_len| BlobRef {
                raw_len,
                ..piece(0, 1, 0, 1).r
            })
            .collect();
        node
    }

    #[test]
    fn a_group_of_tree_entries_reads_ahead_no_more_than_its_share_of_content_lists() {
        let one_ref = file_with_lists(&[4 + 80]);
        assert_eq!(prefetch_group(&vec![one_ref; 300]), PREFETCH_ENTRIES);
        // Files of two full lists (2048 refs each): 12 of them stay within 4 MiB.
        let full = 4 + 2048 * 80;
        let two_lists = file_with_lists(&[full, full]);
        assert_eq!(prefetch_group(&vec![two_lists.clone(); 100]), 12);
        assert_eq!(prefetch_group(&vec![two_lists; 5]), 5);
        // A file of three lists or more reads its own lists: it costs the group nothing.
        let three_lists = file_with_lists(&[full; 3]);
        assert_eq!(prefetch_group(&vec![three_lists; 300]), PREFETCH_ENTRIES);
        let dir = Node::new("d", NodeType::Dir);
        assert_eq!(prefetch_group(&vec![dir; 10]), 10);
        // The first entry is planned whatever its lists hold.
        let huge = file_with_lists(&[u32::MAX / 2, u32::MAX / 2]);
        assert_eq!(prefetch_group(&[huge.clone(), huge]), 1);
        assert_eq!(prefetch_group(&[]), 0);
    }

    #[test]
    fn adjacent_blobs_of_one_pack_are_one_read() {
        let pieces = [
            piece(0, 1, 0, 100),
            piece(0, 1, 100, 50),
            piece(1, 1, 150, 10),
        ];
        assert_eq!(spans(&cut(&pieces, 8 << 20, u64::MAX)), [(1, 0, 160, 3)]);
    }

    #[test]
    fn small_gaps_are_read_through_and_large_gaps_cut_the_read() {
        let gap = REMOTE_GAP as u32;
        let pieces = [
            piece(0, 1, 0, 100),
            piece(0, 1, 100 + gap, 100),
            piece(0, 1, 200 + 2 * gap + 1, 100),
        ];
        assert_eq!(
            spans(&cut(&pieces, 8 << 20, u64::MAX)),
            [
                (1, 0, 200 + gap as u64, 2),
                (1, 200 + 2 * gap as u64 + 1, 300 + 2 * gap as u64 + 1, 1)
            ]
        );
    }

    #[test]
    fn another_pack_a_full_range_or_a_full_job_cuts_the_read() {
        let pieces = [piece(0, 1, 0, 100), piece(0, 2, 100, 100)];
        assert_eq!(spans(&cut(&pieces, 8 << 20, u64::MAX)).len(), 2);
        let pieces = [piece(0, 1, 0, 100), piece(0, 1, 100, 100)];
        assert_eq!(spans(&cut(&pieces, 150, u64::MAX)).len(), 2);
        // Raw bytes bound stream jobs: 300 + 300 > 500.
        assert_eq!(spans(&cut(&pieces, 8 << 20, 500)).len(), 2);
        assert_eq!(spans(&cut(&pieces, 8 << 20, 600)).len(), 1);
    }

    #[test]
    fn a_blob_needed_again_inside_the_read_joins_it_but_an_earlier_one_does_not() {
        // Stream order: the same blob twice in a row, then a blob before the read's start.
        let pieces = [
            piece(0, 1, 1000, 100),
            piece(0, 1, 1000, 100),
            piece(0, 1, 0, 100),
        ];
        assert_eq!(
            spans(&cut(&pieces, 8 << 20, u64::MAX)),
            [(1, 1000, 1100, 2), (1, 0, 100, 1)]
        );
    }

    #[test]
    fn a_batch_is_read_pack_by_pack_in_offset_order_whatever_the_file_order() {
        // Two files whose blobs alternate between two packs, and one blob both files share.
        let pieces = vec![
            piece(0, 2, 100, 100),
            piece(0, 1, 0, 100),
            piece(1, 2, 0, 100),
            piece(1, 1, 100, 100),
            piece(1, 2, 100, 100),
        ];
        let fetches = plan_fetches(pieces, 8 << 20, REMOTE_GAP);
        assert_eq!(spans(&fetches), [(1, 0, 200, 2), (2, 0, 200, 3)]);
        assert_eq!(fetches[1].files(), [0, 1]);
        let offsets: Vec<u32> = fetches[1].pieces.iter().map(|p| p.r.offset).collect();
        assert_eq!(offsets, [0, 100, 100]);
    }

    #[test]
    fn from_an_object_store_a_packs_needed_span_is_one_read_and_locally_short_ranges_stay() {
        let options = RepoOptions::default();
        // Every other 1 MiB of a 16 MiB pack: a local read skips the gaps, an object store
        // reads the span in one request.
        let pieces: Vec<Piece> = (0..8u32)
            .map(|i| piece(u64::from(i), 1, i * (2 << 20), 1 << 20))
            .collect();
        let local = read_pattern(true, &options);
        assert_eq!(
            local,
            ReadPattern {
                max_range: 8 << 20,
                max_gap: LOCAL_GAP,
                batch_scale: 1
            }
        );
        assert_eq!(
            plan_fetches(pieces.clone(), local.max_range, local.max_gap).len(),
            8
        );
        let remote = read_pattern(false, &options);
        let fetches = plan_fetches(pieces, remote.max_range, remote.max_gap);
        assert_eq!(spans(&fetches), [(1, 0, 15 << 20, 8)]);
        assert_eq!(remote.batch_scale, REMOTE_BATCH_SCALE);
    }

    /// A planned span as (pack, start, end, jobs), a job as its (first offset, blobs) or a
    /// zero run as (u32::MAX, length).
    type PlannedSpan = (u8, u64, u64, Vec<(u32, u64)>);

    /// A stream's refs through the planner.
    fn plan_stream(local: bool, options: &RepoOptions, refs: &[BlobRef]) -> Vec<PlannedSpan> {
        let mut planner = StreamPlanner::new(local, options);
        let mut items = Vec::new();
        for r in refs {
            planner.push(*r, &mut items);
        }
        planner.finish(&mut items);
        let job = |j: &StreamJob| match j {
            StreamJob::Fetch(f) => {
                assert!(f.raw <= STREAM_JOB, "a job restores {} bytes", f.raw);
                assert!(f.end > f.start);
                (f.pieces[0].r.offset, f.pieces.len() as u64)
            }
            StreamJob::Zero(len) => (u32::MAX, *len),
        };
        items
            .iter()
            .map(|item| match item {
                StreamItem::Span(s) => {
                    for j in &s.jobs {
                        if let StreamJob::Fetch(f) = j {
                            assert!(f.start >= s.start && f.end <= s.end);
                        }
                    }
                    (
                        s.pack.0[0],
                        s.start,
                        s.end,
                        s.jobs.iter().map(job).collect(),
                    )
                }
                StreamItem::Zero(len) => (0, 0, 0, vec![(u32::MAX, *len)]),
            })
            .collect()
    }

    /// `n` consecutive blobs of `stored` bytes (restoring to three times that) in a pack.
    fn run_of(pack_no: u8, from: u32, n: u32, stored: u32) -> Vec<BlobRef> {
        (0..n)
            .map(|i| piece(0, pack_no, from + i * stored, stored).r)
            .collect()
    }

    #[test]
    fn from_an_object_store_a_streams_pack_span_is_one_read_feeding_jobs_of_at_most_4_mib() {
        let options = RepoOptions::default();
        const K: u32 = 1 << 10;
        // 8 MiB of pack 1 (24 MiB restored), 2 MiB of pack 2, pack 1 again from its start
        // (data seen before), then a zero run between two blobs of pack 3.
        let mut refs = run_of(1, 0, 16, 512 * K);
        refs.extend(run_of(2, 0, 4, 512 * K));
        refs.extend(run_of(1, 0, 2, 512 * K));
        refs.extend(run_of(3, 0, 1, 512 * K));
        refs.push(BlobRef::zero_run(1 << 20));
        refs.extend(run_of(3, 512 * K, 1, 512 * K));
        let remote = plan_stream(false, &options, &refs);
        let jobs_of_two = |n: u32| (0..n).map(|i| (i * 1024 * K, 2)).collect::<Vec<_>>();
        assert_eq!(
            remote,
            [
                (1, 0, 8 << 20, jobs_of_two(8)),
                (2, 0, 2 << 20, jobs_of_two(2)),
                (1, 0, 1 << 20, jobs_of_two(1)),
                (
                    3,
                    0,
                    1 << 20,
                    vec![(0, 1), (u32::MAX, 1 << 20), (512 * K, 1)]
                ),
            ]
        );
        // Locally every job is its own short read, as before.
        let local = plan_stream(true, &options, &refs);
        assert_eq!(local.len(), 8 + 2 + 1 + 3);
        assert!(local.iter().all(|(_, start, end, jobs)| jobs.len() == 1
            && (jobs[0].0 == u32::MAX || end - start <= 1 << 20)));
        assert_eq!(local[12], (0, 0, 0, vec![(u32::MAX, 1 << 20)]));
    }

    #[test]
    fn a_streams_span_read_stays_within_the_remote_read_limit() {
        // 4 × restore_range = 4 MiB spans: 8 MiB of one pack is two reads.
        let options = RepoOptions {
            restore_range: 1 << 20,
            ..RepoOptions::default()
        };
        let refs = run_of(1, 0, 16, 512 << 10);
        let spans: Vec<(u64, u64, usize)> = plan_stream(false, &options, &refs)
            .into_iter()
            .map(|(_, start, end, jobs)| (start, end, jobs.len()))
            .collect();
        assert_eq!(spans, [(0, 4 << 20, 4), (4 << 20, 8 << 20, 4)]);
    }

    #[test]
    fn a_fetch_holds_its_range_of_the_memory_budget_and_never_more_than_all_of_it() {
        let options = RepoOptions::default();
        let budget = fetch_budget(&options);
        assert_eq!(budget, 64 << 20);
        let mut fetches = plan_fetches(
            vec![
                piece(0, 1, 0, 17 << 20),
                piece(0, 2, 0, 0),
                piece(0, 3, 0, 200 << 20),
            ],
            u64::MAX,
            0,
        );
        fetches.sort_by_key(|f| f.pack);
        let costs: Vec<u32> = fetches.iter().map(|f| fetch_cost(f, budget)).collect();
        assert_eq!(costs, [17 << 20, 1, budget]);
        // A budget too small for one range still lets it through, alone.
        let tiny = RepoOptions {
            restore_memory: 1,
            ..RepoOptions::default()
        };
        assert_eq!(fetch_cost(&fetches[0], fetch_budget(&tiny)), 1);
    }

    proptest! {
        #[test]
        fn from_an_object_store_every_pack_of_a_batch_is_one_read_within_the_budget(
            raw in proptest::collection::vec((0u64..3, 1u8..6, 0u32..16_000_000, 1u32..1_000_000), 0..300),
        ) {
            let options = RepoOptions::default();
            let remote = read_pattern(false, &options);
            let budget = fetch_budget(&options);
            let pieces: Vec<Piece> = raw
                .iter()
                .map(|&(file, p, offset, stored)| piece(file, p, offset, stored))
                .collect();
            let mut packs: Vec<Id> = pieces.iter().map(|p| p.r.pack).collect();
            packs.sort();
            packs.dedup();
            let fetches = plan_fetches(pieces.clone(), remote.max_range, remote.max_gap);
            let got: Vec<Id> = fetches.iter().map(|f| f.pack).collect();
            prop_assert_eq!(got, packs);
            for f in &fetches {
                let first = f.pieces.iter().map(|p| p.r.offset as u64).min();
                let last = f.pieces.iter().map(|p| p.r.end()).max();
                prop_assert_eq!((Some(f.start), Some(f.end)), (first, last));
                let cost = fetch_cost(f, budget);
                prop_assert!(cost >= 1 && cost <= budget);
                prop_assert!(u64::from(cost) == (f.end - f.start).max(1));
            }
        }
    }

    proptest! {
        #[test]
        fn every_piece_lands_in_exactly_one_read_that_covers_it(
            raw in proptest::collection::vec((0u64..3, 1u8..4, 0u32..2_000_000, 1u32..300_000), 0..300),
            max_range in 100_000u64..9_000_000,
            max_gap in prop_oneof![Just(0u64), Just(LOCAL_GAP), Just(REMOTE_GAP)],
        ) {
            let pieces: Vec<Piece> = raw
                .iter()
                .map(|&(file, p, offset, stored)| piece(file, p, offset, stored))
                .collect();
            let fetches = plan_fetches(pieces.clone(), max_range, max_gap);
            let total: usize = fetches.iter().map(|f| f.pieces.len()).sum();
            prop_assert_eq!(total, pieces.len());
            let mut previous: Option<(Id, u64)> = None;
            for f in &fetches {
                prop_assert!(f.pieces.len() <= MAX_PIECES);
                if f.pieces.len() > 1 {
                    prop_assert!(f.end - f.start <= max_range);
                }
                let mut end = f.start;
                for p in f.pieces.iter() {
                    prop_assert_eq!(p.r.pack, f.pack);
                    prop_assert!(p.r.offset as u64 >= f.start && p.r.end() <= f.end);
                    prop_assert!(p.r.offset as u64 <= end + max_gap, "a gap wider than allowed");
                    end = end.max(p.r.end());
                }
                // Reads come pack by pack, in offset order.
                if let Some(prev) = previous {
                    prop_assert!(prev <= (f.pack, f.start));
                }
                previous = Some((f.pack, f.start));
            }
            let mut want: Vec<(u64, Id, u32)> = pieces.iter().map(|p| (p.file, p.r.pack, p.r.offset)).collect();
            let mut got: Vec<(u64, Id, u32)> = fetches
                .iter()
                .flat_map(|f| f.pieces.iter().map(|p| (p.file, p.r.pack, p.r.offset)))
                .collect();
            want.sort();
            got.sort();
            prop_assert_eq!(want, got);
        }
    }
}
