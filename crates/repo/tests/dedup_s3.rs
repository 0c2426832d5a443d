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
