//! The quickstart's few cluster operations: create objects, wait for a pod to be Ready (failing
//! with its state and log when it cannot start), wait for an ActionSet or BackupPolicy to be
//! Available, and find the host directory behind a PVC (standalone mode's local-path volumes).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context as _, bail};
use cairn_api::actionset::ActionSet;
use cairn_api::backup_policy::BackupPolicy;
use cairn_api::common::Phase;
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim, Pod};
use kube::api::{Api, DeleteParams, LogParams, PostParams};
use kube::{Client, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::manifests::NAMESPACE;

/// Creates a namespaced object in the quickstart namespace.
pub async fn create<K>(client: &Client, object: &K) -> anyhow::Result<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Serialize
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    let api: Api<K> = Api::namespaced(client.clone(), NAMESPACE);
    let name = object.meta().name.clone().unwrap_or_default();
    api.create(&PostParams::default(), object)
        .await
        .with_context(|| {
            format!(
                "creating {} {NAMESPACE}/{name}",
                K::kind(&Default::default())
            )
        })
}

/// Creates a cluster-scoped object.
pub async fn create_cluster<K>(client: &Client, object: &K) -> anyhow::Result<K>
where
    K: Resource<Scope = k8s_openapi::ClusterResourceScope>
        + Clone
        + DeserializeOwned
        + Serialize
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    let api: Api<K> = Api::all(client.clone());
    let name = object.meta().name.clone().unwrap_or_default();
    api.create(&PostParams::default(), object)
        .await
        .with_context(|| format!("creating {} {name}", K::kind(&Default::default())))
}

/// Why a pod is not running, from its status (`None` while it may still start).
pub fn pod_problem(pod: &Pod) -> Option<String> {
    let status = pod.status.as_ref()?;
    if status.phase.as_deref() == Some("Failed") || status.phase.as_deref() == Some("Succeeded") {
        return Some(format!(
            "the pod stopped (phase {}){}",
            status.phase.clone().unwrap_or_default(),
            status
                .message
                .as_ref()
                .map(|m| format!(": {m}"))
                .unwrap_or_default()
        ));
    }
    let containers = status
        .init_container_statuses
        .iter()
        .flatten()
        .chain(status.container_statuses.iter().flatten());
    for c in containers {
        let state = c.state.as_ref();
        if let Some(waiting) = state.and_then(|s| s.waiting.as_ref())
            && matches!(
                waiting.reason.as_deref(),
                Some(
                    "CrashLoopBackOff"
                        | "CreateContainerError"
                        | "CreateContainerConfigError"
                        | "RunContainerError"
                )
            )
        {
            return Some(format!(
                "container {} is {}: {}",
                c.name,
                waiting.reason.clone().unwrap_or_default(),
                waiting.message.clone().unwrap_or_default()
            ));
        }
        if let Some(terminated) = state.and_then(|s| s.terminated.as_ref())
            && terminated.exit_code != 0
        {
            return Some(format!(
                "container {} exited with code {}{}",
                c.name,
                terminated.exit_code,
                terminated
                    .message
                    .as_ref()
                    .map(|m| format!(": {m}"))
                    .unwrap_or_default()
            ));
        }
    }
    None
}

fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|conditions| {
            conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
        })
}

/// Waits until the pod is Ready; `tick` runs between looks (to draw progress). Fails with the
/// pod's problem and the end of its log when it cannot start.
pub async fn wait_pod_ready(
    client: &Client,
    name: &str,
    timeout: Duration,
    tick: &mut (dyn FnMut() + Send),
) -> anyhow::Result<Pod> {
    let api: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let pod = api
            .get(name)
            .await
            .with_context(|| format!("reading pod {NAMESPACE}/{name}"))?;
        if is_ready(&pod) {
            return Ok(pod);
        }
        let problem = pod_problem(&pod);
        let late = tokio::time::Instant::now() > deadline;
        if problem.is_some() || late {
            let why = problem.unwrap_or_else(|| {
                format!(
                    "not Ready after {}s (phase {})",
                    timeout.as_secs(),
                    pod.status
                        .as_ref()
                        .and_then(|s| s.phase.clone())
                        .unwrap_or_default()
                )
            });
            let log = pod_log(&api, &pod).await;
            bail!("pod {NAMESPACE}/{name}: {why}{log}");
        }
        tick();
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The last lines of every container's log, as a suffix for an error.
async fn pod_log(api: &Api<Pod>, pod: &Pod) -> String {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let spec = pod.spec.clone().unwrap_or_default();
    let mut out = String::new();
    for container in spec
        .init_containers
        .iter()
        .flatten()
        .chain(spec.containers.iter())
    {
        let params = LogParams {
            container: Some(container.name.clone()),
            tail_lines: Some(15),
            ..LogParams::default()
        };
        if let Ok(text) = api.logs(&name, &params).await
            && !text.trim().is_empty()
        {
            out.push_str(&format!(
                "\n--- last lines of container {} ---\n{}",
                container.name,
                text.trim_end()
            ));
        }
    }
    out
}

/// Deletes a pod and waits until it is gone.
pub async fn delete_pod(client: &Client, name: &str) -> anyhow::Result<()> {
    let api: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);
    api.delete(name, &DeleteParams::default())
        .await
        .with_context(|| format!("deleting pod {NAMESPACE}/{name}"))?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while api.get_opt(name).await?.is_some() {
        if tokio::time::Instant::now() > deadline {
            bail!("pod {NAMESPACE}/{name} was not gone 60s after its deletion");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}

/// Waits until an ActionSet is Available.
pub async fn wait_actionset(client: &Client, name: &str) -> anyhow::Result<()> {
    let api: Api<ActionSet> = Api::all(client.clone());
    wait_available(
        || async {
            let object = api
                .get(name)
                .await
                .with_context(|| format!("reading ActionSet {name}"))?;
            let status = object.status.unwrap_or_default();
            Ok((status.phase, status.message))
        },
        &format!("ActionSet {name}"),
    )
    .await
}

/// Waits until a BackupPolicy is Available.
pub async fn wait_policy(client: &Client, name: &str) -> anyhow::Result<()> {
    let api: Api<BackupPolicy> = Api::namespaced(client.clone(), NAMESPACE);
    wait_available(
        || async {
            let object = api
                .get(name)
                .await
                .with_context(|| format!("reading BackupPolicy {NAMESPACE}/{name}"))?;
            let status = object.status.unwrap_or_default();
            Ok((status.phase, status.message))
        },
        &format!("BackupPolicy {NAMESPACE}/{name}"),
    )
    .await
}

async fn wait_available<F, Fut>(mut read: F, what: &str) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<(Option<Phase>, Option<String>)>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        match read().await? {
            (Some(Phase::Available), _) => return Ok(()),
            (Some(Phase::Unavailable), message) => {
                bail!("{what} is Unavailable: {}", message.unwrap_or_default())
            }
            (None, _) => {}
        }
        if tokio::time::Instant::now() > deadline {
            bail!("{what} was not Available within 30s (is the control plane running?)");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The host directory of a claim's local-path volume, once it is bound.
pub async fn volume_dir(client: &Client, claim: &str) -> anyhow::Result<Option<PathBuf>> {
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), NAMESPACE);
    let Some(pvc) = claims
        .get_opt(claim)
        .await
        .with_context(|| format!("reading PVC {NAMESPACE}/{claim}"))?
    else {
        return Ok(None);
    };
    let Some(volume) = pvc
        .spec
        .and_then(|s| s.volume_name)
        .filter(|v| !v.is_empty())
    else {
        return Ok(None);
    };
    let volumes: Api<PersistentVolume> = Api::all(client.clone());
    let pv = volumes
        .get(&volume)
        .await
        .with_context(|| format!("reading PersistentVolume {volume}"))?;
    let path = pv
        .spec
        .and_then(|s| s.local.map(|l| l.path).or(s.host_path.map(|h| h.path)));
    Ok(path.map(PathBuf::from))
}

/// Finds a claim's volume directory in the background (it appears once a pod binds the
/// claim), for progress drawn while something else is awaited.
pub struct VolumeFinder {
    found: Arc<Mutex<Option<PathBuf>>>,
    task: tokio::task::JoinHandle<()>,
}

impl VolumeFinder {
    /// Starts looking for `claim`'s directory.
    pub fn start(client: &Client, claim: &str) -> VolumeFinder {
        let found: Arc<Mutex<Option<PathBuf>>> = Arc::default();
        let task = {
            let found = found.clone();
            let client = client.clone();
            let claim = claim.to_string();
            tokio::spawn(async move {
                loop {
                    if let Ok(Some(dir)) = volume_dir(&client, &claim).await {
                        if let Ok(mut slot) = found.lock() {
                            *slot = Some(dir);
                        }
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            })
        };
        VolumeFinder { found, task }
    }

    /// The directory, once found.
    pub fn dir(&self) -> Option<PathBuf> {
        self.found.lock().ok()?.clone()
    }
}

impl Drop for VolumeFinder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(status: serde_json::Value) -> Pod {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c"}]},
            "status": status
        }))
        .expect("pod")
    }

    #[test]
    fn a_crash_looping_or_failed_container_is_a_problem_and_a_starting_one_is_not() {
        assert_eq!(
            pod_problem(&pod(serde_json::json!({"phase": "Pending"}))),
            None
        );
        let crashing = pod(
            serde_json::json!({"phase": "Running", "containerStatuses": [{
                "name": "c", "ready": false, "restartCount": 3, "image": "", "imageID": "",
                "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 4s"}}
            }]}),
        );
        assert_eq!(
            pod_problem(&crashing).as_deref(),
            Some("container c is CrashLoopBackOff: back-off 4s")
        );
        let init_failed = pod(
            serde_json::json!({"phase": "Pending", "initContainerStatuses": [{
                "name": "prepare", "ready": false, "restartCount": 0, "image": "", "imageID": "",
                "state": {"terminated": {"exitCode": 1}}
            }]}),
        );
        assert_eq!(
            pod_problem(&init_failed).as_deref(),
            Some("container prepare exited with code 1")
        );
        let failed = pod(serde_json::json!({"phase": "Failed", "message": "deadline"}));
        assert_eq!(
            pod_problem(&failed).as_deref(),
            Some("the pod stopped (phase Failed): deadline")
        );
    }
}
