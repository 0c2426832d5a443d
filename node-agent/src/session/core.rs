//! The agent's side of the protocol across connections: journal first, then runner, then wire.
//!
//! `Core` owns the journal and the set of actions running in this process. It survives
//! reconnects; each connection is a [`Live`] it writes to while one exists.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use cairn_proto::agent::v1::{
    Accepted, Action, ActionState, AgentMessage, ControlMessage, Heartbeat, Hello,
    Result as ResultMsg, action, agent_message, control_message,
};
use jiff::Timestamp;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tonic::Streaming;
use tracing::Instrument;

use super::SessionConfig;
use super::connection::Established;
use super::reporter::{Reporter, ReporterEvent};
use super::runner::ActionRunner;
use super::throttle::ProgressThrottle;
use crate::journal::{Acceptance, Journal, JournalError};
use cairn_proto::redact::Redacted;

/// The control plane is considered gone after this many heartbeat intervals of silence.
const MISSED_HEARTBEATS: u32 = 3;

/// One open session.
pub(crate) struct Live {
    outbound: mpsc::Sender<AgentMessage>,
    pub(crate) inbound: Streaming<ControlMessage>,
    pub(crate) session_id: String,
    heartbeat: Duration,
    last_sent: Instant,
    last_heard: Instant,
}

impl Live {
    pub(crate) fn new(established: Established, now: Instant) -> Live {
        let heartbeat = Duration::from_secs(u64::from(
            established.welcome.heartbeat_interval_seconds.max(1),
        ));
        Live {
            outbound: established.outbound,
            inbound: established.inbound,
            session_id: established.welcome.session_id,
            heartbeat,
            last_sent: now,
            last_heard: now,
        }
    }

    /// Notes that the control plane said something.
    pub(crate) fn heard(&mut self, now: Instant) {
        self.last_heard = now;
    }

    fn send(&mut self, msg: agent_message::Msg, now: Instant) -> Result<(), String> {
        self.outbound
            .try_send(AgentMessage { msg: Some(msg) })
            .map_err(|err| match err {
                mpsc::error::TrySendError::Full(_) => {
                    "the control plane is not reading the session".to_owned()
                }
                mpsc::error::TrySendError::Closed(_) => "the session stream closed".to_owned(),
            })?;
        self.last_sent = now;
        Ok(())
    }
}

/// The journal, used from blocking tasks (every write is fsynced).
#[derive(Clone)]
pub(crate) struct SharedJournal(Arc<Mutex<Journal>>);

impl SharedJournal {
    pub(crate) fn new(journal: Journal) -> SharedJournal {
        SharedJournal(Arc::new(Mutex::new(journal)))
    }

    /// Runs `f` on the journal in a blocking task.
    async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Journal) -> Result<T, JournalError> + Send + 'static,
    ) -> Result<T, JournalError> {
        let journal = self.0.clone();
        let task = tokio::task::spawn_blocking(move || {
            let mut guard = journal.lock().unwrap_or_else(PoisonError::into_inner);
            f(&mut guard)
        });
        match task.await {
            Ok(result) => result,
            Err(err) if err.is_panic() => std::panic::resume_unwind(err.into_panic()),
            Err(_) => Err(JournalError::Unavailable),
        }
    }

    /// Reads the journal in memory (no IO).
    fn read<T>(&self, f: impl FnOnce(&Journal) -> T) -> T {
        f(&self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

struct Unacked {
    state: ActionState,
    sent_at: Option<Instant>,
}

/// The agent's protocol state.
pub(crate) struct Core {
    config: SessionConfig,
    runner: Arc<dyn ActionRunner>,
    journal: SharedJournal,
    events: mpsc::UnboundedSender<ReporterEvent>,
    active: HashSet<String>,
    unacked: HashMap<String, Unacked>,
    throttle: ProgressThrottle,
}

impl Core {
    pub(crate) fn new(
        config: SessionConfig,
        runner: Arc<dyn ActionRunner>,
        journal: SharedJournal,
        events: mpsc::UnboundedSender<ReporterEvent>,
    ) -> Core {
        let unacked = journal.read(|j| {
            j.unacked_results()
                .map(|state| {
                    (
                        state.action_id.clone(),
                        Unacked {
                            state: state.clone(),
                            sent_at: None,
                        },
                    )
                })
                .collect()
        });
        let throttle = ProgressThrottle::new(config.progress_interval);
        Core {
            config,
            runner,
            journal,
            events,
            active: HashSet::new(),
            unacked,
            throttle,
        }
    }

    /// Hands every action the journal shows as running to [`ActionRunner::adopt`].
    pub(crate) fn adopt_running(&mut self) {
        let running: Vec<(String, Option<Action>, Timestamp)> = self.journal.read(|j| {
            j.running()
                .map(|(id, entry)| (id.to_owned(), entry.action.clone(), entry.accepted_at))
                .collect()
        });
        for (id, action, accepted_at) in running {
            let action = action.unwrap_or_else(|| Action {
                id: id.clone(),
                ..Action::default()
            });
            self.active.insert(id.clone());
            let reporter = Reporter::new(&action, accepted_at, self.events.clone());
            let runner = self.runner.clone();
            let span = action_span(&action);
            span.in_scope(|| {
                tracing::info!("re-adopting an action that was running before the agent restarted")
            });
            tokio::spawn(async move { runner.adopt(action, reporter).await }.instrument(span));
        }
    }

    /// The `Hello` for a new session, and the ids of the final states it carries.
    pub(crate) fn hello(&self) -> (Hello, HashSet<String>) {
        let actions = self.journal.read(Journal::hello_states);
        let finals = actions
            .iter()
            .filter(|state| self.unacked.contains_key(&state.action_id))
            .map(|state| state.action_id.clone())
            .collect();
        (
            Hello {
                node_name: self.config.node_name.clone(),
                version: self.config.version.clone(),
                actions,
                capabilities: self.config.capabilities.clone(),
            },
            finals,
        )
    }

    /// A session was established with `hello`: results that ended after the `Hello` was built
    /// are sent now; those in it count as sent.
    pub(crate) fn on_established(
        &mut self,
        live: &mut Live,
        in_hello: &HashSet<String>,
        now: Instant,
    ) -> Result<(), String> {
        let mut ids: Vec<String> = self.unacked.keys().cloned().collect();
        ids.sort();
        for id in ids {
            if !in_hello.contains(&id) {
                let state = self.unacked[&id].state.clone();
                live.send(result_msg(state), now)?;
            }
            if let Some(entry) = self.unacked.get_mut(&id) {
                entry.sent_at = Some(now);
            }
        }
        Ok(())
    }

    /// Applies one control message. `Err` asks the caller to drop the session.
    pub(crate) async fn on_control(
        &mut self,
        live: &mut Live,
        msg: control_message::Msg,
    ) -> Result<(), String> {
        match msg {
            control_message::Msg::Welcome(_) | control_message::Msg::Heartbeat(_) => Ok(()),
            control_message::Msg::Assign(assign) => match assign.action {
                Some(action) if !action.id.is_empty() => self.on_assign(live, action).await,
                _ => {
                    tracing::warn!("ignoring an Assign without an action id");
                    Ok(())
                }
            },
            control_message::Msg::Cancel(cancel) => {
                if self.active.contains(&cancel.action_id) {
                    let runner = self.runner.clone();
                    let span = tracing::info_span!("action", action.id = %cancel.action_id);
                    span.in_scope(|| tracing::info!(reason = %cancel.reason, "cancelling action"));
                    tokio::spawn(
                        async move { runner.cancel(&cancel.action_id, &cancel.reason).await }
                            .instrument(span),
                    );
                } else {
                    tracing::debug!(action.id = %cancel.action_id, "Cancel for an action not running here");
                }
                Ok(())
            }
            control_message::Msg::ResultAck(ack) => {
                self.unacked.remove(&ack.action_id);
                let id = ack.action_id.clone();
                let now = Timestamp::now();
                if let Err(err) = self.journal.write(move |j| j.ack(&id, now)).await {
                    // The result stays unacknowledged on disk: it is resent after a restart,
                    // and the control plane acknowledges it again.
                    tracing::warn!(action.id = %ack.action_id, "recording ResultAck: {}", chain(&err));
                }
                Ok(())
            }
        }
    }

    async fn on_assign(&mut self, live: &mut Live, action: Action) -> Result<(), String> {
        let id = action.id.clone();
        let journaled = action.clone();
        let now = Timestamp::now();
        let acceptance = match self.journal.write(move |j| j.accept(&journaled, now)).await {
            Ok(acceptance) => acceptance,
            Err(err) => {
                // Never start what is not journaled; dropping the session makes the control
                // plane assign the action again after the reconnect.
                tracing::error!(action.id = %id, "journaling an assigned action: {}", chain(&err));
                return Err(format!("the journal refused action {id:?}"));
            }
        };
        match acceptance {
            Acceptance::New => {
                live.send(accepted(&id, false), Instant::now())?;
                self.start(action, now);
            }
            Acceptance::Known(entry) => {
                tracing::info!(action.id = %id, status = ?entry.status(), "Assign for an action already in the journal; not starting it again");
                live.send(accepted(&id, true), Instant::now())?;
                if let Some(result) = entry.result {
                    live.send(result_msg(result), Instant::now())?;
                } else if self.active.contains(&id)
                    && matches!(action.kind, Some(action::Kind::Archiver(_)))
                {
                    // The control plane sends a running archiver again when its spec changed
                    // (and after every Hello): the runner compares the digests.
                    let runner = self.runner.clone();
                    let span = action_span(&action);
                    tokio::spawn(async move { runner.revise(action).await }.instrument(span));
                }
            }
        }
        Ok(())
    }

    fn start(&mut self, action: Action, accepted_at: Timestamp) {
        self.active.insert(action.id.clone());
        let reporter = Reporter::new(&action, accepted_at, self.events.clone());
        let runner = self.runner.clone();
        let span = action_span(&action);
        span.in_scope(|| tracing::info!(action = ?Redacted(&action), "starting action"));
        tokio::spawn(async move { runner.start(action, reporter).await }.instrument(span));
    }

    /// Applies one reporter event. `Err` asks the caller to drop the session.
    pub(crate) async fn on_event(
        &mut self,
        live: Option<&mut Live>,
        event: ReporterEvent,
    ) -> Result<(), String> {
        match event {
            ReporterEvent::Progress(progress) => {
                if !self.active.contains(&progress.action_id) {
                    return Ok(());
                }
                let now = Instant::now();
                if let (Some(progress), Some(live)) = (self.throttle.offer(progress, now), live) {
                    live.send(agent_message::Msg::Progress(progress), now)?;
                }
                Ok(())
            }
            ReporterEvent::Finished { state, done } => {
                let verdict = self.record_final(live, *state).await;
                let (reply, outcome) = match verdict {
                    Ok(sent) => (Ok(()), sent),
                    Err(err) => (Err(err), Ok(())),
                };
                let _ = done.send(reply);
                outcome
            }
            ReporterEvent::Abandoned { state } => {
                if !self.active.contains(&state.action_id) {
                    return Ok(());
                }
                tracing::error!(action.id = %state.action_id, "the runner dropped the action without a result; reporting it failed");
                match self.record_final(live, *state).await {
                    Ok(sent) => sent,
                    Err(err) => {
                        tracing::error!("journaling the failure: {}", chain(&err));
                        Ok(())
                    }
                }
            }
        }
    }

    /// Journals a final state, then sends it if a session is open. The outer `Err` is the
    /// journal's (nothing was recorded); the inner one asks to drop the session.
    async fn record_final(
        &mut self,
        live: Option<&mut Live>,
        state: ActionState,
    ) -> Result<Result<(), String>, JournalError> {
        let id = state.action_id.clone();
        let journaled = state.clone();
        let now = Timestamp::now();
        let fresh = self
            .journal
            .write(move |j| j.finish(&journaled, now))
            .await?;
        self.active.remove(&id);
        self.throttle.forget(&id);
        if !fresh {
            return Ok(Ok(()));
        }
        tracing::info!(action.id = %id, phase = state.phase, reason = %state.failure_reason, "action finished");
        let now = Instant::now();
        let mut entry = Unacked {
            state,
            sent_at: None,
        };
        let sent = match live {
            Some(live) => {
                let sent = live.send(result_msg(entry.state.clone()), now);
                entry.sent_at = Some(now);
                sent
            }
            None => Ok(()),
        };
        self.unacked.insert(id, entry);
        Ok(sent)
    }

    /// Time-driven work: release held progress, resend unacknowledged results, heartbeat,
    /// and notice a silent control plane. `Err` asks the caller to drop the session.
    pub(crate) fn on_tick(&mut self, live: Option<&mut Live>, now: Instant) -> Result<(), String> {
        let due = self.throttle.due(now);
        let Some(live) = live else {
            return Ok(());
        };
        let silent = now.duration_since(live.last_heard);
        if silent >= live.heartbeat * MISSED_HEARTBEATS {
            return Err(format!(
                "no message from the control plane for {} s",
                silent.as_secs()
            ));
        }
        for progress in due {
            live.send(agent_message::Msg::Progress(progress), now)?;
        }
        let resend = self.config.result_resend_interval;
        let mut ids: Vec<&String> = self
            .unacked
            .iter()
            .filter(|(_, u)| u.sent_at.is_none_or(|at| now.duration_since(at) >= resend))
            .map(|(id, _)| id)
            .collect();
        ids.sort();
        let ids: Vec<String> = ids.into_iter().cloned().collect();
        for id in ids {
            if let Some(entry) = self.unacked.get_mut(&id) {
                tracing::debug!(action.id = %id, "resending an unacknowledged result");
                live.send(result_msg(entry.state.clone()), now)?;
                entry.sent_at = Some(now);
            }
        }
        if now.duration_since(live.last_sent) >= live.heartbeat {
            live.send(
                agent_message::Msg::Heartbeat(Heartbeat {
                    sent_at: Timestamp::now().to_string(),
                }),
                now,
            )?;
        }
        Ok(())
    }

    /// When [`Core::on_tick`] has work next.
    pub(crate) fn next_deadline(&self, live: Option<&Live>) -> Option<Instant> {
        let mut deadline = self.throttle.next_due();
        let mut consider = |at: Instant| {
            deadline = Some(deadline.map_or(at, |d| d.min(at)));
        };
        if let Some(live) = live {
            consider(live.last_sent + live.heartbeat);
            consider(live.last_heard + live.heartbeat * MISSED_HEARTBEATS);
            for entry in self.unacked.values() {
                match entry.sent_at {
                    Some(at) => consider(at + self.config.result_resend_interval),
                    None => consider(Instant::now()),
                }
            }
        }
        deadline
    }
}

fn action_span(action: &Action) -> tracing::Span {
    let span = tracing::info_span!("action", action.id = %action.id, action.name = %action.name);
    crate::telemetry::start_action(&span, &action.id, &action.traceparent);
    span
}

fn accepted(id: &str, already_known: bool) -> agent_message::Msg {
    agent_message::Msg::Accepted(Accepted {
        action_id: id.to_owned(),
        already_known,
    })
}

fn result_msg(state: ActionState) -> agent_message::Msg {
    agent_message::Msg::Result(ResultMsg { state: Some(state) })
}

/// `err: cause: cause` on one line.
pub(crate) fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
