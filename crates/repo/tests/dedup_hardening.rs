//! What killed or failed writers leave, and damage a restore must work around (hardening
//! issue 11, items 9-13): staging files of killed uploads, session markers of failed
//! backups, file names that are not UTF-8, restores through damaged blobs, and backups that
//! must not reuse refs into packs no index commits.

use cairn_repo::testing::noise;
use std::collections::HashSet;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path as FsPath;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use cairn_repo::config::Secret;
use cairn_repo::dedup::blobref::BlobRef;
use cairn_repo::dedup::gc::{PruneOptions, prune};
use cairn_repo::dedup::index::IndexView;
use cairn_repo::dedup::pack::pack_key;
use cairn_repo::dedup::session::Session;
use cairn_repo::dedup::{
    BackupOptions, CheckOptions, Id, InitOptions, NodeType, ParentChoice, RepoOptions, Repository,
    RestoreOptions, Snapshot, backup_stream, backup_tree, check, restore_tree,
    restore_tree_outcome,
};
use cairn_repo::progress::no_progress;
use cairn_repo::testing::hooked_store::{HookedStore, StoreHook};
use cairn_repo::{ErrorKind, StorageConfig, Store};
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{GetOptions, ObjectStoreExt, PutPayload};

fn options() -> InitOptions {
    cairn_repo::testing::small_pack_options()
}

async fn memory_repo() -> (Store, Repository) {
    let store = Store::from_object_store(Arc::new(InMemory::new()));
    let repo = Repository::init(store.clone(), &Secret::new("pw"), options())
        .await
        .expect("init");
    (store, repo)
}

/// A repository in `dir`, opened the way `cairnctl --repo DIR` opens it (a local store).
async fn local_repo(dir: &FsPath) -> (Store, Repository) {
    std::fs::create_dir_all(dir).expect("mkdir");
    let store = Store::open(&StorageConfig::local(dir)).expect("store");
    let repo = Repository::init(store.clone(), &Secret::new("pw"), options())
        .await
        .expect("init");
    (store, repo)
}

async fn sessions(store: &Store) -> Vec<String> {
    store
        .list_all("sessions")
        .await
        .expect("list")
        .into_iter()
        .map(|o| o.key)
        .collect()
}

fn no_owners() -> RestoreOptions {
    RestoreOptions {
        owners: Some(false),
        ..Default::default()
    }
}

fn set_mtime(path: &FsPath, ago: Duration) {
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .expect("open");
    file.set_modified(SystemTime::now() - ago).expect("mtime");
}

// ---- item 9: staging files of killed uploads ---------------------------------------------

/// Leaves a staging file exactly as a writer killed during an upload does: `object_store`'s
/// own multipart upload to `key`, one part written, never completed (a SIGKILL runs no
/// destructor; `forget` does the same here).
async fn killed_upload(dir: &FsPath, key: &str, len: usize) {
    let disk = object_store::local::LocalFileSystem::new_with_prefix(dir).expect("local");
    let mut upload = disk
        .put_multipart(&Path::from(key))
        .await
        .expect("multipart");
    upload
        .put_part(PutPayload::from(noise(len, 9)))
        .await
        .expect("part");
    std::mem::forget(upload);
}

#[tokio::test]
async fn staging_files_of_killed_uploads_are_reported_by_check_and_removed_by_prune_once_stale() {
    let work = tempfile::tempdir().expect("tempdir");
    let dir = work.path().join("repo");
    let (store, repo) = local_repo(&dir).await;
    backup_stream(
        &repo,
        "/db",
        std::io::Cursor::new(noise(1 << 20, 1)),
        &BackupOptions::default(),
        None,
        no_progress(),
    )
    .await
    .expect("backup");
    let old_pack = format!("data/ab/{}", "ab".repeat(32));
    let new_pack = format!("data/cd/{}", "cd".repeat(32));
    killed_upload(&dir, &old_pack, 3 << 20).await;
    killed_upload(&dir, &new_pack, 1 << 20).await;
    let old_file = dir.join(format!("{old_pack}#1"));
    let new_file = dir.join(format!("{new_pack}#1"));
    assert!(
        old_file.exists() && new_file.exists(),
        "the staging files exist"
    );
    set_mtime(&old_file, Duration::from_secs(16 * 60));
    // Listings never show them: that is why they leaked.
    let listed: Vec<String> = store
        .list_all("data")
        .await
        .expect("list")
        .into_iter()
        .map(|o| o.key)
        .collect();
    assert!(!listed.iter().any(|k| k.contains('#')), "{listed:?}");

    let report = check(&repo, &CheckOptions::default(), no_progress())
        .await
        .expect("check");
    for key in [&old_pack, &new_pack] {
        assert!(
            report
                .warnings
                .iter()
                .any(|w| w.contains(&format!("staging file {key}#1"))),
            "check names {key}#1: {:?}",
            report.warnings
        );
    }

    let dry = prune(&repo, &PruneOptions { dry_run: true }, no_progress())
        .await
        .expect("dry run");
    assert_eq!(dry.staging_files, 1, "{dry:?}");
    assert!(old_file.exists(), "a dry run deletes nothing");

    let report = prune(&repo, &PruneOptions::default(), no_progress())
        .await
        .expect("prune");
    assert_eq!(report.staging_files, 1, "{report:?}");
    assert_eq!(report.staging_bytes, 3 << 20);
    assert!(!old_file.exists(), "the stale staging file is gone");
    assert!(
        new_file.exists(),
        "a recent one may be an upload in progress"
    );
}

// ---- item 10: session markers of failed backups ------------------------------------------

#[tokio::test]
async fn a_backup_that_fails_with_an_ordinary_error_ends_its_session() {
    let (store, repo) = memory_repo().await;
    let failing = tokio_util::io::StreamReader::new(futures::stream::iter(vec![
        Ok(Bytes::from(noise(2 << 20, 3))),
        Err(std::io::Error::other("the database dump failed")),
    ]));
    let err = backup_stream(
        &repo,
        "/db",
        failing,
        &BackupOptions::default(),
        None,
        no_progress(),
    )
    .await
    .expect_err("the source fails");
    assert_eq!(err.kind(), ErrorKind::Io, "{err:?}");
    assert!(
        sessions(&store).await.is_empty(),
        "no marker is left: {:?}",
        sessions(&store).await
    );
    let report = check(&repo, &CheckOptions::default(), no_progress())
        .await
        .expect("check");
    assert!(
        !report.warnings.iter().any(|w| w.contains("session")),
        "{:?}",
        report.warnings
    );
}

#[tokio::test]
async fn prune_removes_the_markers_of_dead_sessions_only() {
    let (store, repo) = memory_repo().await;
    let repo = repo.with_options(RepoOptions {
        session_timeout: Duration::from_secs(2),
        heartbeat: Duration::from_secs(3600),
        ..RepoOptions::default()
    });
    // A writer that died without ending its session (killed: no destructor runs).
    let dead = Session::start(
        repo.store(),
        repo.keys().clone(),
        Duration::from_secs(3600),
        Duration::from_secs(2),
    )
    .await
    .expect("session");
    let dead_id = dead.id();
    std::mem::forget(dead);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let live = Session::start(
        repo.store(),
        repo.keys().clone(),
        Duration::from_secs(3600),
        Duration::from_secs(2),
    )
    .await
    .expect("session");
    let report = check(&repo, &CheckOptions::default(), no_progress())
        .await
        .expect("check");
    assert!(
        report
            .warnings
            .iter()
            .any(|w| w.contains(&format!("session {} is dead", dead_id.short()))),
        "{:?}",
        report.warnings
    );
    let report = prune(&repo, &PruneOptions::default(), no_progress())
        .await
        .expect("prune");
    assert_eq!(report.dead_sessions, vec![dead_id]);
    assert_eq!(
        sessions(&store).await,
        vec![format!("sessions/{}", live.id())],
        "the dead marker is gone, the live one stays"
    );
    live.end().await.expect("end");
}

// ---- item 11: names that are not UTF-8 ---------------------------------------------------

#[tokio::test]
async fn names_that_are_not_utf8_are_backed_up_and_restored_byte_for_byte() {
    let (store, repo) = memory_repo().await;
    let work = tempfile::tempdir().expect("tempdir");
    let src = work.path().join("src");
    std::fs::create_dir_all(&src).expect("mkdir");
    let latin1 = OsStr::from_bytes(b"caf\xe9.dat");
    let dir = OsStr::from_bytes(b"d\xff\xfe");
    std::fs::write(src.join(latin1), b"latin-1 name").expect("write");
    std::fs::create_dir(src.join(dir)).expect("mkdir");
    std::fs::write(src.join(dir).join("inner"), noise(100_000, 4)).expect("write");
    std::fs::write(src.join("plain.txt"), b"utf-8 name").expect("write");
    std::os::unix::fs::symlink(OsStr::from_bytes(b"caf\xe9.dat"), src.join("link"))
        .expect("symlink");
    std::fs::hard_link(src.join(latin1), src.join(OsStr::from_bytes(b"h\x80"))).expect("link");

    let first = backup_tree(&repo, &src, &BackupOptions::default(), no_progress())
        .await
        .expect("backup with names that are not UTF-8");
    assert!(sessions(&store).await.is_empty());
    // And again with the first as parent: unchanged files keep their content lists.
    let second = backup_tree(&repo, &src, &BackupOptions::default(), no_progress())
        .await
        .expect("incremental backup");
    assert_eq!(second.parent, Some(first.id));
    assert_eq!(second.summary.unchanged_files, 3, "{:?}", second.summary);

    let out = work.path().join("out");
    restore_tree(&repo, &second, &out, &no_owners(), no_progress())
        .await
        .expect("restore");
    let diff = std::process::Command::new("diff")
        .args(["-r", "--no-dereference"])
        .arg(&src)
        .arg(&out)
        .output()
        .expect("diff");
    assert!(
        diff.status.success(),
        "{}",
        String::from_utf8_lossy(&diff.stdout)
    );
    assert_eq!(
        std::fs::read_link(out.join("link")).expect("link"),
        FsPath::new(OsStr::from_bytes(b"caf\xe9.dat"))
    );
    let a = std::fs::metadata(out.join(latin1)).expect("meta");
    let b = std::fs::metadata(out.join(OsStr::from_bytes(b"h\x80"))).expect("meta");
    assert_eq!(
        std::os::unix::fs::MetadataExt::ino(&a),
        std::os::unix::fs::MetadataExt::ino(&b),
        "the hard link is restored as one"
    );
    // --include with a name that is not UTF-8 is not possible from a &str; a UTF-8 one is.
    let part = work.path().join("part");
    restore_tree(
        &repo,
        &second,
        &part,
        &RestoreOptions {
            include: Some("plain.txt".into()),
            owners: Some(false),
        },
        no_progress(),
    )
    .await
    .expect("include");
    assert_eq!(
        std::fs::read(part.join("plain.txt")).expect("read"),
        b"utf-8 name"
    );
}

#[test]
fn trees_written_with_names_as_strings_still_read() {
    // The version 1 encoding of a node (no `name_bytes`), as older repositories hold it.
    let old = br#"{"nodes":[{"name":"base","type":"file","mode":33188,"size":3,"target":"t","link":"a/b"}]}"#;
    let tree: cairn_repo::dedup::Tree = serde_json::from_slice(old).expect("old tree");
    assert_eq!(tree.nodes[0].raw_name(), b"base");
    assert_eq!(tree.nodes[0].raw_target(), Some(&b"t"[..]));
    assert_eq!(tree.nodes[0].raw_link(), Some(&b"a/b"[..]));
    // A UTF-8 name is written exactly as before: no new field.
    let node = cairn_repo::dedup::Node::with_raw_name(b"base", NodeType::File);
    let json = serde_json::to_string(&node).expect("json");
    assert!(!json.contains("name_bytes"), "{json}");
    // Bytes that are not UTF-8: a lossy `name` for display and the bytes in hex.
    let node = cairn_repo::dedup::Node::with_raw_name(b"caf\xe9", NodeType::File);
    let json = serde_json::to_value(&node).expect("json");
    assert_eq!(json["name_bytes"], "636166e9");
    assert_eq!(json["name"], "caf\u{fffd}");
}

// ---- item 12: restores through damage ----------------------------------------------------

/// Flips a byte inside the blob `r` names.
async fn damage_blob(store: &Store, r: &BlobRef) {
    let key = pack_key(&r.pack);
    let mut bytes = store.get(&key).await.expect("get").to_vec();
    bytes[r.offset as usize + 1] ^= 0xFF;
    store.put(&key, bytes.into()).await.expect("put");
}

#[tokio::test]
async fn a_restore_goes_on_past_damaged_blobs_and_reports_every_damaged_path() {
    let (store, repo) = memory_repo().await;
    let work = tempfile::tempdir().expect("tempdir");
    let src = work.path().join("src");
    std::fs::create_dir_all(src.join("sub")).expect("mkdir");
    std::fs::create_dir_all(src.join("gone")).expect("mkdir");
    for i in 0..40 {
        std::fs::write(
            src.join(format!("f{i:02}")),
            noise(20_000 + i * 100, i as u64),
        )
        .expect("write");
    }
    std::fs::write(src.join("big"), noise(3 << 20, 77)).expect("write");
    std::fs::write(src.join("sub/x"), b"in a subdirectory").expect("write");
    std::fs::write(src.join("gone/y"), b"under a damaged tree").expect("write");
    std::fs::hard_link(src.join("big"), src.join("big-link")).expect("link");
    let snapshot = backup_tree(&repo, &src, &BackupOptions::default(), no_progress())
        .await
        .expect("backup");
    let root = repo
        .read_tree(&snapshot.root.subtree.expect("root tree"))
        .await
        .expect("tree");
    let node = |name: &str| {
        root.nodes
            .iter()
            .find(|n| n.name == name)
            .cloned()
            .expect("node")
    };
    // A damaged content list (the issue's case), a damaged data blob in the middle of a
    // large file, and a damaged directory listing.
    damage_blob(&store, &node("f07").content[0]).await;
    let big_refs = repo
        .read_content_list(&node("big").content[0])
        .await
        .expect("list");
    damage_blob(&store, &big_refs[big_refs.len() / 2]).await;
    damage_blob(&store, &node("gone").subtree.expect("tree")).await;

    let out = work.path().join("out");
    let outcome = restore_tree_outcome(&repo, &snapshot, &out, &no_owners(), no_progress())
        .await
        .expect("the restore goes on");
    let mut damaged: Vec<String> = outcome
        .damaged
        .iter()
        .map(|d| {
            d.path
                .strip_prefix(&out)
                .expect("under the target")
                .display()
                .to_string()
        })
        .collect();
    damaged.sort();
    assert_eq!(
        damaged,
        ["big", "big-link", "f07", "gone"],
        "{:#?}",
        outcome.damaged
    );
    // Everything intact is restored byte for byte.
    for i in (0..40).filter(|i| *i != 7) {
        let name = format!("f{i:02}");
        assert!(
            std::fs::read(out.join(&name)).expect("intact file")
                == std::fs::read(src.join(&name)).expect("source"),
            "{name} is restored byte for byte"
        );
    }
    assert_eq!(
        std::fs::read(out.join("sub/x")).expect("read"),
        b"in a subdirectory"
    );
    // No damaged file is left under its name; the large one keeps its intact parts aside.
    assert!(!out.join("f07").exists());
    assert!(!out.join("big").exists());
    assert!(!out.join("big-link").exists());
    let aside = out.join("big.cairn-damaged");
    let kept = std::fs::read(&aside).expect("kept aside");
    let original = std::fs::read(src.join("big")).expect("source");
    assert_eq!(kept.len(), original.len());
    assert!(kept[..4096] == original[..4096], "intact parts are there");
    assert!(
        outcome
            .damaged
            .iter()
            .any(|d| d.kept_as.as_deref() == Some(aside.as_path())),
        "{:#?}",
        outcome.damaged
    );
    // The plain API fails, naming the damage, after restoring the rest.
    let err = restore_tree(
        &repo,
        &snapshot,
        &work.path().join("again"),
        &no_owners(),
        no_progress(),
    )
    .await
    .expect_err("damage is an error");
    assert_eq!(err.kind(), ErrorKind::Corrupt);
    assert!(
        err.to_string()
            .contains("4 paths could not be restored intact"),
        "{err}"
    );
    assert!(work.path().join("again/f00").exists());
}

// ---- item 13: W3 for unchanged files, marker before the parent ---------------------------

/// Every pack a snapshot references: trees, content lists and chunks.
async fn snapshot_packs(repo: &Repository, snapshot: &Snapshot) -> HashSet<Id> {
    let mut packs = HashSet::new();
    let mut trees = vec![snapshot.root.subtree.expect("tree")];
    while let Some(t) = trees.pop() {
        packs.insert(t.pack);
        for node in repo.read_tree(&t).await.expect("tree").nodes {
            trees.extend(node.subtree);
            for list in &node.content {
                packs.insert(list.pack);
                for r in repo.read_content_list(list).await.expect("list") {
                    if !r.is_zero_run() {
                        packs.insert(r.pack);
                    }
                }
            }
        }
    }
    packs
}

#[tokio::test]
async fn an_unchanged_file_does_not_reuse_refs_into_packs_no_index_commits() {
    let (store, repo) = memory_repo().await;
    let work = tempfile::tempdir().expect("tempdir");
    let src = work.path().join("src");
    std::fs::create_dir_all(&src).expect("mkdir");
    std::fs::write(src.join("table"), noise(2 << 20, 5)).expect("write");
    std::fs::write(src.join("small"), noise(30_000, 6)).expect("write");
    let parent = backup_tree(&repo, &src, &BackupOptions::default(), no_progress())
        .await
        .expect("parent");
    // The parent's packs are committed by no index any more (a lost or unreadable index).
    for info in store.list_all("index").await.expect("list") {
        store.delete(&info.key).await.expect("delete");
    }
    let child = backup_tree(&repo, &src, &BackupOptions::default(), no_progress())
        .await
        .expect("child");
    assert_eq!(child.parent, Some(parent.id));
    let view = IndexView::load(repo.store(), repo.keys())
        .await
        .expect("indexes");
    let uncommitted: Vec<String> = snapshot_packs(&repo, &child)
        .await
        .into_iter()
        .filter(|p| !view.packs.contains_key(p))
        .map(|p| pack_key(&p))
        .collect();
    assert!(
        uncommitted.is_empty(),
        "the new snapshot references packs no index commits: {uncommitted:?}"
    );
    assert_eq!(child.summary.unchanged_files, 0, "{:?}", child.summary);
    // With the indexes intact, unchanged files are still not read.
    let third = backup_tree(&repo, &src, &BackupOptions::default(), no_progress())
        .await
        .expect("third");
    assert_eq!(third.summary.unchanged_files, 2, "{:?}", third.summary);
}

/// Records the order of writes, reads and listings.
#[derive(Debug, Default)]
struct Recorder {
    log: Mutex<Vec<String>>,
}

impl Recorder {
    fn note(&self, what: &str, location: &str) {
        self.log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(format!("{what} {location}"));
    }
}

#[async_trait]
impl StoreHook for Recorder {
    async fn put(&self, location: &Path) -> object_store::Result<()> {
        self.note("put", location.as_ref());
        Ok(())
    }
    async fn get(&self, location: &Path, _options: &GetOptions) -> object_store::Result<()> {
        self.note("get", location.as_ref());
        Ok(())
    }
    fn list(&self, prefix: Option<&Path>) {
        self.note("list", prefix.map_or("", |p| p.as_ref()));
    }
}

#[tokio::test]
async fn a_backup_writes_its_session_marker_before_it_chooses_a_parent() {
    let recorder = Arc::new(HookedStore::new(Recorder::default()));
    let store = Store::from_object_store(recorder.clone());
    let repo = Repository::init(store, &Secret::new("pw"), options())
        .await
        .expect("init");
    let work = tempfile::tempdir().expect("tempdir");
    std::fs::write(work.path().join("f"), b"x").expect("write");
    let first = backup_tree(&repo, work.path(), &BackupOptions::default(), no_progress())
        .await
        .expect("first");
    for (parent, what) in [
        (ParentChoice::Auto, "the newest snapshot"),
        (ParentChoice::Snapshot(first.id), "a named parent"),
    ] {
        recorder.hook.log.lock().expect("log").clear();
        backup_tree(
            &repo,
            work.path(),
            &BackupOptions {
                parent,
                ..Default::default()
            },
            no_progress(),
        )
        .await
        .expect("second");
        let log = recorder.hook.log.lock().expect("log").clone();
        let marker = log
            .iter()
            .position(|l| l.starts_with("put sessions/"))
            .expect("a marker");
        let snapshots = log
            .iter()
            .position(|l| l.contains(" snapshots"))
            .expect("snapshots read");
        assert!(
            marker < snapshots,
            "{what}: the marker must come before reading snapshots: {log:#?}"
        );
    }
}
