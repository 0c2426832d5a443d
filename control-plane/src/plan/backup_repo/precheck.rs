//! The repository pre-check (ARCHITECTURE.md §K5.3 step 6), run by a node agent instead of
//! a Job in the control plane's namespace.
//!
//! # Expected flow
//! 1. The digest of parameters and templates differs from the repository's
//!    `backup-repo-digest` annotation (or the condition is missing): `PreCheckPassed` turns
//!    Unknown (`DigestChanged`). Only once that is written does the annotation take the new
//!    digest, so a crash between the two writes can never leave an old verdict standing for a
//!    new digest.
//! 2. While `PreCheckPassed` is Unknown, the check for the current digest runs on any connected
//!    agent, with an action id derived from (repo uid, `pre-check-<digest[:8]>`, ""):
//!    - Tool: a `RepoCheckAction` pushes, pulls and removes `/<pathPrefix>/precheck.txt` through
//!      the rendered datasafed configuration (sent only to the agent);
//!    - Mount: a PVC like the repository PVC is created in the control plane's namespace (a
//!      PVC naming a StorageClass that does not exist fails the check at once: no repository
//!      PVC could ever be bound), then the two paths every backup uses, one after the other:
//!      - first a `JobAction` runs KubeBlocks' pre-check Job (write, read and remove
//!        `/backup/precheck.txt` on it), as action pods mount the repository PVC;
//!      - once it passed, a `RepoCheckAction` (id from `pre-check-agent-<digest[:8]>`) whose
//!        grant names the pre-check PVC: the agent reaches it exactly as for a backup (the
//!        volume's directory when it is local to its node, otherwise through a holder pod on
//!        its node) and pushes, pulls and removes `/<pathPrefix>/precheck.txt`. It goes to
//!        the agent of the node the volume was provisioned for
//!        (`volume.kubernetes.io/selected-node`) when that agent is connected, else to any.
//!
//!    With no agent connected the condition says so and the repository is looked at again.
//! 3. The agent's result sets `PreCheckPassed` True (`PreCheckPassed`: for Mount, both steps
//!    passed) or False (`PreCheckFailed`, message = the agent's failure reason, for Mount naming
//!    the pre-check PVC and the step, capped at 32 KiB; the phase change emits a
//!    `BackupRepoFailed` warning Event with it); a step still running `pre_check_timeout` after
//!    the agent started it fails with `timeout`. The results are acknowledged and the Mount
//!    pre-check PVC and Job are deleted.
//!
//! # Guarantees
//! - A verdict always belongs to the digest in the annotation: a result for another digest has a
//!   different action id and is ignored (and acknowledged).
//! - The datasafed configuration never leaves the `Dispatch` intent.

use cairn_api::well_known;
use cairn_api::well_known::conditions::backup_repo::{
    CONDITION_PRE_CHECK_PASSED, REASON_DIGEST_CHANGED, REASON_PRE_CHECK_FAILED,
    REASON_PRE_CHECK_PASSED,
};
use std::collections::BTreeMap;
use std::time::Duration;

use cairn_api::backup_repo::AccessMethod;
use cairn_proto::agent::v1 as pb;
use jiff::Timestamp;
use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    Container, PersistentVolumeClaimVolumeSource, PodSecurityContext, PodSpec, PodTemplateSpec,
    SecurityContext, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, ObjectMeta};

use super::conditions::{self, Status, Update};
use super::{Observed, Resolved, cap, mount, names, owner_reference};
use crate::plan::action::{
    self, ActionKind, Scope, Step, ended, failure_reason, grant, step, to_wire,
};
use crate::plan::backup::path;
use crate::plan::ids::action_id;
use crate::plan::intent::Intent;
use crate::repo::access;

/// The name of the pre-check action.
pub const ACTION_NAME: &str = "pre-check";
/// The name of the Mount pre-check's second action, run by the node agent itself.
pub const AGENT_ACTION_NAME: &str = "pre-check-agent";
/// The probe file, under the repository's `pathPrefix` (Tool, and the agent's Mount step) or
/// the PVC's root (the Mount pre-check Job).
pub const PROBE_FILE: &str = "precheck.txt";
/// The longest failure message kept in the condition (Kubernetes' limit for condition messages).
pub const MESSAGE_LIMIT: usize = 32 * 1024;
const MOUNT_POINT: &str = "/backup";
const CONTAINER: &str = "pre-check";
const VOLUME: &str = "backup-pvc";

/// Plans the pre-check; returns when to look again.
pub(super) fn plan(
    o: &Observed,
    resolved: &Resolved<'_>,
    conds: &mut Vec<Condition>,
    intents: &mut Vec<Intent>,
    now: Timestamp,
) -> Option<Duration> {
    let repo = &o.repo;
    let annotation = repo
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(well_known::annotation::BACKUP_REPO_DIGEST))
        .cloned()
        .unwrap_or_default();
    let digest = resolved.digest.as_str();
    let generation = repo.metadata.generation;
    let missing = conditions::find(conds, CONDITION_PRE_CHECK_PASSED).is_none();
    if annotation != digest || missing {
        if !annotation.is_empty() && annotation != digest {
            forget(o, resolved, &annotation, intents);
        }
        let durable = conditions::has_status(conds, CONDITION_PRE_CHECK_PASSED, Status::Unknown);
        conditions::set(
            conds,
            Update {
                type_: CONDITION_PRE_CHECK_PASSED,
                status: Status::Unknown,
                reason: REASON_DIGEST_CHANGED,
                message: String::new(),
            },
            generation,
            now,
        );
        if !durable {
            return Some(o.settings.poll);
        }
        if annotation != digest {
            intents.push(Intent::PatchMeta {
                labels: BTreeMap::new(),
                annotations: BTreeMap::from([(
                    well_known::annotation::BACKUP_REPO_DIGEST.to_string(),
                    Some(digest.into()),
                )]),
            });
        }
    }
    if !conditions::has_status(conds, CONDITION_PRE_CHECK_PASSED, Status::Unknown) {
        // A result arriving after the verdict (a timed-out check, a restart) is only
        // acknowledged.
        acknowledge_if_ended(o, digest, intents);
        clean_up(o, resolved, digest, false, intents);
        return None;
    }
    run(o, resolved, conds, intents, now)
}

/// The action id of the pre-check for a digest.
pub fn pre_check_id(repo_uid: &str, digest: &str) -> String {
    let prefix: String = digest.chars().take(8).collect();
    action_id(repo_uid, &format!("{ACTION_NAME}-{prefix}"), "")
}

/// The action id of the Mount pre-check's second step (the node agent opening the repository
/// through the pre-check PVC, as backups do) for a digest.
pub fn agent_check_id(repo_uid: &str, digest: &str) -> String {
    let prefix: String = digest.chars().take(8).collect();
    action_id(repo_uid, &format!("{AGENT_ACTION_NAME}-{prefix}"), "")
}

/// Where one action of the check stands.
enum Progress {
    Passed,
    Failed(String),
    /// Running for longer than `pre_check_timeout`.
    TimedOut,
    Running,
    NotStarted,
}

/// The progress of the action `id`, started (at the latest) when the condition last changed.
fn progress(o: &Observed, conds: &[Condition], id: &str, now: Timestamp) -> Progress {
    match step(&o.agents, id, None, now) {
        Step::Succeeded(_) => Progress::Passed,
        Step::Failed(report) => Progress::Failed(failure_reason(
            report,
            "the pre-check failed without a reason",
        )),
        Step::Running(report) => {
            let started = report.started_at.or_else(|| {
                conditions::find(conds, CONDITION_PRE_CHECK_PASSED)
                    .map(|c| c.last_transition_time.0)
            });
            let elapsed = started
                .map(|s| Duration::try_from(now.duration_since(s)).unwrap_or_default())
                .unwrap_or_default();
            if elapsed >= o.settings.pre_check_timeout {
                Progress::TimedOut
            } else {
                Progress::Running
            }
        }
        Step::NotDispatched | Step::NodeLost { .. } => Progress::NotStarted,
    }
}

/// Steps 2 and 3 for the current digest.
fn run(
    o: &Observed,
    resolved: &Resolved<'_>,
    conds: &mut Vec<Condition>,
    intents: &mut Vec<Intent>,
    now: Timestamp,
) -> Option<Duration> {
    let repo = &o.repo;
    let generation = repo.metadata.generation;
    let uid = repo.metadata.uid.as_deref().unwrap_or_default();
    let digest = resolved.digest.as_str();
    let id = pre_check_id(uid, digest);
    let mount = resolved.method == AccessMethod::Mount;
    let claim = format!(
        "{}/{}",
        o.settings.namespace,
        names::pre_check_name(&o.repo, digest)
    );
    let set = |conds: &mut Vec<Condition>, status, reason, message: String| {
        set_pre_check(conds, generation, now, status, reason, message)
    };
    // Any connected agent runs it: no node to lose; a check that hangs times out instead.
    match progress(o, conds, &id, now) {
        // Mount: the Job wrote and read the PVC as action pods do; now the agent's own path.
        Progress::Passed if mount => return agent_step(o, resolved, conds, intents, now),
        Progress::Passed => {
            set(conds, Status::True, REASON_PRE_CHECK_PASSED, String::new());
            intents.push(Intent::Acknowledge { action_id: id });
            return None;
        }
        Progress::Failed(reason) => {
            let message = if mount {
                format!("the pre-check Job on the pre-check PVC {claim} failed: {reason}")
            } else {
                reason
            };
            set(
                conds,
                Status::False,
                REASON_PRE_CHECK_FAILED,
                cap(&message, MESSAGE_LIMIT),
            );
            intents.push(Intent::Acknowledge { action_id: id });
            clean_up(o, resolved, digest, true, intents);
            return None;
        }
        Progress::TimedOut => {
            set(
                conds,
                Status::False,
                REASON_PRE_CHECK_FAILED,
                timeout(o, resolved),
            );
            clean_up(o, resolved, digest, true, intents);
            return None;
        }
        Progress::Running => {
            set(
                conds,
                Status::Unknown,
                REASON_DIGEST_CHANGED,
                "the pre-check is running".into(),
            );
            return Some(o.settings.poll);
        }
        Progress::NotStarted => {}
    }
    let kind = match resolved.method {
        AccessMethod::Tool => tool_check(o, resolved),
        AccessMethod::Mount => match mount_check(o, resolved, intents) {
            Ok(Some(kind)) => Ok(kind),
            Ok(None) => {
                set(
                    conds,
                    Status::Unknown,
                    REASON_DIGEST_CHANGED,
                    "waiting for the pre-check PVC to be created".into(),
                );
                return Some(o.settings.poll);
            }
            Err(message) => Err(message),
        },
    };
    let kind = match kind {
        Ok(kind) => kind,
        Err(message) => {
            set(conds, Status::False, REASON_PRE_CHECK_FAILED, message);
            clean_up(o, resolved, digest, false, intents);
            return None;
        }
    };
    let Some(node) = o.agents.any_connected_node() else {
        set(
            conds,
            Status::Unknown,
            REASON_DIGEST_CHANGED,
            "no node agent is connected to run the pre-check; waiting for one".into(),
        );
        return Some(o.settings.poll);
    };
    set(
        conds,
        Status::Unknown,
        REASON_DIGEST_CHANGED,
        format!("the pre-check was handed to the agent on node {node}"),
    );
    intents.push(Intent::Dispatch {
        node: node.to_string(),
        action: Box::new(to_wire(&id, ACTION_NAME, owner(o), None, kind)),
    });
    Some(o.settings.poll)
}

/// The failure message of a check still running after `pre_check_timeout`; for Mount, naming
/// the pre-check PVC when it was never bound (what a Job pod waits for).
fn timeout(o: &Observed, resolved: &Resolved<'_>) -> String {
    let mut message = format!(
        "timeout: the pre-check did not finish within {}",
        crate::plan::time::go_duration_text(o.settings.pre_check_timeout)
    );
    if resolved.method != AccessMethod::Mount {
        return message;
    }
    let namespace = o.settings.namespace.as_str();
    let name = names::pre_check_name(&o.repo, &resolved.digest);
    let Some(pvc) = mount::find_pvc(o, namespace, &name) else {
        return message;
    };
    let phase = pvc
        .status
        .as_ref()
        .and_then(|s| s.phase.clone())
        .unwrap_or_else(|| "Pending".into());
    let bound = phase == "Bound"
        || pvc
            .spec
            .as_ref()
            .and_then(|s| s.volume_name.as_deref())
            .is_some_and(|v| !v.is_empty());
    if !bound {
        let class = pvc
            .spec
            .as_ref()
            .and_then(|s| s.storage_class_name.as_deref())
            .filter(|c| !c.is_empty())
            .map(|c| format!(" of StorageClass {c:?}"))
            .unwrap_or_default();
        message.push_str(&format!(
            "; the pre-check PVC {namespace}/{name}{class} is still {phase}, never bound to a \
             PersistentVolume, as every repository PVC would be"
        ));
    }
    message
}

/// Mount, once the pre-check Job passed: the node agent opens the repository through the
/// pre-check PVC exactly as it does for backups (the volume directly when it is a directory of
/// its node, otherwise through a holder pod on its node), writes, reads back and removes the
/// probe. Only then is the repository Ready.
fn agent_step(
    o: &Observed,
    resolved: &Resolved<'_>,
    conds: &mut Vec<Condition>,
    intents: &mut Vec<Intent>,
    now: Timestamp,
) -> Option<Duration> {
    let uid = o.repo.metadata.uid.as_deref().unwrap_or_default();
    let digest = resolved.digest.as_str();
    let namespace = o.settings.namespace.as_str();
    let name = names::pre_check_name(&o.repo, digest);
    let claim = format!("{namespace}/{name}");
    let job_id = pre_check_id(uid, digest);
    let id = agent_check_id(uid, digest);
    let generation = o.repo.metadata.generation;
    let set = |conds: &mut Vec<Condition>, status, reason, message: String| {
        set_pre_check(conds, generation, now, status, reason, message)
    };
    let finish = |intents: &mut Vec<Intent>| {
        intents.push(Intent::Acknowledge { action_id: job_id });
        intents.push(Intent::Acknowledge {
            action_id: id.clone(),
        });
        clean_up(o, resolved, digest, true, intents);
    };
    match progress(o, conds, &id, now) {
        Progress::Passed => {
            set(conds, Status::True, REASON_PRE_CHECK_PASSED, String::new());
            finish(intents);
            return None;
        }
        Progress::Failed(reason) => {
            let message = format!(
                "the node agent could not use the pre-check PVC {claim} as every backup would \
                 (a Job could): {reason}"
            );
            set(
                conds,
                Status::False,
                REASON_PRE_CHECK_FAILED,
                cap(&message, MESSAGE_LIMIT),
            );
            finish(intents);
            return None;
        }
        Progress::TimedOut => {
            set(
                conds,
                Status::False,
                REASON_PRE_CHECK_FAILED,
                timeout(o, resolved),
            );
            finish(intents);
            return None;
        }
        Progress::Running => {
            set(
                conds,
                Status::Unknown,
                REASON_DIGEST_CHANGED,
                format!("the node agent is opening the pre-check PVC {claim}"),
            );
            return Some(o.settings.poll);
        }
        Progress::NotStarted => {}
    }
    // Where the volume was provisioned (a WaitForFirstConsumer claim), if that agent is here.
    let selected = mount::find_pvc(o, namespace, &name)
        .and_then(|pvc| pvc.metadata.annotations.as_ref())
        .and_then(|a| a.get(well_known::annotation::SELECTED_NODE))
        .filter(|node| {
            o.agents
                .nodes
                .get(node.as_str())
                .is_some_and(|state| state.connected)
        })
        .map(String::as_str);
    let Some(node) = selected.or_else(|| o.agents.any_connected_node()) else {
        set(
            conds,
            Status::Unknown,
            REASON_DIGEST_CHANGED,
            "no node agent is connected to open the pre-check PVC; waiting for one".into(),
        );
        return Some(o.settings.poll);
    };
    let repo_name = o.repo.metadata.name.clone().unwrap_or_default();
    let probe = probe_path(o);
    let storage = grant(
        &access::mount_access(&repo_name, &name),
        namespace,
        Scope {
            read_write: &probe,
            ..Scope::default()
        },
    );
    let kind = ActionKind::RepoCheck {
        storage,
        probe_path: probe,
    };
    set(
        conds,
        Status::Unknown,
        REASON_DIGEST_CHANGED,
        format!(
            "a Job wrote and read the pre-check PVC {claim}; the node agent on node {node} now opens it as backups do"
        ),
    );
    intents.push(Intent::Dispatch {
        node: node.to_string(),
        action: Box::new(to_wire(&id, AGENT_ACTION_NAME, owner(o), None, kind)),
    });
    Some(o.settings.poll)
}

/// Tool: push, pull and remove `/<pathPrefix>/precheck.txt` through the rendered configuration.
fn tool_check(o: &Observed, resolved: &Resolved<'_>) -> Result<ActionKind, String> {
    let repo_name = o.repo.metadata.name.clone().unwrap_or_default();
    let access = access::tool_access(&repo_name, resolved.provider, &resolved.context())
        .map_err(|err| err.chain())?;
    let probe = probe_path(o);
    // Tool access only: no repository PVC, so the namespace is never used.
    let storage = grant(
        &access,
        "",
        Scope {
            read_write: &probe,
            ..Scope::default()
        },
    );
    Ok(ActionKind::RepoCheck {
        storage,
        probe_path: probe,
    })
}

/// `/<pathPrefix>/precheck.txt`.
pub fn probe_path(o: &Observed) -> String {
    path::join(&[
        "/",
        o.repo.spec.path_prefix.as_deref().unwrap_or_default(),
        PROBE_FILE,
    ])
}

/// Mount: the pre-check PVC first (`Ok(None)` until it exists), then the Job.
fn mount_check(
    o: &Observed,
    resolved: &Resolved<'_>,
    intents: &mut Vec<Intent>,
) -> Result<Option<ActionKind>, String> {
    let name = names::pre_check_name(&o.repo, &resolved.digest);
    let namespace = o.settings.namespace.as_str();
    if !mount::pvc_exists(o, namespace, &name) {
        let annotations = BTreeMap::from([(
            well_known::annotation::BACKUP_REPO_DIGEST.to_string(),
            resolved.digest.clone(),
        )]);
        let pvc = mount::repo_pvc(o, resolved, &name, namespace, annotations)?;
        intents.push(Intent::Create { object: pvc });
        return Ok(None);
    }
    // A claim of a StorageClass that does not exist is never bound: neither would any
    // repository PVC be, so every backup would wait for ever. (The class the repository
    // generates is being created; it is not looked for.)
    let class = mount::find_pvc(o, namespace, &name)
        .and_then(|pvc| pvc.spec.as_ref())
        .and_then(|spec| spec.storage_class_name.as_deref())
        .filter(|class| !class.is_empty() && resolved.storage_class.as_deref() != Some(*class));
    if let Some(class) = class
        && o.derived.missing_storage_classes.contains(class)
    {
        return Err(format!(
            "the pre-check PVC {namespace}/{name} can never be bound: its StorageClass {class:?} \
             does not exist, so no repository PVC could be bound and every backup would fail"
        ));
    }
    Ok(Some(ActionKind::Job {
        job: Box::new(pre_check_job(o, resolved, &name)),
        storage: None,
        info: None,
    }))
}

/// KubeBlocks' Mount pre-check Job, in the control plane's namespace, on the pre-check PVC.
fn pre_check_job(o: &Observed, resolved: &Resolved<'_>, name: &str) -> Job {
    let repo_name = o.repo.metadata.name.clone().unwrap_or_default();
    let probe = format!("{MOUNT_POINT}/{PROBE_FILE}");
    let script =
        format!("set -ex; echo \"pre-check\" > {probe}; sync; cat {probe}; rm {probe}; sync");
    Job {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(o.settings.namespace.clone()),
            labels: Some(BTreeMap::from([(
                well_known::label::BACKUP_REPO.into(),
                repo_name,
            )])),
            annotations: Some(BTreeMap::from([(
                well_known::annotation::BACKUP_REPO_DIGEST.into(),
                resolved.digest.clone(),
            )])),
            owner_references: Some(vec![owner_reference(&o.repo)]),
            ..Default::default()
        },
        spec: Some(JobSpec {
            backoff_limit: Some(2),
            template: PodTemplateSpec {
                metadata: None,
                spec: Some(PodSpec {
                    restart_policy: Some("Never".into()),
                    containers: vec![Container {
                        name: CONTAINER.into(),
                        image: Some(o.settings.tools_image.clone()),
                        command: Some(vec!["sh".into(), "-c".into(), script]),
                        volume_mounts: Some(vec![VolumeMount {
                            name: VOLUME.into(),
                            mount_path: MOUNT_POINT.into(),
                            ..Default::default()
                        }]),
                        security_context: Some(SecurityContext {
                            allow_privilege_escalation: Some(false),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }],
                    volumes: Some(vec![Volume {
                        name: VOLUME.into(),
                        persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                            claim_name: name.into(),
                            read_only: None,
                        }),
                        ..Default::default()
                    }]),
                    security_context: Some(PodSecurityContext {
                        fs_group: Some(65532),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        status: None,
    }
}

/// A check for an older digest is abandoned: acknowledge its result if it has one, and remove
/// its Mount PVC and Job.
fn forget(o: &Observed, resolved: &Resolved<'_>, old_digest: &str, intents: &mut Vec<Intent>) {
    acknowledge_if_ended(o, old_digest, intents);
    clean_up(o, resolved, old_digest, false, intents);
}

/// Acknowledges the result of the check for `digest` if the agent reported one.
pub(super) fn acknowledge_if_ended(o: &Observed, digest: &str, intents: &mut Vec<Intent>) {
    let uid = o.repo.metadata.uid.as_deref().unwrap_or_default();
    for id in [pre_check_id(uid, digest), agent_check_id(uid, digest)] {
        if ended(&o.agents, &id) {
            intents.push(Intent::Acknowledge { action_id: id });
        }
    }
}

/// Removes the Mount pre-check PVC and Job of a digest: always when `finished` just now,
/// otherwise while the PVC is still there.
pub(super) fn clean_up(
    o: &Observed,
    resolved: &Resolved<'_>,
    digest: &str,
    finished: bool,
    intents: &mut Vec<Intent>,
) {
    if resolved.method != AccessMethod::Mount {
        return;
    }
    let name = names::pre_check_name(&o.repo, digest);
    let namespace = o.settings.namespace.as_str();
    let pvc_left = mount::pvc_exists(o, namespace, &name);
    if !finished && !pvc_left {
        return;
    }
    intents.push(Intent::Delete {
        api_version: "batch/v1".into(),
        kind: "Job".into(),
        namespace: Some(namespace.into()),
        name: name.clone(),
    });
    if pvc_left {
        intents.push(Intent::Delete {
            api_version: "v1".into(),
            kind: "PersistentVolumeClaim".into(),
            namespace: Some(namespace.into()),
            name,
        });
    }
}

/// The repository as the owner of its pre-check action.
pub fn owner(o: &Observed) -> pb::ObjectRef {
    // Cluster-scoped: no namespace.
    action::owner("BackupRepo", &o.repo.metadata)
}

/// Sets the `PreCheckPassed` condition.
fn set_pre_check(
    conds: &mut Vec<Condition>,
    generation: Option<i64>,
    now: Timestamp,
    status: Status,
    reason: &str,
    message: String,
) {
    conditions::set(
        conds,
        Update {
            type_: CONDITION_PRE_CHECK_PASSED,
            status,
            reason,
            message,
        },
        generation,
        now,
    );
}
