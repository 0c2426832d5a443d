//! The BackupRepo reconciler: provider, parameters, access rendering, the agent pre-check,
//! phases, the default annotation, Mount PVCs for waiting Backups and Restores, and deletion
//! blocked while backups use the repo (ARCHITECTURE.md §K5; `plan::backup_repo`).
//! The rendered access (credentials) is kept only in memory, for dispatches to agents.

use std::sync::Arc;
use std::time::Instant;

use cairn_api::backup::Backup;
use cairn_api::backup_repo::{AccessMethod, BackupRepo};
use cairn_api::restore::Restore;
use cairn_api::storage_provider::{LegacyStorageProvider, StorageProvider};
use cairn_api::well_known;
use futures::Stream;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{WatchStreamExt, watcher};

use super::common::{self, Error};
use crate::plan::backup_repo::{self, Derived};
use crate::shell::Context;
use crate::shell::observe::{ObserveError, secret_data};

fn read(what: impl Into<String>) -> impl FnOnce(kube::Error) -> ObserveError {
    let what = what.into();
    move |source| ObserveError::Read {
        what,
        source: Box::new(source),
    }
}

async fn observe(ctx: &Context, repo: &BackupRepo) -> Result<backup_repo::Observed, ObserveError> {
    let caches = &ctx.caches;
    caches.ready().await?;
    let name = repo.name_any();
    let provider_name = repo.spec.storage_provider_ref.clone();
    // A provider created just before its repository may not be in the cache yet: a miss is
    // confirmed with the API server before the repository is failed for it.
    let provider = match caches.providers.get(&provider_name) {
        Some(provider) => Some(provider),
        None => Api::<StorageProvider>::all(ctx.client.clone())
            .get_opt(&provider_name)
            .await
            .map_err(|source| ObserveError::Read {
                what: format!("StorageProvider {provider_name}"),
                source: Box::new(source),
            })?,
    };
    let legacy_provider = if provider.is_none() {
        Api::<LegacyStorageProvider>::all(ctx.client.clone())
            .get_opt(&provider_name)
            .await
            .ok()
            .flatten()
    } else {
        None
    };
    let credential = match &repo.spec.credential {
        Some(reference) => {
            let namespace = reference
                .namespace
                .clone()
                .unwrap_or_else(|| "default".into());
            let secret_name = reference.name.clone().unwrap_or_default();
            Api::<Secret>::namespaced(ctx.client.clone(), &namespace)
                .get_opt(&secret_name)
                .await
                .map_err(read(format!("Secret {namespace}/{secret_name}")))?
                .map(|secret| secret_data(&secret))
        }
        None => Some(Default::default()),
    };
    // Only a Mount repository makes a PVC per namespace that Backups and Restores wait for.
    let mount = matches!(repo.spec.access_method, Some(AccessMethod::Mount));
    // The planner reads only the Backups that hold the repository and wait for its
    // preparation, or, while it is being deleted, every one that holds it: copying every
    // labelled Backup at each reconcile (10,000 for one repository, once per Backup phase
    // change) kept a core busy and dispatches waited seconds (bench/README.md, "scale").
    let deleting = repo.metadata.deletion_timestamp.is_some();
    let backups = with_waiting(
        &ctx.client,
        mount,
        &name,
        caches.backups.filtered(|b| {
            backup_repo::holds_repo(b, &name)
                && (deleting || backup_repo::waits_for_preparation(&b.metadata, &name))
        }),
    )
    .await?;
    let restores = with_waiting(
        &ctx.client,
        mount,
        &name,
        caches
            .restores
            .filtered(|r| backup_repo::waits_for_preparation(&r.metadata, &name)),
    )
    .await?;
    let pvcs = caches
        .claims
        .labelled(well_known::label::BACKUP_REPO, &name);
    let missing_storage_classes = pvcs
        .iter()
        .filter_map(|pvc| pvc.spec.as_ref()?.storage_class_name.clone())
        .filter(|class| !class.is_empty() && caches.storage_classes.get(class).is_none())
        .collect();
    let status = repo.status.clone().unwrap_or_default();
    let storage_class = match status.generated_storage_class_name.as_deref() {
        Some(class) if !class.is_empty() => caches.storage_classes.get(class).is_some(),
        _ => false,
    };
    let csi_secret_digest = match &status.generated_csi_driver_secret {
        Some(reference) => {
            let namespace = reference.namespace.clone().unwrap_or_default();
            let secret_name = reference.name.clone().unwrap_or_default();
            Api::<Secret>::namespaced(ctx.client.clone(), &namespace)
                .get_opt(&secret_name)
                .await
                .map_err(read(format!("Secret {namespace}/{secret_name}")))?
                .map(|secret| {
                    secret
                        .annotations()
                        .get(well_known::annotation::BACKUP_REPO_DIGEST)
                        .cloned()
                        .unwrap_or_default()
                })
        }
        None => None,
    };
    Ok(backup_repo::Observed {
        repo: repo.clone(),
        provider,
        legacy_provider,
        credential,
        backups,
        restores,
        derived: Derived {
            pvcs,
            storage_class,
            csi_secret_digest,
            missing_storage_classes,
        },
        agents: ctx.agent_view(),
        settings: backup_repo::Settings {
            namespace: ctx.settings.namespace.clone(),
            ..Default::default()
        },
    })
}

/// `cached` with the objects waiting for the repository's PVC (labelled with it and
/// `wait-repo-preparation=true`) read from the API server: the watch event of that label
/// triggers this reconcile, but the cache may not hold the label yet, and nothing would
/// trigger it again (a Backup created for a Ready Mount repository waited for ever). Only for
/// a Mount repository: a Tool repository's reconcile makes no API read per Backup.
async fn with_waiting<K>(
    client: &kube::Client,
    mount: bool,
    repo: &str,
    mut cached: Vec<K>,
) -> Result<Vec<K>, ObserveError>
where
    K: kube::Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    if !mount {
        return Ok(cached);
    }
    let selector = format!(
        "{}={repo},{}=true",
        well_known::label::BACKUP_REPO,
        well_known::label::WAIT_REPO_PREPARATION
    );
    let waiting = Api::<K>::all(client.clone())
        .list(&kube::api::ListParams::default().labels(&selector))
        .await
        .map_err(read(format!(
            "{} waiting for repository {repo}",
            K::plural(&())
        )))?;
    for fresh in waiting.items {
        let key = (fresh.meta().namespace.clone(), fresh.meta().name.clone());
        match cached
            .iter_mut()
            .find(|c| (c.meta().namespace.clone(), c.meta().name.clone()) == key)
        {
            Some(old) => *old = fresh,
            None => cached.push(fresh),
        }
    }
    Ok(cached)
}

/// Whether a change of the Backup or Restore with `meta`, labelled with repository `name`,
/// is one the repository's planner acts on: the object waits for the repository's
/// preparation, or the repository (`repo`, from the cache) is being deleted, or is not cached
/// yet (its own watch event triggers it then anyway).
fn triggers_repo(meta: &ObjectMeta, name: &str, repo: Option<&BackupRepo>) -> bool {
    backup_repo::waits_for_preparation(meta, name)
        || repo.is_none_or(|repo| repo.metadata.deletion_timestamp.is_some())
}

/// Reconciles one BackupRepo.
#[tracing::instrument(skip_all, fields(repo = %obj.name_any()))]
pub async fn reconcile(obj: Arc<BackupRepo>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let observed = observe(&ctx, &obj).await?;
    let name = obj.name_any();
    match backup_repo::access(&observed) {
        Ok(access) if obj.metadata.deletion_timestamp.is_none() => {
            ctx.set_repo_access(&name, Some(access));
        }
        Ok(_) => ctx.set_repo_access(&name, None),
        Err(err) => {
            tracing::debug!(error = %crate::shell::chain(&err), "repository access unavailable");
            ctx.set_repo_access(&name, None);
        }
    }
    let plan = backup_repo::plan(&observed, Timestamp::now());
    let api: Api<BackupRepo> = Api::all(ctx.client.clone());
    common::apply(
        &ctx,
        "BackupRepo",
        started,
        &api,
        &obj,
        obj.status.as_ref(),
        plan,
    )
    .await
}

/// Runs the BackupRepo controller until `shutdown`: repositories are also reconciled when a
/// labelled Backup or Restore changes, and when an agent reports on a pre-check.
pub async fn run(
    ctx: Arc<Context>,
    owners: impl Stream<Item = ObjectRef<BackupRepo>> + Send + 'static,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let labelled = || watcher::Config::default().labels(well_known::label::BACKUP_REPO);
    // Only a change the repository planner acts on triggers it: an object waiting for the
    // repository's preparation, or any change while the repository is being deleted (which
    // waits for the Backups that hold it). A running Backup's other writes do not, and
    // nothing is kept per object: the predicate filter this replaces remembered every Backup
    // and Restore ever seen for an hour (bench/README.md, "scale").
    let repos = ctx.caches.repos.clone();
    let to_repo = move |meta: &ObjectMeta| -> Option<ObjectRef<BackupRepo>> {
        let repo = meta.labels.as_ref()?.get(well_known::label::BACKUP_REPO)?;
        triggers_repo(meta, repo, repos.get(repo).as_ref()).then(|| ObjectRef::new(repo))
    };
    let to_repo_too = to_repo.clone();
    let backups = watcher(Api::<Backup>::all(ctx.client.clone()), labelled())
        .default_backoff()
        .touched_objects();
    let restores = watcher(Api::<Restore>::all(ctx.client.clone()), labelled())
        .default_backoff()
        .touched_objects();
    let controller = ctx
        .caches
        .repos
        .controller()
        .watches_stream(backups, move |backup: Backup| to_repo(&backup.metadata))
        .watches_stream(restores, move |restore: Restore| {
            to_repo_too(&restore.metadata)
        });
    common::run(
        ctx,
        controller,
        owners,
        shutdown,
        reconcile,
        |_, err, ctx| common::retry("BackupRepo", err, &ctx),
    )
    .await;
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn labelled(labels: &[(&str, &str)]) -> ObjectMeta {
        ObjectMeta {
            name: Some("b-1".into()),
            namespace: Some("default".into()),
            labels: Some(
                labels
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect::<BTreeMap<_, _>>(),
            ),
            ..ObjectMeta::default()
        }
    }

    fn repo(deleting: bool) -> BackupRepo {
        let mut repo: BackupRepo = serde_json::from_value(serde_json::json!({
            "apiVersion": "dataprotection.kubeblocks.io/v1alpha1",
            "kind": "BackupRepo",
            "metadata": {"name": "local"},
            "spec": {"storageProviderRef": "local", "accessMethod": "Tool", "pvReclaimPolicy": "Retain"},
        }))
        .expect("a BackupRepo");
        if deleting {
            repo.metadata.deletion_timestamp = Some(
                k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::now()),
            );
        }
        repo
    }

    /// The repository's reconcile copied every Backup of the repository and ran once per
    /// Backup phase change: 10,000 Backups kept a core busy and dispatches waited seconds.
    #[test]
    fn only_changes_the_repository_planner_acts_on_trigger_it() {
        let running = labelled(&[(well_known::label::BACKUP_REPO, "local")]);
        let waiting = labelled(&[
            (well_known::label::BACKUP_REPO, "local"),
            (well_known::label::WAIT_REPO_PREPARATION, "true"),
        ]);
        let ready = repo(false);
        assert!(
            !triggers_repo(&running, "local", Some(&ready)),
            "a Backup's progress in a repository in use is not the repository's business"
        );
        assert!(
            triggers_repo(&waiting, "local", Some(&ready)),
            "a Backup waiting for the repository's PVC"
        );
        assert!(
            triggers_repo(&running, "local", Some(&repo(true))),
            "a repository being deleted waits for the Backups that hold it"
        );
        assert!(
            triggers_repo(&running, "local", None),
            "a repository not cached yet"
        );
    }
}
