//! Which targets a backup reads and which of their pods it uses (ARCHITECTURE.md §K2.1).

use std::collections::BTreeMap;

use cairn_api::backup::{Backup, BackupStatusTarget};
use cairn_api::backup_policy::{BackupMethod, BackupPolicy};
use cairn_api::target::{BackupTarget, PodSelectionStrategy};
use cairn_api::well_known;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::core::{Selector, SelectorExt};

/// A target with the pods this backup uses for it, in order.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedTarget {
    pub target: BackupTarget,
    pub pods: Vec<Pod>,
}

impl ResolvedTarget {
    /// The target's name, empty when it has none.
    pub fn name(&self) -> &str {
        self.target.name.as_deref().unwrap_or_default()
    }

    /// The pod selection strategy (default Any).
    pub fn strategy(&self) -> PodSelectionStrategy {
        strategy(&self.target)
    }
}

/// Whether the targets come from a `targets` list (status then records `targets[]`).
pub fn uses_target_list(policy: &BackupPolicy, method: &BackupMethod) -> bool {
    if method.target.is_some() {
        return false;
    }
    if method.targets.as_ref().is_some_and(|t| !t.is_empty()) {
        return true;
    }
    policy.spec.target.is_none() && policy.spec.targets.as_ref().is_some_and(|t| !t.is_empty())
}

/// Targets in precedence order: method.target, method.targets, policy.target, policy.targets.
pub fn targets(policy: &BackupPolicy, method: &BackupMethod) -> Vec<BackupTarget> {
    if let Some(target) = &method.target {
        return vec![target.clone()];
    }
    if let Some(targets) = method.targets.as_ref().filter(|t| !t.is_empty()) {
        return targets.clone();
    }
    if let Some(target) = &policy.spec.target {
        return vec![target.clone()];
    }
    policy.spec.targets.clone().unwrap_or_default()
}

fn strategy(target: &BackupTarget) -> PodSelectionStrategy {
    target
        .pod_selector
        .as_ref()
        .and_then(|s| s.strategy)
        .unwrap_or(PodSelectionStrategy::Any)
}

/// Pods already recorded in the backup's status for a target name.
pub fn recorded_pods(backup: &Backup, target_name: &str) -> Option<Vec<String>> {
    let status = backup.status.as_ref()?;
    let recorded: Vec<&BackupStatusTarget> = match (&status.target, &status.targets) {
        (Some(target), _) => vec![target],
        (None, Some(targets)) => targets.iter().collect(),
        (None, None) => return None,
    };
    recorded
        .into_iter()
        .find(|t| t.target.name.as_deref().unwrap_or_default() == target_name)
        .and_then(|t| t.selected_target_pods.clone())
        .filter(|pods| !pods.is_empty())
}

/// Why no usable pod was found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectError {
    #[error("the pod selector of target {target:?} is invalid: {reason}")]
    InvalidSelector { target: String, reason: String },
    #[error("can not found the target pod \"{pod}\"")]
    RecordedPodGone { pod: String },
    #[error("failed to get target pods by backup policy {namespace}/{policy}: {detail}")]
    NoPod {
        namespace: String,
        policy: String,
        detail: String,
    },
}

/// Whether `pod` is one data protection made: an action Job's or an archiver's pod (labelled
/// with the Backup it was made for) or a restore Job's. Such pods carry their Backup's labels,
/// which include the target's selector labels (ARCHITECTURE.md §K6.3), so they match a
/// target's selector; they are never a target themselves.
pub fn made_by_data_protection(pod: &Pod) -> bool {
    pod.metadata.labels.as_ref().is_some_and(|labels| {
        labels.contains_key(well_known::label::BACKUP_NAME)
            || labels.contains_key(well_known::label::RESTORE)
    })
}

/// Selects the pods of one target among `pods` (all pods of the backup's namespace).
pub fn select_pods(
    backup: &Backup,
    policy: &BackupPolicy,
    target: &BackupTarget,
    pods: &[Pod],
) -> Result<Vec<Pod>, SelectError> {
    let target_name = target.name.clone().unwrap_or_default();
    let selector = target.pod_selector.clone().unwrap_or_default();
    let matching = |label_selector: &LabelSelector| -> Result<Vec<Pod>, SelectError> {
        let selector = Selector::try_from(label_selector.clone()).map_err(|err| {
            SelectError::InvalidSelector {
                target: target_name.clone(),
                reason: err.to_string(),
            }
        })?;
        let empty = BTreeMap::new();
        let mut found: Vec<Pod> = pods
            .iter()
            .filter(|pod| pod.metadata.deletion_timestamp.is_none())
            .filter(|pod| !made_by_data_protection(pod))
            .filter(|pod| selector.matches(pod.metadata.labels.as_ref().unwrap_or(&empty)))
            .cloned()
            .collect();
        found.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
        Ok(found)
    };
    let primary = matching(&selector.label_selector)?;
    let no_pod = |detail: String| SelectError::NoPod {
        namespace: backup.metadata.namespace.clone().unwrap_or_default(),
        policy: policy.metadata.name.clone().unwrap_or_default(),
        detail,
    };
    if let Some(recorded) = recorded_pods(backup, &target_name) {
        let fallback = match &selector.fallback_label_selector {
            Some(fallback) => matching(fallback)?,
            None => Vec::new(),
        };
        return recorded
            .iter()
            .map(|name| {
                primary
                    .iter()
                    .chain(fallback.iter())
                    .find(|pod| pod.metadata.name.as_deref() == Some(name))
                    .cloned()
                    .ok_or_else(|| SelectError::RecordedPodGone { pod: name.clone() })
            })
            .collect();
    }
    match strategy(target) {
        PodSelectionStrategy::All => {
            if primary.is_empty() {
                Err(no_pod(format!(
                    "no pod matches the pod selector of target {target_name:?}"
                )))
            } else {
                Ok(primary)
            }
        }
        PodSelectionStrategy::Any => {
            if let Some(pod) = primary.iter().find(|p| is_running_and_ready(p)) {
                return Ok(vec![pod.clone()]);
            }
            if let Some(fallback) = &selector.fallback_label_selector {
                let fallback_pods = matching(fallback)?;
                if let Some(pod) = fallback_pods.iter().find(|p| is_running_and_ready(p)) {
                    return Ok(vec![pod.clone()]);
                }
            }
            Err(no_pod(if primary.is_empty() {
                "no pod matches the pod selector".into()
            } else {
                format!(
                    "{} pod(s) match the pod selector but none is Running and Ready",
                    primary.len()
                )
            }))
        }
    }
}

/// Running with condition Ready=True.
pub fn is_running_and_ready(pod: &Pod) -> bool {
    let Some(status) = &pod.status else {
        return false;
    };
    status.phase.as_deref() == Some("Running")
        && status
            .conditions
            .iter()
            .flatten()
            .any(|c| c.type_ == "Ready" && c.status == "True")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pod(name: &str, labels: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "db", "labels": labels},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}
        }))
        .expect("pod")
    }

    #[test]
    fn an_archiver_pod_carrying_the_target_labels_is_not_a_target() {
        let backup: Backup = serde_json::from_value(json!({
            "metadata": {"name": "full-1", "namespace": "db"},
            "spec": {"backupPolicyName": "pg", "backupMethod": "base"}
        }))
        .expect("backup");
        let policy: BackupPolicy = serde_json::from_value(json!({
            "metadata": {"name": "pg", "namespace": "db"},
            "spec": {"backupMethods": [], "target": {"podSelector": {"matchLabels": {"app": "postgres"}}}}
        }))
        .expect("policy");
        let target = policy.spec.target.clone().expect("target");
        let pods = [
            // The continuous Backup's archiver: its labels are the Backup's, the selector's included.
            pod(
                "abc-wal-archive-0",
                json!({"app": "postgres", "dataprotection.kubeblocks.io/backup-name": "abc-wal-archive"}),
            ),
            pod(
                "restore-job-x",
                json!({"app": "postgres", "dataprotection.kubeblocks.io/restore": "r1"}),
            ),
            pod("postgres", json!({"app": "postgres"})),
        ];
        let chosen = select_pods(&backup, &policy, &target, &pods).expect("selected");
        let names: Vec<_> = chosen
            .iter()
            .filter_map(|p| p.metadata.name.clone())
            .collect();
        assert_eq!(names, ["postgres"]);
    }
}
