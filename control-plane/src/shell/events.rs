//! Kubernetes Events about the objects the control plane reconciles, with kube-runtime's
//! aggregation (the same event about the same object within six minutes becomes one Event
//! whose series counts it), and a cache that forgets an object's events when the object goes.
//!
//! kube-runtime's `Recorder` keeps every event it published for six minutes and prunes only
//! when it publishes the next one: after a burst of 10,000 Backups created and deleted, it held
//! some 20,000 events until the next event came (bench/README.md, "scale"). Here each object has
//! its own `Recorder` (aggregation is per object anyway), dropped when its object's finalizer
//! is removed ([`Events::forget`]) and, for an object whose going was not seen, once it has
//! published nothing for six minutes (all its cached events have expired by then).

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, Recorder, Reporter};

/// How long kube-runtime's `Recorder` aggregates an event (its `CACHE_TTL`).
const AGGREGATION: Duration = Duration::from_secs(6 * 60);
/// How often the recorders of objects quiet for [`AGGREGATION`] are looked for.
const SWEEP_EVERY: Duration = Duration::from_secs(30);

/// Publishes events, one `Recorder` per object.
pub struct Events {
    client: kube::Client,
    reporter: Reporter,
    recorders: Mutex<Recorders>,
}

struct Recorders {
    /// By object ([`object_key`]): its recorder and when it last published. Boxed: the table
    /// grows to the peak of live objects (10,000 Backups in flight), and a `Recorder` inline
    /// made each of its slots some 300 bytes until the table shrinks.
    by_object: HashMap<String, Box<(Recorder, Instant)>>,
    swept: Instant,
}

/// An object's key: its uid, else its kind, namespace and name.
fn object_key(reference: &ObjectReference) -> String {
    match reference.uid.as_deref().filter(|uid| !uid.is_empty()) {
        Some(uid) => uid.to_owned(),
        None => format!(
            "{}/{}/{}",
            reference.kind.as_deref().unwrap_or_default(),
            reference.namespace.as_deref().unwrap_or_default(),
            reference.name.as_deref().unwrap_or_default()
        ),
    }
}

impl Events {
    pub fn new(client: kube::Client, reporter: Reporter) -> Events {
        Events {
            client,
            reporter,
            recorders: Mutex::new(Recorders {
                by_object: HashMap::new(),
                swept: Instant::now(),
            }),
        }
    }

    /// Publishes `event` about `reference`'s object.
    pub async fn publish(
        &self,
        event: &Event,
        reference: &ObjectReference,
    ) -> Result<(), kube::Error> {
        let recorder = self.recorder(reference, Instant::now());
        recorder.publish(event, reference).await
    }

    /// Forgets the events of `reference`'s object (it is gone).
    pub fn forget(&self, reference: &ObjectReference) {
        let mut recorders = self.lock();
        recorders.by_object.remove(&object_key(reference));
        shrink(&mut recorders.by_object);
    }

    /// How many objects have a recorder.
    pub fn objects(&self) -> usize {
        self.lock().by_object.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Recorders> {
        self.recorders
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn recorder(&self, reference: &ObjectReference, now: Instant) -> Recorder {
        let mut recorders = self.lock();
        if now.duration_since(recorders.swept) >= SWEEP_EVERY {
            recorders.swept = now;
            recorders
                .by_object
                .retain(|_, entry| now.duration_since(entry.1) < AGGREGATION);
            shrink(&mut recorders.by_object);
        }
        let entry = recorders
            .by_object
            .entry(object_key(reference))
            .or_insert_with(|| {
                Box::new((
                    Recorder::new(self.client.clone(), self.reporter.clone()),
                    now,
                ))
            });
        entry.1 = now;
        entry.0.clone()
    }
}

/// Gives back a table's memory once it holds far fewer entries than its capacity (after a
/// burst), keeping room to grow again without reallocating at once.
fn shrink<K: std::hash::Hash + Eq, V>(map: &mut HashMap<K, V>) {
    if map.capacity() > 64 && map.len() < map.capacity() / 4 {
        map.shrink_to(map.len() * 2);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::runtime::events::EventType;

    fn reference(uid: &str) -> ObjectReference {
        ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("ConfigMap".into()),
            namespace: Some("default".into()),
            name: Some(format!("cm-{uid}")),
            uid: Some(uid.into()),
            ..ObjectReference::default()
        }
    }

    fn event(reason: &str) -> Event {
        Event {
            type_: EventType::Normal,
            reason: reason.into(),
            note: Some("note".into()),
            action: "Reconcile".into(),
            secondary: None,
        }
    }

    /// The events.k8s.io Events in `default` about `name`: (reason, series count).
    async fn published(client: &kube::Client, name: &str) -> Vec<(String, i32)> {
        let api: kube::Api<k8s_openapi::api::events::v1::Event> =
            kube::Api::namespaced(client.clone(), "default");
        api.list(&Default::default())
            .await
            .expect("listing events")
            .items
            .into_iter()
            .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
            .map(|e| {
                (
                    e.reason.unwrap_or_default(),
                    e.series.map(|s| s.count).unwrap_or(1),
                )
            })
            .collect()
    }

    #[tokio::test]
    async fn repeated_events_aggregate_and_a_gone_objects_events_are_forgotten() {
        let kube = crate::shell::test_kube::TestKube::start().await;
        let events = Events::new(
            kube.client.clone(),
            Reporter {
                controller: "cairn-test".into(),
                instance: None,
            },
        );
        let (a, b) = (reference("a"), reference("b"));
        events.publish(&event("Tried"), &a).await.expect("publish");
        events.publish(&event("Tried"), &a).await.expect("publish");
        events.publish(&event("Other"), &b).await.expect("publish");
        assert_eq!(
            published(&kube.client, "cm-a").await,
            vec![("Tried".to_string(), 2)]
        );
        assert_eq!(events.objects(), 2);
        events.forget(&a);
        assert_eq!(events.objects(), 1);
        // A recorder quiet for the aggregation time goes at the next sweep.
        let later = Instant::now() + AGGREGATION + SWEEP_EVERY;
        let _ = events.recorder(&reference("c"), later);
        assert_eq!(events.objects(), 1, "only c's recorder is left");
    }
}
