//! PersistentVolumes: the local-path provisioner (a directory per volume under
//! `<data>/volumes`, `Immediate` and `WaitForFirstConsumer` binding, restores from a
//! VolumeSnapshot `dataSource`), the shared driver (`shared.localkube.io`: a directory per
//! volume under `<data>/shared`, CSI volumes with NFS-like `volumeAttributes` and no node
//! affinity), binding of claims to pre-created volumes, and reclaim (`Delete` removes the
//! volume and its directory, `Retain` marks it Released).

use super::copy::copy_tree;
use super::runner::Reconciler;
use super::util::{delete, s, write_status};
use crate::error::ApiError;
use crate::resource::Builtin;
use crate::rest::{Api, Propagation, Target, WriteOptions};
use crate::seed::{CSI_PARAMETER, LOCAL_PATH_PROVISIONER, SHARED_DRIVER};
use crate::store::{EventType, WatchEvent};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// A claim or a volume.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Key {
    Claim(String, String),
    Volume(String),
}

/// Bytes in a Kubernetes quantity (`1Gi`, `500M`, `1000`), for capacity matching.
pub fn quantity_bytes(q: &str) -> Option<u128> {
    let q = q.trim();
    let split = q
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(q.len());
    let (num, unit) = q.split_at(split);
    let n: f64 = num.parse().ok()?;
    let mult: f64 = match unit {
        "" => 1.0,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        _ => return None,
    };
    Some((n * mult) as u128)
}

/// The directory holding a PersistentVolume's data: its `local` or `hostPath` path, the
/// volume handle of a CSI volume of the local-path driver, or `share/subdir` of the shared
/// driver's `volumeAttributes`; empty for anything else.
pub fn volume_path(pv: &Value) -> String {
    for pointer in ["/spec/local/path", "/spec/hostPath/path"] {
        let path = s(pv, pointer);
        if !path.is_empty() {
            return path.to_string();
        }
    }
    match s(pv, "/spec/csi/driver") {
        LOCAL_PATH_PROVISIONER => s(pv, "/spec/csi/volumeHandle").to_string(),
        SHARED_DRIVER => {
            let (share, subdir) = (
                s(pv, "/spec/csi/volumeAttributes/share"),
                s(pv, "/spec/csi/volumeAttributes/subdir"),
            );
            if share.is_empty() || subdir.is_empty() || subdir.contains('/') || subdir == ".." {
                return String::new();
            }
            format!("{}/{subdir}", share.trim_end_matches('/'))
        }
        _ => String::new(),
    }
}

/// Whether localkube provisions claims of this StorageClass provisioner.
fn provisions(provisioner: &str) -> bool {
    provisioner == LOCAL_PATH_PROVISIONER || provisioner == SHARED_DRIVER
}

/// The annotation the scheduler puts on a WaitForFirstConsumer claim: the node chosen.
const SELECTED_NODE: &str = "volume.kubernetes.io/selected-node";

/// Whether a claim's `dataSourceRef` names a kind served by a volume populator (any API
/// group but the core one and the snapshot one, which the provisioner fills itself).
pub fn populated_externally(pvc: &Value) -> bool {
    let Some(source) = pvc.pointer("/spec/dataSourceRef") else {
        return false;
    };
    let group = s(source, "/apiGroup");
    !group.is_empty() && group != "snapshot.storage.k8s.io"
}

pub struct VolumeController {
    pub api: Arc<Api>,
    pub data_dir: PathBuf,
}

impl VolumeController {
    fn claim_in_use(&self, ns: &str, claim: &str) -> bool {
        self.api
            .store()
            .list("core/pods", Some(ns), None, 0, |o| {
                !matches!(o.index.field("status.phase"), Some("Succeeded" | "Failed"))
            })
            .items
            .iter()
            .any(|p| {
                p.value()
                    .pointer("/spec/volumes")
                    .and_then(Value::as_array)
                    .is_some_and(|vs| {
                        vs.iter()
                            .any(|v| s(v, "/persistentVolumeClaim/claimName") == claim)
                    })
            })
    }

    /// The directory of the ready snapshot a claim restores from. `Err` is the external
    /// provisioner's error (the claim stays Pending and it is retried): a snapshot missing,
    /// being deleted, not ready or not bound, or larger than the claim.
    fn restore_source(&self, ns: &str, pvc: &Value) -> Result<Option<PathBuf>, String> {
        let Some(source) = pvc
            .pointer("/spec/dataSource")
            .or_else(|| pvc.pointer("/spec/dataSourceRef"))
        else {
            return Ok(None);
        };
        if s(source, "/kind") != "VolumeSnapshot" {
            return Ok(None);
        }
        let name = s(source, "/name");
        let fail = |why: String| {
            Err(format!(
                "error getting handle for DataSource Type VolumeSnapshot by Name {name}: {why}"
            ))
        };
        let Some(stored) =
            self.api
                .store()
                .get("snapshot.storage.k8s.io/volumesnapshots", ns, name)
        else {
            return fail(format!(
                "error getting snapshot {name} from api server: volumesnapshots.snapshot.storage.k8s.io \"{name}\" not found"
            ));
        };
        if stored.index.deleting {
            return fail(format!("snapshot {name} is currently being deleted"));
        }
        let vs = stored.value();
        if vs.pointer("/status/readyToUse").and_then(Value::as_bool) != Some(true) {
            return fail(format!("snapshot {name} is not Ready"));
        }
        let content = s(&vs, "/status/boundVolumeSnapshotContentName");
        if content.is_empty() {
            return fail(format!("snapshot {name} not bound"));
        }
        let Some(c) = self.api.store().get(
            "snapshot.storage.k8s.io/volumesnapshotcontents",
            "",
            content,
        ) else {
            return fail(format!(
                "error getting snapshotcontent {content} for snapshot {ns}/{name} from api server: volumesnapshotcontents.snapshot.storage.k8s.io \"{content}\" not found"
            ));
        };
        let c = c.value();
        let handle = s(&c, "/status/snapshotHandle").to_string();
        if handle.is_empty() {
            return fail(format!("snapshot {name} not bound"));
        }
        let size = c
            .pointer("/status/restoreSize")
            .and_then(Value::as_u64)
            .map(u128::from);
        let requested = quantity_bytes(s(pvc, "/spec/resources/requests/storage"));
        if let (Some(size), Some(requested)) = (size, requested)
            && requested < size
        {
            return fail(format!(
                "requested volume size {requested} is less than the size {size} for the source snapshot {name}"
            ));
        }
        Ok(Some(PathBuf::from(handle)))
    }

    /// The external provisioner's Warning event `ProvisioningFailed` on a claim, one per
    /// claim: a new message replaces the last one and counts.
    fn provisioning_failed(&self, pvc: &Value, class: &str, why: &str) {
        let (ns, name, uid) = (
            s(pvc, "/metadata/namespace"),
            s(pvc, "/metadata/name"),
            s(pvc, "/metadata/uid"),
        );
        let message = format!("failed to provision volume with StorageClass \"{class}\": {why}");
        let event_name = format!("{name}.{}.provisioningfailed", uid.get(..8).unwrap_or(uid));
        let now = crate::time::now_time();
        let store = self.api.store();
        let existing = store.get("core/events", ns, &event_name).map(|e| e.value());
        let result = match existing {
            Some(event) if s(&event, "/message") == message => Ok(()),
            Some(mut event) => {
                let count = event.pointer("/count").and_then(Value::as_i64).unwrap_or(1);
                event["message"] = json!(message);
                event["count"] = json!(count + 1);
                event["lastTimestamp"] = json!(now);
                self.api
                    .update(
                        &self.api.builtin(Builtin::Event),
                        Some(ns),
                        &event_name,
                        event,
                        Target::Main,
                        &WriteOptions::default(),
                    )
                    .map(|_| ())
            }
            None => super::util::create(
                &self.api,
                Builtin::Event,
                ns,
                json!({
                    "apiVersion": "v1",
                    "kind": "Event",
                    "metadata": {"name": event_name, "namespace": ns},
                    "involvedObject": {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                        "namespace": ns, "name": name, "uid": uid},
                    "reason": "ProvisioningFailed",
                    "message": message,
                    "type": "Warning",
                    "source": {"component": LOCAL_PATH_PROVISIONER},
                    "reportingComponent": LOCAL_PATH_PROVISIONER,
                    "firstTimestamp": now,
                    "lastTimestamp": now,
                    "count": 1,
                }),
            ),
        };
        if let Err(err) = result {
            tracing::warn!(claim = name, error = %err, "recording a ProvisioningFailed event failed");
        }
    }

    fn bind(&self, ns: &str, pvc: &Value, pv: &Value) -> Result<(), ApiError> {
        let pv_name = s(pv, "/metadata/name");
        let pvc_rt = self.api.builtin(Builtin::PersistentVolumeClaim);
        let pv_rt = self.api.builtin(Builtin::PersistentVolume);
        if s(pv, "/spec/claimRef/uid").is_empty() {
            let mut v = pv.clone();
            v["spec"]["claimRef"] = json!({
                "apiVersion": "v1", "kind": "PersistentVolumeClaim", "namespace": ns,
                "name": s(pvc, "/metadata/name"), "uid": s(pvc, "/metadata/uid"),
                "resourceVersion": s(pvc, "/metadata/resourceVersion"),
            });
            self.api.update(
                &pv_rt,
                None,
                pv_name,
                v,
                Target::Main,
                &WriteOptions::default(),
            )?;
        }
        if let Some(cur) = self.api.store().get("core/persistentvolumes", "", pv_name) {
            let cur = cur.value();
            write_status(&self.api, &pv_rt, &cur, json!({"phase": "Bound"}))?;
        }
        let mut claim = pvc.clone();
        if s(&claim, "/spec/volumeName") != pv_name {
            claim["spec"]["volumeName"] = json!(pv_name);
            claim["metadata"]["annotations"]["pv.kubernetes.io/bind-completed"] = json!("yes");
            claim["metadata"]["annotations"]["pv.kubernetes.io/bound-by-controller"] = json!("yes");
            self.api.update(
                &pvc_rt,
                Some(ns),
                s(pvc, "/metadata/name"),
                claim,
                Target::Main,
                &WriteOptions::default(),
            )?;
        }
        if let Some(cur) =
            self.api
                .store()
                .get("core/persistentvolumeclaims", ns, s(pvc, "/metadata/name"))
        {
            let cur = cur.value();
            // The rest of the status (a populator's conditions) stays, as Kubernetes keeps it.
            let mut status = cur
                .get("status")
                .cloned()
                .filter(Value::is_object)
                .unwrap_or_else(|| json!({}));
            status["phase"] = json!("Bound");
            status["accessModes"] = pv
                .pointer("/spec/accessModes")
                .cloned()
                .unwrap_or_else(|| json!(["ReadWriteOnce"]));
            status["capacity"] = pv
                .pointer("/spec/capacity")
                .cloned()
                .unwrap_or_else(|| json!({}));
            write_status(&self.api, &pvc_rt, &cur, status)?;
        }
        Ok(())
    }

    fn provision(
        &self,
        ns: &str,
        pvc: &Value,
        class: &Value,
    ) -> Result<Option<Duration>, ApiError> {
        let source = match self.restore_source(ns, pvc) {
            Ok(s) => s,
            Err(why) => {
                self.provisioning_failed(pvc, s(class, "/metadata/name"), &why);
                return Ok(Some(Duration::from_secs(2)));
            }
        };
        let pv_name = format!("pvc-{}", s(pvc, "/metadata/uid"));
        let shared = s(class, "/provisioner") == SHARED_DRIVER;
        let root = self
            .data_dir
            .join(if shared { "shared" } else { "volumes" });
        let dir = root.join(&pv_name);
        if !dir.exists() {
            let staging = dir.with_extension("partial");
            let _ = std::fs::remove_dir_all(&staging);
            let result = match &source {
                Some(src) => copy_tree(src, &staging).map(|_| ()),
                None => std::fs::create_dir_all(&staging),
            };
            result
                .and_then(|_| {
                    std::fs::set_permissions(
                        &staging,
                        std::os::unix::fs::PermissionsExt::from_mode(0o777),
                    )
                })
                .and_then(|_| std::fs::rename(&staging, &dir))
                .map_err(|e| ApiError::internal(format!("provisioning {}: {e}", dir.display())))?;
        }
        let request = s(pvc, "/spec/resources/requests/storage");
        let csi = s(
            class,
            &format!("/parameters/{}", CSI_PARAMETER.replace('/', "~1")),
        ) == "true";
        let pv = json!({
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {
                "name": pv_name,
                "annotations": if shared {
                    json!({"pv.kubernetes.io/provisioned-by": SHARED_DRIVER})
                } else {
                    json!({"pv.kubernetes.io/provisioned-by": LOCAL_PATH_PROVISIONER, "local.path.provisioner/selected-node": self.api.config.node_name})
                },
            },
            "spec": {
                "capacity": {"storage": if request.is_empty() { "1Gi" } else { request }},
                "accessModes": pvc.pointer("/spec/accessModes").cloned().unwrap_or_else(|| json!(["ReadWriteOnce"])),
                "persistentVolumeReclaimPolicy": match s(class, "/reclaimPolicy") { "" => "Delete", p => p },
                "storageClassName": s(class, "/metadata/name"),
                "volumeMode": match s(pvc, "/spec/volumeMode") { "" => "Filesystem", m => m },
                "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                    {"key": "kubernetes.io/hostname", "operator": "In", "values": [self.api.config.node_name]}]}]}},
                "claimRef": {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "namespace": ns,
                    "name": s(pvc, "/metadata/name"), "uid": s(pvc, "/metadata/uid")},
            },
        });
        let mut pv = pv;
        let path = dir.display().to_string();
        if shared {
            // As csi-driver-nfs: `server#share#subdir#`, and no node affinity (any node mounts it).
            let share = root.display().to_string();
            if let Some(spec) = pv["spec"].as_object_mut() {
                spec.remove("nodeAffinity");
            }
            pv["spec"]["csi"] = json!({
                "driver": SHARED_DRIVER,
                "volumeHandle": format!("localhost#{share}#{pv_name}#"),
                "volumeAttributes": {"server": "localhost", "share": share, "subdir": pv_name},
            });
        } else if csi {
            pv["spec"]["csi"] = json!({"driver": LOCAL_PATH_PROVISIONER, "volumeHandle": path});
        } else {
            pv["spec"]["local"] = json!({"path": path});
        }
        super::util::create(&self.api, Builtin::PersistentVolume, "", pv)?;
        let Some(pv) = self.api.store().get("core/persistentvolumes", "", &pv_name) else {
            return Ok(Some(Duration::from_millis(200)));
        };
        self.bind(ns, pvc, &pv.value())?;
        Ok(None)
    }

    fn reconcile_claim(&self, ns: &str, name: &str) -> Result<Option<Duration>, ApiError> {
        let Some(stored) = self
            .api
            .store()
            .get("core/persistentvolumeclaims", ns, name)
        else {
            return Ok(None);
        };
        if stored.index.deleting {
            return Ok(None);
        }
        let pvc = stored.value();
        let volume = s(&pvc, "/spec/volumeName");
        if !volume.is_empty() {
            if s(&pvc, "/status/phase") == "Bound" {
                return Ok(None);
            }
            return match self.api.store().get("core/persistentvolumes", "", volume) {
                Some(pv) => self.bind(ns, &pvc, &pv.value()).map(|_| None),
                None => Ok(Some(Duration::from_secs(1))),
            };
        }
        // A volume bound to this claim in advance (a volume populator's, or one provisioned
        // before a failed bind) is bound whatever the binding mode, as Kubernetes does.
        if let Some(pv) = self.prebound_volume(ns, name, s(&pvc, "/metadata/uid")) {
            return self.bind(ns, &pvc, &pv).map(|_| None);
        }
        let class_name = s(&pvc, "/spec/storageClassName");
        let class = (!class_name.is_empty())
            .then(|| {
                self.api
                    .store()
                    .get("storage.k8s.io/storageclasses", "", class_name)
            })
            .flatten()
            .map(|c| c.value());
        let waits_for_consumer = class
            .as_ref()
            .is_some_and(|c| s(c, "/volumeBindingMode") == "WaitForFirstConsumer");
        if waits_for_consumer {
            if !self.claim_in_use(ns, name) {
                return Ok(None);
            }
            if self.select_node(ns, &pvc)? {
                // Read afresh on the next pass: a requeue, since the update's own event may
                // arrive while this pass still runs and be folded into it.
                return Ok(Some(Duration::from_millis(50)));
            }
        }
        // Kubernetes leaves a claim whose dataSourceRef names a kind of another API group
        // to that kind's volume populator: Pending until a volume is bound to it in advance.
        if populated_externally(&pvc) {
            return Ok(None);
        }
        if let Some(class) = class.as_ref().filter(|c| provisions(s(c, "/provisioner"))) {
            return self.provision(ns, &pvc, class);
        }
        // Static binding: the smallest Available volume of the class that is large enough.
        let want = quantity_bytes(s(&pvc, "/spec/resources/requests/storage")).unwrap_or(0);
        let candidates = self
            .api
            .store()
            .list("core/persistentvolumes", None, None, 0, |_| true)
            .items;
        let best = candidates
            .iter()
            .map(|o| o.value())
            .filter(|pv| s(pv, "/spec/storageClassName") == class_name)
            .filter(|pv| {
                let claim = pv.pointer("/spec/claimRef");
                claim.is_none_or(Value::is_null)
                    || (s(pv, "/spec/claimRef/name") == name
                        && s(pv, "/spec/claimRef/namespace") == ns
                        && s(pv, "/spec/claimRef/uid").is_empty())
            })
            .filter(|pv| quantity_bytes(s(pv, "/spec/capacity/storage")).unwrap_or(0) >= want)
            .min_by_key(|pv| quantity_bytes(s(pv, "/spec/capacity/storage")).unwrap_or(0));
        match best {
            Some(pv) => self.bind(ns, &pvc, &pv).map(|_| None),
            None => Ok(None),
        }
    }

    /// A volume whose `claimRef` names this claim with its uid.
    fn prebound_volume(&self, ns: &str, name: &str, uid: &str) -> Option<Value> {
        if uid.is_empty() {
            return None;
        }
        self.api
            .store()
            .list("core/persistentvolumes", None, None, 0, |o| {
                !o.index.deleting
            })
            .items
            .iter()
            .map(|o| o.value())
            .find(|pv| {
                s(pv, "/spec/claimRef/namespace") == ns
                    && s(pv, "/spec/claimRef/name") == name
                    && s(pv, "/spec/claimRef/uid") == uid
            })
    }

    /// The scheduler's choice of node for a WaitForFirstConsumer claim a pod uses:
    /// annotation `volume.kubernetes.io/selected-node` (localkube has one node).
    /// Returns whether it wrote the annotation.
    fn select_node(&self, ns: &str, pvc: &Value) -> Result<bool, ApiError> {
        if !s(
            pvc,
            "/metadata/annotations/volume.kubernetes.io~1selected-node",
        )
        .is_empty()
        {
            return Ok(false);
        }
        let mut claim = pvc.clone();
        claim["metadata"]["annotations"][SELECTED_NODE] = json!(self.api.config.node_name);
        self.api.update(
            &self.api.builtin(Builtin::PersistentVolumeClaim),
            Some(ns),
            s(pvc, "/metadata/name"),
            claim,
            Target::Main,
            &WriteOptions::default(),
        )?;
        Ok(true)
    }

    fn reconcile_volume(&self, name: &str) -> Result<Option<Duration>, ApiError> {
        let Some(stored) = self.api.store().get("core/persistentvolumes", "", name) else {
            return Ok(None);
        };
        if stored.index.deleting {
            return Ok(None);
        }
        let pv = stored.value();
        let rt = self.api.builtin(Builtin::PersistentVolume);
        let claim_uid = s(&pv, "/spec/claimRef/uid");
        if claim_uid.is_empty() {
            if matches!(s(&pv, "/status/phase"), "" | "Pending") {
                write_status(&self.api, &rt, &pv, json!({"phase": "Available"}))?;
            }
            return Ok(None);
        }
        let claim = self.api.store().get(
            "core/persistentvolumeclaims",
            s(&pv, "/spec/claimRef/namespace"),
            s(&pv, "/spec/claimRef/name"),
        );
        if claim.is_some_and(|c| c.index.uid == claim_uid) {
            return Ok(None);
        }
        // The claim is gone: reclaim.
        if s(&pv, "/spec/persistentVolumeReclaimPolicy") == "Delete" {
            let path = PathBuf::from(volume_path(&pv));
            let provisioner = s(
                &pv,
                "/metadata/annotations/pv.kubernetes.io~1provisioned-by",
            );
            if (provisioner == LOCAL_PATH_PROVISIONER
                && path.starts_with(self.data_dir.join("volumes")))
                || (provisioner == SHARED_DRIVER && path.starts_with(self.data_dir.join("shared")))
            {
                let _ = std::fs::remove_dir_all(&path);
            }
            delete(
                &self.api,
                Builtin::PersistentVolume,
                "",
                name,
                Propagation::Background,
            )?;
        } else {
            write_status(&self.api, &rt, &pv, json!({"phase": "Released"}))?;
        }
        Ok(None)
    }
}

impl Reconciler for VolumeController {
    type Key = Key;

    fn name(&self) -> &'static str {
        "persistentvolumes"
    }

    fn keys_for(&self, ev: &WatchEvent) -> Vec<Key> {
        let o = &ev.object;
        match &*o.resource {
            "core/persistentvolumeclaims" => {
                let mut keys = vec![Key::Claim(o.namespace.clone(), o.name.clone())];
                if ev.kind == EventType::Deleted {
                    let v = o.value();
                    let volume = s(&v, "/spec/volumeName");
                    if !volume.is_empty() {
                        keys.push(Key::Volume(volume.to_string()));
                    }
                }
                keys
            }
            "core/persistentvolumes" => {
                // A volume bound in advance to a claim (a populator's hand-over) binds it.
                let v = o.value();
                let mut keys = vec![Key::Volume(o.name.clone())];
                let (claim_ns, claim) = (
                    s(&v, "/spec/claimRef/namespace"),
                    s(&v, "/spec/claimRef/name"),
                );
                if !claim.is_empty() {
                    keys.push(Key::Claim(claim_ns.to_string(), claim.to_string()));
                }
                keys
            }
            "core/pods" if ev.kind == EventType::Added => o
                .value()
                .pointer("/spec/volumes")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|v| {
                    v.pointer("/persistentVolumeClaim/claimName")
                        .and_then(Value::as_str)
                })
                .map(|c| Key::Claim(o.namespace.clone(), c.to_string()))
                .collect(),
            "snapshot.storage.k8s.io/volumesnapshots" => self
                .api
                .store()
                .list(
                    "core/persistentvolumeclaims",
                    Some(&o.namespace),
                    None,
                    0,
                    |c| !c.index.deleting,
                )
                .items
                .iter()
                .map(|c| Key::Claim(c.namespace.clone(), c.name.clone()))
                .collect(),
            _ => Vec::new(),
        }
    }

    fn all_keys(&self) -> Vec<Key> {
        let store = self.api.store();
        let mut keys: Vec<Key> = store
            .list("core/persistentvolumeclaims", None, None, 0, |_| true)
            .items
            .iter()
            .map(|o| Key::Claim(o.namespace.clone(), o.name.clone()))
            .collect();
        keys.extend(
            store
                .list("core/persistentvolumes", None, None, 0, |_| true)
                .items
                .iter()
                .map(|o| Key::Volume(o.name.clone())),
        );
        keys
    }

    async fn reconcile(&self, key: &Key) -> Result<Option<Duration>, ApiError> {
        match key {
            Key::Claim(ns, name) => self.reconcile_claim(ns, name),
            Key::Volume(name) => self.reconcile_volume(name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shared_volume_lives_at_its_share_and_subdir() {
        let pv = json!({"spec": {"csi": {"driver": SHARED_DRIVER, "volumeHandle": "localhost#/d/shared#pvc-1#",
            "volumeAttributes": {"server": "localhost", "share": "/d/shared/", "subdir": "pvc-1"}}}});
        assert_eq!(volume_path(&pv), "/d/shared/pvc-1");
        let escaping = json!({"spec": {"csi": {"driver": SHARED_DRIVER,
            "volumeAttributes": {"share": "/d/shared", "subdir": "../etc"}}}});
        assert_eq!(volume_path(&escaping), "");
        let foreign =
            json!({"spec": {"csi": {"driver": "efs.csi.aws.com", "volumeHandle": "fs-1"}}});
        assert_eq!(volume_path(&foreign), "");
    }

    #[test]
    fn quantities_parse_binary_and_decimal_suffixes() {
        assert_eq!(quantity_bytes("1Gi"), Some(1 << 30));
        assert_eq!(quantity_bytes("500M"), Some(500_000_000));
        assert_eq!(quantity_bytes("1.5Ki"), Some(1536));
        assert_eq!(quantity_bytes("12"), Some(12));
        assert_eq!(quantity_bytes("lots"), None);
    }
}
