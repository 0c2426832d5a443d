//! Holder pods for Mount repositories (ARCHITECTURE.md §K5.5): a repository PVC whose volume is
//! not a local directory of this node (CSI: geesefs, EFS, NFS CSI; in-tree NFS; ...) is reached
//! through a holder pod on this node that mounts the claim; the agent uses the directory the
//! kubelet mounted for it (`holder_pod`).
//!
//! # Expected flow
//! 1. A grant opens its Mount repository: [`MountHolders::acquire`] counts one more user of the
//!    claim's holder, creates its pod (or finds it running) and returns the directory with a
//!    [`MountLease`].
//! 2. The grant keeps the lease as long as it lives; dropping the last lease of a claim starts its
//!    idle time.
//! 3. [`MountHolders::reap`] deletes the pod of a holder idle for longer than the idle timeout.
//!
//! # Guarantees
//! - One holder pod per claim and node while any grant uses it; none once idle (crash safety: a
//!   restarted agent [`MountHolders::adopt`]s the holder pods of its node, labelled
//!   [`well_known::label::MOUNT_HOLDER_NODE`], as idle holders, so they are used again or deleted).
//! - A ReadWriteOnce claim mounted by a pod on another node is waited for, then refused with an
//!   error naming the claim, the pod and its node.
//! - Holder pods have random names: a holder deleted while a new one starts never hides it.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use cairn_api::well_known;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, ListParams};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::holder_pod::{self, Holder, HolderConfig, HolderError};

/// Why a claim could not be held on this node.
#[derive(Debug, thiserror::Error)]
pub enum MountHolderError {
    #[error(transparent)]
    Holder(#[from] HolderError),
    #[error("listing the pods that mount PersistentVolumeClaim {namespace}/{claim}")]
    ListPods {
        namespace: String,
        claim: String,
        #[source]
        source: Box<kube::Error>,
    },
    #[error(
        "the repository PVC {namespace}/{claim} is {modes} and still mounted by pod {pod} on node {node} after {seconds}s; the agent on node {this_node} reaches it only when no pod on another node uses it (use a ReadWriteMany volume for a repository shared by several nodes)"
    )]
    HeldElsewhere {
        namespace: String,
        claim: String,
        modes: String,
        pod: String,
        node: String,
        this_node: String,
        seconds: u64,
    },
}

/// How long holders wait and live.
#[derive(Debug, Clone, Copy)]
pub struct HolderTimes {
    /// A holder no grant uses is deleted after this long.
    pub idle: Duration,
    /// How long a holder pod may take to start (and a ReadWriteOnce claim to be released by
    /// another node).
    pub start: Duration,
}

impl Default for HolderTimes {
    fn default() -> HolderTimes {
        HolderTimes {
            idle: Duration::from_secs(30),
            start: Duration::from_secs(120),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct ClaimKey {
    namespace: String,
    name: String,
}

#[derive(Debug, Default)]
struct Users {
    count: usize,
    idle_since: Option<Instant>,
}

/// The holder of one claim.
#[derive(Debug)]
struct Entry {
    key: ClaimKey,
    pod: String,
    users: Mutex<Users>,
    /// The running pod's uid and the volume's directory, once started; held while starting so
    /// that concurrent users wait for one pod.
    ready: tokio::sync::Mutex<Option<(String, PathBuf)>>,
}

impl Entry {
    fn new(key: ClaimKey, pod: String) -> Entry {
        Entry {
            key,
            pod,
            users: Mutex::new(Users {
                count: 0,
                idle_since: Some(Instant::now()),
            }),
            ready: tokio::sync::Mutex::new(None),
        }
    }

    fn users(&self) -> MutexGuard<'_, Users> {
        self.users.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Keeps the claim's holder pod while it lives.
#[derive(Debug)]
pub struct MountLease {
    entry: Arc<Entry>,
}

impl Drop for MountLease {
    fn drop(&mut self) {
        let mut users = self.entry.users();
        users.count = users.count.saturating_sub(1);
        if users.count == 0 {
            users.idle_since = Some(Instant::now());
        }
    }
}

/// The holder pods of this agent's node.
pub struct MountHolders {
    client: kube::Client,
    config: HolderConfig,
    times: HolderTimes,
    entries: Mutex<HashMap<ClaimKey, Arc<Entry>>>,
}

impl MountHolders {
    pub fn new(client: kube::Client, config: HolderConfig, times: HolderTimes) -> MountHolders {
        MountHolders {
            client,
            config,
            times,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn entries(&self) -> MutexGuard<'_, HashMap<ClaimKey, Arc<Entry>>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The value of the node label of this node's holder pods.
    fn node_label(&self) -> String {
        node_label_value(&self.config.node)
    }

    /// Takes over the holder pods a previous run of this agent left on its node, as idle
    /// holders: used again by the next grant of their claim, deleted after the idle timeout.
    /// A second pod for the same claim is deleted at once.
    pub async fn adopt(&self) -> Result<usize, kube::Error> {
        let selector = format!(
            "{}={}",
            well_known::label::MOUNT_HOLDER_NODE,
            self.node_label()
        );
        let pods = Api::<Pod>::all(self.client.clone())
            .list(&ListParams::default().labels(&selector))
            .await?;
        let mut adopted = 0;
        for pod in pods.items {
            let namespace = pod.metadata.namespace.clone().unwrap_or_default();
            let name = pod.metadata.name.clone().unwrap_or_default();
            let claim = pod
                .spec
                .iter()
                .flat_map(|s| s.volumes.iter().flatten())
                .find_map(|v| v.persistent_volume_claim.as_ref())
                .map(|c| c.claim_name.clone());
            let taken = match &claim {
                Some(claim) => {
                    let key = ClaimKey {
                        namespace: namespace.clone(),
                        name: claim.clone(),
                    };
                    let mut entries = self.entries();
                    if entries.contains_key(&key) {
                        true
                    } else {
                        entries.insert(key.clone(), Arc::new(Entry::new(key, name.clone())));
                        false
                    }
                }
                None => true,
            };
            if taken || pod.metadata.deletion_timestamp.is_some() {
                holder_pod::delete(&self.client, &namespace, &name).await;
            } else {
                tracing::info!(pod = %name, namespace, "adopted a repository holder pod left by a previous run");
                adopted += 1;
            }
        }
        Ok(adopted)
    }

    /// The directory of `pvc`'s volume mounted on this node by its holder pod, started if
    /// needed, and a lease that keeps it.
    pub async fn acquire(
        &self,
        pvc: &PersistentVolumeClaim,
    ) -> Result<(PathBuf, MountLease), MountHolderError> {
        let key = ClaimKey {
            namespace: pvc.metadata.namespace.clone().unwrap_or_default(),
            name: pvc.metadata.name.clone().unwrap_or_default(),
        };
        // Counted before any wait, so the reaper never deletes a holder being started.
        let lease = {
            let mut entries = self.entries();
            let entry = entries
                .entry(key.clone())
                .or_insert_with(|| Arc::new(Entry::new(key.clone(), random_pod_name())))
                .clone();
            let mut users = entry.users();
            users.count += 1;
            users.idle_since = None;
            drop(users);
            MountLease { entry }
        };
        let entry = lease.entry.clone();
        let mut ready = entry.ready.lock().await;
        let holder = self.holder(&entry, pvc);
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &key.namespace);
        if let Some((uid, dir)) = ready.as_ref() {
            let current = pods
                .get_opt(&entry.pod)
                .await
                .map_err(|source| HolderError::Api {
                    step: "reading",
                    kind: "Pod",
                    namespace: key.namespace.clone(),
                    name: entry.pod.clone(),
                    source: Box::new(source),
                })?;
            let still_running = current.is_some_and(|p| {
                p.metadata.uid.as_deref() == Some(uid.as_str())
                    && p.metadata.deletion_timestamp.is_none()
                    && p.status.and_then(|s| s.phase).as_deref() == Some("Running")
            });
            if still_running && tokio::fs::metadata(dir).await.is_ok_and(|m| m.is_dir()) {
                return Ok((dir.clone(), lease));
            }
            *ready = None;
        }
        let started = Instant::now();
        self.wait_not_held_elsewhere(pvc, started).await?;
        let pod = holder_pod::pod(&self.config, &holder);
        holder_pod::create_or_adopt(&self.client, "Pod", &holder, &entry.pod, &pod).await?;
        tracing::info!(pod = %entry.pod, namespace = %key.namespace, claim = %key.name, "holding a repository PVC on this node");
        let (uid, pv) =
            holder_pod::wait_running(&self.client, &holder, Some(self.times.start), started)
                .await?;
        let dir =
            holder_pod::volume_dir(&self.client, &self.config.kubelet_dir, &holder, &uid, &pv)
                .await?;
        holder_pod::ensure_writable(&self.config.kubelet_dir, &holder, &dir).await?;
        *ready = Some((uid, dir.clone()));
        Ok((dir, lease))
    }

    fn holder(&self, entry: &Entry, pvc: &PersistentVolumeClaim) -> Holder {
        repository_holder(&self.config.node, &entry.pod, pvc)
    }

    /// Waits while a ReadWriteOnce claim is mounted by a pod on another node; an error naming
    /// that pod and node once the start timeout has passed.
    async fn wait_not_held_elsewhere(
        &self,
        pvc: &PersistentVolumeClaim,
        started: Instant,
    ) -> Result<(), MountHolderError> {
        let namespace = pvc.metadata.namespace.clone().unwrap_or_default();
        let claim = pvc.metadata.name.clone().unwrap_or_default();
        let Some(modes) = single_node_modes(pvc) else {
            return Ok(());
        };
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &namespace);
        loop {
            let list = pods.list(&ListParams::default()).await.map_err(|source| {
                MountHolderError::ListPods {
                    namespace: namespace.clone(),
                    claim: claim.clone(),
                    source: Box::new(source),
                }
            })?;
            let Some((pod, node)) = held_elsewhere(&claim, &list.items, &self.config.node) else {
                return Ok(());
            };
            if started.elapsed() >= self.times.start {
                return Err(MountHolderError::HeldElsewhere {
                    namespace,
                    claim,
                    modes,
                    pod,
                    node,
                    this_node: self.config.node.clone(),
                    seconds: self.times.start.as_secs(),
                });
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    }

    /// Deletes the pods of holders idle for longer than the idle timeout, until `shutdown`.
    pub async fn reap(self: Arc<Self>, shutdown: CancellationToken) {
        let period =
            (self.times.idle / 4).clamp(Duration::from_millis(200), Duration::from_secs(5));
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(period) => {}
            }
            self.reap_idle().await;
        }
    }

    /// One pass of [`MountHolders::reap`].
    pub async fn reap_idle(&self) {
        let idle: Vec<Arc<Entry>> = {
            let mut entries = self.entries();
            let keys: Vec<ClaimKey> = entries
                .iter()
                .filter(|(_, e)| {
                    let users = e.users();
                    users.count == 0
                        && users
                            .idle_since
                            .is_some_and(|since| since.elapsed() >= self.times.idle)
                })
                .map(|(k, _)| k.clone())
                .collect();
            // Removed under the lock that `acquire` counts users under: no one can use these
            // entries any more; a new grant starts a new holder (with another pod name).
            keys.iter().filter_map(|k| entries.remove(k)).collect()
        };
        for entry in idle {
            let _starting = entry.ready.lock().await;
            tracing::info!(pod = %entry.pod, namespace = %entry.key.namespace, claim = %entry.key.name, "deleting an idle repository holder pod");
            holder_pod::delete(&self.client, &entry.key.namespace, &entry.pod).await;
        }
    }

    /// Deletes every holder pod (the agent stops).
    pub async fn release_all(&self) {
        let all: Vec<Arc<Entry>> = self.entries().drain().map(|(_, e)| e).collect();
        for entry in all {
            holder_pod::delete(&self.client, &entry.key.namespace, &entry.pod).await;
        }
    }

    /// Holder pods this agent keeps now (for tests and metrics).
    pub fn held(&self) -> usize {
        self.entries().len()
    }
}

/// A holder pod's name: random, so that a pod being deleted and its successor never collide.
fn random_pod_name() -> String {
    let mut bytes = [0u8; 5];
    rand::fill(&mut bytes[..]);
    format!("cairn-repo-holder-{}", hex::encode(bytes))
}

/// The holder pod `pod` of a repository PVC on `node`: labelled with its node (which a
/// restarted agent adopts it by) and owned by the claim, so deleting the repository PVC takes
/// its holder with it.
pub fn repository_holder(node: &str, pod: &str, pvc: &PersistentVolumeClaim) -> Holder {
    let labels = BTreeMap::from([
        (
            well_known::label::MANAGED_BY.to_string(),
            well_known::label::MANAGED_BY_DATA_PROTECTION.to_string(),
        ),
        (
            well_known::label::MOUNT_HOLDER_NODE.to_string(),
            node_label_value(node),
        ),
    ]);
    let claim = pvc.metadata.name.clone().unwrap_or_default();
    let owner = pvc.metadata.uid.clone().map(|uid| OwnerReference {
        api_version: "v1".into(),
        kind: "PersistentVolumeClaim".into(),
        name: claim.clone(),
        uid,
        ..OwnerReference::default()
    });
    Holder {
        namespace: pvc.metadata.namespace.clone().unwrap_or_default(),
        pod: pod.to_string(),
        claim,
        labels,
        owner_references: owner.into_iter().collect(),
        read_only: false,
        adopt_label: well_known::label::MOUNT_HOLDER_NODE.into(),
    }
}

/// A node name as a label value (at most 63 characters): itself when it fits, else a prefix
/// and a hash of the whole.
pub fn node_label_value(node: &str) -> String {
    if node.len() <= 63 {
        return node.to_string();
    }
    // FNV-1a: stable across builds (a restarted agent of another version finds the same value).
    let hash = node.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    let prefix: String = node.chars().take(46).collect();
    format!("{}-{hash:016x}", prefix.trim_end_matches(['-', '.', '_']))
}

/// The claim's access modes when they let only one node mount it (`ReadWriteOnce`,
/// `ReadWriteOncePod`), as text; `None` when another node may mount it too.
fn single_node_modes(pvc: &PersistentVolumeClaim) -> Option<String> {
    let modes: Vec<String> = pvc
        .status
        .as_ref()
        .and_then(|s| s.access_modes.clone())
        .filter(|m| !m.is_empty())
        .or_else(|| pvc.spec.as_ref().and_then(|s| s.access_modes.clone()))
        .unwrap_or_default();
    let shared = modes
        .iter()
        .any(|m| m == "ReadWriteMany" || m == "ReadOnlyMany");
    (!modes.is_empty() && !shared).then(|| modes.join(","))
}

/// A pod that is not finished, scheduled on a node other than `node`, mounting `claim` (pure).
fn held_elsewhere(claim: &str, pods: &[Pod], node: &str) -> Option<(String, String)> {
    pods.iter().find_map(|pod| {
        let spec = pod.spec.as_ref()?;
        let on = spec
            .node_name
            .as_deref()
            .filter(|n| !n.is_empty() && *n != node)?;
        let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
        if matches!(phase, Some("Succeeded" | "Failed")) {
            return None;
        }
        spec.volumes
            .iter()
            .flatten()
            .any(|v| {
                v.persistent_volume_claim
                    .as_ref()
                    .is_some_and(|c| c.claim_name == claim)
            })
            .then(|| {
                (
                    pod.metadata.name.clone().unwrap_or_default(),
                    on.to_string(),
                )
            })
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pvc(modes: &[&str]) -> PersistentVolumeClaim {
        serde_json::from_value(json!({
            "metadata": {"name": "repo", "namespace": "ns"},
            "spec": {"accessModes": modes},
        }))
        .unwrap()
    }

    fn pod(name: &str, node: &str, claim: &str, phase: &str) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "ns"},
            "spec": {"nodeName": node, "containers": [],
                "volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": claim}}]},
            "status": {"phase": phase},
        }))
        .unwrap()
    }

    #[test]
    fn only_single_node_access_modes_are_waited_for() {
        assert_eq!(
            single_node_modes(&pvc(&["ReadWriteOnce"])).as_deref(),
            Some("ReadWriteOnce")
        );
        assert_eq!(
            single_node_modes(&pvc(&["ReadWriteOncePod"])).as_deref(),
            Some("ReadWriteOncePod")
        );
        assert_eq!(single_node_modes(&pvc(&["ReadWriteMany"])), None);
        assert_eq!(
            single_node_modes(&pvc(&["ReadWriteOnce", "ReadOnlyMany"])),
            None
        );
        assert_eq!(single_node_modes(&pvc(&[])), None);
    }

    #[test]
    fn a_running_pod_on_another_node_holds_the_claim() {
        let pods = [
            pod("here", "node-a", "repo", "Running"),
            pod("done", "node-b", "repo", "Succeeded"),
            pod("other-claim", "node-b", "data", "Running"),
        ];
        assert_eq!(held_elsewhere("repo", &pods, "node-a"), None);
        let pods = [pod("db-0", "node-b", "repo", "Running")];
        assert_eq!(
            held_elsewhere("repo", &pods, "node-a"),
            Some(("db-0".to_string(), "node-b".to_string()))
        );
    }

    #[test]
    fn long_node_names_become_valid_label_values() {
        assert_eq!(node_label_value("node-a"), "node-a");
        let long = format!("{}.compute.internal", "ip-10-0-0-1".repeat(6));
        let value = node_label_value(&long);
        assert!(value.len() <= 63, "{value}");
        assert_ne!(value, node_label_value(&format!("{long}x")));
    }

    #[test]
    fn the_held_elsewhere_error_names_claim_pod_and_both_nodes() {
        let err = MountHolderError::HeldElsewhere {
            namespace: "ns".into(),
            claim: "repo".into(),
            modes: "ReadWriteOnce".into(),
            pod: "db-0".into(),
            node: "node-b".into(),
            this_node: "node-a".into(),
            seconds: 120,
        }
        .to_string();
        for part in ["ns/repo", "db-0", "node-b", "node-a", "ReadWriteOnce"] {
            assert!(err.contains(part), "{err}");
        }
    }
}
