//! Which repository a backup goes to (kubeblocks-semantics §5.4) and how agents reach it.

use cairn_api::backup::Backup;
use cairn_api::backup_policy::BackupPolicy;
use cairn_api::backup_repo::{BackupRepo, BackupRepoPhase};
use cairn_proto::agent::v1 as pb;

use super::{LABEL_BACKUP_REPO, Problem};

/// Annotation that marks the default repository.
pub const DEFAULT_REPO_ANNOTATION: &str = "dataprotection.kubeblocks.io/is-default-repo";
/// Where a Mount repository's PVC appears in action containers.
pub const MOUNT_PATH: &str = "/backupdata";

/// How agents reach a repository; rendered by the BackupRepo reconciler, never stored in a
/// workload namespace. Its `Debug` output hides the configuration, which holds credentials.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct RepoAccess {
    pub repo_name: String,
    /// Rendered datasafed configuration (Tool repositories).
    pub datasafed_config: String,
    /// A directory on the nodes holding the repository (local repositories in standalone mode).
    pub local_path: String,
    /// The repository PVC name in the backup's namespace (Mount repositories).
    pub mount_claim: Option<String>,
}

impl std::fmt::Debug for RepoAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RepoAccess")
            .field("repo_name", &self.repo_name)
            .field("datasafed_config", &"<redacted>")
            .field("local_path", &self.local_path)
            .field("mount_claim", &self.mount_claim)
            .finish()
    }
}

impl RepoAccess {
    /// The part of a storage grant that comes from the repository, for an owner in
    /// `namespace` (a Mount repository is reached through its PVC in that namespace).
    pub fn grant(&self, namespace: &str) -> pb::StorageGrant {
        pb::StorageGrant {
            repo_name: self.repo_name.clone(),
            datasafed_config: self.datasafed_config.clone(),
            local_path: self.local_path.clone(),
            mount_claim: self.mount_claim.as_ref().map(|claim| pb::MountClaim {
                namespace: namespace.to_string(),
                name: claim.clone(),
            }),
            ..Default::default()
        }
    }
}

/// The repository for a backup: its `backup-repo-name` label, else the policy's
/// `backupRepoName`, else the single Ready default repository.
pub fn resolve<'r>(
    backup: &Backup,
    policy: &BackupPolicy,
    repos: &'r [BackupRepo],
) -> Result<&'r BackupRepo, String> {
    let named = backup
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(LABEL_BACKUP_REPO))
        .filter(|n| !n.is_empty())
        .cloned()
        .or_else(|| {
            policy
                .spec
                .backup_repo_name
                .clone()
                .filter(|n| !n.is_empty())
        });
    if let Some(name) = named {
        return repos
            .iter()
            .find(|r| r.metadata.name.as_deref() == Some(name.as_str()))
            .ok_or_else(|| format!("backup repo {name} not found"));
    }
    let defaults: Vec<&BackupRepo> = repos
        .iter()
        .filter(|r| is_default(r))
        .filter(|r| r.status.as_ref().and_then(|s| s.phase) == Some(BackupRepoPhase::Ready))
        .collect();
    match defaults.as_slice() {
        [] => Err("no default BackupRepo found".into()),
        [one] => Ok(one),
        [a, b, ..] => Err(format!(
            "multiple default BackupRepo found, both {} and {} are default",
            a.metadata.name.as_deref().unwrap_or_default(),
            b.metadata.name.as_deref().unwrap_or_default()
        )),
    }
}

/// Whether a repository carries the default annotation.
pub fn is_default(repo: &BackupRepo) -> bool {
    repo.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(DEFAULT_REPO_ANNOTATION))
        .is_some_and(|v| v == "true")
}

/// Ready: go. Pre-checking or new: wait. Failed or deleting: fail.
pub(super) fn check_ready(repo: &BackupRepo) -> Result<(), Problem> {
    let name = repo.metadata.name.clone().unwrap_or_default();
    match repo.status.as_ref().and_then(|s| s.phase) {
        Some(BackupRepoPhase::Ready) => Ok(()),
        None | Some(BackupRepoPhase::PreChecking) => Err(Problem::Wait(format!(
            "waiting for backup repository {name} to pass its pre-check"
        ))),
        Some(BackupRepoPhase::Failed) | Some(BackupRepoPhase::Deleting) => Err(Problem::Fail(
            format!("the backup repository {name} is not ready"),
        )),
    }
}
