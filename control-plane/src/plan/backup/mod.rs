//! What happens when a Backup is created, runs and finishes (kubeblocks-semantics §1.2, §2).
//!
//! # Expected flow
//! 1. New: the policy, method, ActionSet and repository are resolved and checked, targets and
//!    pods selected; the Backup gets its labels, finalizer and a status with `path`, the copied
//!    method, the targets and one `New` entry per action (`start`).
//! 2. Running: per pod, actions run in order (preBackup, backupData, postBackup), pods and
//!    targets in parallel. An action is written `Running` before it is dispatched to the agent on
//!    its pod's node; the agent's result completes or fails it (`advance`).
//! 3. When every pod is done, `kubeblocks-backup.json` is written beside the data, and the
//!    Backup is `Completed` (or `Failed` when an action with `onError: Fail` failed).
//!
//! # Departures from KubeBlocks (where the API reference is followed instead)
//! - `onError: Continue` and exec `timeout` are honoured (Surprises 2, 3).
//! - A repository still pre-checking is waited for instead of failing the Backup (Surprise 13).
//! - No progress sidecar: the agent reads the backup info file itself and reports live bytes.

pub mod actions;
pub mod deletion;
pub mod path;
pub mod repo;
pub mod targets;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::time::Duration;

use cairn_api::action::ActionErrorMode;
use cairn_api::actionset::{ActionSet, BackupType};
use cairn_api::backup::{
    ActionPhase, ActionStatus, ActionType, Backup, BackupPhase, BackupProgress, BackupStatus,
    BackupStatusTarget,
};
use cairn_api::backup_policy::{BackupMethod, BackupPolicy};
use cairn_api::backup_repo::BackupRepo;
use cairn_api::common::Phase;
use cairn_proto::agent::v1 as pb;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{ObjectReference, PersistentVolumeClaim, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use self::actions::{BackupContext, PlannedAction, PlannedKind};
use self::repo::RepoAccess;
use self::targets::ResolvedTarget;
use super::action::{
    self, AccessProblem, ActionKind, InfoFile, Scope, Step, ended, failure_reason, lost_message,
    step, to_wire,
};
use super::agent_view::{AgentView, ReportedAction};
use super::ids::action_id;
use super::intent::{Intent, Plan};

/// Finalizer Cairn puts on Backups (KubeBlocks' DP finalizer, so both tools agree).
pub const FINALIZER: &str = "dataprotection.kubeblocks.io/finalizer";
const SKIP_RECONCILIATION: &str = "dataprotection.kubeblocks.io/skip-reconciliation";
pub const LABEL_BACKUP_TYPE: &str = "dataprotection.kubeblocks.io/backup-type";
pub const LABEL_BACKUP_POLICY: &str = "dataprotection.kubeblocks.io/backup-policy";
pub const LABEL_BACKUP_REPO: &str = "dataprotection.kubeblocks.io/backup-repo-name";
pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
const MANAGED_BY: &str = "kubeblocks-dataprotection";
const COPIED_POD_LABELS: [&str; 3] = [
    "app.kubernetes.io/instance",
    "apps.kubeblocks.io/component-name",
    "apps.kubeblocks.io/sharding-name",
];
/// Name of the action that writes `kubeblocks-backup.json`.
pub const MANIFEST_ACTION: &str = "dp-backup-manifest";
pub const MANIFEST_FILE: &str = "kubeblocks-backup.json";
const FAILED_ACTIONS: &str =
    "there are failed actions, you can obtain the more informations in the status.actions";

/// Knobs of the Backup planner.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Minimum time between two writes of `status.progress`.
    pub progress_interval: Duration,
    /// How often a waiting Backup is looked at again.
    pub wait_requeue: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            progress_interval: Duration::from_secs(1),
            wait_requeue: Duration::from_secs(2),
        }
    }
}

/// Everything the Backup planner reads.
#[derive(Debug, Clone)]
pub struct Observed {
    pub backup: Backup,
    /// The BackupPolicy named by the Backup, if it exists.
    pub policy: Option<BackupPolicy>,
    /// The ActionSet named by the method, if it exists.
    pub actionset: Option<ActionSet>,
    /// All BackupRepos (cluster-scoped; few).
    pub repos: Vec<BackupRepo>,
    /// How agents reach the resolved repository, once its reconciler has rendered it.
    pub repo_access: Option<RepoAccess>,
    /// The policy's encryption passphrase: `None` when not configured, `Some(Err)` when the
    /// Secret or key is missing.
    pub encryption_passphrase: Option<Result<String, String>>,
    /// Pods of the Backup's namespace.
    pub pods: Vec<Pod>,
    /// PersistentVolumeClaims of the Backup's namespace (a Mount repository's PVC).
    pub claims: Vec<PersistentVolumeClaim>,
    pub agents: AgentView,
    pub settings: Settings,
}

/// Why the request could not be built.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Problem {
    /// Fatal: the Backup fails with this reason.
    Fail(String),
    /// Not yet: look again later.
    Wait(String),
    /// A Mount repository has no PVC in the Backup's namespace yet: the Backup is labelled
    /// `wait-repo-preparation=true` so that the repository's reconciler creates it (§5.3 step 9).
    WaitForRepoClaim { repo: String, claim: String },
}

/// The resolved inputs of a backup.
struct Request<'a> {
    policy: &'a BackupPolicy,
    method: &'a BackupMethod,
    actionset: &'a ActionSet,
    repo: &'a BackupRepo,
    access: &'a RepoAccess,
    targets: Vec<ResolvedTarget>,
    target_list: bool,
    labels: BTreeMap<String, String>,
    root_path: String,
    backup_path: String,
    passphrase: Option<String>,
}

/// Plans one reconcile of a Backup.
pub fn plan(o: &Observed, now: Timestamp) -> Plan<BackupStatus> {
    let backup = &o.backup;
    let skip = backup
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(SKIP_RECONCILIATION))
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    if skip {
        return Plan::nothing();
    }
    if backup.metadata.deletion_timestamp.is_some() {
        return deletion::plan(o, now);
    }
    let status = backup.status.clone().unwrap_or_default();
    match status.phase {
        None | Some(BackupPhase::New) | Some(BackupPhase::InProgress) => start(o, status, now),
        Some(BackupPhase::Running) => run(o, status, now),
        Some(BackupPhase::Completed) | Some(BackupPhase::Failed) => settled(o, &status),
        Some(BackupPhase::Deleting) => Plan::nothing(),
    }
}

/// New: resolve, record the plan of actions in the status, and start running.
fn start(o: &Observed, mut status: BackupStatus, now: Timestamp) -> Plan<BackupStatus> {
    let mut intents = Vec::new();
    let request = match request(o) {
        Ok(request) => request,
        Err(Problem::Wait(reason)) => {
            return Plan {
                status: None,
                intents: vec![Intent::normal("Waiting", reason)],
                requeue: Some(o.settings.wait_requeue),
            };
        }
        Err(Problem::WaitForRepoClaim { repo, claim }) => {
            return wait_for_repo_claim(o, &repo, &claim);
        }
        Err(Problem::Fail(reason)) => return fail(o, status, reason, now, intents),
    };
    let current_labels = o.backup.metadata.labels.clone().unwrap_or_default();
    let label_changes: BTreeMap<String, Option<String>> = request
        .labels
        .iter()
        .filter(|(k, v)| current_labels.get(*k) != Some(*v))
        .map(|(k, v)| (k.clone(), Some(v.clone())))
        .collect();
    if !label_changes.is_empty() {
        intents.push(Intent::PatchMeta {
            labels: label_changes,
            annotations: BTreeMap::new(),
        });
    }
    if !has_finalizer(&o.backup) {
        intents.push(Intent::AddFinalizer);
    }
    let mut planned_actions = Vec::new();
    for target in &request.targets {
        for (i, pod) in target.pods.iter().enumerate() {
            match planned_for_pod(&request, &o.backup, target, pod, i) {
                Ok(list) => planned_actions.extend(
                    list.into_iter()
                        .map(|a| (a, pod.metadata.name.clone().unwrap_or_default())),
                ),
                Err(reason) => return fail(o, status, reason, now, intents),
            }
        }
    }
    let recorded_targets: Vec<BackupStatusTarget> = request
        .targets
        .iter()
        .map(|t| BackupStatusTarget {
            target: t.target.clone(),
            selected_target_pods: Some(
                t.pods
                    .iter()
                    .filter_map(|p| p.metadata.name.clone())
                    .collect(),
            ),
        })
        .collect();
    if request.target_list {
        status.targets = Some(recorded_targets);
    } else {
        status.target = recorded_targets.into_iter().next();
    }
    status.format_version = Some("0.1.0".into());
    status.path = Some(request.backup_path.clone());
    status.backup_method = Some(request.method.clone());
    status.backup_repo_name = request.repo.metadata.name.clone();
    status.encryption_config = request.policy.spec.encryption_config.clone();
    status.actions = Some(
        planned_actions
            .iter()
            .map(|(action, pod)| ActionStatus {
                name: Some(action.name.clone()),
                target_pod_name: Some(pod.clone()),
                phase: Some(ActionPhase::New),
                action_type: Some(action_type(action)),
                ..Default::default()
            })
            .collect(),
    );
    status.phase = Some(BackupPhase::Running);
    status.start_timestamp = Some(Time(now));
    status.failure_reason = None;
    status.expiration = expiration(&o.backup, &status);
    intents.push(Intent::normal(
        "BackupStarted",
        format!(
            "backup started with method {} on {} pod(s)",
            request.method.name,
            request.targets.iter().map(|t| t.pods.len()).sum::<usize>()
        ),
    ));
    advance(o, &request, status, now, intents)
}

/// Running: re-resolve (pods from the status) and advance the actions.
fn run(o: &Observed, status: BackupStatus, now: Timestamp) -> Plan<BackupStatus> {
    match request(o) {
        Ok(request) => advance(o, &request, status, now, Vec::new()),
        Err(Problem::Wait(_)) => Plan {
            status: None,
            intents: Vec::new(),
            requeue: Some(o.settings.wait_requeue),
        },
        Err(Problem::WaitForRepoClaim { repo, claim }) => wait_for_repo_claim(o, &repo, &claim),
        Err(Problem::Fail(reason)) => fail(o, status, reason, now, Vec::new()),
    }
}

/// Waits for a Mount repository's PVC in the Backup's namespace, labelling the Backup so that
/// the repository's reconciler creates it (KubeBlocks' `wait-repo-preparation`).
fn wait_for_repo_claim(o: &Observed, repo: &str, claim: &str) -> Plan<BackupStatus> {
    let namespace = o.backup.metadata.namespace.as_deref().unwrap_or_default();
    let current = o.backup.metadata.labels.clone().unwrap_or_default();
    let labels: BTreeMap<String, Option<String>> = [
        (LABEL_BACKUP_REPO, repo),
        (super::backup_repo::LABEL_WAIT_REPO_PREPARATION, "true"),
    ]
    .into_iter()
    .filter(|(key, value)| current.get(*key).map(String::as_str) != Some(*value))
    .map(|(key, value)| (key.to_string(), Some(value.to_string())))
    .collect();
    let mut intents = Vec::new();
    if !labels.is_empty() {
        intents.push(Intent::PatchMeta {
            labels,
            annotations: BTreeMap::new(),
        });
        intents.push(Intent::normal(
            "Waiting",
            format!(
                "waiting for backup repository {repo} to create its PVC {claim} in namespace {namespace}"
            ),
        ));
    }
    Plan {
        status: None,
        intents,
        requeue: Some(o.settings.wait_requeue),
    }
}

/// Completed or Failed: only acknowledge results that arrive late (after a restart).
fn settled(o: &Observed, status: &BackupStatus) -> Plan<BackupStatus> {
    let mut intents = Vec::new();
    let uid = o.backup.metadata.uid.clone().unwrap_or_default();
    for action in status.actions.iter().flatten() {
        let id = action_id(
            &uid,
            action.name.as_deref().unwrap_or_default(),
            action.target_pod_name.as_deref().unwrap_or_default(),
        );
        if ended(&o.agents, &id) {
            intents.push(Intent::Acknowledge { action_id: id });
        }
    }
    let manifest = action_id(&uid, MANIFEST_ACTION, "");
    if ended(&o.agents, &manifest) {
        intents.push(Intent::Acknowledge {
            action_id: manifest,
        });
    }
    Plan {
        status: None,
        intents,
        requeue: None,
    }
}

fn has_finalizer(backup: &Backup) -> bool {
    backup
        .metadata
        .finalizers
        .iter()
        .flatten()
        .any(|f| f == FINALIZER)
}

fn action_type(action: &PlannedAction) -> ActionType {
    match action.kind {
        PlannedKind::Job { .. } => ActionType::Job,
        PlannedKind::Exec { .. } => ActionType::None,
    }
}

/// Marks the Backup Failed with `reason` (and an event), cancelling nothing: callers decide.
fn fail(
    o: &Observed,
    mut status: BackupStatus,
    reason: String,
    now: Timestamp,
    mut intents: Vec<Intent>,
) -> Plan<BackupStatus> {
    status.phase = Some(BackupPhase::Failed);
    status.failure_reason = Some(reason.clone());
    status.completion_timestamp = Some(Time(now));
    if let Some(start) = &status.start_timestamp {
        status.duration = Some(super::time::go_duration_text(elapsed(start.0, now)));
    }
    if status.expiration.is_none() {
        status.expiration = expiration(&o.backup, &status);
    }
    status.progress = None;
    intents.push(Intent::warning("ReconcileFailed", reason));
    Plan {
        status: Some(status),
        intents,
        requeue: None,
    }
}

fn elapsed(from: Timestamp, to: Timestamp) -> Duration {
    Duration::try_from(to.duration_since(from)).unwrap_or_default()
}

/// `status.expiration` (§7.1): base + retention, where base is the completion time for a
/// Completed backup and the start otherwise; `None` without retention.
pub fn expiration(backup: &Backup, status: &BackupStatus) -> Option<Time> {
    let retention = backup.spec.retention_period.as_deref().unwrap_or_default();
    let period = super::time::retention(retention).ok().flatten()?;
    let base = if status.phase == Some(BackupPhase::Completed) {
        status.completion_timestamp.clone()
    } else {
        status
            .time_range
            .as_ref()
            .and_then(|r| r.start.clone())
            .or_else(|| status.start_timestamp.clone())
    }
    .or_else(|| backup.metadata.creation_timestamp.clone())?;
    let span = jiff::SignedDuration::try_from(period).ok()?;
    base.0.checked_add(span).ok().map(Time)
}

/// Resolves policy, method, ActionSet, repository and targets (New-phase checks of §1.2).
fn request(o: &Observed) -> Result<Request<'_>, Problem> {
    let backup = &o.backup;
    let namespace = backup.metadata.namespace.clone().unwrap_or_default();
    let policy_name = &backup.spec.backup_policy_name;
    let policy = o.policy.as_ref().ok_or_else(|| {
        Problem::Fail(format!(
            "backuppolicies.dataprotection.kubeblocks.io \"{policy_name}\" not found"
        ))
    })?;
    if policy.status.as_ref().and_then(|s| s.phase) == Some(Phase::Unavailable) {
        return Err(Problem::Fail(format!(
            "phase of backupPolicy \"{policy_name}\" is Unavailable"
        )));
    }
    let method_name = &backup.spec.backup_method;
    let method = policy
        .spec
        .backup_methods
        .iter()
        .find(|m| &m.name == method_name)
        .ok_or_else(|| Problem::Fail(format!("backupMethod: {method_name} not found")))?;
    let snapshot = method.snapshot_volumes.unwrap_or(false);
    let actionset_name = method.action_set_name.clone().unwrap_or_default();
    if !snapshot && actionset_name.is_empty() {
        return Err(Problem::Fail(format!(
            "backup method {method_name} should specify snapshotVolumes or actionSetName"
        )));
    }
    if snapshot {
        return Err(Problem::Fail(format!(
            "backup method {method_name} uses snapshotVolumes, and volume snapshot backups are not supported by Cairn yet; use a method with an actionSetName"
        )));
    }
    let actionset = o.actionset.as_ref().ok_or_else(|| {
        Problem::Fail(format!(
            "actionsets.dataprotection.kubeblocks.io \"{actionset_name}\" not found"
        ))
    })?;
    match actionset.spec.backup_type {
        BackupType::Full | BackupType::Selective => {}
        other => {
            return Err(Problem::Fail(format!(
                "backup type {other:?} of actionSet {actionset_name} is not supported by Cairn yet (supported: Full, Selective)"
            )));
        }
    }
    check_parameters(backup, actionset).map_err(|reason| {
        Problem::Fail(format!(
            "fails to validate parameters with actionset {actionset_name}: {reason}"
        ))
    })?;
    let passphrase = match &o.encryption_passphrase {
        None => None,
        Some(Ok(passphrase)) => Some(passphrase.clone()),
        Some(Err(reason)) => {
            return Err(Problem::Fail(format!(
                "failed to validate backupPolicy's encryption config: {reason}"
            )));
        }
    };
    let repo = repo::resolve(backup, policy, &o.repos).map_err(Problem::Fail)?;
    let repo_name = repo.metadata.name.clone().unwrap_or_default();
    let access =
        action::access::resolve(repo, o.repo_access.as_ref(), &o.claims).map_err(|problem| {
            match problem {
                AccessProblem::PreChecking { .. } | AccessProblem::NotRendered { .. } => {
                    Problem::Wait(problem.to_string())
                }
                AccessProblem::NotReady { .. } => Problem::Fail(problem.to_string()),
                AccessProblem::NoClaim { repo, claim } => Problem::WaitForRepoClaim { repo, claim },
            }
        })?;
    let declared = targets::targets(policy, method);
    if declared.is_empty() {
        return Err(Problem::Fail(format!(
            "backup target/targets can not be empty in backupPolicy \"{policy_name}\""
        )));
    }
    let mut resolved = Vec::new();
    for target in declared {
        let pods = targets::select_pods(backup, policy, &target, &o.pods)
            .map_err(|err| Problem::Fail(err.to_string()))?;
        resolved.push(ResolvedTarget { target, pods });
    }
    let mut labels = backup.metadata.labels.clone().unwrap_or_default();
    if let Some(first_pod) = resolved.first().and_then(|t| t.pods.first()) {
        let pod_labels = first_pod.metadata.labels.clone().unwrap_or_default();
        for key in COPIED_POD_LABELS {
            if let Some(value) = pod_labels.get(key) {
                labels.entry(key.to_string()).or_insert(value.clone());
            }
        }
    }
    labels
        .entry(LABEL_MANAGED_BY.into())
        .or_insert(MANAGED_BY.into());
    labels.insert(
        LABEL_BACKUP_TYPE.into(),
        format!("{:?}", actionset.spec.backup_type),
    );
    labels.insert(LABEL_BACKUP_POLICY.into(), policy_name.clone());
    labels.insert(LABEL_BACKUP_REPO.into(), repo_name);
    let root_path = path::root_path(
        repo.spec.path_prefix.as_deref().unwrap_or_default(),
        &namespace,
        policy.spec.path_prefix.as_deref().unwrap_or_default(),
    );
    let backup_path = path::backup_path(
        &root_path,
        backup.metadata.name.as_deref().unwrap_or_default(),
    );
    Ok(Request {
        target_list: targets::uses_target_list(policy, method),
        policy,
        method,
        actionset,
        repo,
        access,
        targets: resolved,
        labels,
        root_path,
        backup_path,
        passphrase,
    })
}

/// KubeBlocks' parameter checks (§3.4): every parameter declared in `withParameters`.
fn check_parameters(backup: &Backup, actionset: &ActionSet) -> Result<(), String> {
    let parameters = backup.spec.parameters.clone().unwrap_or_default();
    if parameters.is_empty() {
        return Ok(());
    }
    let actionset_name = actionset.metadata.name.clone().unwrap_or_default();
    let declared = actionset
        .spec
        .backup
        .as_ref()
        .and_then(|b| b.with_parameters.clone())
        .unwrap_or_default();
    if parameters.len() > declared.len() {
        return Err(format!(
            "some parameters are undeclared in withParameters of actionSet {actionset_name}"
        ));
    }
    for parameter in &parameters {
        if !declared.contains(&parameter.name) {
            return Err(format!(
                "parameter {} is undeclared in withParameters of actionSet {actionset_name}",
                parameter.name
            ));
        }
    }
    let schema = actionset
        .spec
        .parameters_schema
        .as_ref()
        .and_then(|s| s.open_api_v3_schema.as_ref());
    let has_properties = schema
        .and_then(|s| s.get("properties"))
        .and_then(|p| p.as_object())
        .is_some_and(|p| !p.is_empty());
    if !has_properties {
        return Err(format!(
            "the parametersSchema is invalid in actionSet {actionset_name}"
        ));
    }
    Ok(())
}

fn planned_for_pod(
    request: &Request<'_>,
    backup: &Backup,
    target: &ResolvedTarget,
    pod: &Pod,
    index: usize,
) -> Result<Vec<PlannedAction>, String> {
    let ctx = BackupContext {
        backup,
        policy: request.policy,
        method: request.method,
        actionset: request.actionset,
        backup_path: &request.backup_path,
        root_path: &request.root_path,
        labels: &request.labels,
        mount_repo: request
            .access
            .mount_claim
            .as_deref()
            .map(|claim| (claim, repo::MOUNT_PATH)),
    };
    actions::pod_actions(&ctx, target, pod, index).map_err(|err| err.to_string())
}

/// Where a pod's actions stand after this reconcile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PodProgress {
    Done,
    Waiting,
    Failed,
}

/// Moves every pod's action list forward as far as the agents' reports allow.
fn advance(
    o: &Observed,
    request: &Request<'_>,
    mut status: BackupStatus,
    now: Timestamp,
    mut intents: Vec<Intent>,
) -> Plan<BackupStatus> {
    let uid = o.backup.metadata.uid.clone().unwrap_or_default();
    let mut outcomes = Vec::new();
    let mut running_ids = Vec::new();
    for target in &request.targets {
        for (index, pod) in target.pods.iter().enumerate() {
            let list = match planned_for_pod(request, &o.backup, target, pod, index) {
                Ok(list) => list,
                Err(reason) => return fail(o, status, reason, now, intents),
            };
            let pod_name = pod.metadata.name.clone().unwrap_or_default();
            let node = pod
                .spec
                .as_ref()
                .and_then(|s| s.node_name.clone())
                .unwrap_or_default();
            let outcome = advance_pod(
                o,
                request,
                &mut status,
                &uid,
                &list,
                (&pod_name, &node, pod),
                now,
                &mut intents,
                &mut running_ids,
            );
            outcomes.push(outcome);
        }
    }
    update_progress(o, &mut status, &running_ids, now);
    if outcomes.contains(&PodProgress::Waiting) {
        return Plan {
            status: Some(status),
            intents,
            requeue: Some(o.settings.wait_requeue.max(Duration::from_secs(5))),
        };
    }
    if outcomes.contains(&PodProgress::Failed) {
        return fail(o, status, FAILED_ACTIONS.into(), now, intents);
    }
    finish(o, request, status, now, intents)
}

/// Advances one pod's actions; returns where the pod stands.
#[allow(clippy::too_many_arguments)]
fn advance_pod(
    o: &Observed,
    request: &Request<'_>,
    status: &mut BackupStatus,
    uid: &str,
    list: &[PlannedAction],
    (pod_name, node, pod): (&str, &str, &Pod),
    now: Timestamp,
    intents: &mut Vec<Intent>,
    running_ids: &mut Vec<String>,
) -> PodProgress {
    let mut pod_failed = false;
    for planned in list {
        let entry = status_entry(status, &planned.name, pod_name, action_type(planned));
        let continue_on_error = planned.on_error == ActionErrorMode::Continue;
        match entry.phase {
            Some(ActionPhase::Completed) => continue,
            Some(ActionPhase::Failed) => {
                if continue_on_error {
                    continue;
                }
                pod_failed = true;
                break;
            }
            _ => {}
        }
        let id = action_id(uid, &planned.name, pod_name);
        match step(&o.agents, &id, Some(node), now) {
            Step::Succeeded(report) => {
                complete_entry(entry, report, pod, now);
                running_ids.push(id.clone());
                let info = report.backup_info_json.clone();
                intents.push(Intent::Acknowledge { action_id: id });
                let is_data = matches!(
                    planned.kind,
                    PlannedKind::Job {
                        backup_data: true,
                        ..
                    }
                );
                if is_data
                    && let Some(info) = info
                    && let Err(reason) = merge_backup_info(status, &info)
                {
                    intents.push(Intent::warning("InvalidBackupInfo", reason));
                }
                continue;
            }
            Step::Failed(report) => {
                let reason = failure_reason(report, "the action failed");
                fail_entry(entry, reason.clone(), report.job_name.clone(), pod, now);
                intents.push(Intent::Acknowledge { action_id: id });
                intents.push(Intent::warning(
                    "ActionFailed",
                    format!("action {} on pod {pod_name} failed: {reason}", planned.name),
                ));
                if continue_on_error {
                    continue;
                }
                pod_failed = true;
                break;
            }
            Step::NodeLost { lost_for } => {
                let reason = format!(
                    "{}; the action's outcome is unknown",
                    lost_message(node, lost_for)
                );
                fail_entry(entry, reason, None, pod, now);
                if continue_on_error {
                    continue;
                }
                pod_failed = true;
                break;
            }
            Step::NotDispatched | Step::Running(_) => {}
        }
        if entry.phase != Some(ActionPhase::Running) {
            entry.phase = Some(ActionPhase::Running);
            entry.start_timestamp = Some(Time(now));
        }
        let action = to_action(o, request, planned, &id, pod);
        intents.push(Intent::Dispatch {
            node: node.to_string(),
            action: Box::new(action),
        });
        running_ids.push(id);
        return PodProgress::Waiting;
    }
    if pod_failed {
        PodProgress::Failed
    } else {
        PodProgress::Done
    }
}

/// The status entry for an action on a pod, created as New if missing.
fn status_entry<'s>(
    status: &'s mut BackupStatus,
    name: &str,
    pod: &str,
    action_type: ActionType,
) -> &'s mut ActionStatus {
    let actions = status.actions.get_or_insert_with(Vec::new);
    let found = actions
        .iter()
        .position(|a| a.name.as_deref() == Some(name) && a.target_pod_name.as_deref() == Some(pod));
    let index = match found {
        Some(index) => index,
        None => {
            actions.push(ActionStatus {
                name: Some(name.into()),
                target_pod_name: Some(pod.into()),
                phase: Some(ActionPhase::New),
                action_type: Some(action_type),
                ..Default::default()
            });
            actions.len() - 1
        }
    };
    &mut actions[index]
}

fn job_ref(pod: &Pod, job: Option<String>) -> Option<ObjectReference> {
    job.filter(|j| !j.is_empty()).map(|name| ObjectReference {
        api_version: Some("batch/v1".into()),
        kind: Some("Job".into()),
        name: Some(name),
        namespace: pod.metadata.namespace.clone(),
        ..Default::default()
    })
}

fn complete_entry(entry: &mut ActionStatus, report: &ReportedAction, pod: &Pod, now: Timestamp) {
    entry.phase = Some(ActionPhase::Completed);
    if entry.start_timestamp.is_none() {
        entry.start_timestamp = Some(Time(report.started_at.unwrap_or(now)));
    }
    entry.completion_timestamp = Some(Time(report.finished_at.unwrap_or(now)));
    entry.failure_reason = None;
    if let Some(job) = job_ref(pod, report.job_name.clone()) {
        entry.object_ref = Some(job);
    }
    if let Some(info) = report
        .backup_info_json
        .as_deref()
        .and_then(|i| serde_json::from_str::<serde_json::Value>(i).ok())
    {
        if let Some(size) = info.get("totalSize") {
            entry.total_size = Some(match size {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            });
        }
        if let Some(range) = info
            .get("timeRange")
            .and_then(|r| serde_json::from_value(r.clone()).ok())
        {
            entry.time_range = Some(range);
        }
    }
}

fn fail_entry(
    entry: &mut ActionStatus,
    reason: String,
    job: Option<String>,
    pod: &Pod,
    now: Timestamp,
) {
    entry.phase = Some(ActionPhase::Failed);
    if entry.start_timestamp.is_none() {
        entry.start_timestamp = Some(Time(now));
    }
    entry.completion_timestamp = Some(Time(now));
    entry.failure_reason = Some(reason);
    if let Some(job) = job_ref(pod, job) {
        entry.object_ref = Some(job);
    }
}

/// Merges the backup info file (a subset of BackupStatus, §2.6) into the status, as
/// KubeBlocks' sidecar does with a merge patch.
fn merge_backup_info(status: &mut BackupStatus, info: &str) -> Result<(), String> {
    let info: serde_json::Value = serde_json::from_str(info)
        .map_err(|err| format!("the backup info file is not JSON: {err}"))?;
    if !info.is_object() {
        return Err("the backup info file is not a JSON object".into());
    }
    let mut current = serde_json::to_value(&*status).map_err(|err| err.to_string())?;
    // A number is a valid totalSize in scripts' eyes; the API wants a string.
    let mut info = info;
    if let Some(size) = info.get_mut("totalSize")
        && !size.is_string()
    {
        *size = serde_json::Value::String(size.to_string());
    }
    json_patch::merge(&mut current, &info);
    let merged: BackupStatus = serde_json::from_value(current)
        .map_err(|err| format!("the backup info file does not fit the Backup status: {err}"))?;
    // The info file may not move the backup's own bookkeeping.
    let keep = status.clone();
    *status = BackupStatus {
        phase: keep.phase,
        actions: keep.actions,
        path: keep.path,
        backup_method: keep.backup_method,
        backup_repo_name: keep.backup_repo_name,
        start_timestamp: keep.start_timestamp,
        target: keep.target,
        targets: keep.targets,
        ..merged
    };
    Ok(())
}

/// Builds the wire action for a planned action.
fn to_action(
    o: &Observed,
    request: &Request<'_>,
    planned: &PlannedAction,
    id: &str,
    pod: &Pod,
) -> pb::Action {
    let kind = match &planned.kind {
        PlannedKind::Exec {
            container,
            command,
            timeout_seconds,
        } => ActionKind::Exec {
            container: container.clone(),
            command: command.clone(),
            timeout_seconds: *timeout_seconds,
        },
        PlannedKind::Job { job, backup_data } => ActionKind::Job {
            job: job.clone(),
            storage: Some(grant(request, &o.backup, true)),
            info: Some(InfoFile {
                volume: actions::MANAGER_VOLUME.into(),
                file: actions::INFO_FILE.into(),
                collect: *backup_data,
            }),
        },
    };
    to_wire(id, &planned.name, owner(&o.backup), Some(pod), kind)
}

/// The Backup as the owner of its actions.
pub fn owner(backup: &Backup) -> pb::ObjectRef {
    action::owner("Backup", &backup.metadata)
}

/// What the backup's actions may reach in the repository: its own path read-write and, with
/// `siblings`, its siblings read-only.
fn grant(request: &Request<'_>, backup: &Backup, siblings: bool) -> pb::StorageGrant {
    let read_only = if siblings {
        std::slice::from_ref(&request.root_path)
    } else {
        &[]
    };
    action::grant(
        request.access,
        backup.metadata.namespace.as_deref().unwrap_or_default(),
        Scope {
            read_write: &request.backup_path,
            read_only,
            encryption: request
                .policy
                .spec
                .encryption_config
                .as_ref()
                .zip(request.passphrase.as_deref()),
        },
    )
}

/// Sums the agents' byte counts (of running actions and of those that finished in this
/// reconcile) into `status.progress`, at most once per interval.
fn update_progress(o: &Observed, status: &mut BackupStatus, running: &[String], now: Timestamp) {
    let reports: Vec<&ReportedAction> = running
        .iter()
        .filter_map(|id| o.agents.action(id))
        .collect();
    // Reports of finished actions are forgotten once acknowledged, so the count never goes
    // back: it is the larger of the previous count and what the agents report now.
    let reported: u64 = reports.iter().map(|r| r.bytes_done).sum();
    let previous_done = status
        .progress
        .as_ref()
        .map(|p| u64::try_from(p.bytes_done).unwrap_or(0))
        .unwrap_or(0);
    let done = reported.max(previous_done);
    let rate: u64 = reports.iter().filter_map(|r| r.bytes_per_second).sum();
    // No report, no total (an empty sum of Options would claim a total of 0).
    let total: Option<u64> = if reports.is_empty() {
        None
    } else {
        reports.iter().map(|r| r.bytes_total).sum()
    };
    let previous = status.progress.clone();
    let fresh = previous
        .as_ref()
        .and_then(|p| p.update_time.as_ref())
        .is_some_and(|t| elapsed(t.0, now) < o.settings.progress_interval);
    // An action that finished in this reconcile brings its final count, which must not be
    // throttled away: the next reconcile no longer sees its report.
    let finishing = running.iter().any(|id| ended(&o.agents, id));
    if (fresh && !finishing) || (reports.is_empty() && previous.is_none()) {
        return;
    }
    let progress = BackupProgress {
        bytes_done: i64::try_from(done).unwrap_or(i64::MAX),
        bytes_total: total.and_then(|t| i64::try_from(t).ok()),
        bytes_per_second: (rate > 0).then(|| i64::try_from(rate).unwrap_or(i64::MAX)),
        eta_seconds: match (total, rate) {
            (Some(total), rate) if rate > 0 && total >= done => {
                i64::try_from((total - done).div_ceil(rate)).ok()
            }
            _ => None,
        },
        update_time: Some(Time(now)),
    };
    let unchanged = previous.as_ref().is_some_and(|p| {
        p.bytes_done == progress.bytes_done
            && p.bytes_total == progress.bytes_total
            && p.bytes_per_second == progress.bytes_per_second
    });
    if !unchanged {
        status.progress = Some(progress);
    }
}

/// Every pod is done: write `kubeblocks-backup.json`, then complete the Backup.
fn finish(
    o: &Observed,
    request: &Request<'_>,
    mut status: BackupStatus,
    now: Timestamp,
    mut intents: Vec<Intent>,
) -> Plan<BackupStatus> {
    for action in status.actions.clone().iter().flatten() {
        if status.total_size.is_none() {
            status.total_size = action.total_size.clone();
        }
        if status.time_range.is_none() {
            status.time_range = action.time_range.clone();
        }
    }
    let mut completed = status.clone();
    completed.phase = Some(BackupPhase::Completed);
    completed.completion_timestamp = Some(Time(now));
    if let Some(start) = &completed.start_timestamp {
        completed.duration = Some(super::time::go_duration_text(elapsed(start.0, now)));
    }
    completed.expiration = expiration(&o.backup, &completed);
    let done_bytes = completed.progress.as_ref().map(|p| p.bytes_done);
    completed.progress = done_bytes.map(|bytes| BackupProgress {
        bytes_done: bytes,
        bytes_total: Some(bytes),
        bytes_per_second: None,
        eta_seconds: Some(0),
        update_time: Some(Time(now)),
    });
    let uid = o.backup.metadata.uid.clone().unwrap_or_default();
    let id = action_id(&uid, MANIFEST_ACTION, "");
    // The manifest is written by the agent of the first target pod's node.
    let node = request
        .targets
        .iter()
        .flat_map(|t| t.pods.iter())
        .find_map(|p| p.spec.as_ref().and_then(|s| s.node_name.clone()))
        .unwrap_or_default();
    match step(&o.agents, &id, Some(&node), now) {
        Step::Succeeded(_) => {
            intents.push(Intent::Acknowledge { action_id: id });
            // As KubeBlocks does once a backup is Completed: its Jobs (and their pods) go.
            for job in completed
                .actions
                .iter()
                .flatten()
                .filter_map(|a| a.object_ref.as_ref())
                .filter(|r| r.kind.as_deref() == Some("Job"))
            {
                intents.push(Intent::Delete {
                    api_version: "batch/v1".into(),
                    kind: "Job".into(),
                    namespace: job.namespace.clone(),
                    name: job.name.clone().unwrap_or_default(),
                });
            }
            intents.push(Intent::normal(
                "CreatedBackup",
                format!(
                    "Created backup {}, total size {}",
                    o.backup.metadata.name.as_deref().unwrap_or_default(),
                    completed.total_size.as_deref().unwrap_or("unknown")
                ),
            ));
            Plan {
                status: Some(completed),
                intents,
                requeue: None,
            }
        }
        Step::Failed(report) => {
            let reason = format!(
                "writing {MANIFEST_FILE} into the repository failed: {}",
                report.failure_reason
            );
            intents.push(Intent::Acknowledge { action_id: id });
            fail(o, status, reason, now, intents)
        }
        Step::NodeLost { lost_for } => {
            let reason = format!(
                "{} while writing {MANIFEST_FILE}",
                lost_message(&node, lost_for)
            );
            fail(o, status, reason, now, intents)
        }
        Step::NotDispatched | Step::Running(_) => {
            let mut manifest = o.backup.clone();
            manifest.status = Some(completed);
            manifest.metadata.managed_fields = None;
            let content = serde_json::to_vec_pretty(&manifest).unwrap_or_default();
            let action = to_wire(
                &id,
                MANIFEST_ACTION,
                owner(&o.backup),
                None,
                ActionKind::PutObject {
                    storage: grant(request, &o.backup, false),
                    path: path::join(&[&request.backup_path, MANIFEST_FILE]),
                    content,
                },
            );
            intents.push(Intent::Dispatch {
                node,
                action: Box::new(action),
            });
            Plan {
                status: Some(status),
                intents,
                requeue: Some(o.settings.wait_requeue.max(Duration::from_secs(5))),
            }
        }
    }
}
