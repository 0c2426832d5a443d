//! `ActionRunner`: what carries out actions (exec, job, repository work) for the session.

use async_trait::async_trait;
use cairn_proto::agent::v1::Action;

use super::reporter::{Outcome, Reporter};

/// Carries out actions. The session journals an action before calling [`ActionRunner::start`],
/// so a runner never sees the same id started twice, not even across agent restarts.
///
/// Each call runs in its own task inside an `action` span carrying `action.id`.
#[async_trait]
pub trait ActionRunner: Send + Sync + 'static {
    /// Runs `action` (to completion, or by handing it to a task of its own) and reports its
    /// end through `reporter`.
    async fn start(&self, action: Action, reporter: Reporter);

    /// Takes over `action`, which was running when the previous agent process stopped (found
    /// in the journal as accepted and not finished), e.g. by finding its Job by the
    /// `cairn.io/action-id` label. The default reports it failed, which is right for actions
    /// that die with the agent (exec streams, in-process transfers).
    async fn adopt(&self, action: Action, reporter: Reporter) {
        let reason = format!(
            "the agent restarted while action {:?} was running and cannot re-adopt it",
            action.name
        );
        if let Err(err) = reporter.finish(Outcome::failed(reason)).await {
            tracing::error!("reporting an action that cannot be re-adopted: {err}");
        }
    }

    /// An `Assign` arrived for `action`, which runs here already (its id is in the journal, not
    /// finished): an archiver whose spec changed takes the new one (PROTOCOL.md §2.4
    /// `ArchiverAction`). The default ignores it: other actions never change under their id.
    async fn revise(&self, action: Action) {
        let _ = action;
    }

    /// Stops a running action (best effort, PROTOCOL.md §2.3.6); the runner then reports
    /// [`Outcome::cancelled`] through the action's reporter.
    async fn cancel(&self, action_id: &str, reason: &str);
}
