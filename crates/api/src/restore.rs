//! Restore (namespaced): restore a Backup into volumes (prepareData) and into a running workload (postReady).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Affinity, EnvVar, PersistentVolumeClaimSpec, ResourceRequirements, Toleration,
    TopologySpreadConstraint, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector, ObjectMeta, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{ConnectionCredential, ParameterPair};
use crate::schema::RESTORE_TIME_PATTERN;
use crate::target::PodSelector;

/// The desired state of a Restore.
#[derive(CustomResource, Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq)]
#[kube(
    group = "dataprotection.kubeblocks.io",
    version = "v1alpha1",
    kind = "Restore",
    namespaced,
    status = "RestoreStatus",
    category = "kubeblocks",
    category = "dataprotection",
    printcolumn(name = "BACKUP", type_ = "string", json_path = ".spec.backup.name"),
    printcolumn(
        name = "RESTORE-TIME",
        type_ = "string",
        json_path = ".spec.restoreTime",
        description = "Point in time for restoring"
    ),
    printcolumn(
        name = "STATUS",
        type_ = "string",
        json_path = ".status.phase",
        description = "Restore Status."
    ),
    printcolumn(name = "DURATION", type_ = "string", json_path = ".status.duration"),
    printcolumn(
        name = "CREATION-TIME",
        type_ = "string",
        json_path = ".metadata.creationTimestamp"
    ),
    printcolumn(
        name = "COMPLETION-TIME",
        type_ = "string",
        json_path = ".status.completionTimestamp"
    ),
    doc = "Restore is the Schema for the restores API",
    derive = "PartialEq"
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{"message": "forbidden to update spec.parameters", "rule": "has(oldSelf.parameters) == has(self.parameters)"}]))]
pub struct RestoreSpec {
    /// The backup to restore. By backup type: Full is restored directly; Incremental from the most
    /// recent full backup onwards; Differential from its parent; Continuous from the most recent full
    /// backup before the restore time plus the logs after it.
    #[schemars(extend("x-kubernetes-validations" = [{"message": "forbidden to update spec.backupName", "rule": "self == oldSelf"}]))]
    pub backup: BackupRef,
    /// The point in time to restore to, `YYYY-MM-DDTHH:MM:SSZ`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = RESTORE_TIME_PATTERN))]
    #[schemars(extend("x-kubernetes-validations" = [{"message": "forbidden to update spec.restoreTime", "rule": "self == oldSelf"}]))]
    pub restore_time: Option<String>,
    /// Kubernetes resources to restore (accepted, not implemented by KubeBlocks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-validations" = [{"message": "forbidden to update spec.resources", "rule": "self == oldSelf"}]))]
    pub resources: Option<RestoreKubeResources>,
    /// Configuration of the `prepareData` phase: the volume claims to restore and the scheduling of
    /// the temporary restore pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prepare_data_config: Option<PrepareDataConfig>,
    /// The service account of the restore pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_name: Option<String>,
    /// Configuration of the `postReady` phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_config: Option<ReadyConfig>,
    /// Environment variables of the restore containers, merged with those of the Backup and the
    /// ActionSet (precedence: Restore > Backup > ActionSet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<EnvVar>>,
    /// The resources of the restore job's container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_resources: Option<ResourceRequirements>,
    /// The number of retries before the restore is marked failed (0..10; the controller defaults to 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 10))]
    pub backoff_limit: Option<i32>,
    /// Parameters for the ActionSet, matching its `parametersSchema` (at most 128). Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 128), extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    #[schemars(extend("x-kubernetes-validations" = [{"message": "forbidden to update spec.parameters", "rule": "self == oldSelf"}]))]
    pub parameters: Option<Vec<ParameterPair>>,
}

/// The backup to restore.
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct BackupRef {
    /// The backup name.
    pub name: String,
    /// The backup namespace.
    pub namespace: String,
    /// The target of the backup to restore, by name (multi-target backups).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_target_name: Option<String>,
}

/// Kubernetes resources to restore.
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct RestoreKubeResources {
    /// The resources to restore.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub included: Option<Vec<IncludeResource>>,
}

/// A kind of Kubernetes resource to restore.
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct IncludeResource {
    /// The group and resource, e.g. `configmaps` or `deployments.apps`.
    pub group_resource: String,
    /// Selects the resources to restore by label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_selector: Option<LabelSelector>,
}

/// Configuration of the `prepareData` phase.
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct PrepareDataConfig {
    /// How data from pods selected with strategy `All` maps onto the restored pods (required then).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required_policy_for_all_pod_selection: Option<RequiredPolicyForAllPodSelection>,
    /// Restore through `persistentVolumeClaim.spec.dataSourceRef` (volume populator): the source
    /// volume of the backup's targetVolumes and the mount path in the restore container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-validations" = [{"message": "forbidden to update spec.prepareDataConfig.dataSourceRef", "rule": "self == oldSelf"}]))]
    pub data_source_ref: Option<VolumeConfig>,
    /// The volume claims to restore, mounted together into the restore job; created if missing.
    #[serde(
        rename = "volumeClaims",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(extend("x-kubernetes-validations" = [{"message": "forbidden to update spec.prepareDataConfig.volumeClaims", "rule": "self == oldSelf"}]))]
    pub volume_claims: Option<Vec<RestoreVolumeClaim>>,
    /// A template for the volume claims to restore, created in order by replica (or reused).
    #[serde(
        rename = "volumeClaimsTemplate",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(extend("x-kubernetes-validations" = [{"message": "forbidden to update spec.prepareDataConfig.volumeClaimsTemplate", "rule": "self == oldSelf"}]))]
    pub volume_claims_template: Option<RestoreVolumeClaimsTemplate>,
    /// `Parallel` (default) restores the claims in parallel; `Serial` one after another.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "Parallel"))]
    pub volume_claim_restore_policy: Option<VolumeClaimRestorePolicy>,
    /// The scheduling of the restore pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-validations" = [{"message": "forbidden to update spec.prepareDataConfig.schedulingSpec", "rule": "self == oldSelf"}]))]
    pub scheduling_spec: Option<SchedulingSpec>,
}

/// How persistent volume claims are restored.
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[schemars(transform = crate::schema::drop_description)]
pub enum VolumeClaimRestorePolicy {
    /// Restore the claims in parallel.
    Parallel,
    /// Restore the claims in sequence, each after the previous one is restored.
    Serial,
}

/// How data from several source pods maps onto the restored pods.
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct RequiredPolicyForAllPodSelection {
    /// `OneToOne` (default): each data copy restores one target instance; `OneToMany`: one copy
    /// (`sourceOfOneToMany`) restores all instances.
    #[schemars(extend("default" = "OneToOne"))]
    pub data_restore_policy: DataRestorePolicy,
    /// The source pod whose data is restored everywhere (required with `OneToMany`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_of_one_to_many: Option<SourceOfOneToMany>,
}

/// The data restore policy for strategy `All` backups.
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[schemars(transform = crate::schema::drop_description)]
pub enum DataRestorePolicy {
    /// Each data copy restores exactly one target instance.
    #[default]
    OneToOne,
    /// One data copy restores all target instances.
    OneToMany,
}

/// The source pod of a `OneToMany` restore.
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct SourceOfOneToMany {
    /// The name of the source target pod.
    pub target_pod_name: String,
}

/// A volume of the backup and where to mount it in the restore container.
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct VolumeConfig {
    /// The volume of the backup's targetVolumes restored into this one (required for snapshots).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_source: Option<String>,
    /// The path in the restore container where the volume is mounted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mount_path: Option<String>,
}

/// A persistent volume claim to restore.
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct RestoreVolumeClaim {
    /// The standard object metadata of the claim.
    pub metadata: ObjectMeta,
    /// The desired characteristics of the claim.
    pub volume_claim_spec: PersistentVolumeClaimSpec,
    /// The source volume and mount path (members of VolumeConfig are embedded into this type).
    #[serde(flatten)]
    pub volume_config: VolumeConfig,
}

/// A template of persistent volume claims, instantiated per replica as `$(template-name)-$(index)`.
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct RestoreVolumeClaimsTemplate {
    /// The volume claims.
    pub templates: Vec<RestoreVolumeClaim>,
    /// The number of replicas to create and restore (at least 1).
    #[schemars(range(min = 1))]
    pub replicas: i32,
    /// The first index of the created claims (at least 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub starting_index: Option<i32>,
}

/// The scheduling of restore pods.
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct SchedulingSpec {
    /// The tolerations of the restore pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerations: Option<Vec<Toleration>>,
    /// Node labels a node must have for the pod to be scheduled on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<BTreeMap<String, String>>,
    /// Schedule onto this node directly, if it fits the resource requirements.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_name: Option<String>,
    /// Affinity scheduling rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
    /// How the pods spread across topology domains.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topology_spread_constraints: Option<Vec<TopologySpreadConstraint>>,
    /// The scheduler that dispatches the pods (the default scheduler when empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduler_name: Option<String>,
}

/// Configuration of the `postReady` phase. At least one of `jobAction` and `execAction` is needed.
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ReadyConfig {
    /// Configuration of job actions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_action: Option<JobAction>,
    /// Configuration of exec actions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exec_action: Option<ExecAction>,
    /// The credential used to connect to the restored database.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_credential: Option<ConnectionCredential>,
    /// A periodic probe of the service readiness, to pass before postReady runs (not evaluated by KubeBlocks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readiness_probe: Option<ReadinessProbe>,
}

/// Where postReady job actions run.
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct JobAction {
    /// How data maps onto pods selected with strategy `All`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required_policy_for_all_pod_selection: Option<RequiredPolicyForAllPodSelection>,
    /// The pods the job action is built for.
    pub target: JobActionTarget,
}

/// The pod a postReady job is built from.
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct JobActionTarget {
    /// Selects the pods the jobs are built from (volumes to mount, built-in env).
    pub pod_selector: PodSelector,
    /// The volumes of the selected pod to mount in the restore pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_mounts: Option<Vec<VolumeMount>>,
}

/// Where postReady exec actions run.
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ExecAction {
    /// The pods where the command is executed: all pods that match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<ExecActionTarget>,
}

/// The pods an exec action runs in.
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ExecActionTarget {
    /// `kubectl exec` runs in every selected pod.
    pub pod_selector: LabelSelector,
}

/// A readiness probe of the restored service.
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ReadinessProbe {
    /// Seconds after the container started before the probe starts (at least 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub initial_delay_seconds: Option<i64>,
    /// Seconds after which the probe times out (default 30, at least 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1), extend("default" = 30))]
    pub timeout_seconds: Option<i64>,
    /// How often in seconds the probe runs (default 5, at least 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1), extend("default" = 5))]
    pub period_seconds: Option<i64>,
    /// The probe's command.
    pub exec: ReadinessProbeExecAction,
}

/// The command a readiness probe runs.
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ReadinessProbeExecAction {
    /// The container image.
    pub image: String,
    /// The container command.
    pub command: Vec<String>,
}

/// The phase of a Restore.
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[schemars(transform = crate::schema::drop_description)]
pub enum RestorePhase {
    /// The restore is executing.
    Running,
    /// The restore completed.
    Completed,
    /// The restore failed.
    Failed,
    /// The Restore is a data source for PVCs (volume populator); terminal.
    AsDataSource,
}

/// The status of one restore action.
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[schemars(transform = crate::schema::drop_description)]
pub enum RestoreActionStatus {
    /// The action runs.
    Processing,
    /// The action completed.
    Completed,
    /// The action failed.
    Failed,
}

/// The stage a restore action belongs to.
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[schemars(transform = crate::schema::drop_description)]
pub enum RestoreStage {
    /// Writing the data into the volumes.
    #[serde(rename = "prepareData")]
    PrepareData,
    /// Running actions once the workload is ready.
    #[serde(rename = "postReady")]
    PostReady,
}

/// The observed state of a Restore.
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct RestoreStatus {
    /// The current phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<RestorePhase>,
    /// When the restore started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_timestamp: Option<Time>,
    /// When the restore finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_timestamp: Option<Time>,
    /// How long the restore took, as a Go duration string such as `1h2m0.5s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
    /// All restore actions performed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actions: Option<RestoreStatusActions>,
    /// The current state of the restore, e.g. warnings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<Condition>>,
}

/// The restore actions, by stage.
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct RestoreStatusActions {
    /// The actions of the prepareData stage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prepare_data: Option<Vec<RestoreStatusAction>>,
    /// The actions of the postReady stage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_ready: Option<Vec<RestoreStatusAction>>,
}

/// One restore action.
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct RestoreStatusAction {
    /// The name of the action (`prepareData-<i>`, `postReady-<i>`).
    pub name: String,
    /// The backup the action restores.
    pub backup_name: String,
    /// The object executing the action (`Job/<name>`).
    pub object_key: String,
    /// A human-readable message about the object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The status of the action.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<RestoreActionStatus>,
    /// When the restore job started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    /// When the restore job completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_time: Option<Time>,
}
