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
//! - ActionSet `spec.backup.backupData.onError: Continue` of a `Continuous` ActionSet: a failed
//!   archiver always fails the backup (elsewhere `onError` is honoured, §K8 S2).
//! - Restore `spec.resources`: Kubernetes resources are not restored.
//! - BackupPolicy `spec.encryptionConfig.passPhraseSecretKeyRef.optional: true`: the control
//!   plane reads the passphrase itself, and a policy that asks for encryption never gets an
//!   unencrypted backup; a missing Secret fails the backup.
//!
//! [`ACTED_ON`] lists, per kind, the spec fields Cairn does act on; a test walks every CRD's
//! spec schema and fails on a field that is in neither list, so a new API field has to be
//! classified.
//!
//! Read and acted on, so not listed: `runOnTargetPodNode` (the target's volumes are mounted only
//! when true), `onError` (hooks and backupData) and `timeout`, `runtimeSettings.resources`, `env`,
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
const DATA_ON_ERROR: &str = "a continuous backup whose archiver fails always fails (onError: Continue applies to Full, Incremental and Differential backups and to the hooks)";
const RESTORE_RESOURCES: &str = "Cairn does not restore Kubernetes resources, only volume data";
const OPTIONAL_PASSPHRASE: &str = "the passphrase Secret must exist: Cairn never writes an unencrypted backup for a policy that asks for encryption";

/// The fields [`backup_policy`], [`actionset`] and [`restore`] can name, as schema paths (`[]`
/// for any list index), by CRD kind.
pub const IGNORED: &[(&str, &str)] = &[
    ("BackupPolicy", "spec.target.resources"),
    ("BackupPolicy", "spec.targets[].resources"),
    ("BackupPolicy", "spec.backupMethods[].target.resources"),
    ("BackupPolicy", "spec.backupMethods[].targets[].resources"),
    (
        "BackupPolicy",
        "spec.target.podSelector.useParentSelectedPods",
    ),
    (
        "BackupPolicy",
        "spec.targets[].podSelector.useParentSelectedPods",
    ),
    (
        "BackupPolicy",
        "spec.backupMethods[].target.podSelector.useParentSelectedPods",
    ),
    (
        "BackupPolicy",
        "spec.backupMethods[].targets[].podSelector.useParentSelectedPods",
    ),
    (
        "BackupPolicy",
        "spec.encryptionConfig.passPhraseSecretKeyRef.optional",
    ),
    ("ActionSet", "spec.backup.backupData.syncProgress"),
    ("Restore", "spec.resources"),
];

/// The spec fields (and whole subtrees) Cairn acts on, by CRD kind, with where. Together with
/// [`IGNORED`] they cover every field of every CRD's spec (the test `every_spec_field_is_acted_on_or_listed_as_ignored`).
pub const ACTED_ON: &[(&str, &str, &str)] = &[
    (
        "ActionSet",
        "spec.backupType",
        "plan/backup/request.rs, parent.rs, continuous.rs",
    ),
    (
        "ActionSet",
        "spec.backup.backupData.image",
        "plan/backup/actions.rs build_job",
    ),
    (
        "ActionSet",
        "spec.backup.backupData.command",
        "plan/backup/actions.rs build_job",
    ),
    (
        "ActionSet",
        "spec.backup.backupData.onError",
        "plan/backup/actions.rs pod_actions (§K8 S2)",
    ),
    (
        "ActionSet",
        "spec.backup.backupData.runOnTargetPodNode",
        "plan/backup/actions.rs (§K2.12)",
    ),
    (
        "ActionSet",
        "spec.backup.preBackup",
        "plan/backup/actions.rs with_hooks",
    ),
    (
        "ActionSet",
        "spec.backup.postBackup",
        "plan/backup/actions.rs with_hooks",
    ),
    (
        "ActionSet",
        "spec.backup.preDelete",
        "plan/backup/deletion.rs",
    ),
    (
        "ActionSet",
        "spec.backup.withParameters",
        "validate, plan/backup/request.rs",
    ),
    ("ActionSet", "spec.env", "plan/env.rs merge"),
    (
        "ActionSet",
        "spec.envFrom",
        "plan/backup/actions.rs build_job, restore/jobs.rs",
    ),
    ("ActionSet", "spec.parametersSchema", "validate::parameters"),
    (
        "ActionSet",
        "spec.restore",
        "plan/restore (prepare.rs, post_ready.rs, sets.rs)",
    ),
    ("Backup", "spec.backupPolicyName", "plan/backup/request.rs"),
    ("Backup", "spec.backupMethod", "plan/backup/request.rs"),
    ("Backup", "spec.deletionPolicy", "plan/backup/deletion.rs"),
    (
        "Backup",
        "spec.retentionPeriod",
        "plan/backup/mod.rs expiration",
    ),
    ("Backup", "spec.parentBackupName", "plan/backup/parent.rs"),
    (
        "Backup",
        "spec.parameters",
        "plan/backup/request.rs, validate",
    ),
    (
        "BackupPolicy",
        "spec.backupRepoName",
        "plan/backup/request.rs",
    ),
    ("BackupPolicy", "spec.pathPrefix", "plan/backup/path.rs"),
    (
        "BackupPolicy",
        "spec.backoffLimit",
        "plan/backup/actions.rs build_job",
    ),
    ("BackupPolicy", "spec.useKopia", "ARCHITECTURE.md §K2.11"),
    (
        "BackupPolicy",
        "spec.encryptionConfig.algorithm",
        "plan/backup_policy.rs EncryptionFormat, repo encryption",
    ),
    (
        "BackupPolicy",
        "spec.encryptionConfig.passPhraseSecretKeyRef.name",
        "controller reads the passphrase",
    ),
    (
        "BackupPolicy",
        "spec.encryptionConfig.passPhraseSecretKeyRef.key",
        "controller reads the passphrase",
    ),
    ("BackupPolicy", "spec.target.name", "plan/backup/targets.rs"),
    (
        "BackupPolicy",
        "spec.target.podSelector.matchLabels",
        "plan/backup/targets.rs",
    ),
    (
        "BackupPolicy",
        "spec.target.podSelector.matchExpressions",
        "plan/backup/targets.rs",
    ),
    (
        "BackupPolicy",
        "spec.target.podSelector.strategy",
        "plan/backup/targets.rs",
    ),
    (
        "BackupPolicy",
        "spec.target.podSelector.fallbackLabelSelector",
        "plan/backup/targets.rs",
    ),
    (
        "BackupPolicy",
        "spec.target.connectionCredential",
        "plan/backup/actions.rs backup_env",
    ),
    (
        "BackupPolicy",
        "spec.target.serviceAccountName",
        "plan/backup/actions.rs build_job",
    ),
    (
        "BackupPolicy",
        "spec.targets[].name",
        "plan/backup/targets.rs",
    ),
    (
        "BackupPolicy",
        "spec.targets[].podSelector.matchLabels",
        "plan/backup/targets.rs",
    ),
    (
        "BackupPolicy",
        "spec.targets[].podSelector.matchExpressions",
        "plan/backup/targets.rs",
    ),
    (
        "BackupPolicy",
        "spec.targets[].podSelector.strategy",
        "plan/backup/targets.rs",
    ),
    (
        "BackupPolicy",
        "spec.targets[].podSelector.fallbackLabelSelector",
        "plan/backup/targets.rs",
    ),
    (
        "BackupPolicy",
        "spec.targets[].connectionCredential",
        "plan/backup/actions.rs backup_env",
    ),
    (
        "BackupPolicy",
        "spec.targets[].serviceAccountName",
        "plan/backup/actions.rs build_job",
    ),
    (
        "BackupPolicy",
        "spec.backupMethods[].target.name",
        "plan/backup/targets.rs",
    ),
    (
        "BackupPolicy",
        "spec.backupMethods[].target.podSelector.matchLabels",
        "plan/backup/targets.rs",
    ),
    (
        "BackupPolicy",
        "spec.backupMethods[].target.podSelector.matchExpressions",
        "plan/backup/targets.rs",
    ),
    (
        "BackupPolicy",
        "spec.backupMethods[].target.podSelector.strategy",
        "plan/backup/targets.rs",
    ),
    (
        "BackupPolicy",
        "spec.backupMethods[].target.podSelector.fallbackLabelSelector",
        "plan/backup/targets.rs",
    ),
    (
        "BackupPolicy",
        "spec.backupMethods[].target.connectionCredential",
        "plan/backup/actions.rs backup_env",
    ),
    (
        "BackupPolicy",
        "spec.backupMethods[].target.serviceAccountName",
        "plan/backup/actions.rs build_job",
    ),
    (
        "BackupPolicy",
        "spec.backupMethods[].targets[].name",
        "plan/backup/targets.rs",
    ),
    (
        "BackupPolicy",
        "spec.backupMethods[].targets[].podSelector.matchLabels",
        "plan/backup/targets.rs",
    ),
    (
        "BackupPolicy",
        "spec.backupMethods[].targets[].podSelector.matchExpressions",
        "plan/backup/targets.rs",
    ),
    (
        "BackupPolicy",
        "spec.backupMethods[].targets[].podSelector.strategy",
        "plan/backup/targets.rs",
    ),
    (
        "BackupPolicy",
        "spec.backupMethods[].targets[].podSelector.fallbackLabelSelector",
        "plan/backup/targets.rs",
    ),
    (
        "BackupPolicy",
        "spec.backupMethods[].targets[].connectionCredential",
        "plan/backup/actions.rs backup_env",
    ),
    (
        "BackupPolicy",
        "spec.backupMethods[].targets[].serviceAccountName",
        "plan/backup/actions.rs build_job",
    ),
    (
        "BackupPolicy",
        "spec.backupMethods[].name",
        "plan/backup/request.rs",
    ),
    (
        "BackupPolicy",
        "spec.backupMethods[].actionSetName",
        "plan/backup/request.rs",
    ),
    (
        "BackupPolicy",
        "spec.backupMethods[].compatibleMethod",
        "plan/backup/parent.rs, chain.rs",
    ),
    (
        "BackupPolicy",
        "spec.backupMethods[].env",
        "plan/backup/actions.rs backup_env",
    ),
    (
        "BackupPolicy",
        "spec.backupMethods[].runtimeSettings",
        "plan/backup/actions.rs build_job",
    ),
    (
        "BackupPolicy",
        "spec.backupMethods[].snapshotVolumes",
        "plan/backup/snapshot.rs",
    ),
    (
        "BackupPolicy",
        "spec.backupMethods[].targetVolumes",
        "plan/backup/actions.rs target_volumes, snapshot.rs",
    ),
    ("BackupRepo", "spec.storageProviderRef", "plan/backup_repo"),
    ("BackupRepo", "spec.accessMethod", "plan/backup_repo/mod.rs"),
    ("BackupRepo", "spec.config", "repo/access.rs parameters"),
    ("BackupRepo", "spec.credential", "repo/access.rs parameters"),
    ("BackupRepo", "spec.pathPrefix", "plan/backup/path.rs"),
    (
        "BackupRepo",
        "spec.pvReclaimPolicy",
        "plan/backup_repo/mount.rs",
    ),
    (
        "BackupRepo",
        "spec.volumeCapacity",
        "plan/backup_repo/mount.rs",
    ),
    (
        "BackupSchedule",
        "spec.backupPolicyName",
        "plan/schedule.rs",
    ),
    (
        "BackupSchedule",
        "spec.startingDeadlineMinutes",
        "plan/schedule.rs",
    ),
    (
        "BackupSchedule",
        "spec.schedules",
        "plan/schedule.rs (name, method, cron, enabled, retention, parameters)",
    ),
    ("Restore", "spec.backup", "plan/restore/request.rs"),
    ("Restore", "spec.restoreTime", "plan/restore/sets.rs"),
    (
        "Restore",
        "spec.prepareDataConfig",
        "plan/restore/prepare.rs, placement.rs, jobs.rs; dataSourceRef: as_data_source.rs, plan/populate",
    ),
    (
        "Restore",
        "spec.readyConfig",
        "plan/restore/post_ready.rs, probe.rs",
    ),
    ("Restore", "spec.serviceAccountName", "plan/restore/jobs.rs"),
    ("Restore", "spec.env", "plan/restore/env.rs"),
    ("Restore", "spec.containerResources", "plan/restore/jobs.rs"),
    ("Restore", "spec.backoffLimit", "plan/restore/jobs.rs"),
    (
        "Restore",
        "spec.parameters",
        "plan/restore/request.rs, env.rs",
    ),
    (
        "StorageProvider",
        "spec.datasafedConfigTemplate",
        "repo/access.rs",
    ),
    (
        "StorageProvider",
        "spec.csiDriverName",
        "plan/backup_repo/mount.rs",
    ),
    (
        "StorageProvider",
        "spec.csiDriverSecretTemplate",
        "plan/backup_repo/mount.rs",
    ),
    (
        "StorageProvider",
        "spec.storageClassTemplate",
        "plan/backup_repo/mount.rs",
    ),
    (
        "StorageProvider",
        "spec.persistentVolumeClaimTemplate",
        "plan/backup_repo/mount.rs",
    ),
    (
        "StorageProvider",
        "spec.parametersSchema.openAPIV3Schema",
        "repo/access.rs defaults, validate",
    ),
    // Read by clients (kbcli, `cairnctl repo create`) to put these parameters in the Secret;
    // KubeBlocks' controller does not read it either: the templates see config and Secret alike.
    (
        "StorageProvider",
        "spec.parametersSchema.credentialFields",
        "clients",
    ),
];

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
    if spec
        .encryption_config
        .as_ref()
        .and_then(|c| c.pass_phrase_secret_key_ref.optional)
        .unwrap_or(false)
    {
        out.push(IgnoredField::new(
            "spec.encryptionConfig.passPhraseSecretKeyRef.optional",
            OPTIONAL_PASSPHRASE,
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
        if actionset.spec.backup_type == crate::actionset::BackupType::Continuous
            && backup.backup_data.job.on_error == Some(crate::action::ActionErrorMode::Continue)
        {
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
    fn actionset_sync_progress_and_continuous_backup_data_on_error_are_named() {
        let set: ActionSet = serde_json::from_value(json!({
            "apiVersion": "dataprotection.kubeblocks.io/v1alpha1", "kind": "ActionSet",
            "metadata": {"name": "as"},
            "spec": {"backupType": "Continuous", "backup": {"backupData": {
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
        assert!(text.contains("; spec.backup.backupData.onError is set but not acted on: a continuous backup whose archiver fails always fails"), "{text}");
        // A Full backup acts on backupData.onError (§K8 S2): not listed.
        let mut full = set.clone();
        full.spec.backup_type = crate::actionset::BackupType::Full;
        let paths: Vec<String> = actionset(&full).into_iter().map(|f| f.path).collect();
        assert_eq!(paths, ["spec.backup.backupData.syncProgress"]);
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

    /// Walks every CRD's `spec` schema: each field must be acted on ([`ACTED_ON`]) or listed
    /// as ignored ([`IGNORED`]), itself or through an ancestor.
    #[test]
    fn every_spec_field_is_acted_on_or_listed_as_ignored() {
        fn walk(kind: &str, schema: &serde_json::Value, path: &str, out: &mut Vec<String>) {
            let covered = ACTED_ON
                .iter()
                .map(|(k, p, _)| (*k, *p))
                .chain(IGNORED.iter().copied())
                .any(|(k, p)| {
                    k == kind
                        && (path == p
                            || path.starts_with(&format!("{p}."))
                            || path.starts_with(&format!("{p}[]")))
                });
            if covered {
                return;
            }
            if let Some(props) = schema.get("properties").and_then(|p| p.as_object()) {
                for (name, child) in props {
                    walk(kind, child, &format!("{path}.{name}"), out);
                }
            } else if let Some(items) = schema
                .get("items")
                .filter(|i| i.get("properties").is_some())
            {
                walk(kind, items, &format!("{path}[]"), out);
            } else {
                out.push(format!("{kind} {path}"));
            }
        }
        let crds = crate::crds::all();
        let mut uncovered = Vec::new();
        let mut kinds = Vec::new();
        for crd in &crds {
            if crd.spec.group != "dataprotection.kubeblocks.io" {
                continue; // the deprecated storage.kubeblocks.io StorageProvider is converted
            }
            let kind = crd.spec.names.kind.clone();
            if kind == "BackupTool" || kind == "RestoreJob" {
                continue; // legacy kinds, converted to the new API (ARCHITECTURE.md §K1.8)
            }
            let schema = serde_json::to_value(
                crd.spec.versions[0]
                    .schema
                    .as_ref()
                    .and_then(|s| s.open_api_v3_schema.as_ref()),
            )
            .unwrap();
            walk(&kind, &schema["properties"]["spec"], "spec", &mut uncovered);
            kinds.push(kind);
        }
        kinds.sort();
        assert_eq!(
            kinds,
            [
                "ActionSet",
                "Backup",
                "BackupPolicy",
                "BackupRepo",
                "BackupSchedule",
                "Restore",
                "StorageProvider"
            ]
        );
        assert!(
            uncovered.is_empty(),
            "fields neither in ACTED_ON nor in IGNORED (act on them, or list and warn):\n{}",
            uncovered.join("\n")
        );
        // Every listed path exists in its CRD.
        for (kind, path) in ACTED_ON
            .iter()
            .map(|(k, p, _)| (k, p))
            .chain(IGNORED.iter().map(|(k, p)| (k, p)))
        {
            let crd = crds
                .iter()
                .find(|c| {
                    c.spec.names.kind == *kind && c.spec.group == "dataprotection.kubeblocks.io"
                })
                .unwrap();
            let mut node = serde_json::to_value(
                crd.spec.versions[0]
                    .schema
                    .as_ref()
                    .and_then(|s| s.open_api_v3_schema.as_ref()),
            )
            .unwrap();
            for part in path.split('.') {
                let (name, list) = match part.strip_suffix("[]") {
                    Some(n) => (n, true),
                    None => (part, false),
                };
                node = node["properties"][name].clone();
                if list {
                    node = node["items"].clone();
                }
                assert!(!node.is_null(), "{kind} {path} is not in the CRD");
            }
        }
    }

    #[test]
    fn an_optional_passphrase_secret_is_named() {
        let policy: BackupPolicy = serde_json::from_value(json!({
            "apiVersion": "dataprotection.kubeblocks.io/v1alpha1", "kind": "BackupPolicy",
            "metadata": {"name": "p", "namespace": "ns"},
            "spec": {"target": {"podSelector": {"matchLabels": {"x": "y"}}},
                     "encryptionConfig": {"algorithm": "AES-256-CFB",
                         "passPhraseSecretKeyRef": {"name": "s", "key": "k", "optional": true}},
                     "backupMethods": [{"name": "m", "actionSetName": "as"}]}
        }))
        .unwrap();
        let paths: Vec<String> = backup_policy(&policy).into_iter().map(|f| f.path).collect();
        assert_eq!(
            paths,
            ["spec.encryptionConfig.passPhraseSecretKeyRef.optional"]
        );
    }

    fn restore_fields_paths(r: &Restore) -> Vec<String> {
        restore(r).into_iter().map(|f| f.path).collect()
    }
}
