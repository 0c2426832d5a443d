//! Azure Blob (Azurite) and Google Cloud Storage (fake-gcs-server) end to end through the
//! repository engine, each configured from the datasafed text the StorageProviders render. Both
//! run the battery every object store runs (object_stores/: multipart encrypted uploads, ranged
//! reads, concurrent writers, listing, stat, removal; the deduplicating engine's backup,
//! restore, forget + prune, check --read-data). GCS writes go through the JSON API (media and
//! resumable uploads, JSON DELETE and rewrite), which fake-gcs-server serves; its reads through
//! the XML API. What the emulators cannot show is listed in `cairn_repo::testing::emulators`.

mod object_stores;

use cairn_repo::config::{BackendConfig, Secret};
use cairn_repo::plain::ListOptions;
use cairn_repo::progress::no_progress;
use cairn_repo::testing::emulators::{Azurite, CONTAINER, GcsEmulator};
use cairn_repo::testing::noise;
use cairn_repo::{PlainRepo, StorageConfig, Store, parse_datasafed_config};
use object_stores::pull;

/// What the native GCS StorageProvider renders for the emulator (rclone's keys).
fn gcs_datasafed_config(endpoint: &str, root: &str) -> String {
    format!(
        "[storage]\ntype = google cloud storage\nanonymous = true\n\
         endpoint = {endpoint}/storage/v1/\nroot = {root}\nchunk_size = 5Mi\n"
    )
}

fn azure(name: &str) -> StorageConfig {
    let server = Azurite::shared();
    let config = server.fresh_storage(name);
    let BackendConfig::Azure(az) = &config.backend else {
        unreachable!("Azurite builds azure configs")
    };
    let text = server.datasafed_config(&format!("{CONTAINER}/{}", az.prefix));
    let parsed = parse_datasafed_config(&text).expect("the azureblob template output parses");
    assert_eq!(parsed, config, "the rendered text means the same store");
    parsed
}

fn gcs(name: &str) -> StorageConfig {
    let server = GcsEmulator::shared();
    let config = server.fresh_storage(name);
    let BackendConfig::Gcs(g) = &config.backend else {
        unreachable!("the GCS emulator builds gcs configs")
    };
    let text = gcs_datasafed_config(&server.endpoint, &format!("{CONTAINER}/{}", g.prefix));
    let parsed = parse_datasafed_config(&text).expect("the gcs template output parses");
    assert_eq!(parsed, config, "the rendered text means the same store");
    parsed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multipart_encrypted_compressed_file_round_trips_through_azure_blob() {
    object_stores::multipart_encrypted_compressed_round_trip(azure("multipart")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_list_stat_and_remove_on_azure_blob() {
    object_stores::concurrent_writers_list_stat_and_remove(azure("concurrent")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deduplicating_engine_backs_up_restores_prunes_and_checks_on_azure_blob() {
    object_stores::dedup_concurrent_clients_prune_check_and_tree(azure("dedup")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multipart_encrypted_compressed_file_round_trips_through_gcs() {
    object_stores::multipart_encrypted_compressed_round_trip(gcs("multipart")).await;
}

/// Parts that are not multiples of GCS's 256 KiB upload chunk: each part sends the whole
/// chunks it holds and hands the rest to the next, and the object comes back byte for byte.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gcs_upload_in_parts_of_an_odd_size_arrives_whole() {
    let mut config = gcs("odd-parts");
    config.part_size = Some(5_500_000);
    let repo = PlainRepo::new(Store::open(&config).expect("store"), None);
    let data = noise(3 * 5_500_000 + 12_345, 9);
    let summary = repo
        .put(
            "ns/b/odd.bin",
            std::io::Cursor::new(data.clone()),
            None,
            no_progress(),
        )
        .await
        .expect("put");
    assert_eq!(summary.bytes_stored, data.len() as u64);
    assert!(pull(&repo, "ns/b/odd.bin", None).await == data);
    let stat = repo.stat("/ns").await.expect("stat");
    assert_eq!((stat.files, stat.total_size), (1, data.len() as u64));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_list_stat_and_remove_on_gcs() {
    object_stores::concurrent_writers_list_stat_and_remove(gcs("concurrent")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deduplicating_engine_backs_up_restores_prunes_and_checks_on_gcs() {
    object_stores::dedup_concurrent_clients_prune_check_and_tree(gcs("dedup")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gcs_repository_reached_through_its_endpoint_reads_lists_and_sizes_what_the_bucket_holds()
{
    let config = gcs("read");
    let BackendConfig::Gcs(g) = &config.backend else {
        unreachable!("gcs")
    };
    let server = GcsEmulator::shared();
    let big = noise(3 << 20, 5);
    for (name, data) in [
        ("ns/b1/db.tar", big.as_slice()),
        ("ns/b1/kubeblocks-backup.json", b"{}".as_slice()),
        ("ns/b2/db.tar", b"second".as_slice()),
    ] {
        server
            .upload(CONTAINER, &format!("{}/{name}", g.prefix), data)
            .expect("upload through the JSON API");
    }
    let repo = PlainRepo::new(Store::open(&config).expect("store"), None);
    // A download in ranged parts, as a restore reads it.
    assert!(pull(&repo, "ns/b1/db.tar", None).await == big);
    assert_eq!(pull(&repo, "ns/b2/db.tar", None).await, b"second");
    let all = repo
        .list(
            "/",
            &ListOptions {
                recursive: true,
                ..Default::default()
            },
        )
        .await
        .expect("list -r");
    let files: Vec<_> = all
        .iter()
        .filter(|e| !e.is_dir)
        .map(|e| e.path.as_str())
        .collect();
    assert_eq!(
        files,
        [
            "ns/b1/db.tar",
            "ns/b1/kubeblocks-backup.json",
            "ns/b2/db.tar"
        ]
    );
    let stat = repo.stat("/").await.expect("stat");
    assert_eq!((stat.files, stat.total_size), (3, big.len() as u64 + 8));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_azure_key_is_refused_by_the_emulator() {
    let mut config = azure("wrong-key");
    if let BackendConfig::Azure(az) = &mut config.backend {
        az.key = Secret::new("d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXk=");
    }
    let repo = PlainRepo::new(Store::open(&config).expect("store"), None);
    let err = repo
        .put(
            "f",
            std::io::Cursor::new(b"x".to_vec()),
            None,
            no_progress(),
        )
        .await
        .expect_err("a wrong key is refused");
    assert!(
        !err.to_string().contains("d3Jvbmcta2V5"),
        "the key is never in the error: {err}"
    );
}
