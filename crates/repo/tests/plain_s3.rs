//! Plain repositories against a real S3 server (SeaweedFS on loopback): multipart uploads,
//! ranged downloads, concurrent writers, listing and removal (the battery in object_stores/).

mod object_stores;

use cairn_repo::testing::SeaweedFs;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multipart_encrypted_compressed_file_round_trips_through_s3() {
    object_stores::multipart_encrypted_compressed_round_trip(
        SeaweedFs::shared().fresh_storage("multipart"),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_each_get_their_file_and_listing_sees_all() {
    object_stores::concurrent_writers_list_stat_and_remove(
        SeaweedFs::shared().fresh_storage("concurrent"),
    )
    .await;
}
