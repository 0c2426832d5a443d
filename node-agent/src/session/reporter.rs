//! `Reporter`: how an action runner reports progress and the final outcome of one action.

use cairn_proto::agent::v1::{Action, ActionPhase, ActionState, ObjectRef, Progress};
use jiff::Timestamp;
use tokio::sync::{mpsc, oneshot};

use crate::journal::JournalError;

/// A progress report; the session fills in the action id and the time.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProgressUpdate {
    /// Bytes done so far.
    pub bytes_done: u64,
    /// Bytes in total, 0 when unknown.
    pub bytes_total: u64,
    /// Current rate.
    pub bytes_per_second: u64,
    /// Free text: "uploading", "waiting for job", ...
    pub phase: String,
    /// Archivers: the backup info file's newest content (empty until it exists).
    pub backup_info_json: String,
    /// Archivers: how often the archiver's container has restarted.
    pub restarts: u32,
    /// Archivers: why it last restarted, with the last lines of its log.
    pub last_failure: String,
}

/// How an action ended; the session fills in id, owner and times.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    phase: ActionPhase,
    failure_reason: String,
    bytes_done: u64,
    backup_info_json: String,
    exit_code: i32,
    job_name: String,
}

impl Outcome {
    /// The action succeeded.
    pub fn succeeded() -> Outcome {
        Outcome::new(ActionPhase::Succeeded, String::new())
    }

    /// The action failed because of `reason` (shown in the owner's status).
    pub fn failed(reason: impl Into<String>) -> Outcome {
        Outcome::new(ActionPhase::Failed, reason.into())
    }

    /// The action was cancelled (PROTOCOL.md §2.3.6).
    pub fn cancelled(reason: impl Into<String>) -> Outcome {
        Outcome::new(ActionPhase::Cancelled, reason.into())
    }

    fn new(phase: ActionPhase, failure_reason: String) -> Outcome {
        Outcome {
            phase,
            failure_reason,
            bytes_done: 0,
            backup_info_json: String::new(),
            exit_code: -1,
            job_name: String::new(),
        }
    }

    /// A failure's reason prefixed with `on node <node>: ` (other outcomes unchanged).
    pub fn failed_on_node(mut self, node: &str) -> Outcome {
        if self.phase == ActionPhase::Failed && !node.is_empty() {
            self.failure_reason = format!("on node {node}: {}", self.failure_reason);
        }
        self
    }

    /// The phase's short name (`succeeded`, `failed`, `cancelled`), for metrics.
    pub fn phase_name(&self) -> String {
        self.phase
            .as_str_name()
            .trim_start_matches("ACTION_PHASE_")
            .to_lowercase()
    }

    /// The exit code of an exec action.
    pub fn with_exit_code(mut self, exit_code: i32) -> Outcome {
        self.exit_code = exit_code;
        self
    }

    /// Bytes moved.
    pub fn with_bytes_done(mut self, bytes_done: u64) -> Outcome {
        self.bytes_done = bytes_done;
        self
    }

    /// The JSON the action wrote to `DP_BACKUP_INFO_FILE`, verbatim.
    pub fn with_backup_info_json(mut self, json: impl Into<String>) -> Outcome {
        self.backup_info_json = json.into();
        self
    }

    /// The Job created for a job action.
    pub fn with_job_name(mut self, job_name: impl Into<String>) -> Outcome {
        self.job_name = job_name.into();
        self
    }
}

/// Why [`Reporter::finish`] failed.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The session loop is gone (the agent is shutting down); nothing was recorded, and the
    /// next agent process re-adopts the action from the journal.
    #[error("the agent session has stopped; the result of action {action_id:?} was not recorded")]
    SessionStopped {
        /// The action.
        action_id: String,
    },
    /// The journal could not record the result.
    #[error("recording the result of action {action_id:?} in the journal")]
    Journal {
        /// The action.
        action_id: String,
        /// The cause.
        source: JournalError,
    },
}

/// What reporters tell the session loop.
#[derive(Debug)]
pub(crate) enum ReporterEvent {
    /// A progress report, to be throttled.
    Progress(Progress),
    /// The final state, to be journaled then sent; `done` gets the journal's verdict.
    Finished {
        state: Box<ActionState>,
        done: oneshot::Sender<Result<(), JournalError>>,
    },
    /// A reporter was dropped without `finish` (the runner forgot, or panicked).
    Abandoned { state: Box<ActionState> },
}

/// The handle an [`super::ActionRunner`] gets for one action. Reports go to the control plane
/// through the current session (progress throttled to one per second per action, the newest
/// winning); the final outcome is journaled first and resent until acknowledged.
///
/// Dropping a `Reporter` without calling [`Reporter::finish`] reports the action as failed,
/// so a runner that panics never leaves an action running forever.
#[derive(Debug)]
pub struct Reporter {
    action_id: String,
    owner: Option<ObjectRef>,
    started_at: Timestamp,
    events: mpsc::UnboundedSender<ReporterEvent>,
    finished: bool,
}

impl Reporter {
    pub(crate) fn new(
        action: &Action,
        started_at: Timestamp,
        events: mpsc::UnboundedSender<ReporterEvent>,
    ) -> Reporter {
        Reporter {
            action_id: action.id.clone(),
            owner: action.owner.clone(),
            started_at,
            events,
            finished: false,
        }
    }

    /// The action this reporter belongs to.
    pub fn action_id(&self) -> &str {
        &self.action_id
    }

    /// Reports progress; cheap, never blocks, may be coalesced with later reports.
    pub fn progress(&self, update: ProgressUpdate) {
        let _ = self.events.send(ReporterEvent::Progress(Progress {
            action_id: self.action_id.clone(),
            bytes_done: update.bytes_done,
            bytes_total: update.bytes_total,
            bytes_per_second: update.bytes_per_second,
            phase: update.phase,
            observed_at: Timestamp::now().to_string(),
            backup_info_json: update.backup_info_json,
            restarts: update.restarts,
            last_failure: update.last_failure,
        }));
    }

    /// Reports the final outcome. Returns once it is durable in the journal; it is then sent
    /// to the control plane now or after the next reconnect, and resent until acknowledged.
    pub async fn finish(mut self, outcome: Outcome) -> Result<(), ReportError> {
        self.finished = true;
        let state = self.state(outcome);
        let (done, verdict) = oneshot::channel();
        let stopped = || ReportError::SessionStopped {
            action_id: self.action_id.clone(),
        };
        self.events
            .send(ReporterEvent::Finished {
                state: Box::new(state),
                done,
            })
            .map_err(|_| stopped())?;
        verdict
            .await
            .map_err(|_| stopped())?
            .map_err(|source| ReportError::Journal {
                action_id: self.action_id.clone(),
                source,
            })
    }

    fn state(&self, outcome: Outcome) -> ActionState {
        ActionState {
            action_id: self.action_id.clone(),
            phase: outcome.phase as i32,
            failure_reason: outcome.failure_reason,
            started_at: self.started_at.to_string(),
            finished_at: Timestamp::now().to_string(),
            bytes_done: outcome.bytes_done,
            backup_info_json: outcome.backup_info_json,
            exit_code: outcome.exit_code,
            job_name: outcome.job_name,
            owner: self.owner.clone(),
        }
    }
}

impl Drop for Reporter {
    fn drop(&mut self) {
        if !self.finished {
            let state = self.state(Outcome::failed(
                "the action runner ended without reporting a result",
            ));
            let _ = self.events.send(ReporterEvent::Abandoned {
                state: Box::new(state),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_names_the_node_and_other_outcomes_are_unchanged() {
        let failed = Outcome::failed("the repository PVC cairn-system/pre-check-1 is not bound")
            .failed_on_node("node-a");
        assert_eq!(
            failed.failure_reason,
            "on node node-a: the repository PVC cairn-system/pre-check-1 is not bound"
        );
        assert_eq!(failed.phase, ActionPhase::Failed);
        let succeeded = Outcome::succeeded().failed_on_node("node-a");
        assert_eq!(succeeded.failure_reason, "");
        let cancelled = Outcome::cancelled("cancelled").failed_on_node("node-a");
        assert_eq!(cancelled.failure_reason, "cancelled");
    }
}
