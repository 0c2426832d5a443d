//! Mount repositories: CSI Secret, StorageClass, PVC template, the agent-run pre-check Job and
//! the repository PVC in waiting namespaces.

use cairn_api::backup_repo::BackupRepoPhase;
use cairn_api::well_known;
use cairn_api::well_known::conditions::backup_repo::{
    CONDITION_PRE_CHECK_PASSED, CONDITION_PVC_TEMPLATE_CHECKED, CONDITION_STORAGE_CLASS_CREATED,
    CONDITION_STORAGE_PROVIDER_READY,
};
use cairn_proto::agent::v1 as pb;
use k8s_openapi::api::batch::v1::Job;
use std::collections::BTreeMap;

use super::*;

/// A Mount repository on the S3 provider (CSI Secret + StorageClass templates).
fn observed_csi() -> Observed {
    let mut o = observed();
    o.repo.spec.access_method = Some(cairn_api::backup_repo::AccessMethod::Mount);
    o
}

fn pre_check_pvc_name(o: &Observed) -> String {
    let digest = o.repo.metadata.annotations.as_ref().unwrap()
        [well_known::annotation::BACKUP_REPO_DIGEST]
        .clone();
    names::pre_check_name(&o.repo, &digest)
}

#[test]
fn a_pvc_provider_repository_gets_its_pvc_name_and_passes_the_template_check() {
    let mut o = observed_mount();
    step(&mut o, now());
    let status = o.repo.status.clone().unwrap();
    let pvc_name = status.backup_pvc_name.clone().unwrap();
    assert!(pvc_name.starts_with("pvc-repo1-"), "{pvc_name}");
    assert_eq!(pvc_name.len(), "pvc-repo1-".len() + 6);
    assert_eq!(status.generated_storage_class_name, None);
    assert_eq!(status.generated_csi_driver_secret, None);
    let sc = condition(&o, CONDITION_STORAGE_CLASS_CREATED);
    assert_eq!(
        (sc.status.as_str(), sc.reason.as_str()),
        ("True", "StorageClassCreated")
    );
    let pvc = condition(&o, CONDITION_PVC_TEMPLATE_CHECKED);
    assert_eq!(
        (pvc.status.as_str(), pvc.reason.as_str()),
        ("True", "PVCTemplateChecked")
    );
    assert_eq!(phase(&o), Some(BackupRepoPhase::PreChecking));
    // The name is generated once.
    step(&mut o, later(5));
    assert_eq!(o.repo.status.unwrap().backup_pvc_name, Some(pvc_name));
}

#[test]
fn the_mount_pre_check_creates_its_pvc_first_then_hands_the_job_to_an_agent() {
    let mut o = observed_mount();
    step(&mut o, now());
    let plan = step(&mut o, later(1));
    let name = pre_check_pvc_name(&o);
    assert!(name.starts_with("pre-check-5b7c1c0e-"), "{name}");
    let pvcs = created(&plan, "PersistentVolumeClaim");
    assert_eq!(pvcs.len(), 1);
    let pvc = pvcs[0];
    assert_eq!(pvc["metadata"]["name"], name.as_str());
    assert_eq!(pvc["metadata"]["namespace"], CONTROL_NS);
    assert_eq!(
        pvc["metadata"]["labels"][well_known::label::BACKUP_REPO],
        "repo1"
    );
    assert_eq!(
        pvc["metadata"]["annotations"][well_known::annotation::BACKUP_REPO_DIGEST]
            .as_str()
            .map(str::len),
        Some(32)
    );
    assert!(dispatched(&plan).is_empty(), "no job before its PVC exists");
    assert_eq!(
        condition(&o, CONDITION_PRE_CHECK_PASSED).message,
        "waiting for the pre-check PVC to be created"
    );

    let plan = step(&mut o, later(2));
    let actions = dispatched(&plan);
    assert_eq!(actions.len(), 1);
    let (node, action) = actions[0];
    assert_eq!(node, "node-a");
    assert_eq!(action.id, current_check_id(&o));
    let Some(pb::action::Kind::Job(job_action)) = &action.kind else {
        panic!("not a job action: {:?}", action.kind);
    };
    assert_eq!(job_action.storage, None);
    assert!(!job_action.collect_backup_info);
    let job: Job = serde_json::from_str(&job_action.job_json).unwrap();
    assert_eq!(job.metadata.name.as_deref(), Some(name.as_str()));
    assert_eq!(job.metadata.namespace.as_deref(), Some(CONTROL_NS));
    assert_eq!(job.metadata.owner_references.as_ref().unwrap()[0].uid, UID);
    let spec = job.spec.unwrap();
    assert_eq!(spec.backoff_limit, Some(2));
    let pod = spec.template.spec.unwrap();
    assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
    assert_eq!(pod.security_context.unwrap().fs_group, Some(65532));
    let container = &pod.containers[0];
    assert_eq!(container.name, "pre-check");
    assert_eq!(
        container.image.as_deref(),
        Some("docker.io/library/busybox:1.36")
    );
    let script = container.command.as_ref().unwrap().join(" ");
    assert!(
        script.contains("echo \"pre-check\" > /backup/precheck.txt"),
        "{script}"
    );
    assert!(script.contains("rm /backup/precheck.txt"), "{script}");
    assert_eq!(
        container.volume_mounts.as_ref().unwrap()[0].mount_path,
        "/backup"
    );
    let volume = &pod.volumes.unwrap()[0];
    assert_eq!(
        volume.persistent_volume_claim.as_ref().unwrap().claim_name,
        name
    );
}

#[test]
fn after_the_job_the_agent_opens_the_pre_check_pvc_as_backups_do_then_both_are_deleted() {
    let mut o = observed_mount();
    o.repo.spec.path_prefix = Some("prod".into());
    until_dispatched(&mut o);
    let name = pre_check_pvc_name(&o);
    let job_id = current_check_id(&o);
    report(&mut o, &job_id, ReportedPhase::Succeeded, "");
    // The Job passing is not enough: the agent's own path comes next.
    let plan = step(&mut o, later(20));
    assert_eq!(phase(&o), Some(BackupRepoPhase::PreChecking));
    assert!(deleted(&plan, "PersistentVolumeClaim").is_empty());
    let actions = dispatched(&plan);
    assert_eq!(actions.len(), 1);
    let (node, action) = actions[0];
    assert_eq!(node, "node-a");
    let agent_id = current_agent_check_id(&o);
    assert_eq!(action.id, agent_id);
    assert_ne!(agent_id, job_id);
    let Some(pb::action::Kind::RepoCheck(check)) = &action.kind else {
        panic!("not a repository check: {:?}", action.kind);
    };
    assert_eq!(check.probe_path, "/prod/precheck.txt");
    let grant = check.storage.as_ref().unwrap();
    assert_eq!(grant.repo_name, "repo1");
    assert_eq!(
        grant.mount_claim,
        Some(pb::MountClaim {
            namespace: CONTROL_NS.into(),
            name: name.clone(),
        })
    );
    assert_eq!(grant.local_path, "");
    assert_eq!(grant.datasafed_config, "");
    assert_eq!(grant.read_write_prefix, "/prod/precheck.txt");
    let message = condition(&o, CONDITION_PRE_CHECK_PASSED).message.clone();
    assert!(
        message.contains(&format!("{CONTROL_NS}/{name}")),
        "{message}"
    );
    assert!(message.contains("node-a"), "{message}");

    // Running: nothing is dispatched again.
    report(&mut o, &agent_id, ReportedPhase::Running, "");
    let plan = step(&mut o, later(21));
    assert!(dispatched(&plan).is_empty());
    assert_eq!(phase(&o), Some(BackupRepoPhase::PreChecking));

    report(&mut o, &agent_id, ReportedPhase::Succeeded, "");
    let plan = step(&mut o, later(22));
    assert_eq!(phase(&o), Some(BackupRepoPhase::Ready));
    assert_eq!(deleted(&plan, "Job"), vec![name.as_str()]);
    assert_eq!(deleted(&plan, "PersistentVolumeClaim"), vec![name.as_str()]);
    for id in [job_id, agent_id] {
        assert!(
            plan.intents
                .contains(&Intent::Acknowledge { action_id: id })
        );
    }
    // The hub forgets acknowledged results; once the PVC is gone nothing more happens.
    o.agents.actions.clear();
    let again = step(&mut o, later(30));
    assert_eq!(again, Plan::nothing());
}

#[test]
fn a_mount_repository_the_agent_cannot_use_fails_naming_the_claim_node_and_reason() {
    let mut o = observed_mount();
    until_dispatched(&mut o);
    let name = pre_check_pvc_name(&o);
    let job_id = current_check_id(&o);
    report(&mut o, &job_id, ReportedPhase::Succeeded, "");
    step(&mut o, later(20));
    let agent_id = current_agent_check_id(&o);
    let reason = format!(
        "on node node-a: reaching the csi volume pv-1 of the repository PVC {CONTROL_NS}/{name} through a holder pod on this node: the agent cannot write the volume"
    );
    report(&mut o, &agent_id, ReportedPhase::Failed, &reason);
    let plan = step(&mut o, later(21));
    assert_eq!(phase(&o), Some(BackupRepoPhase::Failed));
    let c = condition(&o, CONDITION_PRE_CHECK_PASSED);
    assert_eq!(
        (c.status.as_str(), c.reason.as_str()),
        ("False", "PreCheckFailed")
    );
    assert!(
        c.message.starts_with(&format!(
            "the node agent could not use the pre-check PVC {CONTROL_NS}/{name} as every backup would"
        )),
        "{}",
        c.message
    );
    assert!(c.message.ends_with(&reason), "{}", c.message);
    let failed: Vec<_> = events(&plan)
        .into_iter()
        .filter(|e| e.1 == "BackupRepoFailed")
        .collect();
    assert_eq!(failed.len(), 1, "{:?}", events(&plan));
    assert_eq!(failed[0].0, EventType::Warning);
    assert!(failed[0].2.contains("on node node-a"), "{}", failed[0].2);
    assert_eq!(deleted(&plan, "PersistentVolumeClaim"), vec![name.as_str()]);
    for id in [job_id, agent_id] {
        assert!(
            plan.intents
                .contains(&Intent::Acknowledge { action_id: id })
        );
    }
}

#[test]
fn the_agent_step_goes_to_the_node_the_volume_was_provisioned_for() {
    let mut o = observed_mount();
    o.agents = agents(&["node-a", "node-b"]);
    until_dispatched(&mut o);
    let name = pre_check_pvc_name(&o);
    let pvc = o
        .derived
        .pvcs
        .iter_mut()
        .find(|p| p.metadata.name.as_deref() == Some(name.as_str()))
        .unwrap();
    pvc.metadata
        .annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(
            well_known::annotation::SELECTED_NODE.into(),
            "node-b".into(),
        );
    let job_id = current_check_id(&o);
    report(&mut o, &job_id, ReportedPhase::Succeeded, "");
    let plan = step(&mut o, later(20));
    assert_eq!(dispatched(&plan)[0].0, "node-b");
    // Without that node's agent, any agent tries (and says where it failed).
    let mut o2 = o.clone();
    o2.agents.actions.clear();
    report(&mut o2, &job_id, ReportedPhase::Succeeded, "");
    o2.agents.nodes.get_mut("node-b").unwrap().connected = false;
    let plan = step(&mut o2, later(21));
    assert_eq!(dispatched(&plan)[0].0, "node-a");
}

#[test]
fn a_pre_check_pvc_of_a_storage_class_that_does_not_exist_fails_at_once() {
    let mut o = observed_mount();
    o.repo.spec.config = Some(BTreeMap::from([(
        "storageClassName".to_string(),
        "no-such-class".to_string(),
    )]));
    o.derived.missing_storage_classes = ["no-such-class".to_string()].into();
    let mut dispatches = 0;
    for i in 0..5 {
        dispatches += dispatched(&step(&mut o, later(i))).len();
    }
    assert_eq!(dispatches, 0, "nothing can use a claim that is never bound");
    assert_eq!(phase(&o), Some(BackupRepoPhase::Failed));
    let name = pre_check_pvc_name(&o);
    let c = condition(&o, CONDITION_PRE_CHECK_PASSED);
    assert_eq!(c.reason, "PreCheckFailed");
    assert_eq!(
        c.message,
        format!(
            "the pre-check PVC {CONTROL_NS}/{name} can never be bound: its StorageClass \"no-such-class\" does not exist, so no repository PVC could be bound and every backup would fail"
        )
    );
    assert!(o.derived.pvcs.is_empty(), "the pre-check PVC is deleted");
}

#[test]
fn a_job_that_times_out_on_an_unbound_claim_says_so() {
    let mut o = observed_mount();
    until_dispatched(&mut o);
    let name = pre_check_pvc_name(&o);
    let job_id = current_check_id(&o);
    report(&mut o, &job_id, ReportedPhase::Running, "");
    step(&mut o, later(30));
    assert_eq!(phase(&o), Some(BackupRepoPhase::PreChecking));
    step(&mut o, later(15 * 60 + 1));
    assert_eq!(phase(&o), Some(BackupRepoPhase::Failed));
    let message = condition(&o, CONDITION_PRE_CHECK_PASSED).message.clone();
    assert_eq!(
        message,
        format!(
            "timeout: the pre-check did not finish within 15m0s; the pre-check PVC {CONTROL_NS}/{name} is still Pending, never bound to a PersistentVolume, as every repository PVC would be"
        )
    );
}

#[test]
fn a_failed_mount_pre_check_reports_the_jobs_failure() {
    let mut o = observed_mount();
    until_dispatched(&mut o);
    let name = pre_check_pvc_name(&o);
    let id = current_check_id(&o);
    report(
        &mut o,
        &id,
        ReportedPhase::Failed,
        "BackoffLimitExceeded: Job has reached the specified backoff limit\nsh: can't create /backup/precheck.txt: Permission denied",
    );
    let plan = step(&mut o, later(20));
    assert_eq!(phase(&o), Some(BackupRepoPhase::Failed));
    let message = condition(&o, CONDITION_PRE_CHECK_PASSED).message.clone();
    assert!(
        message.starts_with(&format!(
            "the pre-check Job on the pre-check PVC {CONTROL_NS}/{name} failed: BackoffLimitExceeded"
        )),
        "{message}"
    );
    assert!(message.contains("Permission denied"), "{message}");
    assert_eq!(deleted(&plan, "Job").len(), 1);
    assert!(
        dispatched(&plan).is_empty(),
        "no agent step after a failed Job"
    );
}

#[test]
fn a_leftover_pre_check_pvc_of_an_old_digest_is_removed() {
    let mut o = observed_mount();
    make_ready(&mut o);
    // A PVC from an older check is still there (e.g. the delete failed).
    let stale_digest = "ffffffffffffffffffffffffffffffff";
    let stale = names::pre_check_name(&o.repo, stale_digest);
    o.derived
        .pvcs
        .push(claim(&stale).in_namespace(CONTROL_NS).of_repo("repo1"));
    o.repo.metadata.annotations.as_mut().unwrap().insert(
        well_known::annotation::BACKUP_REPO_DIGEST.into(),
        stale_digest.into(),
    );
    let plan = step(&mut o, later(50));
    assert!(deleted(&plan, "PersistentVolumeClaim").contains(&stale.as_str()));
    assert!(deleted(&plan, "Job").contains(&stale.as_str()));
    assert_eq!(phase(&o), Some(BackupRepoPhase::PreChecking));
}

#[test]
fn a_provider_with_neither_storage_class_nor_pvc_template_is_invalid_for_mount() {
    let mut o = observed_mount();
    o.provider = Some(pvc_provider().pvc_template(None));
    step(&mut o, now());
    let c = condition(&o, CONDITION_STORAGE_PROVIDER_READY);
    assert_eq!(
        (c.status.as_str(), c.reason.as_str()),
        ("False", "InvalidStorageProvider")
    );
    assert_eq!(
        c.message,
        "both StorageClassTemplate and PersistentVolumeClaimTemplate are empty"
    );
    assert_eq!(phase(&o), Some(BackupRepoPhase::Failed));
}

#[test]
fn mount_needs_the_providers_csi_driver_installed() {
    let mut o = observed_csi();
    o.provider = Some(s3_provider().csi_driver_missing());
    let plan = step(&mut o, now());
    let c = condition(&o, CONDITION_STORAGE_PROVIDER_READY);
    assert_eq!(
        (c.status.as_str(), c.reason.as_str()),
        ("False", "StorageProviderNotReady")
    );
    assert_eq!(c.message, "CSI driver is not installed");
    assert!(created(&plan, "StorageClass").is_empty());
    assert_eq!(phase(&o), Some(BackupRepoPhase::Failed));
}

#[test]
fn a_deprecated_provider_copy_is_not_ready_for_mount_until_its_csi_driver_is_checked() {
    let mut o = observed_csi();
    let spec = s3_provider().spec;
    o.provider = None;
    o.legacy_provider = Some(cairn_api::storage_provider::LegacyStorageProvider::new(
        "s3",
        cairn_api::storage_provider::LegacyStorageProviderSpec(spec),
    ));
    step(&mut o, now());
    assert_eq!(
        condition(&o, CONDITION_STORAGE_PROVIDER_READY).reason,
        "StorageProviderNotReady"
    );
}

#[test]
fn a_csi_provider_gets_its_secret_in_the_control_plane_namespace_and_a_storage_class() {
    let mut o = observed_csi();
    let plan = step(&mut o, now());
    let status = o.repo.status.clone().unwrap();
    let secret_ref = status.generated_csi_driver_secret.clone().unwrap();
    let secret_name = secret_ref.name.clone().unwrap();
    assert!(secret_name.starts_with("secret-repo1-"), "{secret_name}");
    assert_eq!(secret_ref.namespace.as_deref(), Some(CONTROL_NS));
    let class_name = status.generated_storage_class_name.clone().unwrap();
    assert!(class_name.starts_with("sc-repo1-"), "{class_name}");

    let secrets = created(&plan, "Secret");
    assert_eq!(secrets.len(), 1);
    let secret: k8s_openapi::api::core::v1::Secret =
        serde_json::from_value(secrets[0].clone()).unwrap();
    assert_eq!(secret.metadata.namespace.as_deref(), Some(CONTROL_NS));
    assert_eq!(
        secret.metadata.labels.unwrap()[well_known::label::BACKUP_REPO],
        "repo1"
    );
    assert_eq!(secret.metadata.owner_references.unwrap()[0].uid, UID);
    let data = secret.data.unwrap();
    assert_eq!(data["secretAccessKey"].0, SECRET_KEY.as_bytes());
    assert_eq!(data["accessKeyID"].0, b"AKIAEXAMPLE");

    let classes = created(&plan, "StorageClass");
    assert_eq!(classes.len(), 1);
    let class: k8s_openapi::api::storage::v1::StorageClass =
        serde_json::from_value(classes[0].clone()).unwrap();
    assert_eq!(class.metadata.name.as_deref(), Some(class_name.as_str()));
    assert_eq!(class.provisioner, "ru.yandex.s3.csi");
    assert_eq!(class.volume_binding_mode.as_deref(), Some("Immediate"));
    assert_eq!(class.reclaim_policy.as_deref(), Some("Retain"));
    let params = class.parameters.unwrap();
    assert_eq!(params["bucket"], "backups");
    assert_eq!(
        params["csi.storage.k8s.io/node-publish-secret-name"],
        secret_name
    );
    assert_eq!(
        params["csi.storage.k8s.io/node-publish-secret-namespace"],
        CONTROL_NS
    );

    let sc = condition(&o, CONDITION_STORAGE_CLASS_CREATED);
    assert_eq!(
        (sc.status.as_str(), sc.reason.as_str()),
        ("True", "StorageClassCreated")
    );
    // No PVC template: the check is skipped.
    assert_eq!(
        condition(&o, CONDITION_PVC_TEMPLATE_CHECKED).reason,
        "Skipped"
    );
    // The secret's contents never reach events.
    assert!(events(&plan).iter().all(|e| !e.2.contains(SECRET_KEY)));
}

#[test]
fn existing_csi_objects_are_not_created_again() {
    let mut o = observed_csi();
    step(&mut o, now());
    let plan = step(&mut o, later(1));
    assert!(created(&plan, "Secret").is_empty());
    assert!(created(&plan, "StorageClass").is_empty());
}

#[test]
fn a_csi_secret_of_an_old_digest_is_replaced() {
    let mut o = observed_csi();
    step(&mut o, now());
    let mut rotated = credential();
    rotated.insert("secretAccessKey".into(), "rotated".into());
    o.credential = Some(rotated);
    let plan = step(&mut o, later(5));
    assert_eq!(deleted(&plan, "Secret").len(), 1);
    let plan = step(&mut o, later(6));
    let secrets = created(&plan, "Secret");
    assert_eq!(secrets.len(), 1);
    let secret: k8s_openapi::api::core::v1::Secret =
        serde_json::from_value(secrets[0].clone()).unwrap();
    assert_eq!(secret.data.unwrap()["secretAccessKey"].0, b"rotated");
}

#[test]
fn the_delete_reclaim_policy_is_copied_to_the_storage_class() {
    let mut o = observed_csi();
    o.repo.spec.pv_reclaim_policy = cairn_api::backup_repo::PersistentVolumeReclaimPolicy::Delete;
    let plan = step(&mut o, now());
    assert_eq!(created(&plan, "StorageClass")[0]["reclaimPolicy"], "Delete");
}

#[test]
fn a_storage_class_template_that_does_not_render_fails_storage_class_created() {
    let mut o = observed_csi();
    o.provider = Some(s3_provider().storage_class_template("provisioner: {{ .Nope.X "));
    step(&mut o, now());
    let c = condition(&o, CONDITION_STORAGE_CLASS_CREATED);
    assert_eq!(
        (c.status.as_str(), c.reason.as_str()),
        ("False", "PrepareStorageClassFailed")
    );
    assert!(
        c.message
            .starts_with("failed to render storage class template"),
        "{}",
        c.message
    );
    assert_eq!(phase(&o), Some(BackupRepoPhase::Failed));
}

#[test]
fn a_csi_secret_template_that_is_not_a_map_fails_with_prepare_csi_secret_failed() {
    let mut o = observed_csi();
    o.provider =
        Some(s3_provider().csi_secret_template("- {{ index .Parameters \"secretAccessKey\" }}\n"));
    let plan = step(&mut o, now());
    let c = condition(&o, CONDITION_STORAGE_CLASS_CREATED);
    assert_eq!(
        (c.status.as_str(), c.reason.as_str()),
        ("False", "PrepareCSISecretFailed")
    );
    assert!(!c.message.contains(SECRET_KEY));
    assert!(created(&plan, "Secret").is_empty());
}

#[test]
fn a_pvc_template_that_is_not_a_pvc_fails_the_template_check() {
    let mut o = observed_mount();
    o.provider = Some(pvc_provider().pvc_template(Some("spec:\n  accessModes: ReadWriteOnce\n")));
    let plan = step(&mut o, now());
    let c = condition(&o, CONDITION_PVC_TEMPLATE_CHECKED);
    assert_eq!(
        (c.status.as_str(), c.reason.as_str()),
        ("False", "BadPVCTemplate")
    );
    assert_eq!(
        c.message,
        "failed to unmarshal the rendered PVC: not valid YAML for it"
    );
    assert_eq!(phase(&o), Some(BackupRepoPhase::Failed));
    assert!(dispatched(&plan).is_empty());
}

#[test]
fn waiting_backups_get_the_repository_pvc_in_their_namespace_once() {
    let mut o = observed_mount();
    make_ready(&mut o);
    let claim = o
        .repo
        .status
        .as_ref()
        .unwrap()
        .backup_pvc_name
        .clone()
        .unwrap();
    o.backups = vec![
        backup("b1", "team-a").waiting_for_its_repo(),
        backup("b2", "team-a").waiting_for_its_repo(),
    ];
    o.restores = vec![restore("r1", "team-b").waiting_for_its_repo()];
    let plan = step(&mut o, later(600));
    let pvcs = created(&plan, "PersistentVolumeClaim");
    assert_eq!(pvcs.len(), 2);
    let a = pvcs
        .iter()
        .find(|p| p["metadata"]["namespace"] == "team-a")
        .unwrap();
    let pvc: PersistentVolumeClaim = serde_json::from_value((*a).clone()).unwrap();
    assert_eq!(pvc.metadata.name.as_deref(), Some(claim.as_str()));
    assert_eq!(
        pvc.metadata.labels.unwrap()[well_known::label::BACKUP_REPO],
        "repo1"
    );
    let owner = &pvc.metadata.owner_references.unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.uid.as_str(), owner.controller),
        ("BackupRepo", UID, Some(true))
    );
    let spec = pvc.spec.unwrap();
    // The provider's schema default (ReadWriteMany) fills the template.
    assert_eq!(spec.access_modes, Some(vec!["ReadWriteMany".to_string()]));
    assert_eq!(spec.volume_mode.as_deref(), Some("Filesystem"));
    assert_eq!(spec.storage_class_name, None);
    assert_eq!(
        spec.resources.unwrap().requests.unwrap()["storage"].0,
        "20Gi"
    );
    // Every waiting object loses its label, after the PVC creation.
    let labels: Vec<(usize, &str)> = plan
        .intents
        .iter()
        .enumerate()
        .filter_map(|(i, intent)| match intent {
            Intent::PatchLabels { name, .. } => Some((i, name.as_str())),
            _ => None,
        })
        .collect();
    assert_eq!(
        labels.iter().map(|l| l.1).collect::<Vec<_>>(),
        vec!["b1", "b2", "r1"]
    );
    let first_create = plan
        .intents
        .iter()
        .position(|i| matches!(i, Intent::Create { .. }))
        .unwrap();
    assert!(first_create < labels[0].0);
}

#[test]
fn a_namespace_that_already_has_the_repository_pvc_gets_no_new_one() {
    let mut o = observed_mount();
    make_ready(&mut o);
    let name = o
        .repo
        .status
        .as_ref()
        .unwrap()
        .backup_pvc_name
        .clone()
        .unwrap();
    o.derived
        .pvcs
        .push(claim(&name).in_namespace("team-a").of_repo("repo1"));
    o.backups = vec![backup("b1", "team-a").waiting_for_its_repo()];
    let plan = step(&mut o, later(600));
    assert!(created(&plan, "PersistentVolumeClaim").is_empty());
    assert!(
        plan.intents
            .iter()
            .any(|i| matches!(i, Intent::PatchLabels { name, .. } if name == "b1"))
    );
}

#[test]
fn a_csi_repository_pvc_uses_the_generated_storage_class_and_the_capacity() {
    let mut o = observed_csi();
    make_ready(&mut o);
    let class = o
        .repo
        .status
        .as_ref()
        .unwrap()
        .generated_storage_class_name
        .clone()
        .unwrap();
    o.backups = vec![backup("b1", "team-a").waiting_for_its_repo()];
    let plan = step(&mut o, later(600));
    let pvc: PersistentVolumeClaim =
        serde_json::from_value(created(&plan, "PersistentVolumeClaim")[0].clone()).unwrap();
    let spec = pvc.spec.unwrap();
    assert_eq!(spec.storage_class_name, Some(class));
    assert_eq!(spec.access_modes, Some(vec!["ReadWriteMany".to_string()]));
    assert_eq!(
        spec.resources.unwrap().requests.unwrap()["storage"].0,
        "20Gi"
    );
}

#[test]
fn a_template_request_is_kept_and_no_capacity_means_no_request() {
    let mut o = observed_mount();
    o.provider = Some(pvc_provider().pvc_template(Some(
        "spec:\n  resources:\n    requests:\n      storage: 5Gi\n",
    )));
    make_ready(&mut o);
    o.backups = vec![backup("b1", "team-a").waiting_for_its_repo()];
    let plan = step(&mut o, later(600));
    let pvc = created(&plan, "PersistentVolumeClaim")[0];
    assert_eq!(pvc["spec"]["resources"]["requests"]["storage"], "5Gi");

    let mut bare = observed_mount();
    bare.repo.spec.volume_capacity = None;
    make_ready(&mut bare);
    bare.backups = vec![backup("b1", "team-a").waiting_for_its_repo()];
    let plan = step(&mut bare, later(600));
    let pvc = created(&plan, "PersistentVolumeClaim")[0];
    assert!(
        pvc["spec"]["resources"]["requests"]
            .get("storage")
            .is_none(),
        "{pvc}"
    );
}

#[test]
fn access_of_a_mount_repository_is_its_pvc() {
    let mut o = observed_mount();
    step(&mut o, now());
    let claim = o
        .repo
        .status
        .as_ref()
        .unwrap()
        .backup_pvc_name
        .clone()
        .unwrap();
    let access = access(&o).unwrap();
    assert_eq!(access.mount_claim, Some(claim));
    assert!(access.datasafed_config.is_empty());
}
