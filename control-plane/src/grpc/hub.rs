//! `AgentHub`: the gRPC session transport of the [`Dispatcher`]: one session per node, its
//! outbound stream, heartbeats and replacement. What is owed to whom (wanted actions, reports,
//! pending acks and cancels) is decided by the pure [`Ledger`] it holds; the hub only delivers.
//!
//! # Expected flow
//! 1. A reconciler writes an action as `Running` into its owner's status, then calls
//!    [`Dispatcher::dispatch`]. The ledger remembers the action as *wanted* on that node and the
//!    hub sends `Assign` at once if the node has a session, else right after the node's next
//!    `Hello`.
//! 2. The agent answers `Accepted`, `Progress` (≤ 1/s) and finally `Result`; each becomes a
//!    [`HubEvent`] and updates [`AgentHub::action_state`] / [`AgentHub::progress`].
//! 3. The reconciler applies the `Result` to the owner's status, then calls
//!    [`Dispatcher::acknowledge`] (the agent stops resending it, the hub stops re-assigning it).
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

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use cairn_proto::agent::v1::{
    Action, ActionState, ControlMessage, Heartbeat, Hello, ObjectRef, Progress, Welcome,
    agent_message, control_message,
};
use jiff::Timestamp;
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;
use tonic::Status;

use cairn_proto::redact::Redacted;

use super::status::SessionRefusal;
pub(crate) use crate::dispatch::SessionEnd;
use crate::dispatch::{DispatchError, Dispatcher, Ledger, Snapshot};
use crate::leader::Leadership;
// Where the session's values have always been named from (`run.rs`, `reconcile/`).
pub use crate::dispatch::{HubEvent, NodeState};

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

/// What the gRPC layer gets for a newly opened session.
pub(crate) struct OpenedSession {
    /// The session id sent in `Welcome`.
    pub session_id: String,
    /// The control messages to stream to the agent (starts with `Welcome`).
    pub outbound: mpsc::UnboundedReceiver<Queued>,
    /// Cancelled when a newer session replaces this one.
    pub replaced: CancellationToken,
}

/// The transport; cheap to clone (all clones share one state).
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

/// A message queued for a session's stream, boxed: tokio's channel allocates its slots in
/// blocks of 32 and keeps up to four blocks per channel for reuse, so with the message inline
/// (~770 bytes) every session held 25-100 KiB of slots, and 1,000 sessions grew the heap by
/// ~24 MiB over a few thousand Backups (bench/README.md, "scale"). Boxed, a block is ~300 bytes.
pub(crate) type Queued = Box<Result<ControlMessage, Status>>;

// Unbounded: control messages are few and small (one per reconciler decision plus heartbeats),
// and a session that stops reading is dropped after `liveness_timeout`, which bounds the queue.
type Outbound = mpsc::UnboundedSender<Queued>;

struct Session {
    id: String,
    tx: Outbound,
    replaced: CancellationToken,
}

/// The ledger and the open sessions, under one lock so a message is never sent on a session
/// the ledger does not count as connected.
struct State {
    ledger: Ledger,
    sessions: HashMap<String, Session>,
}

impl State {
    /// Sends `message` on `node`'s session; false if it has none or its stream is gone.
    fn deliver(&self, node: &str, message: ControlMessage) -> bool {
        self.sessions
            .get(node)
            .is_some_and(|session| session.tx.send(Box::new(Ok(message))).is_ok())
    }

    fn current_tx(&self, node: &str, session_id: &str) -> Option<Outbound> {
        self.sessions
            .get(node)
            .filter(|session| session.id == session_id)
            .map(|session| session.tx.clone())
    }
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
                    ledger: Ledger::new(Timestamp::now()),
                    sessions: HashMap::new(),
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
        let mut closed = Vec::new();
        for (name, session) in std::mem::take(&mut state.sessions) {
            let _ = session
                .tx
                .send(Box::new(Err(super::status::stepped_down_status())));
            session.replaced.cancel();
            closed.push(name);
        }
        state.ledger = Ledger::new(Timestamp::now());
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
        self.lock().ledger.take_over(Timestamp::now());
    }

    /// The configuration the hub was made with.
    pub fn config(&self) -> &HubConfig {
        &self.inner.config
    }

    /// Subscribes to events from now on.
    pub fn events(&self) -> broadcast::Receiver<HubEvent> {
        self.inner.events.subscribe()
    }

    /// Wants `action` to run on `node` (see [`Dispatcher::dispatch`]).
    pub fn assign(&self, node: &str, action: Action) -> Result<(), DispatchError> {
        let mut state = self.lock();
        let id = action.id.clone();
        // Formatted only when logged: this runs under the hub's lock for every dispatch.
        let redacted = tracing::enabled!(tracing::Level::DEBUG)
            .then(|| format!("{:?}", Redacted(&action)))
            .unwrap_or_default();
        if let Some(message) = state.ledger.assign(node, action)? {
            tracing::debug!(agent.node = node, action.id = %id, action = %redacted, "assigning action");
            // A dead stream is fine: the next Hello re-assigns every wanted action.
            state.deliver(node, message);
        }
        Ok(())
    }

    /// Tells `node` to cancel `action_id` and stops wanting it (see [`Dispatcher::cancel`]).
    pub fn cancel(&self, node: &str, action_id: &str, reason: &str) {
        let mut state = self.lock();
        if let Some(message) = state.ledger.cancel(node, action_id, reason)
            && !state.deliver(node, message)
        {
            state.ledger.queue_cancel(node, action_id, reason);
        }
    }

    /// Stops tracking `action_id`: it is no longer (re-)assigned, and its reported state and
    /// progress are dropped. Call it when the owner's status shows the action finished.
    pub fn forget(&self, action_id: &str) {
        self.lock().ledger.forget(action_id);
    }

    /// The control plane has durably applied the `Result` of `action_id`: sends `ResultAck` to
    /// the node that runs it, now or after its next `Hello`. An action that is not wanted is
    /// forgotten too.
    pub fn ack(&self, action_id: &str) -> Result<(), DispatchError> {
        let mut state = self.lock();
        let (node, message) = state.ledger.ack(action_id)?;
        if let Some(message) = message
            && !state.deliver(&node, message)
        {
            state.ledger.queue_ack(&node, action_id);
        }
        Ok(())
    }

    /// Whether `node` has a session and since when.
    pub fn node_state(&self, node: &str) -> NodeState {
        self.lock().ledger.node_state(node)
    }

    /// The nodes that have a session now, sorted.
    pub fn connected_nodes(&self) -> Vec<String> {
        self.lock().ledger.connected_nodes()
    }

    /// The ids of the actions assigned to or reported by `node`, sorted.
    pub fn actions_on(&self, node: &str) -> Vec<String> {
        self.lock().ledger.actions_on(node)
    }

    /// The newest state an agent reported for `action_id` (from `Hello`, `Accepted`, `Result`).
    pub fn action_state(&self, action_id: &str) -> Option<ActionState> {
        self.lock().ledger.action_state(action_id).cloned()
    }

    /// The newest progress report for `action_id`.
    pub fn progress(&self, action_id: &str) -> Option<Progress> {
        self.lock().ledger.progress(action_id).cloned()
    }

    /// Everything agents have reported, and every node's session state, at one instant: the
    /// input reconcilers hand to their pure planners.
    pub fn snapshot(&self) -> Snapshot {
        self.lock().ledger.snapshot()
    }

    /// Opens a session for `node` after an accepted `Hello`: replaces any older session, queues
    /// `Welcome`, then what the ledger says the node is owed.
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
        if let Some(old) = state.sessions.remove(node) {
            tracing::info!(agent.node = node, old.session = %old.id, "agent session replaced by a newer session");
            let _ = old.tx.send(Box::new(Err(Status::aborted(
                "replaced by a newer session",
            ))));
            old.replaced.cancel();
        }
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
        let (messages, results) = state.ledger.connected(node, hello, Timestamp::now());
        for message in messages {
            send(&tx, message);
        }
        state.sessions.insert(
            node.to_owned(),
            Session {
                id: session_id.clone(),
                tx,
                replaced: replaced.clone(),
            },
        );
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
        if state.current_tx(node, session_id).is_none() {
            return;
        }
        state.sessions.remove(node);
        state.ledger.disconnected(node, Timestamp::now());
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
        let mut closed: Vec<String> = Vec::new();
        for (name, session) in std::mem::take(&mut state.sessions) {
            let _ = session
                .tx
                .send(Box::new(Err(Status::unavailable(reason.to_owned()))));
            session.replaced.cancel();
            closed.push(name);
        }
        for name in &closed {
            state.ledger.disconnected(name, now);
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
            let _ = tx.send(Box::new(Err(status)));
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
        let event = state.ledger.apply(node, msg)?;
        drop(state);
        if let Some(event) = event {
            self.emit(event);
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

impl Dispatcher for AgentHub {
    fn dispatch(&self, node: &str, action: Action) -> Result<(), DispatchError> {
        self.assign(node, action)
    }

    fn cancel(&self, node: &str, action_id: &str, reason: &str) {
        AgentHub::cancel(self, node, action_id, reason);
    }

    fn acknowledge(&self, action_id: &str) {
        // An id nobody reported has nothing to acknowledge; forgetting it is all there is.
        let _ = self.ack(action_id);
        self.forget(action_id);
    }

    fn owner_gone(&self, owner: &ObjectRef) {
        let mut state = self.lock();
        for (node, message) in state.ledger.owner_gone(owner) {
            let id = match &message.msg {
                Some(control_message::Msg::ResultAck(ack)) => ack.action_id.clone(),
                _ => continue,
            };
            if !state.deliver(&node, message) {
                state.ledger.queue_ack(&node, &id);
            }
        }
    }

    fn owner_of(&self, action_id: &str) -> Option<ObjectRef> {
        self.lock().ledger.owner_of(action_id).cloned()
    }

    fn actions_on(&self, node: &str) -> Vec<String> {
        AgentHub::actions_on(self, node)
    }

    fn snapshot(&self) -> Snapshot {
        AgentHub::snapshot(self)
    }

    fn events(&self) -> broadcast::Receiver<HubEvent> {
        AgentHub::events(self)
    }
}

fn control(msg: control_message::Msg) -> ControlMessage {
    ControlMessage { msg: Some(msg) }
}

fn send(tx: &Outbound, message: ControlMessage) {
    // A closed receiver means the session is ending; the close path and the next Hello
    // re-deliver what matters (wanted actions are re-assigned, results are resent).
    let _ = tx.send(Box::new(Ok(message)));
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_proto::agent::v1::{Accepted, ActionPhase, Result as ResultMsg};

    fn open(hub: &AgentHub, node: &str, hello: &Hello) -> OpenedSession {
        hub.open_session(node, hello)
            .unwrap_or_else(|refusal| panic!("session refused: {refusal}"))
    }

    fn hub() -> AgentHub {
        AgentHub::new(HubConfig::default())
    }

    #[test]
    fn a_queued_message_takes_a_pointer_in_the_sessions_channel() {
        // The channel keeps up to four blocks of 32 slots per session for reuse: with slots
        // the size of a message, 1,000 sessions could hold ~100 MiB after a burst of Backups.
        assert!(
            std::mem::size_of::<Result<ControlMessage, Status>>() > 256,
            "the message this guards against is large"
        );
        assert_eq!(std::mem::size_of::<Queued>(), std::mem::size_of::<usize>());
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
            Err(DispatchError::UnknownAction {
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
        assert_eq!(never.since, hub.snapshot().started);
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
            if let Err(status) = *message {
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
