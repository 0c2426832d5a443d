//! BackupTool and RestoreJob, KubeBlocks' old API (≤ 0.6), converted on the fly
//! (ARCHITECTURE.md §K1.8): such an object applied to the cluster becomes the new-API object
//! `cairnctl convert` would print (an ActionSet of the same name, a Restore of the same name and
//! namespace), created once and marked `cairn.io/converted-from`; the fields without an
//! equivalent are listed in one Warning event `ConversionWarning` on the old object. When an
//! object of that name exists and was not converted from it, nothing is created and a Warning
//! `NotConverted` says why and points at `cairnctl convert`, so the old object is never stored
//! and silently ignored. Later edits of the old object are not propagated (as for the
//! deprecated StorageProvider, §K8 S18): the new object is the one to edit.

use cairn_api::actionset::ActionSet;
use cairn_api::legacy::backup_tool::BackupTool;
use cairn_api::legacy::convert::{self, Warning};
use cairn_api::legacy::restore_job::RestoreJob;
use cairn_api::restore::Restore;
use cairn_api::well_known;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Serialize;

use super::intent::{Intent, Plan};

/// Plans one reconcile of a BackupTool; `existing` is the ActionSet of its name, if any.
pub fn backup_tool(tool: &BackupTool, existing: Option<&ActionSet>) -> Plan<()> {
    if tool.metadata.deletion_timestamp.is_some() {
        return Plan::nothing();
    }
    let (actionset, warnings) = convert::backup_tool::convert(tool);
    plan(
        &tool.metadata,
        "BackupTool",
        "ActionSet",
        &actionset,
        warnings,
        existing.map(|a| &a.metadata),
    )
}

/// Plans one reconcile of a RestoreJob; `existing` is the Restore of its name, if any.
pub fn restore_job(job: &RestoreJob, existing: Option<&Restore>) -> Plan<()> {
    if job.metadata.deletion_timestamp.is_some() {
        return Plan::nothing();
    }
    let (restore, warnings) = convert::restore_job::convert(job);
    plan(
        &job.metadata,
        "RestoreJob",
        "Restore",
        &restore,
        warnings,
        existing.map(|r| &r.metadata),
    )
}

fn plan<T: Serialize>(
    old: &ObjectMeta,
    old_kind: &str,
    new_kind: &str,
    converted: &T,
    warnings: Vec<Warning>,
    existing: Option<&ObjectMeta>,
) -> Plan<()> {
    let name = old.name.clone().unwrap_or_default();
    let marker = format!("{old_kind}/{name}");
    let ours = |meta: &ObjectMeta| {
        meta.annotations
            .as_ref()
            .and_then(|a| a.get(well_known::annotation::CONVERTED_FROM))
            == Some(&marker)
    };
    match existing {
        Some(meta) if ours(meta) => Plan::nothing(),
        Some(_) => Plan {
            status: None,
            intents: vec![Intent::warning(
                "NotConverted",
                format!(
                    "{old_kind} {name} is KubeBlocks' old API, which Cairn does not run, and a {new_kind} named {name} already exists that was not converted from it: nothing was created. Convert it under another name with `cairnctl convert -f FILE` and apply the result, then delete this {old_kind}"
                ),
            )],
            requeue: None,
        },
        None => {
            let mut object = match serde_json::to_value(converted) {
                Ok(object) => object,
                Err(err) => {
                    return Plan {
                        status: None,
                        intents: vec![Intent::warning(
                            "NotConverted",
                            format!(
                                "{old_kind} {name} could not be converted ({err}); use `cairnctl convert -f FILE` and apply the result"
                            ),
                        )],
                        requeue: None,
                    };
                }
            };
            object["metadata"]["annotations"][well_known::annotation::CONVERTED_FROM] =
                serde_json::Value::String(marker);
            let mut intents = vec![
                Intent::Create { object },
                Intent::normal(
                    "Converted",
                    format!(
                        "{old_kind} is KubeBlocks' old API: converted to {new_kind} {name} (what `cairnctl convert` prints), which Cairn runs; edit the {new_kind} from now on, changes to this {old_kind} are not carried over"
                    ),
                ),
            ];
            if !warnings.is_empty() {
                let fields: Vec<String> = warnings
                    .iter()
                    .map(|w| format!("{}: {}", w.path, w.message))
                    .collect();
                intents.push(Intent::warning(
                    "ConversionWarning",
                    format!(
                        "fields of {old_kind} {name} without an equivalent in {new_kind} {name}: {}",
                        fields.join("; ")
                    ),
                ));
            }
            Plan {
                status: None,
                intents,
                requeue: None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::plan::intent::EventType;

    fn tool() -> BackupTool {
        serde_json::from_value(json!({
            "apiVersion": "dataprotection.kubeblocks.io/v1alpha1", "kind": "BackupTool",
            "metadata": {"name": "xtrabackup"},
            "spec": {"image": "percona-xtrabackup:8", "deployKind": "job",
                     "backupCommands": ["sh", "-c", "xtrabackup --backup"],
                     "physical": {"restoreCommands": ["sh", "-c", "xtrabackup --prepare"]},
                     "incrementalBackupCommands": ["sh", "-c", "inc"]}
        }))
        .unwrap()
    }

    fn created(plan: &Plan<()>) -> Option<&serde_json::Value> {
        plan.intents.iter().find_map(|i| match i {
            Intent::Create { object } => Some(object),
            _ => None,
        })
    }

    fn event(plan: &Plan<()>, reason: &str) -> Option<(EventType, String)> {
        plan.intents.iter().find_map(|i| match i {
            Intent::Event {
                type_,
                reason: r,
                message,
            } if r == reason => Some((*type_, message.clone())),
            _ => None,
        })
    }

    #[test]
    fn a_backup_tool_becomes_the_actionset_convert_prints_marked_as_converted() {
        let plan = backup_tool(&tool(), None);
        let object = created(&plan).expect("an ActionSet is created");
        assert_eq!(object["kind"], "ActionSet");
        assert_eq!(object["metadata"]["name"], "xtrabackup");
        assert_eq!(
            object["metadata"]["annotations"][well_known::annotation::CONVERTED_FROM],
            "BackupTool/xtrabackup"
        );
        let (offline, _) = convert::backup_tool::convert(&tool());
        assert_eq!(
            object["spec"],
            serde_json::to_value(&offline).unwrap()["spec"]
        );
        let (kind, message) = event(&plan, "Converted").unwrap();
        assert_eq!(kind, EventType::Normal);
        assert!(
            message.contains("converted to ActionSet xtrabackup"),
            "{message}"
        );
    }

    #[test]
    fn fields_without_an_equivalent_are_named_in_one_warning() {
        let plan = backup_tool(&tool(), None);
        let (kind, message) = event(&plan, "ConversionWarning").expect("a warning");
        assert_eq!(kind, EventType::Warning);
        assert!(
            message.contains("spec.incrementalBackupCommands"),
            "{message}"
        );
    }

    #[test]
    fn once_converted_nothing_more_happens() {
        let plan = backup_tool(&tool(), None);
        let actionset: ActionSet = serde_json::from_value(created(&plan).unwrap().clone()).unwrap();
        assert_eq!(backup_tool(&tool(), Some(&actionset)), Plan::nothing());
    }

    #[test]
    fn an_actionset_of_the_same_name_that_is_not_ours_is_left_alone_with_a_warning() {
        let (mut other, _) = convert::backup_tool::convert(&tool());
        other.metadata.annotations = None;
        let plan = backup_tool(&tool(), Some(&other));
        assert!(created(&plan).is_none());
        let (kind, message) = event(&plan, "NotConverted").unwrap();
        assert_eq!(kind, EventType::Warning);
        assert!(message.contains("cairnctl convert"), "{message}");
    }

    #[test]
    fn a_restore_job_becomes_a_restore_in_its_namespace() {
        let job: RestoreJob = serde_json::from_value(json!({
            "apiVersion": "dataprotection.kubeblocks.io/v1alpha1", "kind": "RestoreJob",
            "metadata": {"name": "r1", "namespace": "prod"},
            "spec": {"backupJobName": "b1", "target": {"labelsSelector": {"matchLabels": {"app": "db"}}},
                     "targetVolumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data-db-0"}}],
                     "targetVolumeMounts": [{"name": "data", "mountPath": "/data"}]}
        }))
        .unwrap();
        let plan = restore_job(&job, None);
        let object = created(&plan).expect("a Restore is created");
        assert_eq!(object["kind"], "Restore");
        assert_eq!(object["metadata"]["namespace"], "prod");
        assert_eq!(object["spec"]["backup"]["name"], "b1");
        assert_eq!(
            object["metadata"]["annotations"][well_known::annotation::CONVERTED_FROM],
            "RestoreJob/r1"
        );
    }
}
