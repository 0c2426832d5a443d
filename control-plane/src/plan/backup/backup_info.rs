//! The backup info file (`DP_BACKUP_INFO_FILE`) the backupData action writes: a subset of the
//! Backup status (ARCHITECTURE.md §K2.6), which the agent reads and reports with the result.

use cairn_api::backup::{ActionStatus, BackupStatus};

/// Merges the backup info file (a subset of BackupStatus, §2.6) into the status, as
/// KubeBlocks' sidecar does with a merge patch.
pub fn merge(status: &mut BackupStatus, info: &str) -> Result<(), String> {
    let info: serde_json::Value = serde_json::from_str(info)
        .map_err(|err| format!("the backup info file is not JSON: {err}"))?;
    if !info.is_object() {
        return Err("the backup info file is not a JSON object".into());
    }
    let mut current = serde_json::to_value(&*status).map_err(|err| err.to_string())?;
    // A number is a valid totalSize in scripts' eyes; the API wants a string.
    let mut info = info;
    if let Some(size) = info.get_mut("totalSize")
        && !size.is_string()
    {
        *size = serde_json::Value::String(size.to_string());
    }
    json_patch::merge(&mut current, &info);
    let merged: BackupStatus = serde_json::from_value(current)
        .map_err(|err| format!("the backup info file does not fit the Backup status: {err}"))?;
    // The info file may not move the backup's own bookkeeping.
    let keep = status.clone();
    *status = BackupStatus {
        phase: keep.phase,
        actions: keep.actions,
        path: keep.path,
        backup_method: keep.backup_method,
        backup_repo_name: keep.backup_repo_name,
        start_timestamp: keep.start_timestamp,
        target: keep.target,
        targets: keep.targets,
        conditions: keep.conditions,
        gaps: keep.gaps,
        kopia_repo_path: keep.kopia_repo_path,
        volume_snapshot_copies: keep.volume_snapshot_copies,
        ..merged
    };
    Ok(())
}

/// Records the info file's `totalSize` and `timeRange` in the action's status entry; an info
/// file that is not JSON leaves the entry as it is ([`merge`] reports it).
pub fn record_in_entry(entry: &mut ActionStatus, info: &str) {
    let Ok(info) = serde_json::from_str::<serde_json::Value>(info) else {
        return;
    };
    if let Some(size) = info.get("totalSize") {
        entry.total_size = Some(match size {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        });
    }
    if let Some(range) = info
        .get("timeRange")
        .and_then(|r| serde_json::from_value(r.clone()).ok())
    {
        entry.time_range = Some(range);
    }
}
