//! The action ledger: which action is wanted on which node, what agents reported, and what a node
//! must be sent when its session opens. Pure and synchronous: no channel, no clock, no lock.
//!
//! # Expected flow
//! 1. [`Ledger::assign`] records an action as *wanted* on a node and returns the `Assign` to send
//!    now if the node is connected; [`Ledger::connected`] returns it again (with pending acks and
//!    cancels) when the node's next session opens, unless the agent's `Hello` lists it.
//! 2. [`Ledger::apply`] records what a session's messages say (`Accepted`, `Progress`, `Result`)
//!    and returns the [`HubEvent`] to publish.
//! 3. [`Ledger::ack`] then [`Ledger::forget`] drop a finished action once its owner's status
//!    records it; [`Ledger::owner_gone`] drops every action of an object that no longer exists.
//!
//! # Guarantees
//! - `assign` is idempotent by action id on one node.
//! - An acknowledged action that is no longer wanted leaves nothing behind but, while its node
//!   is away, the `ResultAck` to deliver; [`Ledger::len`] counts every entry, so tests can show
//!   the ledger does not grow with the number of actions it has seen.
//! - Nothing is durable: after a restart the CRs are the truth (PROTOCOL.md §2.3.4).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use cairn_proto::agent::v1::{
    Action, ActionPhase, ActionState, Assign, Cancel, ControlMessage, Hello, ObjectRef, Progress,
    Result as ResultMsg, ResultAck, agent_message, control_message,
};
use jiff::Timestamp;

use super::{DispatchError, HubEvent, NodeState, Snapshot};

/// Why a session's message loop must stop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEnd {
    /// A newer session for the node took over.
    Replaced,
    /// The agent broke the protocol (message text for `FAILED_PRECONDITION`).
    Protocol(String),
}

/// What a node is owed, kept while it has no session.
#[derive(Debug)]
struct Node {
    connected: bool,
    since: Timestamp,
    pending_acks: BTreeSet<String>,
    pending_cancels: BTreeMap<String, String>,
}

#[derive(Debug)]
struct Wanted {
    node: String,
    action: Action,
}

/// The ledger of actions and nodes (see the module docs).
#[derive(Debug)]
pub struct Ledger {
    started: Timestamp,
    nodes: HashMap<String, Node>,
    wanted: HashMap<String, Wanted>,
    reported: HashMap<String, ActionState>,
    progress: HashMap<String, Progress>,
    action_node: HashMap<String, String>,
}

impl Ledger {
    /// An empty ledger; nodes never seen count as disconnected since `started`.
    pub fn new(started: Timestamp) -> Ledger {
        Ledger {
            started,
            nodes: HashMap::new(),
            wanted: HashMap::new(),
            reported: HashMap::new(),
            progress: HashMap::new(),
            action_node: HashMap::new(),
        }
    }

    /// When the ledger started.
    pub fn started(&self) -> Timestamp {
        self.started
    }

    /// Wants `action` on `node`; returns the `Assign` to send now when the node is connected.
    /// Wanting an id again on the same node returns nothing (on another node, it moves there),
    /// unless it is an archiver whose spec digest changed: the new one is sent.
    pub fn assign(
        &mut self,
        node: &str,
        action: Action,
    ) -> Result<Option<ControlMessage>, DispatchError> {
        if action.id.is_empty() {
            return Err(DispatchError::EmptyActionId { name: action.name });
        }
        if self.wanted.get(&action.id).is_some_and(|wanted| {
            wanted.node == node && revision(&wanted.action) == revision(&action)
        }) {
            return Ok(None);
        }
        self.action_node.insert(action.id.clone(), node.to_owned());
        let now = self.is_connected(node).then(|| assign_message(&action));
        self.wanted.insert(
            action.id.clone(),
            Wanted {
                node: node.to_owned(),
                action,
            },
        );
        Ok(now)
    }

    /// Stops wanting `action_id` and returns the `Cancel` to send now when `node` is connected;
    /// otherwise it is kept for the node's next session.
    pub fn cancel(&mut self, node: &str, action_id: &str, reason: &str) -> Option<ControlMessage> {
        self.wanted.remove(action_id);
        if self.is_connected(node) {
            return Some(cancel_message(action_id, reason));
        }
        self.queue_cancel(node, action_id, reason);
        None
    }

    /// Keeps a `Cancel` that could not be delivered for the node's next session.
    pub fn queue_cancel(&mut self, node: &str, action_id: &str, reason: &str) {
        self.node_mut(node)
            .pending_cancels
            .insert(action_id.to_owned(), reason.to_owned());
    }

    /// The owner's status records the result of `action_id`: returns the node that runs it and
    /// the `ResultAck` to send now when it is connected (else the ack is kept for its next
    /// session). An action that is not wanted is dropped.
    pub fn ack(
        &mut self,
        action_id: &str,
    ) -> Result<(String, Option<ControlMessage>), DispatchError> {
        let node = self.action_node.get(action_id).cloned().ok_or_else(|| {
            DispatchError::UnknownAction {
                action_id: action_id.to_owned(),
            }
        })?;
        let now = if self.is_connected(&node) {
            Some(ack_message(action_id))
        } else {
            self.queue_ack(&node, action_id);
            None
        };
        if !self.wanted.contains_key(action_id) {
            self.drop_reports(action_id);
        }
        Ok((node, now))
    }

    /// Keeps a `ResultAck` that could not be delivered for the node's next session.
    pub fn queue_ack(&mut self, node: &str, action_id: &str) {
        self.node_mut(node)
            .pending_acks
            .insert(action_id.to_owned());
    }

    /// Stops tracking `action_id`: no longer (re-)assigned, its reports and pending cancel gone.
    pub fn forget(&mut self, action_id: &str) {
        self.wanted.remove(action_id);
        self.drop_reports(action_id);
        for node in self.nodes.values_mut() {
            node.pending_cancels.remove(action_id);
        }
    }

    /// The object `owner` no longer exists: forgets every action it owned (wanted or reported),
    /// and returns, per node, the acks that let agents drop their finished results. Matches by
    /// uid when `owner` has one, else by kind, namespace and name.
    pub fn owner_gone(&mut self, owner: &ObjectRef) -> Vec<(String, ControlMessage)> {
        let mut ids: BTreeSet<String> = self
            .wanted
            .iter()
            .filter(|(_, w)| {
                w.action
                    .owner
                    .as_ref()
                    .is_some_and(|o| same_owner(o, owner))
            })
            .map(|(id, _)| id.clone())
            .collect();
        ids.extend(
            self.reported
                .iter()
                .filter(|(_, s)| s.owner.as_ref().is_some_and(|o| same_owner(o, owner)))
                .map(|(id, _)| id.clone()),
        );
        let mut acks = Vec::new();
        for id in ids {
            let finished = self.reported.get(&id).is_some_and(is_final);
            if finished {
                self.wanted.remove(&id);
                if let Ok((node, Some(message))) = self.ack(&id) {
                    acks.push((node, message));
                }
            }
            self.forget(&id);
        }
        acks
    }

    /// A session opened for `node` after its `Hello`: records what the agent listed and returns
    /// what to send after `Welcome` (pending acks, pending cancels of actions still running,
    /// wanted actions the agent did not list, by id) and the results to publish.
    pub fn connected(
        &mut self,
        node: &str,
        hello: &Hello,
        now: Timestamp,
    ) -> (Vec<ControlMessage>, Vec<HubEvent>) {
        let entry = self.node_mut(node);
        entry.connected = true;
        entry.since = now;
        let pending_acks = std::mem::take(&mut entry.pending_acks);
        let pending_cancels = std::mem::take(&mut entry.pending_cancels);

        let mut reported_ids = BTreeSet::new();
        let mut running_ids = BTreeSet::new();
        let mut events = Vec::new();
        for state in &hello.actions {
            if state.action_id.is_empty() {
                continue;
            }
            reported_ids.insert(state.action_id.clone());
            if is_final(state) {
                events.push(self.record_result(node, state.clone()));
            } else {
                running_ids.insert(state.action_id.clone());
                self.action_node
                    .insert(state.action_id.clone(), node.to_owned());
                self.reported.insert(state.action_id.clone(), state.clone());
            }
        }
        let mut messages: Vec<ControlMessage> =
            pending_acks.iter().map(|id| ack_message(id)).collect();
        messages.extend(
            pending_cancels
                .iter()
                .filter(|(id, _)| running_ids.contains(*id))
                .map(|(id, reason)| cancel_message(id, reason)),
        );
        let mut to_assign: Vec<&Wanted> = self
            .wanted
            .values()
            // An archiver the agent lists is assigned again all the same: its spec may have
            // changed while the node was away (the agent revises it, or ignores the same digest).
            .filter(|w| {
                w.node == node
                    && (!reported_ids.contains(&w.action.id) || revision(&w.action).is_some())
            })
            .collect();
        to_assign.sort_by(|a, b| a.action.id.cmp(&b.action.id));
        messages.extend(to_assign.into_iter().map(|w| assign_message(&w.action)));
        (messages, events)
    }

    /// This replica became the leader at `now`: nodes without a session count as disconnected
    /// from `now`, not from when the ledger started, so agents get the full grace period to
    /// find a leader that was a follower for hours.
    pub fn take_over(&mut self, now: Timestamp) {
        self.started = now;
        for node in self.nodes.values_mut() {
            if !node.connected {
                node.since = now;
            }
        }
    }

    /// `node`'s session ended at `now` and no newer one replaced it.
    pub fn disconnected(&mut self, node: &str, now: Timestamp) {
        let entry = self.node_mut(node);
        entry.connected = false;
        entry.since = now;
    }

    /// Records one message of `node`'s current session; returns the event to publish.
    pub fn apply(
        &mut self,
        node: &str,
        msg: agent_message::Msg,
    ) -> Result<Option<HubEvent>, SessionEnd> {
        match msg {
            agent_message::Msg::Hello(_) => Err(SessionEnd::Protocol(
                "Hello is only allowed as the first message of a session".to_owned(),
            )),
            agent_message::Msg::Heartbeat(_) => Ok(None),
            agent_message::Msg::Accepted(accepted) => {
                if accepted.action_id.is_empty() {
                    return Err(SessionEnd::Protocol(
                        "Accepted without action_id".to_owned(),
                    ));
                }
                let id = accepted.action_id.clone();
                self.action_node.insert(id.clone(), node.to_owned());
                if !self.reported.get(&id).is_some_and(is_final) {
                    let owner = self.wanted.get(&id).and_then(|w| w.action.owner.clone());
                    let entry = self.reported.entry(id.clone()).or_insert(ActionState {
                        action_id: id.clone(),
                        exit_code: -1,
                        owner,
                        ..ActionState::default()
                    });
                    entry.phase = ActionPhase::Running as i32;
                }
                Ok(Some(HubEvent::Accepted {
                    node: node.to_owned(),
                    action_id: id,
                    already_known: accepted.already_known,
                }))
            }
            agent_message::Msg::Progress(progress) => {
                if progress.action_id.is_empty() {
                    return Err(SessionEnd::Protocol(
                        "Progress without action_id".to_owned(),
                    ));
                }
                self.action_node
                    .insert(progress.action_id.clone(), node.to_owned());
                if let Some(reported) = self.reported.get_mut(&progress.action_id)
                    && !is_final(reported)
                {
                    reported.bytes_done = progress.bytes_done;
                }
                self.progress
                    .insert(progress.action_id.clone(), progress.clone());
                Ok(Some(HubEvent::Progress {
                    node: node.to_owned(),
                    progress,
                }))
            }
            agent_message::Msg::Result(ResultMsg { state }) => {
                let Some(result) = state.filter(|s| !s.action_id.is_empty()) else {
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
                Ok(Some(self.record_result(node, result)))
            }
        }
    }

    /// Whether `node` has a session, and since when.
    pub fn node_state(&self, node: &str) -> NodeState {
        match self.nodes.get(node) {
            Some(entry) => NodeState {
                connected: entry.connected,
                since: entry.since,
            },
            None => NodeState {
                connected: false,
                since: self.started,
            },
        }
    }

    /// The connected nodes, sorted.
    pub fn connected_nodes(&self) -> Vec<String> {
        let mut nodes: Vec<String> = self
            .nodes
            .iter()
            .filter(|(_, node)| node.connected)
            .map(|(name, _)| name.clone())
            .collect();
        nodes.sort();
        nodes
    }

    /// The ids of the actions wanted on or reported by `node`, sorted.
    pub fn actions_on(&self, node: &str) -> Vec<String> {
        let mut ids: Vec<String> = self
            .action_node
            .iter()
            .filter(|(_, n)| n.as_str() == node)
            .map(|(id, _)| id.clone())
            .collect();
        ids.sort();
        ids
    }

    /// The newest state an agent reported for `action_id`.
    pub fn action_state(&self, action_id: &str) -> Option<&ActionState> {
        self.reported.get(action_id)
    }

    /// The newest progress report for `action_id`.
    pub fn progress(&self, action_id: &str) -> Option<&Progress> {
        self.progress.get(action_id)
    }

    /// The object `action_id` belongs to: from the wanted action, else from the agent's report.
    pub fn owner_of(&self, action_id: &str) -> Option<&ObjectRef> {
        self.wanted
            .get(action_id)
            .and_then(|w| w.action.owner.as_ref())
            .or_else(|| self.reported.get(action_id).and_then(|s| s.owner.as_ref()))
    }

    /// Everything reported and every node's state, at one instant.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            reported: self.reported.clone(),
            progress: self.progress.clone(),
            nodes: self
                .nodes
                .iter()
                .map(|(name, node)| {
                    (
                        name.clone(),
                        NodeState {
                            connected: node.connected,
                            since: node.since,
                        },
                    )
                })
                .collect(),
            started: self.started,
        }
    }

    /// How many entries the ledger holds over all its maps (nodes not counted, but what they
    /// are owed is): what must stay flat however many actions have come and gone.
    pub fn len(&self) -> usize {
        self.wanted.len()
            + self.reported.len()
            + self.progress.len()
            + self.action_node.len()
            + self
                .nodes
                .values()
                .map(|n| n.pending_acks.len() + n.pending_cancels.len())
                .sum::<usize>()
    }

    /// Whether the ledger holds no action.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn is_connected(&self, node: &str) -> bool {
        self.nodes.get(node).is_some_and(|n| n.connected)
    }

    fn node_mut(&mut self, node: &str) -> &mut Node {
        let started = self.started;
        self.nodes.entry(node.to_owned()).or_insert_with(|| Node {
            connected: false,
            since: started,
            pending_acks: BTreeSet::new(),
            pending_cancels: BTreeMap::new(),
        })
    }

    fn drop_reports(&mut self, action_id: &str) {
        self.reported.remove(action_id);
        self.progress.remove(action_id);
        self.action_node.remove(action_id);
    }

    fn record_result(&mut self, node: &str, result: ActionState) -> HubEvent {
        let id = result.action_id.clone();
        let owner = result
            .owner
            .clone()
            .or_else(|| self.wanted.get(&id).and_then(|w| w.action.owner.clone()));
        self.action_node.insert(id.clone(), node.to_owned());
        self.reported.insert(id.clone(), result.clone());
        if let Some(entry) = self.nodes.get_mut(node) {
            entry.pending_cancels.remove(&id);
        }
        HubEvent::Result {
            node: node.to_owned(),
            state: Box::new(result),
            owner,
        }
    }
}

/// Whether a state is final (succeeded, failed or cancelled).
pub fn is_final(state: &ActionState) -> bool {
    matches!(
        ActionPhase::try_from(state.phase),
        Ok(ActionPhase::Succeeded | ActionPhase::Failed | ActionPhase::Cancelled)
    )
}

fn same_owner(a: &ObjectRef, b: &ObjectRef) -> bool {
    if !a.uid.is_empty() && !b.uid.is_empty() {
        return a.uid == b.uid;
    }
    a.kind == b.kind && a.namespace == b.namespace && a.name == b.name
}

fn control(msg: control_message::Msg) -> ControlMessage {
    ControlMessage { msg: Some(msg) }
}

/// What makes an `Assign` of a wanted id worth sending again: an archiver's spec digest
/// (PROTOCOL.md §2.4 `ArchiverAction`); other actions never change under their id.
fn revision(action: &Action) -> Option<&str> {
    match &action.kind {
        Some(cairn_proto::agent::v1::action::Kind::Archiver(archiver)) => {
            Some(archiver.spec_digest.as_str())
        }
        _ => None,
    }
}

fn assign_message(action: &Action) -> ControlMessage {
    control(control_message::Msg::Assign(Assign {
        action: Some(action.clone()),
    }))
}

fn cancel_message(action_id: &str, reason: &str) -> ControlMessage {
    control(control_message::Msg::Cancel(Cancel {
        action_id: action_id.to_owned(),
        reason: reason.to_owned(),
    }))
}

fn ack_message(action_id: &str) -> ControlMessage {
    control(control_message::Msg::ResultAck(ResultAck {
        action_id: action_id.to_owned(),
    }))
}

#[cfg(test)]
mod tests {
    use cairn_proto::agent::v1::Accepted;

    use super::*;

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + secs).unwrap()
    }

    fn owner(name: &str) -> ObjectRef {
        ObjectRef {
            kind: "Backup".into(),
            namespace: "ns".into(),
            name: name.into(),
            uid: format!("uid-{name}"),
            ..ObjectRef::default()
        }
    }

    fn action(id: &str, of: &str) -> Action {
        Action {
            id: id.into(),
            name: "dp-backup-0".into(),
            owner: Some(owner(of)),
            ..Action::default()
        }
    }

    fn hello(actions: Vec<ActionState>) -> Hello {
        Hello {
            node_name: "node-a".into(),
            version: "0.1.0".into(),
            actions,
            capabilities: vec![],
        }
    }

    fn state(id: &str, phase: ActionPhase) -> ActionState {
        ActionState {
            action_id: id.into(),
            phase: phase as i32,
            ..ActionState::default()
        }
    }

    fn result(id: &str) -> agent_message::Msg {
        agent_message::Msg::Result(ResultMsg {
            state: Some(state(id, ActionPhase::Succeeded)),
        })
    }

    fn kinds(messages: &[ControlMessage]) -> Vec<String> {
        messages
            .iter()
            .map(|m| match &m.msg {
                Some(control_message::Msg::Assign(a)) => {
                    format!("assign {}", a.action.as_ref().map_or("", |a| a.id.as_str()))
                }
                Some(control_message::Msg::Cancel(c)) => format!("cancel {}", c.action_id),
                Some(control_message::Msg::ResultAck(a)) => format!("ack {}", a.action_id),
                other => format!("{other:?}"),
            })
            .collect()
    }

    fn connected_ledger() -> Ledger {
        let mut ledger = Ledger::new(at(0));
        ledger.connected("node-a", &hello(vec![]), at(1));
        ledger
    }

    #[test]
    fn assign_sends_at_once_to_a_connected_node_and_only_once() {
        let mut ledger = connected_ledger();
        let first = ledger.assign("node-a", action("a1", "b1")).unwrap();
        assert_eq!(kinds(&first.into_iter().collect::<Vec<_>>()), ["assign a1"]);
        assert_eq!(ledger.assign("node-a", action("a1", "b1")).unwrap(), None);
    }

    fn archiver(id: &str, digest: &str) -> Action {
        Action {
            kind: Some(cairn_proto::agent::v1::action::Kind::Archiver(
                cairn_proto::agent::v1::ArchiverAction {
                    spec_digest: digest.into(),
                    ..Default::default()
                },
            )),
            ..action(id, "b1")
        }
    }

    #[test]
    fn an_archiver_is_assigned_again_when_its_spec_digest_changes_and_after_every_hello() {
        let mut ledger = connected_ledger();
        assert!(
            ledger
                .assign("node-a", archiver("c1", "d1"))
                .unwrap()
                .is_some()
        );
        assert_eq!(ledger.assign("node-a", archiver("c1", "d1")).unwrap(), None);
        let revised = ledger.assign("node-a", archiver("c1", "d2")).unwrap();
        assert_eq!(
            kinds(&revised.into_iter().collect::<Vec<_>>()),
            ["assign c1"]
        );
        assert_eq!(ledger.assign("node-a", archiver("c1", "d2")).unwrap(), None);
        // The agent lists it running after a restart: it gets the newest spec all the same.
        ledger.disconnected("node-a", at(2));
        let (messages, _) = ledger.connected(
            "node-a",
            &hello(vec![state("c1", ActionPhase::Running)]),
            at(3),
        );
        assert_eq!(kinds(&messages), ["assign c1"]);
        let Some(control_message::Msg::Assign(assign)) = &messages[0].msg else {
            panic!("not an assign");
        };
        assert_eq!(revision(assign.action.as_ref().unwrap()), Some("d2"));
    }

    #[test]
    fn an_action_without_id_is_refused() {
        let mut ledger = connected_ledger();
        assert_eq!(
            ledger.assign("node-a", action("", "b1")),
            Err(DispatchError::EmptyActionId {
                name: "dp-backup-0".into()
            })
        );
    }

    #[test]
    fn what_a_node_missed_is_sent_when_it_reconnects_except_what_its_agent_lists() {
        let mut ledger = Ledger::new(at(0));
        assert_eq!(ledger.assign("node-a", action("a2", "b1")).unwrap(), None);
        assert_eq!(ledger.assign("node-a", action("a1", "b1")).unwrap(), None);
        assert_eq!(ledger.assign("node-a", action("a3", "b1")).unwrap(), None);
        assert_eq!(ledger.cancel("node-a", "a3", "deleted"), None);
        let (messages, events) = ledger.connected(
            "node-a",
            &hello(vec![
                state("a2", ActionPhase::Running),
                state("a3", ActionPhase::Running),
            ]),
            at(5),
        );
        assert_eq!(kinds(&messages), ["cancel a3", "assign a1"]);
        assert!(events.is_empty());
        assert_eq!(
            ledger.node_state("node-a"),
            NodeState {
                connected: true,
                since: at(5)
            }
        );
    }

    #[test]
    fn a_result_listed_in_hello_is_published_with_the_wanted_actions_owner() {
        let mut ledger = Ledger::new(at(0));
        ledger.assign("node-a", action("a1", "b1")).unwrap();
        let (messages, events) = ledger.connected(
            "node-a",
            &hello(vec![state("a1", ActionPhase::Succeeded)]),
            at(1),
        );
        assert!(messages.is_empty());
        assert!(matches!(
            &events[..],
            [HubEvent::Result { owner: Some(o), .. }] if o.name == "b1"
        ));
    }

    #[test]
    fn ack_before_forget_is_delivered_after_reconnect() {
        let mut ledger = connected_ledger();
        ledger.assign("node-a", action("a1", "b1")).unwrap();
        ledger.apply("node-a", result("a1")).unwrap();
        ledger.disconnected("node-a", at(2));
        assert_eq!(ledger.ack("a1").unwrap(), ("node-a".to_owned(), None));
        ledger.forget("a1");
        let (messages, _) = ledger.connected("node-a", &hello(vec![]), at(3));
        assert_eq!(kinds(&messages), ["ack a1"]);
        assert!(ledger.is_empty());
    }

    #[test]
    fn progress_and_acceptance_are_recorded_and_published() {
        let mut ledger = connected_ledger();
        ledger.assign("node-a", action("a1", "b1")).unwrap();
        let accepted = ledger
            .apply(
                "node-a",
                agent_message::Msg::Accepted(Accepted {
                    action_id: "a1".into(),
                    already_known: false,
                }),
            )
            .unwrap();
        assert!(matches!(accepted, Some(HubEvent::Accepted { .. })));
        let running = ledger.action_state("a1").unwrap();
        assert_eq!(running.phase, ActionPhase::Running as i32);
        assert_eq!(running.owner.as_ref().unwrap().name, "b1");
        ledger
            .apply(
                "node-a",
                agent_message::Msg::Progress(Progress {
                    action_id: "a1".into(),
                    bytes_done: 42,
                    ..Progress::default()
                }),
            )
            .unwrap();
        assert_eq!(ledger.action_state("a1").unwrap().bytes_done, 42);
        assert_eq!(ledger.progress("a1").unwrap().bytes_done, 42);
    }

    #[test]
    fn protocol_breaches_end_the_session_with_a_reason() {
        let mut ledger = connected_ledger();
        let not_final = agent_message::Msg::Result(ResultMsg {
            state: Some(state("a1", ActionPhase::Running)),
        });
        assert!(matches!(
            ledger.apply("node-a", not_final),
            Err(SessionEnd::Protocol(text)) if text.contains("not final")
        ));
        assert!(matches!(
            ledger.apply("node-a", agent_message::Msg::Hello(hello(vec![]))),
            Err(SessionEnd::Protocol(_))
        ));
    }

    #[test]
    fn the_owner_of_an_action_comes_from_the_wanted_action_or_the_agents_report() {
        let mut ledger = connected_ledger();
        ledger.assign("node-a", action("a1", "b1")).unwrap();
        assert_eq!(ledger.owner_of("a1").unwrap().name, "b1");
        // After a control-plane restart only the agent's report names the owner.
        let mut restarted = Ledger::new(at(0));
        let mut reported = state("a2", ActionPhase::Running);
        reported.owner = Some(owner("b2"));
        restarted.connected("node-a", &hello(vec![reported]), at(1));
        assert_eq!(restarted.owner_of("a2").unwrap().name, "b2");
        assert!(restarted.owner_of("a3").is_none());
    }

    #[test]
    fn does_not_grow_without_bound_when_actions_finish_and_are_acknowledged() {
        let mut ledger = connected_ledger();
        for i in 0..10_000 {
            let id = format!("a{i}");
            ledger.assign("node-a", action(&id, "b1")).unwrap();
            ledger
                .apply(
                    "node-a",
                    agent_message::Msg::Progress(Progress {
                        action_id: id.clone(),
                        bytes_done: 1,
                        ..Progress::default()
                    }),
                )
                .unwrap();
            ledger.apply("node-a", result(&id)).unwrap();
            // What the shell does on `Intent::Acknowledge`.
            ledger.ack(&id).unwrap();
            ledger.forget(&id);
        }
        assert_eq!(ledger.len(), 0);
    }

    #[test]
    fn does_not_grow_without_bound_when_owners_are_deleted_before_acknowledging() {
        let mut ledger = connected_ledger();
        for i in 0..1_000 {
            let backup = format!("b{i}");
            let finished = format!("a{i}-done");
            let running = format!("a{i}-running");
            ledger.assign("node-a", action(&finished, &backup)).unwrap();
            ledger.assign("node-a", action(&running, &backup)).unwrap();
            ledger.apply("node-a", result(&finished)).unwrap();
            // The Backup is deleted before its reconciler records the result.
            let acks = ledger.owner_gone(&owner(&backup));
            assert_eq!(
                acks.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
                ["node-a"]
            );
            assert_eq!(kinds(&[acks[0].1.clone()]), [format!("ack {finished}")]);
        }
        assert_eq!(ledger.len(), 0);
    }

    #[test]
    fn owner_gone_keeps_other_owners_actions() {
        let mut ledger = connected_ledger();
        ledger.assign("node-a", action("a1", "b1")).unwrap();
        ledger.assign("node-a", action("a2", "b2")).unwrap();
        ledger.owner_gone(&owner("b1"));
        assert!(ledger.owner_of("a1").is_none());
        assert_eq!(ledger.owner_of("a2").unwrap().name, "b2");
    }

    #[test]
    fn a_new_leader_counts_nodes_without_a_session_from_its_election() {
        let mut ledger = connected_ledger();
        ledger.connected("node-b", &hello(vec![]), at(1));
        ledger.disconnected("node-b", at(2));
        ledger.take_over(at(100));
        assert_eq!(
            ledger.node_state("node-a"),
            NodeState {
                connected: true,
                since: at(1)
            }
        );
        assert_eq!(
            ledger.node_state("node-b"),
            NodeState {
                connected: false,
                since: at(100)
            }
        );
        assert_eq!(
            ledger.node_state("node-c"),
            NodeState {
                connected: false,
                since: at(100)
            }
        );
        assert_eq!(ledger.started(), at(100));
    }

    #[test]
    fn actions_on_a_node_are_those_wanted_there_or_reported_by_it() {
        let mut ledger = connected_ledger();
        ledger.assign("node-a", action("a2", "b1")).unwrap();
        ledger.assign("node-b", action("b1", "b2")).unwrap();
        ledger
            .apply(
                "node-a",
                agent_message::Msg::Accepted(Accepted {
                    action_id: "a1".into(),
                    already_known: true,
                }),
            )
            .unwrap();
        assert_eq!(ledger.actions_on("node-a"), ["a1", "a2"]);
        assert_eq!(ledger.actions_on("node-b"), ["b1"]);
        ledger.ack("a1").unwrap();
        ledger.forget("a1");
        assert_eq!(ledger.actions_on("node-a"), ["a2"]);
    }
}
