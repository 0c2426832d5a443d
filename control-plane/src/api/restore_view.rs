//! Restore CRs as `cairn.api.v1.Restore` messages, and CreateRestoreRequests as Restore objects.

use cairn_api::restore::{Restore, RestorePhase, RestoreStatusAction};
use cairn_proto::api::v1 as pb;

use super::meta::{
    new_metadata, object_meta, parameters, parameters_json, set_text, text, timestamp,
};

/// The API's view of a Restore CR.
pub fn restore(r: &Restore) -> pb::Restore {
    let status = r.status.clone().unwrap_or_default();
    let prepare = r.spec.prepare_data_config.as_ref();
    let claims = prepare
        .and_then(|p| p.volume_claims.as_ref())
        .into_iter()
        .flatten()
        .map(|c| {
            let spec = &c.volume_claim_spec;
            pb::VolumeClaim {
                name: c.metadata.name.clone().unwrap_or_default(),
                storage: spec
                    .resources
                    .as_ref()
                    .and_then(|r| r.requests.as_ref())
                    .and_then(|r| r.get("storage"))
                    .map(|q| q.0.clone())
                    .unwrap_or_default(),
                storage_class_name: spec.storage_class_name.clone().unwrap_or_default(),
                access_modes: spec.access_modes.clone().unwrap_or_default(),
                volume_source: c.volume_config.volume_source.clone().unwrap_or_default(),
                mount_path: c.volume_config.mount_path.clone().unwrap_or_default(),
            }
        })
        .collect();
    let actions: Vec<&RestoreStatusAction> = status
        .actions
        .iter()
        .flat_map(|a| {
            a.prepare_data
                .iter()
                .flatten()
                .chain(a.post_ready.iter().flatten())
        })
        .collect();
    let failure_reason = actions
        .iter()
        .rev()
        .find(|a| text(&a.status) == "Failed")
        .and_then(|a| a.message.clone())
        .or_else(|| {
            status
                .conditions
                .iter()
                .flatten()
                .rev()
                .find(|c| c.status == "False" && !c.message.is_empty())
                .map(|c| c.message.clone())
        })
        .filter(|_| status.phase == Some(RestorePhase::Failed))
        .unwrap_or_default();
    pb::Restore {
        metadata: Some(object_meta(&r.metadata)),
        spec: Some(pb::RestoreSpec {
            backup_name: r.spec.backup.name.clone(),
            backup_namespace: r.spec.backup.namespace.clone(),
            restore_time: r.spec.restore_time.clone().unwrap_or_default(),
            volume_claims: claims,
            volume_claim_restore_policy: text(&prepare.and_then(|p| p.volume_claim_restore_policy)),
            parameters: parameters(&r.spec.parameters),
            source_target_name: r.spec.backup.source_target_name.clone().unwrap_or_default(),
        }),
        status: Some(pb::RestoreStatus {
            phase: text(&status.phase),
            failure_reason,
            start_time: timestamp(&status.start_timestamp),
            completion_time: timestamp(&status.completion_timestamp),
            duration: status.duration.clone().unwrap_or_default(),
            actions: actions.iter().map(|a| action(a)).collect(),
        }),
    }
}

fn action(a: &RestoreStatusAction) -> pb::ActionStatus {
    pb::ActionStatus {
        name: a.name.clone(),
        target_pod_name: String::new(),
        phase: text(&a.status),
        action_type: String::new(),
        failure_reason: a.message.clone().unwrap_or_default(),
        start_time: timestamp(&a.start_time),
        completion_time: timestamp(&a.end_time),
        total_size: String::new(),
    }
}

/// Whether a Restore is in a final phase (its watch ends); `AsDataSource` is one (a data
/// source restore runs nothing itself, ARCHITECTURE.md §K4.6).
pub fn is_final(r: &Restore) -> bool {
    matches!(
        r.status.as_ref().and_then(|s| s.phase),
        Some(RestorePhase::Completed | RestorePhase::Failed | RestorePhase::AsDataSource)
    )
}

/// The Restore object a CreateRestoreRequest asks for, as JSON (checked before it is created).
pub fn new_restore(request: &pb::CreateRestoreRequest) -> serde_json::Value {
    let spec_in = request.spec.clone().unwrap_or_default();
    let mut backup = serde_json::json!({
        "name": spec_in.backup_name,
        "namespace": spec_in.backup_namespace,
    });
    set_text(&mut backup, "sourceTargetName", &spec_in.source_target_name);
    let mut spec = serde_json::json!({ "backup": backup });
    set_text(&mut spec, "restoreTime", &spec_in.restore_time);
    if !spec_in.parameters.is_empty() {
        spec["parameters"] = parameters_json(&spec_in.parameters);
    }
    if !spec_in.volume_claims.is_empty() || !spec_in.volume_claim_restore_policy.is_empty() {
        let claims: Vec<serde_json::Value> = spec_in
            .volume_claims
            .iter()
            .map(|c| {
                let access_modes = if c.access_modes.is_empty() {
                    vec!["ReadWriteOnce".to_owned()]
                } else {
                    c.access_modes.clone()
                };
                let mut claim_spec = serde_json::json!({
                    "accessModes": access_modes,
                    "resources": { "requests": { "storage": c.storage } },
                });
                set_text(&mut claim_spec, "storageClassName", &c.storage_class_name);
                // volumeSource and mountPath sit on the claim itself (KubeBlocks' VolumeConfig
                // is inlined).
                let mut claim = serde_json::json!({
                    "metadata": { "name": c.name },
                    "volumeClaimSpec": claim_spec,
                });
                set_text(&mut claim, "volumeSource", &c.volume_source);
                set_text(&mut claim, "mountPath", &c.mount_path);
                claim
            })
            .collect();
        let mut prepare = serde_json::json!({});
        if !claims.is_empty() {
            prepare["volumeClaims"] = serde_json::Value::Array(claims);
        }
        set_text(
            &mut prepare,
            "volumeClaimRestorePolicy",
            &spec_in.volume_claim_restore_policy,
        );
        spec["prepareDataConfig"] = prepare;
    }
    serde_json::json!({
        "apiVersion": cairn_api::API_VERSION,
        "kind": "Restore",
        "metadata": new_metadata(&request.namespace, &request.name, &request.labels, &request.annotations),
        "spec": spec,
    })
}

/// The request field of a Restore object path.
pub fn request_field(path: &str) -> String {
    let mapped = [
        ("spec.backup.name", "spec.backup_name"),
        ("spec.backup.namespace", "spec.backup_namespace"),
        ("spec.backup.sourceTargetName", "spec.source_target_name"),
        (
            "spec.prepareDataConfig.volumeClaimRestorePolicy",
            "spec.volume_claim_restore_policy",
        ),
    ];
    for (from, to) in mapped {
        if path == from {
            return to.to_owned();
        }
    }
    if let Some(rest) = path.strip_prefix("spec.prepareDataConfig.volumeClaims") {
        let rest = rest
            .replace(".metadata.name", ".name")
            .replace(".volumeClaimSpec.resources.requests.storage", ".storage")
            .replace(".volumeClaimSpec.storageClassName", ".storage_class_name")
            .replace(".volumeClaimSpec.accessModes", ".access_modes")
            .replace(".volumeSource", ".volume_source")
            .replace(".mountPath", ".mount_path");
        return format!("spec.volume_claims{}", super::status::snake_case(&rest));
    }
    super::status::request_field(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_volume_claim_names_its_source_volume_on_the_claim() {
        let request = pb::CreateRestoreRequest {
            namespace: "a".into(),
            name: "r".into(),
            spec: Some(pb::RestoreSpec {
                backup_name: "b".into(),
                backup_namespace: "a".into(),
                volume_claims: vec![pb::VolumeClaim {
                    name: "restored".into(),
                    storage: "1Gi".into(),
                    volume_source: "data".into(),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        };
        let object = new_restore(&request);
        let claim = &object["spec"]["prepareDataConfig"]["volumeClaims"][0];
        assert_eq!(claim["volumeSource"], "data", "{claim}");
        assert!(claim.get("volumeConfig").is_none(), "{claim}");
        let typed: Restore = serde_json::from_value(object).unwrap();
        let shown = restore(&typed);
        let claims = shown.spec.unwrap().volume_claims;
        assert_eq!(claims[0].volume_source, "data");
        assert_eq!(claims[0].storage, "1Gi");
        assert_eq!(
            request_field("spec.prepareDataConfig.volumeClaims[0].volumeSource"),
            "spec.volume_claims[0].volume_source"
        );
    }
}
