//! The old data-protection API (KubeBlocks ≤ 0.6, same group and version): BackupTool, RestoreJob and
//! the old shapes of BackupPolicy and Backup, plus their conversion to the new API ([`convert`]).
//!
//! BackupTool and RestoreJob have CRDs (their kind names do not clash with the new API); the old
//! BackupPolicy and Backup share their kind names with the new API and exist only as input to
//! the conversion. [`is_old_backup_policy`] and [`is_old_backup`] tell the shapes apart.

pub mod backup;
pub mod backup_policy;
pub mod backup_tool;
pub mod convert;
pub mod restore_job;
pub mod target;

pub use backup::Backup;
pub use backup_policy::BackupPolicy;
pub use backup_tool::{BackupTool, BackupToolSpec};
pub use restore_job::{RestoreJob, RestoreJobSpec};

use serde_json::Value;

/// Whether a `BackupPolicy` object has the old shape (`spec.retention`, `spec.schedule`,
/// `spec.snapshot`, `spec.datafile` or `spec.logfile`, and no `spec.backupMethods`).
pub fn is_old_backup_policy(object: &Value) -> bool {
    let Some(spec) = object.get("spec").and_then(Value::as_object) else {
        return false;
    };
    !spec.contains_key("backupMethods")
        && ["retention", "schedule", "snapshot", "datafile", "logfile"]
            .iter()
            .any(|k| spec.contains_key(*k))
}

/// Whether a `Backup` object has the old shape (`spec.backupType`, no `spec.backupMethod`).
pub fn is_old_backup(object: &Value) -> bool {
    let Some(spec) = object.get("spec").and_then(Value::as_object) else {
        return false;
    };
    !spec.contains_key("backupMethod") && spec.contains_key("backupType")
}
