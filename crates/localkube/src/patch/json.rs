//! JSON patch (RFC 6902) with the apiserver's (evanphx/json-patch) semantics.
//!
//! The one difference from the RFC that clients rely on: a `test` of `null` against a path
//! that does not exist succeeds. kube-runtime's `finalizer()` adds the first finalizer with
//! `test /metadata/finalizers == null` on an object that has no `finalizers` field.

use super::PatchError;
use json_patch::{Patch, PatchOperation};
use serde_json::Value;

/// Applies `patch` (a JSON array of operations) to a copy of `doc`; all or nothing.
pub fn apply_json_patch(doc: &Value, patch: &Value) -> Result<Value, PatchError> {
    let ops: Patch = serde_json::from_value(patch.clone())
        .map_err(|e| PatchError::Malformed(format!("invalid JSON patch: {e}")))?;
    let mut out = doc.clone();
    for op in ops.0 {
        if let PatchOperation::Test(t) = &op
            && t.value.is_null()
            && out.pointer(t.path.as_str()).is_none()
        {
            continue;
        }
        let description = describe(&op);
        json_patch::patch(&mut out, std::slice::from_ref(&op))
            .map_err(|e| PatchError::Failed(format!("{description}: {}", e.kind)))?;
    }
    Ok(out)
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

    #[test]
    fn malformed_patches_are_reported_as_such() {
        assert!(matches!(
            apply_json_patch(&json!({}), &json!({"op": "add"})),
            Err(PatchError::Malformed(_))
        ));
    }
}
