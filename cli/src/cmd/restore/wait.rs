//! Following a Restore until it is Completed or Failed: its phase, the stage and action that
//! run, and, when the caller can measure them (standalone mode sees the new volume's
//! directory), the bytes written with rate and ETA.

use cairn_api::restore::{Restore, RestoreActionStatus, RestorePhase};
use jiff::Timestamp;
use kube::api::Api;

use crate::cmd::backup::wait::{Watched, poll_until_done};
use indicatif::HumanBytes;

use crate::progress::{DataWindow, RateMeter, Reporter, Snapshot, Written, format_duration};

pub use crate::cmd::backup::wait::{Outcome, WaitOptions};

/// The phase as written, `New` before the controller wrote one.
pub fn phase_text(restore: &Restore) -> String {
    restore
        .status
        .as_ref()
        .and_then(|s| s.phase)
        .map(|p| format!("{p:?}"))
        .unwrap_or_else(|| "New".into())
}

/// Whether the Restore finished, and how.
pub fn outcome(restore: &Restore) -> Option<Outcome> {
    match restore.status.as_ref()?.phase? {
        RestorePhase::Completed | RestorePhase::AsDataSource => Some(Outcome::Completed),
        RestorePhase::Failed => Some(Outcome::Failed(failure(restore))),
        _ => None,
    }
}

/// The messages of the conditions that are not True and of the failed actions.
pub fn failure(restore: &Restore) -> String {
    let Some(status) = &restore.status else {
        return "no status".into();
    };
    let mut reasons: Vec<String> = status
        .conditions
        .iter()
        .flatten()
        .filter(|c| c.status == "False" && !c.message.is_empty())
        .map(|c| format!("{}: {}", c.type_, c.message))
        .collect();
    let actions = status.actions.clone().unwrap_or_default();
    for action in actions
        .prepare_data
        .iter()
        .chain(actions.post_ready.iter())
        .flatten()
    {
        if action.status == Some(RestoreActionStatus::Failed) {
            reasons.push(format!(
                "{} {}: {}",
                action.name,
                action.object_key,
                action.message.clone().unwrap_or_else(|| "failed".into())
            ));
        }
    }
    if reasons.is_empty() {
        "failed without a reason in its status".into()
    } else {
        reasons.join("; ")
    }
}

/// What one look at a Restore shows; `bytes` is what the caller measured, if anything.
pub fn snapshot(restore: &Restore, now: Timestamp, watching_since: Timestamp) -> Snapshot {
    let name = restore.metadata.name.clone().unwrap_or_default();
    let mut s = Snapshot::phase("Restore", &name, &phase_text(restore));
    let Some(status) = &restore.status else {
        s.elapsed_seconds = seconds_between(watching_since, now);
        s.message = Some("waiting for the controller".into());
        return s;
    };
    let start = status
        .start_timestamp
        .as_ref()
        .map(|t| t.0)
        .unwrap_or(watching_since);
    let end = status
        .completion_timestamp
        .as_ref()
        .map(|t| t.0)
        .unwrap_or(now);
    s.elapsed_seconds = seconds_between(start, end);
    let actions = status.actions.clone().unwrap_or_default();
    let running: Vec<String> = actions
        .prepare_data
        .iter()
        .chain(actions.post_ready.iter())
        .flatten()
        .filter(|a| a.status == Some(RestoreActionStatus::Processing))
        .map(|a| format!("{} {}", a.name, a.object_key))
        .collect();
    if !running.is_empty() {
        s.message = Some(running.join(", "));
    } else if let Some(waiting) = status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.status != "True" && !c.message.is_empty())
    {
        s.message = Some(waiting.message.clone());
    }
    s
}

fn seconds_between(from: Timestamp, to: Timestamp) -> f64 {
    let d = to.duration_since(from).as_secs_f64();
    if d.is_finite() && d > 0.0 { d } else { 0.0 }
}

/// The line printed when a Restore completed; `measured` is how long the caller saw it run,
/// `data` what it saw written and when (the rate is then the data's, after its start-up).
pub fn completed_line(
    restore: &Restore,
    measured: Option<f64>,
    data: Option<(u64, DataWindow)>,
) -> String {
    let namespace = restore.metadata.namespace.clone().unwrap_or_default();
    let name = restore.metadata.name.clone().unwrap_or_default();
    let mut line = format!(
        "Restore {namespace}/{name} of Backup {} {}",
        restore.spec.backup.name,
        phase_text(restore)
    );
    let stamped = restore.status.as_ref().and_then(|status| {
        match (&status.start_timestamp, &status.completion_timestamp) {
            (Some(start), Some(end)) => Some(seconds_between(start.0, end.0)),
            _ => None,
        }
    });
    let seconds = match (stamped, measured) {
        (Some(a), Some(b)) => Some(crate::cmd::backup::wait::shown_seconds(a, b)),
        (a, b) => a.or(b),
    };
    if let Some(seconds) = seconds {
        line.push_str(&format!(" in {}", format_duration(seconds)));
    }
    let claims: Vec<String> = restore
        .spec
        .prepare_data_config
        .as_ref()
        .and_then(|c| c.volume_claims.clone())
        .unwrap_or_default()
        .iter()
        .filter_map(|c| c.metadata.name.clone())
        .collect();
    if !claims.is_empty() {
        line.push_str(&format!(" into PVC {}", claims.join(", ")));
    }
    if let Some((bytes, window)) = data.filter(|(bytes, _)| *bytes > 0) {
        line.push_str(&format!(
            ": {} written in {}",
            HumanBytes(bytes),
            format_duration(window.seconds)
        ));
        if let Some(rate) = window.rate(bytes) {
            line.push_str(&format!(" ({}/s)", HumanBytes(rate)));
        }
        line.push_str(&format!(
            " after {} of start-up",
            format_duration(window.started_after_seconds)
        ));
    }
    line
}

/// A source of "what was written so far" for a Restore (`None` while unknown).
pub type WrittenProbe<'a> = &'a mut (dyn FnMut() -> Option<Written> + Send);

/// Polls the Restore, drawing each look, until it completes (returned with the seconds it was
/// watched), fails (an error with the reasons), disappears or
/// the timeout passes. `started` is when the caller created the Restore: the data's start-up
/// is counted from it.
pub async fn until_done(
    api: &Api<Restore>,
    name: &str,
    reporter: &mut Reporter,
    options: &WaitOptions,
    started: Timestamp,
    mut probe: Option<WrittenProbe<'_>>,
) -> anyhow::Result<(Restore, f64)> {
    let mut meter = RateMeter::new(3.0);
    let watched = Watched {
        kind: "Restore",
        outcome,
        phase_text,
    };
    poll_until_done(
        api,
        name,
        reporter,
        options,
        &watched,
        |restore, seconds| {
            let mut look = snapshot(restore, Timestamp::now(), started);
            if let Some(written) = probe.as_mut().and_then(|p| p()) {
                if written.bytes == 0 {
                    // Still starting up: the rate counts from the first byte.
                    meter = RateMeter::new(3.0);
                }
                look.bytes_done = Some(written.bytes);
                look.bytes_per_second = meter.observe(seconds, written.bytes);
                look.data = DataWindow::of(&written, started);
            }
            look.with_expected_total(options.expected_total)
        },
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn restore(status: serde_json::Value) -> Restore {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "dataprotection.kubeblocks.io/v1alpha1",
            "kind": "Restore",
            "metadata": {"name": "r1", "namespace": "ns"},
            "spec": {
                "backup": {"name": "b1", "namespace": "ns"},
                "prepareDataConfig": {
                    "volumeClaimRestorePolicy": "Parallel",
                    "volumeClaims": [{
                        "metadata": {"name": "data-restored"},
                        "volumeClaimSpec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
                        "volumeSource": "data", "mountPath": "/data"
                    }]
                }
            },
            "status": status,
        }))
        .expect("restore")
    }

    fn at(s: &str) -> Timestamp {
        s.parse().expect("time")
    }

    #[test]
    fn a_running_restore_names_its_running_action() {
        let r = restore(serde_json::json!({
            "phase": "Running",
            "startTimestamp": "2026-01-10T12:00:00Z",
            "actions": {"prepareData": [{
                "name": "prepareData-0", "backupName": "b1",
                "objectKey": "Job/restore-preparedata-1234abcd-b1-0", "status": "Processing"
            }]}
        }));
        let s = snapshot(&r, at("2026-01-10T12:00:02Z"), at("2026-01-10T12:00:01Z"));
        assert_eq!(s.phase, "Running");
        assert_eq!(s.elapsed_seconds, 2.0);
        assert_eq!(
            s.message.as_deref(),
            Some("prepareData-0 Job/restore-preparedata-1234abcd-b1-0")
        );
        assert_eq!(outcome(&r), None);
    }

    #[test]
    fn a_waiting_restore_says_what_it_waits_for() {
        let r = restore(serde_json::json!({
            "conditions": [{"type": "CheckBackupRepo", "status": "Unknown", "reason": "WaitForBackupRepo",
                            "message": "waiting for the repository", "lastTransitionTime": "2026-01-10T12:00:00Z"}]
        }));
        let s = snapshot(&r, at("2026-01-10T12:00:02Z"), at("2026-01-10T12:00:00Z"));
        assert_eq!(s.phase, "New");
        assert_eq!(s.message.as_deref(), Some("waiting for the repository"));
    }

    #[test]
    fn a_failed_restore_gives_the_failed_condition_and_action() {
        let r = restore(serde_json::json!({
            "phase": "Failed",
            "conditions": [{"type": "PrepareData", "status": "False", "reason": "Failed",
                            "message": "restore failed for backup \"b1\"", "lastTransitionTime": "2026-01-10T12:00:00Z"}],
            "actions": {"prepareData": [{
                "name": "prepareData-0", "backupName": "b1", "objectKey": "Job/j", "status": "Failed",
                "message": "exit code 2"
            }]}
        }));
        assert_eq!(
            outcome(&r),
            Some(Outcome::Failed(
                "PrepareData: restore failed for backup \"b1\"; prepareData-0 Job/j: exit code 2"
                    .into()
            ))
        );
    }

    #[test]
    fn the_completed_line_names_backup_duration_and_claims() {
        let r = restore(serde_json::json!({
            "phase": "Completed",
            "startTimestamp": "2026-01-10T12:00:00Z",
            "completionTimestamp": "2026-01-10T12:00:03Z"
        }));
        assert_eq!(outcome(&r), Some(Outcome::Completed));
        assert_eq!(
            completed_line(&r, None, None),
            "Restore ns/r1 of Backup b1 Completed in 3.0s into PVC data-restored"
        );
    }

    #[test]
    fn the_completed_line_gives_the_data_its_own_rate_after_the_start_up() {
        let r = restore(serde_json::json!({
            "phase": "Completed",
            "startTimestamp": "2026-01-10T12:00:00Z",
            "completionTimestamp": "2026-01-10T12:00:02Z"
        }));
        let window = DataWindow {
            started_after_seconds: 1.5,
            seconds: 0.5,
        };
        assert_eq!(
            completed_line(&r, Some(2.3), Some((400 << 20, window))),
            // (The stamps say 2 s: whole seconds; the measured 2.3 s is the one shown.)
            "Restore ns/r1 of Backup b1 Completed in 2.3s into PVC data-restored: \
             400.00 MiB written in 0.5s (800.00 MiB/s) after 1.5s of start-up"
        );
    }

    #[test]
    fn a_look_counts_the_start_up_until_the_first_file_and_the_rate_from_there() {
        let started: Timestamp = "2026-01-10T12:00:00Z".parse().expect("time");
        let at = |s: &str| Some(s.parse::<Timestamp>().expect("time"));
        let nothing_yet = Written::default();
        assert_eq!(DataWindow::of(&nothing_yet, started), None);
        let written = Written {
            bytes: 300 << 20,
            first: at("2026-01-10T12:00:01.200Z"),
            last: at("2026-01-10T12:00:01.700Z"),
        };
        let window = DataWindow::of(&written, started).expect("window");
        assert!(
            (window.started_after_seconds - 1.2).abs() < 1e-9,
            "{window:?}"
        );
        assert!((window.seconds - 0.5).abs() < 1e-9, "{window:?}");
        let mut look = snapshot(&r_running(), started, started);
        look.bytes_done = Some(written.bytes);
        look.data = Some(window);
        let done = crate::cmd::backup::wait::completed_look(look, 2.0);
        assert_eq!(done.bytes_per_second, Some(600 << 20));
        assert_eq!(
            crate::progress::plain_line(&done),
            "Restore r1: Running, 300.00 MiB / 300.00 MiB, 600.00 MiB/s after 1.2s of start-up (2.0s)"
        );
    }

    fn r_running() -> Restore {
        restore(serde_json::json!({"phase": "Running"}))
    }
}
