//! How reconcilers hand actions to node agents: the [`Dispatcher`] trait the shell uses, the pure
//! [`Ledger`] of actions and nodes behind it, and the values both speak in. The gRPC session
//! transport (`grpc::hub::AgentHub`) implements the trait over a ledger.

pub mod ledger;

use std::collections::HashMap;

use cairn_proto::agent::v1::{Action, ActionState, ObjectRef, Progress};
use jiff::Timestamp;
use tokio::sync::broadcast;

pub use ledger::{Ledger, SessionEnd, is_final};

/// What the shell asks of the agents, and what it reads back.
///
/// Every method is idempotent by action id, so a reconcile that runs twice is harmless.
pub trait Dispatcher: Send + Sync {
    /// Wants `action` to run on `node`: sent now if the node has a session, else after its
    /// next `Hello`. Again with a wanted id, nothing is sent.
    fn dispatch(&self, node: &str, action: Action) -> Result<(), DispatchError>;

    /// Tells `node` to cancel `action_id` (now, or after its next `Hello` if the action still
    /// runs then) and stops wanting it.
    fn cancel(&self, node: &str, action_id: &str, reason: &str);

    /// The owner's status records the result of `action_id`: the agent may forget it (told now,
    /// or after its next `Hello`), and the action is no longer tracked.
    fn acknowledge(&self, action_id: &str);

    /// The object `owner` no longer exists: its actions are no longer tracked, and agents are
    /// told to forget the results nobody will record.
    fn owner_gone(&self, owner: &ObjectRef);

    /// The object an action belongs to, from the dispatched action or the agent's report.
    fn owner_of(&self, action_id: &str) -> Option<ObjectRef>;

    /// The ids of the actions wanted on or reported by `node`, sorted (whose owners care when
    /// the node connects or disconnects).
    fn actions_on(&self, node: &str) -> Vec<String>;

    /// Everything agents have reported and every node's session state, at one instant.
    fn snapshot(&self) -> Snapshot;

    /// Subscribes to what agents do from now on.
    fn events(&self) -> broadcast::Receiver<HubEvent>;
}

/// A misuse of the dispatcher.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DispatchError {
    /// An action without id cannot be tracked.
    #[error("action {name:?} has an empty id")]
    EmptyActionId {
        /// The action's human name.
        name: String,
    },
    /// `ack` for an action no agent reported and nobody assigned.
    #[error("no node is known for action {action_id:?}; it was never assigned nor reported")]
    UnknownAction {
        /// The action.
        action_id: String,
    },
}

/// Whether a node has a session, and since when that is so.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeState {
    /// A session is open.
    pub connected: bool,
    /// When the node connected or disconnected; for a node never seen, when the ledger started.
    pub since: Timestamp,
}

/// A copy of the ledger's knowledge at one instant (see [`Dispatcher::snapshot`]).
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// Newest reported state per action id.
    pub reported: HashMap<String, ActionState>,
    /// Newest progress per action id.
    pub progress: HashMap<String, Progress>,
    /// Session state per node ever seen.
    pub nodes: HashMap<String, NodeState>,
    /// When the ledger started.
    pub started: Timestamp,
}

/// Something an agent did, as the reconcilers see it.
#[derive(Clone, Debug, PartialEq)]
pub enum HubEvent {
    /// A session was opened (or replaced an older one) for `node`.
    Connected {
        /// The node.
        node: String,
        /// The new session's id (as sent in `Welcome`).
        session_id: String,
    },
    /// The node's session ended and no newer one replaced it.
    Disconnected {
        /// The node.
        node: String,
        /// Why the session ended.
        reason: String,
    },
    /// The agent journaled an assigned action (or already had it).
    Accepted {
        /// The node.
        node: String,
        /// The action.
        action_id: String,
        /// The agent had the id already and did not start it again.
        already_known: bool,
    },
    /// Progress of a running action (advisory; PROTOCOL.md §2.3.7).
    Progress {
        /// The node.
        node: String,
        /// The report.
        progress: Progress,
    },
    /// A final state, from a `Result` or from a `Hello` listing a finished action.
    Result {
        /// The node.
        node: String,
        /// The final state (boxed: it is much larger than the other events).
        state: Box<ActionState>,
        /// The owner: from the state, else from the wanted action; `None` if neither knows.
        owner: Option<ObjectRef>,
    },
}
