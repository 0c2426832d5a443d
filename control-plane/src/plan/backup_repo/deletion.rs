//! What happens when a BackupRepo is deleted (ARCHITECTURE.md §K5.8).
//!
//! # Expected flow
//! 1. `phase: Deleting`, so no new Backup picks the repository (announced by `DeletingCR`).
//! 2. While a Backup labelled with the repository exists that is not Failed (a Failed
//!    Continuous backup counts too), nothing is deleted: `DerivedObjectsDeleted` is False
//!    (`HaveAssociatedBackups`, "some backups still refer to this repo").
//! 3. The objects the repository derived are deleted: the Mount pre-check Job, every PVC it owns
//!    (the repository waits until they are gone: `HaveResidualPVCs`), the StorageClass and the
//!    CSI Secret.
//! 4. Once none is left: `DerivedObjectsDeleted` True, the finalizer goes (`DeletedCR`).
//!
//! # Guarantees
//! Only objects owned by the repository (owner uid) or named in its status are deleted; every
//! one of them also carries an owner reference, so Kubernetes' garbage collector is the backstop.

use cairn_api::backup_repo::{AccessMethod, BackupRepoPhase, BackupRepoStatus};
use cairn_api::well_known;
use cairn_api::well_known::conditions::backup_repo::{
    CONDITION_DERIVED_OBJECTS_DELETED, REASON_DERIVED_OBJECTS_DELETED,
    REASON_HAVE_ASSOCIATED_BACKUPS, REASON_HAVE_RESIDUAL_PVCS,
};
use jiff::Timestamp;

use super::conditions::{self, Status, Update};
use super::precheck::acknowledge_if_ended;
use super::{Observed, access_method, has_finalizer, holds_repo, names, owned_by};
use crate::plan::intent::{Intent, Plan};

/// Plans one reconcile of a BackupRepo being deleted.
pub fn plan(o: &Observed, now: Timestamp) -> Plan<BackupRepoStatus> {
    let repo = &o.repo;
    if !has_finalizer(repo) {
        return Plan::nothing();
    }
    let name = repo.metadata.name.as_deref().unwrap_or_default();
    let current = repo.status.clone().unwrap_or_default();
    let mut status = current.clone();
    status.phase = Some(BackupRepoPhase::Deleting);
    let mut intents = Vec::new();
    if current.phase != Some(BackupRepoPhase::Deleting) {
        intents.push(Intent::normal(
            "DeletingCR",
            format!("Deleting backuprepo: {name}"),
        ));
    }
    let conds = status.conditions.get_or_insert_with(Vec::new);
    let mut set = |reason, message: &str, state| {
        conditions::set(
            conds,
            Update {
                type_: CONDITION_DERIVED_OBJECTS_DELETED,
                status: state,
                reason,
                message: message.into(),
            },
            repo.metadata.generation,
            now,
        )
    };

    let blocking = o.backups.iter().any(|backup| holds_repo(backup, name));
    if blocking {
        let message = "some backups still refer to this repo";
        if set(REASON_HAVE_ASSOCIATED_BACKUPS, message, Status::False) {
            intents.push(Intent::warning(
                REASON_HAVE_ASSOCIATED_BACKUPS,
                format!("backup repository {name} is not deleted yet: {message}"),
            ));
        }
        return finish(current, status, intents, Some(o.settings.poll));
    }

    // A result of a pre-check still in the hub is no longer wanted.
    let digest = repo
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(well_known::annotation::BACKUP_REPO_DIGEST))
        .cloned()
        .unwrap_or_default();
    if !digest.is_empty() {
        acknowledge_if_ended(o, &digest, &mut intents);
    }

    let mut left = false;
    if access_method(repo) == AccessMethod::Mount && !digest.is_empty() {
        intents.push(Intent::Delete {
            api_version: "batch/v1".into(),
            kind: "Job".into(),
            namespace: Some(o.settings.namespace.clone()),
            name: names::pre_check_name(repo, &digest),
        });
    }
    let pvcs: Vec<_> = o
        .derived
        .pvcs
        .iter()
        .filter(|p| owned_by(repo, &p.metadata))
        .collect();
    for pvc in &pvcs {
        intents.push(Intent::Delete {
            api_version: "v1".into(),
            kind: "PersistentVolumeClaim".into(),
            namespace: pvc.metadata.namespace.clone(),
            name: pvc.metadata.name.clone().unwrap_or_default(),
        });
    }
    if !pvcs.is_empty() {
        set(
            REASON_HAVE_RESIDUAL_PVCS,
            "maybe the derived PVCs are still in use",
            Status::False,
        );
        return finish(current, status, intents, Some(o.settings.poll));
    }
    if o.derived.storage_class
        && let Some(class) = current.generated_storage_class_name.clone()
    {
        intents.push(Intent::Delete {
            api_version: "storage.k8s.io/v1".into(),
            kind: "StorageClass".into(),
            namespace: None,
            name: class,
        });
        left = true;
    }
    if o.derived.csi_secret_digest.is_some()
        && let Some(secret) = current.generated_csi_driver_secret.clone()
    {
        intents.push(Intent::Delete {
            api_version: "v1".into(),
            kind: "Secret".into(),
            namespace: secret.namespace,
            name: secret.name.unwrap_or_default(),
        });
        left = true;
    }
    if left {
        return finish(current, status, intents, Some(o.settings.poll));
    }
    set(REASON_DERIVED_OBJECTS_DELETED, "", Status::True);
    intents.push(Intent::RemoveFinalizer);
    intents.push(Intent::normal(
        "DeletedCR",
        format!("Deleted backuprepo: {name}"),
    ));
    finish(current, status, intents, None)
}

fn finish(
    current: BackupRepoStatus,
    status: BackupRepoStatus,
    intents: Vec<Intent>,
    requeue: Option<std::time::Duration>,
) -> Plan<BackupRepoStatus> {
    Plan {
        status: (status != current).then_some(status),
        intents,
        requeue,
    }
}
