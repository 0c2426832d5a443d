//! The battery every object store runs (SeaweedFS's S3 in plain_s3.rs and dedup_s3.rs, Azurite's
//! Azure Blob in cloud_emulators.rs): plain repositories with multipart encrypted uploads,
//! ranged downloads, concurrent writers, listing and removal; the deduplicating engine with
//! concurrent clients, restore byte for byte, forget + prune, check --read-data and a tree.

#![allow(dead_code)] // each test binary uses part of it

use cairn_repo::config::Secret;
use cairn_repo::dedup::gc::{PruneOptions, forget, prune};
use cairn_repo::dedup::{
    BackupOptions, CheckOptions, InitOptions, Repository, RestoreOptions, backup_stream,
    backup_tree, check, restore_stream, restore_tree,
};
use cairn_repo::plain::ListOptions;
use cairn_repo::progress::no_progress;
use cairn_repo::testing::noise;
use cairn_repo::{CipherKind, Compression, KdfParams, PlainRepo, StorageConfig, Store, StreamKey};

fn repo(config: StorageConfig, encrypted: bool) -> PlainRepo {
    let store = Store::open(&config).expect("store");
    let key = encrypted.then(|| StreamKey {
        passphrase: Secret::new("pw"),
        cipher: CipherKind::ChaCha20Poly1305,
        kdf: KdfParams::INSECURE_FAST,
        legacy_cfb: None,
    });
    PlainRepo::new(store.sub("ns/backup-1"), key)
}

pub async fn pull(repo: &PlainRepo, path: &str, decompression: Option<Compression>) -> Vec<u8> {
    let (mut reader, writer) = tokio::io::duplex(1 << 16);
    let reading = tokio::spawn(async move {
        let mut out = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut reader, &mut out)
            .await
            .map(|_| out)
    });
    repo.get(path, writer, decompression, no_progress())
        .await
        .expect("get");
    reading.await.expect("join").expect("read")
}

/// A multipart (over two 5 MiB parts), encrypted, compressed file round trips.
pub async fn multipart_encrypted_compressed_round_trip(config: StorageConfig) {
    let repo = repo(config, true);
    let mut source = noise(6 << 20, 1);
    source.extend(std::iter::repeat_n(b'x', 8 << 20));
    let zstd = Compression::parse("zstd-fastest").expect("zstd");
    let summary = repo
        .put(
            "/db.tar.zst",
            std::io::Cursor::new(source.clone()),
            Some(zstd),
            no_progress(),
        )
        .await
        .expect("put");
    assert_eq!(summary.bytes_in, source.len() as u64);
    assert!(
        summary.bytes_stored > 5 << 20,
        "more than one part was uploaded"
    );
    assert!(pull(&repo, "db.tar.zst", Some(zstd)).await == source);
}

/// Eight concurrent writers each get their file back; listing, stat and `rm -r` see all.
pub async fn concurrent_writers_list_stat_and_remove(config: StorageConfig) {
    let repo = repo(config, false);
    let mut tasks = Vec::new();
    for i in 0..8u64 {
        let repo = repo.clone();
        tasks.push(tokio::spawn(async move {
            let data = noise(300_000 + i as usize, i);
            repo.put(
                &format!("pod-{i}/data.bin"),
                std::io::Cursor::new(data.clone()),
                None,
                no_progress(),
            )
            .await
            .map(|_| data)
        }));
    }
    let mut written = Vec::new();
    for task in tasks {
        written.push(task.await.expect("join").expect("put"));
    }
    for (i, data) in written.iter().enumerate() {
        assert!(
            &pull(&repo, &format!("pod-{i}/data.bin"), None).await == data,
            "pod-{i}"
        );
    }
    let dirs = repo
        .list(
            "/",
            &ListOptions {
                dirs_only: true,
                ..Default::default()
            },
        )
        .await
        .expect("list");
    assert_eq!(dirs.len(), 8);
    let stat = repo.stat("/").await.expect("stat");
    assert_eq!(stat.files, 8);
    assert_eq!(stat.total_size, (0..8u64).map(|i| 300_000 + i).sum::<u64>());
    assert_eq!(repo.remove("/", true).await.expect("rm -r"), 8);
    let left = repo
        .list(
            "/",
            &ListOptions {
                recursive: true,
                ..Default::default()
            },
        )
        .await
        .expect("list");
    assert!(left.is_empty(), "{left:?}");
}

/// Concurrent clients back up into one deduplicating repository; restores byte for byte,
/// forget + prune keeps what is needed, check --read-data is clean, a tree round trips.
pub async fn dedup_concurrent_clients_prune_check_and_tree(config: StorageConfig) {
    let options = InitOptions {
        kdf: KdfParams::INSECURE_FAST,
        pack_size: 2 << 20,
        ..InitOptions::default()
    };
    Repository::init(
        Store::open(&config).expect("store"),
        &Secret::new("pw"),
        options,
    )
    .await
    .expect("init");

    // Separate clients (own Store and Repository each), as separate processes would be.
    let mut tasks = Vec::new();
    for i in 0..3u64 {
        let config = config.clone();
        tasks.push(tokio::spawn(async move {
            let repo = Repository::open(Store::open(&config)?, &Secret::new("pw")).await?;
            let data = [noise(3 << 20, 1), noise(1 << 20, 10 + i)].concat();
            let s = backup_stream(
                &repo,
                &format!("/pod-{i}"),
                std::io::Cursor::new(data.clone()),
                &BackupOptions::default(),
                None,
                no_progress(),
            )
            .await?;
            Ok::<_, cairn_repo::Error>((s, data))
        }));
    }
    let mut made = Vec::new();
    for t in tasks {
        made.push(t.await.expect("join").expect("backup"));
    }
    let repo = Repository::open(Store::open(&config).expect("store"), &Secret::new("pw"))
        .await
        .expect("open");
    for (s, data) in &made {
        let (mut reader, writer) = tokio::io::duplex(1 << 16);
        let reading = tokio::spawn(async move {
            let mut out = Vec::new();
            tokio::io::AsyncReadExt::read_to_end(&mut reader, &mut out)
                .await
                .map(|_| out)
        });
        restore_stream(&repo, &s.root, writer, no_progress())
            .await
            .expect("restore");
        assert!(reading.await.expect("join").expect("read") == *data);
    }

    forget(&repo, &[made[0].0.id]).await.expect("forget");
    let report = prune(&repo, &PruneOptions::default(), no_progress())
        .await
        .expect("prune");
    assert!(report.deleted_packs > 0, "{report:?}");
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

    // A tree round trip on S3 too.
    let work = tempfile::tempdir().expect("tempdir");
    let src = work.path().join("src");
    std::fs::create_dir_all(src.join("d")).expect("mkdir");
    std::fs::write(src.join("d/big"), noise(5 << 20, 3)).expect("write");
    std::fs::write(src.join("small"), b"x").expect("write");
    let snapshot = backup_tree(&repo, &src, &BackupOptions::default(), no_progress())
        .await
        .expect("tree");
    let out = work.path().join("out");
    restore_tree(
        &repo,
        &snapshot,
        &out,
        &RestoreOptions {
            owners: Some(false),
            ..Default::default()
        },
        no_progress(),
    )
    .await
    .expect("restore tree");
    assert!(std::fs::read(out.join("d/big")).expect("read") == noise(5 << 20, 3));
}
