//! Builders the planner tests share: time, agents and their reports, pods, repositories and
//! their access, and readers of the intents a plan returns. Each builder starts from a valid
//! object and says what differs (`pod("pg-0").on_node("node-b").not_ready()`).

use std::collections::BTreeMap;
use std::time::Duration;

use cairn_api::backup::{Backup, BackupPhase};
use cairn_api::backup_repo::BackupRepo;
use cairn_api::restore::{Restore, RestorePhase};
use cairn_api::storage_provider::StorageProvider;
use cairn_api::well_known;
use cairn_proto::agent::v1 as pb;
use jiff::Timestamp;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Container, PersistentVolumeClaim, Pod, PodCondition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use serde_json::json;

use super::action::RepoAccess;
use super::agent_view::{AgentView, NodeState, ReportedAction, ReportedPhase};
use super::intent::{EventType, Intent};

/// The time every planner test starts at.
pub fn now() -> Timestamp {
    "2026-11-22T10:00:00Z".parse().unwrap()
}

/// `secs` seconds after [`now`].
pub fn later(secs: i64) -> Timestamp {
    now()
        .checked_add(jiff::SignedDuration::from_secs(secs))
        .unwrap()
}

/// The grace period of [`agents`]: a node gone longer than this loses its actions.
pub const GRACE: Duration = Duration::from_secs(300);

/// The agents of `nodes`, all connected since [`now`], with no reports yet.
pub fn agents(nodes: &[&str]) -> AgentView {
    AgentView {
        nodes: nodes
            .iter()
            .map(|n| {
                (
                    n.to_string(),
                    NodeState {
                        connected: true,
                        since: now(),
                    },
                )
            })
            .collect(),
        grace: GRACE,
        hub_started: Some(now()),
        ..Default::default()
    }
}

/// Changes to an [`AgentView`] as the hub would see them.
pub trait AgentsExt {
    /// The agent of `node` disconnected at `since`.
    fn disconnect(&mut self, node: &str, since: Timestamp);
    /// The agent reported `report` for action `id`.
    fn report(&mut self, id: String, report: ReportedAction);
}

impl AgentsExt for AgentView {
    fn disconnect(&mut self, node: &str, since: Timestamp) {
        self.nodes.insert(
            node.into(),
            NodeState {
                connected: false,
                since,
            },
        );
    }

    fn report(&mut self, id: String, report: ReportedAction) {
        self.actions.insert(id, report);
    }
}

/// A report in `phase`, with nothing else said.
pub fn reported(phase: ReportedPhase) -> ReportedAction {
    ReportedAction {
        phase: Some(phase),
        ..Default::default()
    }
}

/// What else a report says.
pub trait ReportExt {
    /// The agent's reason for a failure.
    fn because(self, reason: &str) -> Self;
    /// When the action started and finished.
    fn ran(self, started: Timestamp, finished: Timestamp) -> Self;
    /// When the action finished.
    fn finished(self, at: Timestamp) -> Self;
    /// The backup info file the action wrote.
    fn with_info(self, json: Option<&str>) -> Self;
    /// The Job the agent created for it.
    fn in_job(self, name: &str) -> Self;
}

impl ReportExt for ReportedAction {
    fn because(mut self, reason: &str) -> Self {
        self.failure_reason = reason.into();
        self
    }

    fn ran(mut self, started: Timestamp, finished: Timestamp) -> Self {
        self.started_at = Some(started);
        self.finished_at = Some(finished);
        self
    }

    fn finished(mut self, at: Timestamp) -> Self {
        self.finished_at = Some(at);
        self
    }

    fn with_info(mut self, json: Option<&str>) -> Self {
        self.backup_info_json = json.map(str::to_string);
        self
    }

    fn in_job(mut self, name: &str) -> Self {
        self.job_name = Some(name.into());
        self
    }
}

/// A Running and Ready database pod `name` in namespace `default` on `node-a`, labelled
/// `app=pg`, with a `data` PVC volume and a `postgresql` container listening on 5432.
pub fn pod(name: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}"),
                     "labels": {"app": "pg"}},
        "spec": {"nodeName": "node-a",
                 "containers": [{"name": "postgresql", "image": "postgres",
                                 "env": [{"name": "PGDATA", "value": "/var/lib/pg/data"}],
                                 "ports": [{"containerPort": 5432}]}],
                 "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": format!("data-{name}")}},
                             {"name": "scratch", "emptyDir": {}}],
                 "tolerations": [{"key": "dedicated", "operator": "Exists"}]},
        "status": {"phase": "Running", "podIP": "10.0.0.7",
                   "conditions": [{"type": "Ready", "status": "True"}]}
    }))
    .unwrap()
}

/// What differs in a pod.
pub trait PodExt {
    fn on_node(self, node: &str) -> Self;
    fn labelled(self, labels: &[(&str, &str)]) -> Self;
    /// Running but not Ready.
    fn not_ready(self) -> Self;
}

impl PodExt for Pod {
    fn on_node(mut self, node: &str) -> Self {
        if let Some(spec) = self.spec.as_mut() {
            spec.node_name = Some(node.into());
        }
        self
    }

    fn labelled(mut self, labels: &[(&str, &str)]) -> Self {
        let map = self.metadata.labels.get_or_insert_with(BTreeMap::new);
        for (k, v) in labels {
            map.insert(k.to_string(), v.to_string());
        }
        self
    }

    fn not_ready(mut self) -> Self {
        if let Some(status) = self.status.as_mut() {
            status.conditions = Some(vec![PodCondition {
                type_: "Ready".into(),
                status: "False".into(),
                ..Default::default()
            }]);
        }
        self
    }
}

/// A Tool BackupRepo `name` on StorageProvider `s3`, in `phase`.
pub fn repo(name: &str, phase: &str) -> BackupRepo {
    serde_json::from_value(json!({
        "apiVersion": "dataprotection.kubeblocks.io/v1alpha1",
        "kind": "BackupRepo",
        "metadata": {"name": name},
        "spec": {"storageProviderRef": "s3", "accessMethod": "Tool", "pvReclaimPolicy": "Retain"},
        "status": {"phase": phase}
    }))
    .unwrap()
}

/// What differs in a repository.
pub trait RepoExt {
    /// Annotated as the default repository.
    fn marked_default(self) -> Self;
    fn path_prefix(self, prefix: &str) -> Self;
}

impl RepoExt for BackupRepo {
    fn marked_default(mut self) -> Self {
        self.metadata
            .annotations
            .get_or_insert_with(BTreeMap::new)
            .insert(well_known::annotation::DEFAULT_REPO.into(), "true".into());
        self
    }

    fn path_prefix(mut self, prefix: &str) -> Self {
        self.spec.path_prefix = Some(prefix.into());
        self
    }
}

/// The rendered access of a Tool repository, its configuration holding `secret_access_key =
/// S3CR3T` (so tests can check it never leaks).
pub fn tool_access(repo: &str) -> RepoAccess {
    RepoAccess {
        repo_name: repo.into(),
        datasafed_config: "[storage]\ntype = s3\nsecret_access_key = S3CR3T\n".into(),
        ..Default::default()
    }
}

/// The access of a Mount repository through PVC `claim`.
pub fn mount_access(repo: &str, claim: &str) -> RepoAccess {
    RepoAccess {
        repo_name: repo.into(),
        mount_claim: Some(claim.into()),
        ..Default::default()
    }
}

/// A PVC named `name` (its spec does not matter to the planners).
pub fn claim(name: &str) -> PersistentVolumeClaim {
    PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        ..Default::default()
    }
}

/// The `(node, action)` of every `Dispatch` intent, in order.
pub fn dispatched(intents: &[Intent]) -> Vec<(&str, &pb::Action)> {
    intents
        .iter()
        .filter_map(|i| match i {
            Intent::Dispatch { node, action } => Some((node.as_str(), action.as_ref())),
            _ => None,
        })
        .collect()
}

/// The `(type, reason, message)` of every `Event` intent, in order.
pub fn events(intents: &[Intent]) -> Vec<(EventType, String, String)> {
    intents
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

/// The Job a Job action carries.
pub fn job_of(action: &pb::Action) -> Job {
    match &action.kind {
        Some(pb::action::Kind::Job(job)) => serde_json::from_str(&job.job_json).unwrap(),
        other => panic!("not a job: {other:?}"),
    }
}

/// The first container of a Job.
pub fn container_of(job: &Job) -> &Container {
    &job.spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap()
        .containers[0]
}

/// `(name, value or "secret:<name>/<key>")` of the first container's env, in order.
pub fn env_of(job: &Job) -> Vec<(String, String)> {
    container_of(job)
        .env
        .iter()
        .flatten()
        .map(|e| {
            let value = e.value.clone().unwrap_or_else(|| {
                let key = e
                    .value_from
                    .as_ref()
                    .unwrap()
                    .secret_key_ref
                    .as_ref()
                    .unwrap();
                format!("secret:{}/{}", key.name, key.key)
            });
            (e.name.clone(), value)
        })
        .collect()
}

/// A StorageProvider `s3` as KubeBlocks ships it, Ready: its CSI driver (`ru.yandex.s3.csi`) is
/// installed, and it has datasafed, CSI Secret and StorageClass templates over the parameters
/// `bucket`, `region`, `accessKeyId`, `secretAccessKey` (credentials) and `insecure`.
pub fn s3_provider() -> StorageProvider {
    serde_json::from_value::<StorageProvider>(json!({
        "apiVersion": cairn_api::API_VERSION,
        "kind": "StorageProvider",
        "metadata": {"name": "s3"},
        "spec": {
            "csiDriverName": "ru.yandex.s3.csi",
            "datasafedConfigTemplate": concat!(
                "[storage]\n",
                "type = s3\n",
                "provider = AWS\n",
                "access_key_id = {{ index .Parameters \"accessKeyId\" }}\n",
                "secret_access_key = {{ index .Parameters \"secretAccessKey\" }}\n",
                "region = {{ index .Parameters \"region\" }}\n",
                "root = {{ index .Parameters \"bucket\" }}\n",
                "no_check_certificate = {{ index .Parameters \"insecure\" }}\n"),
            "csiDriverSecretTemplate": concat!(
                "accessKeyID: {{ index .Parameters \"accessKeyId\" }}\n",
                "secretAccessKey: {{ index .Parameters \"secretAccessKey\" }}\n"),
            "storageClassTemplate": concat!(
                "provisioner: ru.yandex.s3.csi\n",
                "parameters:\n",
                "  bucket: {{ index .Parameters \"bucket\" }}\n",
                "  csi.storage.k8s.io/node-publish-secret-name: {{ .CSIDriverSecretRef.Name }}\n",
                "  csi.storage.k8s.io/node-publish-secret-namespace: {{ .CSIDriverSecretRef.Namespace }}\n"),
            "parametersSchema": {"openAPIV3Schema": {"type": "object", "properties": {
                "bucket": {"type": "string"},
                "region": {"type": "string"},
                "accessKeyId": {"type": "string"},
                "secretAccessKey": {"type": "string"},
                "insecure": {"type": "boolean", "default": false}
            }}, "credentialFields": ["accessKeyId", "secretAccessKey"]}
        }
    }))
    .unwrap()
    .csi_driver_installed()
}

/// A StorageProvider `pvc` with only a PVC template (no CSI driver), as standalone Mount
/// repositories use: parameters `storageClassName` and `accessMode` (default ReadWriteMany).
pub fn pvc_provider() -> StorageProvider {
    serde_json::from_value::<StorageProvider>(json!({
        "apiVersion": cairn_api::API_VERSION,
        "kind": "StorageProvider",
        "metadata": {"name": "pvc"},
        "spec": {
            "persistentVolumeClaimTemplate": concat!(
                "spec:\n",
                "  storageClassName: {{ .Parameters.storageClassName | default \"\" }}\n",
                "  accessModes:\n",
                "    - {{ .Parameters.accessMode | default \"ReadWriteOnce\" }}\n"),
            "parametersSchema": {"openAPIV3Schema": {"type": "object", "properties": {
                "storageClassName": {"type": "string"},
                "accessMode": {"type": "string", "default": "ReadWriteMany"}
            }}}
        }
    }))
    .unwrap()
    .csi_driver_installed()
}

/// What differs in a StorageProvider.
pub trait ProviderExt {
    /// Its datasafed template is `template` (`None`: it has none).
    fn datasafed_template(self, template: Option<&str>) -> Self;
    /// Its CSI driver Secret template is `template`.
    fn csi_secret_template(self, template: &str) -> Self;
    /// Its StorageClass template is `template`.
    fn storage_class_template(self, template: &str) -> Self;
    /// Its PVC template is `template` (`None`: it has none).
    fn pvc_template(self, template: Option<&str>) -> Self;
    /// Its controller found the CSI driver: phase Ready, `CSIDriverInstalled` True.
    fn csi_driver_installed(self) -> Self;
    /// Its controller did not find the CSI driver: phase NotReady, `CSIDriverInstalled`
    /// Unknown (`CheckCSIDriverFailed`).
    fn csi_driver_missing(self) -> Self;
    /// Its controller has not looked at it yet (no status).
    fn never_checked(self) -> Self;
}

impl ProviderExt for StorageProvider {
    fn datasafed_template(mut self, template: Option<&str>) -> Self {
        self.spec.datasafed_config_template = template.map(str::to_string);
        self
    }

    fn csi_secret_template(mut self, template: &str) -> Self {
        self.spec.csi_driver_secret_template = Some(template.into());
        self
    }

    fn storage_class_template(mut self, template: &str) -> Self {
        self.spec.storage_class_template = Some(template.into());
        self
    }

    fn pvc_template(mut self, template: Option<&str>) -> Self {
        self.spec.persistent_volume_claim_template = template.map(str::to_string);
        self
    }

    fn csi_driver_installed(self) -> Self {
        self.csi_driver("Ready", "True", "CSIDriverObjectFound", "")
    }

    fn csi_driver_missing(self) -> Self {
        self.csi_driver("NotReady", "Unknown", "CheckCSIDriverFailed", "not found")
    }

    fn never_checked(mut self) -> Self {
        self.status = None;
        self
    }
}

trait CsiDriverCheck {
    fn csi_driver(self, phase: &str, status: &str, reason: &str, message: &str) -> Self;
}

impl CsiDriverCheck for StorageProvider {
    fn csi_driver(mut self, phase: &str, status: &str, reason: &str, message: &str) -> Self {
        self.status = serde_json::from_value(json!({
            "phase": phase,
            "conditions": [{"type": well_known::conditions::storage_provider::CONDITION_CSI_DRIVER_INSTALLED,
                            "status": status, "reason": reason, "message": message,
                            "lastTransitionTime": "2026-11-22T09:00:00Z"}]
        }))
        .unwrap();
        self
    }
}

/// A Backup `name` in `namespace` (policy `p`, method `m`) that has not started.
pub fn backup_in(name: &str, namespace: &str) -> Backup {
    serde_json::from_value(json!({
        "apiVersion": cairn_api::API_VERSION,
        "kind": "Backup",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"backupPolicyName": "p", "backupMethod": "m"}
    }))
    .unwrap()
}

/// A Restore `name` in `namespace` of Backup `b1` in the same namespace, not started.
pub fn restore_in(name: &str, namespace: &str) -> Restore {
    serde_json::from_value(json!({
        "apiVersion": cairn_api::API_VERSION,
        "kind": "Restore",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"backup": {"name": "b1", "namespace": namespace}}
    }))
    .unwrap()
}

/// How a Backup or Restore relates to its repository, as the labels say.
pub trait RepoLabelsExt {
    /// Labelled as using repository `repo`.
    fn of_repo(self, repo: &str) -> Self;
    /// Labelled as waiting for its repository's PVC or configuration in its namespace.
    fn waiting_for_its_repo(self) -> Self;
}

macro_rules! repo_labels {
    ($kind:ty) => {
        impl RepoLabelsExt for $kind {
            fn of_repo(mut self, repo: &str) -> Self {
                label(&mut self.metadata, well_known::label::BACKUP_REPO, repo);
                self
            }

            fn waiting_for_its_repo(mut self) -> Self {
                label(
                    &mut self.metadata,
                    well_known::label::WAIT_REPO_PREPARATION,
                    "true",
                );
                self
            }
        }
    };
}
repo_labels!(Backup);
repo_labels!(Restore);

/// What differs in a Backup.
pub trait BackupExt {
    /// In `phase`.
    fn in_phase(self, phase: BackupPhase) -> Self;
    /// Of a Continuous ActionSet (labelled so).
    fn continuous(self) -> Self;
}

impl BackupExt for Backup {
    fn in_phase(mut self, phase: BackupPhase) -> Self {
        self.status.get_or_insert_with(Default::default).phase = Some(phase);
        self
    }

    fn continuous(mut self) -> Self {
        label(
            &mut self.metadata,
            well_known::label::BACKUP_TYPE,
            "Continuous",
        );
        self
    }
}

/// What differs in a Restore.
pub trait RestoreExt {
    /// In `phase`.
    fn in_phase(self, phase: RestorePhase) -> Self;
}

impl RestoreExt for Restore {
    fn in_phase(mut self, phase: RestorePhase) -> Self {
        self.status.get_or_insert_with(Default::default).phase = Some(phase);
        self
    }
}

/// What differs in a PVC.
pub trait ClaimExt {
    /// In `namespace`.
    fn in_namespace(self, namespace: &str) -> Self;
    /// Labelled as repository `repo`'s.
    fn of_repo(self, repo: &str) -> Self;
    /// Owned by an object that is not the repository.
    fn owned_by_someone_else(self) -> Self;
}

impl ClaimExt for PersistentVolumeClaim {
    fn in_namespace(mut self, namespace: &str) -> Self {
        self.metadata.namespace = Some(namespace.into());
        self
    }

    fn of_repo(mut self, repo: &str) -> Self {
        label(&mut self.metadata, well_known::label::BACKUP_REPO, repo);
        self
    }

    fn owned_by_someone_else(mut self) -> Self {
        self.metadata.owner_references = Some(vec![OwnerReference {
            api_version: "v1".into(),
            kind: "X".into(),
            name: "x".into(),
            uid: "other".into(),
            ..Default::default()
        }]);
        self
    }
}

/// Sets label `key` to `value` on an object.
fn label(metadata: &mut ObjectMeta, key: &str, value: &str) {
    metadata
        .labels
        .get_or_insert_with(BTreeMap::new)
        .insert(key.into(), value.into());
}
