//! JSON patch (RFC 6902) with the apiserver's (evanphx/json-patch) semantics.
//!
//! The one difference from the RFC that clients rely on: a `test` of `null` against a path
//! that does not exist succeeds. kube-runtime's `finalizer()` adds the first finalizer with
//! `test /metadata/finalizers == null` on an object that has no `finalizers` field.
//!
//! Bounds, as the API server's: at most [`MAX_OPERATIONS`] operations, and the patched
//! object may not grow past [`MAX_PATCHED_BYTES`] (serialized). `copy` doubles an object
//! when it copies a parent into its child, so the size is checked before each operation
//! runs, from the size of the value it would insert: a chain of copies fails at the first
//! one that would cross the bound, before anything of that size is allocated.

use super::PatchError;
use json_patch::{Patch, PatchOperation};
use serde_json::Value;

/// The most operations one JSON patch may hold (the API server's `maxJSONPatchOperations`).
pub const MAX_OPERATIONS: usize = 10_000;

/// The largest patched object, in serialized bytes: the API server's request body limit,
/// which is also the largest object a create or update can carry.
pub const MAX_PATCHED_BYTES: usize = crate::limits::MAX_REQUEST_BYTES;

/// Applies `patch` (a JSON array of operations) to a copy of `doc`; all or nothing.
pub fn apply_json_patch(doc: &Value, patch: &Value) -> Result<Value, PatchError> {
    apply_bounded(doc, patch, MAX_PATCHED_BYTES)
}

fn apply_bounded(doc: &Value, patch: &Value, max_bytes: usize) -> Result<Value, PatchError> {
    if let Some(ops) = patch.as_array()
        && ops.len() > MAX_OPERATIONS
    {
        return Err(PatchError::TooLarge(format!(
            "The allowed maximum operations in a JSON patch is {MAX_OPERATIONS}, got {}",
            ops.len()
        )));
    }
    let ops: Patch = serde_json::from_value(patch.clone())
        .map_err(|e| PatchError::Malformed(format!("invalid JSON patch: {e}")))?;
    let count = ops.0.len();
    let mut out = doc.clone();
    let mut size = json_size(&out);
    // An object stored larger than the bound (by an older version) may still shrink.
    let bound = max_bytes.max(size);
    for (i, op) in ops.0.into_iter().enumerate() {
        if let PatchOperation::Test(t) = &op
            && t.value.is_null()
            && out.pointer(t.path.as_str()).is_none()
        {
            continue;
        }
        let after = size_after(&out, size, &op);
        if after > bound {
            return Err(too_large(i + 1, count, &op, max_bytes));
        }
        let description = describe(&op);
        json_patch::patch(&mut out, std::slice::from_ref(&op))
            .map_err(|e| PatchError::Failed(format!("{description}: {}", e.kind)))?;
        size = after;
    }
    // The running size is an estimate (member separators, key escapes); measure the result.
    if json_size(&out) > bound {
        return Err(PatchError::TooLarge(format!(
            "the patched object is larger than {max_bytes} bytes, the most the API server accepts"
        )));
    }
    Ok(out)
}

fn too_large(n: usize, count: usize, op: &PatchOperation, max_bytes: usize) -> PatchError {
    let what = match op {
        PatchOperation::Add(o) => format!("add {}", o.path),
        PatchOperation::Remove(o) => format!("remove {}", o.path),
        PatchOperation::Replace(o) => format!("replace {}", o.path),
        PatchOperation::Move(o) => format!("move {} to {}", o.from, o.path),
        PatchOperation::Copy(o) => format!("copy {} to {}", o.from, o.path),
        PatchOperation::Test(o) => format!("test {}", o.path),
    };
    PatchError::TooLarge(format!(
        "the patched object would be larger than {max_bytes} bytes, the most the API server accepts (operation {n} of {count}: {what})"
    ))
}

/// The serialized size of `v` in bytes (compact JSON), without building the text.
pub fn json_size(v: &Value) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    // Writing a `Value` to a writer that never fails cannot fail.
    let _ = serde_json::to_writer(&mut count, v);
    count.0
}

/// What a member at `path` takes besides its value: `"key":` and a comma in an object, a
/// comma in an array.
fn member_overhead(doc: &Value, path: &str) -> usize {
    match path.rsplit_once('/') {
        Some((parent, _)) if matches!(doc.pointer(parent), Some(Value::Array(_))) => 1,
        Some((_, key)) => key.len() + 4,
        None => 0,
    }
}

/// The bytes the member at `path` takes now (0 when there is none).
fn member_size(doc: &Value, path: &str) -> usize {
    doc.pointer(path)
        .map_or(0, |v| json_size(v) + member_overhead(doc, path))
}

/// Whether `path` names an array position (where `add` inserts rather than replaces).
fn in_array(doc: &Value, path: &str) -> bool {
    path.rsplit_once('/')
        .is_some_and(|(parent, _)| matches!(doc.pointer(parent), Some(Value::Array(_))))
}

/// The size of `doc` (now `size` bytes) after `op`, computed before running it.
fn size_after(doc: &Value, size: usize, op: &PatchOperation) -> usize {
    // What an insertion at `path` of a value of `bytes` bytes leaves: an object member is
    // replaced, an array element is inserted before the one at that index.
    let insert = |path: &str, bytes: usize| {
        let replaced = if in_array(doc, path) {
            0
        } else {
            member_size(doc, path)
        };
        size.saturating_sub(replaced) + bytes + member_overhead(doc, path)
    };
    match op {
        PatchOperation::Add(o) => insert(o.path.as_str(), json_size(&o.value)),
        PatchOperation::Replace(o) => {
            size.saturating_sub(member_size(doc, o.path.as_str()))
                + json_size(&o.value)
                + member_overhead(doc, o.path.as_str())
        }
        PatchOperation::Remove(o) => size.saturating_sub(member_size(doc, o.path.as_str())),
        // A move keeps its value: it leaves its old place and takes the new one.
        PatchOperation::Move(o) => insert(o.path.as_str(), 0),
        PatchOperation::Copy(o) => insert(
            o.path.as_str(),
            doc.pointer(o.from.as_str()).map_or(0, json_size),
        ),
        PatchOperation::Test(_) => size,
    }
}

fn describe(op: &PatchOperation) -> String {
    match op {
        PatchOperation::Add(o) => format!(
            "add operation does not apply: doc is missing path: \"{}\"",
            o.path
        ),
        PatchOperation::Remove(o) => format!(
            "remove operation does not apply: doc is missing path: \"{}\"",
            o.path
        ),
        PatchOperation::Replace(o) => format!(
            "replace operation does not apply: doc is missing key: \"{}\"",
            o.path
        ),
        PatchOperation::Move(o) => format!(
            "move operation does not apply: doc is missing from path: \"{}\"",
            o.from
        ),
        PatchOperation::Copy(o) => format!(
            "copy operation does not apply: doc is missing from path: \"{}\"",
            o.from
        ),
        PatchOperation::Test(o) => format!("testing value {} failed", o.path),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn test_of_null_on_a_missing_path_passes_like_the_apiserver() {
        let doc = json!({"metadata": {"name": "x"}});
        let patch = json!([
            {"op": "test", "path": "/metadata/finalizers", "value": null},
            {"op": "add", "path": "/metadata/finalizers", "value": ["f"]}
        ]);
        let out = apply_json_patch(&doc, &patch).unwrap();
        assert_eq!(out["metadata"]["finalizers"], json!(["f"]));
    }

    #[test]
    fn a_failed_test_rejects_the_whole_patch() {
        let doc = json!({"metadata": {"finalizers": ["a"]}});
        let patch = json!([
            {"op": "remove", "path": "/metadata/finalizers/0"},
            {"op": "test", "path": "/metadata/finalizers", "value": ["b"]}
        ]);
        assert!(matches!(
            apply_json_patch(&doc, &patch),
            Err(PatchError::Failed(_))
        ));
    }

    #[test]
    fn pointer_escapes_and_append_work() {
        let doc = json!({"metadata": {"annotations": {}}, "list": [1]});
        let patch = json!([
            {"op": "add", "path": "/metadata/annotations/a~1b", "value": "v"},
            {"op": "add", "path": "/list/-", "value": 2}
        ]);
        let out = apply_json_patch(&doc, &patch).unwrap();
        assert_eq!(out["metadata"]["annotations"]["a/b"], "v");
        assert_eq!(out["list"], json!([1, 2]));
    }

    /// A chain of copies of a parent into its child doubles the object each time.
    fn doubling(ops: usize) -> Value {
        Value::Array(
            (0..ops)
                .map(|i| json!({"op": "copy", "from": "/spec", "path": format!("/spec/k{i}")}))
                .collect(),
        )
    }

    #[test]
    fn a_doubling_copy_chain_stops_at_the_bound_before_growing_past_it() {
        let doc = json!({"spec": {"v": "x".repeat(1000)}});
        let err = apply_bounded(&doc, &doubling(26), 64 * 1024).unwrap_err();
        let PatchError::TooLarge(message) = err else {
            panic!("{err:?}")
        };
        // 1 KB doubles past 64 KiB at the 7th copy.
        assert!(
            message.contains("larger than 65536 bytes")
                && message.contains("operation 7 of 26: copy /spec to /spec/k6"),
            "{message}"
        );
        // The real bound: 26 doublings of 1 KB would be 64 GiB; refused at once.
        let started = std::time::Instant::now();
        assert!(matches!(
            apply_json_patch(&doc, &doubling(26)),
            Err(PatchError::TooLarge(_))
        ));
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }

    #[test]
    fn patches_within_the_bound_apply_and_removals_make_room() {
        let doc = json!({"spec": {"v": "x".repeat(1000)}});
        let out = apply_bounded(&doc, &doubling(5), 64 * 1024).unwrap();
        assert!(json_size(&out) > 32 * 1000);
        // Remove and re-add within the bound, many times: the running size stays exact
        // enough not to drift past the bound.
        let mut ops = Vec::new();
        for _ in 0..200 {
            ops.push(json!({"op": "remove", "path": "/spec/v"}));
            ops.push(json!({"op": "add", "path": "/spec/v", "value": "y".repeat(1000)}));
            ops.push(json!({"op": "copy", "from": "/spec/v", "path": "/list/0"}));
            ops.push(json!({"op": "remove", "path": "/list/0"}));
        }
        let doc = json!({"spec": {"v": "x".repeat(1000)}, "list": []});
        let out = apply_bounded(&doc, &Value::Array(ops), 4 * 1024).unwrap();
        assert_eq!(out["spec"]["v"], "y".repeat(1000));
    }

    #[test]
    fn more_operations_than_the_apiserver_allows_are_refused() {
        let ops = Value::Array(vec![
            json!({"op": "test", "path": "/a", "value": 1});
            10_001
        ]);
        let err = apply_json_patch(&json!({"a": 1}), &ops).unwrap_err();
        assert_eq!(
            err,
            PatchError::TooLarge(
                "The allowed maximum operations in a JSON patch is 10000, got 10001".into()
            )
        );
    }

    #[test]
    fn malformed_patches_are_reported_as_such() {
        assert!(matches!(
            apply_json_patch(&json!({}), &json!({"op": "add"})),
            Err(PatchError::Malformed(_))
        ));
    }
}
