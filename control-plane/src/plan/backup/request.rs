//! What a Backup asks for, resolved: its policy, method, ActionSet, repository (and how agents
//! reach it), targets and pods, with KubeBlocks' checks and messages (ARCHITECTURE.md §K1.2
//! "New", §K3.4, §K5.4).

use std::collections::BTreeMap;

use cairn_api::actionset::{ActionSet, BackupType};
use cairn_api::backup::{
    ActionPhase, ActionStatus, ActionType, Backup, BackupStatus, BackupStatusTarget,
};
use cairn_api::backup_policy::{BackupMethod, BackupPolicy};
use cairn_api::backup_repo::BackupRepo;
use cairn_api::backup_schedule::BackupSchedulePhase;
use cairn_api::common::Phase;
use cairn_api::well_known;
use k8s_openapi::api::core::v1::Pod;

use cairn_api::common::EncryptionConfig;

use super::actions::{self, BackupContext, ChainEnv, PlannedAction};
use super::parent::{self, Parent};
use super::pods::action_type;
use super::repo::{self, RepoAccess};
use super::targets::{self, ResolvedTarget};
use super::{COPIED_POD_LABELS, Observed, continuous, path, snapshot};
use crate::plan::action::{self, AccessProblem};
use crate::plan::intent::{Intent, Plan};

/// Why the request could not be built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Problem {
    /// Fatal: the Backup fails with this reason.
    Fail(String),
    /// Not yet: look again later.
    Wait(String),
    /// A Mount repository has no PVC in the Backup's namespace yet: the Backup is labelled
    /// `wait-repo-preparation=true` so that the repository's reconciler creates it (§5.3 step 9).
    WaitForRepoClaim { repo: String, claim: String },
}

/// The resolved inputs of a backup.
pub(super) struct Request<'a> {
    pub policy: &'a BackupPolicy,
    pub method: &'a BackupMethod,
    /// `None` only for a snapshot method without one.
    pub actionset: Option<&'a ActionSet>,
    /// `None` for a snapshot backup, which stores nothing in a repository.
    pub repo: Option<&'a BackupRepo>,
    pub access: Option<&'a RepoAccess>,
    pub targets: Vec<ResolvedTarget>,
    /// Whether the policy lists `targets` (recorded as `status.targets`) or has one `target`.
    pub target_list: bool,
    /// The labels the Backup carries once its metadata is patched.
    pub labels: BTreeMap<String, String>,
    /// The directory shared by the policy's backups (`DP_BACKUP_ROOT_PATH`).
    pub root_path: String,
    /// The backup's `status.path` (empty for a snapshot backup).
    pub backup_path: String,
    /// The encryption of the backup's data: the parent's for a chain, else the policy's.
    pub encryption: Option<&'a EncryptionConfig>,
    pub passphrase: Option<String>,
    /// The deduplicating repository the data goes into (`status.kopiaRepoPath`, `useKopia`).
    pub kopia_repo_path: Option<String>,
    /// The parent and base of an Incremental or Differential backup.
    pub parent: Option<Parent<'a>>,
    /// What a snapshot backup's actions read (`Some` for a `snapshotVolumes` method).
    pub snapshot: Option<SnapshotSource<'a>>,
    /// A Continuous backup: its backupData is a long-running archiver.
    pub continuous: bool,
    /// The env the archiver adds (`DP_ARCHIVE_INTERVAL`, `DP_TTL_SECONDS`), for continuous backups.
    pub archiver_env: Vec<k8s_openapi::api::core::v1::EnvVar>,
}

/// The claims, volumes and classes the snapshot actions are built from.
#[derive(Debug, Clone, Copy)]
pub(super) struct SnapshotSource<'a> {
    pub claims: &'a [k8s_openapi::api::core::v1::PersistentVolumeClaim],
    pub inputs: &'a snapshot::Inputs,
    /// The snapshots are copied into the deduplicating repository (§K2.5a).
    pub moving: bool,
}

/// Whether a snapshot backup copies its snapshots into the repository: decided when it
/// starts (the policy's annotation, §K2.5a) and read back from `status.kopiaRepoPath` after.
fn moves_data(backup: &Backup, policy: &BackupPolicy, method: &BackupMethod) -> bool {
    let status = backup.status.as_ref();
    let started = status
        .and_then(|s| s.phase)
        .is_some_and(|p| p != cairn_api::backup::BackupPhase::New);
    if started {
        return status.and_then(|s| s.kopia_repo_path.as_ref()).is_some();
    }
    snapshot::data_movement(policy, method)
}

/// Resolves policy, method, ActionSet, repository and targets (New-phase checks of §1.2).
pub(super) fn resolve(o: &Observed) -> Result<Request<'_>, Problem> {
    let backup = &o.backup;
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
    // A snapshot method's ActionSet is optional: it only brings preBackup/postBackup hooks.
    let actionset = match o.actionset.as_ref() {
        Some(actionset) => Some(actionset),
        None if snapshot && actionset_name.is_empty() => None,
        None => {
            return Err(Problem::Fail(format!(
                "actionsets.dataprotection.kubeblocks.io \"{actionset_name}\" not found"
            )));
        }
    };
    let continuous = actionset.is_some_and(|a| a.spec.backup_type == BackupType::Continuous);
    if continuous {
        check_continuous(o)?;
    }
    if let Some(actionset) = actionset {
        check_parameters(backup, actionset).map_err(|reason| {
            Problem::Fail(format!(
                "fails to validate parameters with actionset {actionset_name}: {reason}"
            ))
        })?;
    }
    let moving = snapshot && moves_data(backup, policy, method);
    let stored = if moving {
        // Its snapshots are copied into the policy's deduplicating repository (§K2.5a).
        snapshot::check_method(method).map_err(|err| Problem::Fail(err.to_string()))?;
        Some(resolve_storage(o, policy, method, BackupType::Full, true)?)
    } else if snapshot {
        // A snapshot backup stores nothing in a repository (§K2.5).
        snapshot::check_method(method).map_err(|err| Problem::Fail(err.to_string()))?;
        None
    } else {
        let actionset = actionset.ok_or_else(|| {
            Problem::Fail(format!(
                "actionsets.dataprotection.kubeblocks.io \"{actionset_name}\" not found"
            ))
        })?;
        Some(resolve_storage(
            o,
            policy,
            method,
            actionset.spec.backup_type,
            false,
        )?)
    };
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
        .entry(well_known::label::MANAGED_BY.into())
        .or_insert(well_known::label::MANAGED_BY_DATA_PROTECTION.into());
    // Snapshot backups are Full whatever their ActionSet says (§K2.5).
    let backup_type = match (snapshot, actionset) {
        (false, Some(actionset)) => actionset.spec.backup_type,
        _ => BackupType::Full,
    };
    labels.insert(
        well_known::label::BACKUP_TYPE.into(),
        format!("{backup_type:?}"),
    );
    labels.insert(well_known::label::BACKUP_POLICY.into(), policy_name.clone());
    let stored = stored.unwrap_or_default();
    if let Some(repo) = stored.repo {
        let repo_name = repo.metadata.name.clone().unwrap_or_default();
        labels.insert(well_known::label::BACKUP_REPO.into(), repo_name);
    }
    Ok(Request {
        target_list: targets::uses_target_list(policy, method),
        policy,
        method,
        actionset,
        repo: stored.repo,
        access: stored.access,
        targets: resolved,
        labels,
        root_path: stored.root_path,
        backup_path: stored.backup_path,
        encryption: stored.encryption,
        passphrase: stored.passphrase,
        kopia_repo_path: stored.kopia_repo_path,
        parent: stored.parent,
        snapshot: snapshot.then_some(SnapshotSource {
            claims: &o.claims,
            inputs: &o.snapshot,
            moving,
        }),
        continuous,
        archiver_env: if continuous {
            continuous::archiver_env(o)
        } else {
            Vec::new()
        },
    })
}

/// Where a file backup's data goes: its repository, how agents reach it, its paths, its
/// encryption and, for a chain, its parent and base.
#[derive(Default)]
struct Stored<'a> {
    repo: Option<&'a BackupRepo>,
    access: Option<&'a RepoAccess>,
    root_path: String,
    backup_path: String,
    encryption: Option<&'a EncryptionConfig>,
    passphrase: Option<String>,
    kopia_repo_path: Option<String>,
    parent: Option<Parent<'a>>,
}

/// The storage side of a file backup (§1.2 New steps 5-7, §K5.4).
fn resolve_storage<'a>(
    o: &'a Observed,
    policy: &'a BackupPolicy,
    method: &'a BackupMethod,
    backup_type: BackupType,
    always_dedup: bool,
) -> Result<Stored<'a>, Problem> {
    let backup = &o.backup;
    let namespace = backup.metadata.namespace.clone().unwrap_or_default();
    let policy_name = &backup.spec.backup_policy_name;
    if let Some(Err(reason)) = &o.encryption_passphrase {
        return Err(Problem::Fail(format!(
            "failed to validate backupPolicy's encryption config: {reason}"
        )));
    }
    let repo = repo::resolve(backup, policy, &o.repos).map_err(Problem::Fail)?;
    let repo_name = repo.metadata.name.clone().unwrap_or_default();
    let parent = parent::resolve(&parent::Query {
        backup,
        backup_type,
        method,
        policy: policy_name,
        repo: &repo_name,
        backups: &o.backups,
        encryption_usable: &|config| passphrase_for(o, Some(config)).is_some_and(|p| p.is_ok()),
    })
    .map_err(Problem::Fail)?;
    // A chain keeps the encryption of its parent (§1.2 New step 10), else the policy's.
    let encryption: Option<&EncryptionConfig> = match &parent {
        Some(parent) => parent.encryption(),
        None => policy.spec.encryption_config.as_ref(),
    };
    let passphrase = match passphrase_for(o, encryption) {
        None => None,
        Some(Ok(passphrase)) => Some(passphrase),
        Some(Err(reason)) => {
            return Err(Problem::Fail(format!(
                "failed to validate the parent backup's encryption config: {reason}"
            )));
        }
    };
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
    let root_path = path::root_path(
        repo.spec.path_prefix.as_deref().unwrap_or_default(),
        &namespace,
        policy.spec.path_prefix.as_deref().unwrap_or_default(),
    );
    let backup_path = path::backup_path(
        &root_path,
        backup.metadata.name.as_deref().unwrap_or_default(),
    );
    // Where the data goes is decided once, when the backup starts; a chain stays in the
    // repository of its parent, as it keeps its parent's encryption (§K2.11).
    let recorded = backup
        .status
        .as_ref()
        .and_then(|s| s.kopia_repo_path.clone());
    let kopia_repo_path = match (recorded, &parent) {
        (Some(recorded), _) => Some(recorded),
        (None, Some(parent)) => parent.kopia_repo_path().map(str::to_string),
        (None, None) => (always_dedup || policy.spec.use_kopia.unwrap_or(false))
            .then(|| path::kopia_repo_path(&root_path)),
    };
    Ok(Stored {
        repo: Some(repo),
        access: Some(access),
        root_path,
        backup_path,
        encryption,
        passphrase,
        kopia_repo_path,
        parent,
    })
}

/// A Continuous backup is only made by a BackupSchedule, which must be Available (§1.2 New
/// step 7).
fn check_continuous(o: &Observed) -> Result<(), Problem> {
    let Some(name) = continuous::schedule_label(o) else {
        return Err(Problem::Fail(
            "continuous backup is only allowed to be created by backupSchedule".into(),
        ));
    };
    let Some(schedule) = &o.schedule else {
        return Err(Problem::Fail(format!(
            "backupschedules.dataprotection.kubeblocks.io \"{name}\" not found"
        )));
    };
    let phase = schedule.status.as_ref().and_then(|s| s.phase);
    if phase != Some(BackupSchedulePhase::Available) {
        return Err(Problem::Wait(format!(
            "waiting for backup schedule {name} to be Available (it is {})",
            phase.map_or("not reconciled yet".to_string(), |p| format!("{p:?}"))
        )));
    }
    Ok(())
}

/// The passphrase of `config`: the policy's (read for every backup) or one of an older backup's
/// (read for chains); `None` without encryption.
pub(super) fn passphrase_for(
    o: &Observed,
    config: Option<&EncryptionConfig>,
) -> Option<Result<String, String>> {
    let config = config?;
    let policy_config = o
        .policy
        .as_ref()
        .and_then(|p| p.spec.encryption_config.as_ref());
    let selector = &config.pass_phrase_secret_key_ref;
    if policy_config.map(|c| &c.pass_phrase_secret_key_ref) == Some(selector)
        && let Some(found) = &o.encryption_passphrase
    {
        return Some(found.clone());
    }
    Some(
        o.passphrases
            .get(&(selector.name.clone(), selector.key.clone()))
            .cloned()
            .unwrap_or_else(|| {
                Err(format!(
                    "the passphrase in secret {}/{} was not read",
                    selector.name, selector.key
                ))
            }),
    )
}

/// KubeBlocks' parameter checks (§3.4): every parameter declared in `withParameters`; then each
/// value against its `parametersSchema` property (type, enum, bounds, pattern), which KubeBlocks
/// does not check (§K8 S23).
fn check_parameters(backup: &Backup, actionset: &ActionSet) -> Result<(), String> {
    let parameters = backup.spec.parameters.clone().unwrap_or_default();
    let actionset_name = actionset.metadata.name.clone().unwrap_or_default();
    let declared = actionset
        .spec
        .backup
        .as_ref()
        .and_then(|b| b.with_parameters.clone())
        .unwrap_or_default();
    let schema = actionset
        .spec
        .parameters_schema
        .as_ref()
        .and_then(|s| s.open_api_v3_schema.as_ref());
    let problems = cairn_api::validate::parameters(
        &parameters,
        &declared,
        schema,
        &actionset_name,
        "spec.parameters",
        "",
    );
    match problems.into_iter().next() {
        None => Ok(()),
        Some(problem) => Err(problem.message),
    }
}

impl Request<'_> {
    /// The ordered actions of the `index`th pod of `target` (preBackup, backupData, postBackup).
    pub(super) fn pod_actions(
        &self,
        backup: &Backup,
        target: &ResolvedTarget,
        pod: &Pod,
        index: usize,
    ) -> Result<Vec<PlannedAction>, String> {
        let ctx = BackupContext {
            backup,
            policy: self.policy,
            method: self.method,
            actionset: self.actionset,
            backup_path: &self.backup_path,
            root_path: &self.root_path,
            labels: &self.labels,
            chain: self.parent.as_ref().map(|p| ChainEnv {
                parent: p.parent_name(),
                base: &p.base,
            }),
            mount_repo: self
                .access
                .and_then(|a| a.mount_claim.as_ref())
                .map(|claim| (claim.as_str(), repo::MOUNT_PATH)),
            kopia_repo_path: self.kopia_repo_path.as_deref(),
        };
        match &self.snapshot {
            None => actions::pod_actions(&ctx, target, pod, index).map_err(|err| err.to_string()),
            Some(source) => {
                let snapshot_ctx = snapshot::Context {
                    backup,
                    policy: self.policy,
                    method: self.method,
                    labels: &self.labels,
                    claims: source.claims,
                    inputs: source.inputs,
                };
                let main = snapshot::action(&snapshot_ctx, target, pod, index)
                    .map_err(|err| err.to_string())?;
                let mut list = actions::with_hooks(&ctx, target, pod, index, main)
                    .map_err(|err| err.to_string())?;
                // The copy into the repository comes after the postBackup hooks (a freeze
                // is released as soon as the snapshots are taken, §K2.5a).
                if source.moving {
                    list.push(snapshot::move_action(
                        &snapshot_ctx,
                        target,
                        pod,
                        index,
                        &self.backup_path,
                    ));
                }
                Ok(list)
            }
        }
    }

    /// Writes what was resolved into the status: the targets and their pods, the path, the
    /// copied method, the repository, the encryption and one `New` entry per action.
    pub(super) fn record(&self, status: &mut BackupStatus, planned: &[(PlannedAction, String)]) {
        let recorded_targets: Vec<BackupStatusTarget> = self
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
        if self.target_list {
            status.targets = Some(recorded_targets);
        } else {
            status.target = recorded_targets.into_iter().next();
        }
        status.format_version = Some("0.1.0".into());
        status.path = (!self.backup_path.is_empty()).then(|| self.backup_path.clone());
        status.backup_method = Some(self.method.clone());
        status.backup_repo_name = self.repo.and_then(|r| r.metadata.name.clone());
        status.encryption_config = self.encryption.cloned();
        status.kopia_repo_path = self.kopia_repo_path.clone();
        status.parent_backup_name = self.parent.as_ref().map(|p| p.parent_name().to_string());
        status.base_backup_name = self.parent.as_ref().map(|p| p.base.clone());
        status.actions = Some(
            planned
                .iter()
                .map(|(action, pod)| ActionStatus {
                    name: Some(action.name.clone()),
                    target_pod_name: Some(pod.clone()),
                    phase: Some(ActionPhase::New),
                    action_type: Some(if self.continuous && action.backup_data {
                        ActionType::StatefulSet
                    } else {
                        action_type(action)
                    }),
                    ..Default::default()
                })
                .collect(),
        );
    }

    /// The labels the Backup lacks or carries with another value.
    pub(super) fn label_changes(&self, backup: &Backup) -> BTreeMap<String, Option<String>> {
        let current = backup.metadata.labels.clone().unwrap_or_default();
        self.labels
            .iter()
            .filter(|(k, v)| current.get(*k) != Some(*v))
            .map(|(k, v)| (k.clone(), Some(v.clone())))
            .collect()
    }
}

/// Waits for a Mount repository's PVC in the Backup's namespace, labelling the Backup so that
/// the repository's reconciler creates it (KubeBlocks' `wait-repo-preparation`).
pub(super) fn wait_for_repo_claim(o: &Observed, repo: &str, claim: &str) -> Plan<BackupStatus> {
    let namespace = o.backup.metadata.namespace.as_deref().unwrap_or_default();
    let labels = action::access::claim_wait_labels(o.backup.metadata.labels.as_ref(), repo);
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
