//! BackupSchedule CRs as `cairn.api.v1.Schedule` messages, and finding an entry of one.

use cairn_api::backup_schedule::{BackupSchedule, SchedulePolicy};
use cairn_proto::api::v1 as pb;

use super::meta::{object_meta, text, timestamp};

/// The key of an entry in `status.schedules` and in SetScheduleEntryRequest: its name, else its
/// backup method.
pub fn entry_key(entry: &SchedulePolicy) -> &str {
    entry.name.as_deref().unwrap_or(&entry.backup_method)
}

/// The index of the entry `key` names, or the keys there are.
pub fn find_entry(schedule: &BackupSchedule, key: &str) -> Result<usize, Vec<String>> {
    schedule
        .spec
        .schedules
        .iter()
        .position(|e| entry_key(e) == key)
        .ok_or_else(|| {
            schedule
                .spec
                .schedules
                .iter()
                .map(|e| entry_key(e).to_owned())
                .collect()
        })
}

/// The API's view of a BackupSchedule CR.
pub fn schedule(s: &BackupSchedule) -> pb::Schedule {
    let status = s.status.clone().unwrap_or_default();
    let entries = s
        .spec
        .schedules
        .iter()
        .map(|e| {
            let entry_status = status
                .schedules
                .as_ref()
                .and_then(|m| m.get(entry_key(e)))
                .cloned()
                .unwrap_or_default();
            pb::ScheduleEntry {
                name: e.name.clone().unwrap_or_default(),
                backup_method: e.backup_method.clone(),
                cron_expression: e.cron_expression.clone(),
                enabled: e.enabled.unwrap_or(false),
                retention_period: e.retention_period.clone().unwrap_or_default(),
                phase: text(&entry_status.phase),
                failure_reason: entry_status.failure_reason.unwrap_or_default(),
                last_schedule_time: timestamp(&entry_status.last_schedule_time),
                last_successful_time: timestamp(&entry_status.last_successful_time),
            }
        })
        .collect();
    pb::Schedule {
        metadata: Some(object_meta(&s.metadata)),
        backup_policy_name: s.spec.backup_policy_name.clone(),
        entries,
        phase: text(&status.phase),
        failure_reason: status.failure_reason.unwrap_or_default(),
    }
}
