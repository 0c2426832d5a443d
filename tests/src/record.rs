//! Records every version of every Pod and Job the API server shows while a test runs, so a test
//! can look at the specs of action pods that are deleted again once their backup is done.

use std::sync::{Arc, Mutex, PoisonError};

use futures::StreamExt as _;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use kube::runtime::watcher;
use tokio::task::JoinHandle;

/// A running recorder; [`Recorder::stop`] returns what it saw.
pub struct Recorder {
    seen: Arc<Mutex<Vec<String>>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Recorder {
    /// Starts watching Pods and Jobs in every namespace.
    pub fn start(client: &kube::Client) -> Recorder {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let tasks = vec![
            tokio::spawn(record(Api::<Pod>::all(client.clone()), seen.clone())),
            tokio::spawn(record(Api::<Job>::all(client.clone()), seen.clone())),
        ];
        Recorder { seen, tasks }
    }

    /// Stops watching and returns every object version seen, as JSON text.
    pub fn stop(self) -> Vec<String> {
        for task in &self.tasks {
            task.abort();
        }
        std::mem::take(&mut *self.seen.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

async fn record<K>(api: Api<K>, seen: Arc<Mutex<Vec<String>>>)
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + serde::Serialize,
    K: Send + 'static,
{
    let mut events = std::pin::pin!(watcher(api, watcher::Config::default()));
    while let Some(event) = events.next().await {
        let object = match event {
            Ok(watcher::Event::Apply(object) | watcher::Event::InitApply(object)) => object,
            Ok(watcher::Event::Delete(object)) => object,
            _ => continue,
        };
        if let Ok(text) = serde_json::to_string(&object) {
            seen.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(text);
        }
    }
}
