//! Semantic checks of a Backup: retention period, status formats (time zone, durations, sizes), and
//! the method against its BackupPolicy when it is known.

use crate::backup::{Backup, BackupStatus};
use crate::backup_policy::BackupPolicy;
use crate::common::BackupTimeRange;
use crate::parse;
use crate::validate::problem::{Problem, child, index};

/// Checks a Backup on its own.
pub fn backup(b: &Backup) -> Vec<Problem> {
    let mut out = Vec::new();
    if let Some(r) = &b.spec.retention_period
        && let Err(e) = parse::retention::parse(r)
    {
        out.push(Problem::error("spec.retentionPeriod", e.to_string()));
    }
    if let Some(status) = &b.status {
        out.extend(backup_status(status));
    }
    out
}

fn backup_status(s: &BackupStatus) -> Vec<Problem> {
    let mut out = Vec::new();
    if let Some(d) = &s.duration
        && let Err(e) = parse::duration::parse(d)
    {
        out.push(Problem::error("status.duration", e.to_string()));
    }
    if let Some(size) = &s.total_size
        && let Err(e) = parse::quantity::parse_bytes(size)
    {
        out.push(Problem::error("status.totalSize", e.to_string()));
    }
    if let Some(tr) = &s.time_range {
        out.extend(time_range(tr, "status.timeRange"));
    }
    for (i, action) in s.actions.iter().flatten().enumerate() {
        let path = index("status.actions", i);
        if let Some(tr) = &action.time_range {
            out.extend(time_range(tr, &child(&path, "timeRange")));
        }
        if let Some(size) = &action.total_size
            && let Err(e) = parse::quantity::parse_bytes(size)
        {
            out.push(Problem::error(child(&path, "totalSize"), e.to_string()));
        }
    }
    out
}

/// Checks a time range: a valid zone offset and start not after end.
pub fn time_range(tr: &BackupTimeRange, path: &str) -> Vec<Problem> {
    let mut out = Vec::new();
    if let Some(zone) = &tr.time_zone
        && let Err(e) = parse::time_zone::parse(zone)
    {
        out.push(Problem::error(child(path, "timeZone"), e.to_string()));
    }
    if let (Some(start), Some(end)) = (&tr.start, &tr.end)
        && start.0 > end.0
    {
        out.push(Problem::error(
            child(path, "end"),
            format!("end {} is before start {}", end.0, start.0),
        ));
    }
    out
}

/// Checks that the Backup's method exists in its BackupPolicy (KubeBlocks: `backupMethod: <m> not found`).
pub fn backup_against_policy(b: &Backup, policy: &BackupPolicy) -> Vec<Problem> {
    if policy
        .spec
        .backup_methods
        .iter()
        .any(|m| m.name == b.spec.backup_method)
    {
        return Vec::new();
    }
    vec![Problem::error(
        "spec.backupMethod",
        format!("backupMethod: {} not found", b.spec.backup_method),
    )]
}
