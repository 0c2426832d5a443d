//! The deduplicating repository on a real S3 server (SeaweedFS on loopback): concurrent
//! writers from separate clients, restore byte for byte, forget + prune, check --read-data.

use cairn_repo::config::Secret;
use cairn_repo::dedup::gc::{PruneOptions, forget, prune};
use cairn_repo::dedup::{
    BackupOptions, CheckOptions, InitOptions, Repository, RestoreOptions, backup_stream,
    backup_tree, check, restore_stream, restore_tree,
};
use cairn_repo::progress::no_progress;
use cairn_repo::testing::SeaweedFs;
use cairn_repo::testing::noise;
use cairn_repo::{KdfParams, Store};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_clients_back_up_into_one_s3_repository_and_prune_keeps_what_is_needed() {
    let config = SeaweedFs::shared().fresh_storage("dedup");
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
