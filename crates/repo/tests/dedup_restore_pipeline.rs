//! Streamed restores (`datasafed pull`, `restore --target -`) keep reading while the output is
//! written, and keep only a bounded number of reads ahead of it (issue 15).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use cairn_repo::Store;
use cairn_repo::config::Secret;
use cairn_repo::dedup::{
    BackupOptions, RepoOptions, Repository, RestoreOptions, backup_stream, backup_tree,
    restore_stream, restore_tree,
};
use cairn_repo::progress::no_progress;
use cairn_repo::testing::hooked_store::{HookedStore, StoreHook};
use cairn_repo::testing::noise;
use object_store::path::Path;
use object_store::{GetOptions, ObjectMeta, ObjectStore, ObjectStoreExt};
use tokio::io::AsyncWrite;

/// Ranged reads that answer slowly, after 200 ms plus 100 ms per 200 KB of their offset in
/// the object, counting the ranged reads (and bytes) started and answered.
#[derive(Debug, Default)]
struct SlowReads {
    started: AtomicUsize,
    started_bytes: AtomicUsize,
    answered: AtomicUsize,
    slow: std::sync::atomic::AtomicBool,
    /// Ranged reads fail (permission denied) from this one on (0: never).
    fail_from: AtomicUsize,
    attempts: AtomicUsize,
}

#[async_trait]
impl StoreHook for SlowReads {
    async fn get(&self, location: &Path, options: &GetOptions) -> object_store::Result<()> {
        let fail_from = self.fail_from.load(Ordering::SeqCst);
        if options.range.is_some() && fail_from > 0 {
            let n = self.attempts.fetch_add(1, Ordering::SeqCst) + 1;
            tokio::time::sleep(Duration::from_millis(5)).await;
            if n >= fail_from {
                return Err(object_store::Error::PermissionDenied {
                    path: location.to_string(),
                    source: "access revoked".into(),
                });
            }
        }
        if options.range.is_none() || !self.slow.load(Ordering::SeqCst) {
            return Ok(());
        }
        self.started.fetch_add(1, Ordering::SeqCst);
        // Later parts of a pack answer later: the reads a restore starts together finish
        // one after another, as over a busy network.
        let start = match &options.range {
            Some(object_store::GetRange::Bounded(r)) => {
                self.started_bytes
                    .fetch_add((r.end - r.start) as usize, Ordering::SeqCst);
                r.start
            }
            _ => 0,
        };
        tokio::time::sleep(Duration::from_millis(200 + 100 * (start / 200_000).min(8))).await;
        self.answered.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

/// An output whose first write takes `hold` (a slow pipe or disk); records how many ranged
/// reads were answered when that write began, and answered and started (reads, bytes) when
/// it ended.
struct SlowFirstWrite {
    store: Arc<HookedStore<SlowReads>>,
    hold: Duration,
    began: Option<(Instant, usize)>,
    ended: Option<(usize, usize, usize)>,
    tick: Pin<Box<tokio::time::Sleep>>,
    out: Vec<u8>,
}

impl AsyncWrite for SlowFirstWrite {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        if self.ended.is_none() {
            let answered = self.store.hook.answered.load(Ordering::SeqCst);
            let (since, _) = *self.began.get_or_insert((Instant::now(), answered));
            if since.elapsed() < self.hold {
                let next = tokio::time::Instant::now() + Duration::from_millis(10);
                self.tick.as_mut().reset(next);
                let _ = self.tick.as_mut().poll(cx);
                return Poll::Pending;
            }
            let started = self.store.hook.started.load(Ordering::SeqCst);
            let bytes = self.store.hook.started_bytes.load(Ordering::SeqCst);
            self.ended = Some((answered, started, bytes));
        }
        self.out.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_restore_reads_ahead_while_its_output_is_slow_and_no_further_than_its_window() {
    let store = Arc::new(HookedStore::new(SlowReads::default()));
    let repo = hooked_repo(&store).await;
    let data = noise(4 << 20, 7);
    let snapshot = backup_stream(
        &repo,
        "/db.dump",
        std::io::Cursor::new(data.clone()),
        &BackupOptions::default(),
        None,
        no_progress(),
    )
    .await
    .expect("backup");
    // From an object store a read spans at most 4 × restore_range = 256 KiB of a pack: the
    // 4 MiB stream is 16 or more reads. Ahead of the output: 4 decoded jobs, and reads of at
    // most restore_memory = 256 KiB not decoded yet.
    let window = 4;
    let range = 64 << 10;
    let repo = repo.with_options(RepoOptions {
        restore_fetches: window,
        restore_range: range,
        restore_memory: window as u64 * range,
        ..RepoOptions::default()
    });
    store.hook.slow.store(true, Ordering::SeqCst);
    let mut out = SlowFirstWrite {
        store: store.clone(),
        hold: Duration::from_millis(2000),
        began: None,
        ended: None,
        tick: Box::pin(tokio::time::sleep(Duration::ZERO)),
        out: Vec::new(),
    };
    let written = restore_stream(&repo, &snapshot.root, &mut out, no_progress())
        .await
        .expect("restore");
    assert_eq!(written, data.len() as u64);
    assert!(
        out.out == data,
        "the restored stream differs from the source"
    );
    let total = store.hook.started.load(Ordering::SeqCst);
    assert!(
        total >= 12,
        "only {total} ranged reads: the test needs more jobs"
    );
    let (_, at_start) = out.began.expect("written");
    let (answered, started, bytes) = out.ended.expect("written");
    assert!(
        answered >= at_start + 2,
        "while the first write took 2 s only {} more reads were answered ({at_start} before)",
        answered - at_start
    );
    // One content list, the job being written, `window` jobs waiting and one waiting for
    // room (each a read of 4 × range at most), and reads not decoded yet within the budget.
    let bound = 64 * 1024 + (1 + window as u64 + 1) * 4 * range + window as u64 * range;
    let total_bytes = store.hook.started_bytes.load(Ordering::SeqCst);
    assert!(
        bytes as u64 <= bound && (total_bytes as u64) > 2 * bound,
        "{bytes} of {total_bytes} bytes ({started} of {total} reads) were read before the \
         first write ended (window {window}, bound {bound})"
    );
}

/// A store failure (not damage) stops a tree restore at once: the reads already planned are
/// not all tried first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tree_restore_stops_at_the_first_store_failure() {
    let store = Arc::new(HookedStore::new(SlowReads::default()));
    let (repo, snapshot, work) = backed_up_files(&store, 128, 64 << 10).await;
    let fetches = 2;
    let repo = repo.with_options(RepoOptions {
        restore_fetches: fetches,
        restore_range: 64 << 10,
        ..RepoOptions::default()
    });
    let fail_from = 12;
    store.hook.fail_from.store(fail_from, Ordering::SeqCst);
    let err = restore_tree(
        &repo,
        &snapshot,
        &work.path().join("out"),
        &RestoreOptions {
            owners: Some(false),
            ..Default::default()
        },
        no_progress(),
    )
    .await
    .expect_err("the store refuses reads");
    assert_eq!(err.kind(), cairn_repo::ErrorKind::Backend, "{err}");
    let attempts = store.hook.attempts.load(Ordering::SeqCst);
    assert!(
        attempts <= fail_from + 2 * fetches + 2,
        "{attempts} ranged reads were tried after the store failed at read {fail_from} (128 files, {fetches} in flight)"
    );
}

/// A streamed restore that meets a damaged blob fails (and stops its reads) instead of
/// waiting forever for room in its window.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_restore_that_meets_damage_fails_and_does_not_hang() {
    let store = Arc::new(HookedStore::new(SlowReads::default()));
    let repo = hooked_repo(&store).await;
    let data = noise(4 << 20, 9);
    let snapshot = backup_stream(
        &repo,
        "/db.dump",
        std::io::Cursor::new(data.clone()),
        &BackupOptions::default(),
        None,
        no_progress(),
    )
    .await
    .expect("backup");
    // Every data pack gets a flipped byte near its start: the first job already fails.
    let packs: Vec<ObjectMeta> =
        futures::StreamExt::collect::<Vec<_>>(store.list(Some(&Path::from("data"))))
            .await
            .into_iter()
            .map(|m| m.expect("list"))
            .filter(|m| m.size > 512 << 10)
            .collect();
    assert!(packs.len() >= 3, "{} data packs", packs.len());
    for pack in &packs {
        let mut bytes = store
            .get(&pack.location)
            .await
            .expect("get")
            .bytes()
            .await
            .expect("bytes")
            .to_vec();
        bytes[100 << 10] ^= 0x40;
        store.put(&pack.location, bytes.into()).await.expect("put");
    }
    let repo = repo.with_options(RepoOptions {
        restore_fetches: 4,
        restore_range: 256 << 10,
        ..RepoOptions::default()
    });
    let mut out = Vec::new();
    let result = tokio::time::timeout(
        Duration::from_secs(60),
        restore_stream(&repo, &snapshot.root, &mut out, no_progress()),
    )
    .await
    .expect("the restore returned within 60 s instead of hanging");
    let err = result.expect_err("a damaged blob fails the stream");
    assert_eq!(err.kind(), cairn_repo::ErrorKind::Crypto, "{err}");
}

/// Counts the ranged reads of each object.
#[derive(Debug, Default)]
struct CountReads {
    reads: std::sync::Mutex<std::collections::HashMap<String, usize>>,
}

#[async_trait]
impl StoreHook for CountReads {
    async fn get(&self, location: &Path, options: &GetOptions) -> object_store::Result<()> {
        if options.range.is_some() {
            let mut reads = self.reads.lock().unwrap_or_else(|e| e.into_inner());
            *reads.entry(location.to_string()).or_default() += 1;
        }
        Ok(())
    }
}

/// `len` bytes that compress about 7× and do not deduplicate: every 4 KiB holds 512 random
/// bytes.
fn compressible(len: usize, seed: u64) -> Vec<u8> {
    let random = noise(len / 8, seed);
    let mut data = Vec::with_capacity(len);
    for piece in random.chunks(512) {
        data.extend_from_slice(piece);
        data.extend(std::iter::repeat_n(b'a', 4096 - 512));
    }
    data
}

/// From an object store a stream's pack is read once, its needed span in one request, and the
/// jobs that restore its 4 MiB pieces share that read; a missing pack still says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn from_an_object_store_a_stream_restore_reads_each_data_pack_once() {
    let store = Arc::new(HookedStore::new(CountReads::default()));
    let repo = hooked_repo(&store).await;
    let data = compressible(32 << 20, 11);
    let snapshot = backup_stream(
        &repo,
        "/db.dump",
        std::io::Cursor::new(data.clone()),
        &BackupOptions::default(),
        None,
        no_progress(),
    )
    .await
    .expect("backup");
    let packs: Vec<ObjectMeta> =
        futures::StreamExt::collect::<Vec<_>>(store.list(Some(&Path::from("data"))))
            .await
            .into_iter()
            .map(|m| m.expect("list"))
            .filter(|m| m.size > 512 << 10)
            .collect();
    // Each pack restores to more than one 4 MiB job.
    assert!(
        packs.len() >= 3 && data.len() as u64 / packs.len() as u64 > 4 << 20,
        "{} data packs for {} bytes",
        packs.len(),
        data.len()
    );
    store.hook.reads.lock().expect("reads").clear();
    let mut out = Vec::new();
    let written = restore_stream(&repo, &snapshot.root, &mut out, no_progress())
        .await
        .expect("restore");
    assert_eq!(written, data.len() as u64);
    assert!(out == data, "the restored stream differs from the source");
    let reads = store.hook.reads.lock().expect("reads").clone();
    for pack in &packs {
        assert_eq!(
            reads.get(pack.location.as_ref()),
            Some(&1),
            "ranged reads of {}: {reads:?}",
            pack.location
        );
    }

    store.delete(&packs[1].location).await.expect("delete");
    let err = restore_stream(&repo, &snapshot.root, Vec::new(), no_progress())
        .await
        .expect_err("a missing pack fails the restore");
    assert!(
        err.to_string().contains("is missing") && err.to_string().contains("data/"),
        "{err}"
    );
}

/// Ranged reads that each take 50 ms, recording the most bytes of them in flight at once.
#[derive(Debug, Default)]
struct OverlappingReads {
    in_flight: AtomicUsize,
    most: AtomicUsize,
    reads: AtomicUsize,
}

#[async_trait]
impl StoreHook for OverlappingReads {
    async fn get(&self, _: &Path, options: &GetOptions) -> object_store::Result<()> {
        let Some(object_store::GetRange::Bounded(r)) = &options.range else {
            return Ok(());
        };
        let len = (r.end - r.start) as usize;
        let now = self.in_flight.fetch_add(len, Ordering::SeqCst) + len;
        self.most.fetch_max(now, Ordering::SeqCst);
        self.reads.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(50)).await;
        self.in_flight.fetch_sub(len, Ordering::SeqCst);
        Ok(())
    }
}

/// A tree restore's reads in flight stay within `restore_memory` even when more fetches than
/// that are allowed at once, and still overlap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tree_restore_holds_no_more_reads_than_its_memory_budget() {
    let store = Arc::new(HookedStore::new(OverlappingReads::default()));
    let (repo, snapshot, work) = backed_up_files(&store, 24, 200 << 10).await;
    // 16 fetches of up to 4 × 64 KiB (an object store's spans) could hold 4 MiB at once.
    let budget = 512 << 10;
    let repo = repo.with_options(RepoOptions {
        restore_fetches: 16,
        restore_range: 64 << 10,
        restore_memory: budget,
        ..RepoOptions::default()
    });
    store.hook.most.store(0, Ordering::SeqCst);
    store.hook.reads.store(0, Ordering::SeqCst);
    let out = work.path().join("out");
    restore_into(&repo, &snapshot, &out).await;
    assert_restored(&out, 24, 200 << 10);
    let most = store.hook.most.load(Ordering::SeqCst) as u64;
    let reads = store.hook.reads.load(Ordering::SeqCst);
    assert!(reads >= 8, "only {reads} ranged reads: the test needs more");
    assert!(
        most <= budget,
        "{most} bytes of reads were in flight at once (budget {budget})"
    );
    assert!(
        most > 256 << 10,
        "at most {most} bytes in flight: the reads did not overlap"
    );
}

#[tokio::test]
async fn a_tree_restore_leaves_no_more_than_its_window_of_restored_files_in_the_page_cache() {
    let store = Arc::new(HookedStore::new(OverlappingReads::default()));
    let (repo, snapshot, _work) = backed_up_files(&store, 24, 512 << 10).await;
    // On a disk, not a tmpfs (whose pages are the files themselves).
    let disk = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tempdir");
    let window: u64 = 2 << 20;
    let restored = |name: &str, page_cache: u64| {
        let repo = repo.clone().with_options(RepoOptions {
            restore_page_cache: page_cache,
            ..RepoOptions::default()
        });
        let out = disk.path().join(name);
        let snapshot = snapshot.clone();
        async move {
            restore_into(&repo, &snapshot, &out).await;
            out
        }
    };
    let resident_in = |out: &std::path::Path| -> u64 {
        (0..24u64)
            .map(|i| resident(&out.join(format!("f{i:03}"))))
            .sum()
    };

    // Left to the kernel, with no memory pressure, the whole restored tree stays cached.
    let kept = restored("kept", u64::MAX).await;
    let all = resident_in(&kept);
    assert!(all > 10 << 20, "only {all} bytes cached without a window");

    let out = restored("windowed", window).await;
    // The releasing thread goes on with the last files handed to it after the restore.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut cached = resident_in(&out);
    while cached > window && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        cached = resident_in(&out);
    }
    assert!(
        cached <= window,
        "{cached} bytes of the restored 12 MiB are cached, the window is {window}"
    );
    assert_restored(&out, 24, 512 << 10);
}

/// Restores `snapshot` under `out`, owners not applied.
async fn restore_into(
    repo: &Repository,
    snapshot: &cairn_repo::dedup::Snapshot,
    out: &std::path::Path,
) {
    restore_tree(
        repo,
        snapshot,
        out,
        &RestoreOptions {
            owners: Some(false),
            ..Default::default()
        },
        no_progress(),
    )
    .await
    .expect("restore");
}

/// Asserts that `out` holds the files of [`backed_up_files`]: `files` files of `len` bytes.
fn assert_restored(out: &std::path::Path, files: u64, len: usize) {
    for i in 0..files {
        let name = format!("f{i:03}");
        assert!(
            std::fs::read(out.join(&name)).expect("restored") == noise(len, i),
            "{name} differs"
        );
    }
}

/// Bytes of the file at `path` in the page cache (`mincore` of a mapping, which reads
/// nothing).
fn resident(path: &std::path::Path) -> u64 {
    use nix::libc;
    use std::os::fd::AsRawFd;
    let file = std::fs::File::open(path).expect("open");
    let len = file.metadata().expect("stat").len() as usize;
    if len == 0 {
        return 0;
    }
    // SAFETY: a read-only shared mapping of an open file, unmapped before returning; mincore
    // writes one byte per page of it into a vector of that many bytes.
    unsafe {
        let page = libc::sysconf(libc::_SC_PAGESIZE) as usize;
        let map = libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_SHARED,
            file.as_raw_fd(),
            0,
        );
        assert_ne!(map, libc::MAP_FAILED, "mapping {}", path.display());
        let mut pages = vec![0u8; len.div_ceil(page)];
        let rc = libc::mincore(map, len, pages.as_mut_ptr());
        libc::munmap(map, len);
        assert_eq!(rc, 0, "mincore of {}", path.display());
        pages.iter().filter(|p| **p & 1 == 1).count() as u64 * page as u64
    }
}

/// A repository on `store` holding a backup of `files` files `f000`, `f001`, … of `len` bytes
/// of noise each (seeded by their number), and the temporary directory of the source.
async fn backed_up_files<H: StoreHook + 'static>(
    store: &Arc<HookedStore<H>>,
    files: u64,
    len: usize,
) -> (Repository, cairn_repo::dedup::Snapshot, tempfile::TempDir) {
    let repo = hooked_repo(store).await;
    let work = tempfile::tempdir().expect("tempdir");
    let src = work.path().join("src");
    std::fs::create_dir_all(&src).expect("mkdir");
    for i in 0..files {
        std::fs::write(src.join(format!("f{i:03}")), noise(len, i)).expect("write");
    }
    let snapshot = backup_tree(&repo, &src, &BackupOptions::default(), no_progress())
        .await
        .expect("backup");
    (repo, snapshot, work)
}

/// A new repository on `store`, with 1 MiB packs.
async fn hooked_repo<H: StoreHook + 'static>(store: &Arc<HookedStore<H>>) -> Repository {
    Repository::init(
        Store::from_object_store(store.clone()),
        &Secret::new("pw"),
        cairn_repo::testing::small_pack_options(),
    )
    .await
    .expect("init")
}
