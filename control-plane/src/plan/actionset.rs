//! What happens when an ActionSet is created, changed or deleted (ARCHITECTURE.md §K1.1).
//!
//! # Expected flow
//! 1. The data-protection finalizer is added on the first reconcile.
//! 2. An ActionSet whose current generation was already found `Available` is left alone.
//! 3. Otherwise it is validated with `cairn_api::validate::actionset` and gets `status.phase`
//!    `Available` or `Unavailable`, `status.message` (the problems, KubeBlocks' texts) and
//!    `status.observedGeneration`. A `CreatedCR` event marks generation 1, as in KubeBlocks; a
//!    Warning `ValidationFailed` event lists the problems with their field paths.
//! 4. Deletion only removes the finalizer (with `DeletingCR`/`DeletedCR` events).
//!
//! # Departures from KubeBlocks
//! KubeBlocks only checks `withParameters` against `parametersSchema`. Cairn's validation also
//! checks each action (exactly one of `exec`/`job`, a parseable `exec.timeout`) and the schema
//! itself, so such an ActionSet is `Unavailable` here. As in KubeBlocks, an Unavailable ActionSet
//! does not stop Backups from using it.
//!
//! [`plan_validated`] is the flow shared with the BackupPolicy planner.

use cairn_api::actionset::{ActionSet, ActionSetStatus};
use cairn_api::common::Phase;
use cairn_api::validate::{self, Problem, Severity};
use cairn_api::well_known;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::intent::{Intent, Plan};

/// Everything the ActionSet planner reads.
#[derive(Debug, Clone)]
pub struct Observed {
    pub actionset: ActionSet,
}

/// Plans one reconcile of an ActionSet.
pub fn plan(o: &Observed) -> Plan<ActionSetStatus> {
    let actionset = &o.actionset;
    let current = actionset.status.clone().unwrap_or_default();
    let verdict = plan_validated(
        &actionset.metadata,
        "actionset",
        &Verdict {
            phase: current.phase,
            message: current.message.clone(),
            observed_generation: current.observed_generation,
        },
        || validate::actionset(actionset),
    );
    let mut plan = verdict.map_status(|v| ActionSetStatus {
        phase: v.phase,
        message: v.message,
        observed_generation: v.observed_generation,
    });
    plan.intents.extend(ignored_fields_warning(
        &actionset.metadata,
        current.observed_generation,
        plan.status.is_some(),
        &cairn_api::ignored::actionset(actionset),
    ));
    plan
}

/// The `IgnoredField` Warning (§K8 S22): once per generation, when the object is validated
/// (`validated`: the plan writes a status), naming every field set that Cairn does not act on.
pub fn ignored_fields_warning(
    meta: &ObjectMeta,
    observed_generation: Option<i64>,
    validated: bool,
    fields: &[cairn_api::ignored::IgnoredField],
) -> Option<Intent> {
    if meta.deletion_timestamp.is_some() || observed_generation == meta.generation || !validated {
        return None;
    }
    cairn_api::ignored::message(fields).map(|text| Intent::warning("IgnoredField", text))
}

/// The status fields an ActionSet and a BackupPolicy share.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Verdict {
    pub phase: Option<Phase>,
    pub message: Option<String>,
    pub observed_generation: Option<i64>,
}

/// The finalizer / skip / validate / delete flow of a validated kind (`kind` is the lowercase
/// kind name used in event messages). `validate` runs only when the object needs it.
pub fn plan_validated(
    meta: &ObjectMeta,
    kind: &str,
    current: &Verdict,
    validate: impl FnOnce() -> Vec<Problem>,
) -> Plan<Verdict> {
    let name = meta.name.as_deref().unwrap_or_default();
    let has_finalizer = meta
        .finalizers
        .iter()
        .flatten()
        .any(|f| f == well_known::FINALIZER);
    if meta.deletion_timestamp.is_some() {
        if !has_finalizer {
            return Plan::nothing();
        }
        return Plan {
            status: None,
            intents: vec![
                Intent::normal("DeletingCR", format!("Deleting {kind}: {name}")),
                Intent::RemoveFinalizer,
                Intent::normal("DeletedCR", format!("Deleted {kind}: {name}")),
            ],
            requeue: None,
        };
    }
    let mut intents = Vec::new();
    if !has_finalizer {
        intents.push(Intent::AddFinalizer);
    }
    if current.observed_generation == meta.generation && current.phase == Some(Phase::Available) {
        return Plan {
            status: None,
            intents,
            requeue: None,
        };
    }
    let errors: Vec<Problem> = validate()
        .into_iter()
        .filter(|p| p.severity == Severity::Error)
        .collect();
    let verdict = if errors.is_empty() {
        Verdict {
            phase: Some(Phase::Available),
            message: None,
            observed_generation: meta.generation,
        }
    } else {
        Verdict {
            phase: Some(Phase::Unavailable),
            message: Some(
                errors
                    .iter()
                    .map(|p| p.message.as_str())
                    .collect::<Vec<_>>()
                    .join("; "),
            ),
            observed_generation: meta.generation,
        }
    };
    if &verdict != current {
        if meta.generation == Some(1) {
            intents.push(Intent::normal(
                "CreatedCR",
                format!("Created {kind}: {name}"),
            ));
        }
        if !errors.is_empty() {
            intents.push(Intent::warning(
                "ValidationFailed",
                format!(
                    "{kind} {name} is Unavailable: {}",
                    errors
                        .iter()
                        .map(Problem::to_string)
                        .collect::<Vec<_>>()
                        .join("; ")
                ),
            ));
        }
    }
    Plan {
        status: Some(verdict),
        intents,
        requeue: None,
    }
}

impl Plan<Verdict> {
    /// The same plan with its status converted to the kind's status type.
    pub fn map_status<S>(self, convert: impl FnOnce(Verdict) -> S) -> Plan<S> {
        Plan {
            status: self.status.map(convert),
            intents: self.intents,
            requeue: self.requeue,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::plan::intent::EventType;

    fn actionset(extra: serde_json::Value) -> ActionSet {
        let mut value = json!({
            "apiVersion": "dataprotection.kubeblocks.io/v1alpha1",
            "kind": "ActionSet",
            "metadata": {"name": "pg-basebackup", "generation": 1,
                         "finalizers": [well_known::FINALIZER]},
            "spec": {
                "backupType": "Full",
                "parametersSchema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "databases": {"type": "array", "items": {"type": "string"}}}}},
                "backup": {
                    "backupData": {"image": "postgres:16", "command": ["sh", "-c", "backup"]},
                    "withParameters": ["databases"]
                },
                "restore": {"prepareData": {"image": "postgres:16", "command": ["restore"]}}
            }
        });
        json_patch::merge(&mut value, &extra);
        serde_json::from_value(value).unwrap()
    }

    fn observed(extra: serde_json::Value) -> Observed {
        Observed {
            actionset: actionset(extra),
        }
    }

    fn events(plan: &Plan<ActionSetStatus>) -> Vec<(EventType, String, String)> {
        plan.intents
            .iter()
            .filter_map(|i| match i {
                Intent::Event {
                    type_,
                    reason,
                    message,
                } => Some((*type_, reason.clone(), message.clone())),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_valid_actionset_becomes_available_with_its_generation_observed() {
        let plan = plan(&observed(json!({})));
        let status = plan.status.clone().unwrap();
        assert_eq!(status.phase, Some(Phase::Available));
        assert_eq!(status.message, None);
        assert_eq!(status.observed_generation, Some(1));
        assert_eq!(
            events(&plan),
            vec![(
                EventType::Normal,
                "CreatedCR".into(),
                "Created actionset: pg-basebackup".into()
            )]
        );
    }

    #[test]
    fn sync_progress_it_does_not_use_gets_an_ignored_field_warning_once_per_generation() {
        let extra = json!({"spec": {"backup": {"backupData": {
            "syncProgress": {"enabled": true, "intervalSeconds": 5}}}}});
        let plan = plan(&observed(extra.clone()));
        let warnings: Vec<_> = events(&plan)
            .into_iter()
            .filter(|(t, r, _)| *t == EventType::Warning && r == "IgnoredField")
            .collect();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0]
                .2
                .starts_with("spec.backup.backupData.syncProgress is set but not acted on"),
            "{warnings:?}"
        );
        let mut again = observed(extra);
        again.actionset.status = plan.status.clone();
        assert!(events(&super::plan(&again)).is_empty());
    }

    #[test]
    fn the_finalizer_is_added_on_the_first_reconcile() {
        let plan = plan(&observed(json!({"metadata": {"finalizers": null}})));
        assert_eq!(plan.intents[0], Intent::AddFinalizer);
        assert!(plan.status.is_some());
    }

    #[test]
    fn an_undeclared_parameter_makes_it_unavailable_with_kubeblocks_message() {
        let plan = plan(&observed(
            json!({"spec": {"backup": {"withParameters": ["databases", "tables"]}}}),
        ));
        let status = plan.status.clone().unwrap();
        assert_eq!(status.phase, Some(Phase::Unavailable));
        assert_eq!(
            status.message.as_deref(),
            Some(
                "fails to validate backup withParameters: parameter tables is not defined in the parametersSchema"
            )
        );
        let warnings: Vec<_> = events(&plan)
            .into_iter()
            .filter(|e| e.0 == EventType::Warning)
            .collect();
        assert_eq!(warnings.len(), 1);
        assert_eq!(warnings[0].1, "ValidationFailed");
        assert!(
            warnings[0]
                .2
                .contains("spec.backup.withParameters[1]: fails to validate backup withParameters"),
            "{}",
            warnings[0].2
        );
    }

    #[test]
    fn with_parameters_without_a_schema_is_reported_for_backup_and_restore() {
        let plan = plan(&observed(json!({"spec": {
            "parametersSchema": null,
            "restore": {"withParameters": ["x"]}
        }})));
        assert_eq!(
            plan.status.unwrap().message.as_deref(),
            Some(
                "fails to validate backup withParameters: the parametersSchema is invalid; \
                 fails to validate restore withParameters: the parametersSchema is invalid"
            )
        );
    }

    #[test]
    fn an_action_with_both_exec_and_job_is_unavailable_in_cairn() {
        let plan = plan(&observed(json!({"spec": {"backup": {"preBackup": [
            {"exec": {"command": ["true"]}, "job": {"image": "x", "command": ["true"]}}
        ]}}})));
        let status = plan.status.unwrap();
        assert_eq!(status.phase, Some(Phase::Unavailable));
        assert_eq!(
            status.message.as_deref(),
            Some("action should have only one of exec or job")
        );
    }

    #[test]
    fn an_available_actionset_of_the_observed_generation_is_left_alone() {
        let plan = plan(&observed(json!({"status": {
            "phase": "Available", "observedGeneration": 1
        }})));
        assert_eq!(plan, Plan::nothing());
    }

    #[test]
    fn a_new_generation_is_validated_again() {
        let plan = plan(&observed(json!({
            "metadata": {"generation": 2},
            "spec": {"backup": {"withParameters": ["nope"]}},
            "status": {"phase": "Available", "observedGeneration": 1}
        })));
        let status = plan.status.clone().unwrap();
        assert_eq!(status.phase, Some(Phase::Unavailable));
        assert_eq!(status.observed_generation, Some(2));
        // Not generation 1: no CreatedCR event.
        assert!(events(&plan).iter().all(|e| e.1 != "CreatedCR"));
    }

    #[test]
    fn an_unavailable_actionset_is_checked_again_and_recovers_when_fixed() {
        let plan = plan(&observed(json!({
            "metadata": {"generation": 3},
            "status": {"phase": "Unavailable", "observedGeneration": 3, "message": "old"}
        })));
        let status = plan.status.unwrap();
        assert_eq!(status.phase, Some(Phase::Available));
        assert_eq!(status.message, None);
    }

    #[test]
    fn an_unchanged_unavailable_verdict_emits_no_event_again() {
        let first = plan(&observed(
            json!({"spec": {"backup": {"withParameters": ["nope"]}}}),
        ));
        let mut again = observed(json!({"spec": {"backup": {"withParameters": ["nope"]}}}));
        again.actionset.status = first.status.clone();
        let second = plan(&again);
        assert_eq!(second.status, first.status);
        assert!(events(&second).is_empty());
    }

    #[test]
    fn deletion_only_removes_the_finalizer() {
        let plan = plan(&observed(json!({"metadata": {
            "deletionTimestamp": "2026-11-22T10:00:00Z"
        }})));
        assert_eq!(plan.status, None);
        assert_eq!(
            plan.intents,
            vec![
                Intent::normal("DeletingCR", "Deleting actionset: pg-basebackup"),
                Intent::RemoveFinalizer,
                Intent::normal("DeletedCR", "Deleted actionset: pg-basebackup"),
            ]
        );
    }

    #[test]
    fn a_deleted_actionset_without_the_finalizer_needs_nothing() {
        let plan = plan(&observed(json!({"metadata": {
            "deletionTimestamp": "2026-11-22T10:00:00Z", "finalizers": null
        }})));
        assert_eq!(plan, Plan::nothing());
    }
}
