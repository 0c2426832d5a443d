//! Tool repositories: checks, the agent pre-check, phases, waiting Backups and the access.

use cairn_api::backup_repo::BackupRepoPhase;
use cairn_api::well_known;
use cairn_api::well_known::conditions::backup_repo::{
    CONDITION_PARAMETERS_CHECKED, CONDITION_PRE_CHECK_PASSED, CONDITION_PVC_TEMPLATE_CHECKED,
    CONDITION_STORAGE_CLASS_CREATED, CONDITION_STORAGE_PROVIDER_READY,
};
use cairn_proto::agent::v1 as pb;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::*;

#[test]
fn a_new_repository_gets_the_finalizer_and_starts_pre_checking() {
    let mut o = observed();
    o.repo.metadata.finalizers = None;
    let plan = step(&mut o, now());
    assert_eq!(plan.intents.first(), Some(&Intent::AddFinalizer));
    assert_eq!(phase(&o), Some(BackupRepoPhase::PreChecking));
    let check = condition(&o, CONDITION_PRE_CHECK_PASSED);
    assert_eq!(
        (check.status.as_str(), check.reason.as_str()),
        ("Unknown", "DigestChanged")
    );
    for (type_, reason) in [
        (CONDITION_STORAGE_PROVIDER_READY, "StorageProviderReady"),
        (CONDITION_PARAMETERS_CHECKED, "ParametersChecked"),
        (CONDITION_STORAGE_CLASS_CREATED, "Skipped"),
        (CONDITION_PVC_TEMPLATE_CHECKED, "Skipped"),
    ] {
        let c = condition(&o, type_);
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            ("True", reason),
            "{type_}"
        );
        assert_eq!(c.observed_generation, Some(1));
    }
    let status = o.repo.status.clone().unwrap();
    assert_eq!(status.observed_generation, Some(1));
    assert_eq!(status.is_default, Some(false));
    assert_eq!(status.backup_pvc_name, None);
    assert_eq!(status.tool_config_secret_name, None);
    assert!(events(&plan).iter().any(|e| e.1 == "PreChecking"));
    assert_eq!(plan.requeue, Some(settings().poll));
}

#[test]
fn the_digest_annotation_is_written_only_after_the_unknown_condition_is_recorded() {
    let mut o = observed();
    let first = step(&mut o, now());
    assert!(
        !first
            .intents
            .iter()
            .any(|i| matches!(i, Intent::PatchMeta { .. } | Intent::Dispatch { .. })),
        "{:?}",
        first.intents
    );
    let second = step(&mut o, later(1));
    let annotations: Vec<_> = second
        .intents
        .iter()
        .filter_map(|i| match i {
            Intent::PatchMeta { annotations, .. } => Some(annotations.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(annotations.len(), 1);
    let digest = annotations[0][well_known::annotation::BACKUP_REPO_DIGEST]
        .clone()
        .unwrap();
    assert_eq!(digest.len(), 32);
    assert_eq!(
        dispatched(&second).len(),
        1,
        "the check starts in the same plan"
    );
}

#[test]
fn the_pre_check_goes_to_a_connected_agent_with_the_rendered_config_and_probe_path() {
    let mut o = observed();
    let plan = until_dispatched(&mut o);
    let actions = dispatched(&plan);
    let (node, action) = actions[0];
    assert_eq!(node, "node-a");
    assert_eq!(action.id, current_check_id(&o));
    assert_eq!(action.name, "pre-check");
    assert_eq!(action.pod, None);
    let owner = action.owner.clone().unwrap();
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str(), owner.uid.as_str()),
        ("BackupRepo", "repo1", UID)
    );
    let Some(pb::action::Kind::RepoCheck(check)) = &action.kind else {
        panic!("not a repo check: {:?}", action.kind);
    };
    assert_eq!(check.probe_path, "/prod/precheck.txt");
    let grant = check.storage.clone().unwrap();
    assert_eq!(grant.repo_name, "repo1");
    assert_eq!(grant.read_write_prefix, "/prod/precheck.txt");
    assert_eq!(
        grant.datasafed_config,
        format!(
            "[storage]\ntype = s3\nprovider = AWS\naccess_key_id = AKIAEXAMPLE\nsecret_access_key = {SECRET_KEY}\nregion = eu-west-1\nroot = backups\nno_check_certificate = false\n"
        )
    );
    let message = &condition(&o, CONDITION_PRE_CHECK_PASSED).message;
    assert_eq!(
        message,
        "the pre-check was handed to the agent on node node-a"
    );
}

#[test]
fn a_repository_without_a_path_prefix_probes_the_root() {
    let mut o = observed();
    o.repo.spec.path_prefix = None;
    let plan = until_dispatched(&mut o);
    let Some(pb::action::Kind::RepoCheck(check)) = &dispatched(&plan)[0].1.kind else {
        panic!("not a repo check");
    };
    assert_eq!(check.probe_path, "/precheck.txt");
}

#[test]
fn a_successful_pre_check_makes_the_repository_ready_and_is_acknowledged() {
    let mut o = observed();
    until_dispatched(&mut o);
    let id = current_check_id(&o);
    report(&mut o, &id, ReportedPhase::Succeeded, "");
    let plan = step(&mut o, later(30));
    assert_eq!(phase(&o), Some(BackupRepoPhase::Ready));
    let check = condition(&o, CONDITION_PRE_CHECK_PASSED);
    assert_eq!(
        (check.status.as_str(), check.reason.as_str()),
        ("True", "PreCheckPassed")
    );
    assert_eq!(check.last_transition_time, Time(later(30)));
    assert!(
        plan.intents
            .contains(&Intent::Acknowledge { action_id: id })
    );
    assert!(dispatched(&plan).is_empty());
    assert_eq!(plan.requeue, None);
    assert!(
        events(&plan)
            .iter()
            .any(|e| e.0 == EventType::Normal && e.1 == "BackupRepoReady")
    );
}

#[test]
fn a_failed_pre_check_fails_the_repository_with_the_agents_reason() {
    let mut o = observed();
    until_dispatched(&mut o);
    let id = current_check_id(&o);
    report(
        &mut o,
        &id,
        ReportedPhase::Failed,
        "pushing /prod/precheck.txt: 403 Forbidden",
    );
    let plan = step(&mut o, later(30));
    assert_eq!(phase(&o), Some(BackupRepoPhase::Failed));
    let check = condition(&o, CONDITION_PRE_CHECK_PASSED);
    assert_eq!(
        (check.status.as_str(), check.reason.as_str()),
        ("False", "PreCheckFailed")
    );
    assert_eq!(check.message, "pushing /prod/precheck.txt: 403 Forbidden");
    assert!(
        plan.intents
            .contains(&Intent::Acknowledge { action_id: id })
    );
    let warning = events(&plan)
        .into_iter()
        .find(|e| e.0 == EventType::Warning)
        .unwrap();
    assert_eq!(warning.1, "BackupRepoFailed");
    assert!(warning.2.contains("403 Forbidden"), "{}", warning.2);
}

#[test]
fn a_long_failure_reason_is_capped_at_32_kib_on_a_character_boundary() {
    let mut o = observed();
    until_dispatched(&mut o);
    let id = current_check_id(&o);
    let reason = "é".repeat(20_000);
    report(&mut o, &id, ReportedPhase::Failed, &reason);
    let plan = step(&mut o, later(30));
    let message = &condition(&o, CONDITION_PRE_CHECK_PASSED).message;
    assert_eq!(message.len(), 32 * 1024);
    assert!(message.chars().all(|c| c == 'é'));
    let warning = events(&plan)
        .into_iter()
        .find(|e| e.0 == EventType::Warning)
        .unwrap();
    assert!(warning.2.len() <= 1024);
}

#[test]
fn a_cancelled_pre_check_without_a_reason_still_fails_with_an_explanation() {
    let mut o = observed();
    until_dispatched(&mut o);
    let id = current_check_id(&o);
    report(&mut o, &id, ReportedPhase::Cancelled, "");
    step(&mut o, later(30));
    assert_eq!(phase(&o), Some(BackupRepoPhase::Failed));
    assert_eq!(
        condition(&o, CONDITION_PRE_CHECK_PASSED).message,
        "the pre-check failed without a reason"
    );
}

#[test]
fn without_a_connected_agent_the_repository_keeps_pre_checking_and_says_so() {
    let mut o = observed();
    o.agents = agents(&[]);
    for i in 0..4 {
        let plan = step(&mut o, later(i * 60));
        assert!(dispatched(&plan).is_empty());
        assert_eq!(plan.requeue, Some(settings().poll));
    }
    assert_eq!(phase(&o), Some(BackupRepoPhase::PreChecking));
    let check = condition(&o, CONDITION_PRE_CHECK_PASSED);
    assert_eq!(check.status, "Unknown");
    assert_eq!(
        check.message,
        "no node agent is connected to run the pre-check; waiting for one"
    );
    // An agent connects, much later than the timeout: the check now runs, it does not time out.
    o.agents = agents(&["node-b"]);
    let plan = step(&mut o, later(3600));
    assert_eq!(dispatched(&plan)[0].0, "node-b");
    assert_eq!(phase(&o), Some(BackupRepoPhase::PreChecking));
}

#[test]
fn a_disconnected_node_is_not_picked_for_the_pre_check() {
    let mut o = observed();
    o.agents = agents(&["node-b"]);
    o.agents.nodes.insert(
        "node-a".into(),
        NodeState {
            connected: false,
            since: now(),
        },
    );
    let plan = until_dispatched(&mut o);
    assert_eq!(dispatched(&plan)[0].0, "node-b");
}

#[test]
fn a_running_pre_check_is_waited_for_and_not_dispatched_again() {
    let mut o = observed();
    until_dispatched(&mut o);
    let id = current_check_id(&o);
    report(&mut o, &id, ReportedPhase::Running, "");
    let plan = step(&mut o, later(300));
    assert!(dispatched(&plan).is_empty());
    assert_eq!(plan.requeue, Some(settings().poll));
    assert_eq!(phase(&o), Some(BackupRepoPhase::PreChecking));
    assert_eq!(
        condition(&o, CONDITION_PRE_CHECK_PASSED).message,
        "the pre-check is running"
    );
}

#[test]
fn a_pre_check_running_for_15_minutes_fails_with_timeout() {
    let mut o = observed();
    until_dispatched(&mut o);
    let id = current_check_id(&o);
    report(&mut o, &id, ReportedPhase::Running, "");
    step(&mut o, later(15 * 60 - 1));
    assert_eq!(phase(&o), Some(BackupRepoPhase::PreChecking));
    let plan = step(&mut o, later(15 * 60));
    assert_eq!(phase(&o), Some(BackupRepoPhase::Failed));
    let check = condition(&o, CONDITION_PRE_CHECK_PASSED);
    assert_eq!(check.reason, "PreCheckFailed");
    assert_eq!(
        check.message,
        "timeout: the pre-check did not finish within 15m0s"
    );
    assert_eq!(plan.requeue, None);
    // A finished verdict is not revisited while the inputs stay the same.
    report(&mut o, &id, ReportedPhase::Succeeded, "");
    step(&mut o, later(16 * 60));
    assert_eq!(phase(&o), Some(BackupRepoPhase::Failed));
}

#[test]
fn changing_the_configuration_runs_a_new_pre_check_and_ignores_the_old_result() {
    let mut o = observed();
    make_ready(&mut o);
    let old_id = current_check_id(&o);
    o.repo.spec.config = Some(BTreeMap::from([
        ("bucket".to_string(), "other-bucket".to_string()),
        ("region".to_string(), "eu-west-1".to_string()),
    ]));
    o.repo.metadata.generation = Some(2);
    let plan = step(&mut o, later(100));
    assert_eq!(phase(&o), Some(BackupRepoPhase::PreChecking));
    let check = condition(&o, CONDITION_PRE_CHECK_PASSED);
    assert_eq!(
        (check.status.as_str(), check.reason.as_str()),
        ("Unknown", "DigestChanged")
    );
    assert_eq!(check.last_transition_time, Time(later(100)));
    assert_eq!(o.repo.status.as_ref().unwrap().observed_generation, Some(2));
    assert!(dispatched(&plan).is_empty());
    // The old check's success, reported again, is only acknowledged.
    report(&mut o, &old_id, ReportedPhase::Succeeded, "");
    let plan = step(&mut o, later(101));
    assert!(plan.intents.contains(&Intent::Acknowledge {
        action_id: old_id.clone()
    }));
    let new_id = current_check_id(&o);
    assert_ne!(new_id, old_id);
    let actions = dispatched(&plan);
    assert_eq!(actions[0].1.id, new_id);
    assert_eq!(phase(&o), Some(BackupRepoPhase::PreChecking));
    let Some(pb::action::Kind::RepoCheck(check)) = &actions[0].1.kind else {
        panic!("not a repo check");
    };
    assert!(
        check
            .storage
            .as_ref()
            .unwrap()
            .datasafed_config
            .contains("root = other-bucket")
    );
}

#[test]
fn a_changed_credential_secret_also_changes_the_digest() {
    let mut o = observed();
    make_ready(&mut o);
    let mut rotated = credential();
    rotated.insert("secretAccessKey".into(), "rotated".into());
    o.credential = Some(rotated);
    step(&mut o, later(100));
    assert_eq!(phase(&o), Some(BackupRepoPhase::PreChecking));
}

#[test]
fn a_ready_repository_with_unchanged_inputs_writes_nothing() {
    let mut o = observed();
    make_ready(&mut o);
    let plan = step(&mut o, later(500));
    assert_eq!(plan, Plan::nothing());
}

#[test]
fn condition_transition_times_are_kept_across_reconciles() {
    let mut o = observed();
    step(&mut o, now());
    make_ready(&mut o);
    let provider_ready = condition(&o, CONDITION_STORAGE_PROVIDER_READY);
    assert_eq!(provider_ready.last_transition_time, Time(now()));
}

#[test]
fn a_missing_provider_fails_the_repository_without_requeueing() {
    let mut o = observed();
    o.provider = None;
    let plan = step(&mut o, now());
    assert_eq!(phase(&o), Some(BackupRepoPhase::Failed));
    let c = condition(&o, CONDITION_STORAGE_PROVIDER_READY);
    assert_eq!(
        (c.status.as_str(), c.reason.as_str()),
        ("False", "StorageProviderNotFound")
    );
    assert_eq!(
        c.message,
        "storageproviders.dataprotection.kubeblocks.io \"s3\" not found"
    );
    assert_eq!(plan.requeue, None);
    assert!(dispatched(&plan).is_empty());
    assert!(events(&plan).iter().any(|e| {
        e.1 == "BackupRepoFailed"
            && e.2
                .contains("StorageProviderReady is False (StorageProviderNotFound)")
    }));
}

#[test]
fn a_provider_appearing_later_lets_the_repository_recover() {
    let mut o = observed();
    o.provider = None;
    step(&mut o, now());
    o.provider = Some(s3_provider());
    make_ready(&mut o);
}

#[test]
fn a_provider_without_a_datasafed_template_is_invalid_for_tool_access() {
    let mut o = observed();
    o.provider = Some(s3_provider().datasafed_template(None));
    step(&mut o, now());
    let c = condition(&o, CONDITION_STORAGE_PROVIDER_READY);
    assert_eq!(
        (c.status.as_str(), c.reason.as_str()),
        ("False", "InvalidStorageProvider")
    );
    assert_eq!(c.message, "DatasafedConfigTemplate is empty");
    assert_eq!(phase(&o), Some(BackupRepoPhase::Failed));
}

#[test]
fn tool_access_does_not_need_the_csi_driver() {
    let mut o = observed();
    o.provider = Some(s3_provider().never_checked());
    make_ready(&mut o);
}

#[test]
fn a_missing_credential_secret_fails_the_parameters_check() {
    let mut o = observed();
    o.credential = None;
    let plan = step(&mut o, now());
    let c = condition(&o, CONDITION_PARAMETERS_CHECKED);
    assert_eq!(
        (c.status.as_str(), c.reason.as_str()),
        ("False", "CredentialSecretNotFound")
    );
    assert_eq!(
        c.message,
        "failed to get secret: secrets \"s3-credential\" not found"
    );
    assert_eq!(phase(&o), Some(BackupRepoPhase::Failed));
    assert!(dispatched(&plan).is_empty());
}

#[test]
fn a_repository_without_a_credential_reference_needs_no_secret() {
    let mut o = observed();
    o.repo.spec.credential = None;
    o.credential = None;
    let plan = until_dispatched(&mut o);
    let Some(pb::action::Kind::RepoCheck(check)) = &dispatched(&plan)[0].1.kind else {
        panic!("not a repo check");
    };
    assert!(
        check
            .storage
            .as_ref()
            .unwrap()
            .datasafed_config
            .contains("access_key_id = \n")
    );
}

#[test]
fn a_template_that_does_not_render_fails_the_pre_check_with_the_reason() {
    let mut o = observed();
    o.provider =
        Some(s3_provider().datasafed_template(Some("[storage]\ntype = {{ index .Parameters ")));
    for i in 0..3 {
        let plan = step(&mut o, later(i));
        assert!(dispatched(&plan).is_empty());
    }
    assert_eq!(phase(&o), Some(BackupRepoPhase::Failed));
    let c = condition(&o, CONDITION_PRE_CHECK_PASSED);
    assert_eq!(c.reason, "PreCheckFailed");
    assert!(
        c.message
            .starts_with("failed to render tool config template: parsing datasafedConfigTemplate"),
        "{}",
        c.message
    );
}

#[test]
fn a_template_that_fails_on_a_parameter_never_puts_its_value_in_the_status_or_an_event() {
    // Every parameter counts, not only the provider's credentialFields: `sessionToken` is a key
    // of the credential Secret the provider does not list, `bucket` comes from spec.config.
    let token = "FQoGZXIvYXdzE-session-T0KEN";
    for (template, value) in [
        (
            "{{ range .Parameters.secretAccessKey }}x{{ end }}",
            SECRET_KEY,
        ),
        ("{{ range .Parameters.sessionToken }}x{{ end }}", token),
        (
            "{{ range (b64enc .Parameters.secretAccessKey) }}x{{ end }}",
            SECRET_KEY,
        ),
        ("{{ .Parameters.secretAccessKey.field }}", SECRET_KEY),
        (
            "{{ range (upper (index .Parameters \"bucket\")) }}x{{ end }}",
            "BACKUPS",
        ),
        (
            "{{ if eq .Parameters.region \"eu-west-1\" }}{{ range .Parameters.secretAccessKey }}x{{ end }}{{ end }}",
            SECRET_KEY,
        ),
    ] {
        let mut o = observed();
        o.credential
            .as_mut()
            .unwrap()
            .insert("sessionToken".into(), token.into());
        o.provider = Some(
            s3_provider().datasafed_template(Some(&format!("[storage]\ntype = s3\n{template}\n"))),
        );
        let mut plans = Vec::new();
        for i in 0..3 {
            plans.push(step(&mut o, later(i)));
        }
        assert_eq!(phase(&o), Some(BackupRepoPhase::Failed), "{template}");
        let message = &condition(&o, CONDITION_PRE_CHECK_PASSED).message;
        assert!(
            message.starts_with(
                "failed to render tool config template: rendering datasafedConfigTemplate: "
            ),
            "{message}"
        );
        let status = serde_json::to_string(&o.repo.status).unwrap();
        let event_text: Vec<String> = plans
            .iter()
            .flat_map(events)
            .map(|(_, _, message)| message)
            .collect();
        assert!(
            event_text
                .iter()
                .any(|m| m.contains("rendering datasafedConfigTemplate")),
            "{template}: {event_text:?}"
        );
        // The start of SECRET_KEY in base64, as `b64enc` would show it.
        let encoded = "d0phbHJYVXRuRkVN";
        for text in std::iter::once(&status).chain(&event_text) {
            for needle in [value, encoded] {
                assert!(!text.contains(needle), "{template}: {needle} in {text}");
            }
        }
    }
}

#[test]
fn a_provider_only_in_the_deprecated_group_is_copied_and_used() {
    let mut o = observed();
    let mut legacy = cairn_api::storage_provider::LegacyStorageProvider::new(
        "s3",
        cairn_api::storage_provider::LegacyStorageProviderSpec(s3_provider().spec),
    );
    legacy.metadata.labels = Some(BTreeMap::from([("team".into(), "storage".into())]));
    o.provider = None;
    o.legacy_provider = Some(legacy);
    let plan = step(&mut o, now());
    let copies = created(&plan, "StorageProvider");
    assert_eq!(copies.len(), 1);
    assert_eq!(
        copies[0]["apiVersion"],
        "dataprotection.kubeblocks.io/v1alpha1"
    );
    assert_eq!(copies[0]["metadata"]["name"], "s3");
    assert_eq!(copies[0]["metadata"]["labels"]["team"], "storage");
    assert_eq!(copies[0]["spec"]["csiDriverName"], "ru.yandex.s3.csi");
    assert!(copies[0].get("status").is_none());
    assert_eq!(
        condition(&o, CONDITION_STORAGE_PROVIDER_READY).status,
        "True"
    );
}

#[test]
fn the_default_annotation_sets_is_default() {
    let mut o = observed();
    o.repo.metadata.annotations = Some(BTreeMap::from([(
        well_known::annotation::DEFAULT_REPO.to_string(),
        "true".to_string(),
    )]));
    step(&mut o, now());
    assert_eq!(o.repo.status.as_ref().unwrap().is_default, Some(true));
}

#[test]
fn credentials_never_reach_the_status_events_or_annotations() {
    let mut o = observed();
    let mut plans = Vec::new();
    plans.push(until_dispatched(&mut o));
    let id = current_check_id(&o);
    report(&mut o, &id, ReportedPhase::Succeeded, "");
    plans.push(step(&mut o, later(10)));
    let status = serde_json::to_string(&o.repo.status).unwrap();
    let meta = serde_json::to_string(&o.repo.metadata).unwrap();
    assert!(!status.contains(SECRET_KEY));
    assert!(!meta.contains(SECRET_KEY));
    for plan in &plans {
        for (_, _, message) in events(plan) {
            assert!(!message.contains(SECRET_KEY));
        }
        // Only the dispatched grant holds the configuration.
        let outside_dispatch: Vec<_> = plan
            .intents
            .iter()
            .filter(|i| !matches!(i, Intent::Dispatch { .. }))
            .collect();
        assert!(!format!("{outside_dispatch:?}").contains(SECRET_KEY));
    }
}

#[test]
fn waiting_backups_and_restores_of_a_ready_tool_repository_just_lose_the_wait_label() {
    let mut o = observed();
    make_ready(&mut o);
    o.backups = vec![
        backup("b1", "team-a").waiting_for_its_repo(),
        backup("b2", "team-a"),
    ];
    o.restores = vec![restore("r1", "team-b").waiting_for_its_repo()];
    let plan = step(&mut o, later(600));
    assert!(created(&plan, "PersistentVolumeClaim").is_empty());
    let patched: Vec<_> = plan
        .intents
        .iter()
        .filter_map(|i| match i {
            Intent::PatchLabels {
                kind,
                namespace,
                name,
                labels,
                ..
            } => Some((
                kind.as_str(),
                namespace.as_deref().unwrap_or_default(),
                name.as_str(),
                labels.clone(),
            )),
            _ => None,
        })
        .collect();
    let removal = BTreeMap::from([(well_known::label::WAIT_REPO_PREPARATION.to_string(), None)]);
    assert_eq!(
        patched,
        vec![
            ("Backup", "team-a", "b1", removal.clone()),
            ("Restore", "team-b", "r1", removal),
        ]
    );
}

#[test]
fn waiting_objects_are_left_waiting_until_the_repository_is_ready() {
    let mut o = observed();
    o.backups = vec![backup("b1", "team-a").waiting_for_its_repo()];
    let plan = step(&mut o, now());
    assert!(
        !plan
            .intents
            .iter()
            .any(|i| matches!(i, Intent::PatchLabels { .. }))
    );
}

#[test]
fn failed_backups_and_restores_are_not_prepared_but_failed_continuous_backups_are() {
    let mut o = observed();
    make_ready(&mut o);
    o.backups = vec![
        backup("failed", "team-a")
            .waiting_for_its_repo()
            .in_phase(BackupPhase::Failed),
        backup("pitr", "team-a")
            .waiting_for_its_repo()
            .continuous()
            .in_phase(BackupPhase::Failed),
    ];
    o.restores = vec![
        restore("r-failed", "team-a")
            .waiting_for_its_repo()
            .in_phase(RestorePhase::Failed),
    ];
    let plan = step(&mut o, later(600));
    let names: Vec<_> = plan
        .intents
        .iter()
        .filter_map(|i| match i {
            Intent::PatchLabels { name, .. } => Some(name.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(names, vec!["pitr"]);
}

#[test]
fn objects_of_another_repository_are_not_touched() {
    let mut o = observed();
    make_ready(&mut o);
    o.backups = vec![
        backup("b1", "team-a")
            .of_repo("repo2")
            .waiting_for_its_repo(),
    ];
    let plan = step(&mut o, later(600));
    assert_eq!(plan, Plan::nothing());
}

#[test]
fn access_gives_agents_the_rendered_configuration_of_a_tool_repository() {
    let o = observed();
    let access = access(&o).unwrap();
    assert_eq!(access.repo_name, "repo1");
    assert!(
        access
            .datasafed_config
            .contains(&format!("secret_access_key = {SECRET_KEY}"))
    );
    assert_eq!(access.mount_claim, None);
    assert!(!format!("{access:?}").contains(SECRET_KEY));
}

#[test]
fn access_says_why_it_is_unavailable() {
    let mut o = observed();
    o.credential = None;
    assert_eq!(
        access(&o).unwrap_err().to_string(),
        "credential secret cairn-system/s3-credential not found"
    );
    o.provider = None;
    assert_eq!(
        access(&o).unwrap_err().to_string(),
        "storage provider s3 not found"
    );
    let mut broken = observed();
    broken.provider = Some(s3_provider().datasafed_template(Some("{{ x")));
    let err = access(&broken).unwrap_err();
    assert_eq!(
        err.to_string(),
        "rendering the access of backup repository repo1"
    );
}
