//! The process kubelet: runs the pods bound to this node as local processes, each
//! container in its own mount namespace with its volumes at their mountPaths, and serves
//! `pods/log` and `pods/exec`. A restart of localkube is a node reboot: pods whose
//! processes are gone are restarted or failed as their restartPolicy says.

pub mod env;
pub mod leftovers;
pub mod logs;
pub mod probe;
pub mod process;
pub mod sandbox;
pub mod status;
pub mod volumes;
pub mod worker;

use crate::controllers::runner::Reconciler;
use crate::error::ApiError;
use crate::resource::Builtin;
use crate::rest::{Api, DeleteOptions};
use crate::store::WatchEvent;
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use worker::{Ctx, Template, Templates};

struct Handle {
    uid: String,
    stop: watch::Sender<Option<i64>>,
    task: tokio::task::JoinHandle<()>,
    templates: Templates,
}

/// The kubelet of the one node.
pub struct Kubelet {
    ctx: Arc<Ctx>,
    node: String,
    pods: Mutex<HashMap<(String, String), Handle>>,
    /// Pods (by uid) whose worker still runs, even after their handle was dropped.
    active: Arc<Mutex<HashSet<String>>>,
}

fn s<'a>(v: &'a Value, p: &str) -> &'a str {
    v.pointer(p).and_then(Value::as_str).unwrap_or_default()
}

impl Kubelet {
    pub fn new(api: Arc<Api>, data_dir: PathBuf) -> Kubelet {
        // Processes of a previous run (e.g. after kill -9) are gone on a rebooted node.
        leftovers::kill_recorded(&data_dir);
        let node = api.config.node_name.clone();
        let kubelet = Kubelet {
            ctx: Arc::new(Ctx {
                api,
                data_dir,
                running: Mutex::new(Default::default()),
            }),
            node,
            pods: Mutex::new(HashMap::new()),
            active: Arc::new(Mutex::new(HashSet::new())),
        };
        // Pods deleted while localkube was down leave their directories behind.
        kubelet.remove_gone_pod_dirs();
        kubelet
    }

    fn pods(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), Handle>> {
        self.pods.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How `container` of a running pod is run, for exec.
    pub fn template(&self, namespace: &str, name: &str, container: &str) -> Option<Template> {
        let pods = self.pods();
        let h = pods.get(&(namespace.to_string(), name.to_string()))?;
        let t = h.templates.lock().unwrap_or_else(|p| p.into_inner());
        t.get(container).cloned()
    }

    /// The directory holding a pod's logs and volumes.
    pub fn pod_dir(&self, uid: &str) -> PathBuf {
        volumes::pod_dir(&self.ctx.data_dir, uid)
    }

    /// Stops every pod (SIGTERM, grace, SIGKILL) and waits for them.
    pub async fn shutdown(&self) {
        let handles: Vec<Handle> = self.pods().drain().map(|(_, h)| h).collect();
        for h in &handles {
            let grace = 5;
            let _ = h.stop.send(Some(grace));
        }
        for h in handles {
            let _ = tokio::time::timeout(Duration::from_secs(15), h.task).await;
        }
    }

    /// Stops abruptly, as a crash would: workers vanish and container processes are killed
    /// without any status being written.
    pub fn kill_all(&self) {
        for (_, h) in self.pods().drain() {
            h.task.abort();
        }
        let pids: Vec<u32> = self
            .ctx
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain()
            .collect();
        for pid in pids {
            process::signal_group(pid, nix::sys::signal::Signal::SIGKILL);
        }
    }

    /// Removes the directories (volumes, logs, the containers' writable layers and /tmp)
    /// of pods that no longer exist and whose worker is done, as a node does.
    fn remove_gone_pod_dirs(&self) {
        let dir = self.ctx.data_dir.join("kubelet").join("pods");
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return;
        };
        let mut keep: HashSet<String> = self
            .ctx
            .api
            .store()
            .list("core/pods", None, None, 0, |_| true)
            .items
            .iter()
            .map(|o| o.index.uid.clone())
            .collect();
        keep.extend(
            self.active
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .cloned(),
        );
        keep.extend(self.pods().values().map(|h| h.uid.clone()));
        let gone: Vec<(String, PathBuf)> = entries
            .flatten()
            .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
            .filter(|(uid, _)| !keep.contains(uid))
            .collect();
        if gone.is_empty() {
            return;
        }
        let remove = move || {
            for (uid, path) in gone {
                if let Err(error) = sandbox::remove_tree(&path) {
                    tracing::warn!(pod_uid = uid, %error, "removing the directory of a deleted pod");
                }
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => drop(rt.spawn_blocking(remove)),
            Err(_) => remove(),
        }
    }

    fn start(&self, key: (String, String), pod: Value) {
        let (stop, rx) = watch::channel(None);
        let templates: Templates = Arc::new(Mutex::new(Default::default()));
        let uid = s(&pod, "/metadata/uid").to_string();
        self.active
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(uid.clone());
        let run = worker::run(self.ctx.clone(), pod.clone(), rx, templates.clone());
        let (ctx, active) = (self.ctx.clone(), self.active.clone());
        let handle_uid = uid.clone();
        let (ns, name) = key.clone();
        let task = tokio::spawn(async move {
            run.await;
            active
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&uid);
            // A pod deleted while it ran: its directory goes with it.
            let exists = ctx
                .api
                .store()
                .get("core/pods", &ns, &name)
                .is_some_and(|o| o.index.uid == uid);
            if !exists {
                let dir = volumes::pod_dir(&ctx.data_dir, &uid);
                let _ = tokio::task::spawn_blocking(move || sandbox::remove_tree(&dir)).await;
            }
        });
        self.pods().insert(
            key,
            Handle {
                uid: handle_uid,
                stop,
                task,
                templates,
            },
        );
    }
}

impl Reconciler for Kubelet {
    type Key = (String, String);

    fn name(&self) -> &'static str {
        "kubelet"
    }

    fn keys_for(&self, event: &WatchEvent) -> Vec<(String, String)> {
        let o = &event.object;
        if &*o.resource == "core/pods" {
            return vec![(o.namespace.clone(), o.name.clone())];
        }
        Vec::new()
    }

    fn all_keys(&self) -> Vec<(String, String)> {
        let mut keys: Vec<(String, String)> = self
            .ctx
            .api
            .store()
            .list("core/pods", None, None, 0, |o| {
                o.index.field("spec.nodeName") == Some(self.node.as_str())
            })
            .items
            .iter()
            .map(|o| (o.namespace.clone(), o.name.clone()))
            .collect();
        keys.extend(self.pods().keys().cloned());
        keys.sort();
        keys.dedup();
        keys
    }

    async fn reconcile(&self, key: &(String, String)) -> Result<Option<Duration>, ApiError> {
        let stored = self.ctx.api.store().get("core/pods", &key.0, &key.1);
        let pod = stored
            .map(|o| o.value())
            .filter(|p| s(p, "/spec/nodeName") == self.node);
        let uid = pod.as_ref().map(|p| s(p, "/metadata/uid").to_string());
        // A worker for a pod that is gone or was replaced stops at once.
        {
            let mut pods = self.pods();
            let stale = pods.get(key).is_some_and(|h| Some(&h.uid) != uid.as_ref());
            if stale && let Some(h) = pods.remove(key) {
                let _ = h.stop.send(Some(0));
            }
            if pods.get(key).is_some_and(|h| h.task.is_finished()) {
                pods.remove(key);
            }
        }
        let Some(pod) = pod else {
            self.remove_gone_pod_dirs();
            return Ok(None);
        };
        let deleting = pod
            .pointer("/metadata/deletionTimestamp")
            .is_some_and(|d| !d.is_null());
        let phase = s(&pod, "/status/phase");
        let running = self.pods().contains_key(key);
        if deleting {
            let grace = pod
                .pointer("/metadata/deletionGracePeriodSeconds")
                .and_then(Value::as_i64)
                .unwrap_or(30);
            if running {
                if let Some(h) = self.pods().get(key) {
                    let _ = h.stop.send(Some(grace));
                }
                return Ok(Some(Duration::from_secs(1)));
            }
            // Nothing runs: the kubelet's final delete.
            let opts = DeleteOptions {
                grace_period: Some(0),
                precondition_uid: uid,
                ..Default::default()
            };
            let rt = self.ctx.api.builtin(Builtin::Pod);
            return match self.ctx.api.delete(&rt, Some(&key.0), &key.1, &opts) {
                Ok(_) => Ok(None),
                Err(e) if e.code == 404 || e.code == 409 => Ok(None),
                Err(e) => Err(e),
            };
        }
        if !running && phase != "Succeeded" && phase != "Failed" {
            self.start(key.clone(), pod);
        }
        Ok(None)
    }
}
