//! Plain repositories on memory and local stores: round trips through every codec, the
//! listing and removal semantics datasafed scripts rely on, and damage detection.

use std::sync::Arc;

use cairn_repo::backend::TransferOptions;
use cairn_repo::config::Secret;
use cairn_repo::plain::{ListOptions, SortBy};
use cairn_repo::progress::{Counter, no_progress};
use cairn_repo::{
    CipherKind, Compression, ErrorKind, KdfParams, PlainRepo, StorageConfig, Store, StreamKey,
};
use object_store::memory::InMemory;

fn key() -> StreamKey {
    StreamKey {
        passphrase: Secret::new("pass phrase"),
        cipher: CipherKind::Aes256Gcm,
        kdf: KdfParams::INSECURE_FAST,
        legacy_cfb: None,
    }
}

fn memory_store() -> Store {
    Store::from_object_store(Arc::new(InMemory::new())).with_options(TransferOptions {
        part_size: 5 << 20,
        range_size: 1 << 20,
        ..TransferOptions::default()
    })
}

fn data(len: usize) -> Vec<u8> {
    // Compressible but not trivial: a repeating text with a counter.
    let mut out = Vec::with_capacity(len);
    let mut i = 0u64;
    while out.len() < len {
        out.extend_from_slice(
            format!("row {i} of the table, value {} ;", i * 7919 % 1000).as_bytes(),
        );
        i += 1;
    }
    out.truncate(len);
    out
}

async fn put(repo: &PlainRepo, path: &str, bytes: Vec<u8>, compression: Option<Compression>) {
    repo.put(
        path,
        std::io::Cursor::new(bytes),
        compression,
        no_progress(),
    )
    .await
    .expect("put");
}

async fn get(
    repo: &PlainRepo,
    path: &str,
    decompression: Option<Compression>,
) -> cairn_repo::Result<Vec<u8>> {
    let (mut reader, writer) = tokio::io::duplex(1 << 16);
    let reading = tokio::spawn(async move {
        let mut out = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut reader, &mut out)
            .await
            .map(|_| out)
    });
    let result = repo.get(path, writer, decompression, no_progress()).await;
    let out = reading.await.expect("join").expect("read");
    result.map(|_| out)
}

#[tokio::test]
async fn every_codec_combination_round_trips_a_multipart_file() {
    let source = data(12 << 20);
    for encryption in [None, Some(key())] {
        for name in [None, Some("zstd-fastest"), Some("gzip"), Some("lz4")] {
            let repo = PlainRepo::new(memory_store(), encryption.clone());
            let compression = name.map(|n| Compression::parse(n).expect("name"));
            put(&repo, "/backup/db.tar", source.clone(), compression).await;
            let back = get(&repo, "backup/db.tar", compression).await.expect("get");
            assert!(
                back == source,
                "round trip failed for {name:?} encrypted={}",
                encryption.is_some()
            );
        }
    }
}

#[tokio::test]
async fn compressed_files_are_standard_frames_stored_under_the_exact_name() {
    let repo = PlainRepo::new(memory_store(), None);
    let source = data(100_000);
    put(
        &repo,
        "/b1.tar.zst",
        source.clone(),
        Some(Compression::parse("zstd-fastest").expect("zstd")),
    )
    .await;
    let stored = repo.store().get("b1.tar.zst").await.expect("raw object");
    assert!(stored.len() < source.len() / 3, "zstd should shrink text");
    assert_eq!(
        zstd::decode_all(&stored[..]).expect("a plain zstd frame"),
        source
    );
}

#[tokio::test]
async fn progress_counts_the_bytes_read() {
    let repo = PlainRepo::new(memory_store(), None);
    let counter = Counter::default();
    let summary = repo
        .put(
            "x",
            std::io::Cursor::new(data(3_000_000)),
            None,
            Arc::new(counter.clone()),
        )
        .await
        .expect("put");
    assert_eq!(summary.bytes_in, 3_000_000);
    assert_eq!(counter.done(), 3_000_000);
}

#[tokio::test]
async fn tampered_or_truncated_encrypted_files_fail_naming_the_object() {
    let store = memory_store();
    let repo = PlainRepo::new(store.clone(), Some(key()));
    put(&repo, "secret.bin", data(300_000), None).await;
    let mut raw = store.get("secret.bin").await.expect("raw").to_vec();

    raw[200_000] ^= 0x40;
    store
        .put("tampered.bin", raw.clone().into())
        .await
        .expect("put");
    let err = get(&repo, "tampered.bin", None)
        .await
        .expect_err("tampered");
    assert_eq!(err.kind(), ErrorKind::Crypto);
    assert!(err.to_string().contains("tampered.bin"), "{err}");

    raw[200_000] ^= 0x40;
    raw.truncate(48 + 2 * (65536 + 16));
    store.put("short.bin", raw.into()).await.expect("put");
    let err = get(&repo, "short.bin", None).await.expect_err("truncated");
    assert!(err.to_string().contains("truncated"), "{err}");

    let wrong = PlainRepo::new(
        store.clone(),
        Some(StreamKey {
            passphrase: Secret::new("nope"),
            ..key()
        }),
    );
    let err = get(&wrong, "secret.bin", None)
        .await
        .expect_err("wrong passphrase");
    assert!(err.to_string().contains("wrong passphrase"), "{err}");
}

#[tokio::test]
async fn pulling_with_the_wrong_decompression_is_a_corrupt_error() {
    let repo = PlainRepo::new(memory_store(), None);
    put(&repo, "plain.txt", b"not compressed at all".to_vec(), None).await;
    let err = get(
        &repo,
        "plain.txt",
        Some(Compression::parse("zstd").expect("zstd")),
    )
    .await
    .expect_err("not zstd");
    assert_eq!(err.kind(), ErrorKind::Corrupt);
    assert!(err.to_string().contains("plain.txt"), "{err}");
}

#[tokio::test]
async fn missing_files_are_not_found() {
    let repo = PlainRepo::new(memory_store(), None);
    let err = get(&repo, "nope.tar", None).await.expect_err("missing");
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert_eq!(err.to_string(), "nope.tar does not exist");
}

async fn local_repo() -> (tempfile::TempDir, PlainRepo) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&StorageConfig::local(dir.path())).expect("store");
    (dir, PlainRepo::new(store.sub("ns/cluster"), None))
}

#[tokio::test]
async fn listing_a_file_prints_the_path_as_given_which_kubeblocks_scripts_compare() {
    let (_dir, repo) = local_repo().await;
    put(&repo, "/b1.tar.zst", b"x".to_vec(), None).await;
    let entries = repo
        .list("b1.tar.zst", &ListOptions::default())
        .await
        .expect("list");
    let paths: Vec<&str> = entries.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(paths, ["b1.tar.zst"]);
    let missing = repo
        .list("b2.tar.zst", &ListOptions::default())
        .await
        .expect("list");
    assert!(missing.is_empty());
}

#[tokio::test]
async fn directory_listing_recursion_depth_and_stat() {
    let (dir, repo) = local_repo().await;
    put(&repo, "b1/data.tar", vec![1; 100], None).await;
    put(&repo, "b1/sub/wal.tar", vec![2; 50], None).await;
    put(&repo, "b1/kubeblocks-backup.json", vec![3; 7], None).await;
    repo.mkdir("b1/empty").await.expect("mkdir");
    assert!(dir.path().join("ns/cluster/b1/empty").is_dir());

    let top = repo
        .list("b1", &ListOptions::default())
        .await
        .expect("list");
    let paths: Vec<&str> = top.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "b1/data.tar",
            "b1/empty",
            "b1/kubeblocks-backup.json",
            "b1/sub"
        ]
    );

    let all = repo
        .list(
            "/",
            &ListOptions {
                recursive: true,
                files_only: true,
                sort_by: SortBy::Size,
                ..Default::default()
            },
        )
        .await
        .expect("list");
    let paths: Vec<&str> = all.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        ["b1/kubeblocks-backup.json", "b1/sub/wal.tar", "b1/data.tar"]
    );

    let depth_one = repo
        .list(
            "/",
            &ListOptions {
                max_depth: Some(2),
                ..Default::default()
            },
        )
        .await
        .expect("list");
    assert_eq!(depth_one.len(), 5, "{depth_one:?}");

    let stat = repo.stat("/").await.expect("stat");
    assert_eq!(
        stat.to_text(),
        "TotalSize: 157\nEntries: 6\nDirs: 3\nFiles: 3\n"
    );
    let stat = repo.stat("b1/data.tar").await.expect("stat file");
    assert_eq!((stat.total_size, stat.files, stat.dirs), (100, 1, 0));
}

#[tokio::test]
async fn rm_rmdir_semantics_match_the_deletion_job() {
    let (dir, repo) = local_repo().await;
    put(&repo, "b1/data.tar", vec![1; 10], None).await;
    put(&repo, "b1/sub/wal.tar", vec![2; 10], None).await;

    let err = repo.remove("b1", false).await.expect_err("a directory");
    assert!(err.to_string().contains("rm -r"), "{err}");
    let err = repo.remove("nope", false).await.expect_err("missing");
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert_eq!(
        repo.remove("nope", true)
            .await
            .expect("missing is fine with -r"),
        0
    );

    let err = repo.rmdir("b1").await.expect_err("not empty");
    assert!(err.to_string().contains("not empty"), "{err}");

    assert_eq!(repo.remove("b1", true).await.expect("rm -r"), 2);
    assert!(
        !dir.path().join("ns/cluster/b1").exists(),
        "local directories are removed too"
    );
    assert!(
        repo.list("/", &ListOptions::default())
            .await
            .expect("list")
            .is_empty()
    );

    repo.mkdir("e").await.expect("mkdir");
    repo.rmdir("e").await.expect("rmdir empty");
    assert!(!dir.path().join("ns/cluster/e").exists());
}

/// The error and its causes, as `datasafed` prints them.
fn chain(err: &cairn_repo::Error) -> String {
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Everything under `dir`, as `(relative path, bytes)`, not following links.
fn snapshot(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        for entry in std::fs::read_dir(&current).expect("read_dir") {
            let path = entry.expect("entry").path();
            let meta = std::fs::symlink_metadata(&path).expect("lstat");
            let rel = path.strip_prefix(dir).expect("under").display().to_string();
            if meta.is_dir() {
                pending.push(path);
                out.push((rel, Vec::new()));
            } else {
                out.push((rel, std::fs::read(&path).unwrap_or_default()));
            }
        }
    }
    out.sort();
    out
}

#[tokio::test]
async fn a_local_store_never_follows_a_symbolic_link_out_of_its_root() {
    let outside = tempfile::tempdir().expect("tempdir");
    std::fs::write(outside.path().join("s.txt"), b"outside the store").expect("write");
    std::fs::create_dir(outside.path().join("deep")).expect("mkdir");
    std::fs::write(outside.path().join("deep/t.txt"), b"also outside").expect("write");
    let before = snapshot(outside.path());

    let (dir, repo) = local_repo().await;
    put(&repo, "real/inside.txt", b"inside".to_vec(), None).await;
    let base = dir.path().join("ns/cluster");
    std::os::unix::fs::symlink(outside.path(), base.join("link")).expect("symlink");
    std::os::unix::fs::symlink(outside.path(), base.join("real/nested")).expect("symlink");
    std::os::unix::fs::symlink(outside.path().join("s.txt"), base.join("file-link"))
        .expect("symlink");

    // Reads through a link, or of a link, are refused, naming the link.
    for (path, link) in [
        ("link/s.txt", "ns/cluster/link"),
        ("link/deep/t.txt", "ns/cluster/link"),
        ("real/nested/s.txt", "ns/cluster/real/nested"),
        ("file-link", "ns/cluster/file-link"),
    ] {
        let err = get(&repo, path, None).await.expect_err(path);
        let text = chain(&err);
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{path}: {text}");
        let link = dir.path().join(link).display().to_string();
        assert!(
            text.contains(&format!("{link} is a symbolic link")),
            "{path}: {text}"
        );
        assert!(!text.contains("outside the store"), "{text}");
    }

    // Writes through a link, or over one, are refused.
    for path in [
        "link/new.txt",
        "link/deep/new.txt",
        "real/nested/new.txt",
        "file-link",
    ] {
        let err = repo
            .put(
                path,
                std::io::Cursor::new(b"planted".to_vec()),
                None,
                no_progress(),
            )
            .await
            .expect_err(path);
        assert!(
            chain(&err).contains("is a symbolic link"),
            "{path}: {err:?}"
        );
    }
    assert!(
        repo.mkdir("link/sub").await.is_err(),
        "mkdir through a link"
    );

    // Listings show what is inside and skip the links; stat counts only the inside.
    let all = repo
        .list(
            "/",
            &ListOptions {
                recursive: true,
                ..Default::default()
            },
        )
        .await
        .expect("list");
    let paths: Vec<&str> = all.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(paths, ["real", "real/inside.txt"]);
    assert!(repo.list("link", &ListOptions::default()).await.is_err());
    let stat = repo.stat("/").await.expect("stat");
    assert_eq!((stat.files, stat.total_size), (1, 6));

    // Deletions never reach through a link.
    for (path, recursive) in [
        ("link", true),
        ("link", false),
        ("link/s.txt", false),
        ("file-link", false),
    ] {
        let err = repo.remove(path, recursive).await.expect_err(path);
        assert!(
            chain(&err).contains("is a symbolic link"),
            "{path}: {err:?}"
        );
    }
    assert!(repo.rmdir("link").await.is_err(), "rmdir of a link");
    // A directory holding a link: its own files go, the link's target stays, and the error
    // says what is left.
    let err = repo.remove("real", true).await.expect_err("a link is left");
    assert!(!base.join("real/inside.txt").exists());
    assert!(
        chain(&err).contains(
            "real is not empty: it holds \"nested\", which a local repository does not list"
        ),
        "{}",
        chain(&err)
    );

    assert_eq!(snapshot(outside.path()), before, "nothing outside changed");
    assert!(
        std::fs::symlink_metadata(base.join("link"))
            .expect("the link is still there")
            .file_type()
            .is_symlink()
    );
}

#[tokio::test]
async fn a_fifo_or_socket_in_a_local_store_is_refused_without_blocking() {
    let (dir, repo) = local_repo().await;
    put(&repo, "b1/data.tar", b"data".to_vec(), None).await;
    let base = dir.path().join("ns/cluster/b1");
    nix::unistd::mkfifo(
        &base.join("pipe"),
        nix::sys::stat::Mode::from_bits_truncate(0o644),
    )
    .expect("mkfifo");
    let _socket = std::os::unix::net::UnixListener::bind(base.join("sock")).expect("bind");
    // A reader stuck opening the FIFO would hang the test: open its other end after the
    // deadline, so such a reader fails the test instead.
    let pipe = base.join("pipe");
    std::thread::spawn(move || {
        use std::os::unix::fs::OpenOptionsExt;
        std::thread::sleep(std::time::Duration::from_secs(12));
        loop {
            let _ = std::fs::OpenOptions::new()
                .write(true)
                .custom_flags(nix::fcntl::OFlag::O_NONBLOCK.bits())
                .open(&pipe);
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    });
    for path in ["b1/pipe", "b1/sock"] {
        let err = tokio::time::timeout(std::time::Duration::from_secs(10), get(&repo, path, None))
            .await
            .unwrap_or_else(|_| panic!("reading {path} blocked"))
            .expect_err(path);
        assert!(
            chain(&err).contains("not a regular file or directory"),
            "{path}: {err:?}"
        );
    }
    let entries = repo
        .list("b1", &ListOptions::default())
        .await
        .expect("list");
    let paths: Vec<&str> = entries.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(paths, ["b1/data.tar"]);
}
