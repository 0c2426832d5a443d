//! Old Backup → Backup: the backup type becomes a method name, `manifests` map onto the new status.

use std::collections::BTreeMap;

use crate::backup::{
    Backup, BackupDeletionPolicy, BackupPhase, BackupSpec, BackupStatus, VolumeSnapshotStatus,
};
use crate::backup_policy::BackupMethod;
use crate::common::BackupTimeRange;
use crate::legacy::backup::{self as old, BackupType};
use crate::legacy::convert::{
    DATAFILE_METHOD, LOGFILE_METHOD, SNAPSHOT_METHOD, Warning, Warnings, carry_metadata,
};

/// The method a converted policy declares for an old backup type.
pub fn method_for(t: BackupType) -> &'static str {
    match t {
        BackupType::Snapshot => SNAPSHOT_METHOD,
        BackupType::Datafile => DATAFILE_METHOD,
        BackupType::Logfile => LOGFILE_METHOD,
    }
}

/// Converts an old Backup.
pub fn convert(b: &old::Backup) -> (Backup, Vec<Warning>) {
    let mut w = Warnings::new("Backup", &b.metadata);
    let backup_type = b.spec.backup_type.unwrap_or(BackupType::Datafile);
    let method = method_for(backup_type);
    let status = b
        .status
        .as_ref()
        .map(|s| convert_status(s, backup_type, method, &mut w));
    let backup = Backup {
        metadata: carry_metadata(&b.metadata),
        spec: BackupSpec {
            backup_policy_name: b.spec.backup_policy_name.clone(),
            backup_method: method.to_string(),
            deletion_policy: Some(BackupDeletionPolicy::Delete),
            retention_period: None,
            parent_backup_name: b.spec.parent_backup_name.clone(),
            parameters: None,
        },
        status,
    };
    (backup, w.into_vec())
}

fn convert_status(
    s: &old::BackupStatus,
    t: BackupType,
    method: &str,
    w: &mut Warnings,
) -> BackupStatus {
    let manifests = s.manifests.as_ref();
    let tool = manifests.and_then(|m| m.backup_tool.as_ref());
    let mut extras = BTreeMap::new();
    if let Some(user) = manifests.and_then(|m| m.user_context.as_ref()) {
        extras.extend(user.clone());
    }
    if let Some(sum) = tool.and_then(|t| t.checksum.clone()) {
        extras.insert("checksum".to_string(), sum);
    }
    if let Some(point) = tool.and_then(|t| t.checkpoint.clone()) {
        extras.insert("checkpoint".to_string(), point);
    }
    if tool.and_then(|t| t.volume_name.as_ref()).is_some() {
        w.add(
            "status.manifests.backupTool.volumeName",
            "no equivalent; the data lives under status.path in the repository",
        );
    }
    let mut total_size = s.total_size.clone();
    if let Some(uploaded) = tool.and_then(|t| t.upload_total_size.clone()) {
        if total_size.is_none() {
            total_size = Some(uploaded);
        } else if total_size.as_ref() != Some(&uploaded) {
            w.add(
                "status.manifests.backupTool.uploadTotalSize",
                "no equivalent besides status.totalSize, which is kept",
            );
        }
    }
    if manifests.and_then(|m| m.target.as_ref()).is_some() {
        w.add(
            "status.manifests.target",
            "no equivalent; the target is recorded in status.target by the new controller",
        );
    }
    if s.source_cluster.is_some() {
        w.add(
            "status.sourceCluster",
            "no equivalent; the cluster is the app.kubernetes.io/instance label",
        );
    }
    if s.available_replicas.is_some() {
        w.add(
            "status.availableReplicas",
            "no equivalent outside status.actions[]",
        );
    }
    let snapshot = manifests.and_then(|m| m.backup_snapshot.as_ref());
    let volume_snapshots = snapshot.map(|snap| {
        vec![VolumeSnapshotStatus {
            name: snap.volume_snapshot_name.clone(),
            content_name: snap.volume_snapshot_content_name.clone(),
            ..VolumeSnapshotStatus::default()
        }]
    });
    let log = manifests.and_then(|m| m.backup_log.as_ref());
    BackupStatus {
        phase: s.phase.map(|p| match p {
            old::BackupPhase::New => BackupPhase::New,
            old::BackupPhase::InProgress | old::BackupPhase::Running => BackupPhase::Running,
            old::BackupPhase::Completed => BackupPhase::Completed,
            old::BackupPhase::Failed => BackupPhase::Failed,
            old::BackupPhase::Deleting => BackupPhase::Deleting,
        }),
        parent_backup_name: s.parent_backup_name.clone(),
        expiration: s.expiration.clone(),
        start_timestamp: s.start_timestamp.clone(),
        completion_timestamp: s.completion_timestamp.clone(),
        duration: s.duration.clone(),
        total_size,
        failure_reason: s.failure_reason.clone(),
        persistent_volume_claim_name: s.persistent_volume_claim_name.clone(),
        path: tool.and_then(|t| t.file_path.clone()),
        time_range: log.map(|l| BackupTimeRange {
            time_zone: None,
            start: l.start_time.clone(),
            end: l.stop_time.clone(),
        }),
        backup_method: Some(BackupMethod {
            name: method.to_string(),
            snapshot_volumes: (t == BackupType::Snapshot).then_some(true),
            action_set_name: s.backup_tool_name.clone(),
            ..BackupMethod::default()
        }),
        volume_snapshots,
        extras: (!extras.is_empty()).then(|| vec![extras]),
        ..BackupStatus::default()
    }
}
