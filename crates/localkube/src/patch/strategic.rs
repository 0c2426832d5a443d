//! Strategic merge patch for built-in types.
//!
//! k8s-openapi does not expose `x-kubernetes-patch-merge-key`, so the merge keys of the
//! fields this project's built-ins use are a table here (`list_strategy`). Lists without an
//! entry are atomic (replaced), which is also what an unknown path falls back to.
//! Directives: `$patch: replace|delete|merge`, `$retainKeys`, `$deleteFromPrimitiveList/<f>`
//! and `$setElementOrder/<f>` (which `kubectl apply` sends).

use super::PatchError;
use serde_json::{Map, Value};

/// How a list field merges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListStrategy {
    /// Replace the whole list.
    Atomic,
    /// Merge elements whose `key` field is equal.
    MergeByKey(&'static str),
    /// A set of scalars: union, keeping order.
    PrimitiveSet,
}

/// The strategy of the list at `path` (map keys from the root, list indices left out).
pub fn list_strategy(kind: &str, path: &[String]) -> ListStrategy {
    let last = path.last().map(String::as_str).unwrap_or_default();
    let parent = if path.len() >= 2 {
        path[path.len() - 2].as_str()
    } else {
        ""
    };
    match (parent, last) {
        ("metadata", "finalizers") if path.len() == 2 => ListStrategy::PrimitiveSet,
        ("metadata", "ownerReferences") => ListStrategy::MergeByKey("uid"),
        (_, "containers" | "initContainers" | "ephemeralContainers") => {
            ListStrategy::MergeByKey("name")
        }
        ("containers" | "initContainers" | "ephemeralContainers", "env") => {
            ListStrategy::MergeByKey("name")
        }
        ("containers" | "initContainers" | "ephemeralContainers", "ports") => {
            ListStrategy::MergeByKey("containerPort")
        }
        ("spec", "ports") if kind == "Service" => ListStrategy::MergeByKey("port"),
        (_, "volumeMounts") => ListStrategy::MergeByKey("mountPath"),
        (_, "volumeDevices") => ListStrategy::MergeByKey("devicePath"),
        ("spec", "volumes") => ListStrategy::MergeByKey("name"),
        ("spec", "imagePullSecrets") | ("", "imagePullSecrets") => ListStrategy::MergeByKey("name"),
        ("spec", "hostAliases") => ListStrategy::MergeByKey("ip"),
        ("spec", "topologySpreadConstraints") => ListStrategy::MergeByKey("topologyKey"),
        ("spec", "resourceClaims") => ListStrategy::MergeByKey("name"),
        ("status", "conditions") => ListStrategy::MergeByKey("type"),
        ("", "secrets") if kind == "ServiceAccount" => ListStrategy::MergeByKey("name"),
        _ => ListStrategy::Atomic,
    }
}

/// Applies a strategic merge patch for an object of `kind`.
pub fn strategic_merge(kind: &str, doc: &Value, patch: &Value) -> Result<Value, PatchError> {
    if !patch.is_object() {
        return Err(PatchError::Malformed(
            "strategic merge patch must be a JSON object".to_string(),
        ));
    }
    let mut path = Vec::new();
    Ok(merge_value(kind, doc, patch, &mut path)?.unwrap_or(Value::Object(Map::new())))
}

/// Merges `patch` into `doc`; `None` means the patch deleted the value (`$patch: delete`).
fn merge_value(
    kind: &str,
    doc: &Value,
    patch: &Value,
    path: &mut Vec<String>,
) -> Result<Option<Value>, PatchError> {
    let Some(pmap) = patch.as_object() else {
        return Ok(Some(patch.clone()));
    };
    match pmap.get("$patch").and_then(Value::as_str) {
        Some("replace") => return Ok(Some(Value::Object(strip_directives(pmap)))),
        Some("delete") => return Ok(None),
        Some("merge") | None => {}
        Some(other) => {
            return Err(PatchError::Malformed(format!(
                "unknown patch type: {other:?} in map"
            )));
        }
    }
    let mut out = doc.as_object().cloned().unwrap_or_default();
    for (key, pval) in pmap {
        if key == "$patch" || key == "$retainKeys" || key.starts_with("$setElementOrder/") {
            continue;
        }
        if let Some(field) = key.strip_prefix("$deleteFromPrimitiveList/") {
            let remove = pval.as_array().cloned().unwrap_or_default();
            if let Some(Value::Array(list)) = out.get_mut(field) {
                list.retain(|v| !remove.contains(v));
            }
            continue;
        }
        if pval.is_null() {
            out.remove(key);
            continue;
        }
        path.push(key.clone());
        let merged = match (out.get(key), pval) {
            (Some(cur @ Value::Object(_)), Value::Object(_)) => merge_value(kind, cur, pval, path)?,
            (None, Value::Object(_)) => merge_value(kind, &Value::Null, pval, path)?,
            (cur, Value::Array(items)) => {
                let order = pmap
                    .get(&format!("$setElementOrder/{key}"))
                    .and_then(Value::as_array);
                Some(merge_list(kind, cur, items, order, path)?)
            }
            (_, other) => Some(other.clone()),
        };
        path.pop();
        match merged {
            Some(v) => {
                out.insert(key.clone(), v);
            }
            None => {
                out.remove(key);
            }
        }
    }
    if let Some(retain) = pmap.get("$retainKeys").and_then(Value::as_array) {
        let keep: Vec<&str> = retain.iter().filter_map(Value::as_str).collect();
        out.retain(|k, _| keep.contains(&k.as_str()));
    }
    Ok(Some(Value::Object(out)))
}

fn strip_directives(map: &Map<String, Value>) -> Map<String, Value> {
    map.iter()
        .filter(|(k, _)| !k.starts_with('$'))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn merge_list(
    kind: &str,
    current: Option<&Value>,
    items: &[Value],
    order: Option<&Vec<Value>>,
    path: &mut Vec<String>,
) -> Result<Value, PatchError> {
    // A `{"$patch": "replace"}` element replaces the whole list with the other elements.
    if items
        .iter()
        .any(|i| i.get("$patch").and_then(Value::as_str) == Some("replace"))
    {
        return Ok(Value::Array(
            items
                .iter()
                .filter(|i| i.get("$patch").is_none())
                .cloned()
                .collect(),
        ));
    }
    let existing = current
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    match list_strategy(kind, path) {
        ListStrategy::Atomic => Ok(Value::Array(items.to_vec())),
        ListStrategy::PrimitiveSet => {
            let mut out = existing;
            for i in items {
                if !out.contains(i) {
                    out.push(i.clone());
                }
            }
            Ok(Value::Array(apply_order(out, order, None)))
        }
        ListStrategy::MergeByKey(merge_key) => {
            let mut out = existing;
            for item in items {
                let Some(key_value) = item.get(merge_key) else {
                    out.push(item.clone());
                    continue;
                };
                let pos = out.iter().position(|e| e.get(merge_key) == Some(key_value));
                let delete = item.get("$patch").and_then(Value::as_str) == Some("delete");
                match (pos, delete) {
                    (Some(p), true) => {
                        out.remove(p);
                    }
                    (None, true) => {}
                    (Some(p), false) => match merge_value(kind, &out[p], item, path)? {
                        Some(v) => out[p] = v,
                        None => {
                            out.remove(p);
                        }
                    },
                    (None, false) => {
                        if let Some(v) = merge_value(kind, &Value::Null, item, path)? {
                            out.push(v);
                        }
                    }
                }
            }
            Ok(Value::Array(apply_order(out, order, Some(merge_key))))
        }
    }
}

/// Orders elements named in `$setElementOrder` first, in that order, then the rest.
fn apply_order(list: Vec<Value>, order: Option<&Vec<Value>>, key: Option<&str>) -> Vec<Value> {
    let Some(order) = order else {
        return list;
    };
    let ident = |v: &Value| -> Value {
        match key {
            Some(k) => v.get(k).cloned().unwrap_or(Value::Null),
            None => v.clone(),
        }
    };
    let wanted: Vec<Value> = order.iter().map(&ident).collect();
    let mut ordered: Vec<Value> = Vec::with_capacity(list.len());
    let mut rest = Vec::new();
    let mut slots: Vec<Option<Value>> = vec![None; wanted.len()];
    for v in list {
        match wanted.iter().position(|w| *w == ident(&v)) {
            Some(i) if slots[i].is_none() => slots[i] = Some(v),
            _ => rest.push(v),
        }
    }
    ordered.extend(slots.into_iter().flatten());
    ordered.extend(rest);
    ordered
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod() -> Value {
        json!({
            "metadata": {"name": "p", "finalizers": ["a"], "labels": {"x": "1"}},
            "spec": {
                "containers": [
                    {"name": "main", "image": "i", "env": [{"name": "A", "value": "1"}]},
                    {"name": "side", "image": "j"}
                ],
                "tolerations": [{"key": "k"}]
            }
        })
    }

    #[test]
    fn containers_merge_by_name_and_env_by_name() {
        let out = strategic_merge(
            "Pod",
            &pod(),
            &json!({"spec": {"containers": [{"name": "main", "env": [{"name": "B", "value": "2"}]}]}}),
        )
        .unwrap();
        let c = &out["spec"]["containers"];
        assert_eq!(c.as_array().unwrap().len(), 2);
        assert_eq!(c[0]["image"], "i");
        assert_eq!(
            c[0]["env"],
            json!([{"name": "A", "value": "1"}, {"name": "B", "value": "2"}])
        );
    }

    #[test]
    fn lists_without_a_merge_key_are_replaced() {
        let out = strategic_merge(
            "Pod",
            &pod(),
            &json!({"spec": {"tolerations": [{"key": "z"}]}}),
        )
        .unwrap();
        assert_eq!(out["spec"]["tolerations"], json!([{"key": "z"}]));
    }

    #[test]
    fn null_deletes_and_maps_merge() {
        let out = strategic_merge(
            "Pod",
            &pod(),
            &json!({"metadata": {"labels": {"x": null, "y": "2"}}}),
        )
        .unwrap();
        assert_eq!(out["metadata"]["labels"], json!({"y": "2"}));
    }

    #[test]
    fn delete_directive_removes_a_keyed_element() {
        let out = strategic_merge(
            "Pod",
            &pod(),
            &json!({"spec": {"containers": [{"name": "side", "$patch": "delete"}]}}),
        )
        .unwrap();
        assert_eq!(out["spec"]["containers"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn replace_directive_replaces_a_map() {
        let out = strategic_merge(
            "Pod",
            &pod(),
            &json!({"metadata": {"labels": {"$patch": "replace", "z": "3"}}}),
        )
        .unwrap();
        assert_eq!(out["metadata"]["labels"], json!({"z": "3"}));
    }

    #[test]
    fn finalizers_merge_as_a_set_and_can_be_deleted_from() {
        let out = strategic_merge(
            "Pod",
            &pod(),
            &json!({"metadata": {"finalizers": ["b", "a"]}}),
        )
        .unwrap();
        assert_eq!(out["metadata"]["finalizers"], json!(["a", "b"]));
        let out = strategic_merge(
            "Pod",
            &out,
            &json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}}),
        )
        .unwrap();
        assert_eq!(out["metadata"]["finalizers"], json!(["b"]));
    }

    #[test]
    fn set_element_order_reorders_and_is_not_stored() {
        let out = strategic_merge(
            "Pod",
            &pod(),
            &json!({"spec": {"$setElementOrder/containers": [{"name": "side"}, {"name": "main"}],
                             "containers": [{"name": "main", "image": "k"}]}}),
        )
        .unwrap();
        assert_eq!(out["spec"]["containers"][0]["name"], "side");
        assert_eq!(out["spec"]["containers"][1]["image"], "k");
        assert!(out["spec"].get("$setElementOrder/containers").is_none());
    }

    #[test]
    fn retain_keys_drops_unlisted_fields() {
        let doc = json!({"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}});
        let out = strategic_merge(
            "Deployment",
            &doc,
            &json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}),
        )
        .unwrap();
        assert_eq!(out["spec"]["strategy"], json!({"type": "Recreate"}));
    }

    #[test]
    fn conditions_merge_by_type() {
        let doc = json!({"status": {"conditions": [{"type": "Ready", "status": "False"}, {"type": "X", "status": "True"}]}});
        let out = strategic_merge(
            "Pod",
            &doc,
            &json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}}),
        )
        .unwrap();
        assert_eq!(out["status"]["conditions"][0]["status"], "True");
        assert_eq!(out["status"]["conditions"].as_array().unwrap().len(), 2);
    }
}
