//! Backup CRs as `cairn.api.v1.Backup` messages, and CreateBackupRequests as Backup objects.

use cairn_api::backup::{ActionStatus, Backup, BackupPhase, BackupProgress};
use cairn_proto::api::v1 as pb;

use super::meta::{
    new_metadata, object_meta, parameters, parameters_json, set_text, text, timestamp,
};

/// The API's view of a Backup CR.
pub fn backup(b: &Backup) -> pb::Backup {
    let status = b.status.clone().unwrap_or_default();
    pb::Backup {
        metadata: Some(object_meta(&b.metadata)),
        spec: Some(pb::BackupSpec {
            backup_policy_name: b.spec.backup_policy_name.clone(),
            backup_method: b.spec.backup_method.clone(),
            deletion_policy: text(&b.spec.deletion_policy),
            retention_period: b.spec.retention_period.clone().unwrap_or_default(),
            parent_backup_name: b.spec.parent_backup_name.clone().unwrap_or_default(),
            parameters: parameters(&b.spec.parameters),
        }),
        status: Some(pb::BackupStatus {
            phase: text(&status.phase),
            failure_reason: status.failure_reason.unwrap_or_default(),
            backup_repo_name: status.backup_repo_name.unwrap_or_default(),
            path: status.path.unwrap_or_default(),
            total_size: status.total_size.unwrap_or_default(),
            duration: status.duration.unwrap_or_default(),
            start_time: timestamp(&status.start_timestamp),
            completion_time: timestamp(&status.completion_timestamp),
            expiration: timestamp(&status.expiration),
            progress: status.progress.as_ref().map(progress),
            actions: status.actions.iter().flatten().map(action).collect(),
        }),
    }
}

fn progress(p: &BackupProgress) -> pb::BackupProgress {
    pb::BackupProgress {
        bytes_done: p.bytes_done,
        bytes_total: p.bytes_total,
        bytes_per_second: p.bytes_per_second,
        eta_seconds: p.eta_seconds,
        update_time: timestamp(&p.update_time),
    }
}

fn action(a: &ActionStatus) -> pb::ActionStatus {
    pb::ActionStatus {
        name: a.name.clone().unwrap_or_default(),
        target_pod_name: a.target_pod_name.clone().unwrap_or_default(),
        phase: text(&a.phase),
        action_type: text(&a.action_type),
        failure_reason: a.failure_reason.clone().unwrap_or_default(),
        start_time: timestamp(&a.start_timestamp),
        completion_time: timestamp(&a.completion_timestamp),
        total_size: a.total_size.clone().unwrap_or_default(),
    }
}

/// Whether a Backup is in a final phase (its watch ends).
pub fn is_final(b: &Backup) -> bool {
    matches!(
        b.status.as_ref().and_then(|s| s.phase),
        Some(BackupPhase::Completed | BackupPhase::Failed)
    )
}

/// The Backup object a CreateBackupRequest asks for, as JSON (checked before it is created).
pub fn new_backup(request: &pb::CreateBackupRequest) -> serde_json::Value {
    let spec_in = request.spec.clone().unwrap_or_default();
    let mut spec = serde_json::json!({
        "backupPolicyName": spec_in.backup_policy_name,
        "backupMethod": spec_in.backup_method,
    });
    set_text(&mut spec, "deletionPolicy", &spec_in.deletion_policy);
    set_text(&mut spec, "retentionPeriod", &spec_in.retention_period);
    set_text(&mut spec, "parentBackupName", &spec_in.parent_backup_name);
    if !spec_in.parameters.is_empty() {
        spec["parameters"] = parameters_json(&spec_in.parameters);
    }
    serde_json::json!({
        "apiVersion": cairn_api::API_VERSION,
        "kind": "Backup",
        "metadata": new_metadata(&request.namespace, &request.name, &request.labels, &request.annotations),
        "spec": spec,
    })
}
