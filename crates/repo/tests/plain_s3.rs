//! Plain repositories against a real S3 server (SeaweedFS on loopback): multipart uploads,
//! ranged downloads, concurrent writers, listing and removal.

use cairn_repo::config::Secret;
use cairn_repo::plain::ListOptions;
use cairn_repo::progress::no_progress;
use cairn_repo::testing::SeaweedFs;
use cairn_repo::{CipherKind, Compression, KdfParams, PlainRepo, Store, StreamKey};

fn repo(name: &str, encrypted: bool) -> PlainRepo {
    let store = Store::open(&SeaweedFs::shared().fresh_storage(name)).expect("store");
    let key = encrypted.then(|| StreamKey {
        passphrase: Secret::new("pw"),
        cipher: CipherKind::ChaCha20Poly1305,
        kdf: KdfParams::INSECURE_FAST,
        legacy_cfb: None,
    });
    PlainRepo::new(store.sub("ns/backup-1"), key)
}

fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

async fn pull(repo: &PlainRepo, path: &str, decompression: Option<Compression>) -> Vec<u8> {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multipart_encrypted_compressed_file_round_trips_through_s3() {
    let repo = repo("multipart", true);
    let mut source = pseudo_random(6 << 20, 1);
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_each_get_their_file_and_listing_sees_all() {
    let repo = repo("concurrent", false);
    let mut tasks = Vec::new();
    for i in 0..8u64 {
        let repo = repo.clone();
        tasks.push(tokio::spawn(async move {
            let data = pseudo_random(300_000 + i as usize, i);
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
