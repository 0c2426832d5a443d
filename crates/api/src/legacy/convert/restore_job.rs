//! RestoreJob → Restore: the backup reference, the volumes to restore into as volume claims, retries.

use k8s_openapi::api::core::v1::PersistentVolumeClaimSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::legacy::convert::{Warning, Warnings, carry_metadata};
use crate::legacy::restore_job::{RestoreJob, RestoreJobPhase};
use crate::restore::{
    BackupRef, PrepareDataConfig, Restore, RestorePhase, RestoreSpec, RestoreStatus,
    RestoreVolumeClaim, VolumeClaimRestorePolicy, VolumeConfig,
};

/// Converts a RestoreJob.
pub fn convert(r: &RestoreJob) -> (Restore, Vec<Warning>) {
    let mut w = Warnings::new("RestoreJob", &r.metadata);
    let spec = &r.spec;
    let mut claims = Vec::new();
    for (i, volume) in spec.target_volumes.iter().enumerate() {
        let Some(pvc) = &volume.persistent_volume_claim else {
            w.add(
                &format!("spec.targetVolumes[{i}]"),
                format!(
                    "volume {} is not a PersistentVolumeClaim; only claims can be restored into",
                    volume.name
                ),
            );
            continue;
        };
        let mount_path = spec
            .target_volume_mounts
            .iter()
            .find(|m| m.name == volume.name)
            .map(|m| m.mount_path.clone());
        if mount_path.is_none() {
            w.add(
                &format!("spec.targetVolumes[{i}]"),
                format!("volume {} has no mount in targetVolumeMounts", volume.name),
            );
        }
        claims.push(RestoreVolumeClaim {
            metadata: ObjectMeta {
                name: Some(pvc.claim_name.clone()),
                ..ObjectMeta::default()
            },
            volume_claim_spec: PersistentVolumeClaimSpec::default(),
            volume_config: VolumeConfig {
                volume_source: None,
                mount_path,
            },
        });
    }
    w.add(
        "spec.target",
        "no equivalent; the new Restore writes into the volume claims and does not scale the workload to 0 and back as RestoreJob did",
    );
    let backoff = spec.on_fail_attempted.map(|a| {
        if !(0..=10).contains(&a) {
            w.add(
                "spec.onFailAttempted",
                format!("{a} is outside backoffLimit's 0..10 and was clamped"),
            );
        }
        a.clamp(0, 10)
    });
    let status = r.status.as_ref().map(|s| {
        if s.expiration.is_some() {
            w.add("status.expiration", "no equivalent for restores");
        }
        if s.failure_reason.as_deref().is_some_and(|f| !f.is_empty()) {
            w.add(
                "status.failureReason",
                "no equivalent field; the new controller reports failures in status.conditions",
            );
        }
        RestoreStatus {
            phase: s.phase.and_then(|p| match p {
                RestoreJobPhase::New => None,
                RestoreJobPhase::InProgressPhy | RestoreJobPhase::InProgressLogic => {
                    Some(RestorePhase::Running)
                }
                RestoreJobPhase::Completed => Some(RestorePhase::Completed),
                RestoreJobPhase::Failed => Some(RestorePhase::Failed),
            }),
            start_timestamp: s.start_timestamp.clone(),
            completion_timestamp: s.completion_timestamp.clone(),
            ..RestoreStatus::default()
        }
    });
    let restore = Restore {
        metadata: carry_metadata(&r.metadata),
        spec: RestoreSpec {
            backup: BackupRef {
                name: spec.backup_job_name.clone(),
                namespace: r
                    .metadata
                    .namespace
                    .clone()
                    .unwrap_or_else(|| "default".to_string()),
                source_target_name: None,
            },
            restore_time: None,
            resources: None,
            prepare_data_config: (!claims.is_empty()).then(|| PrepareDataConfig {
                volume_claims: Some(claims),
                volume_claim_restore_policy: Some(VolumeClaimRestorePolicy::Parallel),
                ..PrepareDataConfig::default()
            }),
            service_account_name: None,
            ready_config: None,
            env: None,
            container_resources: None,
            backoff_limit: backoff,
            parameters: None,
        },
        status,
    };
    (restore, w.into_vec())
}
