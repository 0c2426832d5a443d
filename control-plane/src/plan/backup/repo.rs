//! Which repository a backup goes to (ARCHITECTURE.md §K5.4); how agents reach it is
//! [`crate::plan::action::access`].

use cairn_api::backup::Backup;
use cairn_api::backup_policy::BackupPolicy;
use cairn_api::backup_repo::{BackupRepo, BackupRepoPhase};
use cairn_api::well_known;

/// Where a Mount repository's PVC appears in action containers.
pub const MOUNT_PATH: &str = "/backupdata";

/// How agents reach a repository (kept here for the callers that name it by this path).
pub use crate::plan::action::RepoAccess;

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
        .and_then(|l| l.get(well_known::label::BACKUP_REPO))
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
        .and_then(|a| a.get(well_known::annotation::DEFAULT_REPO))
        .is_some_and(|v| v == "true")
}
