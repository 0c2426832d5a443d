//! The local snapshotter for `snapshot.storage.k8s.io/v1`: a VolumeSnapshot of a claim bound
//! to a CSI volume of the local-path driver (StorageClass `local-csi`) gets a
//! VolumeSnapshotContent whose data is a copy (reflinked where possible) of the volume's
//! directory under `<data>/snapshots`, then `readyToUse` with the source's capacity as
//! `restoreSize`. Like the CSI snapshotter it reports in `status.error` a volume that is not
//! CSI, a class that does not exist or is of another driver, and no default class. Test knobs
//! on a class: parameter `localkube/snapshot-error` (reported as the error) and
//! `localkube/snapshot-delay-seconds` (readiness only that long after creation).
//! Pre-provisioned contents are bound; contents with `deletionPolicy: Delete` go with their
//! snapshot.

use super::copy::copy_tree;
use super::runner::Reconciler;
use super::util::{s, write_status};
use crate::error::ApiError;
use crate::rest::{Api, DeleteOptions, WriteOptions};
use crate::store::WatchEvent;
use crate::time::now_time;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

const SNAPSHOTS: &str = "snapshot.storage.k8s.io/volumesnapshots";
const CONTENTS: &str = "snapshot.storage.k8s.io/volumesnapshotcontents";
const CLASSES: &str = "snapshot.storage.k8s.io/volumesnapshotclasses";
pub const DRIVER: &str = "localkube/local-path";

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Key {
    Snapshot(String, String),
    Content(String),
}

pub struct SnapshotController {
    pub api: Arc<Api>,
    pub data_dir: PathBuf,
}

impl SnapshotController {
    fn rt(&self, plural: &str) -> Result<Arc<crate::resource::ResourceType>, ApiError> {
        self.api.resource("snapshot.storage.k8s.io", "v1", plural)
    }

    fn default_class(&self) -> Option<Value> {
        self.api
            .store()
            .list(CLASSES, None, None, 0, |_| true)
            .items
            .iter()
            .map(|o| o.value())
            .find(|c| {
                s(
                    c,
                    "/metadata/annotations/snapshot.storage.kubernetes.io~1is-default-class",
                ) == "true"
            })
    }

    fn reconcile_snapshot(&self, ns: &str, name: &str) -> Result<Option<Duration>, ApiError> {
        let Some(stored) = self.api.store().get(SNAPSHOTS, ns, name) else {
            return Ok(None);
        };
        let vs = stored.value();
        if stored.index.deleting
            || vs.pointer("/status/readyToUse").and_then(Value::as_bool) == Some(true)
        {
            return Ok(None);
        }
        let vs_rt = self.rt("volumesnapshots")?;
        let content_rt = self.rt("volumesnapshotcontents")?;
        let pre = s(&vs, "/spec/source/volumeSnapshotContentName");
        if !pre.is_empty() {
            let Some(c) = self.api.store().get(CONTENTS, "", pre) else {
                return Ok(Some(Duration::from_secs(1)));
            };
            let c = c.value();
            let status = json!({
                "boundVolumeSnapshotContentName": pre,
                "readyToUse": true,
                "creationTime": now_time(),
                "restoreSize": c.pointer("/status/restoreSize").cloned().unwrap_or(json!(0)).to_string().trim_matches('"'),
            });
            write_status(&self.api, &vs_rt, &vs, status)?;
            return Ok(None);
        }
        let claim = s(&vs, "/spec/source/persistentVolumeClaimName");
        let Some(pvc) = self
            .api
            .store()
            .get("core/persistentvolumeclaims", ns, claim)
            .map(|o| o.value())
        else {
            write_status(
                &self.api,
                &vs_rt,
                &vs,
                json!({"readyToUse": false, "error": {"time": now_time(), "message": format!("failed to get input parameters to create snapshot {name}: \"the PVC {claim} not yet bound to a PV, will not attempt to take a snapshot\"")}}),
            )?;
            return Ok(Some(Duration::from_secs(1)));
        };
        let pv_name = s(&pvc, "/spec/volumeName");
        let Some(pv) = (!pv_name.is_empty())
            .then(|| self.api.store().get("core/persistentvolumes", "", pv_name))
            .flatten()
            .map(|o| o.value())
        else {
            return Ok(Some(Duration::from_secs(1)));
        };
        let fail = |message: String| -> Result<Option<Duration>, ApiError> {
            if s(&vs, "/status/error/message") != message {
                write_status(
                    &self.api,
                    &vs_rt,
                    &vs,
                    json!({"readyToUse": false, "error": {"time": now_time(), "message": message}}),
                )?;
            }
            Ok(Some(Duration::from_secs(2)))
        };
        // Like the CSI snapshotter: only CSI volumes, of the class's driver.
        let driver = s(&pv, "/spec/csi/driver");
        if driver.is_empty() {
            return fail(format!(
                "Failed to create snapshot content with error cannot find CSI PersistentVolumeSource for volume {pv_name}"
            ));
        }
        let class_name = match s(&vs, "/spec/volumeSnapshotClassName") {
            "" => match self.default_class() {
                Some(c) => s(&c, "/metadata/name").to_string(),
                None => {
                    return fail(
                        "Failed to set default snapshot class with error cannot find default snapshot class".into(),
                    );
                }
            },
            c => c.to_string(),
        };
        let Some(class) = self
            .api
            .store()
            .get(CLASSES, "", &class_name)
            .map(|o| o.value())
        else {
            return fail(format!(
                "Failed to get snapshot class with error volumesnapshotclasses.snapshot.storage.k8s.io \"{class_name}\" not found"
            ));
        };
        if s(&class, "/driver") != driver {
            return fail(format!(
                "Failed to create snapshot content with error the VolumeSnapshotClass {class_name} is of driver {:?}, volume {pv_name} of driver {driver:?}",
                s(&class, "/driver")
            ));
        }
        // Test knobs of a class: a snapshotter error, or a delay before readiness.
        let injected = s(&class, "/parameters/localkube~1snapshot-error");
        if !injected.is_empty() {
            return fail(injected.to_string());
        }
        let delay: u64 = s(&class, "/parameters/localkube~1snapshot-delay-seconds")
            .parse()
            .unwrap_or(0);
        if delay > 0 {
            let created = s(&vs, "/metadata/creationTimestamp")
                .parse::<jiff::Timestamp>()
                .ok();
            let waited = created
                .map(|c| jiff::Timestamp::now().duration_since(c).as_secs())
                .unwrap_or(0);
            if waited < delay as i64 {
                return Ok(Some(Duration::from_secs(
                    (delay as i64 - waited).clamp(1, 5) as u64,
                )));
            }
        }
        let source = super::volume::volume_path(&pv);
        let deletion_policy = Some(s(&class, "/deletionPolicy").to_string())
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| "Delete".into());
        // As CSI drivers do: a snapshot restores to a volume of its source's size.
        let capacity = match s(&pv, "/spec/capacity/storage") {
            "" => "1Gi".to_string(),
            c => c.to_string(),
        };
        let restore_bytes = super::volume::quantity_bytes(&capacity).unwrap_or(0) as u64;
        let content_name = format!("snapcontent-{}", stored.index.uid);
        let dir = self.data_dir.join("snapshots").join(&content_name);
        if !dir.exists() {
            let staging = dir.with_extension("partial");
            let _ = std::fs::remove_dir_all(&staging);
            copy_tree(std::path::Path::new(&source), &staging)
                .and_then(|b| std::fs::rename(&staging, &dir).map(|_| b))
                .map_err(|e| ApiError::internal(format!("snapshotting {source}: {e}")))?;
        }
        if self.api.store().get(CONTENTS, "", &content_name).is_none() {
            let content = json!({
                "apiVersion": "snapshot.storage.k8s.io/v1",
                "kind": "VolumeSnapshotContent",
                "metadata": {"name": content_name},
                "spec": {
                    "deletionPolicy": deletion_policy,
                    "driver": DRIVER,
                    "source": {"volumeHandle": pv_name},
                    "volumeSnapshotClassName": class_name,
                    "volumeSnapshotRef": {"apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshot",
                        "name": name, "namespace": ns, "uid": stored.index.uid},
                },
            });
            match self
                .api
                .create(&content_rt, None, content, &WriteOptions::default())
            {
                Ok(_) => {}
                Err(e) if e.code == 409 => {}
                Err(e) => return Err(e),
            }
        }
        if let Some(c) = self.api.store().get(CONTENTS, "", &content_name) {
            let c = c.value();
            let created_ns = jiff::Timestamp::now().as_nanosecond();
            write_status(
                &self.api,
                &content_rt,
                &c,
                json!({"readyToUse": true, "restoreSize": restore_bytes, "snapshotHandle": dir.display().to_string(), "creationTime": created_ns as i64}),
            )?;
        }
        write_status(
            &self.api,
            &vs_rt,
            &vs,
            json!({"boundVolumeSnapshotContentName": content_name, "readyToUse": true, "creationTime": now_time(), "restoreSize": capacity, "error": null}),
        )?;
        Ok(None)
    }

    fn reconcile_content(&self, name: &str) -> Result<Option<Duration>, ApiError> {
        let Some(stored) = self.api.store().get(CONTENTS, "", name) else {
            return Ok(None);
        };
        let c = stored.value();
        let ns = s(&c, "/spec/volumeSnapshotRef/namespace");
        let vs_name = s(&c, "/spec/volumeSnapshotRef/name");
        let uid = s(&c, "/spec/volumeSnapshotRef/uid");
        let bound = self
            .api
            .store()
            .get(SNAPSHOTS, ns, vs_name)
            .is_some_and(|vs| uid.is_empty() || vs.index.uid == uid);
        if bound || s(&c, "/spec/deletionPolicy") != "Delete" {
            return Ok(None);
        }
        let handle = PathBuf::from(s(&c, "/status/snapshotHandle"));
        if handle.starts_with(self.data_dir.join("snapshots")) {
            let _ = std::fs::remove_dir_all(&handle);
        }
        let rt = self.rt("volumesnapshotcontents")?;
        match self.api.delete(&rt, None, name, &DeleteOptions::default()) {
            Ok(_) => Ok(None),
            Err(e) if e.code == 404 => Ok(None),
            Err(e) => Err(e),
        }
    }
}

impl Reconciler for SnapshotController {
    type Key = Key;

    fn name(&self) -> &'static str {
        "volumesnapshots"
    }

    fn keys_for(&self, ev: &WatchEvent) -> Vec<Key> {
        let o = &ev.object;
        match &*o.resource {
            SNAPSHOTS => {
                let mut keys = vec![Key::Snapshot(o.namespace.clone(), o.name.clone())];
                let content = s(&o.value(), "/status/boundVolumeSnapshotContentName").to_string();
                if !content.is_empty() {
                    keys.push(Key::Content(content));
                }
                keys
            }
            CONTENTS => vec![Key::Content(o.name.clone())],
            "core/persistentvolumeclaims" => self
                .api
                .store()
                .list(SNAPSHOTS, Some(&o.namespace), None, 0, |_| true)
                .items
                .iter()
                .map(|v| Key::Snapshot(v.namespace.clone(), v.name.clone()))
                .collect(),
            _ => Vec::new(),
        }
    }

    fn all_keys(&self) -> Vec<Key> {
        let store = self.api.store();
        let mut keys: Vec<Key> = store
            .list(SNAPSHOTS, None, None, 0, |_| true)
            .items
            .iter()
            .map(|o| Key::Snapshot(o.namespace.clone(), o.name.clone()))
            .collect();
        keys.extend(
            store
                .list(CONTENTS, None, None, 0, |_| true)
                .items
                .iter()
                .map(|o| Key::Content(o.name.clone())),
        );
        keys
    }

    async fn reconcile(&self, key: &Key) -> Result<Option<Duration>, ApiError> {
        match key {
            Key::Snapshot(ns, name) => self.reconcile_snapshot(ns, name),
            Key::Content(name) => self.reconcile_content(name),
        }
    }
}
