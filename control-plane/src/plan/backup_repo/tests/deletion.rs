//! Deleting a BackupRepo.

use cairn_api::backup_repo::BackupRepoPhase;
use cairn_api::well_known::conditions::backup_repo::CONDITION_DERIVED_OBJECTS_DELETED;

use super::*;

fn deleting(mut o: Observed) -> Observed {
    o.repo.metadata.deletion_timestamp = Some(
        k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(later(1000)),
    );
    o
}

#[test]
fn deletion_is_blocked_while_a_backup_uses_the_repository() {
    let mut ready = observed();
    make_ready(&mut ready);
    let mut o = deleting(ready);
    o.backups = vec![backup("b1", "team-a").in_phase(BackupPhase::Completed)];
    let plan = step(&mut o, later(1001));
    assert_eq!(phase(&o), Some(BackupRepoPhase::Deleting));
    let c = condition(&o, CONDITION_DERIVED_OBJECTS_DELETED);
    assert_eq!(
        (c.status.as_str(), c.reason.as_str()),
        ("False", "HaveAssociatedBackups")
    );
    assert_eq!(c.message, "some backups still refer to this repo");
    assert!(!plan.intents.contains(&Intent::RemoveFinalizer));
    assert!(deleted(&plan, "PersistentVolumeClaim").is_empty());
    assert_eq!(plan.requeue, Some(settings().poll));
    let reasons: Vec<_> = events(&plan).into_iter().map(|e| e.1).collect();
    assert_eq!(reasons, vec!["DeletingCR", "HaveAssociatedBackups"]);
    // Still blocked: no new events.
    let again = step(&mut o, later(1010));
    assert!(events(&again).is_empty());
}

#[test]
fn failed_backups_do_not_block_deletion_but_failed_continuous_ones_do() {
    let mut o = deleting(observed());
    o.backups = vec![backup("b1", "team-a").in_phase(BackupPhase::Failed)];
    let plan = step(&mut o, later(1001));
    assert!(plan.intents.contains(&Intent::RemoveFinalizer));

    let mut o = deleting(observed());
    o.backups = vec![
        backup("pitr", "team-a")
            .continuous()
            .in_phase(BackupPhase::Failed),
    ];
    let plan = step(&mut o, later(1001));
    assert!(!plan.intents.contains(&Intent::RemoveFinalizer));
}

#[test]
fn a_tool_repository_without_derived_objects_is_released_at_once() {
    let mut o = deleting(observed());
    let plan = step(&mut o, later(1001));
    assert_eq!(phase(&o), Some(BackupRepoPhase::Deleting));
    let c = condition(&o, CONDITION_DERIVED_OBJECTS_DELETED);
    assert_eq!(
        (c.status.as_str(), c.reason.as_str()),
        ("True", "DerivedObjectsDeleted")
    );
    assert!(plan.intents.contains(&Intent::RemoveFinalizer));
    let reasons: Vec<_> = events(&plan).into_iter().map(|e| e.1).collect();
    assert_eq!(reasons, vec!["DeletingCR", "DeletedCR"]);
    assert_eq!(events(&plan)[1].2, "Deleted backuprepo: repo1");
    assert!(deleted(&plan, "Job").is_empty());
}

#[test]
fn owned_pvcs_are_deleted_and_waited_for() {
    let mut ready = observed_mount();
    make_ready(&mut ready);
    ready.backups = vec![backup("b1", "team-a").waiting_for_its_repo()];
    step(&mut ready, later(600));
    ready.backups.clear();
    // A PVC of another owner with the label stays.
    ready.derived.pvcs.push(
        claim("foreign")
            .in_namespace("team-a")
            .of_repo("repo1")
            .owned_by_someone_else(),
    );
    let mut o = deleting(ready);
    let pvc_name = o
        .repo
        .status
        .as_ref()
        .unwrap()
        .backup_pvc_name
        .clone()
        .unwrap();
    // The PVC is in use: deleting it takes a while.
    let plan = plan(&o, later(1001));
    assert_eq!(
        deleted(&plan, "PersistentVolumeClaim"),
        vec![pvc_name.as_str()]
    );
    assert!(!plan.intents.contains(&Intent::RemoveFinalizer));
    o.repo.status = plan.status.clone();
    let c = condition(&o, CONDITION_DERIVED_OBJECTS_DELETED);
    assert_eq!(
        (c.status.as_str(), c.reason.as_str()),
        ("False", "HaveResidualPVCs")
    );
    assert_eq!(c.message, "maybe the derived PVCs are still in use");
    // The pre-check Job of the current digest is deleted too.
    assert_eq!(deleted(&plan, "Job").len(), 1);
    // Now gone.
    o.derived
        .pvcs
        .retain(|p| p.metadata.name.as_deref() == Some("foreign"));
    let plan = step(&mut o, later(1010));
    assert!(plan.intents.contains(&Intent::RemoveFinalizer));
    assert!(!deleted(&plan, "PersistentVolumeClaim").contains(&"foreign"));
}

#[test]
fn the_storage_class_and_csi_secret_are_deleted_before_the_finalizer_goes() {
    let mut ready = observed();
    ready.repo.spec.access_method = Some(cairn_api::backup_repo::AccessMethod::Mount);
    make_ready(&mut ready);
    let status = ready.repo.status.clone().unwrap();
    let mut o = deleting(ready);
    let plan = step(&mut o, later(1001));
    assert_eq!(
        deleted(&plan, "StorageClass"),
        vec![status.generated_storage_class_name.as_deref().unwrap()]
    );
    assert_eq!(
        deleted(&plan, "Secret"),
        vec![
            status
                .generated_csi_driver_secret
                .as_ref()
                .unwrap()
                .name
                .as_deref()
                .unwrap()
        ]
    );
    assert!(!plan.intents.contains(&Intent::RemoveFinalizer));
    let plan = step(&mut o, later(1002));
    assert!(plan.intents.contains(&Intent::RemoveFinalizer));
    assert!(deleted(&plan, "StorageClass").is_empty());
}

#[test]
fn a_finished_pre_check_result_is_acknowledged_during_deletion() {
    let mut o = observed();
    until_dispatched(&mut o);
    let id = current_check_id(&o);
    report(&mut o, &id, ReportedPhase::Succeeded, "");
    let mut o = deleting(o);
    let plan = step(&mut o, later(1001));
    assert!(
        plan.intents
            .contains(&Intent::Acknowledge { action_id: id })
    );
    assert!(dispatched(&plan).is_empty());
}

#[test]
fn a_deleted_repository_without_the_finalizer_needs_nothing() {
    let mut o = deleting(observed());
    o.repo.metadata.finalizers = None;
    assert_eq!(plan(&o, later(1001)), Plan::nothing());
}
