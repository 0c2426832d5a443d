//! Reads what each planner needs. Reads only: every decision is the planner's.
//!
//! Objects come from the reflector caches (`super::cache`), so a reconcile makes no API
//! request to observe, except a GET of the one Secret holding an encryption passphrase (and of
//! the source namespace of a Restore from another namespace, for its consent). A cache
//! can lag the API by a moment (a BackupPolicy applied just before its Backup), so a reconcile
//! whose plan would fail its object observes again from the API ([`Source::Api`]) before it
//! believes a missing object.

use std::collections::BTreeMap;

use cairn_api::actionset::{ActionSet, BackupType};
use cairn_api::backup::{Backup, BackupPhase};
use cairn_api::backup_policy::BackupPolicy;
use k8s_openapi::api::core::v1::{Namespace, PersistentVolume, PersistentVolumeClaim, Secret};
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, ListParams};

use k8s_openapi::NamespaceResourceScope;
use kube::Resource;
use serde::de::DeserializeOwned;

use super::cache::{Cache, NotRunning};

use super::Context;
use crate::plan::backup;
use crate::plan::restore::request::RESTORE_ALLOWED_NAMESPACES;

/// Reading an input failed.
#[derive(Debug, thiserror::Error)]
pub enum ObserveError {
    #[error("reading {what}")]
    Read {
        what: String,
        #[source]
        source: Box<kube::Error>,
    },
    #[error("reading the caches")]
    Cache(#[from] NotRunning),
}

fn read(what: impl Into<String>) -> impl FnOnce(kube::Error) -> ObserveError {
    let what = what.into();
    move |source| ObserveError::Read {
        what,
        source: Box::new(source),
    }
}

/// Where observation reads objects from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The reflector caches (every reconcile).
    Cache,
    /// The API server (to confirm a plan that would fail its object).
    Api,
}

/// Reads objects from `source`.
struct Reader<'a> {
    ctx: &'a Context,
    source: Source,
}

impl Reader<'_> {
    async fn new(ctx: &Context, source: Source) -> Result<Reader<'_>, ObserveError> {
        if source == Source::Cache {
            ctx.caches.ready().await?;
        }
        Ok(Reader { ctx, source })
    }

    /// The cluster-scoped object `name`.
    async fn get<K>(&self, cache: &Cache<K>, name: &str) -> Result<Option<K>, ObserveError>
    where
        K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug + 'static,
    {
        match self.source {
            Source::Cache => Ok(cache.get(name)),
            Source::Api => Api::<K>::all(self.ctx.client.clone())
                .get_opt(name)
                .await
                .map_err(read(format!("{} {name}", K::kind(&())))),
        }
    }

    /// The object `namespace/name`.
    async fn get_in<K>(
        &self,
        cache: &Cache<K>,
        namespace: &str,
        name: &str,
    ) -> Result<Option<K>, ObserveError>
    where
        K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
            + Clone
            + DeserializeOwned
            + std::fmt::Debug
            + 'static,
    {
        match self.source {
            Source::Cache => Ok(cache.get_in(namespace, name)),
            Source::Api => Api::<K>::namespaced(self.ctx.client.clone(), namespace)
                .get_opt(name)
                .await
                .map_err(read(format!("{} {namespace}/{name}", K::kind(&())))),
        }
    }

    /// Every object of a cluster-scoped kind.
    async fn all<K>(&self, cache: &Cache<K>) -> Result<Vec<K>, ObserveError>
    where
        K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug + 'static,
    {
        match self.source {
            Source::Cache => Ok(cache.all()),
            Source::Api => Ok(Api::<K>::all(self.ctx.client.clone())
                .list(&ListParams::default())
                .await
                .map_err(read(K::plural(&()).to_string()))?
                .items),
        }
    }

    /// The objects of `namespace`.
    async fn in_namespace<K>(
        &self,
        cache: &Cache<K>,
        namespace: &str,
    ) -> Result<Vec<K>, ObserveError>
    where
        K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
            + Clone
            + DeserializeOwned
            + std::fmt::Debug
            + 'static,
    {
        match self.source {
            Source::Cache => Ok(cache.in_namespace(namespace)),
            Source::Api => Ok(Api::<K>::namespaced(self.ctx.client.clone(), namespace)
                .list(&ListParams::default())
                .await
                .map_err(read(format!("{} in {namespace}", K::plural(&()))))?
                .items),
        }
    }
}

/// Everything the Backup planner reads.
pub async fn backup(
    ctx: &Context,
    obj: &Backup,
    source: Source,
) -> Result<backup::Observed, ObserveError> {
    let caches = &ctx.caches;
    let reader = Reader::new(ctx, source).await?;
    let namespace = obj.metadata.namespace.clone().unwrap_or_default();
    let policy = reader
        .get_in(&caches.policies, &namespace, &obj.spec.backup_policy_name)
        .await?;
    let recorded_method = obj.status.as_ref().and_then(|s| s.backup_method.as_ref());
    let policy_method = policy.as_ref().and_then(|p| {
        p.spec
            .backup_methods
            .iter()
            .find(|m| m.name == obj.spec.backup_method)
    });
    let actionset_name = recorded_method
        .and_then(|m| m.action_set_name.clone())
        .or_else(|| policy_method.and_then(|m| m.action_set_name.clone()))
        .filter(|n| !n.is_empty());
    let snapshot_method = recorded_method
        .or(policy_method)
        .is_some_and(|m| m.snapshot_volumes == Some(true));
    let actionset = match &actionset_name {
        Some(name) => reader.get(&caches.actionsets, name).await?,
        None => None,
    };
    let repos = reader.all(&caches.repos).await?;
    let repo_name = obj
        .status
        .as_ref()
        .and_then(|s| s.backup_repo_name.clone())
        .or_else(|| {
            policy
                .as_ref()
                .and_then(|p| backup::repo::resolve(obj, p, &repos).ok())
                .and_then(|r| r.metadata.name.clone())
        });
    let repo_access = repo_name.as_deref().and_then(|name| ctx.repo_access(name));
    let encryption_passphrase = match policy
        .as_ref()
        .and_then(|p| p.spec.encryption_config.as_ref())
    {
        None => None,
        Some(config) => {
            let selector = &config.pass_phrase_secret_key_ref;
            Some(secret_value(ctx, &namespace, &selector.name, &selector.key).await?)
        }
    };
    let pods = reader.in_namespace(&caches.pods, &namespace).await?;
    let claims = match repo_access.as_ref().filter(|a| a.mount_claim.is_some()) {
        Some(_) => reader.in_namespace(&caches.claims, &namespace).await?,
        None if snapshot_method => reader.in_namespace(&caches.claims, &namespace).await?,
        None => Vec::new(),
    };
    // Only a running snapshot backup reads volumes and classes (API reads: neither is cached).
    let running = obj.metadata.deletion_timestamp.is_none()
        && !matches!(
            obj.status.as_ref().and_then(|s| s.phase),
            Some(BackupPhase::Completed | BackupPhase::Failed)
        );
    let snapshot = if snapshot_method && running {
        snapshot_inputs(ctx, &claims).await?
    } else {
        backup::snapshot::Inputs::default()
    };
    // A chain links to older backups and keeps their encryption: read those (and their
    // secrets) only for the backup types that have a parent.
    let chained = actionset.as_ref().is_some_and(|a| {
        matches!(
            a.spec.backup_type,
            BackupType::Incremental | BackupType::Differential
        )
    });
    // A Backup being deleted deletes the backups of its chain first.
    let backups = if chained || obj.metadata.deletion_timestamp.is_some() {
        reader.in_namespace(&caches.backups, &namespace).await?
    } else {
        Vec::new()
    };
    // Deleting a useKopia backup opens its deduplicating repository with its own encryption's
    // passphrase, which may no longer be the policy's.
    let own_dedup_config = obj
        .status
        .as_ref()
        .filter(|s| s.kopia_repo_path.is_some() && obj.metadata.deletion_timestamp.is_some())
        .and_then(|s| s.encryption_config.as_ref());
    let passphrases = if chained || own_dedup_config.is_some() {
        let mut passphrases = BTreeMap::new();
        let chain_configs = backups
            .iter()
            .filter(|_| chained)
            .filter(|b| b.spec.backup_policy_name == obj.spec.backup_policy_name)
            .filter_map(|b| b.status.as_ref()?.encryption_config.as_ref());
        for config in own_dedup_config.into_iter().chain(chain_configs) {
            let selector = &config.pass_phrase_secret_key_ref;
            let key = (selector.name.clone(), selector.key.clone());
            if let std::collections::btree_map::Entry::Vacant(slot) = passphrases.entry(key) {
                slot.insert(secret_value(ctx, &namespace, &selector.name, &selector.key).await?);
            }
        }
        passphrases
    } else {
        BTreeMap::new()
    };
    // A continuous backup runs as long as its schedule entry is enabled (§K2.9).
    let continuous = actionset
        .as_ref()
        .is_some_and(|a| a.spec.backup_type == BackupType::Continuous)
        || obj
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(cairn_api::well_known::label::BACKUP_TYPE))
            .is_some_and(|t| t == "Continuous");
    let schedule_name = obj
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(cairn_api::well_known::label::BACKUP_SCHEDULE))
        .filter(|n| !n.is_empty());
    let schedule = match schedule_name.filter(|_| continuous) {
        Some(name) => reader.get_in(&caches.schedules, &namespace, name).await?,
        None => None,
    };
    Ok(backup::Observed {
        backup: obj.clone(),
        schedule,
        policy,
        actionset,
        repos,
        repo_access,
        encryption_passphrase,
        passphrases,
        backups,
        pods,
        claims,
        snapshot,
        agents: ctx.agent_view(),
        settings: ctx.settings.backup.clone(),
    })
}

/// The PersistentVolumes `claims` are bound to and the cluster's VolumeSnapshotClasses (none
/// when the snapshot CRDs are not installed).
async fn snapshot_inputs(
    ctx: &Context,
    claims: &[PersistentVolumeClaim],
) -> Result<backup::snapshot::Inputs, ObserveError> {
    let mut volumes = Vec::new();
    let api = Api::<PersistentVolume>::all(ctx.client.clone());
    for name in claims
        .iter()
        .filter_map(|c| c.spec.as_ref()?.volume_name.as_deref())
        .filter(|n| !n.is_empty())
    {
        if let Some(volume) = api
            .get_opt(name)
            .await
            .map_err(read(format!("PersistentVolume {name}")))?
        {
            volumes.push(volume);
        }
    }
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("snapshot.storage.k8s.io", "v1", "VolumeSnapshotClass"),
        "volumesnapshotclasses",
    );
    let classes = match Api::<DynamicObject>::all_with(ctx.client.clone(), &resource)
        .list(&ListParams::default())
        .await
    {
        Ok(list) => list
            .items
            .iter()
            .filter_map(|o| serde_json::to_value(o).ok())
            .map(|o| backup::snapshot::SnapshotClass::from_object(&o))
            .collect(),
        Err(kube::Error::Api(status)) if status.code == 404 => Vec::new(),
        Err(err) => return Err(read("volumesnapshotclasses")(err)),
    };
    Ok(backup::snapshot::Inputs { volumes, classes })
}

/// A Secret key's value as text: `Ok(Err(reason))` when the Secret or key is missing.
pub async fn secret_value(
    ctx: &Context,
    namespace: &str,
    name: &str,
    key: &str,
) -> Result<Result<String, String>, ObserveError> {
    let secret = Api::<Secret>::namespaced(ctx.client.clone(), namespace)
        .get_opt(name)
        .await
        .map_err(read(format!("Secret {namespace}/{name}")))?;
    let Some(secret) = secret else {
        return Ok(Err(format!("secret {namespace}/{name} not found")));
    };
    Ok(secret_data(&secret)
        .remove(key)
        .ok_or_else(|| format!("secret {namespace}/{name} has no key {key}")))
}

/// A Secret's data and stringData as text.
pub fn secret_data(secret: &Secret) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = secret
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), String::from_utf8_lossy(&v.0).into_owned()))
        .collect();
    for (k, v) in secret.string_data.iter().flatten() {
        out.insert(k.clone(), v.clone());
    }
    out
}

/// Everything the Restore planner reads.
pub async fn restore(
    ctx: &Context,
    obj: &cairn_api::restore::Restore,
    source: Source,
) -> Result<crate::plan::restore::Observed, ObserveError> {
    let caches = &ctx.caches;
    let reader = Reader::new(ctx, source).await?;
    let namespace = obj.metadata.namespace.clone().unwrap_or_default();
    let source_namespace = Some(obj.spec.backup.namespace.clone())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| namespace.clone());
    let source_name = obj.spec.backup.name.clone();
    let backup = reader
        .get_in(&caches.backups, &source_namespace, &source_name)
        .await?;
    // A Restore from another namespace needs that side's consent, which its namespace may give
    // for every Backup there (docs/API.md §9): one GET, only for such Restores.
    let source_namespace_grant = if source_namespace != namespace && backup.is_some() {
        Api::<Namespace>::all(ctx.client.clone())
            .get_opt(&source_namespace)
            .await
            .map_err(read(format!("Namespace {source_namespace}")))?
            .and_then(|n| n.metadata.annotations)
            .and_then(|mut a| a.remove(RESTORE_ALLOWED_NAMESPACES))
    } else {
        None
    };
    let actionset_name = backup
        .as_ref()
        .and_then(|b| b.status.as_ref())
        .and_then(|s| s.backup_method.as_ref())
        .and_then(|m| m.action_set_name.clone())
        .filter(|n| !n.is_empty());
    let actionset = match &actionset_name {
        Some(name) => reader.get(&caches.actionsets, name).await?,
        None => None,
    };
    // Incremental, Differential and Continuous backups are restored with other backups of
    // their namespace (the chain, the parent, the base), each with its own ActionSet.
    let with_others = actionset.as_ref().is_some_and(|a| {
        matches!(
            a.spec.backup_type,
            BackupType::Incremental | BackupType::Differential | BackupType::Continuous
        )
    });
    let (backups, actionsets) = if with_others {
        (
            reader
                .in_namespace(&caches.backups, &source_namespace)
                .await?,
            reader.all(&caches.actionsets).await?,
        )
    } else {
        (Vec::new(), Vec::new())
    };
    let repos = reader.all(&caches.repos).await?;
    let repo_access = backup
        .as_ref()
        .and_then(|b| b.status.as_ref())
        .and_then(|s| s.backup_repo_name.as_deref())
        .and_then(|name| ctx.repo_access(name));
    let repo_accesses = if with_others {
        repos
            .iter()
            .filter_map(|r| r.metadata.name.as_deref())
            .filter_map(|name| ctx.repo_access(name))
            .collect()
    } else {
        Vec::new()
    };
    let source_key = backup
        .as_ref()
        .and_then(|b| b.status.as_ref())
        .and_then(|s| s.encryption_config.as_ref())
        .map(|c| c.pass_phrase_secret_key_ref.clone());
    let encryption_passphrase = match &source_key {
        None => None,
        Some(selector) => {
            Some(secret_value(ctx, &source_namespace, &selector.name, &selector.key).await?)
        }
    };
    // The keys of the other backups that may be restored with it (usually the same one).
    let mut passphrases = BTreeMap::new();
    for selector in backups
        .iter()
        .filter_map(|b| b.status.as_ref()?.encryption_config.as_ref())
        .map(|c| &c.pass_phrase_secret_key_ref)
    {
        let key = crate::plan::restore::sets::passphrase_key(&selector.name, &selector.key);
        if source_key.as_ref() == Some(selector) || passphrases.contains_key(&key) {
            continue;
        }
        let value = secret_value(ctx, &source_namespace, &selector.name, &selector.key).await?;
        passphrases.insert(key, value);
    }
    let claims = reader.in_namespace(&caches.claims, &namespace).await?;
    let pods = reader.in_namespace(&caches.pods, &namespace).await?;
    let nodes = reader.all(&caches.nodes).await?;
    // Only a running restore of a volume snapshot backup reads snapshots (an API read: they
    // are not cached).
    let snapshot_backup = backup
        .as_ref()
        .and_then(|b| b.status.as_ref()?.backup_method.as_ref())
        .is_some_and(|m| m.snapshot_volumes == Some(true));
    let settled = obj.status.as_ref().is_some_and(|s| {
        matches!(
            s.phase,
            Some(
                cairn_api::restore::RestorePhase::Completed
                    | cairn_api::restore::RestorePhase::Failed
            )
        )
    });
    let snapshots = if snapshot_backup && !settled && obj.metadata.deletion_timestamp.is_none() {
        volume_snapshots(ctx, &namespace).await?
    } else {
        Vec::new()
    };
    Ok(crate::plan::restore::Observed {
        restore: obj.clone(),
        backup,
        source_namespace_grant,
        actionset,
        actionsets,
        backups,
        repos,
        repo_access,
        repo_accesses,
        encryption_passphrase,
        passphrases,
        claims,
        snapshots,
        pods,
        nodes,
        agents: ctx.agent_view(),
        settings: Default::default(),
    })
}

/// The VolumeSnapshots of `namespace` (none when the snapshot CRDs are not installed).
async fn volume_snapshots(
    ctx: &Context,
    namespace: &str,
) -> Result<Vec<crate::plan::restore::snapshot::VolumeSnapshot>, ObserveError> {
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("snapshot.storage.k8s.io", "v1", "VolumeSnapshot"),
        "volumesnapshots",
    );
    match Api::<DynamicObject>::namespaced_with(ctx.client.clone(), namespace, &resource)
        .list(&ListParams::default())
        .await
    {
        Ok(list) => Ok(list
            .items
            .iter()
            .filter_map(|o| serde_json::to_value(o).ok())
            .map(|o| crate::plan::restore::snapshot::VolumeSnapshot::from_object(&o))
            .collect()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(Vec::new()),
        Err(err) => Err(read(format!("volumesnapshots in {namespace}"))(err)),
    }
}

/// Everything the BackupSchedule planner reads.
pub async fn schedule(
    ctx: &Context,
    obj: &cairn_api::backup_schedule::BackupSchedule,
) -> Result<crate::plan::schedule::Observed, ObserveError> {
    let caches = &ctx.caches;
    caches.ready().await?;
    let namespace = obj.metadata.namespace.clone().unwrap_or_default();
    // A policy or ActionSet created just before the schedule may not be in the cache yet: a
    // miss is confirmed with the API server before the schedule is failed for it.
    let policy_name = &obj.spec.backup_policy_name;
    let policy = match caches.policies.get_in(&namespace, policy_name) {
        Some(policy) => Some(policy),
        None => Api::<BackupPolicy>::namespaced(ctx.client.clone(), &namespace)
            .get_opt(policy_name)
            .await
            .map_err(read(format!("BackupPolicy {namespace}/{policy_name}")))?,
    };
    let mut actionsets = Vec::new();
    for method in policy.iter().flat_map(|p| p.spec.backup_methods.iter()) {
        let Some(name) = method.action_set_name.as_deref().filter(|n| !n.is_empty()) else {
            continue;
        };
        if actionsets
            .iter()
            .any(|a: &ActionSet| a.metadata.name.as_deref() == Some(name))
        {
            continue;
        }
        let actionset = match caches.actionsets.get(name) {
            Some(actionset) => Some(actionset),
            None => Api::<ActionSet>::all(ctx.client.clone())
                .get_opt(name)
                .await
                .map_err(read(format!("ActionSet {name}")))?,
        };
        actionsets.extend(actionset);
    }
    let name = obj.metadata.name.clone().unwrap_or_default();
    // Read from the API, not the cache: the planner creates these Backups and must see the
    // one it created a moment ago (schedules reconcile rarely).
    let backups = Api::<Backup>::namespaced(ctx.client.clone(), &namespace)
        .list(&ListParams::default().labels(&format!(
            "{}={name}",
            cairn_api::well_known::label::BACKUP_SCHEDULE
        )))
        .await
        .map_err(read(format!("Backups of schedule {namespace}/{name}")))?
        .items;
    Ok(crate::plan::schedule::Observed {
        schedule: obj.clone(),
        policy,
        actionsets,
        backups,
        settings: Default::default(),
    })
}

/// What the volume populator reads for `claim` (ARCHITECTURE.md §K4.6): the Restore it names
/// (with what the Restore planner reads), its StorageClass and shadow claim from the caches;
/// the shadow claim's PersistentVolume (one GET, once it is bound) and the claim's populate
/// Jobs (one LIST, only once the claim carries the finalizer).
pub async fn populate(
    ctx: &Context,
    claim: &PersistentVolumeClaim,
    source: Source,
) -> Result<crate::plan::populate::Observed, ObserveError> {
    use crate::plan::populate;
    let caches = &ctx.caches;
    let reader = Reader::new(ctx, source).await?;
    let namespace = claim.metadata.namespace.clone().unwrap_or_default();
    let name = claim.metadata.name.clone().unwrap_or_default();
    let restore = match populate::source(claim) {
        Some(s) if s.namespace.as_deref().is_none_or(|n| n == namespace) => {
            reader.get_in(&caches.restores, &namespace, &s.name).await?
        }
        _ => None,
    };
    let restore = match restore {
        Some(r) => Some(self::restore(ctx, &r, source).await?),
        None => None,
    };
    let class_name = claim
        .spec
        .as_ref()
        .and_then(|s| s.storage_class_name.clone())
        .filter(|n| !n.is_empty());
    let storage_class = match class_name {
        Some(class) => reader.get(&caches.storage_classes, &class).await?,
        None => None,
    };
    let shadow_name = populate::shadow_name(claim);
    let shadow = reader
        .get_in(&caches.claims, &namespace, &shadow_name)
        .await?;
    let volume_name = shadow
        .as_ref()
        .and_then(|s| s.spec.as_ref())
        .and_then(|s| s.volume_name.clone())
        .filter(|n| !n.is_empty());
    let volume = match volume_name {
        Some(volume) => Api::<PersistentVolume>::all(ctx.client.clone())
            .get_opt(&volume)
            .await
            .map_err(read(format!("PersistentVolume {volume}")))?,
        None => None,
    };
    let finalized = claim
        .metadata
        .finalizers
        .iter()
        .flatten()
        .any(|f| f == cairn_api::well_known::FINALIZER);
    let jobs = if finalized {
        let selector = format!("{}={name}", cairn_api::well_known::label::POPULATE_PVC);
        Api::<k8s_openapi::api::batch::v1::Job>::namespaced(ctx.client.clone(), &namespace)
            .list_metadata(&ListParams::default().labels(&selector))
            .await
            .map_err(read(format!("Jobs {namespace} {selector}")))?
            .items
            .into_iter()
            .filter_map(|j| j.metadata.name)
            .collect()
    } else {
        Vec::new()
    };
    Ok(populate::Observed {
        claim: claim.clone(),
        restore,
        storage_class,
        shadow,
        volume,
        jobs,
        agents: ctx.agent_view(),
        settings: Default::default(),
    })
}
