//! A damage campaign against a repository on the local file system: every object kind
//! (config, keys, index, snapshots, data packs, metadata packs, session markers, condemned
//! lists) gets each damage (flip a byte, truncate, delete, swap two objects, stray files) and
//! killed writers leave their debris. For every case, `check` reports the damage naming the
//! object; `repair index` repairs what it can (through the same function `cairnctl repo repair
//! index` calls) and the commands refuse the rest with an error naming the object; no restore
//! ever returns success with wrong bytes.
//!
//! The first tests are the regressions of hardening issue 11 items 7, 8, 14 and 19.

use cairn_repo::testing::noise;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use cairn_repo::config::Secret;
use cairn_repo::dedup::chunk::Mode;
use cairn_repo::dedup::gc::{PruneOptions, forget, prune};
use cairn_repo::dedup::pack::pack_key;
use cairn_repo::dedup::writer::Writer;
use cairn_repo::dedup::{
    BackupOptions, CheckOptions, CheckReport, InitOptions, ParentChoice, RepairIndexOptions,
    Repository, RestoreOptions, Snapshot, backup_stream, backup_tree, check, repair_index,
    restore_stream, restore_tree,
};
use cairn_repo::progress::{Progress, no_progress};
use cairn_repo::{ErrorKind, KdfParams, Store};

fn disk_store(dir: &Path) -> Store {
    std::fs::create_dir_all(dir).expect("mkdir");
    Store::from_object_store(Arc::new(
        object_store::local::LocalFileSystem::new_with_prefix(dir).expect("local store"),
    ))
}

async fn open(dir: &Path, password: &str) -> cairn_repo::Result<Repository> {
    Repository::open(disk_store(dir), &Secret::new(password)).await
}

/// The source tree the repository backs up.
fn make_source(dir: &Path) {
    std::fs::create_dir_all(dir.join("sub")).expect("mkdir");
    std::fs::write(dir.join("big"), noise(3 << 19, 1)).expect("write");
    for i in 0..20u64 {
        std::fs::write(
            dir.join(format!("sub/f{i}")),
            noise(3000 + i as usize * 97, i + 7),
        )
        .expect("write");
    }
}

/// A repository in `dir/repo` with two keys ("pw" and "second"), a tree snapshot of
/// `dir/src` and a stream snapshot.
async fn build(dir: &Path) -> Repository {
    make_source(&dir.join("src"));
    let options = cairn_repo::testing::small_pack_options();
    let repo = Repository::init(disk_store(&dir.join("repo")), &Secret::new("pw"), options)
        .await
        .expect("init");
    repo.add_key(&Secret::new("second"), KdfParams::INSECURE_FAST, "second")
        .await
        .expect("add key");
    backup_tree(
        &repo,
        &dir.join("src"),
        &BackupOptions::default(),
        no_progress(),
    )
    .await
    .expect("tree backup");
    backup_stream(
        &repo,
        "/db/dump",
        std::io::Cursor::new(noise(3 << 19, 99)),
        &BackupOptions::default(),
        None,
        no_progress(),
    )
    .await
    .expect("stream backup");
    repo
}

async fn check_all(repo: &Repository) -> CheckReport {
    check(
        repo,
        &CheckOptions {
            read_data: true,
            ..Default::default()
        },
        no_progress(),
    )
    .await
    .expect("check runs")
}

/// Restores every snapshot that opens; returns the errors. Panics if a restore succeeds with
/// bytes that differ from the source.
async fn restore_everything(repo: &Repository, work: &Path) -> Vec<String> {
    let mut failures = Vec::new();
    let (snapshots, damaged) = repo.list_snapshots_lenient().await.expect("listing");
    failures.extend(damaged.iter().map(|e| e.to_string()));
    for (n, s) in snapshots.iter().enumerate() {
        if s.root.subtree.is_some() {
            let target = work.join(format!("restore-{n}"));
            let _ = std::fs::remove_dir_all(&target);
            match restore_tree(
                repo,
                s,
                &target,
                &RestoreOptions {
                    owners: Some(false),
                    ..Default::default()
                },
                no_progress(),
            )
            .await
            {
                Ok(_) => assert_same_tree(&work.join("src"), &target),
                Err(e) => failures.push(e.to_string()),
            }
        } else {
            let (mut reader, writer) = tokio::io::duplex(1 << 16);
            let reading = tokio::spawn(async move {
                let mut out = Vec::new();
                let _ = tokio::io::AsyncReadExt::read_to_end(&mut reader, &mut out).await;
                out
            });
            let result = restore_stream(repo, &s.root, writer, no_progress()).await;
            let out = reading.await.expect("join");
            let expected = if s.root.name == "/db/dump" {
                noise(3 << 19, 99)
            } else {
                noise(1 << 20, 777)
            };
            match result {
                Ok(_) => assert!(
                    out == expected,
                    "a stream restore of {} succeeded with wrong bytes",
                    s.root.name
                ),
                Err(e) => failures.push(e.to_string()),
            }
        }
    }
    failures
}

fn assert_same_tree(a: &Path, b: &Path) {
    let out = std::process::Command::new("diff")
        .arg("-r")
        .arg(a)
        .arg(b)
        .output()
        .expect("diff runs");
    assert!(
        out.status.success(),
        "a tree restore succeeded with wrong content: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

fn mentions(report: &CheckReport, what: &str) -> bool {
    report
        .errors
        .iter()
        .chain(&report.warnings)
        .any(|e| e.contains(what))
}

fn repairs(report: &CheckReport) -> Vec<String> {
    report.repairs.iter().map(|r| r.command.clone()).collect()
}

fn objects(repo_dir: &Path, dir: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![repo_dir.join(dir)];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            if e.path().is_dir() {
                stack.push(e.path());
            } else {
                let rel = e.path().strip_prefix(repo_dir).expect("rel").to_path_buf();
                out.push(rel.to_string_lossy().into_owned());
            }
        }
    }
    out.sort();
    out
}

// ------------------------------------------------------------------------------------------
// Regressions of issue 11.

/// Item 7: a damaged index no longer stops backups; they skip it, say so, and store the data
/// of its packs again instead of referencing it; check names `repair index`, which rebuilds it.
#[tokio::test]
async fn item7_backups_skip_a_damaged_index_and_repair_index_rebuilds_it() {
    let work = tempfile::tempdir().expect("tempdir");
    let repo = build(work.path()).await;
    let repo_dir = work.path().join("repo");
    let index = objects(&repo_dir, "index")[0].clone();
    let path = repo_dir.join(&index);
    let mut bytes = std::fs::read(&path).expect("read");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    std::fs::write(&path, bytes).expect("write");

    // The backup succeeds, warns naming the index, and reuses nothing from it.
    #[derive(Default)]
    struct Warnings(std::sync::Mutex<Vec<String>>);
    impl Progress for Warnings {
        fn add(&self, _bytes: u64) {}
        fn warn(&self, message: &str) {
            self.0.lock().expect("lock").push(message.to_string());
        }
    }
    let warnings = Arc::new(Warnings::default());
    let again = backup_tree(
        &repo,
        &work.path().join("src"),
        &BackupOptions {
            parent: ParentChoice::None,
            ..Default::default()
        },
        warnings.clone(),
    )
    .await
    .expect("a backup after index damage succeeds");
    let said = warnings.0.lock().expect("lock").clone();
    assert!(
        said.iter()
            .any(|w| w.contains(&index) && w.contains("repair index")),
        "{said:?}"
    );
    let report = check_all(&repo).await;
    assert!(mentions(&report, &index), "{report:?}");
    assert!(
        repairs(&report).contains(&"cairnctl repo repair index".to_string()),
        "{report:?}"
    );
    // Every snapshot, including the new one, restores byte for byte.
    assert!(restore_everything(&repo, work.path()).await.is_empty());
    assert!(again.summary.new_chunks > 0, "{:?}", again.summary);

    let fixed = repair_index(&repo, &RepairIndexOptions::default(), no_progress())
        .await
        .expect("repair");
    assert!(fixed.new_index.is_some(), "{fixed:?}");
    assert_eq!(fixed.unreadable_indexes.len(), 1, "{fixed:?}");
    let report = check_all(&repo).await;
    assert!(report.is_ok(), "{report:?}");
    assert!(!mentions(&report, "not committed"), "{report:?}");
    // A second run finds nothing to do.
    let again = repair_index(&repo, &RepairIndexOptions::default(), no_progress())
        .await
        .expect("repair");
    assert!(!again.needed, "{again:?}");
}

/// Item 8: stray files under keys/ and snapshots/ stop nothing; check names them.
#[tokio::test]
async fn item8_stray_files_are_skipped_and_reported() {
    let work = tempfile::tempdir().expect("tempdir");
    let _ = build(work.path()).await;
    let repo_dir = work.path().join("repo");
    std::fs::write(repo_dir.join("keys/readme.txt"), "not a key").expect("write");
    std::fs::write(repo_dir.join("snapshots/readme.txt"), "notes").expect("write");
    let repo = open(&repo_dir, "pw")
        .await
        .expect("a stray key file does not block opening");
    assert_eq!(repo.list_snapshots().await.expect("snapshots").len(), 2);
    repo.find_snapshot("latest").await.expect("latest");
    let report = check_all(&repo).await;
    assert!(report.is_ok(), "{report:?}");
    assert!(mentions(&report, "keys/readme.txt"), "{report:?}");
    assert!(mentions(&report, "snapshots/readme.txt"), "{report:?}");
    backup_stream(
        &repo,
        "/db/dump",
        std::io::Cursor::new(noise(1 << 20, 5)),
        &BackupOptions::default(),
        None,
        no_progress(),
    )
    .await
    .expect("backup");
    prune(&repo, &PruneOptions::default(), no_progress())
        .await
        .expect("prune");
    // A damaged key file next to a good one does not block either.
    // The key "pw" opened: damage it; "second" still opens.
    let key = format!("keys/{}", repo.key_id());
    std::fs::write(repo_dir.join(&key), b"{ damaged").expect("write");
    let repo = open(&repo_dir, "second")
        .await
        .expect("a damaged key file does not hide the good one");
    assert!(mentions(&check_all(&repo).await, &key));
}

/// Item 14: a damaged config, or a key file of another repository, is not "wrong password".
#[tokio::test]
async fn item14_a_damaged_config_or_a_foreign_key_is_named() {
    let work = tempfile::tempdir().expect("tempdir");
    let _ = build(work.path()).await;
    let repo_dir = work.path().join("repo");
    let config = repo_dir.join("config");
    let original = std::fs::read(&config).expect("read");
    let mut bytes = original.clone();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    std::fs::write(&config, &bytes).expect("write");
    let err = open(&repo_dir, "pw").await.expect_err("damaged config");
    let text = err.to_string();
    assert!(text.contains("config"), "{text}");
    assert!(!text.contains("wrong password"), "{text}");
    assert_eq!(err.kind(), ErrorKind::Corrupt);
    std::fs::write(&config, &original).expect("restore config");

    // Only a key file copied from another repository (same password) is left.
    let other = work.path().join("other");
    Repository::init(
        disk_store(&other),
        &Secret::new("pw"),
        InitOptions {
            kdf: KdfParams::INSECURE_FAST,
            ..InitOptions::default()
        },
    )
    .await
    .expect("init other");
    for key in objects(&repo_dir, "keys") {
        std::fs::remove_file(repo_dir.join(key)).expect("rm");
    }
    let foreign = objects(&other, "keys")[0].clone();
    std::fs::copy(other.join(&foreign), repo_dir.join(&foreign)).expect("copy");
    let err = open(&repo_dir, "pw").await.expect_err("foreign key");
    let text = err.to_string();
    assert!(text.contains(&foreign), "{text}");
    assert!(text.contains("another repository"), "{text}");
    assert!(!text.contains("wrong password"), "{text}");
}

/// Item 19: a damaged pack header gives one check line for the pack, not one per blob.
#[tokio::test]
async fn item19_a_damaged_pack_header_is_one_line() {
    let work = tempfile::tempdir().expect("tempdir");
    let repo = build(work.path()).await;
    let repo_dir = work.path().join("repo");
    let snapshot = repo
        .list_snapshots()
        .await
        .expect("list")
        .into_iter()
        .find(|s| s.root.subtree.is_none())
        .expect("stream snapshot");
    let refs = repo
        .read_content_list(&snapshot.root.content[0])
        .await
        .expect("list");
    let key = pack_key(&refs[refs.len() / 2].pack);
    let blobs = refs.iter().filter(|r| pack_key(&r.pack) == key).count();
    assert!(blobs > 10, "the pack holds {blobs} blobs of the stream");
    let path = repo_dir.join(&key);
    let mut bytes = std::fs::read(&path).expect("read");
    let at = bytes.len() - 20; // inside the sealed header
    bytes[at] ^= 0x01;
    std::fs::write(&path, bytes).expect("write");
    for read_data in [false, true] {
        let report = check(
            &repo,
            &CheckOptions {
                read_data,
                ..Default::default()
            },
            no_progress(),
        )
        .await
        .expect("check");
        let about: Vec<&String> = report.errors.iter().filter(|e| e.contains(&key)).collect();
        assert!(
            about.len() == 1,
            "{} lines about {key}: {about:#?}",
            about.len()
        );
        assert!(about[0].contains(&format!("{blobs} refs")), "{about:?}");
    }
    let report = check(&repo, &CheckOptions::default(), no_progress())
        .await
        .expect("check");
    let about: Vec<&String> = report.errors.iter().filter(|e| e.contains(&key)).collect();
    assert!(
        about
            .iter()
            .any(|e| e.contains("header failed authentication")),
        "{about:?}"
    );
}

// ------------------------------------------------------------------------------------------
// The campaign.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Damage {
    Flip,
    Truncate,
    Delete,
    Swap,
    Stray,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Config,
    Key,
    Index,
    Snapshot,
    DataPack,
    MetadataPack,
    Session,
    GcList,
}

/// What a case ended as.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    /// `repair index` fixed it: check is clean afterwards.
    Repaired,
    /// The commands refuse, naming the object; check keeps reporting it with a repair hint.
    Refused,
    /// Refused until the command check names ran (`key remove`, `forget`); clean after it.
    RepairedBy(&'static str),
    /// Not damage (e.g. two key files swapped: key files are not bound to their names).
    Harmless,
}

fn flip(path: &Path, at: usize) {
    let mut bytes = std::fs::read(path).expect("read");
    let at = at.min(bytes.len() - 1);
    bytes[at] ^= 0x01;
    std::fs::write(path, bytes).expect("write");
}

fn truncate(path: &Path) {
    let bytes = std::fs::read(path).expect("read");
    std::fs::write(path, &bytes[..bytes.len() / 2]).expect("write");
}

fn swap(a: &Path, b: &Path) {
    let tmp = a.with_extension("swap");
    std::fs::rename(a, &tmp).expect("rename");
    std::fs::rename(b, a).expect("rename");
    std::fs::rename(&tmp, b).expect("rename");
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read dir").flatten() {
        let target = to.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).expect("copy");
        }
    }
}

/// Objects of a kind in a pristine copy; at least two where a swap needs them.
async fn targets(repo: &Repository, repo_dir: &Path, kind: Kind) -> Vec<String> {
    match kind {
        Kind::Config => vec!["config".into()],
        Kind::Key => objects(repo_dir, "keys"),
        Kind::Index => objects(repo_dir, "index"),
        Kind::Snapshot => objects(repo_dir, "snapshots"),
        Kind::Session => objects(repo_dir, "sessions"),
        Kind::GcList => objects(repo_dir, "gc"),
        Kind::DataPack | Kind::MetadataPack => {
            // Data packs hold the tree's big file; metadata packs its tree.
            let snapshots = repo.list_snapshots().await.expect("list");
            let tree = snapshots
                .iter()
                .find(|s| s.root.subtree.is_some())
                .expect("tree");
            let meta = pack_key(&tree.root.subtree.expect("subtree").pack);
            let mut out: Vec<String> = objects(repo_dir, "data")
                .into_iter()
                .filter(|k| (*k == meta) == (kind == Kind::MetadataPack))
                .collect();
            if kind == Kind::MetadataPack {
                // The stream's content lists live in another metadata pack: a second one to swap.
                let stream = snapshots
                    .iter()
                    .find(|s| s.root.subtree.is_none())
                    .expect("stream");
                let other = pack_key(&stream.root.content[0].pack);
                if other != meta {
                    out.push(other);
                }
            } else {
                let meta_stream = snapshots
                    .iter()
                    .find(|s| s.root.subtree.is_none())
                    .map(|s| pack_key(&s.root.content[0].pack));
                out.retain(|k| Some(k) != meta_stream.as_ref());
            }
            out
        }
    }
}

/// Leaves a session marker and uncommitted packs, as a killed backup does.
async fn killed_writer(repo: &Repository, repo_dir: &Path) {
    let before = objects(repo_dir, "sessions");
    let writer = Writer::start(repo).await.expect("writer");
    let markers: Vec<(PathBuf, Vec<u8>)> = objects(repo_dir, "sessions")
        .into_iter()
        .filter(|name| !before.contains(name))
        .map(|name| {
            let path = repo_dir.join(&name);
            let bytes = std::fs::read(&path).expect("read marker");
            (path, bytes)
        })
        .collect();
    assert!(
        !markers.is_empty(),
        "a started writer writes its session marker"
    );
    writer
        .write_content(
            Box::new(std::io::Cursor::new(noise(3 << 20, 4242))),
            Mode::Stream,
            Vec::new(),
            no_progress(),
        )
        .await
        .expect("write");
    // Dropped without commit. A dropped writer removes its marker in the background; a killed
    // process cannot, so the marker is put back as the kill leaves it (no heartbeat).
    drop(writer);
    for _ in 0..500 {
        if markers.iter().all(|(path, _)| !path.exists()) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    for (path, bytes) in markers {
        std::fs::write(&path, bytes).expect("put the marker back");
    }
}

/// Writes a condemned list that a later damage can hit (prune with a live session leaves it).
async fn condemned_list(repo: &Repository) {
    let stray = repo.list_snapshots().await.expect("list");
    let victim = stray.last().expect("a snapshot").id;
    let _writer = Writer::start(repo)
        .await
        .expect("writer keeps the list waiting");
    forget(repo, &[victim]).await.expect("forget");
    let report = prune(repo, &PruneOptions::default(), no_progress())
        .await
        .expect("prune");
    assert!(report.list.is_some(), "{report:?}");
}

struct Case {
    kind: Kind,
    damage: Damage,
}

/// Runs one case on a fresh copy of the pristine repository; returns the outcome.
async fn run_case(pristine: &Path, work: &Path, case: &Case) -> Outcome {
    let dir = work.join(format!("{:?}-{:?}", case.kind, case.damage));
    copy_dir(pristine, &dir);
    let repo_dir = dir.join("repo");
    let repo = open(&repo_dir, "pw").await.expect("open pristine copy");
    match case.kind {
        Kind::Session => killed_writer(&repo, &repo_dir).await,
        Kind::GcList => condemned_list(&repo).await,
        _ => {}
    }
    let names = targets(&repo, &repo_dir, case.kind).await;
    assert!(!names.is_empty(), "{:?}: no objects", case.kind);
    let target = names[0].clone();
    let path = repo_dir.join(&target);
    // Where the damage is named: the object, or for swaps both objects.
    let mut named = vec![target.clone()];
    match case.damage {
        Damage::Flip => {
            let len = std::fs::metadata(&path).expect("stat").len() as usize;
            // Key files are plain JSON: a flip in the middle of the wrapped key is just another
            // password's key, so hit the structure.
            flip(&path, if case.kind == Kind::Key { 0 } else { len / 2 });
        }
        Damage::Truncate => truncate(&path),
        Damage::Delete => std::fs::remove_file(&path).expect("delete"),
        Damage::Swap => {
            let other = match (case.kind, names.get(1)) {
                (_, Some(other)) => other.clone(),
                // One config: swap it with a snapshot.
                (Kind::Config, None) => objects(&repo_dir, "snapshots")[0].clone(),
                (kind, None) => panic!("{kind:?}: a swap needs two objects"),
            };
            swap(&path, &repo_dir.join(&other));
            named.push(other);
        }
        Damage::Stray => {
            let dir = match case.kind {
                Kind::Config => String::new(),
                Kind::Key => "keys".into(),
                Kind::Index => "index".into(),
                Kind::Snapshot => "snapshots".into(),
                Kind::DataPack | Kind::MetadataPack => {
                    target.rsplit_once('/').expect("data/xx/id").0.to_string()
                }
                Kind::Session => "sessions".into(),
                Kind::GcList => "gc".into(),
            };
            let stray = if dir.is_empty() {
                "readme.txt".to_string()
            } else {
                format!("{dir}/readme.txt")
            };
            std::fs::write(repo_dir.join(&stray), "someone's notes").expect("write");
            named = vec![stray];
        }
    }

    // Opening (with either password): refused only for config damage, and then naming config.
    let opened = match open(&repo_dir, "pw").await {
        Ok(repo) => Ok(repo),
        Err(_) => open(&repo_dir, "second").await,
    };
    let repo = match opened {
        Ok(repo) => repo,
        Err(e) => {
            assert_eq!(case.kind, Kind::Config, "{case:?}: open failed: {e}");
            let text = e.to_string();
            assert!(text.contains("config"), "{case:?}: {text}");
            assert!(!text.contains("wrong password"), "{case:?}: {text}");
            return Outcome::Refused;
        }
    };
    if case.kind == Kind::Config && case.damage != Damage::Stray {
        // The swapped-in snapshot is damage named by check; config opened only by chance never.
        panic!("{case:?}: a damaged config opened");
    }
    let report = check_all(&repo).await;
    let restored = restore_everything(&repo, &dir).await;

    let harmless = (case.kind == Kind::Key && case.damage == Damage::Swap)
        || (case.damage == Damage::Delete
            && matches!(
                case.kind,
                Kind::Key | Kind::Session | Kind::Snapshot | Kind::GcList
            ));
    if harmless {
        // Key files are not bound to their names. Deleting a key is `key remove`, deleting a
        // snapshot is `forget`, a deleted marker is a session that ended, a deleted condemned
        // list only delays reclaiming space (the next prune marks its packs again): the
        // repository is consistent, and check must not say otherwise.
        assert!(report.is_ok(), "{case:?}: {report:?}");
        assert!(restored.is_empty(), "{case:?}: {restored:?}");
        return Outcome::Harmless;
    }
    if case.kind == Kind::Index && case.damage == Damage::Delete {
        // The deleted index's name is gone; check names the packs nothing commits any more.
        assert!(
            mentions(&report, "not committed by any index"),
            "{case:?}: {report:#?}"
        );
        named.clear();
    }
    for name in &named {
        assert!(
            mentions(&report, name),
            "{case:?}: check does not name {name}: {report:#?}"
        );
    }
    if case.damage == Damage::Stray {
        assert!(
            report.is_ok(),
            "{case:?}: a stray file is no error: {report:?}"
        );
        assert!(restored.is_empty(), "{case:?}: {restored:?}");
        backup_after(&repo, case).await.expect("backup works");
        return Outcome::Harmless;
    }
    assert!(
        !report.is_ok() || case.kind == Kind::Session,
        "{case:?}: {report:?}"
    );
    assert!(
        !report.repairs.is_empty() || case.kind == Kind::Session,
        "{case:?}: check names no repair: {report:?}"
    );

    // Backups go on (skipping unreadable indexes) or refuse naming the object.
    if let Err(e) = backup_after(&repo, case).await {
        let text = e.to_string();
        assert!(
            named.iter().any(|n| text.contains(n.as_str())),
            "{case:?}: a backup refused without naming the object: {text}"
        );
    }

    // Repair what the index can repair, then see what is left.
    let fixed = repair_index(&repo, &RepairIndexOptions::default(), no_progress())
        .await
        .expect("repair index runs");
    let after = check_all(&repo).await;
    let restored_after = restore_everything(&repo, &dir).await;
    if after.is_ok() {
        assert!(
            restored_after.is_empty(),
            "{case:?}: check is clean but restores fail: {restored_after:?}"
        );
        backup_after(&repo, case)
            .await
            .expect("a backup after repair");
        return if fixed.needed {
            Outcome::Repaired
        } else {
            // A session marker's damage is a warning; nothing to repair.
            assert_eq!(case.kind, Kind::Session, "{case:?}: {after:?}");
            Outcome::Harmless
        };
    }
    // Not repairable by the index: check still names the object, says what to do, and the
    // restores that cannot be exact fail.
    assert!(
        named.iter().any(|n| mentions(&after, n)),
        "{case:?}: after repair, check lost the damage: {after:#?}"
    );
    assert!(!after.repairs.is_empty(), "{case:?}: {after:?}");
    // The commands check names do what they say.
    let hinted = |prefix: &str| after.repairs.iter().any(|r| r.command.starts_with(prefix));
    if case.kind == Kind::Key {
        assert!(hinted("cairnctl repo key remove"), "{case:?}: {after:?}");
        let id = target
            .rsplit('/')
            .next()
            .expect("id")
            .parse()
            .expect("key id");
        repo.remove_key(&id).await.expect("key remove");
        assert!(check_all(&repo).await.is_ok(), "{case:?}");
        return Outcome::RepairedBy("key remove");
    }
    if case.kind == Kind::Snapshot {
        assert!(hinted("cairnctl repo forget"), "{case:?}: {after:?}");
        for name in &named {
            let id = repo
                .resolve_snapshot_id(name.rsplit('/').next().expect("id"))
                .await
                .expect("a damaged snapshot resolves");
            forget(&repo, &[id]).await.expect("forget");
        }
        let clean = check_all(&repo).await;
        assert!(clean.is_ok(), "{case:?}: {clean:?}");
        return Outcome::RepairedBy("forget");
    }
    if matches!(case.kind, Kind::DataPack | Kind::MetadataPack) {
        assert!(
            hinted("cairnctl repo forget") || hinted("no command"),
            "{case:?}: {after:?}"
        );
        assert!(
            !restored_after.is_empty(),
            "{case:?}: every restore succeeded over a damaged pack"
        );
    }
    Outcome::Refused
}

async fn backup_after(repo: &Repository, case: &Case) -> cairn_repo::Result<Snapshot> {
    backup_stream(
        repo,
        &format!("/after/{:?}-{:?}", case.kind, case.damage),
        std::io::Cursor::new(noise(1 << 20, 777)),
        &BackupOptions::default(),
        None,
        no_progress(),
    )
    .await
}

impl std::fmt::Debug for Case {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}/{:?}", self.kind, self.damage)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damage_campaign() {
    let work = tempfile::tempdir().expect("tempdir");
    let pristine: PathBuf = work.path().join("pristine");
    let _ = build(&pristine).await;
    let kinds = [
        Kind::Config,
        Kind::Key,
        Kind::Index,
        Kind::Snapshot,
        Kind::DataPack,
        Kind::MetadataPack,
        Kind::Session,
        Kind::GcList,
    ];
    let damages = [
        Damage::Flip,
        Damage::Truncate,
        Damage::Delete,
        Damage::Swap,
        Damage::Stray,
    ];
    let mut table = Vec::new();
    for kind in kinds {
        for damage in damages {
            if damage == Damage::Swap && matches!(kind, Kind::Session | Kind::GcList) {
                // One marker and one list exist; the swap of sealed objects is covered by the
                // other kinds (names are bound into every sealed object alike).
                continue;
            }
            let case = Case { kind, damage };
            let outcome = run_case(&pristine, work.path(), &case).await;
            table.push(format!("{case:?}: {outcome:?}"));
        }
    }
    eprintln!("{}", table.join("\n"));
    // The index is the one kind `repair index` repairs, for every damage that hits it.
    for damage in ["Flip", "Truncate", "Delete", "Swap"] {
        assert!(
            table.contains(&format!("Index/{damage}: Repaired")),
            "{table:#?}"
        );
    }
}
