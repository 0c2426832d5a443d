//! What happens when a Backup is deleted (ARCHITECTURE.md §K1.2 "Deleting", §K2.8).
//!
//! # Expected flow
//! 1. Running actions are cancelled and their ends awaited (or their node declared lost). The
//!    Backups whose parent or base it is are deleted, and their ends awaited (§1.2 step 1).
//! 2. `deletionPolicy: Retain`: the files stay and the finalizer goes (the API reference's
//!    meaning; KubeBlocks instead keeps the object in Deleting forever, ARCHITECTURE.md §K8 S1).
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

use cairn_api::action::BaseJobActionSpec;
use cairn_api::backup::{ActionPhase, Backup, BackupDeletionPolicy, BackupPhase, BackupStatus};
use cairn_api::well_known;
use cairn_proto::agent::v1 as pb;
use jiff::Timestamp;
use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{Container, PodSpec, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::{Observed, chain, has_finalizer, owner, snapshot};
use crate::plan::action::{ActionKind, Dedup, Scope, Step, grant, step, to_wire};
use crate::plan::env::{expand, merge, var};
use crate::plan::ids::action_id;
use crate::plan::intent::{Intent, Plan};
use crate::plan::names::cut_63;

/// How long to wait before retrying a failed deletion.
pub const RETRY_AFTER: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_secs(2);

/// Where the deletion of a Backup stands in this reconcile.
enum Stage<'o> {
    /// Actions still run: they are being cancelled and their ends awaited.
    Cancelling,
    /// Backups of its chain (whose parent or base it is) exist: they are deleted first (§1.2
    /// Deleting step 1), each with its own deletionPolicy.
    Children(Vec<&'o Backup>),
    /// `deletionPolicy: Retain`: the files stay and the finalizer goes.
    Retain,
    /// Nothing to delete in a repository: a volume snapshot backup, no repository recorded, or a
    /// path that is empty or lacks the backup's name (KubeBlocks' safety guard).
    NothingToDelete,
    /// The recorded repository no longer exists: the files are left in place.
    RepoGone { repo: String, path: String },
    /// The repository's access is not rendered (yet): wait for it.
    RepoNotReady { repo: String, path: String },
    /// No agent is connected to run the deletion.
    NoAgent,
    /// The password of the backup's deduplicating repository cannot be read (its encryption
    /// Secret is gone or unreadable): the data stays until it can be.
    NoDedupPassword { path: String, reason: String },
    /// The last attempt failed; the next one starts after `wait`.
    RetryLater { wait: Duration },
    /// The ActionSet's preDelete Job runs (or just failed).
    PreDelete {
        attempt: Attempt,
        spec: &'o BaseJobActionSpec,
    },
    /// An agent removes the files (the preDelete Job, if any, succeeded: `acknowledge` it).
    DeleteFiles {
        attempt: Attempt,
        acknowledge: Option<String>,
    },
}

/// One attempt at deleting the files.
struct Attempt {
    /// Counts failed attempts; part of the action names, so a retry gets new action ids.
    number: u32,
    /// The connected node whose agent runs it.
    node: String,
    /// The backup's `status.path`.
    path: String,
    /// Read-write access to `path` only.
    storage: pb::StorageGrant,
}

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
    let still_running = cancel_running(o, &mut status, now, &mut intents);
    let children = children(o);
    let stage = if still_running {
        Stage::Cancelling
    } else if !children.is_empty() {
        Stage::Children(children)
    } else {
        stage(o, &status, now)
    };
    match stage {
        Stage::Cancelling => waiting(status, intents, POLL),
        Stage::Children(children) => {
            let mut names = Vec::new();
            for child in children {
                let name = child.metadata.name.clone().unwrap_or_default();
                if child.metadata.deletion_timestamp.is_none() {
                    intents.push(Intent::Delete {
                        api_version: "dataprotection.kubeblocks.io/v1alpha1".into(),
                        kind: "Backup".into(),
                        namespace: child.metadata.namespace.clone(),
                        name: name.clone(),
                    });
                }
                names.push(name);
            }
            status.deletion_failure_reason = Some(format!(
                "waiting for the backups that depend on this one to be deleted first: {}",
                names.join(", ")
            ));
            waiting(status, intents, POLL)
        }
        Stage::Retain => {
            intents.extend(snapshot::on_deletion(backup, &status, true));
            intents.push(Intent::normal(
                "Retain",
                format!(
                    "deletionPolicy is Retain: the backup files under {} are kept in the repository",
                    status.path.as_deref().unwrap_or("(no path)")
                ),
            ));
            done(status, intents)
        }
        Stage::NothingToDelete => {
            intents.extend(snapshot::on_deletion(backup, &status, false));
            done(status, intents)
        }
        Stage::RepoGone { repo, path } => {
            intents.push(Intent::warning(
                "BackupRepoNotFound",
                format!(
                    "backup repository {repo} no longer exists; the files under {path} are left in place"
                ),
            ));
            done(status, intents)
        }
        Stage::RepoNotReady { repo, path } => {
            status.deletion_failure_reason = Some(format!(
                "backup repository {repo} is not ready; the files under {path} will be deleted once it is"
            ));
            waiting(status, intents, RETRY_AFTER)
        }
        Stage::NoAgent => {
            status.deletion_failure_reason =
                Some("no node agent is connected to delete the backup files".into());
            waiting(status, intents, POLL)
        }
        Stage::NoDedupPassword { path, reason } => {
            status.deletion_failure_reason = Some(format!(
                "the files under {path} are in a deduplicating repository whose password cannot be read ({reason}); they will be deleted once it can"
            ));
            waiting(status, intents, RETRY_AFTER)
        }
        Stage::RetryLater { wait } => waiting(status, intents, wait),
        Stage::PreDelete { attempt, spec } => pre_delete(o, status, intents, attempt, spec, now),
        Stage::DeleteFiles {
            attempt,
            acknowledge,
        } => {
            intents.extend(acknowledge.map(|action_id| Intent::Acknowledge { action_id }));
            delete_files(o, status, intents, attempt, now)
        }
    }
}

/// Cancels the actions still running; returns whether any has not ended yet. An action that
/// ended, or whose node is lost, is marked Failed.
fn cancel_running(
    o: &Observed,
    status: &mut BackupStatus,
    now: Timestamp,
    intents: &mut Vec<Intent>,
) -> bool {
    let uid = o.backup.metadata.uid.as_deref().unwrap_or_default();
    let placements = crate::plan::restore::placement::Placements::read_from(
        o.backup.metadata.annotations.as_ref(),
        cairn_api::well_known::annotation::BACKUP_NODES,
    );
    let mut still_running = false;
    for action in status.actions.iter_mut().flatten() {
        if action.phase != Some(ActionPhase::Running) {
            continue;
        }
        let pod = action.target_pod_name.clone().unwrap_or_default();
        let id = super::continuous::entry_id(uid, action);
        // Where it was dispatched: the recorded node of a Job free to run anywhere, else its
        // target pod's node.
        let node = match placements.recorded(&id) {
            Some(node) => node.to_string(),
            None => o
                .pods
                .iter()
                .find(|p| p.metadata.name.as_deref() == Some(pod.as_str()))
                .and_then(|p| p.spec.as_ref().and_then(|s| s.node_name.clone()))
                .unwrap_or_default(),
        };
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
    still_running
}

/// The Backups of the same policy whose parent or base this Backup is.
fn children(o: &Observed) -> Vec<&Backup> {
    let me = chain::name(&o.backup);
    let policy = chain::policy(&o.backup);
    o.backups
        .iter()
        .filter(|b| chain::name(b) != me && chain::policy(b) == policy)
        .filter(|b| chain::parent_name(b) == me || chain::base_name(b) == me)
        .collect()
}

/// The stage of a deletion whose actions have all ended.
fn stage<'o>(o: &'o Observed, status: &BackupStatus, now: Timestamp) -> Stage<'o> {
    let backup = &o.backup;
    if backup.spec.deletion_policy == Some(BackupDeletionPolicy::Retain) {
        return Stage::Retain;
    }
    let backup_name = backup.metadata.name.clone().unwrap_or_default();
    let snapshot = status
        .backup_method
        .as_ref()
        .and_then(|m| m.snapshot_volumes)
        .unwrap_or(false);
    let path = status.path.clone().unwrap_or_default();
    // A snapshot backup has files only when its snapshots were copied into the repository
    // (§K2.5a).
    let moved = status.kopia_repo_path.is_some();
    if (snapshot && !moved) || path.is_empty() || !path.contains(backup_name.as_str()) {
        return Stage::NothingToDelete;
    }
    let Some(repo) = status.backup_repo_name.clone() else {
        return Stage::NothingToDelete;
    };
    if !o
        .repos
        .iter()
        .any(|r| r.metadata.name.as_deref() == Some(repo.as_str()))
    {
        return Stage::RepoGone { repo, path };
    }
    let Some(access) = o.repo_access.as_ref().filter(|a| a.repo_name == repo) else {
        return Stage::RepoNotReady { repo, path };
    };
    let Some(node) = o.agents.any_connected_node().map(str::to_string) else {
        return Stage::NoAgent;
    };
    let annotations = backup.metadata.annotations.as_ref();
    let number: u32 = annotations
        .and_then(|a| a.get(well_known::annotation::DELETION_ATTEMPT))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let retry_at = annotations
        .and_then(|a| a.get(well_known::annotation::DELETION_RETRY_AT))
        .and_then(|v| v.parse::<Timestamp>().ok());
    if let Some(at) = retry_at
        && at > now
    {
        let wait = Duration::try_from(at.duration_since(now)).unwrap_or(POLL);
        return Stage::RetryLater { wait };
    }
    // A useKopia backup's files are snapshots in its deduplicating repository: the agent
    // forgets them and prunes what no other backup uses (§K2.11).
    let kopia_repo_path = status.kopia_repo_path.as_deref();
    let passphrase = match (kopia_repo_path, status.encryption_config.as_ref()) {
        (Some(_), Some(config)) => match super::request::passphrase_for(o, Some(config)) {
            Some(Ok(passphrase)) => Some(passphrase),
            Some(Err(reason)) => return Stage::NoDedupPassword { path, reason },
            None => None,
        },
        _ => None,
    };
    let storage = grant(
        access,
        backup.metadata.namespace.as_deref().unwrap_or_default(),
        Scope {
            read_write: &path,
            dedup: kopia_repo_path.map(|root| Dedup::new(root, passphrase.as_deref())),
            ..Scope::default()
        },
    );
    let attempt = Attempt {
        number,
        node,
        path,
        storage,
    };
    let pre_delete = o
        .actionset
        .as_ref()
        .and_then(|a| a.spec.backup.as_ref())
        .and_then(|b| b.pre_delete.as_ref());
    let Some(spec) = pre_delete else {
        return Stage::DeleteFiles {
            attempt,
            acknowledge: None,
        };
    };
    let id = pre_delete_id(o, attempt.number);
    // Any connected agent runs it: no node to lose.
    match step(&o.agents, &id, None, now) {
        Step::Succeeded(_) => Stage::DeleteFiles {
            attempt,
            acknowledge: Some(id),
        },
        Step::NotDispatched | Step::Running(_) | Step::Failed(_) | Step::NodeLost { .. } => {
            Stage::PreDelete { attempt, spec }
        }
    }
}

fn pre_delete_name(attempt: u32) -> String {
    format!("dp-predelete-{attempt}")
}

fn pre_delete_id(o: &Observed, attempt: u32) -> String {
    let uid = o.backup.metadata.uid.as_deref().unwrap_or_default();
    action_id(uid, &pre_delete_name(attempt), "")
}

/// The preDelete Job: dispatched until it ends; a failure is retried as a new attempt.
fn pre_delete(
    o: &Observed,
    status: BackupStatus,
    mut intents: Vec<Intent>,
    attempt: Attempt,
    spec: &BaseJobActionSpec,
    now: Timestamp,
) -> Plan<BackupStatus> {
    let backup = &o.backup;
    let backup_name = backup.metadata.name.clone().unwrap_or_default();
    let uid = backup.metadata.uid.clone().unwrap_or_default();
    let name = pre_delete_name(attempt.number);
    let id = pre_delete_id(o, attempt.number);
    if let Step::Failed(report) = step(&o.agents, &id, None, now) {
        intents.push(Intent::Acknowledge { action_id: id });
        return retry(
            status,
            intents,
            attempt.number,
            now,
            format!(
                "pre-delete job of backup {backup_name} failed, it is retried in {}s: {}",
                RETRY_AFTER.as_secs(),
                report.failure_reason
            ),
        );
    }
    let mut env = vec![
        var("DP_BACKUP_BASE_PATH", attempt.path.clone()),
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
                well_known::label::MANAGED_BY.to_string(),
                well_known::label::MANAGED_BY_DATA_PROTECTION.to_string(),
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
                        image: Some(expand(&spec.image, &env)),
                        command: Some(spec.command.clone()),
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
        storage: Some(attempt.storage),
        info: None,
    };
    intents.push(Intent::Dispatch {
        node: attempt.node,
        action: Box::new(to_wire(&id, &name, owner(backup), None, kind)),
    });
    waiting(status, intents, POLL)
}

/// Removing the files: dispatched until it ends; then the finalizer goes, or a failure is
/// retried as a new attempt.
fn delete_files(
    o: &Observed,
    mut status: BackupStatus,
    mut intents: Vec<Intent>,
    attempt: Attempt,
    now: Timestamp,
) -> Plan<BackupStatus> {
    let uid = o.backup.metadata.uid.as_deref().unwrap_or_default();
    let name = format!("dp-delete-files-{}", attempt.number);
    let id = action_id(uid, &name, "");
    let path = attempt.path;
    // Any connected agent runs it: no node to lose.
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
            intents.push(Intent::Acknowledge { action_id: id });
            retry(
                status,
                intents,
                attempt.number,
                now,
                format!(
                    "deleting the backup files under {path} failed, it is retried in {}s: {}",
                    RETRY_AFTER.as_secs(),
                    report.failure_reason
                ),
            )
        }
        Step::NotDispatched | Step::Running(_) | Step::NodeLost { .. } => {
            let kind = ActionKind::DeletePath {
                storage: attempt.storage,
                path,
            };
            intents.push(Intent::Dispatch {
                node: attempt.node,
                action: Box::new(to_wire(&id, &name, owner(&o.backup), None, kind)),
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
                well_known::annotation::DELETION_ATTEMPT.to_string(),
                Some((attempt + 1).to_string()),
            ),
            (
                well_known::annotation::DELETION_RETRY_AT.to_string(),
                Some(retry_at.to_string()),
            ),
        ]),
    });
    Plan {
        status: Some(status),
        intents,
        requeue: Some(RETRY_AFTER),
    }
}
