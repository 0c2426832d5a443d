//! `status.progress`: the bytes the agents count for a Backup's running actions, written at most
//! once per `progress_interval` (a field Cairn adds to the Backup status). Agents' progress
//! reports trigger no reconcile: while an action reports, the planner asks to be looked at
//! again after `progress_interval` ([`next_update`]), which is what keeps the status live.

use std::time::Duration;

use cairn_api::backup::{BackupProgress, BackupStatus};
use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::{Observed, elapsed};
use crate::plan::action::ended;
use crate::plan::agent_view::ReportedAction;

/// Sums the agents' byte counts (of running actions and of those that finished in this
/// reconcile) into `status.progress`, at most once per interval.
pub(super) fn update(o: &Observed, status: &mut BackupStatus, running: &[String], now: Timestamp) {
    let reports: Vec<&ReportedAction> = running
        .iter()
        .filter_map(|id| o.agents.action(id))
        .collect();
    // Reports of finished actions are forgotten once acknowledged, so the count never goes
    // back: it is the larger of the previous count and what the agents report now.
    let reported: u64 = reports.iter().map(|r| r.bytes_done).sum();
    let previous_done = status
        .progress
        .as_ref()
        .map(|p| u64::try_from(p.bytes_done).unwrap_or(0))
        .unwrap_or(0);
    let done = reported.max(previous_done);
    let rate: u64 = reports.iter().filter_map(|r| r.bytes_per_second).sum();
    // No report, no total (an empty sum of Options would claim a total of 0).
    let total: Option<u64> = if reports.is_empty() {
        None
    } else {
        reports.iter().map(|r| r.bytes_total).sum()
    };
    let previous = status.progress.clone();
    let fresh = previous
        .as_ref()
        .and_then(|p| p.update_time.as_ref())
        .is_some_and(|t| elapsed(t.0, now) < o.settings.progress_interval);
    // An action that finished in this reconcile brings its final count, which must not be
    // throttled away: the next reconcile no longer sees its report.
    let finishing = running.iter().any(|id| ended(&o.agents, id));
    if (fresh && !finishing) || (reports.is_empty() && previous.is_none()) {
        return;
    }
    let progress = BackupProgress {
        bytes_done: i64::try_from(done).unwrap_or(i64::MAX),
        bytes_total: total.and_then(|t| i64::try_from(t).ok()),
        bytes_per_second: (rate > 0).then(|| i64::try_from(rate).unwrap_or(i64::MAX)),
        eta_seconds: match (total, rate) {
            (Some(total), rate) if rate > 0 && total >= done => {
                i64::try_from((total - done).div_ceil(rate)).ok()
            }
            _ => None,
        },
        update_time: Some(Time(now)),
    };
    let unchanged = previous.as_ref().is_some_and(|p| {
        p.bytes_done == progress.bytes_done
            && p.bytes_total == progress.bytes_total
            && p.bytes_per_second == progress.bytes_per_second
    });
    if !unchanged {
        status.progress = Some(progress);
    }
}

/// When the status should next be looked at for progress: after `progress_interval` while an
/// agent reports on one of the `running` actions, else never (for progress).
pub(super) fn next_update(o: &Observed, running: &[String]) -> Option<Duration> {
    running
        .iter()
        .any(|id| o.agents.action(id).is_some())
        .then_some(o.settings.progress_interval)
}
