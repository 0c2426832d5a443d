//! What a backup reads from: the target pods (selector and strategy), credentials and Kubernetes resources.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::ConnectionCredential;

/// The target of a backup: which pods, how to connect, which Kubernetes resources.
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct BackupTarget {
    /// A unique name of the target, mandatory when the `targets` field is used; the backup data of
    /// this target is stored in a sub-directory with this name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Selects the target pods; their volumes are backed up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_selector: Option<PodSelector>,
    /// The connection credential to connect to the target database cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_credential: Option<ConnectionCredential>,
    /// The Kubernetes resources to back up (accepted, not implemented by KubeBlocks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<KubeResources>,
    /// The service account that runs the backup workload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_name: Option<String>,
}

/// How target pods are selected: a label selector (embedded), a fallback selector and a strategy.
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct PodSelector {
    /// The label selector to filter the target pods (members of LabelSelector are embedded).
    #[serde(flatten)]
    pub label_selector: LabelSelector,
    /// Used to select pods when `labelSelector` selects none that is ready; only with strategy `Any`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback_label_selector: Option<LabelSelector>,
    /// The strategy when several pods match: `Any` (default) picks one, `All` backs up every pod
    /// into a sub-directory named after the pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "Any"))]
    pub strategy: Option<PodSelectionStrategy>,
    /// Use the pods selected by the parent backup (incremental backups, strategy `Any` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub use_parent_selected_pods: Option<bool>,
}

/// The strategy to select the target pod when multiple pods match.
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[schemars(transform = crate::schema::drop_description)]
pub enum PodSelectionStrategy {
    /// Select any one pod that matches the label selector (the first ready one by name).
    Any,
    /// Select all pods that match the label selector.
    All,
}

/// The Kubernetes resources to back up.
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct KubeResources {
    /// Filters the target Kubernetes resources; if not set, no Kubernetes resources are backed up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
    /// Namespaced resource type names to include (default `*`: all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub included: Option<Vec<String>>,
    /// Namespaced resource type names to exclude (default empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub excluded: Option<Vec<String>>,
}
