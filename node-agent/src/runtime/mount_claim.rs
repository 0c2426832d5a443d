//! How the agent reaches a Mount repository (ARCHITECTURE.md §K5.3, §K5.5): the grant names
//! the repository PVC, which resolves to its bound PersistentVolume:
//! - a `local` or `hostPath` volume usable on this node is its directory (the fast path);
//! - any other volume (CSI: geesefs, EFS, NFS CSI; in-tree NFS; ...) is mounted by a holder pod
//!   on this node (`mount_holder`), and the agent uses the directory the kubelet mounted for it
//!   under `<kubelet-dir>/pods/<uid>/volumes/`, as long as a lease on it lives.
//!
//! The agent then uses the directory as a local repository, so what it writes
//! (`kubeblocks-backup.json`), deletes, or serves to `datasafed` is exactly what action pods see
//! at `/backupdata`.
//!
//! # Caveats
//! - In a real cluster the agent must see a `local`/`hostPath` directory at the same path as
//!   the node does (a hostPath mount of that directory into the agent's pod), and the kubelet's
//!   pods directory writable with `HostToContainer` propagation for held volumes (the chart's
//!   `agent.kubeletPodsWritable`).

use std::path::PathBuf;
use std::sync::Arc;

use cairn_proto::agent::v1::{MountClaim, StorageGrant};
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use kube::api::Api;

use super::mount_holder::{MountHolderError, MountHolders, MountLease};
use crate::socket::grants::{ClaimLease, ClaimResolver, ClaimUnreachable, ReachedClaim};

/// Why a Mount repository's PVC cannot be turned into a directory on this node.
#[derive(Debug, thiserror::Error)]
pub enum MountClaimError {
    /// The API server could not be asked.
    #[error("reading {what}")]
    Read {
        what: String,
        #[source]
        source: Box<kube::Error>,
    },
    /// The grant names no PVC.
    #[error("the storage grant for repository {repo:?} names a repository PVC without a name")]
    NoName { repo: String },
    /// The PVC does not exist.
    #[error("the repository PVC {namespace}/{name} does not exist")]
    ClaimNotFound { namespace: String, name: String },
    /// The PVC exists but is not bound yet.
    #[error("the repository PVC {namespace}/{name} is not bound to a PersistentVolume yet")]
    NotBound { namespace: String, name: String },
    /// The bound PV is gone.
    #[error("PersistentVolume {volume} of the repository PVC {claim} does not exist")]
    VolumeNotFound { volume: String, claim: String },
    /// The volume is not a directory of this node, and holding it on this node failed.
    #[error(
        "reaching the {kind} volume {volume} of the repository PVC {claim} through a holder pod on this node"
    )]
    Holder {
        volume: String,
        claim: String,
        kind: String,
        #[source]
        source: Box<MountHolderError>,
    },
    /// The volume lives on other nodes.
    #[error(
        "PersistentVolume {volume} of the repository PVC {claim} is pinned to node(s) {nodes}, not to this agent's node {node}"
    )]
    OtherNode {
        volume: String,
        claim: String,
        nodes: String,
        node: String,
    },
}

/// Resolves claims with the agent's API client, for the grants registry.
pub struct MountClaims {
    client: kube::Client,
    node: String,
    holders: Arc<MountHolders>,
}

impl MountClaims {
    /// A resolver for the agent on `node`, holding non-local volumes with `holders`.
    pub fn new(
        client: kube::Client,
        node: impl Into<String>,
        holders: Arc<MountHolders>,
    ) -> MountClaims {
        MountClaims {
            client,
            node: node.into(),
            holders,
        }
    }
}

#[async_trait::async_trait]
impl ClaimResolver for MountClaims {
    async fn reach(&self, claim: &MountClaim) -> Result<ReachedClaim, ClaimUnreachable> {
        match resolve(&self.client, claim, &self.node, &self.holders).await {
            Ok((dir, lease)) => Ok(ReachedClaim {
                dir,
                lease: lease.map(|l| Box::new(l) as ClaimLease),
            }),
            Err(err) => Err(ClaimUnreachable {
                reason: super::runner::chain(&err),
                gone_or_unbound: err.claim_is_gone_or_unbound(),
            }),
        }
    }
}

impl MountClaimError {
    /// Whether the PVC holds nothing the agent could reach: it is gone or was never bound.
    pub fn claim_is_gone_or_unbound(&self) -> bool {
        matches!(
            self,
            MountClaimError::ClaimNotFound { .. } | MountClaimError::NotBound { .. }
        )
    }
}

/// Sets the grant's `local_path` from its `mount_claim` (a grant that already has a local path,
/// or no claim, is left as it is); returns what keeps that directory reachable, to be kept
/// while it is used.
pub async fn resolve_grant(
    resolver: Option<&dyn ClaimResolver>,
    grant: &mut StorageGrant,
) -> Result<Option<ClaimLease>, ClaimUnreachable> {
    if !grant.local_path.trim().is_empty() {
        return Ok(None);
    }
    let Some(claim) = &grant.mount_claim else {
        return Ok(None);
    };
    if claim.name.is_empty() {
        return Err(ClaimUnreachable {
            reason: MountClaimError::NoName {
                repo: grant.repo_name.clone(),
            }
            .to_string(),
            gone_or_unbound: false,
        });
    }
    let Some(resolver) = resolver else {
        return Err(ClaimUnreachable {
            reason: format!(
                "the storage grant for repository {:?} names the repository PVC {}/{}, which this agent cannot reach (no Kubernetes client)",
                grant.repo_name, claim.namespace, claim.name
            ),
            gone_or_unbound: false,
        });
    };
    let reached = resolver.reach(claim).await?;
    grant.local_path = reached.dir.display().to_string();
    Ok(reached.lease)
}

/// The directory on this node holding the PVC's data, and the lease of its holder pod when
/// the volume is not a local directory of this node.
pub async fn resolve(
    client: &kube::Client,
    claim: &MountClaim,
    node: &str,
    holders: &MountHolders,
) -> Result<(PathBuf, Option<MountLease>), MountClaimError> {
    let (namespace, name) = (claim.namespace.as_str(), claim.name.as_str());
    let pvc = Api::<PersistentVolumeClaim>::namespaced(client.clone(), namespace)
        .get_opt(name)
        .await
        .map_err(|source| MountClaimError::Read {
            what: format!("PersistentVolumeClaim {namespace}/{name}"),
            source: Box::new(source),
        })?
        .ok_or_else(|| MountClaimError::ClaimNotFound {
            namespace: namespace.into(),
            name: name.into(),
        })?;
    let volume = bound_volume(&pvc).ok_or_else(|| MountClaimError::NotBound {
        namespace: namespace.into(),
        name: name.into(),
    })?;
    let pv = Api::<PersistentVolume>::all(client.clone())
        .get_opt(&volume)
        .await
        .map_err(|source| MountClaimError::Read {
            what: format!("PersistentVolume {volume}"),
            source: Box::new(source),
        })?
        .ok_or_else(|| MountClaimError::VolumeNotFound {
            volume: volume.clone(),
            claim: format!("{namespace}/{name}"),
        })?;
    let claim_name = format!("{namespace}/{name}");
    match place(&pv, &claim_name, node)? {
        Place::Local(dir) => Ok((dir, None)),
        Place::Held { kind } => {
            let (dir, lease) =
                holders
                    .acquire(&pvc)
                    .await
                    .map_err(|source| MountClaimError::Holder {
                        volume,
                        claim: claim_name,
                        kind,
                        source: Box::new(source),
                    })?;
            Ok((dir, Some(lease)))
        }
    }
}

/// Where a repository volume is reached from this node.
#[derive(Debug, PartialEq, Eq)]
pub enum Place {
    /// A `local` or `hostPath` directory usable on this node.
    Local(PathBuf),
    /// Any other volume: mounted by a holder pod on this node (`kind` names it in errors).
    Held { kind: String },
}

/// The PV a claim is bound to: `spec.volumeName` once the claim is `Bound`.
fn bound_volume(pvc: &PersistentVolumeClaim) -> Option<String> {
    let bound = pvc
        .status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .is_some_and(|p| p == "Bound");
    pvc.spec
        .as_ref()
        .and_then(|s| s.volume_name.clone())
        .filter(|v| bound && !v.is_empty())
}

/// How `node` reaches a volume: the directory of a `local` or `hostPath` volume usable on it,
/// else through a holder pod (pure).
pub fn place(pv: &PersistentVolume, claim: &str, node: &str) -> Result<Place, MountClaimError> {
    let volume = pv.metadata.name.clone().unwrap_or_default();
    let spec = pv.spec.clone().unwrap_or_default();
    let dir = match (&spec.local, &spec.host_path) {
        (Some(local), _) => local.path.clone(),
        (None, Some(host)) => host.path.clone(),
        (None, None) => {
            let kind = match &spec.csi {
                Some(csi) => format!("CSI ({})", csi.driver),
                None if spec.nfs.is_some() => "NFS".into(),
                None => "non-local".into(),
            };
            return Ok(Place::Held { kind });
        }
    };
    if let Some(nodes) = pinned_nodes(pv)
        && !nodes.iter().any(|n| n == node)
    {
        return Err(MountClaimError::OtherNode {
            volume,
            claim: claim.into(),
            nodes: nodes.join(", "),
            node: node.into(),
        });
    }
    Ok(Place::Local(PathBuf::from(dir)))
}

/// The host names a PV's required node affinity allows (`kubernetes.io/hostname In [...]`),
/// `None` when it does not restrict host names.
fn pinned_nodes(pv: &PersistentVolume) -> Option<Vec<String>> {
    let terms = &pv
        .spec
        .as_ref()?
        .node_affinity
        .as_ref()?
        .required
        .as_ref()?
        .node_selector_terms;
    let mut nodes = Vec::new();
    for term in terms {
        let hostnames = term
            .match_expressions
            .iter()
            .flatten()
            .find(|e| e.key == "kubernetes.io/hostname" && e.operator == "In");
        match hostnames {
            Some(expression) => nodes.extend(expression.values.iter().flatten().cloned()),
            // A term that does not name hosts may match any node.
            None => return None,
        }
    }
    (!nodes.is_empty()).then_some(nodes)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pv(spec: serde_json::Value) -> PersistentVolume {
        serde_json::from_value(json!({"metadata": {"name": "pvc-123"}, "spec": spec})).unwrap()
    }

    fn pinned(node: &str) -> serde_json::Value {
        json!({"required": {"nodeSelectorTerms": [{"matchExpressions": [
            {"key": "kubernetes.io/hostname", "operator": "In", "values": [node]}]}]}})
    }

    #[test]
    fn a_local_volume_on_this_node_is_its_directory() {
        let volume = pv(
            json!({"local": {"path": "/data/volumes/pvc-123"}, "nodeAffinity": pinned("node-a")}),
        );
        assert_eq!(
            place(&volume, "ns/repo", "node-a").unwrap(),
            Place::Local(PathBuf::from("/data/volumes/pvc-123"))
        );
    }

    #[test]
    fn a_host_path_volume_is_its_directory() {
        let volume = pv(json!({"hostPath": {"path": "/srv/repo"}}));
        assert_eq!(
            place(&volume, "ns/repo", "node-a").unwrap(),
            Place::Local(PathBuf::from("/srv/repo"))
        );
    }

    #[test]
    fn a_volume_pinned_to_another_node_is_refused_with_both_names() {
        let volume = pv(json!({"local": {"path": "/d"}, "nodeAffinity": pinned("node-b")}));
        let err = place(&volume, "ns/repo", "node-a").unwrap_err().to_string();
        assert!(err.contains("node-b") && err.contains("node-a"), "{err}");
    }

    #[test]
    fn affinity_on_other_labels_does_not_pin_the_volume() {
        let volume = pv(
            json!({"local": {"path": "/d"}, "nodeAffinity": {"required": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "topology.kubernetes.io/zone", "operator": "In", "values": ["z1"]}]}]}}}),
        );
        assert!(place(&volume, "ns/repo", "node-a").is_ok());
    }

    #[test]
    fn csi_and_nfs_volumes_are_reached_through_a_holder_pod() {
        let volume = pv(json!({"csi": {"driver": "ru.yandex.s3.csi", "volumeHandle": "h"}}));
        assert_eq!(
            place(&volume, "ns/repo", "node-a").unwrap(),
            Place::Held {
                kind: "CSI (ru.yandex.s3.csi)".into()
            }
        );
        let volume = pv(json!({"nfs": {"server": "10.0.0.2", "path": "/exports"}}));
        assert_eq!(
            place(&volume, "ns/repo", "node-a").unwrap(),
            Place::Held { kind: "NFS".into() }
        );
    }

    #[test]
    fn an_unbound_claim_has_no_volume() {
        let pvc: PersistentVolumeClaim = serde_json::from_value(json!({
            "metadata": {"name": "repo"},
            "spec": {"volumeName": "pvc-123"},
            "status": {"phase": "Pending"}
        }))
        .unwrap();
        assert_eq!(bound_volume(&pvc), None);
        let bound: PersistentVolumeClaim = serde_json::from_value(json!({
            "metadata": {"name": "repo"},
            "spec": {"volumeName": "pvc-123"},
            "status": {"phase": "Bound"}
        }))
        .unwrap();
        assert_eq!(bound_volume(&bound).as_deref(), Some("pvc-123"));
    }
}
