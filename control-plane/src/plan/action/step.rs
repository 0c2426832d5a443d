//! Where one action stands, read from the agents' reports: the one `match` on the reported
//! phase every planner shares.

use std::time::Duration;

use jiff::Timestamp;

use crate::plan::agent_view::{AgentView, ReportedAction, ReportedPhase};

/// Where an action stands in this reconcile, from its agent's newest report and the state of
/// the node it runs on.
///
/// A terminal report always wins over a lost node: an agent that reported an end before it
/// went away did finish the action.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Step<'r> {
    /// No report (or one without a phase), and the node is not lost: hand it (again) to the
    /// agent. Dispatch is idempotent by action id, so dispatching twice is harmless.
    NotDispatched,
    /// The agent reports the action running.
    Running(&'r ReportedAction),
    /// The agent reports the action succeeded.
    Succeeded(&'r ReportedAction),
    /// The agent reports the action failed or cancelled.
    Failed(&'r ReportedAction),
    /// No end was reported and the node's agent has been gone longer than the grace period:
    /// the action's outcome is unknown.
    NodeLost { lost_for: Duration },
}

/// Where the action `id` stands. `node` is the node it runs on, when the action is tied to one;
/// with `None` (an action any connected agent may run) the node is never lost.
pub fn step<'r>(agents: &'r AgentView, id: &str, node: Option<&str>, now: Timestamp) -> Step<'r> {
    let reported = reported(agents, id);
    if reported.ended() {
        return reported;
    }
    match node.and_then(|n| agents.node_lost(n, now)) {
        Some(lost_for) => Step::NodeLost { lost_for },
        None => reported,
    }
}

/// The step the report alone says, whatever the node.
fn reported<'r>(agents: &'r AgentView, id: &str) -> Step<'r> {
    let Some(report) = agents.action(id) else {
        return Step::NotDispatched;
    };
    match report.phase {
        None => Step::NotDispatched,
        Some(ReportedPhase::Running) => Step::Running(report),
        Some(ReportedPhase::Succeeded) => Step::Succeeded(report),
        Some(ReportedPhase::Failed | ReportedPhase::Cancelled) => Step::Failed(report),
    }
}

/// Whether the agent reported an end (success, failure or cancellation) for `id`: its result
/// is to be acknowledged.
pub fn ended(agents: &AgentView, id: &str) -> bool {
    reported(agents, id).ended()
}

impl Step<'_> {
    /// Whether the agent reported an end.
    pub fn ended(&self) -> bool {
        matches!(self, Step::Succeeded(_) | Step::Failed(_))
    }
}

/// The failure reason the agent reported, or `default` when it gave none.
pub fn failure_reason(report: &ReportedAction, default: &str) -> String {
    if report.failure_reason.is_empty() {
        default.to_string()
    } else {
        report.failure_reason.clone()
    }
}

/// `agent on node "<node>" has been disconnected for <duration>`: the start of every message
/// about a lost node.
pub fn lost_message(node: &str, lost_for: Duration) -> String {
    format!(
        "agent on node \"{node}\" has been disconnected for {}",
        crate::plan::time::go_duration_text(lost_for)
    )
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::plan::agent_view::NodeState;

    const GRACE: Duration = Duration::from_secs(300);

    fn t0() -> Timestamp {
        "2026-11-22T10:00:00Z".parse().unwrap()
    }

    fn at(secs: i64) -> Timestamp {
        t0().checked_add(jiff::SignedDuration::from_secs(secs))
            .unwrap()
    }

    /// An agent view with node "a" in the given state since `t0`, and the action "x" reported
    /// in `phase` (no report when `None`).
    fn view(connected: bool, phase: Option<Option<ReportedPhase>>) -> AgentView {
        let mut view = AgentView {
            nodes: BTreeMap::from([(
                "a".to_string(),
                NodeState {
                    connected,
                    since: t0(),
                },
            )]),
            grace: GRACE,
            hub_started: Some(t0()),
            ..Default::default()
        };
        if let Some(phase) = phase {
            view.actions.insert(
                "x".into(),
                ReportedAction {
                    phase,
                    failure_reason: "disk full".into(),
                    ..Default::default()
                },
            );
        }
        view
    }

    /// The step's name, to compare without the report it borrows.
    fn name(step: Step<'_>) -> &'static str {
        match step {
            Step::NotDispatched => "NotDispatched",
            Step::Running(_) => "Running",
            Step::Succeeded(_) => "Succeeded",
            Step::Failed(_) => "Failed",
            Step::NodeLost { .. } => "NodeLost",
        }
    }

    /// (report, node connected, node given, when, expected step).
    type Row = (
        Option<Option<ReportedPhase>>,
        bool,
        bool,
        Timestamp,
        &'static str,
    );

    #[test]
    fn every_report_and_node_state_gives_one_step() {
        use ReportedPhase::*;
        let lost = at(301);
        let within_grace = at(299);
        // (report, node connected, node given, when) -> step
        let table: &[Row] = &[
            // Connected node: the report decides.
            (None, true, true, lost, "NotDispatched"),
            (Some(None), true, true, lost, "NotDispatched"),
            (Some(Some(Running)), true, true, lost, "Running"),
            (Some(Some(Succeeded)), true, true, lost, "Succeeded"),
            (Some(Some(Failed)), true, true, lost, "Failed"),
            (Some(Some(Cancelled)), true, true, lost, "Failed"),
            // Disconnected within the grace period: as if connected.
            (None, false, true, within_grace, "NotDispatched"),
            (Some(Some(Running)), false, true, within_grace, "Running"),
            // Disconnected past the grace period: lost, unless an end was reported.
            (None, false, true, lost, "NodeLost"),
            (Some(None), false, true, lost, "NodeLost"),
            (Some(Some(Running)), false, true, lost, "NodeLost"),
            (Some(Some(Succeeded)), false, true, lost, "Succeeded"),
            (Some(Some(Failed)), false, true, lost, "Failed"),
            (Some(Some(Cancelled)), false, true, lost, "Failed"),
            // No node given (any agent may run it): never lost.
            (None, false, false, lost, "NotDispatched"),
            (Some(Some(Running)), false, false, lost, "Running"),
            (Some(Some(Succeeded)), false, false, lost, "Succeeded"),
            (Some(Some(Cancelled)), false, false, lost, "Failed"),
        ];
        for (report, connected, with_node, now, expected) in table {
            let agents = view(*connected, *report);
            let node = with_node.then_some("a");
            let got = step(&agents, "x", node, *now);
            assert_eq!(
                name(got),
                *expected,
                "report {report:?}, connected {connected}, node {node:?}, at {now}"
            );
            assert_eq!(got.ended(), matches!(*expected, "Succeeded" | "Failed"));
            assert_eq!(
                ended(&agents, "x"),
                matches!(*expected, "Succeeded" | "Failed")
            );
        }
    }

    #[test]
    fn a_node_that_never_connected_is_lost_a_grace_period_after_the_hub_started() {
        let agents = view(true, None);
        assert_eq!(
            name(step(&agents, "x", Some("b"), at(299))),
            "NotDispatched"
        );
        assert_eq!(
            step(&agents, "x", Some("b"), at(301)),
            Step::NodeLost {
                lost_for: Duration::from_secs(301)
            }
        );
    }

    #[test]
    fn the_steps_carry_the_report_the_agent_sent() {
        let agents = view(true, Some(Some(ReportedPhase::Failed)));
        let Step::Failed(report) = step(&agents, "x", Some("a"), t0()) else {
            panic!("expected Failed");
        };
        assert_eq!(failure_reason(report, "the action failed"), "disk full");
        let silent = ReportedAction::default();
        assert_eq!(
            failure_reason(&silent, "the action failed"),
            "the action failed"
        );
    }

    #[test]
    fn the_lost_message_names_the_node_and_how_long_it_is_gone() {
        assert_eq!(
            lost_message("a", Duration::from_secs(305)),
            "agent on node \"a\" has been disconnected for 5m5s"
        );
    }
}
