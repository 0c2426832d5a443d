//! The volume populator (ARCHITECTURE.md §K4.6): a PersistentVolumeClaim whose
//! `spec.dataSourceRef` is `{apiGroup: dataprotection.kubeblocks.io, kind: Restore, name}` is
//! filled with that Restore's backup (the Restore is in phase `AsDataSource`).
//!
//! # Expected flow
//! 1. A claim naming a Restore of another namespace is refused (condition `Populating` Failed,
//!    Warning `VolumePopulateFailed`); so is a StorageClass with an in-tree provisioner
//!    (`kubernetes.io/*`). A WaitForFirstConsumer claim waits for the scheduler's
//!    `volume.kubernetes.io/selected-node`.
//! 2. The claim gets the data-protection finalizer and condition `Populating` Processing (event
//!    `StartToVolumePopulate`); a shadow claim `kb-populate-<claim uid>` is created with the
//!    claim's size, class and modes (made from the backup's VolumeSnapshot for a volume snapshot
//!    backup) on the selected node.
//! 3. Each prepareData set of the Restore runs as Job `<shadow>-<set>` (label `populate-pvc`,
//!    tolerating every taint) through the action engine, on the selected node, mounting the
//!    shadow claim; one set after the other. Each finished set is counted in the claim's
//!    annotation `cairn.io/populated-sets` before its result is acknowledged, so none runs twice.
//! 4. Once every set is done and the shadow claim is bound, its PersistentVolume's `claimRef`
//!    is moved to the claim and the volume annotated `populate-from=<restore>` (condition
//!    Succeed, event `VolumePopulateSucceed`); Kubernetes binds the claim to it.
//! 5. Once the claim is Bound: the Jobs and the shadow claim are deleted and the finalizer
//!    removed. Deleting the claim does the same at any point.
//!
//! postReady is not run on this path (as in KubeBlocks). A failure is terminal for the claim
//! (its Jobs are kept for inspection until the claim is deleted).

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use cairn_api::restore::{RestorePhase, VolumeConfig};
use cairn_api::well_known;
use cairn_api::well_known::conditions::populate::{
    CONDITION_POPULATING, EVENT_FAILED, EVENT_START, EVENT_SUCCEED, REASON_FAILED,
    REASON_PROCESSING, REASON_SUCCEED,
};
use cairn_proto::agent::v1 as pb;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{
    PersistentVolume, PersistentVolumeClaim, PersistentVolumeClaimCondition,
    PersistentVolumeClaimSpec, PersistentVolumeClaimStatus, PersistentVolumeClaimVolumeSource,
    Toleration, Volume, VolumeMount,
};
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde_json::json;

use super::action::{ActionKind, Step, failure_reason, lost_message, step, to_wire};
use super::agent_view::AgentView;
use super::ids::action_id;
use super::intent::{Intent, Plan};
use super::restore::jobs::{self, JobInput};
use super::restore::placement::{Placement, Placements};
use super::restore::request::{Problem, Request};
use super::restore::sets::{self, Sets};
use super::restore::snapshot::{SNAPSHOT_GROUP, SNAPSHOT_KIND, snapshot_of_volume};
use super::restore::work::Run;
use super::restore::{self, as_data_source, env};

/// The volume of the shadow claim in the populate Jobs.
const SHADOW_VOLUME: &str = "dp-populate-pvc";

/// Everything the populator reads for one claim.
#[derive(Debug, Clone)]
pub struct Observed {
    /// The claim whose `spec.dataSourceRef` names a Restore.
    pub claim: PersistentVolumeClaim,
    /// The Restore it names and what its planner reads; `None` when it does not exist (or is
    /// in another namespace: not read).
    pub restore: Option<restore::Observed>,
    /// The claim's StorageClass, if it exists.
    pub storage_class: Option<StorageClass>,
    /// The shadow claim `kb-populate-<uid>`, if it exists.
    pub shadow: Option<PersistentVolumeClaim>,
    /// The PersistentVolume the shadow claim is bound to (or the claim, once handed over).
    pub volume: Option<PersistentVolume>,
    /// The populate Jobs of the claim (label `populate-pvc`) in its namespace, by name.
    pub jobs: Vec<String>,
    pub agents: AgentView,
    pub settings: restore::Settings,
}

/// The Restore a claim's `spec.dataSourceRef` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub name: String,
    /// `dataSourceRef.namespace`, when set.
    pub namespace: Option<String>,
}

/// The Restore the claim asks to be populated from, if it names one.
pub fn source(claim: &PersistentVolumeClaim) -> Option<Source> {
    let reference = claim.spec.as_ref()?.data_source_ref.as_ref()?;
    let ours = reference.api_group.as_deref() == Some(cairn_api::GROUP)
        && reference.kind == well_known::populate::SOURCE_KIND;
    ours.then(|| Source {
        name: reference.name.clone(),
        namespace: reference.namespace.clone().filter(|n| !n.is_empty()),
    })
}

/// The name of a claim's shadow claim.
pub fn shadow_name(claim: &PersistentVolumeClaim) -> String {
    format!(
        "{}{}",
        well_known::populate::SHADOW_PREFIX,
        claim.metadata.uid.as_deref().unwrap_or_default()
    )
}

/// The name of the Job of prepareData set `set`.
pub fn job_name(claim: &PersistentVolumeClaim, set: usize) -> String {
    format!("{}-{set}", shadow_name(claim))
}

/// The node the scheduler chose for a claim.
pub fn selected_node(claim: &PersistentVolumeClaim) -> Option<String> {
    claim
        .metadata
        .annotations
        .as_ref()?
        .get(well_known::annotation::SELECTED_NODE)
        .filter(|n| !n.is_empty())
        .cloned()
}

/// Plans one reconcile of a claim.
pub fn plan(o: &Observed, now: Timestamp) -> Plan<PersistentVolumeClaimStatus> {
    let Some(source) = source(&o.claim) else {
        return Plan::nothing();
    };
    if o.claim.metadata.deletion_timestamp.is_some() {
        return clean_up(o, None, Vec::new());
    }
    let namespace = o.claim.metadata.namespace.clone().unwrap_or_default();
    if let Some(other) = source.namespace.as_ref().filter(|n| **n != namespace) {
        return refuse(
            o,
            now,
            format!(
                "spec.dataSourceRef.namespace {other:?}: a Restore populates only claims of its own namespace ({namespace:?}); cross-namespace data sources are not supported"
            ),
        );
    }
    if bound(&o.claim) {
        return if has_finalizer(&o.claim) {
            clean_up(o, None, Vec::new())
        } else {
            Plan::nothing()
        };
    }
    if condition(&o.claim).is_some_and(|c| c.reason.as_deref() == Some(REASON_FAILED)) {
        return Plan::nothing();
    }
    let restore_name = format!("{namespace}/{}", source.name);
    let Some(ro) = o.restore.as_ref() else {
        return wait(
            o,
            now,
            format!("waiting for Restore {restore_name} to exist"),
        );
    };
    let data_source = as_data_source::source(&ro.restore);
    match ro.restore.status.as_ref().and_then(|s| s.phase) {
        Some(RestorePhase::AsDataSource) if data_source.is_some() => {}
        None if data_source.is_some() => {
            return wait(
                o,
                now,
                format!("waiting for Restore {restore_name} to be validated"),
            );
        }
        Some(RestorePhase::Failed) => {
            return refuse(
                o,
                now,
                format!("Restore {restore_name} failed: see its conditions"),
            );
        }
        phase => {
            return refuse(
                o,
                now,
                format!(
                    "spec.dataSourceRef: Restore {restore_name} is not a data source (phase {}): only a Restore with spec.prepareDataConfig.dataSourceRef populates claims",
                    phase.map_or("\"\"".to_string(), |p| format!("{p:?}"))
                ),
            );
        }
    }
    let Some(data_source) = data_source else {
        return Plan::nothing();
    };
    let class_name = o
        .claim
        .spec
        .as_ref()
        .and_then(|s| s.storage_class_name.clone())
        .unwrap_or_default();
    let Some(class) = o.storage_class.as_ref() else {
        if class_name.is_empty() {
            return refuse(
                o,
                now,
                "spec.storageClassName is empty: a populated volume is provisioned by a StorageClass".into(),
            );
        }
        return wait(o, now, format!("waiting for StorageClass {class_name}"));
    };
    if class
        .provisioner
        .starts_with(well_known::populate::IN_TREE_PROVISIONER_PREFIX)
    {
        return refuse(
            o,
            now,
            format!(
                "StorageClass {class_name} uses the in-tree provisioner {:?}, which cannot provision populated volumes: use a CSI driver's StorageClass",
                class.provisioner
            ),
        );
    }
    let node = selected_node(&o.claim);
    if class.volume_binding_mode.as_deref() == Some("WaitForFirstConsumer") && node.is_none() {
        // The scheduler picks the node when a pod uses the claim; its annotation triggers us.
        return Plan::nothing();
    }
    let sets = match sets::resolve(ro) {
        Ok(sets) => sets,
        Err(Problem::Fail { message, .. }) => {
            return refuse(o, now, format!("Restore {restore_name}: {message}"));
        }
        Err(Problem::Wait { message, .. }) => return wait(o, now, message),
        Err(Problem::WaitForRepoClaim { repo, claim }) => {
            return wait(
                o,
                now,
                format!("waiting for backup repository {repo} to create its PVC {claim}"),
            );
        }
    };
    Populate {
        o,
        ro,
        sets: &sets,
        source: data_source,
        node,
        now,
        restore_name: source.name,
    }
    .run()
}

/// One reconcile of a claim being populated.
struct Populate<'a> {
    o: &'a Observed,
    ro: &'a restore::Observed,
    sets: &'a Sets<'a>,
    source: &'a VolumeConfig,
    node: Option<String>,
    now: Timestamp,
    restore_name: String,
}

impl Populate<'_> {
    fn run(self) -> Plan<PersistentVolumeClaimStatus> {
        let o = self.o;
        let mut intents = Vec::new();
        let mut status = o.claim.status.clone().unwrap_or_default();
        let mut annotations = BTreeMap::new();
        if !has_finalizer(&o.claim) {
            intents.push(Intent::AddFinalizer);
            let message = format!("populating the volume from Restore {}", self.restore_name);
            set_condition(&mut status, REASON_PROCESSING, &message, self.now);
            intents.push(Intent::normal(EVENT_START, message));
        }
        let shadow = shadow_name(&o.claim);
        if o.shadow.is_none() {
            match self.shadow_object(&shadow) {
                Ok(object) => intents.push(Intent::Create { object }),
                Err(message) => return self.fail(status, intents, message),
            }
        }
        let mut placements =
            Placements::read_from(o.claim.metadata.annotations.as_ref(), populate_nodes());
        let recorded = populated_sets(&o.claim);
        let mut done = recorded;
        let mut pending = false;
        for (set, req) in self.sets.prepare_data().enumerate() {
            if set < done {
                continue;
            }
            let Some(spec) = req.spec.prepare_data.as_ref() else {
                // A volume snapshot set without prepareData: the shadow claim is its data.
                done = set + 1;
                continue;
            };
            let job = self.job(req, spec, set);
            let key = format!("Job/{}", job_name(&o.claim, set));
            let id = action_id(
                o.claim.metadata.uid.as_deref().unwrap_or_default(),
                &format!("populate-{set}"),
                &key,
            );
            let placement = match &self.node {
                Some(node) => Placement::Pinned(node.clone()),
                None => Placement::Anywhere {
                    node_selector: BTreeMap::new(),
                },
            };
            let Some(node) = placements.place(&key, &placement, &o.agents, &self.ro.nodes) else {
                set_condition(
                    &mut status,
                    REASON_PROCESSING,
                    "waiting for a connected node agent that can run the populate job",
                    self.now,
                );
                pending = true;
                break;
            };
            match step(&o.agents, &id, Some(&node), self.now) {
                Step::NotDispatched => {
                    let action = self.wire(req, job, &id, set);
                    intents.push(Intent::Dispatch {
                        node,
                        action: Box::new(action),
                    });
                    pending = true;
                    break;
                }
                Step::Running(_) => {
                    pending = true;
                    break;
                }
                Step::Succeeded(_) => {
                    intents.push(Intent::Acknowledge { action_id: id });
                    done = set + 1;
                }
                Step::Failed(report) => {
                    let reason = failure_reason(report, "the job failed");
                    intents.push(Intent::Acknowledge { action_id: id });
                    return self.fail(
                        status,
                        intents,
                        format!(
                            "populate job {} (backup \"{}\") failed: {reason}",
                            job_name(&o.claim, set),
                            req.backup_name
                        ),
                    );
                }
                Step::NodeLost { lost_for } => {
                    return self.fail(
                        status,
                        intents,
                        format!(
                            "populate job {}: {}; its outcome is unknown",
                            job_name(&o.claim, set),
                            lost_message(&node, lost_for)
                        ),
                    );
                }
            }
        }
        if done != recorded {
            annotations.insert(
                well_known::annotation::POPULATED_SETS.to_string(),
                Some(done.to_string()),
            );
        }
        if let Some((key, value)) = placements.patch() {
            annotations.insert(key, Some(value));
        }
        if !annotations.is_empty() {
            intents.insert(
                0,
                Intent::PatchMeta {
                    labels: BTreeMap::new(),
                    annotations,
                },
            );
        }
        if !pending {
            self.hand_over(&mut status, &mut intents);
        }
        Plan {
            status: Some(status),
            intents,
            requeue: Some(self.o.settings.poll),
        }
    }

    /// Every set is done: moves the shadow claim's volume to the claim, once it is bound.
    fn hand_over(&self, status: &mut PersistentVolumeClaimStatus, intents: &mut Vec<Intent>) {
        let o = self.o;
        let Some(volume) = o.volume.as_ref() else {
            set_condition(
                status,
                REASON_PROCESSING,
                "waiting for the populated shadow claim to be bound to a volume",
                self.now,
            );
            return;
        };
        let volume_name = volume.metadata.name.clone().unwrap_or_default();
        let claim_ref = volume.spec.as_ref().and_then(|s| s.claim_ref.as_ref());
        if claim_ref.and_then(|r| r.uid.as_deref()) == o.claim.metadata.uid.as_deref() {
            return;
        }
        intents.push(Intent::MergePatch {
            api_version: "v1".into(),
            kind: "PersistentVolume".into(),
            namespace: None,
            name: volume_name.clone(),
            patch: json!({
                "metadata": {"annotations": {
                    well_known::annotation::POPULATE_FROM: self.restore_name,
                }},
                "spec": {"claimRef": {
                    "apiVersion": "v1",
                    "kind": "PersistentVolumeClaim",
                    "namespace": o.claim.metadata.namespace,
                    "name": o.claim.metadata.name,
                    "uid": o.claim.metadata.uid,
                    "resourceVersion": null,
                    "fieldPath": null,
                }},
            }),
        });
        let message = format!(
            "populated volume {volume_name} from Restore {} and bound it to the claim",
            self.restore_name
        );
        set_condition(status, REASON_SUCCEED, &message, self.now);
        intents.push(Intent::normal(EVENT_SUCCEED, message));
    }

    /// The shadow claim: the claim's size, class, modes and node; made from the backup's
    /// VolumeSnapshot when the first set is a volume snapshot backup.
    fn shadow_object(&self, name: &str) -> Result<serde_json::Value, String> {
        let o = self.o;
        let spec = o.claim.spec.clone().unwrap_or_default();
        let shadow_spec = PersistentVolumeClaimSpec {
            access_modes: spec.access_modes,
            resources: spec.resources,
            storage_class_name: spec.storage_class_name,
            volume_mode: spec.volume_mode,
            ..Default::default()
        };
        let mut object = json!({
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {
                "name": name,
                "namespace": o.claim.metadata.namespace,
                "labels": {
                    well_known::label::MANAGED_BY: well_known::label::MANAGED_BY_DATA_PROTECTION,
                    well_known::label::POPULATE_PVC: o.claim.metadata.name,
                },
            },
            "spec": shadow_spec,
        });
        if let Some(node) = &self.node {
            object["metadata"]["annotations"] =
                json!({well_known::annotation::SELECTED_NODE: node});
        }
        if let Some(req) = self.sets.prepare_data().next().filter(|r| r.is_snapshot()) {
            let volume = self.source.volume_source.clone().unwrap_or_default();
            let run = self.run_for(req);
            let snapshot = snapshot_of_volume(&run, name, &volume)?;
            object["spec"]["dataSourceRef"] = json!({
                "apiGroup": SNAPSHOT_GROUP,
                "kind": SNAPSHOT_KIND,
                "name": snapshot,
            });
        }
        Ok(object)
    }

    /// The prepareData Job of set `set`, writing into the shadow claim.
    fn job(
        &self,
        req: &Request<'_>,
        spec: &cairn_api::action::JobActionSpec,
        set: usize,
    ) -> k8s_openapi::api::batch::v1::Job {
        let o = self.o;
        let restore = &self.ro.restore;
        let params: Vec<(String, String)> = restore
            .spec
            .parameters
            .iter()
            .flatten()
            .map(|p| (p.name.clone(), p.value.clone()))
            .collect();
        let restore_env = restore.spec.env.clone().unwrap_or_default();
        // Checked when the Restore was validated (`as_data_source::check`).
        let mount_path = as_data_source::mount_path(req, self.source).unwrap_or_default();
        jobs::build(
            req,
            restore,
            JobInput {
                name: job_name(&o.claim, set),
                image: spec.base.image.clone(),
                command: spec.base.command.clone(),
                env: env::common(req, &restore_env, &params, None),
                env_from: super::restore::prepare::env_from(req.actionset),
                volumes: vec![Volume {
                    name: SHADOW_VOLUME.into(),
                    persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                        claim_name: shadow_name(&o.claim),
                        read_only: None,
                    }),
                    ..Default::default()
                }],
                mounts: vec![VolumeMount {
                    name: SHADOW_VOLUME.into(),
                    mount_path,
                    ..Default::default()
                }],
                labels: BTreeMap::from([(
                    well_known::label::POPULATE_PVC.to_string(),
                    o.claim.metadata.name.clone().unwrap_or_default(),
                )]),
                tolerations: Some(vec![Toleration {
                    operator: Some("Exists".into()),
                    ..Default::default()
                }]),
                ..Default::default()
            },
        )
    }

    /// The wire action of a populate Job, owned by the claim (its reports reconcile it).
    fn wire(
        &self,
        req: &Request<'_>,
        job: k8s_openapi::api::batch::v1::Job,
        id: &str,
        set: usize,
    ) -> pb::Action {
        let run = self.run_for(req);
        let mut kind = ActionKind::Job {
            job: Box::new(job),
            storage: run.grant(),
            info: None,
        };
        if let (ActionKind::Job { storage, .. }, None) = (&mut kind, req.access) {
            *storage = None;
        }
        let meta = &self.o.claim.metadata;
        let owner = pb::ObjectRef {
            api_version: "v1".into(),
            kind: "PersistentVolumeClaim".into(),
            namespace: meta.namespace.clone().unwrap_or_default(),
            name: meta.name.clone().unwrap_or_default(),
            uid: meta.uid.clone().unwrap_or_default(),
        };
        to_wire(id, &format!("populate-{set}"), owner, None, kind)
    }

    /// The restore planner's view of set `req` (for its grant and snapshot lookup).
    fn run_for<'r>(&'r self, req: &'r Request<'r>) -> Run<'r> {
        Run {
            o: self.ro,
            req,
            sets: self.sets,
            now: self.now,
            status: self.ro.restore.status.clone().unwrap_or_default(),
            intents: Vec::new(),
            placements: Placements::default(),
            annotations: BTreeMap::new(),
            requeue: None,
        }
    }

    fn fail(
        &self,
        mut status: PersistentVolumeClaimStatus,
        mut intents: Vec<Intent>,
        message: String,
    ) -> Plan<PersistentVolumeClaimStatus> {
        set_condition(&mut status, REASON_FAILED, &message, self.now);
        intents.push(Intent::warning(EVENT_FAILED, message));
        Plan {
            status: Some(status),
            intents,
            requeue: None,
        }
    }
}

fn populate_nodes() -> &'static str {
    well_known::annotation::POPULATE_NODES
}

/// The claim cannot be populated: condition Failed and one Warning per message.
fn refuse(o: &Observed, now: Timestamp, message: String) -> Plan<PersistentVolumeClaimStatus> {
    if condition(&o.claim).is_some_and(|c| {
        c.reason.as_deref() == Some(REASON_FAILED) && c.message.as_deref() == Some(&message)
    }) {
        return Plan::nothing();
    }
    let mut status = o.claim.status.clone().unwrap_or_default();
    set_condition(&mut status, REASON_FAILED, &message, now);
    Plan {
        status: Some(status),
        intents: vec![Intent::warning(EVENT_FAILED, message)],
        requeue: None,
    }
}

/// Not yet: condition Processing with why, and another look soon.
fn wait(o: &Observed, now: Timestamp, message: String) -> Plan<PersistentVolumeClaimStatus> {
    let mut status = o.claim.status.clone().unwrap_or_default();
    set_condition(&mut status, REASON_PROCESSING, &message, now);
    Plan {
        status: Some(status),
        intents: Vec::new(),
        requeue: Some(o.settings.wait_requeue),
    }
}

/// Deletes the populate Jobs and the shadow claim, then removes the finalizer.
fn clean_up(
    o: &Observed,
    status: Option<PersistentVolumeClaimStatus>,
    mut intents: Vec<Intent>,
) -> Plan<PersistentVolumeClaimStatus> {
    let namespace = o.claim.metadata.namespace.clone();
    for job in &o.jobs {
        intents.push(Intent::Delete {
            api_version: "batch/v1".into(),
            kind: "Job".into(),
            namespace: namespace.clone(),
            name: job.clone(),
        });
    }
    if o.shadow.is_some() {
        intents.push(Intent::Delete {
            api_version: "v1".into(),
            kind: "PersistentVolumeClaim".into(),
            namespace,
            name: shadow_name(&o.claim),
        });
    }
    if has_finalizer(&o.claim) {
        intents.push(Intent::RemoveFinalizer);
    }
    Plan {
        status,
        intents,
        requeue: None,
    }
}

/// How many sets have written the shadow claim (annotation `cairn.io/populated-sets`).
fn populated_sets(claim: &PersistentVolumeClaim) -> usize {
    claim
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(well_known::annotation::POPULATED_SETS))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn bound(claim: &PersistentVolumeClaim) -> bool {
    claim.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound")
}

fn has_finalizer(claim: &PersistentVolumeClaim) -> bool {
    claim
        .metadata
        .finalizers
        .iter()
        .flatten()
        .any(|f| f == well_known::FINALIZER)
}

/// The claim's `Populating` condition.
pub fn condition(claim: &PersistentVolumeClaim) -> Option<&PersistentVolumeClaimCondition> {
    claim
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == CONDITION_POPULATING)
}

/// Sets the `Populating` condition (`True` once Succeed), keeping its transition time when its
/// status does not change.
fn set_condition(
    status: &mut PersistentVolumeClaimStatus,
    reason: &str,
    message: &str,
    now: Timestamp,
) {
    let value = if reason == REASON_SUCCEED {
        "True"
    } else {
        "False"
    };
    let conditions = status.conditions.get_or_insert_with(Vec::new);
    match conditions
        .iter_mut()
        .find(|c| c.type_ == CONDITION_POPULATING)
    {
        Some(existing) => {
            if existing.status != value {
                existing.last_transition_time = Some(Time(now));
            }
            existing.status = value.into();
            existing.reason = Some(reason.into());
            existing.message = Some(message.into());
        }
        None => conditions.push(PersistentVolumeClaimCondition {
            type_: CONDITION_POPULATING.into(),
            status: value.into(),
            reason: Some(reason.into()),
            message: Some(message.into()),
            last_transition_time: Some(Time(now)),
            last_probe_time: None,
        }),
    }
}
