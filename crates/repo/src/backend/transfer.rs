//! Streaming transfers: uploads from a channel of parts (one `put` or a multipart upload)
//! and downloads as parallel ranged reads delivered in order.

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::{BoxStream, FuturesUnordered};
use object_store::{ObjectStoreExt, PutPayload};
use tokio::sync::mpsc;
use tokio_util::task::AbortOnDropHandle;

use super::{Store, map_store_error};
use crate::{Error, ErrorKind, Result};

/// A message of an upload's producer.
#[derive(Debug)]
pub enum Part {
    /// The next part of the object.
    Data(Bytes),
    /// The object is complete.
    End,
}

impl Store {
    /// Uploads the parts received on `parts` as one object; returns its size.
    ///
    /// Every part but the last must be [`super::TransferOptions::part_size`] bytes (S3 needs
    /// ≥ 5 MiB). The producer ends with [`Part::End`]; an `Err` or a channel closed without
    /// `End` aborts the upload, so a failed producer never leaves a truncated object. One
    /// part becomes a single `put`; more become a multipart upload with at most
    /// `upload_parallelism` parts in flight.
    pub async fn put_parts(
        &self,
        key: &str,
        mut parts: mpsc::Receiver<Result<Part>>,
    ) -> Result<u64> {
        let stopped = || {
            Error::new(
                ErrorKind::Io,
                format!("the data for {} stopped before its end", self.describe(key)),
            )
        };
        let mut next = async || -> Result<Option<Bytes>> {
            match parts.recv().await {
                None => Err(stopped()),
                Some(Err(e)) => Err(e),
                Some(Ok(Part::End)) => Ok(None),
                Some(Ok(Part::Data(bytes))) => Ok(Some(bytes)),
            }
        };
        let Some(first) = next().await? else {
            self.put(key, Bytes::new()).await?;
            return Ok(0);
        };
        let second = match next().await? {
            None => {
                let size = first.len() as u64;
                self.put(key, first).await?;
                return Ok(size);
            }
            Some(part) => part,
        };
        let path = self.path(key)?;
        let what = || format!("uploading {}", self.describe(key));
        let mut upload = self.call(&what, || self.inner.put_multipart(&path)).await?;
        let mut size = 0u64;
        let mut in_flight = FuturesUnordered::new();
        let mut queued = std::collections::VecDeque::from([first, second]);
        let outcome: Result<()> =
            async {
                loop {
                    let part = match queued.pop_front() {
                        Some(part) => part,
                        None => match next().await? {
                            Some(part) => part,
                            None => break,
                        },
                    };
                    size += part.len() as u64;
                    let permit =
                        self.permits.clone().acquire_owned().await.map_err(|_| {
                            Error::new(ErrorKind::Backend, "store client is shut down")
                        })?;
                    let fut = upload.put_part(PutPayload::from(part));
                    in_flight.push(async move {
                        let result = fut.await;
                        drop(permit);
                        result
                    });
                    while in_flight.len() >= self.options.upload_parallelism.max(1) {
                        if let Some(result) = in_flight.next().await {
                            result.map_err(|e| map_store_error(what(), e))?;
                        }
                    }
                }
                while let Some(result) = in_flight.next().await {
                    result.map_err(|e| map_store_error(what(), e))?;
                }
                Ok(())
            }
            .await;
        match outcome {
            Ok(()) => {
                upload
                    .complete()
                    .await
                    .map_err(|e| map_store_error(what(), e))?;
                Ok(size)
            }
            Err(err) => {
                drop(in_flight);
                if let Err(abort) = upload.abort().await {
                    tracing::warn!(key, error = %abort, "aborting a failed multipart upload failed");
                }
                Err(err)
            }
        }
    }

    /// Downloads an object as a stream of buffers in order: ranged reads of
    /// `range_size`, `download_parallelism` at a time, each retried on its own (so a failed
    /// connection resumes where it stopped). Returns the object size and the stream.
    pub async fn download(&self, key: &str) -> Result<(u64, BoxStream<'static, Result<Bytes>>)> {
        let info = self
            .head(key)
            .await?
            .ok_or_else(|| Error::not_found(format!("{} does not exist", self.describe(key))))?;
        let size = info.size;
        let range = self.options.range_size.max(1);
        let ranges: Vec<std::ops::Range<u64>> = (0..size.div_ceil(range))
            .map(|i| i * range..((i + 1) * range).min(size))
            .collect();
        let this = self.clone();
        let key = key.to_string();
        // Each read is its own task so it keeps receiving while the caller is busy with an
        // earlier range (a future only polled by `buffered` would stall its connection).
        let stream = futures::stream::iter(ranges)
            .map(move |r| {
                let this = this.clone();
                let key = key.clone();
                AbortOnDropHandle::new(tokio::spawn(async move { this.get_range(&key, r).await }))
            })
            .buffered(self.options.download_parallelism.max(1))
            .map(|joined| {
                joined.unwrap_or_else(|e| {
                    Err(Error::new(ErrorKind::Io, "a ranged read task failed").with_source(e))
                })
            })
            .boxed();
        Ok((size, stream))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use futures::TryStreamExt;
    use object_store::memory::InMemory;

    use super::super::TransferOptions;
    use super::*;

    fn store() -> Store {
        Store::from_object_store(Arc::new(InMemory::new())).with_options(TransferOptions {
            part_size: 5 << 20,
            range_size: 1 << 20,
            ..TransferOptions::default()
        })
    }

    fn pattern(len: usize, seed: u8) -> Bytes {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect::<Vec<u8>>()
            .into()
    }

    async fn upload(store: &Store, key: &str, parts: Vec<Bytes>) -> Result<u64> {
        let (tx, rx) = mpsc::channel(2);
        let sender = tokio::spawn(async move {
            for part in parts {
                if tx.send(Ok(Part::Data(part))).await.is_err() {
                    return;
                }
            }
            let _ = tx.send(Ok(Part::End)).await;
        });
        let result = store.put_parts(key, rx).await;
        sender.await.ok();
        result
    }

    #[tokio::test]
    async fn multipart_upload_and_ranged_download_round_trip() {
        let store = store();
        let parts = vec![pattern(5 << 20, 1), pattern(5 << 20, 2), pattern(1234, 3)];
        let expected: Vec<u8> = parts.iter().flat_map(|p| p.to_vec()).collect();
        let size = upload(&store, "big", parts).await.expect("upload");
        assert_eq!(size, expected.len() as u64);
        let (len, stream) = store.download("big").await.expect("download");
        assert_eq!(len, size);
        let got: Vec<Bytes> = stream.try_collect().await.expect("stream");
        assert_eq!(got.concat(), expected);
    }

    #[tokio::test]
    async fn empty_and_single_part_uploads_are_plain_puts() {
        let store = store();
        assert_eq!(upload(&store, "empty", vec![]).await.expect("empty"), 0);
        assert_eq!(store.get("empty").await.expect("get").len(), 0);
        assert_eq!(
            upload(&store, "one", vec![pattern(10, 0)])
                .await
                .expect("one"),
            10
        );
        let (len, stream) = store.download("empty").await.expect("download");
        assert_eq!(len, 0);
        let got: Vec<Bytes> = stream.try_collect().await.expect("stream");
        assert!(got.is_empty());
    }

    #[tokio::test]
    async fn an_error_from_the_producer_aborts_the_upload_and_leaves_no_object() {
        let store = store();
        let (tx, rx) = mpsc::channel(4);
        tx.send(Ok(Part::Data(pattern(5 << 20, 1))))
            .await
            .expect("send");
        tx.send(Ok(Part::Data(pattern(5 << 20, 2))))
            .await
            .expect("send");
        tx.send(Err(Error::corrupt("source failed")))
            .await
            .expect("send");
        drop(tx);
        let err = store.put_parts("x", rx).await.expect_err("fails");
        assert_eq!(err.to_string(), "source failed");
        assert!(store.head("x").await.expect("head").is_none());
    }

    #[tokio::test]
    async fn a_producer_that_vanishes_without_end_leaves_no_object() {
        let store = store();
        let (tx, rx) = mpsc::channel(4);
        tx.send(Ok(Part::Data(pattern(100, 1))))
            .await
            .expect("send");
        drop(tx);
        let err = store.put_parts("y", rx).await.expect_err("fails");
        assert!(err.to_string().contains("stopped before its end"), "{err}");
        assert!(store.head("y").await.expect("head").is_none());
    }
}
