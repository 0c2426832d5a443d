//! Pod volumes as host directories, laid out like the kubelet's:
//! `<data>/kubelet/pods/<uid>/volumes/kubernetes.io~<type>/<name>` for emptyDir, configMap,
//! secret, downwardAPI and projected volumes, and `kubernetes.io~local-volume/<pv>` (a
//! symlink) for claims bound to local PersistentVolumes, `kubernetes.io~csi/<pv>/mount` (a
//! symlink) for CSI ones (localkube's local-path and shared drivers). hostPath volumes are
//! used in place.

use crate::rest::Api;
use base64::Engine;
use serde_json::Value;
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Why volumes are not ready.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VolumeError {
    /// Not yet (a claim not bound yet): retry.
    #[error("{0}")]
    Waiting(String),
    /// A configuration problem the pod reports.
    #[error("{0}")]
    Failed(String),
}

fn s<'a>(v: &'a Value, p: &str) -> &'a str {
    v.pointer(p).and_then(Value::as_str).unwrap_or_default()
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> VolumeError + '_ {
    move |e| VolumeError::Failed(format!("preparing {}: {e}", path.display()))
}

/// Writes `files` (relative path -> bytes) into `dir` with `mode`, replacing old content.
fn write_files(dir: &Path, files: &[(String, Vec<u8>, u32)]) -> Result<(), VolumeError> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(io(dir))?;
    }
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    for (rel, data, mode) in files {
        if rel.starts_with('/') || rel.split('/').any(|p| p == "..") {
            return Err(VolumeError::Failed(format!(
                "invalid volume item path {rel:?}"
            )));
        }
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        std::fs::write(&path, data).map_err(io(&path))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(*mode))
            .map_err(io(&path))?;
    }
    Ok(())
}

/// The files of a configMap/secret source: all keys, or the listed `items`.
fn key_files(
    source: &Value,
    data: &BTreeMap<String, Vec<u8>>,
    default_mode: u32,
) -> Result<Vec<(String, Vec<u8>, u32)>, VolumeError> {
    match source.get("items").and_then(Value::as_array) {
        Some(items) => {
            let mut out = Vec::new();
            for item in items {
                let key = s(item, "/key");
                let Some(bytes) = data.get(key) else {
                    return Err(VolumeError::Failed(format!(
                        "configmap or secret key {key:?} not found"
                    )));
                };
                let mode = item
                    .get("mode")
                    .and_then(Value::as_u64)
                    .map(|m| m as u32)
                    .unwrap_or(default_mode);
                out.push((s(item, "/path").to_string(), bytes.clone(), mode));
            }
            Ok(out)
        }
        None => Ok(data
            .iter()
            .map(|(k, v)| (k.clone(), v.clone(), default_mode))
            .collect()),
    }
}

fn config_map_data(cm: &Value) -> BTreeMap<String, Vec<u8>> {
    let mut out: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for (k, v) in cm
        .get("data")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        out.insert(
            k.clone(),
            v.as_str().unwrap_or_default().as_bytes().to_vec(),
        );
    }
    for (k, v) in cm
        .get("binaryData")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap_or_default())
            .unwrap_or_default();
        out.insert(k.clone(), bytes);
    }
    out
}

fn secret_data(secret: &Value) -> BTreeMap<String, Vec<u8>> {
    secret
        .get("data")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .map(|(k, v)| {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(v.as_str().unwrap_or_default())
                .unwrap_or_default();
            (k.clone(), bytes)
        })
        .collect()
}

/// A downward API file's content (`metadata.labels` uses the kubelet's `k="v"` lines).
fn downward_value(pod: &Value, field: &str) -> String {
    let map_lines = |m: &str| -> String {
        pod.pointer(&format!("/metadata/{m}"))
            .and_then(Value::as_object)
            .map(|map| {
                let mut lines: Vec<String> = map
                    .iter()
                    .map(|(k, v)| format!("{k}={:?}", v.as_str().unwrap_or_default()))
                    .collect();
                lines.sort();
                lines.join("\n")
            })
            .unwrap_or_default()
    };
    match field {
        "metadata.labels" => map_lines("labels"),
        "metadata.annotations" => map_lines("annotations"),
        "metadata.name" => s(pod, "/metadata/name").to_string(),
        "metadata.namespace" => s(pod, "/metadata/namespace").to_string(),
        "metadata.uid" => s(pod, "/metadata/uid").to_string(),
        "spec.nodeName" => s(pod, "/spec/nodeName").to_string(),
        "spec.serviceAccountName" => s(pod, "/spec/serviceAccountName").to_string(),
        other => {
            for m in ["labels", "annotations"] {
                let prefix = format!("metadata.{m}['");
                if let Some(k) = other
                    .strip_prefix(&prefix)
                    .and_then(|k| k.strip_suffix("']"))
                {
                    return s(
                        pod,
                        &format!("/metadata/{m}/{}", k.replace('~', "~0").replace('/', "~1")),
                    )
                    .to_string();
                }
            }
            String::new()
        }
    }
}

fn downward_files(pod: &Value, source: &Value, default_mode: u32) -> Vec<(String, Vec<u8>, u32)> {
    source
        .get("items")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|item| {
            let field = item
                .pointer("/fieldRef/fieldPath")
                .and_then(Value::as_str)?;
            let mode = item
                .get("mode")
                .and_then(Value::as_u64)
                .map(|m| m as u32)
                .unwrap_or(default_mode);
            Some((
                s(item, "/path").to_string(),
                downward_value(pod, field).into_bytes(),
                mode,
            ))
        })
        .collect()
}

/// The pod's directory.
pub fn pod_dir(data_dir: &Path, uid: &str) -> PathBuf {
    data_dir.join("kubelet").join("pods").join(uid)
}

/// Prepares every volume of `pod`; returns volume name -> host path.
pub fn prepare(
    api: &Api,
    pod: &Value,
    data_dir: &Path,
) -> Result<BTreeMap<String, PathBuf>, VolumeError> {
    let ns = s(pod, "/metadata/namespace");
    let uid = s(pod, "/metadata/uid");
    let volumes_dir = pod_dir(data_dir, uid).join("volumes");
    let get = |storage: &str, name: &str| api.store().get(storage, ns, name).map(|o| o.value());
    let mut out = BTreeMap::new();
    for v in pod
        .pointer("/spec/volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let name = s(v, "/name").to_string();
        let default_mode = |kind: &str| {
            v.pointer(&format!("/{kind}/defaultMode"))
                .and_then(Value::as_u64)
                .unwrap_or(0o644) as u32
        };
        let dir = |kind: &str| {
            volumes_dir
                .join(format!("kubernetes.io~{kind}"))
                .join(&name)
        };
        let path = if v.get("emptyDir").is_some() {
            let d = dir("empty-dir");
            std::fs::create_dir_all(&d).map_err(io(&d))?;
            std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o777)).map_err(io(&d))?;
            d
        } else if let Some(hp) = v.get("hostPath") {
            let p = PathBuf::from(s(hp, "/path"));
            match s(hp, "/type") {
                "DirectoryOrCreate" => {
                    std::fs::create_dir_all(&p).map_err(io(&p))?;
                }
                "FileOrCreate" => {
                    if !p.exists() {
                        if let Some(parent) = p.parent() {
                            std::fs::create_dir_all(parent).map_err(io(parent))?;
                        }
                        std::fs::write(&p, b"").map_err(io(&p))?;
                    }
                }
                "Directory" if !p.is_dir() => {
                    return Err(VolumeError::Failed(format!(
                        "hostPath type check failed: {} is not a directory",
                        p.display()
                    )));
                }
                "File" if !p.is_file() => {
                    return Err(VolumeError::Failed(format!(
                        "hostPath type check failed: {} is not a file",
                        p.display()
                    )));
                }
                _ => {
                    if !p.exists() {
                        // An unchecked hostPath that does not exist is created as a directory, as the kubelet does.
                        std::fs::create_dir_all(&p).map_err(io(&p))?;
                    }
                }
            }
            p
        } else if let Some(src) = v.get("configMap") {
            let cm_name = s(src, "/name");
            let optional = src
                .get("optional")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            let data = match get("core/configmaps", cm_name) {
                Some(cm) => config_map_data(&cm),
                None if optional => BTreeMap::new(),
                None => {
                    return Err(VolumeError::Waiting(format!(
                        "configmap {cm_name:?} not found"
                    )));
                }
            };
            let d = dir("configmap");
            write_files(&d, &key_files(src, &data, default_mode("configMap"))?)?;
            d
        } else if let Some(src) = v.get("secret") {
            let secret_name = s(src, "/secretName");
            let optional = src
                .get("optional")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            let data = match get("core/secrets", secret_name) {
                Some(sec) => secret_data(&sec),
                None if optional => BTreeMap::new(),
                None => {
                    return Err(VolumeError::Waiting(format!(
                        "secret {secret_name:?} not found"
                    )));
                }
            };
            let d = dir("secret");
            write_files(&d, &key_files(src, &data, default_mode("secret"))?)?;
            d
        } else if let Some(src) = v.get("downwardAPI") {
            let d = dir("downward-api");
            write_files(&d, &downward_files(pod, src, default_mode("downwardAPI")))?;
            d
        } else if let Some(src) = v.get("projected") {
            let mut files = Vec::new();
            let mode = default_mode("projected");
            for source in src
                .get("sources")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(c) = source.get("configMap") {
                    if let Some(cm) = get("core/configmaps", s(c, "/name")) {
                        files.extend(key_files(c, &config_map_data(&cm), mode)?);
                    }
                } else if let Some(c) = source.get("secret") {
                    if let Some(sec) = get("core/secrets", s(c, "/name")) {
                        files.extend(key_files(c, &secret_data(&sec), mode)?);
                    }
                } else if let Some(c) = source.get("downwardAPI") {
                    files.extend(downward_files(pod, c, mode));
                }
            }
            let d = dir("projected");
            write_files(&d, &files)?;
            d
        } else if let Some(src) = v.get("persistentVolumeClaim") {
            let claim = s(src, "/claimName");
            let Some(pvc) = get("core/persistentvolumeclaims", claim) else {
                return Err(VolumeError::Waiting(format!(
                    "persistentvolumeclaim {claim:?} not found"
                )));
            };
            let pv_name = s(&pvc, "/spec/volumeName");
            if pv_name.is_empty() || s(&pvc, "/status/phase") != "Bound" {
                return Err(VolumeError::Waiting(format!(
                    "persistentvolumeclaim {claim:?} is not bound"
                )));
            }
            let Some(pv) = api
                .store()
                .get("core/persistentvolumes", "", pv_name)
                .map(|o| o.value())
            else {
                return Err(VolumeError::Waiting(format!(
                    "persistentvolume {pv_name:?} not found"
                )));
            };
            let host = crate::controllers::volume::volume_path(&pv);
            if host.is_empty() {
                return Err(VolumeError::Failed(format!(
                    "persistentvolume {pv_name:?} has no local, hostPath, local-path CSI or shared CSI source"
                )));
            }
            let host = PathBuf::from(host);
            std::fs::create_dir_all(&host).map_err(io(&host))?;
            // Where the kubelet mounts local and CSI volumes, so node agents find them the same way.
            let link = if !s(&pv, "/spec/local/path").is_empty() {
                Some(volumes_dir.join("kubernetes.io~local-volume").join(pv_name))
            } else if pv.pointer("/spec/csi").is_some() {
                Some(
                    volumes_dir
                        .join("kubernetes.io~csi")
                        .join(pv_name)
                        .join("mount"),
                )
            } else {
                None
            };
            if let Some(link) = link {
                if let Some(parent) = link.parent() {
                    std::fs::create_dir_all(parent).map_err(io(parent))?;
                }
                if std::fs::read_link(&link).ok().as_deref() != Some(host.as_path()) {
                    let _ = std::fs::remove_file(&link);
                    std::os::unix::fs::symlink(&host, &link).map_err(io(&link))?;
                }
            }
            host
        } else {
            return Err(VolumeError::Failed(format!(
                "volume {name:?}: localkube supports emptyDir, hostPath, configMap, secret, downwardAPI, projected and persistentVolumeClaim volumes"
            )));
        };
        out.insert(name, path);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn downward_labels_use_the_kubelet_line_format() {
        let pod = json!({"metadata": {"labels": {"b": "2", "a": "1"}, "name": "p"}});
        assert_eq!(downward_value(&pod, "metadata.labels"), "a=\"1\"\nb=\"2\"");
        assert_eq!(downward_value(&pod, "metadata.labels['a']"), "1");
        assert_eq!(downward_value(&pod, "metadata.name"), "p");
    }

    #[test]
    fn items_select_keys_and_paths() {
        let data: BTreeMap<String, Vec<u8>> = [
            ("a".to_string(), b"1".to_vec()),
            ("b".to_string(), b"2".to_vec()),
        ]
        .into();
        let files = key_files(
            &json!({"items": [{"key": "b", "path": "sub/b.txt"}]}),
            &data,
            0o644,
        )
        .unwrap();
        assert_eq!(files, vec![("sub/b.txt".to_string(), b"2".to_vec(), 0o644)]);
        assert!(
            key_files(
                &json!({"items": [{"key": "zz", "path": "x"}]}),
                &data,
                0o644
            )
            .is_err()
        );
    }
}
