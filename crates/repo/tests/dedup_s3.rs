//! The deduplicating repository on a real S3 server (SeaweedFS on loopback): concurrent
//! writers from separate clients, restore byte for byte, forget + prune, check --read-data
//! (the battery in object_stores/).

mod object_stores;

use cairn_repo::testing::SeaweedFs;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_clients_back_up_into_one_s3_repository_and_prune_keeps_what_is_needed() {
    object_stores::dedup_concurrent_clients_prune_check_and_tree(
        SeaweedFs::shared().fresh_storage("dedup"),
    )
    .await;
}

/// A stream of several packs, each restoring to several 4 MiB jobs that share one read of the
/// pack from S3, comes back byte for byte.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multi_pack_stream_restores_from_s3_byte_for_byte() {
    use cairn_repo::Store;
    use cairn_repo::config::Secret;
    use cairn_repo::dedup::{BackupOptions, Repository, backup_stream, restore_stream};
    use cairn_repo::progress::no_progress;
    use cairn_repo::testing::noise;

    let config = SeaweedFs::shared().fresh_storage("stream");
    let repo = Repository::init(
        Store::open(&config).expect("store"),
        &Secret::new("pw"),
        cairn_repo::testing::small_pack_options(),
    )
    .await
    .expect("init");
    // About 7× compressible: 1 MiB packs restore to about 7 MiB each.
    let mut data = Vec::with_capacity(24 << 20);
    for piece in noise(3 << 20, 5).chunks(512) {
        data.extend_from_slice(piece);
        data.extend(std::iter::repeat_n(b'z', 4096 - 512));
    }
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
    let mut out = Vec::new();
    let written = restore_stream(&repo, &snapshot.root, &mut out, no_progress())
        .await
        .expect("restore");
    assert_eq!(written, data.len() as u64);
    assert!(out == data, "the restored stream differs from the source");
}
