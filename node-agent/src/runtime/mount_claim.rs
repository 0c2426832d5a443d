//! How the agent reaches a Mount repository (ARCHITECTURE.md §K5.3, §K5.5): the grant names
//! the repository PVC, which resolves to its bound PersistentVolume and that volume's `local`
//! or `hostPath` directory on this node. The agent then uses the directory as a local
//! repository, so what it writes (`kubeblocks-backup.json`), deletes, or serves to `datasafed`
//! is exactly what action pods see at `/backupdata`.
//!
//! # Caveats
//! - Only volumes with a `local` or `hostPath` source can be reached (localkube's local-path
//!   provisioner, Rancher's local-path provisioner, static local volumes). A CSI volume would
//!   need the agent to mount it; such a grant fails with a message naming the driver.
//! - In a real cluster the agent must see the provisioner's directory at the same path as the
//!   node does (a hostPath mount of that directory into the agent's pod).

use std::path::PathBuf;

use cairn_proto::agent::v1::{MountClaim, StorageGrant};
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use kube::api::Api;

use crate::socket::grants::ClaimResolver;

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
    /// The volume's source is not a directory the agent can open.
    #[error(
        "PersistentVolume {volume} of the repository PVC {claim} is a {kind} volume; the agent reaches only local and hostPath volumes"
    )]
    Unsupported {
        volume: String,
        claim: String,
        kind: String,
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
}

impl MountClaims {
    /// A resolver for the agent on `node`.
    pub fn new(client: kube::Client, node: impl Into<String>) -> MountClaims {
        MountClaims {
            client,
            node: node.into(),
        }
    }
}

#[async_trait::async_trait]
impl ClaimResolver for MountClaims {
    async fn local_path(&self, claim: &MountClaim) -> Result<PathBuf, String> {
        resolve(&self.client, claim, &self.node)
            .await
            .map_err(|err| super::runner::chain(&err))
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
/// or no claim, is left as it is).
pub async fn resolve_grant(
    client: &kube::Client,
    node: &str,
    grant: &mut StorageGrant,
) -> Result<(), MountClaimError> {
    if !grant.local_path.trim().is_empty() {
        return Ok(());
    }
    let Some(claim) = &grant.mount_claim else {
        return Ok(());
    };
    if claim.name.is_empty() {
        return Err(MountClaimError::NoName {
            repo: grant.repo_name.clone(),
        });
    }
    let dir = resolve(client, claim, node).await?;
    grant.local_path = dir.display().to_string();
    Ok(())
}

/// The directory on this node holding the PVC's data.
pub async fn resolve(
    client: &kube::Client,
    claim: &MountClaim,
    node: &str,
) -> Result<PathBuf, MountClaimError> {
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
    local_dir(&pv, &format!("{namespace}/{name}"), node)
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

/// The directory of a `local` or `hostPath` volume usable on `node` (pure).
pub fn local_dir(
    pv: &PersistentVolume,
    claim: &str,
    node: &str,
) -> Result<PathBuf, MountClaimError> {
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
            return Err(MountClaimError::Unsupported {
                volume,
                claim: claim.into(),
                kind,
            });
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
    Ok(PathBuf::from(dir))
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
            local_dir(&volume, "ns/repo", "node-a").unwrap(),
            PathBuf::from("/data/volumes/pvc-123")
        );
    }

    #[test]
    fn a_host_path_volume_is_its_directory() {
        let volume = pv(json!({"hostPath": {"path": "/srv/repo"}}));
        assert_eq!(
            local_dir(&volume, "ns/repo", "node-a").unwrap(),
            PathBuf::from("/srv/repo")
        );
    }

    #[test]
    fn a_volume_pinned_to_another_node_is_refused_with_both_names() {
        let volume = pv(json!({"local": {"path": "/d"}, "nodeAffinity": pinned("node-b")}));
        let err = local_dir(&volume, "ns/repo", "node-a")
            .unwrap_err()
            .to_string();
        assert!(err.contains("node-b") && err.contains("node-a"), "{err}");
    }

    #[test]
    fn affinity_on_other_labels_does_not_pin_the_volume() {
        let volume = pv(
            json!({"local": {"path": "/d"}, "nodeAffinity": {"required": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "topology.kubernetes.io/zone", "operator": "In", "values": ["z1"]}]}]}}}),
        );
        assert!(local_dir(&volume, "ns/repo", "node-a").is_ok());
    }

    #[test]
    fn a_csi_volume_is_refused_naming_the_driver() {
        let volume = pv(json!({"csi": {"driver": "ru.yandex.s3.csi", "volumeHandle": "h"}}));
        let err = local_dir(&volume, "ns/repo", "node-a")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("ru.yandex.s3.csi") && err.contains("ns/repo"),
            "{err}"
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
