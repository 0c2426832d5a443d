//! The objects a Mount repository needs (ARCHITECTURE.md §K5.3 steps 4, 5 and 9): the CSI
//! driver Secret (in the control plane's namespace) and the StorageClass rendered from the
//! provider, the PVC template check, and the repository PVC in every namespace where a Backup or
//! Restore waits for it. In standalone mode localkube's local-path provisioner binds the PVCs.
//!
//! # Caveats
//! - KubeBlocks patches the CSI Secret in place when the digest changes; Cairn deletes it and
//!   creates it again on the next reconcile (the IO shell only creates objects).
//! - The StorageClass and the repository PVCs are created once and never updated, as in
//!   KubeBlocks.

use cairn_api::well_known;
use cairn_api::well_known::conditions::backup_repo::{
    REASON_PREPARE_CSI_SECRET_FAILED, REASON_PREPARE_STORAGE_CLASS_FAILED,
};
use std::collections::{BTreeMap, BTreeSet};

use cairn_api::backup_repo::{AccessMethod, BackupRepoStatus, PersistentVolumeReclaimPolicy};
use cairn_api::restore::RestorePhase;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{
    PersistentVolumeClaim, PersistentVolumeClaimSpec, Secret, SecretReference,
    VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::{Observed, Resolved, blank, holds_repo, names, owner_reference, waits_for_preparation};
use crate::plan::intent::Intent;
use crate::repo::access;

/// Step 4 for Mount: the CSI Secret and the StorageClass, named once in the status.
pub(super) fn storage_class(
    o: &Observed,
    resolved: &mut Resolved<'_>,
    status: &mut BackupRepoStatus,
    intents: &mut Vec<Intent>,
) -> Result<(), (&'static str, String)> {
    let repo = &o.repo;
    let provider = resolved.provider;
    if !blank(&provider.csi_driver_secret_template) {
        let reference = status
            .generated_csi_driver_secret
            .clone()
            .unwrap_or_else(|| SecretReference {
                name: Some(names::derived_name(repo, "secret")),
                namespace: Some(o.settings.namespace.clone()),
            });
        status.generated_csi_driver_secret = Some(reference.clone());
        resolved.csi_secret = Some(reference.clone());
        let data = access::csi_secret_data(provider, &resolved.context())
            .map_err(|err| (REASON_PREPARE_CSI_SECRET_FAILED, err.chain()))?
            .unwrap_or_default();
        match o.derived.csi_secret_digest.as_deref() {
            None => intents.push(Intent::Create {
                object: csi_secret(o, resolved, &reference, data)
                    .map_err(|err| (REASON_PREPARE_CSI_SECRET_FAILED, err))?,
            }),
            Some(digest) if digest != resolved.digest => intents.push(Intent::Delete {
                api_version: "v1".into(),
                kind: "Secret".into(),
                namespace: reference.namespace.clone(),
                name: reference.name.clone().unwrap_or_default(),
            }),
            Some(_) => {}
        }
    }
    if !blank(&provider.storage_class_template) {
        let name = status
            .generated_storage_class_name
            .clone()
            .unwrap_or_else(|| names::derived_name(repo, "sc"));
        status.generated_storage_class_name = Some(name.clone());
        resolved.storage_class = Some(name.clone());
        if !o.derived.storage_class {
            let mut class = access::storage_class(provider, &resolved.context())
                .map_err(|err| (REASON_PREPARE_STORAGE_CLASS_FAILED, err.chain()))?
                .unwrap_or_default();
            class.metadata = ObjectMeta {
                name: Some(name),
                labels: Some(repo_label(o)),
                owner_references: Some(vec![owner_reference(repo)]),
                ..Default::default()
            };
            class.volume_binding_mode = Some("Immediate".into());
            class.reclaim_policy = Some(
                match repo.spec.pv_reclaim_policy {
                    PersistentVolumeReclaimPolicy::Delete => "Delete",
                    PersistentVolumeReclaimPolicy::Retain => "Retain",
                }
                .into(),
            );
            let object = serde_json::to_value(&class).map_err(|err| {
                (
                    REASON_PREPARE_STORAGE_CLASS_FAILED,
                    format!("failed to build the storage class: {err}"),
                )
            })?;
            intents.push(Intent::Create { object });
        }
    }
    Ok(())
}

fn csi_secret(
    o: &Observed,
    resolved: &Resolved<'_>,
    reference: &SecretReference,
    data: BTreeMap<String, String>,
) -> Result<serde_json::Value, String> {
    let secret = Secret {
        metadata: ObjectMeta {
            name: reference.name.clone(),
            namespace: reference.namespace.clone(),
            labels: Some(repo_label(o)),
            annotations: Some(BTreeMap::from([(
                well_known::annotation::BACKUP_REPO_DIGEST.into(),
                resolved.digest.clone(),
            )])),
            owner_references: Some(vec![owner_reference(&o.repo)]),
            ..Default::default()
        },
        data: Some(
            data.into_iter()
                .map(|(k, v)| (k, ByteString(v.into_bytes())))
                .collect(),
        ),
        ..Default::default()
    };
    // The error of to_value never quotes the data.
    serde_json::to_value(&secret).map_err(|err| format!("failed to build the secret: {err}"))
}

/// Step 5: whether the provider has a PVC template that renders to a PVC (`Ok(false)` without
/// one, or for Tool), with the error message when it does not.
pub(super) fn check_pvc_template(resolved: &Resolved<'_>) -> Result<bool, String> {
    if resolved.method != AccessMethod::Mount {
        return Ok(false);
    }
    match access::pvc_template(resolved.provider, &resolved.context()) {
        Ok(Some(_)) => Ok(true),
        Ok(None) => Ok(false),
        Err(err) => Err(err.chain()),
    }
}

/// The repository PVC `name` in `namespace` (KubeBlocks' `createRepoPVC`): the provider's PVC
/// template or `{storageClassName: <generated>}`, labelled with the repository and owned by it,
/// with accessModes `[ReadWriteMany]`, volumeMode `Filesystem` and a request of
/// `spec.volumeCapacity` where the template sets none.
pub(super) fn repo_pvc(
    o: &Observed,
    resolved: &Resolved<'_>,
    name: &str,
    namespace: &str,
    annotations: BTreeMap<String, String>,
) -> Result<serde_json::Value, String> {
    let mut pvc = match access::pvc_template(resolved.provider, &resolved.context())
        .map_err(|err| err.chain())?
    {
        Some(pvc) => pvc,
        None => PersistentVolumeClaim {
            spec: Some(PersistentVolumeClaimSpec {
                storage_class_name: resolved.storage_class.clone(),
                ..Default::default()
            }),
            ..Default::default()
        },
    };
    let meta = &mut pvc.metadata;
    meta.name = Some(name.into());
    meta.namespace = Some(namespace.into());
    meta.labels
        .get_or_insert_with(BTreeMap::new)
        .extend(repo_label(o));
    if !annotations.is_empty() {
        meta.annotations
            .get_or_insert_with(BTreeMap::new)
            .extend(annotations);
    }
    meta.owner_references = Some(vec![owner_reference(&o.repo)]);
    let spec = pvc.spec.get_or_insert_with(Default::default);
    if spec.access_modes.as_ref().is_none_or(Vec::is_empty) {
        spec.access_modes = Some(vec!["ReadWriteMany".into()]);
    }
    if spec.volume_mode.is_none() {
        spec.volume_mode = Some("Filesystem".into());
    }
    let resources = spec
        .resources
        .get_or_insert_with(VolumeResourceRequirements::default);
    let requests = resources.requests.get_or_insert_with(BTreeMap::new);
    let zero = requests.get("storage").is_none_or(|q| {
        cairn_api::parse::quantity::parse_bytes(&q.0).is_ok_and(|bytes| bytes == 0)
    });
    if zero {
        match &o.repo.spec.volume_capacity {
            Some(capacity) => {
                requests.insert("storage".into(), capacity.clone());
            }
            None => {
                requests.remove("storage");
            }
        }
    }
    serde_json::to_value(&pvc).map_err(|err| format!("failed to build the PVC: {err}"))
}

/// Whether a PVC labelled with the repository exists under that name and namespace.
pub(super) fn pvc_exists(o: &Observed, namespace: &str, name: &str) -> bool {
    find_pvc(o, namespace, name).is_some()
}

/// The PVC labelled with the repository under that name and namespace.
pub(super) fn find_pvc<'o>(
    o: &'o Observed,
    namespace: &str,
    name: &str,
) -> Option<&'o PersistentVolumeClaim> {
    o.derived.pvcs.iter().find(|p| {
        p.metadata.namespace.as_deref() == Some(namespace)
            && p.metadata.name.as_deref() == Some(name)
    })
}

/// Step 9 (the repository is Ready): every Backup (not Failed, or Continuous) and Restore (not
/// Failed) labelled `wait-repo-preparation=true` gets the repository PVC in its namespace
/// (Mount; Tool repositories need nothing there) and loses the label.
pub(super) fn prepare_waiting(
    o: &Observed,
    resolved: &Resolved<'_>,
    status: &BackupRepoStatus,
    intents: &mut Vec<Intent>,
) {
    let repo_name = o.repo.metadata.name.as_deref().unwrap_or_default();
    let claim = status.backup_pvc_name.clone().unwrap_or_default();
    let mut waiting: Vec<(&'static str, &ObjectMeta)> = Vec::new();
    for backup in &o.backups {
        if waits_for_preparation(&backup.metadata, repo_name) && holds_repo(backup, repo_name) {
            waiting.push(("Backup", &backup.metadata));
        }
    }
    for restore in &o.restores {
        let failed = restore.status.as_ref().and_then(|s| s.phase) == Some(RestorePhase::Failed);
        if waits_for_preparation(&restore.metadata, repo_name) && !failed {
            waiting.push(("Restore", &restore.metadata));
        }
    }
    let mut prepared: BTreeSet<String> = BTreeSet::new();
    for (kind, meta) in waiting {
        let namespace = meta.namespace.clone().unwrap_or_default();
        let name = meta.name.clone().unwrap_or_default();
        if resolved.method == AccessMethod::Mount
            && !prepared.contains(&namespace)
            && !pvc_exists(o, &namespace, &claim)
        {
            match repo_pvc(o, resolved, &claim, &namespace, BTreeMap::new()) {
                Ok(object) => intents.push(Intent::Create { object }),
                Err(message) => {
                    intents.push(Intent::warning(
                        "PrepareRepoFailed",
                        format!(
                            "cannot prepare the repository PVC {namespace}/{claim} for {kind} {name}: {message}"
                        ),
                    ));
                    continue;
                }
            }
        }
        prepared.insert(namespace.clone());
        intents.push(Intent::PatchLabels {
            api_version: "dataprotection.kubeblocks.io/v1alpha1".into(),
            kind: kind.into(),
            namespace: Some(namespace),
            name,
            labels: BTreeMap::from([(well_known::label::WAIT_REPO_PREPARATION.to_string(), None)]),
        });
    }
}

fn repo_label(o: &Observed) -> BTreeMap<String, String> {
    BTreeMap::from([(
        well_known::label::BACKUP_REPO.to_string(),
        o.repo.metadata.name.clone().unwrap_or_default(),
    )])
}
