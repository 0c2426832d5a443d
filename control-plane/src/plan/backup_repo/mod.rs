//! What happens when a BackupRepo is created, changed, used and deleted (ARCHITECTURE.md
//! §K5.2-§K5.8).
//!
//! # Expected flow
//! 1. The data-protection finalizer is added.
//! 2. `StorageProviderReady`: the provider must exist (a deprecated `storage.kubeblocks.io` one is
//!    copied into the dataprotection group, as KubeBlocks does) and suit the access method: Tool
//!    needs a `datasafedConfigTemplate`; Mount needs a StorageClass or PVC template and the
//!    provider's `CSIDriverInstalled` condition True.
//! 3. `ParametersChecked`: the credential Secret must exist; the parameters are the schema
//!    defaults overlaid by `spec.config` and the Secret ([`crate::repo::access::parameters`]).
//! 4. `StorageClassCreated` and `PVCTemplateChecked`: Mount renders the CSI Secret (in the control
//!    plane's namespace) and StorageClass and creates them, and checks the PVC template
//!    ([`mount`]); Tool needs neither (reason `Skipped`).
//! 5. `PreCheckPassed`: whenever the digest of parameters and templates changes, an agent pushes,
//!    pulls and removes a probe in the repository ([`precheck`]).
//! 6. `phase`: Ready when all five conditions are True, PreChecking while the pre-check is
//!    pending, Failed otherwise; `isDefault`, `observedGeneration`, and for Mount
//!    `backupPVCName`.
//! 7. Ready: Backups and Restores labelled `wait-repo-preparation=true` get the repository PVC in
//!    their namespace (Mount) and lose that label ([`mount::prepare_waiting`]).
//! 8. Deletion waits for the Backups that still use the repository ([`deletion`]).
//!
//! # Departures from KubeBlocks
//! - No pre-check Job, Secret or tool-config Secret for Tool repositories: the rendered datasafed
//!   configuration holds credentials and goes only to agents ([`access`]). The pre-check is a
//!   `RepoCheckAction` run by any connected agent; `toolConfigSecretName` stays unset and Tool
//!   repositories get no CSI Secret or StorageClass (`StorageClassCreated` is True, reason
//!   `Skipped`).
//! - The Mount pre-check Job is run by an agent (a `JobAction`), named per digest so that a stale
//!   check never collides with a new one.
//! - Derived names (`pvc-<repo>-<6 chars>`) take their 6 characters from the repository uid, not
//!   from a random source, so the planner stays pure.
//! - The digest is BLAKE3, not MD5 ([`crate::repo::access::digest`]).

pub mod conditions;
pub mod deletion;
pub mod mount;
pub mod names;
pub mod precheck;

#[cfg(test)]
mod tests;

use cairn_api::well_known;
use cairn_api::well_known::conditions::backup_repo::{
    CONDITION_PARAMETERS_CHECKED, CONDITION_PRE_CHECK_PASSED, CONDITION_PVC_TEMPLATE_CHECKED,
    CONDITION_STORAGE_CLASS_CREATED, CONDITION_STORAGE_PROVIDER_READY, REASON_BAD_PVC_TEMPLATE,
    REASON_CREDENTIAL_SECRET_NOT_FOUND, REASON_INVALID_STORAGE_PROVIDER, REASON_PARAMETERS_CHECKED,
    REASON_PVC_TEMPLATE_CHECKED, REASON_SKIPPED, REASON_STORAGE_CLASS_CREATED,
    REASON_STORAGE_PROVIDER_NOT_FOUND, REASON_STORAGE_PROVIDER_NOT_READY,
    REASON_STORAGE_PROVIDER_READY,
};
use cairn_api::well_known::conditions::storage_provider::CONDITION_CSI_DRIVER_INSTALLED;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use cairn_api::backup::{Backup, BackupPhase};
use cairn_api::backup_repo::{AccessMethod, BackupRepo, BackupRepoPhase, BackupRepoStatus};
use cairn_api::restore::Restore;
use cairn_api::storage_provider::{
    LegacyStorageProvider, StorageProvider, StorageProviderSpec, StorageProviderStatus,
};
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, SecretReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, ObjectMeta, OwnerReference};

use self::conditions::{Status, Update};
use super::agent_view::AgentView;
use super::backup::repo::RepoAccess;
use super::intent::{Intent, Plan};
use crate::repo::access::{self, AccessError};

/// The longest event message Cairn writes (Kubernetes caps them at 1 KiB).
const EVENT_MESSAGE_LIMIT: usize = 1024;

/// Knobs of the BackupRepo planner.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// The control plane's namespace: where the CSI Secret and the Mount pre-check live
    /// (KubeBlocks' `CM_NAMESPACE`).
    pub namespace: String,
    /// A pre-check that has not finished this long after an agent started it has failed.
    pub pre_check_timeout: Duration,
    /// How often a repository waiting for a pre-check, an agent or a deletion is looked at.
    pub poll: Duration,
    /// The image of the Mount pre-check Job (needs `sh`, `echo`, `cat`, `rm`, `sync`).
    pub tools_image: String,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            namespace: "cairn-system".into(),
            pre_check_timeout: Duration::from_secs(15 * 60),
            poll: Duration::from_secs(5),
            tools_image: "docker.io/library/busybox:1.36".into(),
        }
    }
}

/// Objects derived from the repository that currently exist (all labelled
/// `backup-repo-name=<repo>`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Derived {
    /// PVCs in every namespace: the repository PVCs and the Mount pre-check PVC.
    pub pvcs: Vec<PersistentVolumeClaim>,
    /// Whether the StorageClass named in `status.generatedStorageClassName` exists.
    pub storage_class: bool,
    /// The digest annotation of the CSI driver Secret named in
    /// `status.generatedCSIDriverSecret`: `None` when the Secret does not exist, `Some("")` when
    /// it exists without the annotation.
    pub csi_secret_digest: Option<String>,
    /// The StorageClasses named by those PVCs that do not exist.
    pub missing_storage_classes: BTreeSet<String>,
}

/// Everything the BackupRepo planner reads.
#[derive(Debug, Clone)]
pub struct Observed {
    pub repo: BackupRepo,
    /// The dataprotection StorageProvider named by `spec.storageProviderRef`, if it exists.
    pub provider: Option<StorageProvider>,
    /// The deprecated `storage.kubeblocks.io` StorageProvider of that name, looked up only when
    /// `provider` is missing.
    pub legacy_provider: Option<LegacyStorageProvider>,
    /// The decoded data of the credential Secret (`spec.credential`), if it exists.
    pub credential: Option<BTreeMap<String, String>>,
    /// Backups labelled `backup-repo-name=<repo>`, in every namespace. The planner reads only
    /// those that [hold the repository](holds_repo) and, unless the repository is being
    /// deleted, [wait for its preparation](waits_for_preparation): the others may be left out
    /// (`observe` copies only those, however many Backups the repository keeps).
    pub backups: Vec<Backup>,
    /// Restores labelled `backup-repo-name=<repo>`, in every namespace. The planner reads only
    /// those that are not Failed and [wait for its preparation](waits_for_preparation).
    pub restores: Vec<Restore>,
    pub derived: Derived,
    pub agents: AgentView,
    pub settings: Settings,
}

/// Whether `backup` holds repository `repo`: labelled with it and not Failed (a Failed
/// Continuous backup still holds it). A repository is not deleted while a Backup holds it, and
/// only a Backup that holds it gets its PVC.
pub fn holds_repo(backup: &Backup, repo: &str) -> bool {
    let labels = backup.metadata.labels.as_ref();
    let uses = labels
        .and_then(|l| l.get(well_known::label::BACKUP_REPO))
        .map(String::as_str)
        == Some(repo);
    let failed = backup.status.as_ref().and_then(|s| s.phase) == Some(BackupPhase::Failed);
    let continuous = labels
        .and_then(|l| l.get(well_known::label::BACKUP_TYPE))
        .is_some_and(|t| t == "Continuous");
    uses && (!failed || continuous)
}

/// Whether the object with `meta` waits for repository `repo` to be prepared for it: labelled
/// with the repository and `wait-repo-preparation=true`.
pub fn waits_for_preparation(meta: &ObjectMeta, repo: &str) -> bool {
    let labels = meta.labels.as_ref();
    labels
        .and_then(|l| l.get(well_known::label::BACKUP_REPO))
        .map(String::as_str)
        == Some(repo)
        && labels
            .and_then(|l| l.get(well_known::label::WAIT_REPO_PREPARATION))
            .map(String::as_str)
            == Some("true")
}

/// Why a repository's access cannot be given to agents.
#[derive(Debug, thiserror::Error)]
pub enum AccessUnavailable {
    /// Neither group has the StorageProvider.
    #[error("storage provider {name} not found")]
    ProviderNotFound { name: String },
    /// The credential Secret does not exist.
    #[error("credential secret {namespace}/{name} not found")]
    CredentialSecretNotFound { namespace: String, name: String },
    /// The provider's templates do not render.
    #[error("rendering the access of backup repository {repo}")]
    Render {
        repo: String,
        #[source]
        source: AccessError,
    },
}

/// How agents reach the repository, for the Backup and Restore planners: the rendered datasafed
/// configuration (Tool) or the repository PVC (Mount). The IO shell keeps it in memory only.
pub fn access(o: &Observed) -> Result<RepoAccess, AccessUnavailable> {
    let repo = &o.repo;
    let name = repo.metadata.name.clone().unwrap_or_default();
    let spec = provider_spec(o).ok_or_else(|| AccessUnavailable::ProviderNotFound {
        name: repo.spec.storage_provider_ref.clone(),
    })?;
    if access_method(repo) == AccessMethod::Mount {
        return Ok(access::mount_access(&name, &backup_pvc_name(repo)));
    }
    let parameters = parameters(o, spec)?;
    let status = repo.status.clone().unwrap_or_default();
    let context = access::context(
        &parameters,
        status.generated_csi_driver_secret.as_ref(),
        status.generated_storage_class_name.as_deref(),
    );
    access::tool_access(&name, spec, &context)
        .map_err(|source| AccessUnavailable::Render { repo: name, source })
}

/// What the basic checks resolved, for the pre-check and the Mount objects.
pub(crate) struct Resolved<'o> {
    pub method: AccessMethod,
    pub provider: &'o StorageProviderSpec,
    pub parameters: BTreeMap<String, String>,
    pub digest: String,
    pub csi_secret: Option<SecretReference>,
    pub storage_class: Option<String>,
}

impl Resolved<'_> {
    /// The template context of this repository.
    pub fn context(&self) -> crate::repo::template::TemplateContext {
        access::context(
            &self.parameters,
            self.csi_secret.as_ref(),
            self.storage_class.as_deref(),
        )
    }
}

/// Plans one reconcile of a BackupRepo.
pub fn plan(o: &Observed, now: Timestamp) -> Plan<BackupRepoStatus> {
    if o.repo.metadata.deletion_timestamp.is_some() {
        return deletion::plan(o, now);
    }
    let repo = &o.repo;
    let current = repo.status.clone().unwrap_or_default();
    let mut status = current.clone();
    let mut conds = status.conditions.take().unwrap_or_default();
    let mut intents = Vec::new();
    if !has_finalizer(repo) {
        intents.push(Intent::AddFinalizer);
    }
    let mut requeue = None;
    let resolved = basic_checks(o, &mut status, &mut conds, &mut intents, now);
    if let Some(resolved) = &resolved {
        requeue = precheck::plan(o, resolved, &mut conds, &mut intents, now);
    }
    let phase = phase_of(&conds);
    status.conditions = Some(conds);
    status.phase = Some(phase);
    status.is_default = Some(super::backup::repo::is_default(repo));
    status.observed_generation = repo.metadata.generation;
    if access_method(repo) == AccessMethod::Mount {
        status.backup_pvc_name = Some(backup_pvc_name(repo));
    }
    if phase != BackupRepoPhase::Ready && status.phase != current.phase {
        intents.push(phase_event(repo, &status));
    }
    if phase == BackupRepoPhase::Ready {
        if current.phase != Some(BackupRepoPhase::Ready) {
            intents.push(phase_event(repo, &status));
        }
        if let Some(resolved) = &resolved {
            mount::prepare_waiting(o, resolved, &status, &mut intents);
        }
    }
    Plan {
        status: (status != current).then_some(status),
        intents,
        requeue,
    }
}

/// Steps 2-4: provider, parameters, StorageClass and PVC template. `None` when a step failed
/// (its condition says why and the later steps keep their conditions, as in KubeBlocks).
fn basic_checks<'o>(
    o: &'o Observed,
    status: &mut BackupRepoStatus,
    conds: &mut Vec<Condition>,
    intents: &mut Vec<Intent>,
    now: Timestamp,
) -> Option<Resolved<'o>> {
    let repo = &o.repo;
    let generation = repo.metadata.generation;
    let set = |conds: &mut Vec<Condition>, update: Update<'_>| {
        conditions::set(conds, update, generation, now);
    };
    let method = access_method(repo);
    let provider_name = &repo.spec.storage_provider_ref;

    let Some((provider, provider_status)) = resolve_provider(o, intents) else {
        set(
            conds,
            failed(
                CONDITION_STORAGE_PROVIDER_READY,
                REASON_STORAGE_PROVIDER_NOT_FOUND,
                format!(
                    "storageproviders.dataprotection.kubeblocks.io \"{provider_name}\" not found"
                ),
            ),
        );
        return None;
    };
    let problem = match method {
        AccessMethod::Mount
            if blank(&provider.storage_class_template)
                && blank(&provider.persistent_volume_claim_template) =>
        {
            Some((
                REASON_INVALID_STORAGE_PROVIDER,
                "both StorageClassTemplate and PersistentVolumeClaimTemplate are empty",
            ))
        }
        AccessMethod::Mount
            if !provider_status.is_some_and(|s| {
                conditions::has_status(
                    s.conditions.as_deref().unwrap_or_default(),
                    CONDITION_CSI_DRIVER_INSTALLED,
                    Status::True,
                )
            }) =>
        {
            Some((
                REASON_STORAGE_PROVIDER_NOT_READY,
                "CSI driver is not installed",
            ))
        }
        AccessMethod::Tool if blank(&provider.datasafed_config_template) => Some((
            REASON_INVALID_STORAGE_PROVIDER,
            "DatasafedConfigTemplate is empty",
        )),
        _ => None,
    };
    if let Some((reason, message)) = problem {
        set(
            conds,
            failed(CONDITION_STORAGE_PROVIDER_READY, reason, message.into()),
        );
        return None;
    }
    set(
        conds,
        passed(
            CONDITION_STORAGE_PROVIDER_READY,
            REASON_STORAGE_PROVIDER_READY,
        ),
    );

    let parameters = match parameters(o, provider) {
        Ok(parameters) => parameters,
        Err(_) => {
            let name = repo
                .spec
                .credential
                .as_ref()
                .and_then(|c| c.name.clone())
                .unwrap_or_default();
            set(
                conds,
                failed(
                    CONDITION_PARAMETERS_CHECKED,
                    REASON_CREDENTIAL_SECRET_NOT_FOUND,
                    format!("failed to get secret: secrets \"{name}\" not found"),
                ),
            );
            return None;
        }
    };
    set(
        conds,
        passed(CONDITION_PARAMETERS_CHECKED, REASON_PARAMETERS_CHECKED),
    );

    let mut resolved = Resolved {
        method,
        provider,
        digest: access::digest(&parameters, provider),
        parameters,
        csi_secret: status.generated_csi_driver_secret.clone(),
        storage_class: status.generated_storage_class_name.clone(),
    };
    match method {
        AccessMethod::Tool => {
            set(
                conds,
                Update {
                    type_: CONDITION_STORAGE_CLASS_CREATED,
                    status: Status::True,
                    reason: REASON_SKIPPED,
                    message: "the Tool access method needs no StorageClass".into(),
                },
            );
            set(
                conds,
                passed(CONDITION_PVC_TEMPLATE_CHECKED, REASON_SKIPPED),
            );
        }
        AccessMethod::Mount => {
            if let Err((reason, message)) = mount::storage_class(o, &mut resolved, status, intents)
            {
                set(
                    conds,
                    failed(CONDITION_STORAGE_CLASS_CREATED, reason, message),
                );
                return None;
            }
            set(
                conds,
                passed(
                    CONDITION_STORAGE_CLASS_CREATED,
                    REASON_STORAGE_CLASS_CREATED,
                ),
            );
            match mount::check_pvc_template(&resolved) {
                Ok(false) => set(
                    conds,
                    passed(CONDITION_PVC_TEMPLATE_CHECKED, REASON_SKIPPED),
                ),
                Ok(true) => set(
                    conds,
                    passed(CONDITION_PVC_TEMPLATE_CHECKED, REASON_PVC_TEMPLATE_CHECKED),
                ),
                Err(message) => {
                    set(
                        conds,
                        failed(
                            CONDITION_PVC_TEMPLATE_CHECKED,
                            REASON_BAD_PVC_TEMPLATE,
                            message,
                        ),
                    );
                    return None;
                }
            }
        }
    }
    Some(resolved)
}

/// The provider's spec (from either group) and status; a provider only found in the deprecated
/// group is copied into the dataprotection group, as KubeBlocks does (ARCHITECTURE.md §K8 S18: later edits to
/// the old object are not copied).
fn resolve_provider<'o>(
    o: &'o Observed,
    intents: &mut Vec<Intent>,
) -> Option<(&'o StorageProviderSpec, Option<&'o StorageProviderStatus>)> {
    if let Some(provider) = &o.provider {
        return Some((&provider.spec, provider.status.as_ref()));
    }
    let legacy = o.legacy_provider.as_ref()?;
    let copy = StorageProvider {
        metadata: ObjectMeta {
            name: legacy.metadata.name.clone(),
            labels: legacy.metadata.labels.clone(),
            annotations: legacy.metadata.annotations.clone(),
            ..Default::default()
        },
        spec: legacy.spec.0.clone(),
        status: None,
    };
    if let Ok(mut object) = serde_json::to_value(&copy) {
        object["apiVersion"] = cairn_api::API_VERSION.into();
        object["kind"] = "StorageProvider".into();
        intents.push(Intent::Create { object });
    }
    // The copy has no status yet: KubeBlocks checks the copy, whose CSIDriverInstalled
    // condition is missing until the StorageProvider reconciler has looked at it.
    Some((&legacy.spec.0, None))
}

fn provider_spec(o: &Observed) -> Option<&StorageProviderSpec> {
    o.provider
        .as_ref()
        .map(|p| &p.spec)
        .or_else(|| o.legacy_provider.as_ref().map(|p| &p.spec.0))
}

fn parameters(
    o: &Observed,
    provider: &StorageProviderSpec,
) -> Result<BTreeMap<String, String>, AccessUnavailable> {
    let credential = match &o.repo.spec.credential {
        None => None,
        Some(reference) => Some(o.credential.as_ref().ok_or_else(|| {
            AccessUnavailable::CredentialSecretNotFound {
                namespace: reference.namespace.clone().unwrap_or_default(),
                name: reference.name.clone().unwrap_or_default(),
            }
        })?),
    };
    Ok(access::parameters(
        provider,
        o.repo.spec.config.as_ref(),
        credential,
    ))
}

/// Step 7: Ready when every condition passed, PreChecking while only the pre-check is pending,
/// Failed otherwise.
fn phase_of(conds: &[Condition]) -> BackupRepoPhase {
    let basic = [
        CONDITION_STORAGE_PROVIDER_READY,
        CONDITION_PARAMETERS_CHECKED,
        CONDITION_STORAGE_CLASS_CREATED,
        CONDITION_PVC_TEMPLATE_CHECKED,
    ]
    .iter()
    .all(|t| conditions::has_status(conds, t, Status::True));
    if !basic {
        return BackupRepoPhase::Failed;
    }
    if conditions::has_status(conds, CONDITION_PRE_CHECK_PASSED, Status::True) {
        BackupRepoPhase::Ready
    } else if conditions::has_status(conds, CONDITION_PRE_CHECK_PASSED, Status::Unknown) {
        BackupRepoPhase::PreChecking
    } else {
        BackupRepoPhase::Failed
    }
}

fn phase_event(repo: &BackupRepo, status: &BackupRepoStatus) -> Intent {
    let name = repo.metadata.name.as_deref().unwrap_or_default();
    match status.phase {
        Some(BackupRepoPhase::Ready) => Intent::normal(
            "BackupRepoReady",
            format!("backup repository {name} is Ready"),
        ),
        Some(BackupRepoPhase::PreChecking) => Intent::normal(
            "PreChecking",
            format!("backup repository {name} is being pre-checked"),
        ),
        _ => {
            let why = status
                .conditions
                .iter()
                .flatten()
                .find(|c| c.status != Status::True.as_str())
                .map(|c| format!("{} is {} ({}): {}", c.type_, c.status, c.reason, c.message))
                .unwrap_or_default();
            Intent::warning(
                "BackupRepoFailed",
                cap(
                    &format!("backup repository {name} failed: {why}"),
                    EVENT_MESSAGE_LIMIT,
                ),
            )
        }
    }
}

/// The access method (default Mount).
pub fn access_method(repo: &BackupRepo) -> AccessMethod {
    repo.spec.access_method.unwrap_or(AccessMethod::Mount)
}

/// `status.backupPVCName`, or the name it gets (`pvc-<repo>-<6 chars>`).
pub fn backup_pvc_name(repo: &BackupRepo) -> String {
    repo.status
        .as_ref()
        .and_then(|s| s.backup_pvc_name.clone())
        .unwrap_or_else(|| names::derived_name(repo, "pvc"))
}

fn has_finalizer(repo: &BackupRepo) -> bool {
    repo.metadata
        .finalizers
        .iter()
        .flatten()
        .any(|f| f == well_known::FINALIZER)
}

fn blank(text: &Option<String>) -> bool {
    text.as_deref().is_none_or(|t| t.trim().is_empty())
}

fn passed<'a>(type_: &'a str, reason: &'a str) -> Update<'a> {
    Update {
        type_,
        status: Status::True,
        reason,
        message: String::new(),
    }
}

fn failed<'a>(type_: &'a str, reason: &'a str, message: String) -> Update<'a> {
    Update {
        type_,
        status: Status::False,
        reason,
        message,
    }
}

/// The repository as the controlling owner of an object it derives.
pub fn owner_reference(repo: &BackupRepo) -> OwnerReference {
    OwnerReference {
        api_version: cairn_api::API_VERSION.into(),
        kind: "BackupRepo".into(),
        name: repo.metadata.name.clone().unwrap_or_default(),
        uid: repo.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// Whether `object` is owned by the repository.
pub fn owned_by(repo: &BackupRepo, object: &ObjectMeta) -> bool {
    let uid = repo.metadata.uid.as_deref().unwrap_or_default();
    object
        .owner_references
        .iter()
        .flatten()
        .any(|r| !uid.is_empty() && r.uid == uid)
}

/// The first `limit` bytes of `text`, cut at a character boundary.
pub fn cap(text: &str, limit: usize) -> String {
    if text.len() <= limit {
        return text.to_string();
    }
    let mut end = limit;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}
