//! Semantic checks of a BackupSchedule: unique schedule names, cron expressions, retention periods
//! (KubeBlocks' messages, semantics §1.4), and methods against the policy when it is known.

use std::collections::HashSet;

use crate::backup_policy::BackupPolicy;
use crate::backup_schedule::BackupSchedule;
use crate::parse;
use crate::validate::problem::{Problem, child, index};

/// Checks a BackupSchedule on its own.
pub fn backup_schedule(s: &BackupSchedule) -> Vec<Problem> {
    let mut out = Vec::new();
    let mut names = HashSet::new();
    for (i, schedule) in s.spec.schedules.iter().enumerate() {
        let path = index("spec.schedules", i);
        let name = schedule
            .name
            .as_deref()
            .filter(|n| !n.is_empty())
            .unwrap_or(&schedule.backup_method);
        if !names.insert(name.to_string()) {
            let field = if schedule.name.as_deref().is_some_and(|n| !n.is_empty()) {
                "name"
            } else {
                "backupMethod"
            };
            out.push(Problem::error(
                child(&path, field),
                format!("schedule name {name} is duplicated"),
            ));
        }
        if let Err(e) = parse::cron::parse(&schedule.cron_expression) {
            out.push(Problem::error(
                child(&path, "cronExpression"),
                e.to_string(),
            ));
        }
        if let Some(r) = &schedule.retention_period
            && let Err(e) = parse::retention::parse(r)
        {
            out.push(Problem::error(
                child(&path, "retentionPeriod"),
                e.to_string(),
            ));
        }
    }
    out
}

/// Checks that every schedule names a method of its BackupPolicy.
pub fn schedule_against_policy(s: &BackupSchedule, policy: &BackupPolicy) -> Vec<Problem> {
    let namespace = policy.metadata.namespace.as_deref().unwrap_or("default");
    let policy_name = policy.metadata.name.as_deref().unwrap_or_default();
    s.spec
        .schedules
        .iter()
        .enumerate()
        .filter(|(_, schedule)| {
            !policy
                .spec
                .backup_methods
                .iter()
                .any(|m| m.name == schedule.backup_method)
        })
        .map(|(i, schedule)| {
            Problem::error(
                child(&index("spec.schedules", i), "backupMethod"),
                format!(
                    "backup method {} is not in backup policy {namespace}/{policy_name}",
                    schedule.backup_method
                ),
            )
        })
        .collect()
}
