//! What happens when a Backup is deleted (kubeblocks-semantics §1.2 "Deleting", §2.8).
//!
//! # Expected flow
//! 1. Running actions are cancelled and their ends awaited (or their node declared lost).
//! 2. `deletionPolicy: Retain`: the files stay and the finalizer goes (the API reference's
//!    meaning; KubeBlocks instead keeps the object in Deleting forever, Surprise 1).
//! 3. `Delete`: the ActionSet's `preDelete` Job runs first when it has one, then an agent removes
//!    `status.path` and every parent that became empty; then the finalizer goes.
//!
//! # Guarantees
//! - Nothing is removed outside `status.path`, and nothing when the path does not contain the
//!   backup's name (KubeBlocks' safety guard).
//! - A failed deletion is reported in `status.deletionFailureReason` and a Warning event, and is
//!   retried with a new attempt number (so a new action id) after `RETRY_AFTER`.

use std::collections::BTreeMap;
use std::time::Duration;

use cairn_api::backup::{ActionPhase, BackupDeletionPolicy, BackupPhase, BackupStatus};
use jiff::Timestamp;
use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{Container, PodSpec, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::{LABEL_MANAGED_BY, Observed, has_finalizer, owner};
use crate::plan::action::{ActionKind, Scope, Step, grant, step, to_wire};
use crate::plan::env::{expand, merge, var};
use crate::plan::ids::action_id;
use crate::plan::intent::{Intent, Plan};
use crate::plan::names::cut_63;

/// Annotation counting failed deletion attempts.
pub const ATTEMPT_ANNOTATION: &str = "cairn.io/deletion-attempt";
/// Annotation holding the earliest time of the next attempt (RFC 3339).
pub const RETRY_AT_ANNOTATION: &str = "cairn.io/deletion-retry-at";
/// How long to wait before retrying a failed deletion.
pub const RETRY_AFTER: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_secs(2);

/// Plans one reconcile of a Backup that is being deleted.
pub fn plan(o: &Observed, now: Timestamp) -> Plan<BackupStatus> {
    let backup = &o.backup;
    if !has_finalizer(backup) {
        return Plan::nothing();
    }
    let mut status = backup.status.clone().unwrap_or_default();
    status.phase = Some(BackupPhase::Deleting);
    status.progress = None;
    let mut intents = Vec::new();
    let uid = backup.metadata.uid.clone().unwrap_or_default();
    let backup_name = backup.metadata.name.clone().unwrap_or_default();

    let mut still_running = false;
    for action in status.actions.iter_mut().flatten() {
        if action.phase != Some(ActionPhase::Running) {
            continue;
        }
        let pod = action.target_pod_name.clone().unwrap_or_default();
        let id = action_id(&uid, action.name.as_deref().unwrap_or_default(), &pod);
        let node = o
            .pods
            .iter()
            .find(|p| p.metadata.name.as_deref() == Some(pod.as_str()))
            .and_then(|p| p.spec.as_ref().and_then(|s| s.node_name.clone()))
            .unwrap_or_default();
        let state = step(&o.agents, &id, Some(&node), now);
        let ended = state.ended();
        if ended || matches!(state, Step::NodeLost { .. }) {
            action.phase = Some(ActionPhase::Failed);
            action.failure_reason = Some("cancelled: the backup is being deleted".into());
            if ended {
                intents.push(Intent::Acknowledge { action_id: id });
            }
        } else {
            intents.push(Intent::Cancel {
                node,
                action_id: id,
                reason: "the backup is being deleted".into(),
            });
            still_running = true;
        }
    }
    if still_running {
        return waiting(status, intents, POLL);
    }

    if backup.spec.deletion_policy == Some(BackupDeletionPolicy::Retain) {
        intents.push(Intent::normal(
            "Retain",
            format!(
                "deletionPolicy is Retain: the backup files under {} are kept in the repository",
                status.path.as_deref().unwrap_or("(no path)")
            ),
        ));
        return done(status, intents);
    }
    let snapshot = status
        .backup_method
        .as_ref()
        .and_then(|m| m.snapshot_volumes)
        .unwrap_or(false);
    let path = status.path.clone().unwrap_or_default();
    if snapshot || path.is_empty() || !path.contains(backup_name.as_str()) {
        return done(status, intents);
    }
    let Some(repo_name) = status.backup_repo_name.clone() else {
        return done(status, intents);
    };
    if !o
        .repos
        .iter()
        .any(|r| r.metadata.name.as_deref() == Some(repo_name.as_str()))
    {
        intents.push(Intent::warning(
            "BackupRepoNotFound",
            format!("backup repository {repo_name} no longer exists; the files under {path} are left in place"),
        ));
        return done(status, intents);
    }
    let Some(access) = o.repo_access.as_ref().filter(|a| a.repo_name == repo_name) else {
        status.deletion_failure_reason = Some(format!(
            "backup repository {repo_name} is not ready; the files under {path} will be deleted once it is"
        ));
        return waiting(status, intents, RETRY_AFTER);
    };
    let Some(node) = o.agents.any_connected_node().map(str::to_string) else {
        status.deletion_failure_reason =
            Some("no node agent is connected to delete the backup files".into());
        return waiting(status, intents, POLL);
    };
    let attempt: u32 = backup
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(ATTEMPT_ANNOTATION))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let retry_at = backup
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(RETRY_AT_ANNOTATION))
        .and_then(|v| v.parse::<Timestamp>().ok());
    if let Some(at) = retry_at
        && at > now
    {
        let wait = Duration::try_from(at.duration_since(now)).unwrap_or(POLL);
        return waiting(status, intents, wait);
    }
    let storage = grant(
        access,
        backup.metadata.namespace.as_deref().unwrap_or_default(),
        Scope {
            read_write: &path,
            ..Scope::default()
        },
    );

    let pre_delete = o
        .actionset
        .as_ref()
        .and_then(|a| a.spec.backup.as_ref())
        .and_then(|b| b.pre_delete.clone());
    if let Some(pre_delete) = pre_delete {
        let name = format!("dp-predelete-{attempt}");
        let id = action_id(&uid, &name, "");
        // Any connected agent runs it: no node to lose.
        match step(&o.agents, &id, None, now) {
            Step::Succeeded(_) => {
                intents.push(Intent::Acknowledge { action_id: id });
            }
            Step::Failed(report) => {
                let reason = &report.failure_reason;
                intents.push(Intent::Acknowledge { action_id: id });
                return retry(
                    status,
                    intents,
                    attempt,
                    now,
                    format!(
                        "pre-delete job of backup {backup_name} failed, it is retried in {}s: {reason}",
                        RETRY_AFTER.as_secs()
                    ),
                );
            }
            Step::NotDispatched | Step::Running(_) | Step::NodeLost { .. } => {
                let mut env = vec![
                    var("DP_BACKUP_BASE_PATH", path.clone()),
                    var("DP_BACKUP_NAME", backup_name.clone()),
                ];
                merge(
                    &mut env,
                    o.actionset
                        .as_ref()
                        .and_then(|a| a.spec.env.clone())
                        .unwrap_or_default(),
                );
                let job = Job {
                    metadata: ObjectMeta {
                        name: Some(cut_63(&format!(
                            "{}-predelete-{backup_name}",
                            uid.chars().take(8).collect::<String>()
                        ))),
                        namespace: backup.metadata.namespace.clone(),
                        labels: Some(BTreeMap::from([(
                            LABEL_MANAGED_BY.to_string(),
                            "kubeblocks-dataprotection".to_string(),
                        )])),
                        ..Default::default()
                    },
                    spec: Some(JobSpec {
                        backoff_limit: Some(2),
                        template: PodTemplateSpec {
                            metadata: None,
                            spec: Some(PodSpec {
                                restart_policy: Some("Never".into()),
                                containers: vec![Container {
                                    name: "deleter".into(),
                                    image: Some(expand(&pre_delete.image, &env)),
                                    command: Some(pre_delete.command.clone()),
                                    env: Some(env),
                                    ..Default::default()
                                }],
                                ..Default::default()
                            }),
                        },
                        ..Default::default()
                    }),
                    status: None,
                };
                let kind = ActionKind::Job {
                    job: Box::new(job),
                    storage: Some(storage),
                    info: None,
                };
                intents.push(Intent::Dispatch {
                    node,
                    action: Box::new(to_wire(&id, &name, owner(backup), None, kind)),
                });
                return waiting(status, intents, POLL);
            }
        }
    }

    let name = format!("dp-delete-files-{attempt}");
    let id = action_id(&uid, &name, "");
    match step(&o.agents, &id, None, now) {
        Step::Succeeded(_) => {
            intents.push(Intent::Acknowledge { action_id: id });
            intents.push(Intent::normal(
                "DeletedBackupFiles",
                format!("deleted the backup files under {path}"),
            ));
            status.deletion_failure_reason = None;
            done(status, intents)
        }
        Step::Failed(report) => {
            let reason = &report.failure_reason;
            intents.push(Intent::Acknowledge { action_id: id });
            retry(
                status,
                intents,
                attempt,
                now,
                format!(
                    "deleting the backup files under {path} failed, it is retried in {}s: {reason}",
                    RETRY_AFTER.as_secs()
                ),
            )
        }
        Step::NotDispatched | Step::Running(_) | Step::NodeLost { .. } => {
            let kind = ActionKind::DeletePath { storage, path };
            intents.push(Intent::Dispatch {
                node,
                action: Box::new(to_wire(&id, &name, owner(backup), None, kind)),
            });
            waiting(status, intents, POLL)
        }
    }
}

fn waiting(status: BackupStatus, intents: Vec<Intent>, after: Duration) -> Plan<BackupStatus> {
    Plan {
        status: Some(status),
        intents,
        requeue: Some(after),
    }
}

fn done(status: BackupStatus, mut intents: Vec<Intent>) -> Plan<BackupStatus> {
    intents.push(Intent::RemoveFinalizer);
    Plan {
        status: Some(status),
        intents,
        requeue: None,
    }
}

fn retry(
    mut status: BackupStatus,
    mut intents: Vec<Intent>,
    attempt: u32,
    now: Timestamp,
    reason: String,
) -> Plan<BackupStatus> {
    let retry_at = jiff::SignedDuration::try_from(RETRY_AFTER)
        .ok()
        .and_then(|d| now.checked_add(d).ok())
        .unwrap_or(now);
    status.deletion_failure_reason = Some(reason.clone());
    intents.push(Intent::warning("DeleteBackupFilesFailed", reason));
    intents.push(Intent::PatchMeta {
        labels: BTreeMap::new(),
        annotations: BTreeMap::from([
            (
                ATTEMPT_ANNOTATION.to_string(),
                Some((attempt + 1).to_string()),
            ),
            (RETRY_AT_ANNOTATION.to_string(), Some(retry_at.to_string())),
        ]),
    });
    Plan {
        status: Some(status),
        intents,
        requeue: Some(RETRY_AFTER),
    }
}
