//! The agent's session with the control plane (docs/PROTOCOL.md §2): dial over mTLS, `Hello`
//! with everything in flight, run what is assigned exactly once, report progress and results,
//! reconnect with jittered exponential backoff whenever the session ends.
//!
//! # Expected flow
//! 1. [`run`] opens the journal and hands every action it shows as running to
//!    [`ActionRunner::adopt`] (the previous agent process was stopped while they ran).
//! 2. It dials the control plane and sends `Hello` listing running actions and unacknowledged
//!    results; after `Welcome` it sends results that ended since.
//! 3. `Assign`: the action is journaled (fsynced) and answered with `Accepted`, then
//!    [`ActionRunner::start`] runs it. An id already in the journal is answered
//!    `Accepted{already_known}` (plus its `Result` if it ended) and never started again.
//! 4. [`Reporter::progress`] reports go out at most once a second per action (the newest
//!    wins); [`Reporter::finish`] journals the outcome, then sends `Result`, resent every
//!    [`SessionConfig::result_resend_interval`] and after every reconnect until `ResultAck`.
//! 5. Heartbeats go out when nothing else was sent for a heartbeat interval (from `Welcome`);
//!    three intervals without a word from the control plane drop the session.
//! 6. High availability (PROTOCOL.md §2.3.10): the endpoint may list several control planes
//!    separated by commas; every failed dial and every ended session moves to the next one.
//!    A control plane that is not the leader refuses (or ends) the session with `UNAVAILABLE
//!    "not the leader..."`; the agent then retries after a short jittered delay
//!    ([`SessionConfig::leader_retry_delay`]) instead of the growing backoff, so it lands on
//!    the leader within a second or two of the leader being elected.
//!
//! # Guarantees
//! - At most once per id, across reconnects and agent restarts (the journal is written
//!   before an action starts).
//! - Results are at least once: journaled before sending, resent until acknowledged.
//! - Progress is lossy: reports made while disconnected are dropped.

mod connection;
mod core;
mod reporter;
mod runner;
pub mod throttle;

use std::collections::HashSet;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::Instrument;

pub use self::connection::ConnectError;
use self::connection::{Established, establish};
use self::core::{Core, Live, SharedJournal, chain};
pub use self::reporter::{Outcome, ProgressUpdate, ReportError, Reporter};
pub use self::runner::ActionRunner;
use crate::journal::{Journal, JournalError};
use crate::tls::{ClientTlsError, Dial};
pub use cairn_proto::redact::Redacted;

/// Capabilities this agent announces in `Hello` unless configured otherwise.
pub const DEFAULT_CAPABILITIES: [&str; 5] =
    ["exec", "job", "repo-check", "delete-path", "put-object"];

/// How the session behaves.
#[derive(Clone, Debug)]
pub struct SessionConfig {
    /// The node this agent runs on; must match the node in its certificate.
    pub node_name: String,
    /// Where the control plane is and the TLS material to reach it.
    pub dial: Dial,
    /// The agent's state directory (the journal lives in `<state_dir>/journal`).
    pub state_dir: PathBuf,
    /// The agent's version, sent in `Hello`.
    pub version: String,
    /// Capabilities announced in `Hello`.
    pub capabilities: Vec<String>,
    /// How long to wait for `Welcome` after `Hello`.
    pub welcome_timeout: Duration,
    /// Limit for one whole dial (TCP, TLS, HTTP/2, `Hello`, `Welcome`): a frozen control
    /// plane accepts TCP connections in its kernel but never completes a handshake.
    pub dial_timeout: Duration,
    /// First reconnect delay (jittered, doubling up to `reconnect_max_delay`).
    pub reconnect_min_delay: Duration,
    /// Longest reconnect delay.
    pub reconnect_max_delay: Duration,
    /// How often an unacknowledged result is resent within one session.
    pub result_resend_interval: Duration,
    /// Minimum spacing of progress reports per action.
    pub progress_interval: Duration,
    /// Base delay before retrying after a control plane said it is not the leader; the
    /// actual delay is between one and two times this.
    pub leader_retry_delay: Duration,
    /// Where the session says whether it is connected (the agent's `/readyz`).
    pub vitals: crate::health::Vitals,
}

impl SessionConfig {
    /// Defaults: 10 s Welcome timeout, reconnect 0.5 s doubling to 30 s, results resent every
    /// 30 s, progress at most once a second.
    pub fn new(node_name: impl Into<String>, dial: Dial, state_dir: impl Into<PathBuf>) -> Self {
        SessionConfig {
            node_name: node_name.into(),
            dial,
            state_dir: state_dir.into(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            capabilities: DEFAULT_CAPABILITIES
                .iter()
                .map(|c| (*c).to_owned())
                .collect(),
            welcome_timeout: Duration::from_secs(10),
            dial_timeout: Duration::from_secs(5),
            reconnect_min_delay: Duration::from_millis(500),
            reconnect_max_delay: Duration::from_secs(30),
            result_resend_interval: Duration::from_secs(30),
            progress_interval: Duration::from_secs(1),
            leader_retry_delay: Duration::from_millis(200),
            vitals: crate::health::Vitals::default(),
        }
    }

    /// The control planes to try in turn (the endpoint split at commas).
    fn endpoints(&self) -> Vec<String> {
        let endpoints: Vec<String> = self
            .dial
            .endpoint
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(str::to_owned)
            .collect();
        if endpoints.is_empty() {
            vec![self.dial.endpoint.clone()]
        } else {
            endpoints
        }
    }

    /// The short jittered delay after a "not the leader" answer.
    fn leader_retry(&self) -> Duration {
        let base = self.leader_retry_delay;
        let jitter_ms = u64::try_from(base.as_millis()).unwrap_or(u64::MAX).max(1);
        base + Duration::from_millis(rand::random_range(0..jitter_ms))
    }

    fn backoff(&self) -> impl Iterator<Item = Duration> + use<> {
        ExponentialBuilder::default()
            .with_min_delay(self.reconnect_min_delay)
            .with_max_delay(self.reconnect_max_delay)
            .with_factor(2.0)
            .with_jitter()
            .without_max_times()
            .build()
    }
}

/// Why the session could not run at all (everything after start-up is retried instead).
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The journal could not be opened.
    #[error("opening the journal")]
    Journal(#[source] JournalError),
    /// The control plane's address is not one the agent may dial (not `https://`).
    #[error(transparent)]
    Endpoint(ClientTlsError),
}

type Dialling = JoinHandle<Result<(Established, HashSet<String>), ConnectError>>;

/// Runs the agent's session until `shutdown` completes; see the module documentation. Returns
/// at once, without dialling, if the endpoint is not `https://` ([`SessionError::Endpoint`]).
pub async fn run(
    config: SessionConfig,
    runner: Arc<dyn ActionRunner>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), SessionError> {
    let span = tracing::info_span!("agent_session", agent.node = %config.node_name);
    run_session(config, runner, shutdown).instrument(span).await
}

async fn run_session(
    config: SessionConfig,
    runner: Arc<dyn ActionRunner>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), SessionError> {
    config.dial.check().map_err(SessionError::Endpoint)?;
    let state_dir = config.state_dir.clone();
    let journal = tokio::task::spawn_blocking(move || Journal::open(&state_dir))
        .await
        .map_err(|_| SessionError::Journal(JournalError::Unavailable))?
        .map_err(SessionError::Journal)?;
    let journal = SharedJournal::new(journal);
    let (events_tx, mut events) = mpsc::unbounded_channel();
    let mut core = Core::new(config.clone(), runner, journal, events_tx);
    core.adopt_running();

    let mut backoff = config.backoff();
    let endpoints = config.endpoints();
    let mut next_endpoint = 0usize;
    let mut live: Option<Live> = None;
    let mut dialling: Option<Dialling> = None;
    let mut redial_at = Some(Instant::now());
    tokio::pin!(shutdown);

    loop {
        if live.is_none() && dialling.is_none() && redial_at.is_some_and(|at| at <= Instant::now())
        {
            redial_at = None;
            let endpoint = &endpoints[next_endpoint % endpoints.len()];
            dialling = Some(spawn_dial(&config, endpoint, &core));
        }
        let deadline = [core.next_deadline(live.as_ref()), redial_at]
            .into_iter()
            .flatten()
            .min();
        let mut stepped_down = false;
        let drop_reason: Option<String> = tokio::select! {
            () = &mut shutdown => break,
            Some(event) = events.recv() => core.on_event(live.as_mut(), event).await.err(),
            joined = dialled(&mut dialling) => {
                dialling = None;
                match joined {
                    Ok(Ok((established, in_hello))) => {
                        let now = Instant::now();
                        let mut session = Live::new(established, now);
                        tracing::info!(session.id = %session.session_id, "connected to the control plane");
                        backoff = config.backoff();
                        let outcome = core.on_established(&mut session, &in_hello, now);
                        live = Some(session);
                        config.vitals.set_connected(true);
                        outcome.err()
                    }
                    Ok(Err(err)) => {
                        next_endpoint = next_endpoint.wrapping_add(1);
                        let delay = if is_not_leader(&err) {
                            // A live control plane that is not the leader: an election is under
                            // way or the other replica leads. Retry promptly.
                            backoff = config.backoff();
                            let delay = config.leader_retry();
                            tracing::info!(retry_in_ms = delay.as_millis() as u64, "the control plane is not the leader: {}", chain(&err));
                            delay
                        } else {
                            let delay = backoff.next().unwrap_or(config.reconnect_max_delay);
                            tracing::warn!(retry_in_ms = delay.as_millis() as u64, "connecting to the control plane failed: {}", chain(&err));
                            delay
                        };
                        redial_at = Some(Instant::now() + delay);
                        None
                    }
                    Err(join_err) => {
                        let delay = backoff.next().unwrap_or(config.reconnect_max_delay);
                        tracing::error!("the dial task failed: {join_err}");
                        redial_at = Some(Instant::now() + delay);
                        None
                    }
                }
            }
            message = next_control(&mut live) => match (message, live.as_mut()) {
                (Ok(Some(message)), Some(session)) => {
                    session.heard(Instant::now());
                    match message.msg {
                        Some(msg) => core.on_control(session, msg).await.err(),
                        // A message kind this version does not know: ignore it.
                        None => None,
                    }
                }
                (Ok(None), _) => Some("the control plane closed the session".to_owned()),
                (Err(status), _) => {
                    stepped_down = is_not_leader_status(status.code(), status.message());
                    Some(format!("the session ended: {:?}: {}", status.code(), status.message()))
                }
                (Ok(Some(_)), None) => None,
            },
            () = sleep_until(deadline) => core.on_tick(live.as_mut(), Instant::now()).err(),
        };
        if let Some(reason) = drop_reason
            && live.take().is_some()
        {
            config.vitals.set_connected(false);
            next_endpoint = next_endpoint.wrapping_add(1);
            let delay = if stepped_down {
                backoff = config.backoff();
                config.leader_retry()
            } else {
                backoff.next().unwrap_or(config.reconnect_max_delay)
            };
            tracing::warn!(
                retry_in_ms = delay.as_millis() as u64,
                "disconnected from the control plane: {reason}"
            );
            redial_at = Some(Instant::now() + delay);
        }
    }
    if let Some(dial) = dialling {
        dial.abort();
    }
    config.vitals.set_connected(false);
    tracing::info!("agent session stopped");
    Ok(())
}

/// How a control plane that does not hold the leader Lease starts its refusal
/// (PROTOCOL.md §2.3.10).
const NOT_LEADER: &str = "not the leader";

fn is_not_leader_status(code: tonic::Code, message: &str) -> bool {
    code == tonic::Code::Unavailable && message.starts_with(NOT_LEADER)
}

fn is_not_leader(err: &ConnectError) -> bool {
    matches!(err, ConnectError::Refused { code, message } if is_not_leader_status(*code, message))
}

fn spawn_dial(config: &SessionConfig, endpoint: &str, core: &Core) -> Dialling {
    let (hello, in_hello) = core.hello();
    let mut dial = config.dial.clone();
    endpoint.clone_into(&mut dial.endpoint);
    let timeout = config.welcome_timeout;
    let dial_timeout = config.dial_timeout;
    tracing::debug!(endpoint = %dial.endpoint, actions = hello.actions.len(), "dialling the control plane");
    tokio::spawn(
        async move {
            tokio::time::timeout(dial_timeout, establish(&dial, hello, timeout))
                .await
                .map_err(|_| ConnectError::NoWelcome {
                    seconds: dial_timeout.as_secs(),
                })?
                .map(|established| (established, in_hello))
        }
        .in_current_span(),
    )
}

async fn dialled(
    dialling: &mut Option<Dialling>,
) -> Result<Result<(Established, HashSet<String>), ConnectError>, tokio::task::JoinError> {
    match dialling {
        Some(handle) => handle.await,
        None => std::future::pending().await,
    }
}

async fn next_control(
    live: &mut Option<Live>,
) -> Result<Option<cairn_proto::agent::v1::ControlMessage>, tonic::Status> {
    match live {
        Some(session) => session.inbound.message().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod leader_tests {
    use super::*;

    #[test]
    fn only_unavailable_not_the_leader_answers_count_as_a_follower() {
        assert!(is_not_leader(&ConnectError::Refused {
            code: tonic::Code::Unavailable,
            message: "not the leader; the leader is \"cp-0\"".into(),
        }));
        assert!(is_not_leader_status(
            tonic::Code::Unavailable,
            "not the leader: this replica lost the leader lease; reconnect to the leader"
        ));
        assert!(!is_not_leader_status(
            tonic::Code::Unavailable,
            "the control plane is shutting down"
        ));
        assert!(!is_not_leader_status(
            tonic::Code::PermissionDenied,
            "not the leader"
        ));
    }
}
