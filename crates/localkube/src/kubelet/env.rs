//! A container's environment: `env` (values, `valueFrom` secretKeyRef / configMapKeyRef /
//! fieldRef / resourceFieldRef), `envFrom`, and `$(VAR)` expansion as the kubelet does it.

use base64::Engine;
use serde_json::Value;
use std::collections::BTreeMap;

/// Looks up ConfigMaps and Secrets in the pod's namespace.
pub trait Sources {
    fn config_map(&self, name: &str) -> Option<Value>;
    fn secret(&self, name: &str) -> Option<Value>;
}

/// Why a container's environment cannot be built (`CreateContainerConfigError`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvError {
    #[error("secret {0:?} not found")]
    SecretNotFound(String),
    #[error("configmap {0:?} not found")]
    ConfigMapNotFound(String),
    #[error("couldn't find key {key} in Secret {namespace}/{name}")]
    SecretKey {
        namespace: String,
        name: String,
        key: String,
    },
    #[error("couldn't find key {key} in ConfigMap {namespace}/{name}")]
    ConfigMapKey {
        namespace: String,
        name: String,
        key: String,
    },
    #[error("unsupported fieldRef {0}")]
    FieldRef(String),
}

/// `$(VAR)` expansion: defined variables are replaced, `$$` escapes, others stay as written.
pub fn expand(input: &str, vars: &dyn Fn(&str) -> Option<String>) -> String {
    let bytes = input.as_bytes();
    let mut out = String::with_capacity(input.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'$' && i + 1 < bytes.len() {
            match bytes[i + 1] {
                b'$' => {
                    out.push('$');
                    i += 2;
                    continue;
                }
                b'(' => {
                    if let Some(end) = input[i + 2..].find(')') {
                        let name = &input[i + 2..i + 2 + end];
                        match vars(name) {
                            Some(v) => out.push_str(&v),
                            None => out.push_str(&input[i..i + 3 + end]),
                        }
                        i += 3 + end;
                        continue;
                    }
                }
                _ => {}
            }
        }
        let ch = input[i..].chars().next().unwrap_or('\0');
        out.push(ch);
        i += ch.len_utf8();
    }
    out
}

fn field_value(pod: &Value, path: &str) -> Result<String, EnvError> {
    let s = |p: &str| {
        pod.pointer(p)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let map_entry = |map: &str, key: &str| {
        pod.pointer(&format!("/metadata/{map}"))
            .and_then(|m| m.get(key))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    Ok(match path {
        "metadata.name" => s("/metadata/name"),
        "metadata.namespace" => s("/metadata/namespace"),
        "metadata.uid" => s("/metadata/uid"),
        "spec.nodeName" => s("/spec/nodeName"),
        "spec.serviceAccountName" => s("/spec/serviceAccountName"),
        "status.hostIP" | "status.podIP" => "127.0.0.1".to_string(),
        "status.hostIPs" | "status.podIPs" => "127.0.0.1".to_string(),
        other => {
            for map in ["labels", "annotations"] {
                let prefix = format!("metadata.{map}['");
                if let Some(key) = other
                    .strip_prefix(&prefix)
                    .and_then(|k| k.strip_suffix("']"))
                {
                    return Ok(map_entry(map, key));
                }
            }
            return Err(EnvError::FieldRef(other.to_string()));
        }
    })
}

fn secret_value(v: &Value, key: &str) -> Option<String> {
    let b64 = v
        .pointer("/data")
        .and_then(|d| d.get(key))
        .and_then(Value::as_str)?;
    let bytes = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
    Some(String::from_utf8_lossy(&bytes).into_owned())
}

fn config_value(v: &Value, key: &str) -> Option<String> {
    v.pointer("/data")
        .and_then(|d| d.get(key))
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// The environment of `container` in `pod`, in definition order (later entries win).
pub fn container_env(
    pod: &Value,
    container: &Value,
    sources: &dyn Sources,
) -> Result<Vec<(String, String)>, EnvError> {
    let ns = pod
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let mut env: BTreeMap<String, String> = BTreeMap::new();
    let mut order: Vec<String> = Vec::new();
    let mut set = |k: String, v: String, env: &mut BTreeMap<String, String>| {
        if !env.contains_key(&k) {
            order.push(k.clone());
        }
        env.insert(k, v);
    };
    for from in container
        .get("envFrom")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let prefix = from
            .get("prefix")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if let Some(r) = from.get("configMapRef") {
            let name = r.get("name").and_then(Value::as_str).unwrap_or_default();
            let optional = r.get("optional").and_then(Value::as_bool).unwrap_or(false);
            match sources.config_map(name) {
                Some(cm) => {
                    for (k, v) in cm
                        .get("data")
                        .and_then(Value::as_object)
                        .into_iter()
                        .flatten()
                    {
                        set(
                            format!("{prefix}{k}"),
                            v.as_str().unwrap_or_default().to_string(),
                            &mut env,
                        );
                    }
                }
                None if optional => {}
                None => return Err(EnvError::ConfigMapNotFound(name.to_string())),
            }
        }
        if let Some(r) = from.get("secretRef") {
            let name = r.get("name").and_then(Value::as_str).unwrap_or_default();
            let optional = r.get("optional").and_then(Value::as_bool).unwrap_or(false);
            match sources.secret(name) {
                Some(s) => {
                    for k in s
                        .get("data")
                        .and_then(Value::as_object)
                        .map(|m| m.keys().cloned().collect::<Vec<_>>())
                        .unwrap_or_default()
                    {
                        let v = secret_value(&s, &k).unwrap_or_default();
                        set(format!("{prefix}{k}"), v, &mut env);
                    }
                }
                None if optional => {}
                None => return Err(EnvError::SecretNotFound(name.to_string())),
            }
        }
    }
    for e in container
        .get("env")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let name = e
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let value = if let Some(v) = e.get("value").and_then(Value::as_str) {
            let snapshot = env.clone();
            expand(v, &|k| snapshot.get(k).cloned())
        } else if let Some(from) = e.get("valueFrom") {
            if let Some(r) = from.get("secretKeyRef") {
                let sname = r.get("name").and_then(Value::as_str).unwrap_or_default();
                let key = r.get("key").and_then(Value::as_str).unwrap_or_default();
                let optional = r.get("optional").and_then(Value::as_bool).unwrap_or(false);
                match sources.secret(sname).map(|s| secret_value(&s, key)) {
                    Some(Some(v)) => v,
                    _ if optional => continue,
                    None => return Err(EnvError::SecretNotFound(sname.to_string())),
                    Some(None) => {
                        return Err(EnvError::SecretKey {
                            namespace: ns.into(),
                            name: sname.into(),
                            key: key.into(),
                        });
                    }
                }
            } else if let Some(r) = from.get("configMapKeyRef") {
                let cname = r.get("name").and_then(Value::as_str).unwrap_or_default();
                let key = r.get("key").and_then(Value::as_str).unwrap_or_default();
                let optional = r.get("optional").and_then(Value::as_bool).unwrap_or(false);
                match sources.config_map(cname).map(|c| config_value(&c, key)) {
                    Some(Some(v)) => v,
                    _ if optional => continue,
                    None => return Err(EnvError::ConfigMapNotFound(cname.to_string())),
                    Some(None) => {
                        return Err(EnvError::ConfigMapKey {
                            namespace: ns.into(),
                            name: cname.into(),
                            key: key.into(),
                        });
                    }
                }
            } else if let Some(r) = from.get("fieldRef") {
                field_value(
                    pod,
                    r.get("fieldPath")
                        .and_then(Value::as_str)
                        .unwrap_or_default(),
                )?
            } else if let Some(r) = from.get("resourceFieldRef") {
                let resource = r
                    .get("resource")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let cpus = std::thread::available_parallelism()
                    .map(|n| n.get())
                    .unwrap_or(1);
                match resource {
                    "limits.cpu" | "requests.cpu" => cpus.to_string(),
                    _ => "0".to_string(),
                }
            } else {
                String::new()
            }
        } else {
            String::new()
        };
        set(name, value, &mut env);
    }
    Ok(order
        .into_iter()
        .map(|k| {
            let v = env.get(&k).cloned().unwrap_or_default();
            (k, v)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    struct Fake;
    impl Sources for Fake {
        fn config_map(&self, name: &str) -> Option<Value> {
            (name == "cm").then(|| json!({"data": {"A": "from-cm", "B": "b"}}))
        }
        fn secret(&self, name: &str) -> Option<Value> {
            (name == "s").then(|| json!({"data": {"PASSWORD": "aHVudGVyMg=="}}))
        }
    }

    #[test]
    fn expansion_replaces_defined_vars_escapes_and_keeps_undefined() {
        let vars = |k: &str| (k == "X").then(|| "1".to_string());
        assert_eq!(expand("a$(X)b", &vars), "a1b");
        assert_eq!(expand("$$(X)", &vars), "$(X)");
        assert_eq!(expand("$(Y)", &vars), "$(Y)");
        assert_eq!(expand("$(X", &vars), "$(X");
        assert_eq!(expand("é$(X)", &vars), "é1");
    }

    #[test]
    fn env_resolves_every_source_and_later_entries_win() {
        let pod = json!({"metadata": {"name": "p", "namespace": "ns", "labels": {"app": "db"}}, "spec": {"nodeName": "n"}});
        let c = json!({
            "envFrom": [{"configMapRef": {"name": "cm"}, "prefix": "CM_"}],
            "env": [
                {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "s", "key": "PASSWORD"}}},
                {"name": "A", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "A"}}},
                {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
                {"name": "URL", "value": "postgres://$(POD):$(PW)@x"},
                {"name": "MISSING", "valueFrom": {"secretKeyRef": {"name": "nope", "key": "k", "optional": true}}}
            ]
        });
        let env: BTreeMap<_, _> = container_env(&pod, &c, &Fake)
            .unwrap()
            .into_iter()
            .collect();
        assert_eq!(env["PW"], "hunter2");
        assert_eq!(env["A"], "from-cm");
        assert_eq!(env["CM_B"], "b");
        assert_eq!(env["APP"], "db");
        assert_eq!(env["URL"], "postgres://p:hunter2@x");
        assert!(!env.contains_key("MISSING"));
    }

    #[test]
    fn a_missing_required_secret_is_a_config_error() {
        let pod = json!({"metadata": {"name": "p", "namespace": "ns"}});
        let c = json!({"env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "nope", "key": "k"}}}]});
        assert_eq!(
            container_env(&pod, &c, &Fake),
            Err(EnvError::SecretNotFound("nope".into()))
        );
    }
}
