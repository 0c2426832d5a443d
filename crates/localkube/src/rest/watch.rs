//! Watch: synthetic ADDEDs or history replay, then live events, filtered by namespace and
//! selectors, with match changes turned into ADDED/DELETED, bookmarks and timeouts.
//!
//! - resourceVersion unset or "0" (or `sendInitialEvents=true`): an ADDED per current object,
//!   then everything after that snapshot.
//! - resourceVersion N: exactly the events after N, in order; if history no longer reaches N
//!   the stream carries one 410 `Expired` ERROR event (inside a 200 response) and ends.
//! - A watcher that falls more than a channel's worth of events behind is closed; the client
//!   resumes from its last resourceVersion.

use super::Api;
use super::read::{effective_field_selector, matches, parse_rv};
use crate::error::ApiError;
use crate::resource::ResourceType;
use crate::selector::{FieldSelector, LabelSelector};
use crate::store::{EventType, Store, StoredObject, WatchEvent};
use bytes::Bytes;
use serde_json::Value;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, mpsc};
use tokio::time::Sleep;
use tokio_util::sync::CancellationToken;

/// Watch query options.
#[derive(Debug, Clone)]
pub struct WatchOptions {
    pub label_selector: LabelSelector,
    pub field_selector: FieldSelector,
    pub resource_version: Option<String>,
    pub send_initial_events: Option<bool>,
    pub allow_bookmarks: bool,
    pub timeout: Duration,
    pub bookmark_interval: Duration,
}

impl Default for WatchOptions {
    fn default() -> Self {
        WatchOptions {
            label_selector: LabelSelector::default(),
            field_selector: FieldSelector::default(),
            resource_version: None,
            send_initial_events: None,
            allow_bookmarks: false,
            timeout: Duration::from_secs(1800),
            bookmark_interval: Duration::from_secs(60),
        }
    }
}

/// One item of a watch stream.
#[derive(Debug)]
pub enum WatchItem {
    Event {
        kind: EventType,
        object: Arc<StoredObject>,
    },
    Bookmark {
        rv: u64,
        initial_events_end: bool,
    },
    Error(ApiError),
}

enum Start {
    Snapshot { bookmark: bool },
    From(u64),
}

struct Filter {
    namespace: Option<String>,
    labels: LabelSelector,
    fields: FieldSelector,
}

impl Filter {
    fn accepts(&self, obj: &StoredObject) -> bool {
        self.namespace
            .as_ref()
            .is_none_or(|ns| obj.namespace == *ns)
            && matches(obj, &self.labels, &self.fields)
    }
}

/// `prev` as it looked, re-stamped with the resourceVersion of the change that made it stop
/// matching (what the apiserver sends as the DELETED object).
fn restamp(prev: &StoredObject, rv: u64) -> Arc<StoredObject> {
    let mut value = prev.value();
    if let Some(m) = value.get_mut("metadata").and_then(Value::as_object_mut) {
        m.insert("resourceVersion".into(), Value::String(rv.to_string()));
    }
    Arc::new(StoredObject {
        resource: prev.resource.clone(),
        namespace: prev.namespace.clone(),
        name: prev.name.clone(),
        rv,
        json: Bytes::from(serde_json::to_vec(&value).unwrap_or_default()),
        index: prev.index.clone(),
    })
}

/// The event a watcher with `filter` should see for `ev`, if any.
fn translate(ev: &WatchEvent, filter: &Filter) -> Option<(EventType, Arc<StoredObject>)> {
    let now = filter.accepts(&ev.object);
    let before = ev.prev.as_ref().is_some_and(|p| filter.accepts(p));
    match ev.kind {
        EventType::Added => now.then(|| (EventType::Added, ev.object.clone())),
        EventType::Deleted => now.then(|| (EventType::Deleted, ev.object.clone())),
        EventType::Modified => match (before, now) {
            (true, true) => Some((EventType::Modified, ev.object.clone())),
            (false, true) => Some((EventType::Added, ev.object.clone())),
            (true, false) => {
                let prev = ev.prev.as_ref()?;
                Some((EventType::Deleted, restamp(prev, ev.rv)))
            }
            (false, false) => None,
        },
    }
}

impl Api {
    /// Starts a watch; items arrive on the returned channel until the timeout, the client
    /// going away, a lagging subscription or server shutdown.
    pub fn watch(
        &self,
        rt: &ResourceType,
        namespace: Option<&str>,
        opts: WatchOptions,
        shutdown: CancellationToken,
    ) -> Result<mpsc::Receiver<WatchItem>, ApiError> {
        let fields = effective_field_selector(rt, &opts.field_selector)?;
        let rv = opts
            .resource_version
            .as_deref()
            .filter(|r| !r.is_empty())
            .map(parse_rv)
            .transpose()?;
        let start = match (rv, opts.send_initial_events) {
            (_, Some(true)) => Start::Snapshot { bookmark: true },
            (None, Some(false)) => Start::From(self.store().current_rv()),
            (None | Some(0), _) => Start::Snapshot { bookmark: false },
            (Some(n), _) => Start::From(n),
        };
        let filter = Filter {
            namespace: if rt.namespaced {
                namespace.map(str::to_string)
            } else {
                None
            },
            labels: opts.label_selector.clone(),
            fields,
        };
        let store = self.store().clone();
        let storage = rt.storage.clone();
        let (tx, rx) = mpsc::channel(256);
        let sink = Sink {
            tx,
            deadline: Box::pin(tokio::time::sleep(opts.timeout)),
            shutdown,
        };
        tokio::spawn(stream(store, storage, start, filter, opts, sink));
        Ok(rx)
    }
}

/// Where a watch's items go, until its deadline or the server's shutdown.
struct Sink {
    tx: mpsc::Sender<WatchItem>,
    deadline: Pin<Box<Sleep>>,
    shutdown: CancellationToken,
}

impl Sink {
    /// Sends `item`; `false` when the watch is over: the client went away, the deadline
    /// passed or the server shuts down. A client that stopped reading (its channel full) must
    /// not keep the task and its subscription past `timeoutSeconds` or shutdown, so the send
    /// races them.
    async fn send(&mut self, item: WatchItem) -> bool {
        tokio::select! {
            sent = self.tx.send(item) => sent.is_ok(),
            () = &mut self.deadline => false,
            () = self.shutdown.cancelled() => false,
        }
    }
}

/// The watch task: the snapshot or history from `start`, then live events and bookmarks.
async fn stream(
    store: Arc<Store>,
    storage: String,
    start: Start,
    filter: Filter,
    opts: WatchOptions,
    mut sink: Sink,
) {
    let mut last_rv;
    let mut receiver: broadcast::Receiver<Arc<WatchEvent>>;
    match start {
        Start::Snapshot { bookmark } => {
            let snap = store.snapshot(&storage, filter.namespace.as_deref());
            for item in snap.items {
                if filter.accepts(&item)
                    && !sink
                        .send(WatchItem::Event {
                            kind: EventType::Added,
                            object: item,
                        })
                        .await
                {
                    return;
                }
            }
            last_rv = snap.rv;
            receiver = snap.receiver;
            if bookmark
                && !sink
                    .send(WatchItem::Bookmark {
                        rv: snap.rv,
                        initial_events_end: true,
                    })
                    .await
            {
                return;
            }
        }
        Start::From(n) => match store.watch_from(Some(&storage), n) {
            Err(oldest) => {
                sink.send(WatchItem::Error(ApiError::too_old(n, oldest)))
                    .await;
                return;
            }
            Ok(sub) => {
                last_rv = n;
                receiver = sub.receiver;
                for ev in sub.backlog {
                    last_rv = last_rv.max(ev.rv);
                    if let Some((kind, object)) = translate(&ev, &filter)
                        && !sink.send(WatchItem::Event { kind, object }).await
                    {
                        return;
                    }
                }
            }
        },
    }
    let mut bookmarks = tokio::time::interval_at(
        tokio::time::Instant::now() + opts.bookmark_interval,
        opts.bookmark_interval,
    );
    loop {
        tokio::select! {
            received = receiver.recv() => match received {
                Ok(ev) => {
                    if ev.rv <= last_rv {
                        continue;
                    }
                    last_rv = ev.rv;
                    if let Some((kind, object)) = translate(&ev, &filter)
                        && !sink.send(WatchItem::Event { kind, object }).await
                    {
                        return;
                    }
                }
                Err(_) => return,
            },
            _ = bookmarks.tick(), if opts.allow_bookmarks => {
                let current = store.current_rv();
                if receiver.is_empty() {
                    last_rv = last_rv.max(current);
                    if !sink.send(WatchItem::Bookmark { rv: last_rv, initial_events_end: false }).await {
                        return;
                    }
                }
            }
            () = &mut sink.deadline => return,
            () = sink.shutdown.cancelled() => return,
            () = sink.tx.closed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::ObjectIndex;

    fn obj(rv: u64, phase: &str) -> Arc<StoredObject> {
        let mut index = ObjectIndex::default();
        index.fields.push(("status.phase".into(), phase.into()));
        Arc::new(StoredObject {
            resource: Arc::from("core/pods"),
            namespace: "default".into(),
            name: "p".into(),
            rv,
            json: Bytes::from(format!(
                r#"{{"metadata":{{"name":"p","resourceVersion":"{rv}"}},"status":{{"phase":"{phase}"}}}}"#
            )),
            index,
        })
    }

    fn running_filter() -> Filter {
        Filter {
            namespace: None,
            labels: LabelSelector::default(),
            fields: FieldSelector::parse("status.phase=Running").unwrap(),
        }
    }

    #[test]
    fn starting_to_match_is_added_and_stopping_is_deleted_with_the_new_rv() {
        let f = running_filter();
        let start = WatchEvent {
            rv: 2,
            kind: EventType::Modified,
            object: obj(2, "Running"),
            prev: Some(obj(1, "Pending")),
        };
        assert_eq!(translate(&start, &f).unwrap().0, EventType::Added);
        let stop = WatchEvent {
            rv: 3,
            kind: EventType::Modified,
            object: obj(3, "Succeeded"),
            prev: Some(obj(2, "Running")),
        };
        let (kind, o) = translate(&stop, &f).unwrap();
        assert_eq!(kind, EventType::Deleted);
        assert_eq!(o.value()["metadata"]["resourceVersion"], "3");
        assert_eq!(o.value()["status"]["phase"], "Running");
        let neither = WatchEvent {
            rv: 4,
            kind: EventType::Modified,
            object: obj(4, "Failed"),
            prev: Some(obj(3, "Succeeded")),
        };
        assert!(translate(&neither, &f).is_none());
    }
}
