//! `AgentHub`: the in-memory registry of agent sessions and of the actions they carry.
//!
//! The reconcilers talk to agents only through this type; it has no kube and no tonic server in
//! it, so the planners' shell can be tested against it directly.
//!
//! # Expected flow
//! 1. A reconciler writes an action as `Running` into its owner's status, then calls
//!    [`AgentHub::assign`]. The hub remembers the action as *wanted* on that node and sends
//!    `Assign` at once if the node has a session, else right after the node's next `Hello`.
//! 2. The agent answers `Accepted`, `Progress` (≤ 1/s) and finally `Result`; each becomes a
//!    [`HubEvent`] and updates [`AgentHub::action_state`] / [`AgentHub::progress`].
//! 3. The reconciler applies the `Result` to the owner's status, then calls [`AgentHub::ack`]
//!    (the agent stops resending it) and, once the status shows the action finished,
//!    [`AgentHub::forget`] (the hub stops re-assigning it).
//!
//! # Guarantees
//! - One session per node: a newer session replaces the older, whose stream ends with
//!   `ABORTED "replaced by a newer session"`.
//! - Everything the hub sends to one node is sent in the order of the calls, and `Welcome` is
//!   always first in a session.
//! - `assign` is idempotent by action id: calling it again for a wanted id sends nothing.
//! - A `ResultAck` or `Cancel` for a node without a session is kept and sent right after the
//!   node's next `Hello` (an ack always; a cancel if the agent still reports the action running).
//! - A `Result` is emitted every time an agent reports it (in `Hello` or as `Result`), even for
//!   an action that is not wanted (after a control-plane restart the owner is in
//!   [`HubEvent::Result`]); deduplication is the reconciler's job (PROTOCOL.md §2.3.3).
//!
//! # Caveats
//! - [`AgentHub::events`] is a broadcast channel: a subscriber that falls more than
//!   [`HubConfig::event_capacity`] events behind loses the oldest. Progress is lossy anyway, and
//!   a lost `Result` comes back because the agent resends unacknowledged results.
//! - Nothing here is durable: after a restart the CRs are the truth and wanted actions are
//!   re-assigned by the reconcilers (PROTOCOL.md §2.3.4).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use cairn_proto::agent::v1::{
    Action, ActionPhase, ActionState, Assign, Cancel, ControlMessage, Heartbeat, Hello, ObjectRef,
    Progress, Result as ResultMsg, ResultAck, Welcome, agent_message, control_message,
};
use jiff::Timestamp;
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;
use tonic::Status;

use cairn_proto::redact::Redacted;

use super::status::SessionRefusal;
use crate::leader::Leadership;

/// Tunables of the hub and of every session it holds.
#[derive(Clone, Debug)]
pub struct HubConfig {
    /// How often each side sends `Heartbeat`; sent to agents in `Welcome`.
    pub heartbeat_interval: Duration,
    /// A session silent for this many heartbeat intervals is dropped.
    pub missed_heartbeats: u32,
    /// How long a new stream may take to send `Hello`.
    pub hello_timeout: Duration,
    /// The control plane's version, sent in `Welcome` and compared with `Hello.version`.
    pub version: String,
    /// Events a slow subscriber may fall behind before it loses some.
    pub event_capacity: usize,
}

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig {
            heartbeat_interval: Duration::from_secs(10),
            missed_heartbeats: 3,
            hello_timeout: Duration::from_secs(30),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            event_capacity: 1024,
        }
    }
}

impl HubConfig {
    /// How long a session may stay silent before it is dropped.
    pub fn liveness_timeout(&self) -> Duration {
        self.heartbeat_interval * self.missed_heartbeats.max(1)
    }
}

/// Whether a node has a session, and since when that is so.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeState {
    /// A session is open.
    pub connected: bool,
    /// When the node connected or disconnected; for a node never seen, when the hub started.
    pub since: Timestamp,
}

/// A copy of the hub's knowledge at one instant (see [`AgentHub::snapshot`]).
#[derive(Clone, Debug, Default)]
pub struct HubSnapshot {
    /// Newest reported state per action id.
    pub reported: HashMap<String, ActionState>,
    /// Newest progress per action id.
    pub progress: HashMap<String, Progress>,
    /// Session state per node ever seen.
    pub nodes: HashMap<String, NodeState>,
    /// When the hub started.
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

/// A misuse of the hub API.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HubError {
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

/// Why a session's message loop must stop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SessionEnd {
    /// A newer session for the node took over.
    Replaced,
    /// The agent broke the protocol (message text for `FAILED_PRECONDITION`).
    Protocol(String),
}

/// What the gRPC layer gets for a newly opened session.
pub(crate) struct OpenedSession {
    /// The session id sent in `Welcome`.
    pub session_id: String,
    /// The control messages to stream to the agent (starts with `Welcome`).
    pub outbound: mpsc::UnboundedReceiver<Result<ControlMessage, Status>>,
    /// Cancelled when a newer session replaces this one.
    pub replaced: CancellationToken,
}

/// The registry; cheap to clone (all clones share one state).
#[derive(Clone)]
pub struct AgentHub {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for AgentHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentHub")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

struct Inner {
    config: HubConfig,
    leadership: Leadership,
    events: broadcast::Sender<HubEvent>,
    state: Mutex<State>,
}

// Unbounded: control messages are few and small (one per reconciler decision plus heartbeats),
// and a session that stops reading is dropped after `liveness_timeout`, which bounds the queue.
type Outbound = mpsc::UnboundedSender<Result<ControlMessage, Status>>;

struct Session {
    id: String,
    tx: Outbound,
    replaced: CancellationToken,
}

struct Node {
    session: Option<Session>,
    since: Timestamp,
    pending_acks: BTreeSet<String>,
    pending_cancels: BTreeMap<String, String>,
}

struct Wanted {
    node: String,
    action: Action,
}

struct State {
    /// When the hub started, or this replica last became the leader: the moment from which a
    /// node that never connected counts as disconnected.
    started: Timestamp,
    nodes: HashMap<String, Node>,
    wanted: HashMap<String, Wanted>,
    reported: HashMap<String, ActionState>,
    progress: HashMap<String, Progress>,
    action_node: HashMap<String, String>,
}

impl AgentHub {
    /// A hub with no sessions that always accepts them (one replica, no election); nodes
    /// count as disconnected since now.
    pub fn new(config: HubConfig) -> AgentHub {
        AgentHub::with_leadership(config, Leadership::always())
    }

    /// A hub that accepts sessions only while `leadership` says this replica leads; see
    /// [`AgentHub::step_down`] and [`AgentHub::take_over`].
    pub fn with_leadership(config: HubConfig, leadership: Leadership) -> AgentHub {
        let (events, _) = broadcast::channel(config.event_capacity.max(1));
        AgentHub {
            inner: Arc::new(Inner {
                config,
                leadership,
                events,
                state: Mutex::new(State {
                    started: Timestamp::now(),
                    nodes: HashMap::new(),
                    wanted: HashMap::new(),
                    reported: HashMap::new(),
                    progress: HashMap::new(),
                    action_node: HashMap::new(),
                }),
            }),
        }
    }

    /// The leadership the hub follows.
    pub fn leadership(&self) -> &Leadership {
        &self.inner.leadership
    }

    /// This replica stopped leading: ends every session with `UNAVAILABLE "not the leader:
    /// ..."` (agents reconnect to the leader at once, PROTOCOL.md §2.3.10) and forgets
    /// everything agents reported and every wanted action. Nothing is failed: the actions keep
    /// running on their agents, which report them to the new leader in their next `Hello`.
    pub fn step_down(&self) {
        let mut state = self.lock();
        let now = Timestamp::now();
        let mut closed = Vec::new();
        for (name, entry) in &mut state.nodes {
            if let Some(session) = entry.session.take() {
                let _ = session.tx.send(Err(super::status::stepped_down_status()));
                session.replaced.cancel();
                closed.push(name.clone());
            }
        }
        state.nodes.clear();
        state.wanted.clear();
        state.reported.clear();
        state.progress.clear();
        state.action_node.clear();
        state.started = now;
        drop(state);
        tracing::info!(
            sessions = closed.len(),
            "not the leader any more: agent sessions closed"
        );
        for node in closed {
            self.emit(HubEvent::Disconnected {
                node,
                reason: "this replica lost the leader lease".to_owned(),
            });
        }
    }

    /// This replica became the leader: a node that has no session counts as disconnected
    /// from now on, not from when the process started, so a follower that waited for hours
    /// gives agents the full grace period to find it.
    pub fn take_over(&self) {
        let mut state = self.lock();
        let now = Timestamp::now();
        state.started = now;
        for entry in state.nodes.values_mut() {
            if entry.session.is_none() {
                entry.since = now;
            }
        }
    }

    /// The configuration the hub was made with.
    pub fn config(&self) -> &HubConfig {
        &self.inner.config
    }

    /// Subscribes to events from now on.
    pub fn events(&self) -> broadcast::Receiver<HubEvent> {
        self.inner.events.subscribe()
    }

    /// Wants `action` to run on `node`: sends `Assign` now if the node has a session, else
    /// after its next `Hello`. Calling it again with a wanted id does nothing (moving an id to
    /// another node re-sends it there).
    pub fn assign(&self, node: &str, action: Action) -> Result<(), HubError> {
        if action.id.is_empty() {
            return Err(HubError::EmptyActionId { name: action.name });
        }
        let mut state = self.lock();
        if state
            .wanted
            .get(&action.id)
            .is_some_and(|wanted| wanted.node == node)
        {
            return Ok(());
        }
        tracing::debug!(agent.node = node, action.id = %action.id, action = ?Redacted(&action), "assigning action");
        state.action_node.insert(action.id.clone(), node.to_owned());
        if let Some(tx) = state.session_tx(node) {
            send(&tx, assign_message(&action));
        }
        state.wanted.insert(
            action.id.clone(),
            Wanted {
                node: node.to_owned(),
                action,
            },
        );
        Ok(())
    }

    /// Tells `node` to cancel `action_id` (now, or after its next `Hello` if it still runs the
    /// action then) and stops wanting it.
    pub fn cancel(&self, node: &str, action_id: &str, reason: &str) {
        let mut state = self.lock();
        state.wanted.remove(action_id);
        let message = control(control_message::Msg::Cancel(Cancel {
            action_id: action_id.to_owned(),
            reason: reason.to_owned(),
        }));
        let sent = state
            .session_tx(node)
            .is_some_and(|tx| tx.send(Ok(message)).is_ok());
        if !sent {
            state
                .node_mut(node)
                .pending_cancels
                .insert(action_id.to_owned(), reason.to_owned());
        }
    }

    /// Stops tracking `action_id`: it is no longer (re-)assigned, and its reported state and
    /// progress are dropped. Call it when the owner's status shows the action finished.
    pub fn forget(&self, action_id: &str) {
        let mut state = self.lock();
        state.wanted.remove(action_id);
        state.reported.remove(action_id);
        state.progress.remove(action_id);
        state.action_node.remove(action_id);
        for node in state.nodes.values_mut() {
            node.pending_cancels.remove(action_id);
        }
    }

    /// The control plane has durably applied the `Result` of `action_id`: sends `ResultAck` to
    /// the node that runs it, now or after its next `Hello`. An action that is not wanted is
    /// forgotten too.
    pub fn ack(&self, action_id: &str) -> Result<(), HubError> {
        let mut state = self.lock();
        let node =
            state
                .action_node
                .get(action_id)
                .cloned()
                .ok_or_else(|| HubError::UnknownAction {
                    action_id: action_id.to_owned(),
                })?;
        let message = control(control_message::Msg::ResultAck(ResultAck {
            action_id: action_id.to_owned(),
        }));
        let sent = state
            .session_tx(&node)
            .is_some_and(|tx| tx.send(Ok(message)).is_ok());
        if !sent {
            state
                .node_mut(&node)
                .pending_acks
                .insert(action_id.to_owned());
        }
        if !state.wanted.contains_key(action_id) {
            state.reported.remove(action_id);
            state.progress.remove(action_id);
            state.action_node.remove(action_id);
        }
        Ok(())
    }

    /// Whether `node` has a session and since when.
    pub fn node_state(&self, node: &str) -> NodeState {
        let state = self.lock();
        match state.nodes.get(node) {
            Some(entry) => NodeState {
                connected: entry.session.is_some(),
                since: entry.since,
            },
            None => NodeState {
                connected: false,
                since: state.started,
            },
        }
    }

    /// The nodes that have a session now, sorted.
    pub fn connected_nodes(&self) -> Vec<String> {
        let state = self.lock();
        let mut nodes: Vec<String> = state
            .nodes
            .iter()
            .filter(|(_, node)| node.session.is_some())
            .map(|(name, _)| name.clone())
            .collect();
        nodes.sort();
        nodes
    }

    /// The ids of the actions assigned to or reported by `node`, sorted.
    pub fn actions_on(&self, node: &str) -> Vec<String> {
        let state = self.lock();
        let mut ids: Vec<String> = state
            .action_node
            .iter()
            .filter(|(_, n)| n.as_str() == node)
            .map(|(id, _)| id.clone())
            .collect();
        ids.sort();
        ids
    }

    /// The newest state an agent reported for `action_id` (from `Hello`, `Accepted`, `Result`).
    pub fn action_state(&self, action_id: &str) -> Option<ActionState> {
        self.lock().reported.get(action_id).cloned()
    }

    /// The newest progress report for `action_id`.
    pub fn progress(&self, action_id: &str) -> Option<Progress> {
        self.lock().progress.get(action_id).cloned()
    }

    /// Everything agents have reported, and every node's session state, at one instant: the
    /// input reconcilers hand to their pure planners.
    pub fn snapshot(&self) -> HubSnapshot {
        let state = self.lock();
        HubSnapshot {
            reported: state.reported.clone(),
            progress: state.progress.clone(),
            nodes: state
                .nodes
                .iter()
                .map(|(name, node)| {
                    (
                        name.clone(),
                        NodeState {
                            connected: node.session.is_some(),
                            since: node.since,
                        },
                    )
                })
                .collect(),
            started: state.started,
        }
    }

    /// Opens a session for `node` after an accepted `Hello`: replaces any older session, queues
    /// `Welcome`, pending acks and cancels, and the wanted actions the agent did not report.
    ///
    /// Refused with [`SessionRefusal::NotLeader`] while this replica does not lead; the check
    /// is made under the hub's lock, so [`AgentHub::step_down`] closes every session opened
    /// before it and none is opened after.
    pub(crate) fn open_session(
        &self,
        node: &str,
        hello: &Hello,
    ) -> Result<OpenedSession, SessionRefusal> {
        let (tx, outbound) = mpsc::unbounded_channel();
        let session_id = uuid::Uuid::new_v4().to_string();
        let replaced = CancellationToken::new();
        let mut state = self.lock();
        if !self.inner.leadership.is_leading() {
            return Err(SessionRefusal::NotLeader {
                holder: self.inner.leadership.holder(),
            });
        }
        let now = Timestamp::now();
        let entry = state.node_mut(node);
        if let Some(old) = entry.session.take() {
            tracing::info!(agent.node = node, old.session = %old.id, "agent session replaced by a newer session");
            let _ = old
                .tx
                .send(Err(Status::aborted("replaced by a newer session")));
            old.replaced.cancel();
        }
        entry.since = now;
        let pending_acks = std::mem::take(&mut entry.pending_acks);
        let pending_cancels = std::mem::take(&mut entry.pending_cancels);
        entry.session = Some(Session {
            id: session_id.clone(),
            tx: tx.clone(),
            replaced: replaced.clone(),
        });

        send(
            &tx,
            control(control_message::Msg::Welcome(Welcome {
                session_id: session_id.clone(),
                heartbeat_interval_seconds: u32::try_from(
                    self.inner.config.heartbeat_interval.as_secs().max(1),
                )
                .unwrap_or(u32::MAX),
                control_plane_version: self.inner.config.version.clone(),
            })),
        );
        let mut reported_ids = BTreeSet::new();
        let mut running_ids = BTreeSet::new();
        let mut results = Vec::new();
        for action_state in &hello.actions {
            if action_state.action_id.is_empty() {
                continue;
            }
            reported_ids.insert(action_state.action_id.clone());
            if is_final(action_state) {
                results.push(record_result(&mut state, node, action_state.clone()));
            } else {
                running_ids.insert(action_state.action_id.clone());
                state
                    .action_node
                    .insert(action_state.action_id.clone(), node.to_owned());
                state
                    .reported
                    .insert(action_state.action_id.clone(), action_state.clone());
            }
        }
        for action_id in pending_acks {
            send(
                &tx,
                control(control_message::Msg::ResultAck(ResultAck { action_id })),
            );
        }
        for (action_id, reason) in pending_cancels {
            if running_ids.contains(&action_id) {
                send(
                    &tx,
                    control(control_message::Msg::Cancel(Cancel { action_id, reason })),
                );
            }
        }
        let mut to_assign: Vec<&Wanted> = state
            .wanted
            .values()
            .filter(|w| w.node == node && !reported_ids.contains(&w.action.id))
            .collect();
        to_assign.sort_by(|a, b| a.action.id.cmp(&b.action.id));
        for wanted in to_assign {
            send(&tx, assign_message(&wanted.action));
        }
        drop(state);
        self.emit(HubEvent::Connected {
            node: node.to_owned(),
            session_id: session_id.clone(),
        });
        for result in results {
            self.emit(result);
        }
        Ok(OpenedSession {
            session_id,
            outbound,
            replaced,
        })
    }

    /// Ends `session_id` of `node` if it is still the node's session; emits `Disconnected`.
    pub(crate) fn close_session(&self, node: &str, session_id: &str, reason: &str) {
        let mut state = self.lock();
        let Some(entry) = state.nodes.get_mut(node) else {
            return;
        };
        if entry
            .session
            .as_ref()
            .is_none_or(|session| session.id != session_id)
        {
            return;
        }
        entry.session = None;
        entry.since = Timestamp::now();
        drop(state);
        self.emit(HubEvent::Disconnected {
            node: node.to_owned(),
            reason: reason.to_owned(),
        });
    }

    /// Ends every session with `UNAVAILABLE <reason>` (the control plane is shutting down);
    /// agents reconnect to whichever control plane serves next.
    pub fn close_all(&self, reason: &str) {
        let mut state = self.lock();
        let now = Timestamp::now();
        let mut closed = Vec::new();
        for (name, entry) in &mut state.nodes {
            if let Some(session) = entry.session.take() {
                let _ = session.tx.send(Err(Status::unavailable(reason.to_owned())));
                session.replaced.cancel();
                entry.since = now;
                closed.push(name.clone());
            }
        }
        drop(state);
        if !closed.is_empty() {
            tracing::info!(
                sessions = closed.len(),
                "closing every agent session: {reason}"
            );
        }
        for node in closed {
            self.emit(HubEvent::Disconnected {
                node,
                reason: reason.to_owned(),
            });
        }
    }

    /// Sends a heartbeat on the session, if it is still current.
    pub(crate) fn heartbeat(&self, node: &str, session_id: &str) {
        let state = self.lock();
        if let Some(tx) = state.current_tx(node, session_id) {
            send(
                &tx,
                control(control_message::Msg::Heartbeat(Heartbeat {
                    sent_at: Timestamp::now().to_string(),
                })),
            );
        }
    }

    /// Ends the session's stream with `status` (the agent sees it as the call's error).
    pub(crate) fn end_session(&self, node: &str, session_id: &str, status: Status) {
        let state = self.lock();
        if let Some(tx) = state.current_tx(node, session_id) {
            let _ = tx.send(Err(status));
        }
    }

    /// Applies one message of an open session.
    pub(crate) fn handle_message(
        &self,
        node: &str,
        session_id: &str,
        msg: agent_message::Msg,
    ) -> Result<(), SessionEnd> {
        let mut state = self.lock();
        if state.current_tx(node, session_id).is_none() {
            return Err(SessionEnd::Replaced);
        }
        match msg {
            agent_message::Msg::Hello(_) => {
                return Err(SessionEnd::Protocol(
                    "Hello is only allowed as the first message of a session".to_owned(),
                ));
            }
            agent_message::Msg::Heartbeat(_) => {}
            agent_message::Msg::Accepted(accepted) => {
                if accepted.action_id.is_empty() {
                    return Err(SessionEnd::Protocol(
                        "Accepted without action_id".to_owned(),
                    ));
                }
                let id = accepted.action_id.clone();
                state.action_node.insert(id.clone(), node.to_owned());
                if !state.reported.get(&id).is_some_and(is_final) {
                    let owner = state.wanted.get(&id).and_then(|w| w.action.owner.clone());
                    let entry = state.reported.entry(id.clone()).or_insert(ActionState {
                        action_id: id.clone(),
                        exit_code: -1,
                        owner,
                        ..ActionState::default()
                    });
                    entry.phase = ActionPhase::Running as i32;
                }
                drop(state);
                self.emit(HubEvent::Accepted {
                    node: node.to_owned(),
                    action_id: id,
                    already_known: accepted.already_known,
                });
            }
            agent_message::Msg::Progress(progress) => {
                if progress.action_id.is_empty() {
                    return Err(SessionEnd::Protocol(
                        "Progress without action_id".to_owned(),
                    ));
                }
                state
                    .action_node
                    .insert(progress.action_id.clone(), node.to_owned());
                if let Some(reported) = state.reported.get_mut(&progress.action_id)
                    && !is_final(reported)
                {
                    reported.bytes_done = progress.bytes_done;
                }
                state
                    .progress
                    .insert(progress.action_id.clone(), progress.clone());
                drop(state);
                self.emit(HubEvent::Progress {
                    node: node.to_owned(),
                    progress,
                });
            }
            agent_message::Msg::Result(ResultMsg { state: result }) => {
                let Some(result) = result.filter(|s| !s.action_id.is_empty()) else {
                    return Err(SessionEnd::Protocol(
                        "Result without action state".to_owned(),
                    ));
                };
                if !is_final(&result) {
                    return Err(SessionEnd::Protocol(format!(
                        "Result for action {:?} is not final (phase {})",
                        result.action_id, result.phase
                    )));
                }
                let event = record_result(&mut state, node, result);
                drop(state);
                self.emit(event);
            }
        }
        Ok(())
    }

    fn emit(&self, event: HubEvent) {
        // No subscriber is fine: the reconcilers may not be running yet.
        let _ = self.inner.events.send(event);
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the maps half-updated in a way that
        // matters more than losing the hub entirely, so keep going with the data.
        self.inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl State {
    fn node_mut(&mut self, node: &str) -> &mut Node {
        let started = self.started;
        self.nodes.entry(node.to_owned()).or_insert_with(|| Node {
            session: None,
            since: started,
            pending_acks: BTreeSet::new(),
            pending_cancels: BTreeMap::new(),
        })
    }

    fn session_tx(&self, node: &str) -> Option<Outbound> {
        self.nodes
            .get(node)
            .and_then(|entry| entry.session.as_ref())
            .map(|session| session.tx.clone())
    }

    fn current_tx(&self, node: &str, session_id: &str) -> Option<Outbound> {
        self.nodes
            .get(node)
            .and_then(|entry| entry.session.as_ref())
            .filter(|session| session.id == session_id)
            .map(|session| session.tx.clone())
    }
}

/// Records a final state reported by `node`; returns the event to emit once the lock is released.
fn record_result(state: &mut State, node: &str, result: ActionState) -> HubEvent {
    let id = result.action_id.clone();
    let owner = result
        .owner
        .clone()
        .or_else(|| state.wanted.get(&id).and_then(|w| w.action.owner.clone()));
    state.action_node.insert(id.clone(), node.to_owned());
    state.reported.insert(id.clone(), result.clone());
    if let Some(entry) = state.nodes.get_mut(node) {
        entry.pending_cancels.remove(&id);
    }
    HubEvent::Result {
        node: node.to_owned(),
        state: Box::new(result),
        owner,
    }
}

/// Whether a state is final (succeeded, failed or cancelled).
pub fn is_final(state: &ActionState) -> bool {
    matches!(
        ActionPhase::try_from(state.phase),
        Ok(ActionPhase::Succeeded | ActionPhase::Failed | ActionPhase::Cancelled)
    )
}

fn control(msg: control_message::Msg) -> ControlMessage {
    ControlMessage { msg: Some(msg) }
}

fn assign_message(action: &Action) -> ControlMessage {
    control(control_message::Msg::Assign(Assign {
        action: Some(action.clone()),
    }))
}

fn send(tx: &Outbound, message: ControlMessage) {
    // A closed receiver means the session is ending; the close path and the next Hello
    // re-deliver what matters (wanted actions are re-assigned, results are resent).
    let _ = tx.send(Ok(message));
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_proto::agent::v1::Accepted;

    fn open(hub: &AgentHub, node: &str, hello: &Hello) -> OpenedSession {
        hub.open_session(node, hello)
            .unwrap_or_else(|refusal| panic!("session refused: {refusal}"))
    }

    fn hub() -> AgentHub {
        AgentHub::new(HubConfig::default())
    }

    fn action(id: &str) -> Action {
        Action {
            id: id.into(),
            name: "dp-backup-0".into(),
            owner: Some(ObjectRef {
                kind: "Backup".into(),
                name: "b1".into(),
                uid: "u1".into(),
                ..ObjectRef::default()
            }),
            ..Action::default()
        }
    }

    fn hello(node: &str, actions: Vec<ActionState>) -> Hello {
        Hello {
            node_name: node.into(),
            version: "0.1.0".into(),
            actions,
            capabilities: vec![],
        }
    }

    fn finished(id: &str) -> ActionState {
        ActionState {
            action_id: id.into(),
            phase: ActionPhase::Succeeded as i32,
            ..ActionState::default()
        }
    }

    fn running(id: &str) -> ActionState {
        ActionState {
            action_id: id.into(),
            phase: ActionPhase::Running as i32,
            ..ActionState::default()
        }
    }

    fn drain(session: &mut OpenedSession) -> Vec<control_message::Msg> {
        let mut out = vec![];
        while let Ok(msg) = session.outbound.try_recv() {
            out.push(msg.expect("no status").msg.expect("msg"));
        }
        out
    }

    fn kinds(msgs: &[control_message::Msg]) -> Vec<String> {
        msgs.iter()
            .map(|m| match m {
                control_message::Msg::Welcome(_) => "welcome".to_string(),
                control_message::Msg::Assign(a) => {
                    format!("assign {}", a.action.as_ref().unwrap().id)
                }
                control_message::Msg::Cancel(c) => format!("cancel {}", c.action_id),
                control_message::Msg::ResultAck(a) => format!("ack {}", a.action_id),
                control_message::Msg::Heartbeat(_) => "heartbeat".to_string(),
            })
            .collect()
    }

    #[test]
    fn actions_assigned_before_hello_are_sent_after_welcome() {
        let hub = hub();
        hub.assign("n1", action("a1")).unwrap();
        hub.assign("n2", action("b1")).unwrap();
        let mut session = open(&hub, "n1", &hello("n1", vec![]));
        assert_eq!(kinds(&drain(&mut session)), ["welcome", "assign a1"]);
    }

    #[test]
    fn assigning_the_same_id_twice_sends_it_once() {
        let hub = hub();
        let mut session = open(&hub, "n1", &hello("n1", vec![]));
        hub.assign("n1", action("a1")).unwrap();
        hub.assign("n1", action("a1")).unwrap();
        assert_eq!(kinds(&drain(&mut session)), ["welcome", "assign a1"]);
    }

    #[test]
    fn action_without_id_is_refused() {
        let err = hub().assign("n1", action("")).unwrap_err();
        assert_eq!(err.to_string(), "action \"dp-backup-0\" has an empty id");
    }

    #[test]
    fn actions_the_agent_reports_in_hello_are_not_reassigned() {
        let hub = hub();
        hub.assign("n1", action("a1")).unwrap();
        hub.assign("n1", action("a2")).unwrap();
        hub.assign("n1", action("a3")).unwrap();
        let mut session = open(
            &hub,
            "n1",
            &hello("n1", vec![running("a1"), finished("a2")]),
        );
        assert_eq!(kinds(&drain(&mut session)), ["welcome", "assign a3"]);
    }

    #[test]
    fn finished_actions_in_hello_are_emitted_as_results_with_the_wanted_owner() {
        let hub = hub();
        let mut events = hub.events();
        hub.assign("n1", action("a1")).unwrap();
        open(&hub, "n1", &hello("n1", vec![finished("a1")]));
        assert!(matches!(events.try_recv(), Ok(HubEvent::Connected { .. })));
        let event = events.try_recv().unwrap();
        let HubEvent::Result { node, state, owner } = event else {
            panic!("unexpected {event:?}")
        };
        assert_eq!((node.as_str(), state.action_id.as_str()), ("n1", "a1"));
        assert_eq!(owner.unwrap().name, "b1");
        assert_eq!(
            hub.action_state("a1").unwrap().phase,
            ActionPhase::Succeeded as i32
        );
    }

    #[test]
    fn a_newer_session_replaces_the_older_which_ends_aborted() {
        let hub = hub();
        let mut first = open(&hub, "n1", &hello("n1", vec![]));
        let second = open(&hub, "n1", &hello("n1", vec![]));
        assert!(first.replaced.is_cancelled());
        assert!(first.outbound.try_recv().unwrap().is_ok()); // Welcome
        let status = first.outbound.try_recv().unwrap().unwrap_err();
        assert_eq!(status.code(), tonic::Code::Aborted);
        assert_eq!(status.message(), "replaced by a newer session");
        // The older session's messages and close are ignored.
        assert_eq!(
            hub.handle_message(
                "n1",
                &first.session_id,
                agent_message::Msg::Heartbeat(Heartbeat::default())
            ),
            Err(SessionEnd::Replaced)
        );
        hub.close_session("n1", &first.session_id, "stream ended");
        assert!(hub.node_state("n1").connected);
        hub.close_session("n1", &second.session_id, "stream ended");
        assert!(!hub.node_state("n1").connected);
    }

    #[test]
    fn ack_for_a_disconnected_node_is_sent_after_its_next_hello() {
        let hub = hub();
        let first = open(&hub, "n1", &hello("n1", vec![finished("a1")]));
        hub.close_session("n1", &first.session_id, "gone");
        hub.ack("a1").unwrap();
        let mut second = open(&hub, "n1", &hello("n1", vec![finished("a1")]));
        assert_eq!(kinds(&drain(&mut second)), ["welcome", "ack a1"]);
        let mut third = open(&hub, "n1", &hello("n1", vec![]));
        assert_eq!(kinds(&drain(&mut third)), ["welcome"]);
    }

    #[test]
    fn ack_of_an_action_nobody_reported_is_an_error() {
        assert_eq!(
            hub().ack("zzz"),
            Err(HubError::UnknownAction {
                action_id: "zzz".into()
            })
        );
    }

    #[test]
    fn cancel_for_a_disconnected_node_is_sent_only_if_the_action_still_runs() {
        let hub = hub();
        hub.assign("n1", action("a1")).unwrap();
        hub.assign("n1", action("a2")).unwrap();
        hub.cancel("n1", "a1", "owner deleted");
        hub.cancel("n1", "a2", "owner deleted");
        let mut session = open(&hub, "n1", &hello("n1", vec![running("a1")]));
        assert_eq!(kinds(&drain(&mut session)), ["welcome", "cancel a1"]);
    }

    #[test]
    fn forgotten_actions_are_not_reassigned_and_lose_their_state() {
        let hub = hub();
        hub.assign("n1", action("a1")).unwrap();
        let first = open(&hub, "n1", &hello("n1", vec![]));
        hub.handle_message(
            "n1",
            &first.session_id,
            agent_message::Msg::Accepted(Accepted {
                action_id: "a1".into(),
                already_known: false,
            }),
        )
        .unwrap();
        assert_eq!(
            hub.action_state("a1").unwrap().phase,
            ActionPhase::Running as i32
        );
        hub.forget("a1");
        assert!(hub.action_state("a1").is_none());
        let mut second = open(&hub, "n1", &hello("n1", vec![]));
        assert_eq!(kinds(&drain(&mut second)), ["welcome"]);
    }

    #[test]
    fn result_for_an_unwanted_action_is_still_emitted() {
        let hub = hub();
        let session = open(&hub, "n1", &hello("n1", vec![]));
        let mut events = hub.events();
        let mut result = finished("stray");
        result.owner = Some(ObjectRef {
            name: "b9".into(),
            ..ObjectRef::default()
        });
        hub.handle_message(
            "n1",
            &session.session_id,
            agent_message::Msg::Result(ResultMsg {
                state: Some(result),
            }),
        )
        .unwrap();
        match events.try_recv().unwrap() {
            HubEvent::Result { owner, .. } => assert_eq!(owner.unwrap().name, "b9"),
            other => panic!("unexpected {other:?}"),
        }
        hub.ack("stray").unwrap();
        assert!(hub.action_state("stray").is_none());
    }

    #[test]
    fn protocol_violations_end_the_session() {
        let hub = hub();
        let session = open(&hub, "n1", &hello("n1", vec![]));
        let second_hello = hub.handle_message(
            "n1",
            &session.session_id,
            agent_message::Msg::Hello(hello("n1", vec![])),
        );
        assert!(matches!(second_hello, Err(SessionEnd::Protocol(_))));
        let running_result = hub.handle_message(
            "n1",
            &session.session_id,
            agent_message::Msg::Result(ResultMsg {
                state: Some(running("a1")),
            }),
        );
        assert!(matches!(running_result, Err(SessionEnd::Protocol(_))));
    }

    #[test]
    fn node_state_tracks_connects_and_disconnects() {
        let hub = hub();
        let never = hub.node_state("n1");
        assert!(!never.connected);
        assert_eq!(never.since, hub.lock().started);
        let session = open(&hub, "n1", &hello("n1", vec![]));
        let up = hub.node_state("n1");
        assert!(up.connected && up.since >= never.since);
        assert_eq!(hub.connected_nodes(), ["n1"]);
        hub.close_session("n1", &session.session_id, "bye");
        let down = hub.node_state("n1");
        assert!(!down.connected && down.since >= up.since);
    }

    fn follower() -> (AgentHub, Leadership) {
        let leadership = Leadership::elected();
        leadership.record(None, Some("cp-0".into()));
        (
            AgentHub::with_leadership(HubConfig::default(), leadership.clone()),
            leadership,
        )
    }

    fn lead(leadership: &Leadership) {
        leadership.record(
            Some(tokio::time::Instant::now() + Duration::from_secs(60)),
            Some("cp-1".into()),
        );
    }

    #[tokio::test]
    async fn a_follower_refuses_agents_naming_the_leader() {
        let (hub, _) = follower();
        let refusal = hub
            .open_session("n1", &hello("n1", vec![running("a1")]))
            .err()
            .expect("a follower refuses the session");
        let status = refusal.to_status();
        assert_eq!(status.code(), tonic::Code::Unavailable);
        assert_eq!(status.message(), "not the leader; the leader is \"cp-0\"");
        assert!(!hub.node_state("n1").connected);
        assert!(hub.action_state("a1").is_none());
    }

    #[tokio::test]
    async fn losing_the_lease_ends_every_session_with_not_the_leader_and_forgets_reports() {
        let (hub, leadership) = follower();
        lead(&leadership);
        let mut session = open(&hub, "n1", &hello("n1", vec![running("a1")]));
        assert!(hub.node_state("n1").connected);
        leadership.record(None, Some("cp-0".into()));
        hub.step_down();
        let mut ended = None;
        while let Ok(message) = session.outbound.try_recv() {
            if let Err(status) = message {
                ended = Some(status);
            }
        }
        let status = ended.expect("the session ended with a status");
        assert_eq!(status.code(), tonic::Code::Unavailable);
        assert!(
            status.message().starts_with("not the leader"),
            "{}",
            status.message()
        );
        assert!(session.replaced.is_cancelled());
        assert!(!hub.node_state("n1").connected);
        assert!(
            hub.action_state("a1").is_none(),
            "reports of the old term are forgotten"
        );
        assert!(hub.open_session("n1", &hello("n1", vec![])).is_err());
    }

    #[tokio::test]
    async fn a_new_leader_gives_unseen_nodes_the_grace_period_from_its_election() {
        let (hub, leadership) = follower();
        let process_start = hub.node_state("n1").since;
        std::thread::sleep(Duration::from_millis(20));
        lead(&leadership);
        hub.take_over();
        let since = hub.node_state("n1").since;
        assert!(
            since > process_start,
            "{since} is not after {process_start}"
        );
        assert_eq!(hub.snapshot().started, since);
        assert!(!hub.node_state("n1").connected);
        assert!(hub.open_session("n1", &hello("n1", vec![])).is_ok());
    }
}
