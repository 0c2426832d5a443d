//! Watching one object until its final state, resumable from a resource version (docs/API.md
//! §4, WatchBackup).

use std::fmt::Debug;
use std::pin::Pin;

use futures::{Stream, StreamExt as _};
use kube::Resource;
use kube::api::{Api, WatchEvent, WatchParams};
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

use super::status::{Target, from_kube};
use cairn_proto::api::v1::EventType;

/// A server stream of events.
pub type EventStream<E> = Pin<Box<dyn Stream<Item = Result<E, Status>> + Send>>;

/// Events waiting for a slow client; the watch pauses while the buffer is full.
const BUFFER: usize = 16;
/// Seconds one API-server watch lasts before it is renewed from the last version.
const WATCH_TIMEOUT_SECS: u32 = 240;

/// How a kind is watched and shown.
pub struct Watched<K, E> {
    /// The object's kind, for errors (`backups`).
    pub resource: &'static str,
    /// Whether the object is in a final state (the last event).
    pub is_final: fn(&K) -> bool,
    /// The event carrying the object.
    pub event: fn(EventType, &K, bool) -> E,
}

/// Streams the changes of `namespace/name`: its current state first (an INITIAL event) when
/// `resource_version` is empty, then every change after it, until the final state or deletion.
/// NOT_FOUND when the object does not exist.
pub async fn watch_one<K, E>(
    api: Api<K>,
    namespace: String,
    name: String,
    resource_version: String,
    watched: Watched<K, E>,
) -> Result<EventStream<E>, Status>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    E: Send + 'static,
{
    let target = Target {
        resource: watched.resource,
        namespace: &namespace,
        name: &name,
    };
    let current = api.get(&name).await.map_err(|e| from_kube(&e, target))?;
    let (tx, rx) = mpsc::channel(BUFFER);
    let mut version = resource_version;
    if version.is_empty() {
        let done = (watched.is_final)(&current);
        let _ = tx
            .send(Ok((watched.event)(EventType::Initial, &current, done)))
            .await;
        if done {
            return Ok(Box::pin(ReceiverStream::new(rx)));
        }
        version = current.meta().resource_version.clone().unwrap_or_default();
    }
    tokio::spawn(follow(api, namespace, name, version, watched, tx));
    Ok(Box::pin(ReceiverStream::new(rx)))
}

async fn follow<K, E>(
    api: Api<K>,
    namespace: String,
    name: String,
    mut version: String,
    watched: Watched<K, E>,
    tx: mpsc::Sender<Result<E, Status>>,
) where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    E: Send + 'static,
{
    let params = WatchParams::default()
        .fields(&format!("metadata.name={name}"))
        .timeout(WATCH_TIMEOUT_SECS);
    let target = Target {
        resource: watched.resource,
        namespace: &namespace,
        name: &name,
    };
    loop {
        let stream = tokio::select! {
            () = tx.closed() => return,
            stream = api.watch(&params, &version) => stream,
        };
        let mut stream = match stream {
            Ok(stream) => stream.boxed(),
            Err(err) => {
                let _ = tx.send(Err(from_kube(&err, target))).await;
                return;
            }
        };
        loop {
            let next = tokio::select! {
                () = tx.closed() => return,
                next = stream.next() => next,
            };
            let Some(event) = next else { break };
            let sent = match event {
                Ok(WatchEvent::Added(object) | WatchEvent::Modified(object)) => {
                    version = object.meta().resource_version.clone().unwrap_or(version);
                    let done = (watched.is_final)(&object);
                    let sent = tx
                        .send(Ok((watched.event)(EventType::Modified, &object, done)))
                        .await;
                    if done {
                        return;
                    }
                    sent
                }
                Ok(WatchEvent::Deleted(object)) => {
                    let _ = tx
                        .send(Ok((watched.event)(EventType::Deleted, &object, true)))
                        .await;
                    return;
                }
                Ok(WatchEvent::Bookmark(bookmark)) => {
                    version = bookmark.metadata.resource_version;
                    Ok(())
                }
                Ok(WatchEvent::Error(status)) => {
                    let _ = tx
                        .send(Err(from_kube(&kube::Error::Api(status), target)))
                        .await;
                    return;
                }
                Err(err) => {
                    let _ = tx.send(Err(from_kube(&err, target))).await;
                    return;
                }
            };
            if sent.is_err() {
                return;
            }
        }
    }
}
