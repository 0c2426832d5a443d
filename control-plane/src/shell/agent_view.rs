//! Turns the agent hub's knowledge into the planners' `AgentView` input.

use std::time::Duration;

use cairn_proto::agent::v1::{ActionPhase, ActionState, Progress};
use jiff::Timestamp;

use crate::dispatch::Snapshot as HubSnapshot;
use crate::plan::{AgentView, NodeState, ReportedAction, ReportedPhase};

/// The planners' view of a hub snapshot.
pub fn from_snapshot(snapshot: HubSnapshot, grace: Duration) -> AgentView {
    let mut view = AgentView {
        grace,
        hub_started: Some(snapshot.started),
        ..Default::default()
    };
    for (node, state) in snapshot.nodes {
        view.nodes.insert(
            node,
            NodeState {
                connected: state.connected,
                since: state.since,
            },
        );
    }
    for (id, state) in &snapshot.reported {
        view.actions.insert(id.clone(), reported(state));
    }
    for (id, progress) in &snapshot.progress {
        let entry = view.actions.entry(id.clone()).or_default();
        apply_progress(entry, progress);
    }
    view
}

fn reported(state: &ActionState) -> ReportedAction {
    let phase = match ActionPhase::try_from(state.phase) {
        Ok(ActionPhase::Running) => Some(ReportedPhase::Running),
        Ok(ActionPhase::Succeeded) => Some(ReportedPhase::Succeeded),
        Ok(ActionPhase::Failed) => Some(ReportedPhase::Failed),
        Ok(ActionPhase::Cancelled) => Some(ReportedPhase::Cancelled),
        Ok(ActionPhase::Unspecified) | Err(_) => None,
    };
    ReportedAction {
        phase,
        failure_reason: state.failure_reason.clone(),
        started_at: state.started_at.parse::<Timestamp>().ok(),
        finished_at: state.finished_at.parse::<Timestamp>().ok(),
        bytes_done: state.bytes_done,
        bytes_total: None,
        bytes_per_second: None,
        backup_info_json: Some(state.backup_info_json.clone()).filter(|s| !s.trim().is_empty()),
        job_name: Some(state.job_name.clone()).filter(|s| !s.is_empty()),
        restarts: 0,
        last_failure: None,
    }
}

fn apply_progress(entry: &mut ReportedAction, progress: &Progress) {
    entry.bytes_done = entry.bytes_done.max(progress.bytes_done);
    entry.bytes_total = (progress.bytes_total > 0).then_some(progress.bytes_total);
    entry.bytes_per_second = Some(progress.bytes_per_second);
    if entry.phase.is_none() {
        entry.phase = Some(ReportedPhase::Running);
    }
    // An archiver's info file as it stands now; a final result's own info wins.
    if entry.phase == Some(ReportedPhase::Running) {
        if !progress.backup_info_json.trim().is_empty() {
            entry.backup_info_json = Some(progress.backup_info_json.clone());
        }
        entry.restarts = progress.restarts;
        entry.last_failure = Some(progress.last_failure.clone()).filter(|f| !f.is_empty());
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn results_and_progress_merge_into_one_report_per_action() {
        let snapshot = HubSnapshot {
            reported: HashMap::from([(
                "a1".to_string(),
                ActionState {
                    action_id: "a1".into(),
                    phase: ActionPhase::Succeeded as i32,
                    backup_info_json: "{\"totalSize\":\"1\"}".into(),
                    finished_at: "2026-11-22T10:00:00Z".into(),
                    ..Default::default()
                },
            )]),
            progress: HashMap::from([(
                "a2".to_string(),
                Progress {
                    action_id: "a2".into(),
                    bytes_done: 10,
                    bytes_total: 0,
                    bytes_per_second: 5,
                    ..Default::default()
                },
            )]),
            ..Default::default()
        };
        let view = from_snapshot(snapshot, Duration::from_secs(60));
        let a1 = view.action("a1").unwrap();
        assert_eq!(a1.phase, Some(ReportedPhase::Succeeded));
        assert_eq!(
            a1.backup_info_json.as_deref(),
            Some("{\"totalSize\":\"1\"}")
        );
        assert!(a1.finished_at.is_some());
        let a2 = view.action("a2").unwrap();
        assert_eq!(a2.phase, Some(ReportedPhase::Running));
        assert_eq!(
            (a2.bytes_done, a2.bytes_total, a2.bytes_per_second),
            (10, None, Some(5))
        );
    }

    #[test]
    fn an_archivers_progress_carries_its_info_file_and_restarts() {
        let progress = |info: &str| Progress {
            action_id: "arch".into(),
            backup_info_json: info.into(),
            restarts: 3,
            last_failure: "Error (exit code 1); last log lines: boom".into(),
            ..Default::default()
        };
        let snapshot = HubSnapshot {
            progress: HashMap::from([("arch".to_string(), progress("{\"totalSize\":\"7\"}"))]),
            ..Default::default()
        };
        let view = from_snapshot(snapshot, Duration::from_secs(60));
        let arch = view.action("arch").unwrap();
        assert_eq!(arch.phase, Some(ReportedPhase::Running));
        assert_eq!(
            arch.backup_info_json.as_deref(),
            Some("{\"totalSize\":\"7\"}")
        );
        assert_eq!(arch.restarts, 3);
        assert_eq!(
            arch.last_failure.as_deref(),
            Some("Error (exit code 1); last log lines: boom")
        );
        // The cancelled archiver's final result wins over its last progress.
        let snapshot = HubSnapshot {
            reported: HashMap::from([(
                "arch".to_string(),
                ActionState {
                    action_id: "arch".into(),
                    phase: ActionPhase::Cancelled as i32,
                    ..Default::default()
                },
            )]),
            progress: HashMap::from([("arch".to_string(), progress("{\"totalSize\":\"8\"}"))]),
            ..Default::default()
        };
        let view = from_snapshot(snapshot, Duration::from_secs(60));
        let arch = view.action("arch").unwrap();
        assert_eq!(arch.phase, Some(ReportedPhase::Cancelled));
        assert_eq!(arch.backup_info_json, None);
    }
}
