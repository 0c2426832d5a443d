//! A simplified server-side apply ("SSA-lite"): the applied configuration is deep-merged
//! over the live object.
//!
//! Maps merge recursively; lists with keys (`x-kubernetes-list-map-keys` for custom
//! resources, the strategic-merge table for built-ins) merge by key; other lists are
//! replaced. There are no managedFields and no conflicts, and `force` is ignored, so a field
//! removed from an applied configuration is not removed from the object.

use serde_json::{Map, Value};

/// Merges `applied` over `live`. `list_keys(path)` names the key fields of the list at
/// `path` (map keys from the root), or `None` for an atomic list.
pub fn apply_merge(
    live: &Value,
    applied: &Value,
    list_keys: &dyn Fn(&[String]) -> Option<Vec<String>>,
) -> Value {
    let mut path = Vec::new();
    merge(live, applied, list_keys, &mut path)
}

fn merge(
    live: &Value,
    applied: &Value,
    list_keys: &dyn Fn(&[String]) -> Option<Vec<String>>,
    path: &mut Vec<String>,
) -> Value {
    match (live, applied) {
        (Value::Object(l), Value::Object(a)) => {
            let mut out: Map<String, Value> = l.clone();
            for (k, v) in a {
                if v.is_null() {
                    out.remove(k);
                    continue;
                }
                path.push(k.clone());
                let merged = match out.get(k) {
                    Some(cur) => merge(cur, v, list_keys, path),
                    None => v.clone(),
                };
                path.pop();
                out.insert(k.clone(), merged);
            }
            Value::Object(out)
        }
        (Value::Array(l), Value::Array(a)) => match list_keys(path) {
            Some(keys) if !keys.is_empty() => {
                let key_of = |v: &Value| -> Option<Vec<Value>> {
                    keys.iter().map(|k| v.get(k).cloned()).collect()
                };
                let mut out = l.clone();
                for item in a {
                    match key_of(item)
                        .and_then(|k| out.iter().position(|e| key_of(e) == Some(k.clone())))
                    {
                        Some(p) => out[p] = merge(&out[p], item, list_keys, path),
                        None => out.push(item.clone()),
                    }
                }
                Value::Array(out)
            }
            _ => applied.clone(),
        },
        _ => applied.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn applied_fields_win_and_other_live_fields_stay() {
        let live = json!({"spec": {"holderIdentity": "a", "leaseDurationSeconds": 15}, "status": {"x": 1}});
        let applied = json!({"spec": {"holderIdentity": "b"}});
        let out = apply_merge(&live, &applied, &|_| None);
        assert_eq!(
            out,
            json!({"spec": {"holderIdentity": "b", "leaseDurationSeconds": 15}, "status": {"x": 1}})
        );
    }

    #[test]
    fn keyed_lists_merge_and_atomic_lists_replace() {
        let live = json!({"spec": {"ports": [{"port": 1, "name": "a"}], "args": ["x"]}});
        let applied = json!({"spec": {"ports": [{"port": 2}], "args": ["y"]}});
        let keys = |p: &[String]| {
            (p.last().map(String::as_str) == Some("ports")).then(|| vec!["port".to_string()])
        };
        let out = apply_merge(&live, &applied, &keys);
        assert_eq!(out["spec"]["ports"].as_array().unwrap().len(), 2);
        assert_eq!(out["spec"]["args"], json!(["y"]));
    }
}
