//! Objects every localkube has: the system namespaces, the host's Node and the default
//! StorageClass. Seeding is idempotent; the Node's status is refreshed at every start.

use crate::error::ApiError;
use crate::http::GIT_VERSION;
use crate::resource::Builtin;
use crate::rest::{Api, Target, WriteOptions};
use crate::time::now_time;
use serde_json::{Value, json};

pub const SYSTEM_NAMESPACES: &[&str] =
    &["default", "kube-system", "kube-public", "kube-node-lease"];
pub const LOCAL_PATH_CLASS: &str = "local-path";
pub const LOCAL_PATH_PROVISIONER: &str = "localkube/local-path";
/// The StorageClass whose volumes are CSI volumes of the local-path driver (snapshottable).
pub const LOCAL_CSI_CLASS: &str = "local-csi";
/// The StorageClass parameter that makes the local-path provisioner present CSI volumes.
pub const CSI_PARAMETER: &str = "localkube/csi";
/// A CSI driver of localkube's own serving shared (NFS-like, ReadWriteMany, any node) volumes:
/// directories under `<data>/shared`, named only through the driver's `volumeAttributes`, so
/// that nothing but the kubelet knows where they live (as with NFS or EFS).
pub const SHARED_DRIVER: &str = "shared.localkube.io";
/// The StorageClass of [`SHARED_DRIVER`].
pub const SHARED_CLASS: &str = "localkube-shared";

fn create_if_missing(
    api: &Api,
    b: Builtin,
    ns: Option<&str>,
    object: Value,
) -> Result<(), ApiError> {
    let rt = api.builtin(b);
    match api.create(&rt, ns, object, &WriteOptions::default()) {
        Ok(_) => Ok(()),
        Err(e) if e.code == 409 => Ok(()),
        Err(e) => Err(e),
    }
}

fn os_image() -> String {
    std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("PRETTY_NAME="))
                .map(|v| v.trim_matches('"').to_string())
        })
        .unwrap_or_else(|| "Linux".to_string())
}

fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// The Node object for this host.
pub fn node_object(name: &str) -> Value {
    let uname = nix::sys::utsname::uname().ok();
    let kernel = uname
        .as_ref()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default();
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let memory_kib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .unwrap_or(0);
    let now = now_time();
    let condition = |t: &str, status: &str, reason: &str, message: &str| json!({"type": t, "status": status, "lastHeartbeatTime": now, "lastTransitionTime": now, "reason": reason, "message": message});
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": go_arch(),
                "beta.kubernetes.io/os": "linux",
                "beta.kubernetes.io/arch": go_arch(),
                "node-role.kubernetes.io/control-plane": "",
            },
        },
        "spec": {},
        "status": {
            "capacity": {"cpu": cpus.to_string(), "memory": format!("{memory_kib}Ki"), "pods": "110", "ephemeral-storage": "100Gi"},
            "allocatable": {"cpu": cpus.to_string(), "memory": format!("{memory_kib}Ki"), "pods": "110", "ephemeral-storage": "100Gi"},
            "conditions": [
                condition("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
                condition("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
                condition("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
                condition("Ready", "True", "KubeletReady", "localkube process kubelet is ready"),
            ],
            "addresses": [
                {"type": "InternalIP", "address": "127.0.0.1"},
                {"type": "Hostname", "address": name},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
                "machineID": "", "systemUUID": "", "bootID": "",
                "kernelVersion": kernel,
                "osImage": os_image(),
                "containerRuntimeVersion": "localkube://process",
                "kubeletVersion": GIT_VERSION,
                "kubeProxyVersion": GIT_VERSION,
                "operatingSystem": "linux",
                "architecture": go_arch(),
            },
        },
    })
}

/// Creates what is missing and refreshes the Node's status.
pub fn seed(api: &Api) -> Result<(), ApiError> {
    for ns in SYSTEM_NAMESPACES {
        create_if_missing(
            api,
            Builtin::Namespace,
            None,
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
        )?;
    }
    let node_name = api.config.node_name.clone();
    let node = node_object(&node_name);
    let rt = api.builtin(Builtin::Node);
    match api.get_stored(&rt, "", &node_name) {
        None => create_if_missing(api, Builtin::Node, None, node)?,
        Some(cur) => {
            let mut v = cur.value();
            v["status"] = node["status"].clone();
            api.update(
                &rt,
                None,
                &node_name,
                v,
                Target::Status,
                &WriteOptions::default(),
            )?;
        }
    }
    create_if_missing(
        api,
        Builtin::StorageClass,
        None,
        json!({
            "apiVersion": "storage.k8s.io/v1",
            "kind": "StorageClass",
            "metadata": {
                "name": LOCAL_PATH_CLASS,
                "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
            },
            "provisioner": LOCAL_PATH_PROVISIONER,
            "reclaimPolicy": "Delete",
            "volumeBindingMode": "WaitForFirstConsumer",
            "allowVolumeExpansion": true,
        }),
    )?;
    // The same provisioner presenting its volumes as CSI volumes (`spec.csi`, driver
    // `localkube/local-path`), which is what volume snapshots need (KubeBlocks §2.5).
    create_if_missing(
        api,
        Builtin::StorageClass,
        None,
        json!({
            "apiVersion": "storage.k8s.io/v1",
            "kind": "StorageClass",
            "metadata": {"name": LOCAL_CSI_CLASS},
            "provisioner": LOCAL_PATH_PROVISIONER,
            "parameters": {CSI_PARAMETER: "true"},
            "reclaimPolicy": "Delete",
            "volumeBindingMode": "WaitForFirstConsumer",
            "allowVolumeExpansion": true,
        }),
    )?;
    // Shared volumes as an NFS CSI driver provisions them (`Immediate`, no node affinity).
    create_if_missing(
        api,
        Builtin::StorageClass,
        None,
        json!({
            "apiVersion": "storage.k8s.io/v1",
            "kind": "StorageClass",
            "metadata": {"name": SHARED_CLASS},
            "provisioner": SHARED_DRIVER,
            "reclaimPolicy": "Delete",
            "volumeBindingMode": "Immediate",
        }),
    )?;
    seed_snapshots(api)?;
    Ok(())
}

fn snapshot_crd(
    plural: &str,
    kind: &str,
    namespaced: bool,
    short: &[&str],
    schema: Value,
    columns: Value,
) -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("{plural}.snapshot.storage.k8s.io")},
        "spec": {
            "group": "snapshot.storage.k8s.io",
            "scope": if namespaced { "Namespaced" } else { "Cluster" },
            "names": {"plural": plural, "singular": kind.to_lowercase(), "kind": kind, "listKind": format!("{kind}List"), "shortNames": short},
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "subresources": if kind == "VolumeSnapshotClass" { json!({}) } else { json!({"status": {}}) },
                "additionalPrinterColumns": columns,
                "schema": {"openAPIV3Schema": schema},
            }],
        },
    })
}

fn open_object(description: &str) -> Value {
    json!({"type": "object", "description": description, "x-kubernetes-preserve-unknown-fields": true})
}

/// The snapshot.storage.k8s.io/v1 CRDs and the local driver's default VolumeSnapshotClass.
pub fn seed_snapshots(api: &Api) -> Result<(), ApiError> {
    let meta = json!({"type": "object"});
    let crds = [
        snapshot_crd(
            "volumesnapshotclasses",
            "VolumeSnapshotClass",
            false,
            &["vsclass", "vsclasses"],
            json!({"type": "object", "description": "VolumeSnapshotClass specifies parameters that a underlying storage system uses when creating a volume snapshot.",
            "required": ["deletionPolicy", "driver"],
            "properties": {
                "apiVersion": {"type": "string"}, "kind": {"type": "string"}, "metadata": meta,
                "driver": {"type": "string", "description": "driver is the name of the storage driver that handles this VolumeSnapshotClass."},
                "deletionPolicy": {"type": "string", "enum": ["Delete", "Retain"]},
                "parameters": {"type": "object", "additionalProperties": {"type": "string"}}
            }}),
            json!([
                {"name": "Driver", "type": "string", "jsonPath": ".driver"},
                {"name": "DeletionPolicy", "type": "string", "jsonPath": ".deletionPolicy"},
                {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}
            ]),
        ),
        snapshot_crd(
            "volumesnapshots",
            "VolumeSnapshot",
            true,
            &["vs"],
            json!({"type": "object", "description": "VolumeSnapshot is a user's request for either creating a point-in-time snapshot of a persistent volume, or binding to a pre-existing snapshot.",
            "required": ["spec"],
            "properties": {
                "apiVersion": {"type": "string"}, "kind": {"type": "string"}, "metadata": meta,
                "spec": {"type": "object", "required": ["source"], "properties": {
                    "source": {"type": "object", "properties": {
                        "persistentVolumeClaimName": {"type": "string"},
                        "volumeSnapshotContentName": {"type": "string"}}},
                    "volumeSnapshotClassName": {"type": "string"}}},
                "status": open_object("status represents the current information of a snapshot.")
            }}),
            json!([
                {"name": "ReadyToUse", "type": "boolean", "jsonPath": ".status.readyToUse"},
                {"name": "SourcePVC", "type": "string", "jsonPath": ".spec.source.persistentVolumeClaimName"},
                {"name": "SourceSnapshotContent", "type": "string", "jsonPath": ".spec.source.volumeSnapshotContentName"},
                {"name": "RestoreSize", "type": "string", "jsonPath": ".status.restoreSize"},
                {"name": "SnapshotClass", "type": "string", "jsonPath": ".spec.volumeSnapshotClassName"},
                {"name": "SnapshotContent", "type": "string", "jsonPath": ".status.boundVolumeSnapshotContentName"},
                {"name": "CreationTime", "type": "date", "jsonPath": ".status.creationTime"},
                {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}
            ]),
        ),
        snapshot_crd(
            "volumesnapshotcontents",
            "VolumeSnapshotContent",
            false,
            &["vsc", "vscs"],
            json!({"type": "object", "description": "VolumeSnapshotContent represents the actual \"on-disk\" snapshot object in the underlying storage system.",
            "required": ["spec"],
            "properties": {
                "apiVersion": {"type": "string"}, "kind": {"type": "string"}, "metadata": meta,
                "spec": open_object("spec defines properties of a VolumeSnapshotContent created by the underlying storage system."),
                "status": open_object("status represents the current information of a snapshot.")
            }}),
            json!([
                {"name": "ReadyToUse", "type": "boolean", "jsonPath": ".status.readyToUse"},
                {"name": "RestoreSize", "type": "integer", "jsonPath": ".status.restoreSize"},
                {"name": "DeletionPolicy", "type": "string", "jsonPath": ".spec.deletionPolicy"},
                {"name": "Driver", "type": "string", "jsonPath": ".spec.driver"},
                {"name": "VolumeSnapshotClass", "type": "string", "jsonPath": ".spec.volumeSnapshotClassName"},
                {"name": "VolumeSnapshot", "type": "string", "jsonPath": ".spec.volumeSnapshotRef.name"},
                {"name": "VolumeSnapshotNamespace", "type": "string", "jsonPath": ".spec.volumeSnapshotRef.namespace"},
                {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}
            ]),
        ),
    ];
    for crd in crds {
        create_if_missing(api, Builtin::CustomResourceDefinition, None, crd)?;
    }
    Ok(())
}

/// The default VolumeSnapshotClass, created once its CRD is served.
pub fn seed_snapshot_class(api: &Api) -> Result<bool, ApiError> {
    let Ok(rt) = api.resource("snapshot.storage.k8s.io", "v1", "volumesnapshotclasses") else {
        return Ok(false);
    };
    let class = json!({
        "apiVersion": "snapshot.storage.k8s.io/v1",
        "kind": "VolumeSnapshotClass",
        "metadata": {"name": "local-snapshot", "annotations": {"snapshot.storage.kubernetes.io/is-default-class": "true"}},
        "driver": LOCAL_PATH_PROVISIONER,
        "deletionPolicy": "Delete",
    });
    match api.create(&rt, None, class, &WriteOptions::default()) {
        Ok(_) => Ok(true),
        Err(e) if e.code == 409 => Ok(true),
        Err(e) => Err(e),
    }
}
