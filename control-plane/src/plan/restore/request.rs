//! Resolving what a Restore restores: the source Backup, its ActionSet, repository and recorded
//! target, with KubeBlocks' checks and messages (ARCHITECTURE.md §K1.5 "New", §K4.1).

use std::sync::LazyLock;

use cairn_api::actionset::{ActionSet, ActionSetSpec, BackupType, RestoreActionSpec};
use cairn_api::backup::{Backup, BackupPhase, BackupStatus, BackupStatusTarget};
use cairn_api::backup_policy::BackupMethod;
use cairn_api::restore::{DataRestorePolicy, RequiredPolicyForAllPodSelection};
use cairn_api::target::PodSelectionStrategy;
use cairn_api::well_known::conditions::restore::{
    CONDITION_CHECK_BACKUP_REPO, CONDITION_VALIDATION_PASSED, REASON_REPO_FAILED,
    REASON_VALIDATE_FAILED, REASON_WAIT_FOR_REPO,
};

use jiff::Timestamp;

use super::Observed;
use crate::plan::action::access::{self, AccessProblem, RepoAccess};
use crate::plan::backup::chain::{self, Links};
use crate::plan::backup::path;

/// Why the restore cannot go on now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// Fatal: the Restore fails, with this condition (type, reason) carrying the message.
    Fail {
        condition: &'static str,
        reason: &'static str,
        message: String,
    },
    /// Not yet: condition `CheckBackupRepo` gets this reason and message; look again later.
    Wait {
        reason: &'static str,
        message: String,
    },
    /// A Mount repository has no PVC in the Restore's namespace yet: the Restore is labelled
    /// `wait-repo-preparation=true` so that the repository's reconciler creates it (§5.3 step 9).
    WaitForRepoClaim { repo: String, claim: String },
}

impl Problem {
    pub(super) fn repo(message: String) -> Self {
        Problem::Fail {
            condition: CONDITION_CHECK_BACKUP_REPO,
            reason: REASON_REPO_FAILED,
            message,
        }
    }

    pub(super) fn invalid(message: String) -> Self {
        Problem::Fail {
            condition: CONDITION_VALIDATION_PASSED,
            reason: REASON_VALIDATE_FAILED,
            message,
        }
    }
}

/// The resolved inputs of a restore.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    pub backup: &'a Backup,
    pub backup_name: String,
    pub actionset: &'a ActionSet,
    /// The ActionSet's `restore` part (empty when it has none: nothing to run).
    pub spec: RestoreActionSpec,
    /// The copy of the backup method the Backup recorded.
    pub method: BackupMethod,
    /// The target the backup recorded and this restore reads.
    pub target: BackupStatusTarget,
    /// The backup's `status.path` (empty for a volume snapshot backup: it has no files).
    pub backup_path: String,
    /// Its parent, shared with sibling backups (`DP_BACKUP_ROOT_PATH`; empty with no path).
    pub root_path: String,
    /// The backup's repository; `None` for a volume snapshot backup, which has none.
    pub access: Option<&'a RepoAccess>,
    pub passphrase: Option<String>,
    /// An Incremental backup's base full and intermediate incrementals (oldest first); a
    /// Continuous backup's base (no ancestors: an Incremental base is its own set).
    pub chain: Option<Links<'a>>,
    /// `spec.restoreTime`, parsed (`DP_RESTORE_TIME`, §3.2).
    pub restore_time: Option<Timestamp>,
}

/// The ActionSet of a snapshot method that names none: Full, with no restore actions (its
/// claims are made from the snapshots and nothing runs on them).
pub static SNAPSHOT_ONLY: LazyLock<ActionSet> = LazyLock::new(|| {
    ActionSet::new(
        "",
        ActionSetSpec {
            backup_type: BackupType::Full,
            parameters_schema: None,
            env: None,
            env_from: None,
            backup: None,
            restore: None,
        },
    )
});

impl Request<'_> {
    /// A volume snapshot backup (`snapshotVolumes: true`): its claims are made from its
    /// VolumeSnapshots ([`super::snapshot`]).
    pub fn is_snapshot(&self) -> bool {
        self.method.snapshot_volumes == Some(true)
    }

    /// Strategy of the recorded target (default Any).
    pub fn strategy(&self) -> PodSelectionStrategy {
        self.target
            .target
            .pod_selector
            .as_ref()
            .and_then(|s| s.strategy)
            .unwrap_or(PodSelectionStrategy::Any)
    }

    /// The pods the backup read for its target, in order.
    pub fn source_pods(&self) -> &[String] {
        self.target
            .selected_target_pods
            .as_deref()
            .unwrap_or_default()
    }

    /// The backup pod whose data the `index`th restored instance gets (§4.2): none for strategy
    /// Any; for strategy All the `OneToMany` source or the `index`th recorded pod (`OneToOne`).
    /// `Ok(None)`: no source for this index, so no job. `field` names the policy in messages.
    pub fn source_pod(
        &self,
        policy: Option<&RequiredPolicyForAllPodSelection>,
        index: usize,
        field: &str,
    ) -> Result<Option<Option<String>>, String> {
        if self.strategy() == PodSelectionStrategy::Any {
            return Ok(Some(None));
        }
        let policy = policy.ok_or_else(|| {
            format!(
                "{field} is required: backup \"{}\" read its target with pod selection strategy All",
                self.backup_name
            )
        })?;
        match policy.data_restore_policy {
            DataRestorePolicy::OneToMany => {
                let pod = policy
                    .source_of_one_to_many
                    .as_ref()
                    .map(|s| s.target_pod_name.clone())
                    .filter(|p| !p.is_empty())
                    .ok_or_else(|| {
                        format!("{field}.sourceOfOneToMany.targetPodName is required with dataRestorePolicy OneToMany")
                    })?;
                if !self.source_pods().contains(&pod) {
                    return Err(format!(
                        "{field}.sourceOfOneToMany.targetPodName {pod:?} is not a pod backup \"{}\" read ({})",
                        self.backup_name,
                        self.source_pods().join(", ")
                    ));
                }
                Ok(Some(Some(pod)))
            }
            DataRestorePolicy::OneToOne => Ok(self.source_pods().get(index).cloned().map(Some)),
        }
    }

    /// The prefixes the restore's actions may read: the backups' directory and the paths of the
    /// chain's links (which may lie elsewhere when a prefix changed).
    pub fn read_only(&self) -> Vec<String> {
        let mut prefixes: Vec<String> = Some(self.root_path.clone())
            .filter(|p| !p.is_empty())
            .into_iter()
            .collect();
        let links = self
            .chain
            .iter()
            .flat_map(|c| std::iter::once(c.base).chain(c.ancestors.iter().copied()));
        for link in links {
            if let Some(path) = link.status.as_ref().and_then(|s| s.path.clone())
                && !path.is_empty()
                && !prefixes.contains(&path)
            {
                prefixes.push(path);
            }
        }
        prefixes
    }

    /// `DP_TARGET_RELATIVE_PATH` for a source pod (the pod only for strategy All).
    pub fn relative_path(&self, source_pod: Option<&str>) -> String {
        path::target_relative_path(
            self.target.target.name.as_deref().unwrap_or_default(),
            self.strategy(),
            source_pod.unwrap_or_default(),
        )
    }
}

/// The annotation of a Backup naming the namespaces whose Restores may read it (comma-separated
/// names, or `*` for every namespace): a Restore in another namespace than its Backup needs the
/// source side's consent (docs/API.md §9).
pub const RESTORE_ALLOWED_NAMESPACES: &str = "cairn.io/restore-allowed-namespaces";

/// Ok when the Restore is in the Backup's namespace, or the source side allows restores into
/// the Restore's namespace: the Backup's annotation, or `namespace_grant` (the same annotation
/// on the Backup's namespace, for all its Backups); otherwise what is missing.
pub fn consent(
    restore: &cairn_api::Restore,
    backup: &Backup,
    namespace_grant: Option<&str>,
) -> Result<(), String> {
    let into = restore.metadata.namespace.as_deref().unwrap_or("default");
    let from = backup.metadata.namespace.as_deref().unwrap_or("default");
    if into == from {
        return Ok(());
    }
    let grants = |list: &str| {
        list.split(',')
            .map(str::trim)
            .any(|n| n == "*" || n == into)
    };
    let by_backup = backup
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(RESTORE_ALLOWED_NAMESPACES))
        .is_some_and(|list| grants(list));
    if by_backup || namespace_grant.is_some_and(grants) {
        return Ok(());
    }
    let name = backup.metadata.name.as_deref().unwrap_or_default();
    Err(format!(
        "backup {from}/{name} does not allow restores into namespace {into:?}: the source side consents by annotating the Backup or its namespace {from} with {RESTORE_ALLOWED_NAMESPACES}={into} (comma-separated namespaces, or *)"
    ))
}

/// Resolves and checks everything; the repository checks come first (KubeBlocks' order).
pub fn resolve(o: &Observed) -> Result<Request<'_>, Problem> {
    let restore = &o.restore;
    let backup_ref = &restore.spec.backup;
    let backup_name = backup_ref.name.clone();
    let backup = o.backup.as_ref().ok_or_else(|| {
        Problem::repo(format!(
            "backups.dataprotection.kubeblocks.io \"{backup_name}\" not found"
        ))
    })?;
    consent(restore, backup, o.source_namespace_grant.as_deref()).map_err(Problem::invalid)?;
    let status = backup.status.clone().unwrap_or_default();
    let repo_name = status.backup_repo_name.clone().filter(|r| !r.is_empty());
    // A volume snapshot backup keeps its data in VolumeSnapshots, not in a repository.
    let snapshot = status
        .backup_method
        .as_ref()
        .is_some_and(|m| m.snapshot_volumes == Some(true));
    let access = match repo_name {
        None if snapshot => None,
        None => {
            return Err(Problem::repo(format!(
                "backup \"{backup_name}\" records no backup repository (status.backupRepoName is empty)"
            )));
        }
        Some(repo_name) => Some(repo_access(o, &repo_name)?),
    };
    resolve_rest(o, backup, backup_name, status, access)
}

/// The rendered access of the backup's repository, or why the Restore waits or fails.
fn repo_access<'a>(o: &'a Observed, repo_name: &str) -> Result<&'a RepoAccess, Problem> {
    let repo = o
        .repos
        .iter()
        .find(|r| r.metadata.name.as_deref() == Some(repo_name))
        .ok_or_else(|| Problem::repo(format!("backup repo {repo_name} not found")))?;
    access::resolve(repo, o.repo_access.as_ref(), &o.claims).map_err(|problem| {
        let reason = match problem {
            AccessProblem::PreChecking { .. } | AccessProblem::NotRendered { .. } => {
                REASON_WAIT_FOR_REPO
            }
            // A failed repository may recover: the Restore waits for it (with the reason saying
            // it failed) where a Backup fails.
            AccessProblem::NotReady { .. } => REASON_REPO_FAILED,
            AccessProblem::NoClaim { repo, claim } => {
                return Problem::WaitForRepoClaim { repo, claim };
            }
        };
        Problem::Wait {
            reason,
            message: problem.to_string(),
        }
    })
}

/// The checks after the repository's: the method, ActionSet, parameters, phase, chain, path,
/// target and key.
fn resolve_rest<'a>(
    o: &'a Observed,
    backup: &'a Backup,
    backup_name: String,
    status: BackupStatus,
    access: Option<&'a RepoAccess>,
) -> Result<Request<'a>, Problem> {
    let restore = &o.restore;
    let backup_ref = &restore.spec.backup;
    let method = status.backup_method.clone().ok_or_else(|| {
        Problem::invalid(format!(
            "backup \"{backup_name}\" has no status.backupMethod"
        ))
    })?;
    let snapshot = method.snapshot_volumes == Some(true);
    let actionset_name = method.action_set_name.clone().unwrap_or_default();
    let actionset = match o.actionset.as_ref() {
        Some(actionset) => actionset,
        // A snapshot method's ActionSet is optional (it only brings hooks, §K2.5).
        None if snapshot && actionset_name.is_empty() => &SNAPSHOT_ONLY,
        None => {
            return Err(Problem::invalid(format!(
                "actionsets.dataprotection.kubeblocks.io \"{actionset_name}\" not found"
            )));
        }
    };
    let spec = actionset.spec.restore.clone().unwrap_or_default();
    check_parameters(o, actionset, &spec)?;
    let backup_type = actionset.spec.backup_type;
    if backup_type != BackupType::Continuous && status.phase != Some(BackupPhase::Completed) {
        return Err(Problem::invalid(format!(
            "phase of backup \"{backup_name}\" is not completed"
        )));
    }
    let chain = match backup_type {
        // One set: the incremental with its base and ancestors; its ActionSet pulls them.
        BackupType::Incremental => Some(chain::walk(backup, &o.backups).map_err(|problem| {
            Problem::invalid(format!(
                "the chain of incremental backup \"{backup_name}\" is broken: {problem}"
            ))
        })?),
        // Full and Selective restore alone; the sets of Continuous and Differential backups
        // are added by `sets::resolve`.
        _ => None,
    };
    let restore_time = restore_time(restore)?;
    let backup_path = match status.path.clone().filter(|p| !p.is_empty()) {
        Some(path) => path,
        // A snapshot backup has no files (unless its data was also moved to a repository).
        None if snapshot => String::new(),
        None => {
            return Err(Problem::invalid(format!(
                "backup \"{backup_name}\" has no status.path"
            )));
        }
    };
    let root_path = if backup_path.is_empty() {
        String::new()
    } else {
        parent(&backup_path)
    };
    let target = recorded_target(
        backup,
        &backup_name,
        backup_ref.source_target_name.as_deref(),
    )
    .map_err(Problem::invalid)?;
    let passphrase = match (&status.encryption_config, &o.encryption_passphrase) {
        (None, _) => None,
        (Some(_), Some(Ok(passphrase))) => Some(passphrase.clone()),
        (Some(_), Some(Err(reason))) => {
            return Err(Problem::invalid(format!(
                "failed to read the encryption key of backup \"{backup_name}\": {reason}"
            )));
        }
        (Some(_), None) => {
            return Err(Problem::invalid(format!(
                "backup \"{backup_name}\" is encrypted but its encryption key was not found"
            )));
        }
    };
    Ok(Request {
        backup,
        backup_name,
        actionset,
        spec,
        method,
        target,
        backup_path,
        root_path,
        access,
        passphrase,
        chain,
        restore_time,
    })
}

/// `spec.restoreTime` parsed (`YYYY-MM-DDTHH:MM:SSZ`); `None` when absent or empty.
fn restore_time(restore: &cairn_api::Restore) -> Result<Option<Timestamp>, Problem> {
    let Some(text) = restore
        .spec
        .restore_time
        .as_deref()
        .filter(|t| !t.is_empty())
    else {
        return Ok(None);
    };
    cairn_api::parse::restore_time::parse(text)
        .map(Some)
        .map_err(|err| Problem::invalid(format!("spec.restoreTime: {err}")))
}

/// KubeBlocks' parameter checks (§3.4) against `restore.withParameters`.
fn check_parameters(
    o: &Observed,
    actionset: &ActionSet,
    spec: &RestoreActionSpec,
) -> Result<(), Problem> {
    let name = actionset.metadata.name.clone().unwrap_or_default();
    let params = o.restore.spec.parameters.clone().unwrap_or_default();
    let declared = spec.with_parameters.clone().unwrap_or_default();
    let schema = actionset
        .spec
        .parameters_schema
        .as_ref()
        .and_then(|s| s.open_api_v3_schema.as_ref());
    let prefix = format!("fails to validate parameters with actionset {name}: ");
    let problems = cairn_api::validate::parameters(
        &params,
        &declared,
        schema,
        &name,
        "spec.parameters",
        &prefix,
    );
    match problems.into_iter().next() {
        None => Ok(()),
        Some(problem) => Err(Problem::invalid(problem.message)),
    }
}

/// The target the backup recorded: its only one, or the one named `sourceTargetName` among
/// several. The name the Restore gives is only used to choose (ARCHITECTURE.md §K8 S20).
pub(super) fn recorded_target(
    backup: &Backup,
    backup_name: &str,
    source_target_name: Option<&str>,
) -> Result<BackupStatusTarget, String> {
    let status = backup.status.clone().unwrap_or_default();
    if let Some(target) = status.target {
        return Ok(target);
    }
    let targets = status.targets.unwrap_or_default();
    let names = || {
        targets
            .iter()
            .map(|t| t.target.name.clone().unwrap_or_default())
            .collect::<Vec<_>>()
            .join(", ")
    };
    match (targets.as_slice(), source_target_name.filter(|n| !n.is_empty())) {
        ([], _) => Err(format!(
            "backup \"{backup_name}\" records no target (status.target and status.targets are empty)"
        )),
        ([only], _) => Ok(only.clone()),
        (_, None) => Err(format!(
            "backup \"{backup_name}\" has several targets ({}); set spec.backup.sourceTargetName to one of them",
            names()
        )),
        (_, Some(wanted)) => targets
            .iter()
            .find(|t| t.target.name.as_deref() == Some(wanted))
            .cloned()
            .ok_or_else(|| {
                format!(
                    "spec.backup.sourceTargetName {wanted:?} is not a target of backup \"{backup_name}\" (targets: {})",
                    names()
                )
            }),
    }
}

/// Go's `filepath.Dir` for the absolute paths backups record.
pub(super) fn parent(path: &str) -> String {
    let trimmed = path.trim_end_matches('/');
    match trimmed.rfind('/') {
        Some(0) | None => "/".into(),
        Some(i) => trimmed[..i].to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::parent;

    #[test]
    fn the_root_path_is_the_parent_of_the_backup_path() {
        assert_eq!(parent("/prod/ns/pg/b1"), "/prod/ns/pg");
        assert_eq!(parent("/ns/b1/"), "/ns");
        assert_eq!(parent("/b1"), "/");
        assert_eq!(parent("b1"), "/");
    }
}

#[cfg(test)]
mod consent_tests {
    use super::super::tests::{now, observed, step};
    use super::RESTORE_ALLOWED_NAMESPACES;
    use cairn_api::restore::RestorePhase;
    use cairn_api::well_known::conditions::restore::CONDITION_VALIDATION_PASSED as VALIDATION_PASSED;

    fn failure(o: &mut super::super::Observed) -> Option<String> {
        let plan = step(o, now());
        let status = plan.status?;
        if status.phase != Some(RestorePhase::Failed) {
            return None;
        }
        status
            .conditions
            .unwrap_or_default()
            .into_iter()
            .find(|c| c.type_ == VALIDATION_PASSED)
            .map(|c| c.message)
    }

    #[test]
    fn a_restore_from_another_namespace_fails_without_the_sources_consent() {
        let mut o = observed();
        o.restore.metadata.namespace = Some("team-b".into());
        let message = failure(&mut o).expect("the restore fails");
        assert!(
            message.contains("backup default/b1 does not allow restores into namespace \"team-b\"")
                && message.contains(&format!("{RESTORE_ALLOWED_NAMESPACES}=team-b")),
            "{message}"
        );
    }

    #[test]
    fn the_backups_annotation_grants_named_namespaces_or_all() {
        for grant in ["team-c, team-b", "*"] {
            let mut o = observed();
            o.restore.metadata.namespace = Some("team-b".into());
            o.backup.as_mut().unwrap().metadata.annotations =
                Some([(RESTORE_ALLOWED_NAMESPACES.to_string(), grant.to_string())].into());
            assert_eq!(failure(&mut o), None, "granted by {grant:?}");
        }
        let mut o = observed();
        o.restore.metadata.namespace = Some("team-b".into());
        o.backup.as_mut().unwrap().metadata.annotations =
            Some([(RESTORE_ALLOWED_NAMESPACES.to_string(), "team-c".to_string())].into());
        assert!(failure(&mut o).is_some(), "team-c only");
    }

    #[test]
    fn the_source_namespaces_annotation_grants_every_backup_there() {
        for grant in ["team-b", "team-c,team-b", "*"] {
            let mut o = observed();
            o.restore.metadata.namespace = Some("team-b".into());
            o.source_namespace_grant = Some(grant.into());
            assert_eq!(failure(&mut o), None, "granted by the namespace: {grant:?}");
        }
        let mut o = observed();
        o.restore.metadata.namespace = Some("team-b".into());
        o.source_namespace_grant = Some("team-c".into());
        let message = failure(&mut o).expect("team-c only");
        assert!(
            message.contains("annotating the Backup or its namespace default with"),
            "the refusal names both grants: {message}"
        );
    }
}
