//! What the agents have told the control plane, as a planner input: the newest state of each
//! action id and which nodes have a live session.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;

/// A snapshot of the agent hub for one reconcile.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AgentView {
    /// Reports by action id.
    pub actions: BTreeMap<String, ReportedAction>,
    /// Sessions by node name; a node that never connected is absent.
    pub nodes: BTreeMap<String, NodeState>,
    /// How long a node may be without a session before its actions are failed.
    pub grace: Duration,
    /// When the hub started; nodes never seen count as disconnected since then.
    pub hub_started: Option<Timestamp>,
}

/// Whether a node's agent is connected, and since when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeState {
    pub connected: bool,
    pub since: Timestamp,
}

/// Phase an agent reported for an action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportedPhase {
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

/// The newest report for one action.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReportedAction {
    pub phase: Option<ReportedPhase>,
    pub failure_reason: String,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
    pub bytes_done: u64,
    /// Bytes in total when known, from progress reports.
    pub bytes_total: Option<u64>,
    pub bytes_per_second: Option<u64>,
    /// The JSON the action wrote to its backup info file.
    pub backup_info_json: Option<String>,
    pub job_name: Option<String>,
    /// Archivers: how often the archiver's container has restarted.
    pub restarts: u32,
    /// Archivers: why it last restarted, with the last lines of its log.
    pub last_failure: Option<String>,
}

impl AgentView {
    /// The report for an action id, if any.
    pub fn action(&self, id: &str) -> Option<&ReportedAction> {
        self.actions.get(id)
    }

    /// How long `node` has been without a session at `now`, or `None` while it is connected.
    pub fn disconnected_for(&self, node: &str, now: Timestamp) -> Option<Duration> {
        let since = match self.nodes.get(node) {
            Some(state) if state.connected => return None,
            Some(state) => state.since,
            None => self.hub_started.unwrap_or(now),
        };
        let elapsed = now.duration_since(since);
        Some(Duration::try_from(elapsed).unwrap_or_default())
    }

    /// Whether `node` has been without a session for longer than the grace period.
    pub fn node_lost(&self, node: &str, now: Timestamp) -> Option<Duration> {
        self.disconnected_for(node, now)
            .filter(|d| *d >= self.grace)
    }

    /// Any connected node, in name order (for actions that need no particular node).
    pub fn any_connected_node(&self) -> Option<&str> {
        self.nodes
            .iter()
            .find(|(_, state)| state.connected)
            .map(|(name, _)| name.as_str())
    }
}
