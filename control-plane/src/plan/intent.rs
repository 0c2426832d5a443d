//! What a planner asks its IO shell to do. The shell carries intents out in a fixed order:
//! metadata (labels, finalizers) first, then the status, then everything that must only happen
//! once the status is durable (dispatch, acknowledgements, events, deletions), which is how an
//! action is always recorded as Running before an agent is asked to run it (docs/PROTOCOL.md §2.3).

use std::collections::BTreeMap;
use std::time::Duration;

use cairn_proto::agent::v1::Action;

/// The planner's decision for one object.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan<S> {
    /// The complete status the object should have; the shell patches only what differs.
    pub status: Option<S>,
    pub intents: Vec<Intent>,
    /// Reconcile again after this long even if nothing changes.
    pub requeue: Option<Duration>,
}

impl<S> Plan<S> {
    /// A plan that changes nothing.
    pub fn nothing() -> Self {
        Self {
            status: None,
            intents: Vec::new(),
            requeue: None,
        }
    }
}

/// Kubernetes event severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Normal,
    Warning,
}

/// One thing to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Intent {
    /// Set (`Some`) or remove (`None`) labels and annotations on the object.
    PatchMeta {
        labels: BTreeMap<String, Option<String>>,
        annotations: BTreeMap<String, Option<String>>,
    },
    /// Add the data-protection finalizer.
    AddFinalizer,
    /// Remove the data-protection finalizer (the object may then disappear).
    RemoveFinalizer,
    /// Ask the agent on `node` to run `action` (idempotent by action id).
    Dispatch { node: String, action: Box<Action> },
    /// Ask the agent on `node` to stop an action.
    Cancel {
        node: String,
        action_id: String,
        reason: String,
    },
    /// The action's result is recorded in the status: tell its agent it may forget it.
    Acknowledge { action_id: String },
    /// Record a Kubernetes event on the object.
    Event {
        type_: EventType,
        reason: String,
        message: String,
    },
    /// Delete another object (background propagation).
    Delete {
        api_version: String,
        kind: String,
        namespace: Option<String>,
        name: String,
    },
    /// Create an object (JSON) if it does not exist.
    Create { object: serde_json::Value },
    /// Remove the owner references of another object, so that it outlives its owner (a
    /// retained Backup's VolumeSnapshots); a missing object is left alone.
    Orphan {
        api_version: String,
        kind: String,
        namespace: Option<String>,
        name: String,
    },
    /// Merge-patch another object's spec or metadata (a continuous Backup's
    /// `spec.retentionPeriod` synced from its schedule entry); a missing object is left alone.
    MergePatch {
        api_version: String,
        kind: String,
        namespace: Option<String>,
        name: String,
        patch: serde_json::Value,
    },
    /// Set (`Some`) or remove (`None`) labels on another object (a merge patch), after every
    /// `Create` that precedes it in the plan.
    PatchLabels {
        api_version: String,
        kind: String,
        namespace: Option<String>,
        name: String,
        labels: BTreeMap<String, Option<String>>,
    },
}

impl Intent {
    /// A Normal event.
    pub fn normal(reason: &str, message: impl Into<String>) -> Self {
        Intent::Event {
            type_: EventType::Normal,
            reason: reason.into(),
            message: message.into(),
        }
    }

    /// A Warning event.
    pub fn warning(reason: &str, message: impl Into<String>) -> Self {
        Intent::Event {
            type_: EventType::Warning,
            reason: reason.into(),
            message: message.into(),
        }
    }
}
