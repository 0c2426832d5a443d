//! Damaged repositories: a corrupted, truncated or missing pack, a damaged index or
//! snapshot. Each gives a clear error naming the object from `check` and from restore;
//! nothing panics and no restore writes data it could not authenticate.

use cairn_repo::testing::noise;
use std::sync::Arc;

use cairn_repo::config::Secret;
use cairn_repo::dedup::pack::pack_key;
use cairn_repo::dedup::writer::Writer;
use cairn_repo::dedup::{
    BackupOptions, CheckOptions, Repository, RestoreOptions, Snapshot, backup_stream, backup_tree,
    check, restore_stream, restore_tree,
};
use cairn_repo::progress::no_progress;
use cairn_repo::{ErrorKind, Store};
use object_store::memory::InMemory;

async fn setup() -> (Store, Repository, Snapshot, Vec<u8>) {
    let store = Store::from_object_store(Arc::new(InMemory::new()));
    let options = cairn_repo::testing::small_pack_options();
    let repo = Repository::init(store.clone(), &Secret::new("pw"), options)
        .await
        .expect("init");
    let data = noise(3 << 20, 1);
    let snapshot = backup_stream(
        &repo,
        "/db",
        std::io::Cursor::new(data.clone()),
        &BackupOptions::default(),
        None,
        no_progress(),
    )
    .await
    .expect("backup");
    (store, repo, snapshot, data)
}

async fn pull(repo: &Repository, snapshot: &Snapshot) -> cairn_repo::Result<Vec<u8>> {
    let (mut reader, writer) = tokio::io::duplex(1 << 16);
    let reading = tokio::spawn(async move {
        let mut out = Vec::new();
        let _ = tokio::io::AsyncReadExt::read_to_end(&mut reader, &mut out).await;
        out
    });
    let result = restore_stream(repo, &snapshot.root, writer, no_progress()).await;
    let out = reading.await.expect("join");
    result.map(|_| out)
}

/// The largest data pack of a snapshot.
async fn a_data_pack(repo: &Repository, snapshot: &Snapshot) -> String {
    let refs = repo
        .read_content_list(&snapshot.root.content[0])
        .await
        .expect("list");
    pack_key(&refs[refs.len() / 2].pack)
}

async fn errors(repo: &Repository, read_data: bool) -> Vec<String> {
    check(
        repo,
        &CheckOptions {
            read_data,
            ..Default::default()
        },
        no_progress(),
    )
    .await
    .expect("check runs")
    .errors
}

#[tokio::test]
async fn an_intact_repository_checks_clean() {
    let (_, repo, snapshot, data) = setup().await;
    assert!(errors(&repo, true).await.is_empty());
    assert!(pull(&repo, &snapshot).await.expect("restore") == data);
}

#[tokio::test]
async fn a_corrupted_pack_is_named_by_check_and_fails_the_restore() {
    let (store, repo, snapshot, _) = setup().await;
    let key = a_data_pack(&repo, &snapshot).await;
    let mut bytes = store.get(&key).await.expect("pack").to_vec();
    bytes[1000] ^= 0x10;
    store.put(&key, bytes.into()).await.expect("put");
    let found = errors(&repo, false).await;
    assert!(
        found.is_empty(),
        "structure is intact, only data is damaged: {found:?}"
    );
    let found = errors(&repo, true).await;
    assert!(
        found
            .iter()
            .any(|e| e.contains(&key) && e.contains("failed authentication")),
        "{found:?}"
    );
    let err = pull(&repo, &snapshot).await.expect_err("restore must fail");
    assert_eq!(err.kind(), ErrorKind::Crypto);
    assert!(err.to_string().contains(&key), "{err}");
}

#[tokio::test]
async fn a_truncated_pack_is_named_by_check_and_fails_the_restore() {
    let (store, repo, snapshot, _) = setup().await;
    let key = a_data_pack(&repo, &snapshot).await;
    let bytes = store.get(&key).await.expect("pack");
    store
        .put(&key, bytes.slice(..bytes.len() / 2))
        .await
        .expect("put");
    let found = errors(&repo, false).await;
    assert!(found.iter().any(|e| e.contains(&key)), "{found:?}");
    assert!(pull(&repo, &snapshot).await.is_err());
}

#[tokio::test]
async fn a_missing_pack_is_named_by_check_and_restore() {
    let (store, repo, snapshot, _) = setup().await;
    let key = a_data_pack(&repo, &snapshot).await;
    store.delete(&key).await.expect("delete");
    let found = errors(&repo, false).await;
    assert!(
        found
            .iter()
            .any(|e| e.contains(&key) && e.contains("missing")),
        "{found:?}"
    );
    let err = pull(&repo, &snapshot).await.expect_err("restore must fail");
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(err.to_string().contains(&key), "{err}");
}

#[tokio::test]
async fn a_damaged_index_is_named_and_skipped_by_new_writers() {
    let (store, repo, _, _) = setup().await;
    let index = store.list_all("index").await.expect("list")[0].key.clone();
    let mut bytes = store.get(&index).await.expect("index").to_vec();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    store.put(&index, bytes.into()).await.expect("put");
    let found = errors(&repo, false).await;
    assert!(found.iter().any(|e| e.contains(&index)), "{found:?}");
    // Writers skip it and name it; its packs count as unknown, so nothing is reused from them.
    let writer = Writer::start(&repo).await.expect("writer starts");
    let warning = writer.view().unreadable_warning().expect("a warning");
    assert!(warning.contains(&index), "{warning}");
    assert!(writer.view().packs.is_empty(), "{:?}", writer.view().packs);
}

#[tokio::test]
async fn a_damaged_snapshot_is_named() {
    let (store, repo, snapshot, _) = setup().await;
    let key = Snapshot::key(&snapshot.id);
    store
        .put(&key, bytes::Bytes::from_static(b"CAIRNOB1 garbage"))
        .await
        .expect("put");
    let found = errors(&repo, false).await;
    assert!(found.iter().any(|e| e.contains(&key)), "{found:?}");
    let err = repo.list_snapshots().await.expect_err("listing fails");
    assert!(err.to_string().contains(&key), "{err}");
}

#[tokio::test]
async fn a_tree_restore_with_a_damaged_blob_fails_instead_of_writing_wrong_data() {
    let store = Store::from_object_store(Arc::new(InMemory::new()));
    let options = cairn_repo::testing::small_pack_options();
    let repo = Repository::init(store.clone(), &Secret::new("pw"), options)
        .await
        .expect("init");
    let work = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(work.path().join("src")).expect("mkdir");
    std::fs::write(work.path().join("src/table"), noise(2 << 20, 5)).expect("write");
    let snapshot = backup_tree(
        &repo,
        &work.path().join("src"),
        &BackupOptions::default(),
        no_progress(),
    )
    .await
    .expect("backup");
    for info in store.list_all("data").await.expect("list") {
        let mut bytes = store.get(&info.key).await.expect("get").to_vec();
        bytes[100] ^= 0xFF;
        store.put(&info.key, bytes.into()).await.expect("put");
    }
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
    .expect_err("restore fails");
    assert!(
        matches!(err.kind(), ErrorKind::Crypto | ErrorKind::Corrupt),
        "{err:?}"
    );
}
