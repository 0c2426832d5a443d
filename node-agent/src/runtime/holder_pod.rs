//! Holder pods (ARCHITECTURE.md §K2.5a, §K5.5): a short-lived pod on the agent's node that only
//! keeps a claim mounted, so that the agent reads and writes the volume where the kubelet
//! mounted it, under `<kubelet-dir>/pods/<uid>/volumes/`. Works for any volume type the
//! kubelet can mount (CSI, NFS, local, hostPath): the driver mounts it, the agent only opens a
//! directory. Used by snapshot data movement (`volume_move`) and by Mount repositories whose
//! volume is not a local directory of this node (`mount_holder`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::json;
use tokio::time::Instant;

/// How often the claim and the holder pod are read while waiting.
pub const POLL: Duration = Duration::from_millis(500);
/// The agent subcommand a holder pod runs: it sleeps until it is stopped.
pub const HOLD_SUBCOMMAND: &str = "hold-volume";
/// Where the holder pod mounts the claim (nothing reads it there; the agent reads the node's).
const HOLD_MOUNT: &str = "/data";

/// Why a claim could not be held on this node.
#[derive(Debug, thiserror::Error)]
pub enum HolderError {
    #[error("{step} {kind} {namespace}/{name}")]
    Api {
        step: &'static str,
        kind: &'static str,
        namespace: String,
        name: String,
        #[source]
        source: Box<kube::Error>,
    },
    #[error(
        "{kind} {namespace}/{name} already exists and was not created for this holder ({label} {other:?})"
    )]
    NameTaken {
        kind: &'static str,
        namespace: String,
        name: String,
        label: String,
        other: Option<String>,
    },
    #[error("holder pod {namespace}/{pod} of claim {claim} failed: {reason}")]
    PodFailed {
        namespace: String,
        pod: String,
        claim: String,
        reason: String,
    },
    #[error("{what} after {seconds}s")]
    Timeout { what: String, seconds: u64 },
    #[error(
        "the agent cannot write the volume of claim {namespace}/{claim} at {dir}: the kubelet's pods directory {pods} is mounted read-only in the agent; mount it writable (the Helm chart's value agent.kubeletPodsWritable=true)"
    )]
    ReadOnly {
        namespace: String,
        claim: String,
        dir: String,
        pods: String,
    },
    #[error("checking that the volume of claim {namespace}/{claim} at {dir} is writable")]
    WriteCheck {
        namespace: String,
        claim: String,
        dir: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the volume of claim {namespace}/{claim} (PersistentVolume {pv}) is not mounted on this node under {dir}"
    )]
    NotMounted {
        namespace: String,
        claim: String,
        pv: String,
        dir: String,
    },
}

/// Where this agent runs, as a holder pod needs it.
#[derive(Debug, Clone)]
pub struct HolderConfig {
    pub node: String,
    pub kubelet_dir: PathBuf,
    /// The holder pod's image (the agent's own).
    pub image: String,
    /// The agent binary inside that image.
    pub agent_binary: String,
}

/// One holder pod: its name and namespace (the claim's), the claim, and how it is marked.
#[derive(Debug, Clone)]
pub struct Holder {
    pub namespace: String,
    pub pod: String,
    pub claim: String,
    pub labels: BTreeMap<String, String>,
    pub owner_references: Vec<OwnerReference>,
    pub read_only: bool,
    /// The label whose value marks a pod as this holder's (an existing pod with another value
    /// is someone else's and is never adopted).
    pub adopt_label: String,
}

impl Holder {
    fn adopt_value(&self) -> Option<&str> {
        self.labels.get(&self.adopt_label).map(String::as_str)
    }

    fn api_error(
        &self,
        step: &'static str,
        kind: &'static str,
    ) -> impl FnOnce(kube::Error) -> HolderError {
        let (namespace, name) = (
            self.namespace.clone(),
            if kind == "PersistentVolumeClaim" {
                self.claim.clone()
            } else {
                self.pod.clone()
            },
        );
        move |source| HolderError::Api {
            step,
            kind,
            namespace,
            name,
            source: Box::new(source),
        }
    }
}

/// The holder pod: the claim mounted, on this node, sleeping until deleted.
pub fn pod(config: &HolderConfig, holder: &Holder) -> Pod {
    let pod = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": holder.pod,
            "namespace": holder.namespace,
            "labels": holder.labels,
            "ownerReferences": holder.owner_references,
        },
        "spec": {
            // Scheduled (not `nodeName`): a WaitForFirstConsumer claim binds only once the
            // scheduler picked the pod's node.
            "nodeSelector": {"kubernetes.io/hostname": config.node},
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 0,
            "automountServiceAccountToken": false,
            "securityContext": {"runAsNonRoot": true, "runAsUser": 65532, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{
                "name": "hold",
                "image": config.image,
                "command": [config.agent_binary, HOLD_SUBCOMMAND],
                "securityContext": {
                    "allowPrivilegeEscalation": false,
                    "readOnlyRootFilesystem": true,
                    "capabilities": {"drop": ["ALL"]},
                },
                "volumeMounts": [{"name": "data", "mountPath": HOLD_MOUNT, "readOnly": holder.read_only}],
            }],
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": holder.claim, "readOnly": holder.read_only}}],
        },
    });
    serde_json::from_value(pod).unwrap_or_default()
}

/// Creates `object` (`kind` `holder.namespace/name`), or adopts an existing one marked with the
/// holder's adopt label value. An existing object being deleted is waited for and created
/// again (a holder released just before it was needed again).
pub async fn create_or_adopt<K>(
    client: &kube::Client,
    kind: &'static str,
    holder: &Holder,
    name: &str,
    object: &K,
) -> Result<(), HolderError>
where
    K: kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::Serialize
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), &holder.namespace);
    let api_error = |step| {
        let (namespace, name) = (holder.namespace.clone(), name.to_string());
        move |source| HolderError::Api {
            step,
            kind,
            namespace,
            name,
            source: Box::new(source),
        }
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match api.create(&PostParams::default(), object).await {
            Ok(_) => return Ok(()),
            Err(kube::Error::Api(status)) if status.code == 409 => {
                let Some(existing) = api.get_opt(name).await.map_err(api_error("reading"))? else {
                    continue;
                };
                if existing.meta().deletion_timestamp.is_some() && Instant::now() < deadline {
                    tokio::time::sleep(POLL).await;
                    continue;
                }
                let owner = existing
                    .meta()
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(&holder.adopt_label))
                    .cloned();
                return if owner.is_some() && owner.as_deref() == holder.adopt_value() {
                    Ok(())
                } else {
                    Err(HolderError::NameTaken {
                        kind,
                        namespace: holder.namespace.clone(),
                        name: name.to_string(),
                        label: holder.adopt_label.clone(),
                        other: owner,
                    })
                };
            }
            Err(source) => return Err(api_error("creating")(source)),
        }
    }
}

/// Waits until the holder pod runs and its claim is bound; returns the pod's uid and the
/// claim's PersistentVolume.
pub async fn wait_running(
    client: &kube::Client,
    holder: &Holder,
    timeout: Option<Duration>,
    started: Instant,
) -> Result<(String, String), HolderError> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), &holder.namespace);
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &holder.namespace);
    loop {
        let pod = pods
            .get_opt(&holder.pod)
            .await
            .map_err(holder.api_error("reading", "Pod"))?;
        let claim = claims
            .get_opt(&holder.claim)
            .await
            .map_err(holder.api_error("reading", "PersistentVolumeClaim"))?;
        let phase = pod
            .as_ref()
            .and_then(|p| p.status.as_ref())
            .and_then(|s| s.phase.clone())
            .unwrap_or_default();
        if phase == "Failed" || phase == "Succeeded" {
            let reason = pod
                .as_ref()
                .and_then(|p| p.status.as_ref())
                .and_then(|s| s.message.clone().or(s.reason.clone()))
                .unwrap_or_else(|| format!("the pod ended ({phase})"));
            return Err(HolderError::PodFailed {
                namespace: holder.namespace.clone(),
                pod: holder.pod.clone(),
                claim: holder.claim.clone(),
                reason,
            });
        }
        let pv = claim
            .as_ref()
            .and_then(|c| c.spec.as_ref())
            .and_then(|s| s.volume_name.clone())
            .filter(|v| !v.is_empty());
        let uid = pod.as_ref().and_then(|p| p.metadata.uid.clone());
        if phase == "Running"
            && let (Some(uid), Some(pv)) = (uid, pv)
        {
            return Ok((uid, pv));
        }
        if let Some(limit) = timeout
            && started.elapsed() >= limit
        {
            let state = if claim.is_none() {
                "does not exist".to_string()
            } else if pod.is_none() {
                "is gone".to_string()
            } else if phase.is_empty() {
                "is not running (no phase yet)".to_string()
            } else {
                format!("is {phase}")
            };
            return Err(HolderError::Timeout {
                what: format!(
                    "claim {}/{} not mounted: its holder pod {} {state}",
                    holder.namespace, holder.claim, holder.pod
                ),
                seconds: limit.as_secs(),
            });
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The directory of the claim's volume as the kubelet mounted it for the holder pod `uid`: a
/// CSI volume at `kubernetes.io~csi/<pv>/mount`, an NFS one at `kubernetes.io~nfs/<volume>`, a
/// local one at `kubernetes.io~local-volume/<pv>`, a hostPath one at its path.
pub async fn volume_dir(
    client: &kube::Client,
    kubelet_dir: &Path,
    holder: &Holder,
    uid: &str,
    pv_name: &str,
) -> Result<PathBuf, HolderError> {
    let volumes = kubelet_dir.join("pods").join(uid).join("volumes");
    let pv = Api::<PersistentVolume>::all(client.clone())
        .get_opt(pv_name)
        .await
        .map_err(|source| HolderError::Api {
            step: "reading",
            kind: "PersistentVolume",
            namespace: String::new(),
            name: pv_name.into(),
            source: Box::new(source),
        })?;
    let mut candidates = vec![
        volumes
            .join("kubernetes.io~csi")
            .join(pv_name)
            .join("mount"),
        volumes.join("kubernetes.io~nfs").join(pv_name),
        volumes.join("kubernetes.io~local-volume").join(pv_name),
    ];
    if let Some(path) = pv
        .as_ref()
        .and_then(|v| v.spec.as_ref())
        .and_then(|s| s.host_path.as_ref())
        .map(|h| PathBuf::from(&h.path))
    {
        candidates.push(path);
    }
    let found = tokio::task::spawn_blocking(move || candidates.into_iter().find(|c| c.is_dir()))
        .await
        .ok()
        .flatten();
    found.ok_or_else(|| HolderError::NotMounted {
        namespace: holder.namespace.clone(),
        claim: holder.claim.clone(),
        pv: pv_name.into(),
        dir: volumes.display().to_string(),
    })
}

/// Checks that the agent can write the held volume at `dir` (a probe file created and
/// removed): a read-only mount of the kubelet's pods directory is reported naming it and the
/// chart value that makes it writable.
pub async fn ensure_writable(
    kubelet_dir: &Path,
    holder: &Holder,
    dir: &Path,
) -> Result<(), HolderError> {
    let mut suffix = [0u8; 6];
    rand::fill(&mut suffix[..]);
    let probe = dir.join(format!(".cairn-write-check-{}", hex::encode(suffix)));
    let written = tokio::task::spawn_blocking(move || {
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&probe)
            .and_then(|_| std::fs::remove_file(&probe))
    })
    .await
    .unwrap_or_else(|err| Err(std::io::Error::other(err)));
    written.map_err(|err| write_error(kubelet_dir, holder, dir, err))
}

/// The error of a failed write check (pure).
fn write_error(
    kubelet_dir: &Path,
    holder: &Holder,
    dir: &Path,
    err: std::io::Error,
) -> HolderError {
    if err.kind() == std::io::ErrorKind::ReadOnlyFilesystem {
        HolderError::ReadOnly {
            namespace: holder.namespace.clone(),
            claim: holder.claim.clone(),
            dir: dir.display().to_string(),
            pods: kubelet_dir.join("pods").display().to_string(),
        }
    } else {
        HolderError::WriteCheck {
            namespace: holder.namespace.clone(),
            claim: holder.claim.clone(),
            dir: dir.display().to_string(),
            source: err,
        }
    }
}

/// Deletes a holder pod at once (best effort: a pod left behind is deleted again by whoever
/// owns it, or by a restarted agent).
pub async fn delete(client: &kube::Client, namespace: &str, pod: &str) {
    let params = DeleteParams {
        grace_period_seconds: Some(0),
        ..DeleteParams::default()
    };
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    if let Err(err) = pods.delete(pod, &params).await
        && !is_not_found(&err)
    {
        tracing::warn!(pod = %pod, namespace, error = %err, "deleting a holder pod failed");
    }
}

pub fn is_not_found(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Api(status) if status.code == 404)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn holder(read_only: bool) -> Holder {
        Holder {
            namespace: "ns".into(),
            pod: "hold-1".into(),
            claim: "repo".into(),
            labels: BTreeMap::from([("k".to_string(), "v".to_string())]),
            owner_references: Vec::new(),
            read_only,
            adopt_label: "k".into(),
        }
    }

    #[test]
    fn a_read_only_pods_directory_is_named_with_the_value_that_makes_it_writable() {
        let err = write_error(
            Path::new("/var/lib/kubelet"),
            &holder(false),
            Path::new("/var/lib/kubelet/pods/u1/volumes/kubernetes.io~csi/pv1/mount"),
            std::io::Error::from_raw_os_error(30),
        )
        .to_string();
        for part in [
            "ns/repo",
            "/var/lib/kubelet/pods ",
            "agent.kubeletPodsWritable=true",
        ] {
            assert!(err.contains(part), "{err}");
        }
    }

    #[tokio::test]
    async fn a_writable_volume_passes_the_check_and_keeps_no_probe() {
        let dir = tempfile::tempdir().unwrap();
        ensure_writable(Path::new("/k"), &holder(false), dir.path())
            .await
            .unwrap();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        let missing = dir.path().join("missing");
        let err = ensure_writable(Path::new("/k"), &holder(false), &missing)
            .await
            .unwrap_err();
        assert!(matches!(err, HolderError::WriteCheck { .. }), "{err}");
    }

    #[test]
    fn the_holder_pod_runs_on_this_node_with_the_claim_and_no_privileges() {
        let config = HolderConfig {
            node: "node-a".into(),
            kubelet_dir: "/var/lib/kubelet".into(),
            image: "cairn/agent:1".into(),
            agent_binary: "/cairn-agent".into(),
        };
        let pod = serde_json::to_value(pod(&config, &holder(false))).unwrap();
        assert_eq!(
            pod["spec"]["nodeSelector"]["kubernetes.io/hostname"],
            "node-a"
        );
        assert_eq!(
            pod["spec"]["volumes"][0]["persistentVolumeClaim"],
            json!({"claimName": "repo", "readOnly": false})
        );
        assert_eq!(
            pod["spec"]["containers"][0]["command"],
            json!(["/cairn-agent", HOLD_SUBCOMMAND])
        );
        assert_eq!(
            pod["spec"]["containers"][0]["securityContext"]["capabilities"]["drop"],
            json!(["ALL"])
        );
        assert_eq!(pod["metadata"]["labels"]["k"], "v");
        let read_only = serde_json::to_value(super::pod(&config, &holder(true))).unwrap();
        assert_eq!(
            read_only["spec"]["volumes"][0]["persistentVolumeClaim"]["readOnly"],
            true
        );
    }
}
