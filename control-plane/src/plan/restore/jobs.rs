//! The common shape of restore Jobs (ARCHITECTURE.md §K4.4): labels, the `restore` container
//! running as root, the Restore as owner, the repository mount, backup extras through the
//! downward API, and the scheduling of prepareData pods.

use std::collections::BTreeMap;

use cairn_api::restore::{Restore, SchedulingSpec};
use cairn_api::well_known;
use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    Container, DownwardAPIVolumeFile, DownwardAPIVolumeSource, EnvFromSource, EnvVar,
    ObjectFieldSelector, PersistentVolumeClaimVolumeSource, PodSecurityContext, PodSpec,
    PodTemplateSpec, Toleration, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use super::request::Request;
use crate::plan::backup::repo::MOUNT_PATH;
use crate::plan::env::expand;

const DOWNWARD_VOLUME: &str = "downward-volume";
const DOWNWARD_MOUNT: &str = "/dp_downward";
const REPO_VOLUME: &str = "dp-backup-data";

/// What differs between restore Jobs.
#[derive(Debug, Clone, Default)]
pub struct JobInput {
    pub name: String,
    pub image: String,
    pub command: Vec<String>,
    pub env: Vec<EnvVar>,
    pub env_from: Vec<EnvFromSource>,
    pub volumes: Vec<Volume>,
    pub mounts: Vec<VolumeMount>,
    pub labels: BTreeMap<String, String>,
    pub scheduling: Option<SchedulingSpec>,
    pub tolerations: Option<Vec<Toleration>>,
    /// Overrides the Restore's backoffLimit (probes run once).
    pub backoff_limit: Option<i32>,
    pub active_deadline_seconds: Option<i64>,
}

/// Builds a restore Job in the Restore's namespace.
pub fn build(req: &Request<'_>, restore: &Restore, input: JobInput) -> Job {
    let restore_name = restore.metadata.name.clone().unwrap_or_default();
    let mut labels = input.labels;
    labels.insert(
        well_known::label::MANAGED_BY.into(),
        well_known::label::MANAGED_BY_DATA_PROTECTION.into(),
    );
    labels.insert(well_known::label::RESTORE.into(), restore_name.clone());
    let mut volumes = input.volumes;
    let mut mounts = input.mounts;
    if let Some(claim) = req.access.and_then(|a| a.mount_claim.as_ref()) {
        volumes.push(Volume {
            name: REPO_VOLUME.into(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: claim.clone(),
                read_only: None,
            }),
            ..Default::default()
        });
        mounts.push(VolumeMount {
            name: REPO_VOLUME.into(),
            mount_path: MOUNT_PATH.into(),
            ..Default::default()
        });
    }
    let mut annotations = BTreeMap::new();
    let extras = req
        .backup
        .status
        .as_ref()
        .and_then(|s| s.extras.clone())
        .filter(|e| !e.is_empty());
    if let Some(extras) = extras {
        annotations.insert(
            well_known::annotation::BACKUP_EXTRAS.to_string(),
            serde_json::to_string(&extras).unwrap_or_default(),
        );
        volumes.push(Volume {
            name: DOWNWARD_VOLUME.into(),
            downward_api: Some(DownwardAPIVolumeSource {
                items: Some(vec![DownwardAPIVolumeFile {
                    path: "status_extras".into(),
                    field_ref: Some(ObjectFieldSelector {
                        field_path: format!(
                            "metadata.annotations['{}']",
                            well_known::annotation::BACKUP_EXTRAS
                        ),
                        api_version: None,
                    }),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        });
        mounts.push(VolumeMount {
            name: DOWNWARD_VOLUME.into(),
            mount_path: DOWNWARD_MOUNT.into(),
            ..Default::default()
        });
    }
    let image = expand(&input.image, &input.env);
    let container = Container {
        name: "restore".into(),
        image: Some(image),
        image_pull_policy: Some("IfNotPresent".into()),
        command: Some(input.command),
        env: Some(input.env),
        env_from: (!input.env_from.is_empty()).then_some(input.env_from),
        resources: restore.spec.container_resources.clone(),
        volume_mounts: (!mounts.is_empty()).then_some(mounts),
        ..Default::default()
    };
    let scheduling = input.scheduling.unwrap_or_default();
    let mut tolerations = scheduling.tolerations.unwrap_or_default();
    tolerations.extend(input.tolerations.unwrap_or_default());
    Job {
        metadata: ObjectMeta {
            name: Some(input.name),
            namespace: restore.metadata.namespace.clone(),
            labels: Some(labels.clone()),
            owner_references: Some(vec![owner_reference(restore)]),
            ..Default::default()
        },
        spec: Some(JobSpec {
            backoff_limit: Some(
                input
                    .backoff_limit
                    .unwrap_or_else(|| restore.spec.backoff_limit.unwrap_or(2)),
            ),
            active_deadline_seconds: input.active_deadline_seconds,
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    annotations: (!annotations.is_empty()).then_some(annotations),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    restart_policy: Some("Never".into()),
                    service_account_name: restore
                        .spec
                        .service_account_name
                        .clone()
                        .filter(|s| !s.is_empty()),
                    security_context: Some(PodSecurityContext {
                        run_as_user: Some(0),
                        ..Default::default()
                    }),
                    containers: vec![container],
                    volumes: (!volumes.is_empty()).then_some(volumes),
                    tolerations: (!tolerations.is_empty()).then_some(tolerations),
                    affinity: scheduling.affinity,
                    node_selector: scheduling.node_selector.filter(|s| !s.is_empty()),
                    node_name: scheduling.node_name.filter(|n| !n.is_empty()),
                    scheduler_name: scheduling.scheduler_name.filter(|n| !n.is_empty()),
                    topology_spread_constraints: scheduling.topology_spread_constraints,
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        status: None,
    }
}

/// The Restore as the controller owner of what it creates.
pub fn owner_reference(restore: &Restore) -> OwnerReference {
    OwnerReference {
        api_version: "dataprotection.kubeblocks.io/v1alpha1".into(),
        kind: "Restore".into(),
        name: restore.metadata.name.clone().unwrap_or_default(),
        uid: restore.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}
