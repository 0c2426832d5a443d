//! What happens when a Restore is created, runs and finishes (ARCHITECTURE.md §K1.5, §K4).
//!
//! # Expected flow
//! 1. New (`""`): the Restore gets the managed-by label and the finalizer. The source Backup and
//!    its repository are checked (condition `CheckBackupRepo`; a repository still pre-checking is
//!    waited for), then the backup, its ActionSet and the Restore's parameters (condition
//!    `ValidationPassed`), and the backup sets the restore replays ([`sets`]: a differential's
//!    parent, a continuous backup's base for `restoreTime`). Then `startTimestamp`, phase
//!    `Running`, event `RestoreStarting`.
//! 2. prepareData ([`prepare`]), set after set: one Job per restored instance (`volumeClaimsTemplate.replicas`, or
//!    one), each mounting every claim it restores, which are created first when absent. Parallel,
//!    or Serial (each job only after the previous one completed). Condition `PrepareData`. A
//!    volume snapshot set first creates its claims from the backup's VolumeSnapshots
//!    ([`snapshot`]); it runs Jobs only if its ActionSet has `restore.prepareData`.
//! 3. postReady ([`post_ready`]): after the optional readiness probe ([`probe`]), set after set,
//!    each step of the set's ActionSet's `restore.postReady` in order; condition `PostReady`.
//! 4. `Completed` (event `RestoreCompleted`, the finished Jobs are deleted) or `Failed` (event
//!    `RestoreFailed`; the message is in the condition of the stage that failed).
//!
//! Every action is written `Processing` into `status.actions.<stage>[]` and its node recorded
//! ([`placement`]) before it is dispatched; its id is derived from the entry (name, objectKey).
//!
//! # Departures from KubeBlocks (where the API reference is followed instead)
//! - `onError: Continue` and exec `timeout` are honoured in postReady and prepareData
//!   (ARCHITECTURE.md §K8 S2, S3); `readinessProbe` gates postReady (ARCHITECTURE.md §K8 S7).
//! - `DP_TARGET_RELATIVE_PATH` comes from the target the backup recorded; `sourceTargetName` only
//!   chooses among several (ARCHITECTURE.md §K8 S20).
//! - Exec actions run through the agent on the pod's node (`pods/exec`), not as `kubectl exec`
//!   Jobs in the controller namespace; their `objectKey` is `Pod/<pod>`.
//! - A failed action's message carries the agent's reason after KubeBlocks' default text.
//! - Restore Jobs carry no finalizer (they are owned by the Restore: deleted when it completes,
//!   garbage-collected with it otherwise) and run under `spec.serviceAccountName` or the
//!   namespace's default service account (there is no worker service account).
//!
//! A Restore with `prepareDataConfig.dataSourceRef` is validated the same way, then goes to
//! phase `AsDataSource` and runs nothing itself ([`as_data_source`]): the claims naming it are
//! populated by [`crate::plan::populate`].
//!
//! # Not acted on
//! `spec.resources` is not acted on, as in
//! KubeBlocks: the Restore says so with condition `IgnoredField` and a Warning event of that
//! reason, once (`cairn_api::ignored::restore`, ARCHITECTURE.md §K8 S22).

pub mod as_data_source;
pub mod conditions;
pub mod deletion;
pub mod env;
pub mod go_time;
pub mod jobs;
pub mod placement;
pub mod post_ready;
pub mod prepare;
pub mod probe;
pub mod request;
pub mod sets;
pub mod snapshot;
pub mod work;

#[cfg(test)]
pub(crate) mod tests;
#[cfg(test)]
mod tests_kubeblocks_pitr;
#[cfg(test)]
mod tests_post_ready;
#[cfg(test)]
mod tests_sets;
#[cfg(test)]
mod tests_snapshot;

use cairn_api::well_known;
use cairn_api::well_known::conditions::restore::{
    CONDITION_CHECK_BACKUP_REPO, CONDITION_POST_READY, CONDITION_PREPARE_DATA,
    CONDITION_VALIDATION_PASSED, REASON_FAILED, REASON_REPO_OK, REASON_VALIDATE_OK,
    REASON_WAIT_FOR_REPO,
};
use std::collections::BTreeMap;
use std::time::Duration;

use cairn_api::actionset::ActionSet;
use cairn_api::backup::Backup;
use cairn_api::backup_repo::BackupRepo;
use cairn_api::restore::{Restore, RestorePhase, RestoreStage, RestoreStatus};
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Node, PersistentVolumeClaim, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use self::placement::Placements;
use self::request::Problem;
use self::sets::Sets;
use self::work::{Run, entries, status_entry_id};
use super::action::access::claim_wait_labels;
use super::action::ended;
use super::agent_view::AgentView;
use super::backup::repo::RepoAccess;
use super::intent::{Intent, Plan};

/// Knobs of the Restore planner.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// How often a waiting Restore is looked at again.
    pub wait_requeue: Duration,
    /// How often a Restore with running actions is looked at again.
    pub poll: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            wait_requeue: Duration::from_secs(2),
            poll: Duration::from_secs(5),
        }
    }
}

/// Everything the Restore planner reads.
#[derive(Debug, Clone)]
pub struct Observed {
    pub restore: Restore,
    /// The source Backup (`spec.backup`, possibly in another namespace), if it exists.
    pub backup: Option<Backup>,
    /// The `cairn.io/restore-allowed-namespaces` annotation of the source Backup's namespace,
    /// read only for a Restore from another namespace (docs/API.md §9).
    pub source_namespace_grant: Option<String>,
    /// The ActionSet the backup's method names, if it exists.
    pub actionset: Option<ActionSet>,
    /// The ActionSets of the other backups restored with it (a continuous backup's base, a
    /// differential's parent); read with `backups`.
    pub actionsets: Vec<ActionSet>,
    /// The Backups of the source Backup's namespace, read when it is Incremental, Differential
    /// or Continuous: the chain, the parent or the base is restored with it (§4.1).
    pub backups: Vec<Backup>,
    /// All BackupRepos (cluster-scoped; few).
    pub repos: Vec<BackupRepo>,
    /// How agents reach the backup's repository from the Restore's namespace.
    pub repo_access: Option<RepoAccess>,
    /// The rendered access of the other repositories (a base in another repository).
    pub repo_accesses: Vec<RepoAccess>,
    /// The passphrase of the backup's `encryptionConfig`: `None` when not configured or not
    /// read, `Some(Err)` when the Secret or key is missing.
    pub encryption_passphrase: Option<Result<String, String>>,
    /// The passphrases of the other backups' `encryptionConfig`s in `backups`, by
    /// [`sets::passphrase_key`].
    pub passphrases: BTreeMap<String, Result<String, String>>,
    /// PersistentVolumeClaims of the Restore's namespace.
    pub claims: Vec<PersistentVolumeClaim>,
    /// VolumeSnapshots of the Restore's namespace, read while a volume snapshot backup is
    /// being restored (none otherwise, or when the snapshot CRDs are not installed).
    pub snapshots: Vec<snapshot::VolumeSnapshot>,
    /// Pods of the Restore's namespace.
    pub pods: Vec<Pod>,
    /// Nodes (for `schedulingSpec.nodeSelector`).
    pub nodes: Vec<Node>,
    pub agents: AgentView,
    pub settings: Settings,
}

/// Where a stage stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StageResult {
    Done,
    Running,
    Failed(String),
}

/// The first 8 characters of the Restore's uid (job names).
pub fn uid8(restore: &Restore) -> String {
    restore
        .metadata
        .uid
        .as_deref()
        .unwrap_or_default()
        .chars()
        .take(8)
        .collect()
}

/// Plans one reconcile of a Restore.
pub fn plan(o: &Observed, now: Timestamp) -> Plan<RestoreStatus> {
    if o.restore.metadata.deletion_timestamp.is_some() {
        return deletion::plan(o, now);
    }
    let status = o.restore.status.clone().unwrap_or_default();
    match status.phase {
        None => start(o, status, now),
        Some(RestorePhase::Running) => running(o, status, now, Vec::new()),
        Some(RestorePhase::Completed | RestorePhase::Failed | RestorePhase::AsDataSource) => {
            settled(o, &status)
        }
    }
}

/// New: label, finalizer, checks, then start running.
fn start(o: &Observed, mut status: RestoreStatus, now: Timestamp) -> Plan<RestoreStatus> {
    let mut intents = Vec::new();
    let labels = o.restore.metadata.labels.clone().unwrap_or_default();
    if !labels.contains_key(well_known::label::MANAGED_BY) {
        intents.push(Intent::PatchMeta {
            labels: BTreeMap::from([(
                well_known::label::MANAGED_BY.to_string(),
                Some(well_known::label::MANAGED_BY_DATA_PROTECTION.to_string()),
            )]),
            annotations: BTreeMap::new(),
        });
    }
    if !has_finalizer(&o.restore) {
        intents.push(Intent::AddFinalizer);
    }
    // Fields set that Cairn does not act on: a condition and one Warning (§K8 S22).
    if let Some(message) = cairn_api::ignored::message(&cairn_api::ignored::restore(&o.restore))
        && conditions::set_ignored_fields(&mut status, &message, now)
    {
        intents.push(Intent::warning(
            cairn_api::well_known::conditions::restore::REASON_IGNORED_FIELD,
            message,
        ));
    }
    let sets = match sets::resolve(o) {
        Ok(sets) => sets,
        Err(problem) => return problem_plan(o, status, problem, now, intents),
    };
    conditions::set(
        &mut status,
        CONDITION_CHECK_BACKUP_REPO,
        REASON_REPO_OK,
        "check backup repo successfully",
        now,
    );
    if let Some(source) = as_data_source::source(&o.restore) {
        if let Err(message) = as_data_source::check(&sets, source) {
            return problem_plan(o, status, Problem::invalid(message), now, intents);
        }
        conditions::set(
            &mut status,
            CONDITION_VALIDATION_PASSED,
            REASON_VALIDATE_OK,
            "validate restore spec successfully",
            now,
        );
        status.phase = Some(RestorePhase::AsDataSource);
        intents.push(Intent::normal(
            "RestoreAsDataSource",
            format!(
                "backup \"{}\" is ready to populate the persistent volume claims whose spec.dataSourceRef names this Restore",
                sets.source().backup_name
            ),
        ));
        return Plan {
            status: Some(status),
            intents,
            requeue: None,
        };
    }
    conditions::set(
        &mut status,
        CONDITION_VALIDATION_PASSED,
        REASON_VALIDATE_OK,
        "validate restore spec successfully",
        now,
    );
    status.phase = Some(RestorePhase::Running);
    status.start_timestamp = Some(Time(now));
    let message = if sets.all.len() > 1 {
        format!(
            "start to restore backup \"{}\" from the backups {}",
            sets.source().backup_name,
            sets.describe()
        )
    } else {
        format!("start to restore backup \"{}\"", sets.source().backup_name)
    };
    intents.push(Intent::normal("RestoreStarting", message));
    if let Some(base) = &sets.skipped_base {
        intents.push(Intent::normal(
            "SkipBaseBackupRestoreInPitr",
            format!(
                "base backup restore skipped: ActionSet {} restores base backup \"{base}\" itself",
                sets.source()
                    .actionset
                    .metadata
                    .name
                    .as_deref()
                    .unwrap_or_default()
            ),
        ));
    }
    advance(o, &sets, status, now, intents)
}

/// Running: re-resolve and advance the stages.
fn running(
    o: &Observed,
    status: RestoreStatus,
    now: Timestamp,
    intents: Vec<Intent>,
) -> Plan<RestoreStatus> {
    match sets::resolve(o) {
        Ok(sets) => advance(o, &sets, status, now, intents),
        Err(problem) => problem_plan(o, status, problem, now, intents),
    }
}

/// A resolution problem: wait with the repository condition, or fail.
fn problem_plan(
    o: &Observed,
    mut status: RestoreStatus,
    problem: Problem,
    now: Timestamp,
    intents: Vec<Intent>,
) -> Plan<RestoreStatus> {
    match problem {
        Problem::Wait { reason, message } => {
            conditions::set(
                &mut status,
                CONDITION_CHECK_BACKUP_REPO,
                reason,
                &message,
                now,
            );
            Plan {
                status: Some(status),
                intents,
                requeue: Some(o.settings.wait_requeue),
            }
        }
        Problem::WaitForRepoClaim { repo, claim } => {
            let mut intents = intents;
            let namespace = o.restore.metadata.namespace.as_deref().unwrap_or_default();
            let message = format!(
                "waiting for backup repository {repo} to create its PVC {claim} in namespace {namespace}"
            );
            let labels = claim_wait_labels(o.restore.metadata.labels.as_ref(), &repo);
            if !labels.is_empty() {
                intents.push(Intent::PatchMeta {
                    labels,
                    annotations: BTreeMap::new(),
                });
            }
            conditions::set(
                &mut status,
                CONDITION_CHECK_BACKUP_REPO,
                REASON_WAIT_FOR_REPO,
                &message,
                now,
            );
            Plan {
                status: Some(status),
                intents,
                requeue: Some(o.settings.wait_requeue),
            }
        }
        Problem::Fail {
            condition,
            reason,
            message,
        } => fail(o, status, condition, reason, message, now, intents),
    }
}

/// Runs prepareData, then postReady, then completes.
fn advance(
    o: &Observed,
    sets: &Sets<'_>,
    status: RestoreStatus,
    now: Timestamp,
    intents: Vec<Intent>,
) -> Plan<RestoreStatus> {
    let mut run = Run {
        o,
        req: sets.source(),
        sets,
        now,
        status,
        intents,
        placements: Placements::read(o.restore.metadata.annotations.as_ref()),
        annotations: BTreeMap::new(),
        requeue: None,
    };
    let mut result = prepare::run(&mut run);
    let mut stage = CONDITION_PREPARE_DATA;
    if result == StageResult::Done {
        result = post_ready::run(&mut run);
        stage = CONDITION_POST_READY;
    }
    let Run {
        status,
        mut intents,
        placements,
        mut annotations,
        requeue,
        ..
    } = run;
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
    match result {
        StageResult::Running => Plan {
            status: Some(status),
            intents,
            requeue: requeue.or(Some(o.settings.poll)),
        },
        StageResult::Failed(message) => {
            fail(o, status, stage, REASON_FAILED, message, now, intents)
        }
        StageResult::Done => complete(o, status, now, intents),
    }
}

/// Every stage is done.
fn complete(
    o: &Observed,
    mut status: RestoreStatus,
    now: Timestamp,
    mut intents: Vec<Intent>,
) -> Plan<RestoreStatus> {
    status.phase = Some(RestorePhase::Completed);
    status.completion_timestamp = Some(Time(now));
    status.duration = duration(&status, now);
    intents.push(Intent::normal(
        "RestoreCompleted",
        format!("restored backup \"{}\"", o.restore.spec.backup.name),
    ));
    // Finished restore Jobs go away with a Completed restore (KubeBlocks does the same).
    for stage in [RestoreStage::PrepareData, RestoreStage::PostReady] {
        for entry in entries(&status, stage) {
            if let Some(job) = entry.object_key.strip_prefix("Job/") {
                intents.push(Intent::Delete {
                    api_version: "batch/v1".into(),
                    kind: "Job".into(),
                    namespace: o.restore.metadata.namespace.clone(),
                    name: job.into(),
                });
            }
        }
    }
    Plan {
        status: Some(status),
        intents,
        requeue: None,
    }
}

/// Fails the Restore: the condition of the failed step carries the message; actions still
/// running are cancelled.
fn fail(
    o: &Observed,
    mut status: RestoreStatus,
    condition: &str,
    reason: &str,
    message: String,
    now: Timestamp,
    mut intents: Vec<Intent>,
) -> Plan<RestoreStatus> {
    let placements = Placements::read(o.restore.metadata.annotations.as_ref());
    intents.extend(deletion::cancel_running(
        o,
        &mut status,
        &placements,
        now,
        "the restore failed",
    ));
    conditions::set(&mut status, condition, reason, &message, now);
    status.phase = Some(RestorePhase::Failed);
    status.completion_timestamp = Some(Time(now));
    status.duration = duration(&status, now);
    intents.push(Intent::warning("RestoreFailed", message));
    Plan {
        status: Some(status),
        intents,
        requeue: None,
    }
}

fn duration(status: &RestoreStatus, now: Timestamp) -> Option<String> {
    let start = status.start_timestamp.as_ref()?;
    let elapsed = Duration::try_from(now.duration_since(start.0)).unwrap_or_default();
    Some(super::time::go_duration_text(elapsed))
}

/// Completed or Failed: acknowledge results that arrive late (after a restart).
fn settled(o: &Observed, status: &RestoreStatus) -> Plan<RestoreStatus> {
    let mut ids: Vec<String> = [RestoreStage::PrepareData, RestoreStage::PostReady]
        .into_iter()
        .flat_map(|stage| entries(status, stage).to_vec())
        .map(|e| status_entry_id(&o.restore, &e))
        .collect();
    ids.push(probe::action_id(&o.restore, probe::attempt(&o.restore)));
    let intents = ids
        .into_iter()
        .filter(|id| ended(&o.agents, id))
        .map(|action_id| Intent::Acknowledge { action_id })
        .collect();
    Plan {
        status: None,
        intents,
        requeue: None,
    }
}

fn has_finalizer(restore: &Restore) -> bool {
    restore
        .metadata
        .finalizers
        .iter()
        .flatten()
        .any(|f| f == well_known::FINALIZER)
}
