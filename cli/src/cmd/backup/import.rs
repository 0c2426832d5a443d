//! `cairnctl backup import --repo NAME`: rebuilds Backup objects from the
//! `kubeblocks-backup.json` manifests KubeBlocks (and Cairn) store beside each backup's data
//! (ARCHITECTURE.md §K2.6, §K2.10), so a new cluster restores what an old one backed up.
//!
//! - The repository is reached the way agents reach it: the BackupRepo's StorageProvider
//!   template rendered with its `config` and credential Secret (the same renderer as the
//!   control plane's). Tool repositories only: a Mount repository's data is on a PVC.
//! - Dry run by default (a table of what would be imported); `--apply` creates the Backups.
//! - Idempotent: a Backup this command imported from the same manifest is left alone (and an
//!   interrupted import is finished); a different Backup of the same name is an error.
//! - Each manifest that cannot be imported is reported with its path and the reason; the others
//!   are still imported, and the exit code is 1.
//! - Imported Backups are `Completed`, point at their data (`status.path`, `backupRepoName` =
//!   the named repository) and restore. They get `deletionPolicy: Retain` and no expiration:
//!   the data may still belong to the cluster that wrote it, so deleting or expiring an
//!   imported Backup never removes it.

use std::collections::BTreeMap;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use cairn_api::backup::{Backup, BackupDeletionPolicy, BackupPhase};
use cairn_api::backup_repo::{AccessMethod, BackupRepo};
use cairn_api::storage_provider::{LegacyStorageProvider, StorageProvider, StorageProviderSpec};
use cairn_api::well_known;
use cairn_repo::config::Secret;
use cairn_repo::plain::ListOptions;
use cairn_repo::progress::no_progress;
use cairn_repo::{PlainRepo, Store, StreamKey, parse_datasafed_config};
use k8s_openapi::api::core::v1::Secret as KubeSecret;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde::Serialize;
use serde_json::json;
use tokio::io::AsyncReadExt as _;

use super::Scope;
use super::table::render;

/// The manifest's file name.
pub const MANIFEST: &str = "kubeblocks-backup.json";
/// The suffix of a file KubeBlocks' datasafed encrypted (FORMAT.md §3.3.1).
const ENCRYPTED_SUFFIX: &str = ".enc";
/// A manifest is one Backup object; anything larger is not one.
const MANIFEST_LIMIT: u64 = 16 << 20;
/// Annotations of the old cluster that must not come along.
const DROPPED_ANNOTATIONS: [&str; 2] = [
    "kubectl.kubernetes.io/last-applied-configuration",
    well_known::annotation::SKIP_RECONCILIATION,
];

/// Arguments of `cairnctl backup import`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The BackupRepo whose repository holds the backups; the imported Backups point at it.
    #[arg(long)]
    pub repo: String,
    /// Create the Backups. Without it, only show what would be imported.
    #[arg(long)]
    pub apply: bool,
    /// Only look for manifests under this path of the repository.
    #[arg(long, default_value = "/")]
    pub path: String,
    /// The Secret key holding the passphrase of encrypted manifests
    /// (`kubeblocks-backup.json.enc`), as SECRET/KEY, in the namespace given with -n (else the
    /// kubeconfig's).
    #[arg(long, value_name = "SECRET/KEY")]
    pub passphrase_secret: Option<String>,
    /// The algorithm of encrypted manifests (KubeBlocks' `AES-128-CFB`, `AES-192-CFB`,
    /// `AES-256-CFB`).
    #[arg(long, default_value = "AES-256-CFB")]
    pub encryption_algorithm: String,
}

/// What happened (or would happen) to one manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "result", content = "reason")]
pub enum Outcome {
    /// Dry run: it would be created.
    WouldImport,
    /// Created.
    Imported,
    /// A Backup imported from this manifest is already there.
    Exists,
    /// Not imported, and why.
    Failed(String),
}

/// One line of the report.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Line {
    pub manifest: String,
    pub namespace: String,
    pub name: String,
    pub method: String,
    pub path: String,
    #[serde(flatten)]
    pub outcome: Outcome,
}

/// Runs `cairnctl backup import`; `namespace` is the `-n` the user gave, if any.
pub async fn run(scope: &Scope, namespace: Option<String>, args: Args) -> anyhow::Result<ExitCode> {
    let repos: Api<BackupRepo> = Api::all(scope.client.clone());
    let repo = repos
        .get_opt(&args.repo)
        .await
        .with_context(|| format!("reading BackupRepo {}", args.repo))?
        .with_context(|| format!("there is no BackupRepo {}", args.repo))?;
    let key = match &args.passphrase_secret {
        None => None,
        Some(reference) => {
            let secret_namespace = namespace.as_deref().unwrap_or(&scope.namespace);
            let passphrase = secret_value(
                &scope.client,
                secret_namespace,
                reference,
                "--passphrase-secret",
            )
            .await?;
            Some(
                StreamKey::for_algorithm(Secret::new(passphrase), &args.encryption_algorithm)
                    .with_context(|| {
                        format!("--encryption-algorithm {}", args.encryption_algorithm)
                    })?,
            )
        }
    };
    let files = open_repository(&scope.client, &repo, key).await?;
    let options = ListOptions {
        recursive: true,
        files_only: true,
        ..Default::default()
    };
    let mut entries = files
        .plain
        .list(&args.path, &options)
        .await
        .with_context(|| format!("listing {} in BackupRepo {}", args.path, args.repo))?;
    entries.retain(|e| e.name == MANIFEST || e.name == format!("{MANIFEST}{ENCRYPTED_SUFFIX}"));
    entries.sort_by(|a, b| a.path.cmp(&b.path));

    let mut lines = Vec::new();
    for entry in &entries {
        let manifest = normalize(&entry.path);
        let line = import_one(scope, &files, &args, namespace.as_deref(), &manifest).await;
        lines.push(line);
    }
    let failed = lines
        .iter()
        .filter(|l| matches!(l.outcome, Outcome::Failed(_)))
        .count();
    if scope.json {
        println!("{}", serde_json::to_string_pretty(&lines)?);
    } else if lines.is_empty() {
        println!(
            "no {MANIFEST} found under {} in BackupRepo {}",
            args.path, args.repo
        );
    } else {
        print!("{}", table(&lines));
        let would = lines
            .iter()
            .filter(|l| l.outcome == Outcome::WouldImport)
            .count();
        if !args.apply && would > 0 {
            println!("dry run: {would} backup(s) would be imported; pass --apply to create them");
        }
    }
    if failed > 0 {
        eprintln!("cairnctl: {failed} manifest(s) could not be imported (see RESULT)");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// The report as a table.
pub fn table(lines: &[Line]) -> String {
    let rows: Vec<Vec<String>> = lines
        .iter()
        .map(|l| {
            let result = match &l.outcome {
                Outcome::WouldImport => "would import".to_string(),
                Outcome::Imported => "imported".to_string(),
                Outcome::Exists => "exists".to_string(),
                Outcome::Failed(reason) => format!("error: {reason}"),
            };
            vec![
                dash(&l.namespace),
                dash(&l.name),
                dash(&l.method),
                dash(&l.path),
                result,
            ]
        })
        .collect();
    render(&["NAMESPACE", "NAME", "METHOD", "PATH", "RESULT"], &rows)
}

fn dash(text: &str) -> String {
    if text.is_empty() {
        "-".into()
    } else {
        text.to_string()
    }
}

async fn import_one(
    scope: &Scope,
    files: &Files,
    args: &Args,
    namespace: Option<&str>,
    manifest: &str,
) -> Line {
    let mut line = Line {
        manifest: manifest.to_string(),
        namespace: String::new(),
        name: String::new(),
        method: String::new(),
        path: String::new(),
        outcome: Outcome::WouldImport,
    };
    let bytes = match (manifest.strip_suffix(ENCRYPTED_SUFFIX), &files.keyed) {
        (Some(_), None) => {
            line.outcome = Outcome::Failed(format!(
                "{manifest} is encrypted: pass --passphrase-secret SECRET/KEY (and --encryption-algorithm) naming its passphrase"
            ));
            return line;
        }
        // KubeBlocks' CFB file: the keyed repository reads `P` from `P.enc`.
        (Some(plain_path), Some(keyed)) => read(keyed, plain_path).await,
        (None, keyed) => match read(&files.plain, manifest).await {
            // Not JSON as stored: a manifest Cairn wrote encrypted, when a key is given.
            Ok(raw) if serde_json::from_slice::<serde_json::Value>(&raw).is_err() => match keyed {
                Some(keyed) => Ok(read(keyed, manifest).await.unwrap_or(raw)),
                None => Ok(raw),
            },
            other => other,
        },
    };
    let rebuilt = match bytes {
        Ok(bytes) => rebuild(manifest, &bytes, &args.repo, namespace),
        Err(err) => Err(format!("reading {manifest}: {err:#}")),
    };
    let backup = match rebuilt {
        Ok(backup) => backup,
        Err(reason) => {
            line.outcome = Outcome::Failed(reason);
            return line;
        }
    };
    line.namespace = backup.metadata.namespace.clone().unwrap_or_default();
    line.name = backup.metadata.name.clone().unwrap_or_default();
    line.method = backup.spec.backup_method.clone();
    line.path = backup
        .status
        .as_ref()
        .and_then(|s| s.path.clone())
        .unwrap_or_default();
    line.outcome = match apply(scope, &backup, args.apply).await {
        Ok(outcome) => outcome,
        Err(err) => Outcome::Failed(format!("{err:#}")),
    };
    line
}

/// Rebuilds the Backup a manifest describes, pointing at BackupRepo `repo`, in `namespace`
/// (else the manifest's own). Errors name the manifest and the field.
pub fn rebuild(
    manifest: &str,
    bytes: &[u8],
    repo: &str,
    namespace: Option<&str>,
) -> Result<Backup, String> {
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| format!("{manifest} is not JSON: {e}"))?;
    if let Some(kind) = value.get("kind").and_then(|k| k.as_str())
        && kind != "Backup"
    {
        return Err(format!("{manifest} holds a {kind}, not a Backup"));
    }
    let old: Backup = serde_json::from_value(value)
        .map_err(|e| format!("{manifest} is not a Backup object: {e}"))?;
    let name = old
        .metadata
        .name
        .clone()
        .filter(|n| !n.is_empty())
        .ok_or_else(|| format!("{manifest} has no metadata.name"))?;
    let namespace = namespace
        .map(str::to_string)
        .or(old.metadata.namespace.clone())
        .filter(|n| !n.is_empty())
        .ok_or_else(|| format!("{manifest} has no metadata.namespace: pass -n NAMESPACE"))?;
    let mut status = old.status.clone().unwrap_or_default();
    if status.phase != Some(BackupPhase::Completed) {
        let phase = status
            .phase
            .map(|p| format!("{p:?}"))
            .unwrap_or_else(|| "none".into());
        return Err(format!(
            "{manifest} records status.phase {phase}: only Completed backups are imported"
        ));
    }
    if let Some(kopia) = status.kopia_repo_path.as_deref().filter(|p| !p.is_empty()) {
        return Err(format!(
            "backup {name} was written through datasafed's kopia mode (status.kopiaRepoPath {kopia}), which Cairn does not read (see README, Coming from KubeBlocks)"
        ));
    }
    let path = status
        .path
        .clone()
        .filter(|p| !p.trim_matches('/').is_empty())
        .ok_or_else(|| format!("{manifest} has no status.path"))?;
    let data_dir = normalize(manifest.rsplit_once('/').map(|(d, _)| d).unwrap_or(""));
    let recorded = normalize(&path);
    if data_dir != recorded && !data_dir.starts_with(&format!("{recorded}/")) {
        return Err(format!(
            "{manifest} records status.path {path}, which does not hold it: the manifest was moved, import it from where it was written"
        ));
    }
    status.backup_repo_name = Some(repo.to_string());
    status.expiration = None;

    let mut labels = old.metadata.labels.clone().unwrap_or_default();
    if labels.contains_key(well_known::label::BACKUP_REPO) {
        labels.insert(well_known::label::BACKUP_REPO.into(), repo.to_string());
    }
    let mut annotations: BTreeMap<String, String> = old
        .metadata
        .annotations
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter(|(k, _)| !DROPPED_ANNOTATIONS.contains(&k.as_str()))
        .collect();
    annotations.insert(
        well_known::annotation::IMPORTED_FROM.into(),
        format!("{repo}:{manifest}"),
    );
    let mut spec = old.spec.clone();
    spec.deletion_policy = Some(BackupDeletionPolicy::Retain);
    spec.retention_period = None;
    let mut backup = Backup::new(&name, spec);
    backup.metadata.namespace = Some(namespace);
    backup.metadata.labels = Some(labels).filter(|l| !l.is_empty());
    backup.metadata.annotations = Some(annotations);
    backup.status = Some(status);
    Ok(backup)
}

/// Creates `backup` (with `apply`), or says what is there already.
async fn apply(scope: &Scope, backup: &Backup, apply: bool) -> anyhow::Result<Outcome> {
    let namespace = backup.metadata.namespace.clone().unwrap_or_default();
    let name = backup.metadata.name.clone().unwrap_or_default();
    let api: Api<Backup> = Api::namespaced(scope.client.clone(), &namespace);
    let existing = api
        .get_opt(&name)
        .await
        .with_context(|| format!("reading Backup {namespace}/{name}"))?;
    let source = imported_from(backup);
    let resume = match &existing {
        None => false,
        Some(old) if imported_from(old) == source => {
            let done = old.status.as_ref().and_then(|s| s.phase) == Some(BackupPhase::Completed);
            if done {
                return Ok(Outcome::Exists);
            }
            // An import interrupted before its status was written: finish it.
            true
        }
        Some(old) => {
            let status = old.status.clone().unwrap_or_default();
            bail!(
                "Backup {namespace}/{name} already exists and is another backup (repository {}, path {}): delete it or import into another namespace with -n",
                status.backup_repo_name.as_deref().unwrap_or("<none>"),
                status.path.as_deref().unwrap_or("<none>")
            );
        }
    };
    if !apply {
        return Ok(Outcome::WouldImport);
    }
    if !resume {
        // Created left alone by the control plane until its status says Completed.
        let mut object = backup.clone();
        object.status = None;
        object
            .metadata
            .annotations
            .get_or_insert_with(BTreeMap::new)
            .insert(
                well_known::annotation::SKIP_RECONCILIATION.into(),
                "true".into(),
            );
        api.create(&PostParams::default(), &object)
            .await
            .with_context(|| format!("creating Backup {namespace}/{name}"))?;
    }
    let status = json!({ "status": backup.status });
    api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .with_context(|| format!("writing the status of Backup {namespace}/{name}"))?;
    let release = json!({"metadata": {"annotations": {
        well_known::annotation::SKIP_RECONCILIATION: null
    }}});
    api.patch(&name, &PatchParams::default(), &Patch::Merge(&release))
        .await
        .with_context(|| format!("handing Backup {namespace}/{name} to the control plane"))?;
    Ok(Outcome::Imported)
}

fn imported_from(backup: &Backup) -> Option<String> {
    backup
        .metadata
        .annotations
        .as_ref()?
        .get(well_known::annotation::IMPORTED_FROM)
        .cloned()
}

/// `/a/b` for `a/b/`, `/a//b` and `/a/b`.
fn normalize(path: &str) -> String {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    format!("/{}", parts.join("/"))
}

/// The manifest's bytes, at most [`MANIFEST_LIMIT`].
async fn read(files: &PlainRepo, path: &str) -> anyhow::Result<Vec<u8>> {
    let (writer, reader) = tokio::io::duplex(64 * 1024);
    let fetch = files.get(path, writer, None, no_progress());
    let collect = async move {
        let mut bytes = Vec::new();
        let read = reader
            .take(MANIFEST_LIMIT + 1)
            .read_to_end(&mut bytes)
            .await;
        read.map(|_| bytes)
    };
    let (fetched, collected) = tokio::join!(fetch, collect);
    let bytes = collected.context("reading the manifest")?;
    if bytes.len() as u64 > MANIFEST_LIMIT {
        bail!("larger than {MANIFEST_LIMIT} bytes: not a Backup manifest");
    }
    fetched?;
    Ok(bytes)
}

/// The repository of a Tool BackupRepo, reached as agents reach it.
/// The repository as stored (names as they are: `.enc` files listed as such), and with the
/// passphrase when one is given (reads KubeBlocks' CFB `.enc` files and Cairn's sealed ones).
struct Files {
    plain: PlainRepo,
    keyed: Option<PlainRepo>,
}

async fn open_repository(
    client: &kube::Client,
    repo: &BackupRepo,
    key: Option<StreamKey>,
) -> anyhow::Result<Files> {
    let name = repo.metadata.name.clone().unwrap_or_default();
    if repo.spec.access_method == Some(AccessMethod::Mount) {
        bail!(
            "BackupRepo {name} has accessMethod Mount: its data is on a volume cairnctl cannot read; import through a Tool BackupRepo on the same storage"
        );
    }
    let provider_name = &repo.spec.storage_provider_ref;
    let provider = provider_spec(client, provider_name).await?;
    let secret = match &repo.spec.credential {
        None => None,
        Some(reference) => {
            let secret_name = reference.name.clone().unwrap_or_default();
            let secret_namespace = reference.namespace.clone().unwrap_or_default();
            let api: Api<KubeSecret> = Api::namespaced(client.clone(), &secret_namespace);
            let secret = api
                .get(&secret_name)
                .await
                .with_context(|| {
                    format!(
                        "reading the credential Secret {secret_namespace}/{secret_name} of BackupRepo {name}"
                    )
                })?;
            Some(string_data(&secret))
        }
    };
    let text = cairn_api::storage_template::datasafed_config(
        &provider,
        repo.spec.config.as_ref(),
        secret.as_ref(),
    )
    .with_context(|| format!("StorageProvider {provider_name} has no datasafedConfigTemplate"))?
    .with_context(|| format!("BackupRepo {name}: StorageProvider {provider_name}"))?;
    // The rendered text holds credentials: errors name only the kind of failure.
    let config = parse_datasafed_config(&text).map_err(|e| {
        anyhow::anyhow!(
            "the datasafed configuration rendered for BackupRepo {name} is not valid ({})",
            e.kind().label()
        )
    })?;
    let store = Store::open(&config).map_err(|e| {
        anyhow::anyhow!(
            "the storage of BackupRepo {name} cannot be opened ({})",
            e.kind().label()
        )
    })?;
    Ok(Files {
        plain: PlainRepo::new(store.clone(), None),
        keyed: key.map(|key| PlainRepo::new(store, Some(key))),
    })
}

async fn provider_spec(client: &kube::Client, name: &str) -> anyhow::Result<StorageProviderSpec> {
    let current: Api<StorageProvider> = Api::all(client.clone());
    if let Some(provider) = current
        .get_opt(name)
        .await
        .with_context(|| format!("reading StorageProvider {name}"))?
    {
        return Ok(provider.spec);
    }
    // The deprecated group may not be installed at all: any failure there is "not found".
    let legacy: Api<LegacyStorageProvider> = Api::all(client.clone());
    match legacy.get_opt(name).await {
        Ok(Some(provider)) => Ok(provider.spec.0),
        _ => bail!("there is no StorageProvider {name}"),
    }
}

fn string_data(secret: &KubeSecret) -> BTreeMap<String, String> {
    secret
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), String::from_utf8_lossy(&v.0).into_owned()))
        .collect()
}

/// The value of the Secret key `reference` (`SECRET/KEY`) in `namespace`; errors name the
/// Secret and key, never the value.
async fn secret_value(
    client: &kube::Client,
    namespace: &str,
    reference: &str,
    flag: &str,
) -> anyhow::Result<String> {
    let Some((secret_name, key)) = reference
        .split_once('/')
        .filter(|(s, k)| !s.is_empty() && !k.is_empty())
    else {
        bail!("{flag} {reference:?}: expected SECRET/KEY");
    };
    let api: Api<KubeSecret> = Api::namespaced(client.clone(), namespace);
    let secret = api
        .get(secret_name)
        .await
        .with_context(|| format!("reading Secret {namespace}/{secret_name} ({flag})"))?;
    let value = string_data(&secret)
        .remove(key)
        .filter(|v| !v.is_empty())
        .with_context(|| format!("Secret {namespace}/{secret_name} has no key {key} ({flag})"))?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(status: serde_json::Value) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "apiVersion": "dataprotection.kubeblocks.io/v1alpha1",
            "kind": "Backup",
            "metadata": {
                "name": "b1", "namespace": "old", "uid": "1234", "resourceVersion": "9",
                "finalizers": ["dataprotection.kubeblocks.io/finalizer"],
                "labels": {"dataprotection.kubeblocks.io/backup-repo-name": "s3-old",
                           "app.kubernetes.io/instance": "pg"},
                "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}",
                                "dataprotection.kubeblocks.io/skip-reconciliation": "true"}
            },
            "spec": {"backupPolicyName": "pg-policy", "backupMethod": "pg-basebackup",
                     "deletionPolicy": "Delete", "retentionPeriod": "7d"},
            "status": status
        }))
        .unwrap()
    }

    fn completed() -> serde_json::Value {
        json!({"phase": "Completed", "path": "/old/pg-uid/postgresql/b1",
               "backupRepoName": "s3-old", "expiration": "2020-01-01T00:00:00Z",
               "backupMethod": {"name": "pg-basebackup", "actionSetName": "pg-basebackup"}})
    }

    const AT: &str = "/old/pg-uid/postgresql/b1/postgresql/kubeblocks-backup.json";

    #[test]
    fn a_completed_manifest_becomes_a_retained_backup_of_the_named_repository() {
        let backup = rebuild(AT, &manifest(completed()), "new-repo", None).unwrap();
        assert_eq!(backup.metadata.name.as_deref(), Some("b1"));
        assert_eq!(backup.metadata.namespace.as_deref(), Some("old"));
        assert_eq!(backup.metadata.uid, None);
        assert_eq!(backup.metadata.resource_version, None);
        assert_eq!(backup.metadata.finalizers, None);
        let labels = backup.metadata.labels.clone().unwrap();
        assert_eq!(labels[well_known::label::BACKUP_REPO], "new-repo");
        assert_eq!(labels["app.kubernetes.io/instance"], "pg");
        let annotations = backup.metadata.annotations.clone().unwrap();
        assert_eq!(
            annotations.keys().collect::<Vec<_>>(),
            [well_known::annotation::IMPORTED_FROM]
        );
        assert_eq!(
            annotations[well_known::annotation::IMPORTED_FROM],
            format!("new-repo:{AT}")
        );
        assert_eq!(
            backup.spec.deletion_policy,
            Some(BackupDeletionPolicy::Retain)
        );
        assert_eq!(backup.spec.retention_period, None);
        let status = backup.status.unwrap();
        assert_eq!(status.backup_repo_name.as_deref(), Some("new-repo"));
        assert_eq!(status.expiration, None);
        assert_eq!(status.path.as_deref(), Some("/old/pg-uid/postgresql/b1"));
    }

    #[test]
    fn the_namespace_given_wins_over_the_manifests() {
        let backup = rebuild(AT, &manifest(completed()), "r", Some("new")).unwrap();
        assert_eq!(backup.metadata.namespace.as_deref(), Some("new"));
    }

    #[test]
    fn a_manifest_beside_its_data_at_the_backup_path_itself_is_accepted() {
        let at = "/old/pg-uid/postgresql/b1/kubeblocks-backup.json";
        assert!(rebuild(at, &manifest(completed()), "r", None).is_ok());
    }

    #[test]
    fn refusals_name_the_manifest_and_the_field() {
        let mut running = completed();
        running["phase"] = json!("Running");
        let err = rebuild(AT, &manifest(running), "r", None).unwrap_err();
        assert!(
            err.contains(AT) && err.contains("status.phase Running"),
            "{err}"
        );

        let mut no_path = completed();
        no_path.as_object_mut().unwrap().remove("path");
        let err = rebuild(AT, &manifest(no_path), "r", None).unwrap_err();
        assert!(err.contains("has no status.path"), "{err}");

        let mut elsewhere = completed();
        elsewhere["path"] = json!("/other/b1");
        let err = rebuild(AT, &manifest(elsewhere), "r", None).unwrap_err();
        assert!(err.contains("records status.path /other/b1"), "{err}");

        let mut kopia = completed();
        kopia["kopiaRepoPath"] = json!("/old/kopia");
        let err = rebuild(AT, &manifest(kopia), "r", None).unwrap_err();
        assert!(err.contains("kopia"), "{err}");

        let err = rebuild(AT, b"{not json", "r", None).unwrap_err();
        assert!(err.starts_with(&format!("{AT} is not JSON")), "{err}");

        let err = rebuild(AT, br#"{"kind":"Restore"}"#, "r", None).unwrap_err();
        assert!(err.contains("holds a Restore"), "{err}");
    }

    #[test]
    fn the_table_says_what_happened_to_each_manifest() {
        let lines = [
            Line {
                manifest: AT.into(),
                namespace: "old".into(),
                name: "b1".into(),
                method: "m".into(),
                path: "/old/b1".into(),
                outcome: Outcome::WouldImport,
            },
            Line {
                manifest: "/x/kubeblocks-backup.json.enc".into(),
                namespace: String::new(),
                name: String::new(),
                method: String::new(),
                path: String::new(),
                outcome: Outcome::Failed("it is encrypted".into()),
            },
        ];
        let text = table(&lines);
        assert!(text.contains("would import"), "{text}");
        assert!(text.contains("error: it is encrypted"), "{text}");
    }
}
