//! Patch engines: JSON merge patch (RFC 7386), JSON patch (RFC 6902 with evanphx
//! semantics), strategic merge patch for built-ins and a simplified server-side apply.

mod apply;
mod json;
mod strategic;

pub use apply::apply_merge;
pub use json::{MAX_PATCHED_BYTES, apply_json_patch, json_size};
pub use strategic::{ListStrategy, list_strategy, strategic_merge};

use serde_json::Value;

/// Why a patch could not be applied.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PatchError {
    /// The patch document itself is malformed.
    #[error("{0}")]
    Malformed(String),
    /// A JSON patch operation failed (a `test` mismatch or a missing path).
    #[error("{0}")]
    Failed(String),
    /// The patch has too many operations or makes the object larger than the API server
    /// accepts (413).
    #[error("{0}")]
    TooLarge(String),
}

/// JSON merge patch: maps merge, `null` deletes, everything else replaces.
pub fn merge_patch(doc: &Value, patch: &Value) -> Value {
    let mut out = doc.clone();
    json_patch::merge(&mut out, patch);
    out
}
