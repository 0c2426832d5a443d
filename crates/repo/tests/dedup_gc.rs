//! Forget and two-phase prune: space comes back, data a concurrent or later snapshot needs
//! never goes, stale sessions do not block forever, and deletes work when the store rejects
//! writes.

use cairn_repo::testing::noise;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use cairn_repo::Store;
use cairn_repo::config::Secret;
use cairn_repo::dedup::gc::{KeepPolicy, PruneOptions, forget, load_gc_lists, plan_forget, prune};
use cairn_repo::dedup::writer::Writer;
use cairn_repo::dedup::{
    BackupOptions, CheckOptions, InitOptions, Node, NodeType, RepoOptions, Repository, Snapshot,
    SnapshotKind, backup_stream, check, restore_stream,
};
use cairn_repo::progress::no_progress;
use cairn_repo::testing::hooked_store::{HookedStore, StoreHook};
use object_store::memory::InMemory;
use object_store::path::Path;

fn init_options() -> InitOptions {
    cairn_repo::testing::small_pack_options()
}

async fn repo_on(store: Store) -> Repository {
    Repository::open_or_init(store, &Secret::new("pw"), init_options())
        .await
        .expect("repo")
}

async fn push(repo: &Repository, path: &str, data: &[u8]) -> Snapshot {
    backup_stream(
        repo,
        path,
        std::io::Cursor::new(data.to_vec()),
        &BackupOptions::default(),
        None,
        no_progress(),
    )
    .await
    .expect("backup")
}

async fn pull(repo: &Repository, snapshot: &Snapshot) -> cairn_repo::Result<Vec<u8>> {
    let (mut reader, writer) = tokio::io::duplex(1 << 16);
    let reading = tokio::spawn(async move {
        let mut out = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut reader, &mut out)
            .await
            .map(|_| out)
    });
    let result = restore_stream(repo, &snapshot.root, writer, no_progress()).await;
    let out = reading.await.expect("join").expect("read");
    result.map(|_| out)
}

async fn pack_bytes(store: &Store) -> u64 {
    store
        .list_all("data")
        .await
        .expect("list")
        .iter()
        .map(|i| i.size)
        .sum()
}

#[tokio::test]
async fn forget_then_prune_frees_the_space_of_forgotten_data_only() {
    let store = Store::from_object_store(Arc::new(InMemory::new()));
    let repo = repo_on(store.clone()).await;
    let a = push(&repo, "/a", &noise(3 << 20, 1)).await;
    let b_data = noise(3 << 20, 2);
    let b = push(&repo, "/b", &b_data).await;
    let before = pack_bytes(&store).await;
    forget(&repo, &[a.id]).await.expect("forget");
    let report = prune(&repo, &PruneOptions::default(), no_progress())
        .await
        .expect("prune");
    assert!(report.deleted_packs > 0, "{report:?}");
    let after = pack_bytes(&store).await;
    assert!(
        after * 10 < before * 6,
        "space went from {before} to {after}"
    );
    assert!(pull(&repo, &b).await.expect("b restores") == b_data);
    let report = check(
        &repo,
        &CheckOptions {
            read_data: true,
            ..Default::default()
        },
        no_progress(),
    )
    .await
    .expect("check");
    assert!(report.is_ok(), "{:?}", report.errors);
    assert!(load_gc_lists(&repo).await.expect("lists").is_empty());
    let dry = prune(&repo, &PruneOptions { dry_run: true }, no_progress())
        .await
        .expect("dry run");
    assert_eq!(dry.condemned, 0);
}

#[tokio::test]
async fn a_writer_that_reused_condemned_data_blocks_the_sweep_and_its_snapshot_resurrects_it() {
    let store = Store::from_object_store(Arc::new(InMemory::new()));
    let repo = repo_on(store.clone()).await;
    let data = noise(2 << 20, 7);
    let old = push(&repo, "/old", &data).await;

    // A writer starts before the old snapshot is forgotten, and dedups against it.
    let writer = Writer::start(&repo).await.expect("writer");
    let content = writer
        .write_content(
            Box::new(std::io::Cursor::new(data.clone())),
            cairn_repo::dedup::chunk::Mode::Stream,
            old.root.content.clone(),
            no_progress(),
        )
        .await
        .expect("write");

    forget(&repo, &[old.id]).await.expect("forget");
    let report = prune(&repo, &PruneOptions::default(), no_progress())
        .await
        .expect("prune while writing");
    assert_eq!(
        report.deleted_packs, 0,
        "nothing may be deleted while the writer is alive: {report:?}"
    );
    assert_eq!(report.waiting_lists, 1);
    assert_eq!(report.blocking_sessions.len(), 1);

    let mut root = Node::new("/new", NodeType::File);
    root.size = content.size;
    root.content = content.content;
    let new = writer
        .commit(
            SnapshotKind::Stream,
            vec!["/new".into()],
            Default::default(),
            root,
            None,
            None,
        )
        .await
        .expect("commit");
    assert!(
        new.summary.reused_chunks > 0,
        "the writer reused the old data"
    );

    let report = prune(&repo, &PruneOptions::default(), no_progress())
        .await
        .expect("prune after");
    assert!(report.resurrected > 0, "{report:?}");
    assert!(pull(&repo, &new).await.expect("restores") == data);
    let report = check(
        &repo,
        &CheckOptions {
            read_data: true,
            ..Default::default()
        },
        no_progress(),
    )
    .await
    .expect("check");
    assert!(report.is_ok(), "{:?}", report.errors);
}

#[tokio::test]
async fn writers_that_start_after_a_mark_do_not_reuse_condemned_packs() {
    let store = Store::from_object_store(Arc::new(InMemory::new()));
    let repo = repo_on(store.clone()).await;
    let data = noise(1 << 20, 9);
    let old = push(&repo, "/old", &data).await;
    // Keep a session open so the list cannot be swept.
    let blocker = Writer::start(&repo).await.expect("blocker");
    forget(&repo, &[old.id]).await.expect("forget");
    let report = prune(&repo, &PruneOptions::default(), no_progress())
        .await
        .expect("mark");
    assert_eq!(report.waiting_lists, 1);
    let new = push(&repo, "/new", &data).await;
    assert_eq!(
        new.summary.reused_chunks, 0,
        "condemned packs are not reused"
    );
    drop(blocker);
    // The blocker never ended cleanly: its marker expires.
    let short = repo.clone().with_options(RepoOptions {
        session_timeout: Duration::from_millis(1),
        ..RepoOptions::default()
    });
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let report = prune(&short, &PruneOptions::default(), no_progress())
        .await
        .expect("sweep");
    assert!(report.deleted_packs > 0, "{report:?}");
    assert!(pull(&repo, &new).await.expect("restores") == data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_and_prunes_never_lose_a_snapshot() {
    let store = Store::from_object_store(Arc::new(InMemory::new()));
    let repo = repo_on(store.clone()).await;
    let base = noise(1 << 20, 100);
    let mut writers = Vec::new();
    for w in 0..3u64 {
        let repo = repo.clone();
        let base = base.clone();
        writers.push(tokio::spawn(async move {
            let mut made = Vec::new();
            for round in 0..4u64 {
                let mut data = base.clone();
                data.extend(noise(300_000, w * 100 + round));
                let s = backup_stream(
                    &repo,
                    &format!("/w{w}"),
                    std::io::Cursor::new(data.clone()),
                    &BackupOptions::default(),
                    None,
                    no_progress(),
                )
                .await?;
                made.push((s, data));
            }
            Ok::<_, cairn_repo::Error>(made)
        }));
    }
    let pruner = {
        let repo = repo.clone();
        tokio::spawn(async move {
            for _ in 0..6 {
                // Forget all but the newest snapshot of each path, then prune.
                let snapshots = repo.list_snapshots().await?;
                let plan = plan_forget(
                    &snapshots,
                    &KeepPolicy {
                        last: Some(1),
                        ..Default::default()
                    },
                    Default::default(),
                );
                forget(&repo, &plan.removals()).await?;
                prune(&repo, &PruneOptions::default(), no_progress()).await?;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Ok::<_, cairn_repo::Error>(())
        })
    };
    let mut all = Vec::new();
    for w in writers {
        all.extend(w.await.expect("join").expect("writer"));
    }
    pruner.await.expect("join").expect("pruner");
    prune(&repo, &PruneOptions::default(), no_progress())
        .await
        .expect("final prune");
    let remaining: Vec<_> = repo
        .list_snapshots()
        .await
        .expect("list")
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert!(!remaining.is_empty());
    for (s, data) in &all {
        if remaining.contains(&s.id) {
            let back = pull(&repo, s)
                .await
                .unwrap_or_else(|e| panic!("snapshot {} lost data: {e:#}", s.id));
            assert!(back == *data);
        }
    }
    let report = check(
        &repo,
        &CheckOptions {
            read_data: true,
            ..Default::default()
        },
        no_progress(),
    )
    .await
    .expect("check");
    assert!(report.is_ok(), "{:?}", report.errors);
}

/// Writes that can be switched off (quota exhausted, write permission revoked).
#[derive(Debug, Default)]
struct WriteSwitch {
    rejecting: AtomicBool,
}

#[async_trait]
impl StoreHook for WriteSwitch {
    async fn put(&self, location: &Path) -> object_store::Result<()> {
        if self.rejecting.load(Ordering::SeqCst) {
            return Err(object_store::Error::PermissionDenied {
                path: location.to_string(),
                source: "quota exceeded".into(),
            });
        }
        Ok(())
    }
}

#[tokio::test]
async fn forget_and_a_marked_sweep_work_when_the_store_rejects_writes() {
    let switch = Arc::new(HookedStore::new(WriteSwitch::default()));
    let store = Store::from_object_store(switch.clone());
    let repo = repo_on(store.clone()).await;
    let a = push(&repo, "/a", &noise(2 << 20, 1)).await;
    let b_data = noise(1 << 20, 2);
    let b = push(&repo, "/b", &b_data).await;
    // Mark while writes work, with a session keeping the list from being swept.
    let blocker = Writer::start(&repo).await.expect("blocker");
    forget(&repo, &[a.id]).await.expect("forget");
    let report = prune(&repo, &PruneOptions::default(), no_progress())
        .await
        .expect("mark");
    assert_eq!(report.waiting_lists, 1);
    blocker.abort().await.expect("abort");

    switch.hook.rejecting.store(true, Ordering::SeqCst);
    let before = pack_bytes(&store).await;
    forget(&repo, &[]).await.expect("forget with no writes");
    let report = prune(&repo, &PruneOptions::default(), no_progress())
        .await
        .expect("sweep without writes");
    assert!(report.deleted_packs > 0, "{report:?}");
    assert_eq!(report.tombstones, 1, "the list stays as a tombstone");
    assert!(pack_bytes(&store).await < before);
    assert!(pull(&repo, &b).await.expect("b restores") == b_data);

    switch.hook.rejecting.store(false, Ordering::SeqCst);
    prune(&repo, &PruneOptions::default(), no_progress())
        .await
        .expect("clean up");
    assert!(load_gc_lists(&repo).await.expect("lists").is_empty());
    let report = check(&repo, &CheckOptions::default(), no_progress())
        .await
        .expect("check");
    assert!(report.is_ok(), "{:?}", report.errors);
}
