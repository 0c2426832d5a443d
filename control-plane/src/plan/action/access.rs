//! How agents reach a repository, and the one check that it can be used now: every planner that
//! hands an action the repository (backup, restore) resolves its access here.

use std::collections::BTreeMap;

use cairn_api::backup_repo::{BackupRepo, BackupRepoPhase};
use cairn_api::well_known;
use cairn_proto::agent::v1 as pb;
use k8s_openapi::api::core::v1::PersistentVolumeClaim;

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

/// Why a repository cannot be reached now. Each planner decides what a problem means for its
/// object (wait, or fail) and which condition says so.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccessProblem {
    /// The repository is new or its pre-check has not passed yet.
    #[error("waiting for backup repository {repo} to pass its pre-check")]
    PreChecking { repo: String },
    /// The repository failed its checks or is being deleted.
    #[error("the backup repository {repo} is not ready")]
    NotReady { repo: String },
    /// The BackupRepo reconciler has not rendered the repository's access yet.
    #[error("waiting for the access configuration of backup repository {repo}")]
    NotRendered { repo: String },
    /// A Mount repository has no PVC in the owner's namespace yet: the owner is labelled
    /// `wait-repo-preparation=true` so that the repository's reconciler creates it (§5.3 step 9).
    #[error("waiting for backup repository {repo} to create its PVC {claim}")]
    NoClaim { repo: String, claim: String },
}

/// The access to `repo` for an owner whose namespace holds `claims`, once the repository is
/// Ready, its access rendered (`rendered`, for whichever repository the shell looked up) and, for
/// a Mount repository, its PVC present in that namespace; checked in that order.
pub fn resolve<'a>(
    repo: &BackupRepo,
    rendered: Option<&'a RepoAccess>,
    claims: &[PersistentVolumeClaim],
) -> Result<&'a RepoAccess, AccessProblem> {
    let name = repo.metadata.name.clone().unwrap_or_default();
    match repo.status.as_ref().and_then(|s| s.phase) {
        Some(BackupRepoPhase::Ready) => {}
        None | Some(BackupRepoPhase::PreChecking) => {
            return Err(AccessProblem::PreChecking { repo: name });
        }
        Some(BackupRepoPhase::Failed | BackupRepoPhase::Deleting) => {
            return Err(AccessProblem::NotReady { repo: name });
        }
    }
    let access = rendered
        .filter(|a| a.repo_name == name)
        .ok_or_else(|| AccessProblem::NotRendered { repo: name.clone() })?;
    if let Some(claim) = &access.mount_claim
        && !claims
            .iter()
            .any(|c| c.metadata.name.as_deref() == Some(claim.as_str()))
    {
        return Err(AccessProblem::NoClaim {
            repo: name,
            claim: claim.clone(),
        });
    }
    Ok(access)
}

/// The labels an owner still needs while it waits for a Mount repository's PVC in its namespace
/// (`AccessProblem::NoClaim`): `backup-repo-name=<repo>` and `wait-repo-preparation=true`, which
/// make the repository's reconciler create the PVC there (ARCHITECTURE.md §K5.3 step 9).
/// Empty once the owner carries both.
pub fn claim_wait_labels(
    current: Option<&BTreeMap<String, String>>,
    repo: &str,
) -> BTreeMap<String, Option<String>> {
    [
        (well_known::label::BACKUP_REPO, repo),
        (well_known::label::WAIT_REPO_PREPARATION, "true"),
    ]
    .into_iter()
    .filter(|(key, value)| current.and_then(|c| c.get(*key)).map(String::as_str) != Some(*value))
    .map(|(key, value)| (key.to_string(), Some(value.to_string())))
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo(phase: Option<&str>) -> BackupRepo {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "dataprotection.kubeblocks.io/v1alpha1",
            "kind": "BackupRepo",
            "metadata": {"name": "repo1"},
            "spec": {"storageProviderRef": "s3", "accessMethod": "Tool", "pvReclaimPolicy": "Retain"},
            "status": {"phase": phase}
        }))
        .unwrap()
    }

    fn access(name: &str, claim: Option<&str>) -> RepoAccess {
        RepoAccess {
            repo_name: name.into(),
            mount_claim: claim.map(str::to_string),
            ..Default::default()
        }
    }

    fn claim(name: &str) -> PersistentVolumeClaim {
        PersistentVolumeClaim {
            metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn problem(
        repo: &BackupRepo,
        rendered: Option<&RepoAccess>,
        claims: &[PersistentVolumeClaim],
    ) -> String {
        match resolve(repo, rendered, claims) {
            Ok(_) => "ok".into(),
            Err(problem) => problem.to_string(),
        }
    }

    #[test]
    fn a_repository_is_usable_only_when_ready_rendered_and_its_claim_exists() {
        let tool = access("repo1", None);
        let mount = access("repo1", Some("pvc-repo1"));
        let other = access("repo2", None);
        let ready = repo(Some("Ready"));
        assert_eq!(problem(&ready, Some(&tool), &[]), "ok");
        assert_eq!(problem(&ready, Some(&mount), &[claim("pvc-repo1")]), "ok");
        assert_eq!(
            problem(&repo(None), Some(&tool), &[]),
            "waiting for backup repository repo1 to pass its pre-check"
        );
        assert_eq!(
            problem(&repo(Some("PreChecking")), Some(&tool), &[]),
            "waiting for backup repository repo1 to pass its pre-check"
        );
        for phase in ["Failed", "Deleting"] {
            assert_eq!(
                problem(&repo(Some(phase)), Some(&tool), &[]),
                "the backup repository repo1 is not ready"
            );
        }
        for rendered in [None, Some(&other)] {
            assert_eq!(
                problem(&ready, rendered, &[]),
                "waiting for the access configuration of backup repository repo1"
            );
        }
        assert_eq!(
            resolve(&ready, Some(&mount), &[claim("something-else")]),
            Err(AccessProblem::NoClaim {
                repo: "repo1".into(),
                claim: "pvc-repo1".into()
            })
        );
    }

    #[test]
    fn an_owner_waiting_for_its_claim_gets_only_the_labels_it_lacks() {
        let repo_label = well_known::label::BACKUP_REPO;
        let wait_label = well_known::label::WAIT_REPO_PREPARATION;
        let both = BTreeMap::from([
            (repo_label.to_string(), Some("repo1".to_string())),
            (wait_label.to_string(), Some("true".to_string())),
        ]);
        assert_eq!(claim_wait_labels(None, "repo1"), both);
        let labelled = BTreeMap::from([
            (repo_label.to_string(), "repo1".to_string()),
            (wait_label.to_string(), "true".to_string()),
        ]);
        assert!(claim_wait_labels(Some(&labelled), "repo1").is_empty());
        let other_repo = BTreeMap::from([(repo_label.to_string(), "repo2".to_string())]);
        assert_eq!(claim_wait_labels(Some(&other_repo), "repo1"), both);
    }

    #[test]
    fn debug_output_never_shows_the_datasafed_configuration() {
        let access = RepoAccess {
            repo_name: "repo1".into(),
            datasafed_config: "secret_access_key = S3CR3T".into(),
            ..Default::default()
        };
        assert!(!format!("{access:?}").contains("S3CR3T"));
    }
}
