//! A ranged download (`datasafed pull` of a plain file, KubeBlocks-compatible repositories)
//! keeps its reads moving while the caller is busy with an earlier range (issue 15).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use cairn_repo::Store;
use cairn_repo::backend::TransferOptions;
use cairn_repo::testing::hooked_store::{HookedStore, StoreHook};
use futures::StreamExt;
use object_store::GetOptions;
use object_store::path::Path;

const RANGE: u64 = 1 << 16;

/// Ranged reads that only advance while they are polled, as a response body read from a
/// socket does: the read of range `i` takes `i + 1` steps of 40 ms, each step started only
/// when the previous one is polled to completion. Counts the reads answered.
#[derive(Debug, Default)]
struct PolledReads {
    answered: AtomicUsize,
}

#[async_trait]
impl StoreHook for PolledReads {
    async fn get(&self, _location: &Path, options: &GetOptions) -> object_store::Result<()> {
        if let Some(object_store::GetRange::Bounded(r)) = &options.range {
            for _ in 0..=(r.start / RANGE) {
                tokio::time::sleep(Duration::from_millis(40)).await;
            }
            self.answered.fetch_add(1, Ordering::SeqCst);
        }
        Ok(())
    }
}

#[tokio::test]
async fn a_download_keeps_reading_ahead_while_the_caller_handles_an_earlier_range() {
    let backing = Arc::new(HookedStore::new(PolledReads::default()));
    let store = Store::from_object_store(backing.clone()).with_options(TransferOptions {
        range_size: RANGE,
        download_parallelism: 4,
        ..TransferOptions::default()
    });
    let data: Vec<u8> = (0..8 * RANGE).map(|i| (i % 251) as u8).collect();
    store.put("file", Bytes::from(data.clone())).await.unwrap();

    let (size, mut stream) = store.download("file").await.unwrap();
    assert_eq!(size, data.len() as u64);
    let first = stream.next().await.unwrap().unwrap();
    // The caller writes the first range for a second without polling the stream: ranges 1-3
    // (at most 160 ms of reading each) must be answered by then, and no more than the
    // window of 4 reads may have been started.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        backing.hook.answered.load(Ordering::SeqCst),
        4,
        "the reads in the window did not finish while the caller was busy"
    );
    let mut got = first.to_vec();
    while let Some(part) = stream.next().await {
        got.extend_from_slice(&part.unwrap());
    }
    assert_eq!(got, data);
}

#[tokio::test]
async fn dropping_a_download_stops_its_reads() {
    let backing = Arc::new(HookedStore::new(PolledReads::default()));
    let store = Store::from_object_store(backing.clone()).with_options(TransferOptions {
        range_size: RANGE,
        download_parallelism: 4,
        ..TransferOptions::default()
    });
    store
        .put("file", Bytes::from(vec![7u8; 8 * RANGE as usize]))
        .await
        .unwrap();
    let (_, mut stream) = store.download("file").await.unwrap();
    stream.next().await.unwrap().unwrap();
    drop(stream);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        backing.hook.answered.load(Ordering::SeqCst),
        1,
        "reads went on after the download was dropped"
    );
}
