//! What happens when a BackupPolicy is created, changed or deleted (ARCHITECTURE.md §K1.3).
//!
//! # Expected flow
//! 1. The data-protection finalizer is added on the first reconcile.
//! 2. A policy whose current generation was already found `Available` is left alone.
//! 3. Otherwise it is validated with `cairn_api::validate::backup_policy` and gets `status.phase`
//!    `Available` or `Unavailable`, `status.message` (the problems, KubeBlocks' texts such as
//!    `target name can not be empty when using "targets" field`) and `status.observedGeneration`,
//!    with KubeBlocks' `CreatedCR` event at generation 1 and a Warning `ValidationFailed` event
//!    listing the problems with their field paths.
//! 4. Deletion only removes the finalizer; nothing cascades.
//!
//! # Departures from KubeBlocks
//! KubeBlocks only checks target names. Cairn's validation also checks method names, that each
//! method has `snapshotVolumes` or `actionSetName`, `targetVolumes` for snapshots, the exclusive
//! `target`/`targets` and the label selectors, so such a policy is `Unavailable` here rather than
//! failing every Backup later. KubeBlocks sets no event when a policy is Unavailable.
//!
//! The flow is the ActionSet planner's ([`super::actionset::plan_validated`]).

use cairn_api::backup_policy::{BackupPolicy, BackupPolicyStatus};
use cairn_api::common::EncryptionAlgorithm;
use cairn_api::validate;

use super::actionset::{Verdict, ignored_fields_warning, plan_validated};
use super::intent::{Intent, Plan};

/// Everything the BackupPolicy planner reads.
#[derive(Debug, Clone)]
pub struct Observed {
    pub policy: BackupPolicy,
}

/// Plans one reconcile of a BackupPolicy.
pub fn plan(o: &Observed) -> Plan<BackupPolicyStatus> {
    let policy = &o.policy;
    let current = policy.status.clone().unwrap_or_default();
    let mut plan = plan_validated(
        &policy.metadata,
        "backuppolicy",
        &Verdict {
            phase: current.phase,
            message: current.message.clone(),
            observed_generation: current.observed_generation,
        },
        || validate::backup_policy(policy),
    )
    .map_status(|v| BackupPolicyStatus {
        phase: v.phase,
        message: v.message,
        observed_generation: v.observed_generation,
    });
    // Once per generation (when the policy is validated): say which format encrypted backups
    // get, since every algorithm KubeBlocks names is AES-CFB (docs/FORMAT.md §3.3, §3.3.1).
    if let Some(config) = &policy.spec.encryption_config
        && policy.metadata.deletion_timestamp.is_none()
        && current.observed_generation != policy.metadata.generation
        && plan.status.is_some()
    {
        plan.intents.push(Intent::warning(
            "EncryptionFormat",
            encryption_format_message(config.algorithm),
        ));
    }
    plan.intents.extend(ignored_fields_warning(
        &policy.metadata,
        current.observed_generation,
        plan.status.is_some(),
        &cairn_api::ignored::backup_policy(policy),
    ));
    plan
}

/// What the `EncryptionFormat` Warning says about a policy's encryption algorithm.
fn encryption_format_message(algorithm: EncryptionAlgorithm) -> String {
    let name = match algorithm {
        EncryptionAlgorithm::Aes128Cfb => "AES-128-CFB",
        EncryptionAlgorithm::Aes192Cfb => "AES-192-CFB",
        EncryptionAlgorithm::Aes256Cfb => "AES-256-CFB",
    };
    format!(
        "spec.encryptionConfig.algorithm is {name}: Cairn writes new backups encrypted with AES-256-GCM in its authenticated format (CAIRNSE1), not {name}, so KubeBlocks' datasafed cannot read them; backups KubeBlocks wrote with {name} are still read"
    )
}

#[cfg(test)]
mod tests {
    use cairn_api::common::Phase;
    use serde_json::json;

    use super::*;
    use crate::plan::intent::{EventType, Intent};

    fn policy(extra: serde_json::Value) -> Observed {
        let mut value = json!({
            "apiVersion": "dataprotection.kubeblocks.io/v1alpha1",
            "kind": "BackupPolicy",
            "metadata": {"name": "pg-policy", "namespace": "default", "generation": 1,
                         "finalizers": [cairn_api::well_known::FINALIZER]},
            "spec": {
                "backupRepoName": "repo1",
                "targets": [
                    {"name": "primary", "podSelector": {"matchLabels": {"role": "primary"}}},
                    {"name": "replica", "podSelector": {"matchLabels": {"role": "replica"}}}
                ],
                "backupMethods": [{"name": "basebackup", "actionSetName": "pg-basebackup"}]
            }
        });
        json_patch::merge(&mut value, &extra);
        Observed {
            policy: serde_json::from_value(value).unwrap(),
        }
    }

    fn with_targets(targets: serde_json::Value) -> Observed {
        let mut o = policy(json!({}));
        o.policy.spec.targets = serde_json::from_value(targets).unwrap();
        o
    }

    #[test]
    fn a_valid_policy_becomes_available() {
        let plan = plan(&policy(json!({})));
        let status = plan.status.clone().unwrap();
        assert_eq!(status.phase, Some(Phase::Available));
        assert_eq!(status.message, None);
        assert_eq!(status.observed_generation, Some(1));
        assert_eq!(
            plan.intents,
            vec![Intent::normal(
                "CreatedCR",
                "Created backuppolicy: pg-policy"
            )]
        );
    }

    #[test]
    fn an_encrypted_policy_gets_a_warning_naming_the_format_cairn_writes_once_per_generation() {
        let encrypted = json!({"spec": {"encryptionConfig": {"algorithm": "AES-128-CFB",
            "passPhraseSecretKeyRef": {"name": "s", "key": "k"}}}});
        let plan = plan(&policy(encrypted.clone()));
        let warning = warning(&plan, "EncryptionFormat").expect("an EncryptionFormat warning");
        assert!(warning.contains("AES-128-CFB"), "{warning}");
        assert!(warning.contains("AES-256-GCM"), "{warning}");
        // The next reconcile of the same generation says nothing again.
        let mut again = policy(encrypted);
        again.policy.status = plan.status.clone();
        assert!(super::plan(&again).intents.is_empty());
        // Without encryption there is no such warning.
        assert!(!plan_has_reason(
            &super::plan(&policy(json!({}))),
            "EncryptionFormat"
        ));
    }

    #[test]
    fn fields_cairn_does_not_act_on_get_one_warning_per_generation_naming_them() {
        let extra = json!({"spec": {"useKopia": true, "targets": [
            {"name": "primary", "podSelector": {"matchLabels": {"role": "primary"},
                                                "useParentSelectedPods": true}},
            {"name": "replica", "podSelector": {"matchLabels": {"role": "replica"}}}
        ]}});
        let plan = plan(&policy(extra.clone()));
        let warning = warning(&plan, "IgnoredField").expect("an IgnoredField warning");
        assert!(
            !warning.contains("useKopia"),
            "useKopia is acted on: {warning}"
        );
        assert!(
            warning.contains(
                "spec.targets[0].podSelector.useParentSelectedPods is set but not acted on"
            ),
            "{warning}"
        );
        // The same generation again: nothing more.
        let mut again = policy(extra.clone());
        again.policy.status = plan.status.clone();
        assert!(!plan_has_reason(&super::plan(&again), "IgnoredField"));
        // A new generation: said again.
        again.policy.metadata.generation = Some(2);
        assert!(plan_has_reason(&super::plan(&again), "IgnoredField"));
        // A policy without such fields: no warning.
        assert!(!plan_has_reason(
            &super::plan(&policy(json!({}))),
            "IgnoredField"
        ));
    }

    fn warning(plan: &Plan<BackupPolicyStatus>, wanted: &str) -> Option<String> {
        plan.intents.iter().find_map(|i| match i {
            Intent::Event {
                type_: EventType::Warning,
                reason,
                message,
            } if reason == wanted => Some(message.clone()),
            _ => None,
        })
    }

    fn plan_has_reason(plan: &Plan<BackupPolicyStatus>, wanted: &str) -> bool {
        plan.intents
            .iter()
            .any(|i| matches!(i, Intent::Event { reason, .. } if reason == wanted))
    }

    #[test]
    fn the_finalizer_is_added_on_the_first_reconcile() {
        let plan = plan(&policy(json!({"metadata": {"finalizers": ["other"]}})));
        assert_eq!(plan.intents[0], Intent::AddFinalizer);
    }

    #[test]
    fn a_target_without_a_name_makes_the_policy_unavailable() {
        let plan = plan(&with_targets(json!([
            {"podSelector": {"matchLabels": {"role": "primary"}}}
        ])));
        let status = plan.status.clone().unwrap();
        assert_eq!(status.phase, Some(Phase::Unavailable));
        assert_eq!(
            status.message.as_deref(),
            Some("target name can not be empty when using \"targets\" field")
        );
        assert!(plan.intents.iter().any(|i| matches!(
            i,
            Intent::Event { type_: EventType::Warning, reason, message }
                if reason == "ValidationFailed" && message.contains("spec.targets[0].name")
        )));
    }

    #[test]
    fn duplicated_target_names_make_the_policy_unavailable() {
        let plan = plan(&with_targets(json!([
            {"name": "a", "podSelector": {"matchLabels": {"role": "primary"}}},
            {"name": "a", "podSelector": {"matchLabels": {"role": "replica"}}}
        ])));
        assert_eq!(
            plan.status.unwrap().message.as_deref(),
            Some("the target name can not be duplicated when using \"targets\" field")
        );
    }

    #[test]
    fn targets_of_a_method_are_checked_too() {
        let plan = plan(&policy(json!({"spec": {"backupMethods": [{
            "name": "basebackup", "actionSetName": "pg-basebackup",
            "targets": [{"name": "", "podSelector": {"matchLabels": {"a": "b"}}}]
        }]}})));
        let status = plan.status.unwrap();
        assert_eq!(status.phase, Some(Phase::Unavailable));
        assert_eq!(
            status.message.as_deref(),
            Some("target name can not be empty when using \"targets\" field")
        );
    }

    #[test]
    fn a_method_with_neither_snapshot_nor_actionset_is_unavailable_in_cairn() {
        let plan = plan(&policy(json!({"spec": {"backupMethods": [{"name": "m"}]}})));
        assert_eq!(
            plan.status.unwrap().message.as_deref(),
            Some("backup method m should specify snapshotVolumes or actionSetName")
        );
    }

    #[test]
    fn an_available_policy_of_the_observed_generation_is_left_alone() {
        let plan = plan(&policy(json!({"status": {
            "phase": "Available", "observedGeneration": 1
        }})));
        assert_eq!(plan, Plan::nothing());
    }

    #[test]
    fn a_changed_policy_is_validated_again_without_a_created_event() {
        let plan = plan(&policy(json!({
            "metadata": {"generation": 4},
            "status": {"phase": "Available", "observedGeneration": 3}
        })));
        let status = plan.status.clone().unwrap();
        assert_eq!(status.observed_generation, Some(4));
        assert_eq!(status.phase, Some(Phase::Available));
        assert!(plan.intents.is_empty());
    }

    #[test]
    fn deletion_removes_the_finalizer_and_nothing_else() {
        let plan = plan(&policy(json!({"metadata": {
            "deletionTimestamp": "2026-11-22T10:00:00Z"
        }})));
        assert_eq!(plan.status, None);
        assert_eq!(
            plan.intents,
            vec![
                Intent::normal("DeletingCR", "Deleting backuppolicy: pg-policy"),
                Intent::RemoveFinalizer,
                Intent::normal("DeletedCR", "Deleted backuppolicy: pg-policy"),
            ]
        );
    }
}
