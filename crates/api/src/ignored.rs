//! Fields the API accepts that Cairn reads but does not act on, per kind, so that the planners
//! say so (a Warning event `IgnoredField` once per object generation, ARCHITECTURE.md §K8 S22)
//! instead of accepting them in silence.
//!
//! The list comes from walking the API types against what the control plane and the agent read
//! (every field of `crates/api/src/{actionset,action,backup_policy,target,backup,restore}.rs`
//! searched in `control-plane/src` and `node-agent/src`):
//! - `target(s)[].resources` (policy and method): Kubernetes-resource backups are not made
//!   (KubeBlocks accepts the field and does not implement it either).
//! - `target(s)[].podSelector.useParentSelectedPods`: pods are selected afresh for every backup.
//! - ActionSet `spec.backup.backupData.syncProgress`: progress comes from the bytes the agent
//!   moves for `datasafed`, continuously; the interval and the switch change nothing.
//! - ActionSet `spec.backup.backupData.onError`: a failed backupData always fails the backup
//!   (the hooks' `onError` is honoured, §K8 S2).
//! - Restore `spec.resources`: Kubernetes resources are not restored.
//!
//! Read and acted on, so not listed: `runOnTargetPodNode` (the target's volumes are mounted only
//! when true), the hooks' `onError` and `timeout`, `runtimeSettings.resources`, `env`,
//! `encryptionConfig` (with its own `EncryptionFormat` Warning), `useKopia` (ARCHITECTURE.md
//! §K2.11).

use crate::actionset::ActionSet;
use crate::backup_policy::BackupPolicy;
use crate::restore::Restore;
use crate::target::BackupTarget;

/// One field set on an object that Cairn does not act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IgnoredField {
    /// Its path in the object, e.g. `spec.targets[0].resources`.
    pub path: String,
    /// What Cairn does instead.
    pub why: &'static str,
}

impl IgnoredField {
    fn new(path: impl Into<String>, why: &'static str) -> IgnoredField {
        IgnoredField {
            path: path.into(),
            why,
        }
    }
}

const RESOURCES: &str = "Cairn does not back up Kubernetes resources, only the data the ActionSet writes (KubeBlocks does not implement it either)";
const PARENT_PODS: &str = "Cairn selects the target pods afresh for every backup";
const SYNC_PROGRESS: &str = "Cairn reports progress continuously from the bytes datasafed moves; the switch and interval change nothing";
const DATA_ON_ERROR: &str = "a failed backupData always fails the backup (onError applies to the preBackup and postBackup hooks)";
const RESTORE_RESOURCES: &str = "Cairn does not restore Kubernetes resources, only volume data";

fn targets(
    path: &str,
    single: Option<&BackupTarget>,
    many: Option<&Vec<BackupTarget>>,
) -> Vec<IgnoredField> {
    let mut out = Vec::new();
    let mut check = |at: String, target: &BackupTarget| {
        if target.resources.is_some() {
            out.push(IgnoredField::new(format!("{at}.resources"), RESOURCES));
        }
        if target
            .pod_selector
            .as_ref()
            .and_then(|s| s.use_parent_selected_pods)
            .unwrap_or(false)
        {
            out.push(IgnoredField::new(
                format!("{at}.podSelector.useParentSelectedPods"),
                PARENT_PODS,
            ));
        }
    };
    if let Some(target) = single {
        check(format!("{path}.target"), target);
    }
    for (i, target) in many.iter().flat_map(|t| t.iter()).enumerate() {
        check(format!("{path}.targets[{i}]"), target);
    }
    out
}

/// The fields of a BackupPolicy Cairn does not act on.
pub fn backup_policy(policy: &BackupPolicy) -> Vec<IgnoredField> {
    let spec = &policy.spec;
    let mut out = Vec::new();
    out.extend(targets("spec", spec.target.as_ref(), spec.targets.as_ref()));
    for (i, method) in spec.backup_methods.iter().enumerate() {
        out.extend(targets(
            &format!("spec.backupMethods[{i}]"),
            method.target.as_ref(),
            method.targets.as_ref(),
        ));
    }
    out
}

/// The fields of an ActionSet Cairn does not act on.
pub fn actionset(actionset: &ActionSet) -> Vec<IgnoredField> {
    let mut out = Vec::new();
    if let Some(backup) = &actionset.spec.backup {
        if backup.backup_data.sync_progress.is_some() {
            out.push(IgnoredField::new(
                "spec.backup.backupData.syncProgress",
                SYNC_PROGRESS,
            ));
        }
        if backup.backup_data.job.on_error.is_some() {
            out.push(IgnoredField::new(
                "spec.backup.backupData.onError",
                DATA_ON_ERROR,
            ));
        }
    }
    out
}

/// The fields of a Restore Cairn does not act on.
pub fn restore(restore: &Restore) -> Vec<IgnoredField> {
    let mut out = Vec::new();
    if restore.spec.resources.is_some() {
        out.push(IgnoredField::new("spec.resources", RESTORE_RESOURCES));
    }
    out
}

/// The message of the `IgnoredField` Warning: every field, with what Cairn does instead.
pub fn message(fields: &[IgnoredField]) -> Option<String> {
    if fields.is_empty() {
        return None;
    }
    let parts: Vec<String> = fields
        .iter()
        .map(|f| format!("{} is set but not acted on: {}", f.path, f.why))
        .collect();
    Some(parts.join("; "))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_policy_names_each_ignored_field_by_path() {
        let policy: BackupPolicy = serde_json::from_value(json!({
            "apiVersion": "dataprotection.kubeblocks.io/v1alpha1", "kind": "BackupPolicy",
            "metadata": {"name": "p", "namespace": "ns"},
            "spec": {
                "useKopia": true,
                "targets": [
                    {"name": "a", "podSelector": {"matchLabels": {"x": "y"}}},
                    {"name": "b", "podSelector": {"matchLabels": {"x": "y"}, "useParentSelectedPods": true},
                     "resources": {"included": ["configmaps"]}}
                ],
                "backupMethods": [{"name": "m", "actionSetName": "as",
                                   "target": {"podSelector": {"matchLabels": {"x": "y"}},
                                              "resources": {}}}]
            }
        }))
        .unwrap();
        let paths: Vec<String> = backup_policy(&policy).into_iter().map(|f| f.path).collect();
        assert_eq!(
            paths,
            [
                "spec.targets[1].resources",
                "spec.targets[1].podSelector.useParentSelectedPods",
                "spec.backupMethods[0].target.resources",
            ]
        );
    }

    #[test]
    fn a_plain_policy_has_none_and_no_message() {
        let policy: BackupPolicy = serde_json::from_value(json!({
            "apiVersion": "dataprotection.kubeblocks.io/v1alpha1", "kind": "BackupPolicy",
            "metadata": {"name": "p", "namespace": "ns"},
            "spec": {"useKopia": false,
                     "target": {"podSelector": {"matchLabels": {"x": "y"}, "useParentSelectedPods": false}},
                     "backupMethods": [{"name": "m", "actionSetName": "as"}]}
        }))
        .unwrap();
        assert_eq!(backup_policy(&policy), []);
        assert_eq!(message(&[]), None);
    }

    #[test]
    fn actionset_sync_progress_and_backup_data_on_error_are_named() {
        let set: ActionSet = serde_json::from_value(json!({
            "apiVersion": "dataprotection.kubeblocks.io/v1alpha1", "kind": "ActionSet",
            "metadata": {"name": "as"},
            "spec": {"backupType": "Full", "backup": {"backupData": {
                "image": "busybox", "command": ["true"], "onError": "Continue",
                "syncProgress": {"enabled": true, "intervalSeconds": 5}}}}
        }))
        .unwrap();
        let fields = actionset(&set);
        let text = message(&fields).unwrap();
        assert!(
            text.starts_with("spec.backup.backupData.syncProgress is set but not acted on: "),
            "{text}"
        );
        assert!(text.contains("; spec.backup.backupData.onError is set but not acted on: a failed backupData always fails the backup"), "{text}");
    }

    #[test]
    fn restore_resources_are_named() {
        let restore: Restore = serde_json::from_value(json!({
            "apiVersion": "dataprotection.kubeblocks.io/v1alpha1", "kind": "Restore",
            "metadata": {"name": "r", "namespace": "ns"},
            "spec": {"backup": {"name": "b", "namespace": "ns"},
                     "resources": {"included": [{"groupResource": "configmaps"}]}}
        }))
        .unwrap();
        assert_eq!(
            restore_fields_paths(&restore),
            ["spec.resources".to_string()]
        );
    }

    fn restore_fields_paths(r: &Restore) -> Vec<String> {
        restore(r).into_iter().map(|f| f.path).collect()
    }
}
