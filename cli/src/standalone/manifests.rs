//! The objects standalone mode installs: a `local` StorageProvider whose datasafed template
//! points at a directory, and a default `local` BackupRepo using it (Tool access method).

use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use cairn_api::backup_repo::BackupRepo;
use cairn_api::storage_provider::StorageProvider;
use cairn_api::well_known;
use kube::api::{Api, PostParams};
use serde_json::json;

/// Name of the provider and repository standalone mode installs.
pub const LOCAL: &str = "local";

/// The `local` StorageProvider.
pub fn local_provider() -> anyhow::Result<StorageProvider> {
    serde_json::from_value(json!({
        "apiVersion": "dataprotection.kubeblocks.io/v1alpha1",
        "kind": "StorageProvider",
        "metadata": {"name": LOCAL, "labels": {well_known::label::MANAGED_BY: "cairn"}},
        "spec": {
            "datasafedConfigTemplate": "[storage]\ntype = local\nroot = {{ index .Parameters \"path\" }}\n",
            "parametersSchema": {
                "openAPIV3Schema": {
                    "type": "object",
                    "properties": {
                        "path": {"type": "string", "description": "Directory holding the repository on every node"}
                    },
                    "required": ["path"]
                }
            }
        }
    }))
    .context("building the local StorageProvider")
}

/// The default `local` BackupRepo on `dir`.
pub fn local_repo(dir: &Path) -> anyhow::Result<BackupRepo> {
    serde_json::from_value(json!({
        "apiVersion": "dataprotection.kubeblocks.io/v1alpha1",
        "kind": "BackupRepo",
        "metadata": {
            "name": LOCAL,
            "labels": {well_known::label::MANAGED_BY: "cairn"},
            "annotations": {well_known::annotation::DEFAULT_REPO: "true"}
        },
        "spec": {
            "storageProviderRef": LOCAL,
            "accessMethod": "Tool",
            "pvReclaimPolicy": "Retain",
            "config": {"path": dir.display().to_string()}
        }
    }))
    .context("building the local BackupRepo")
}

/// Creates the provider and repository when missing, and waits until the repository is Ready.
pub async fn install_local_repository(client: &kube::Client, dir: &Path) -> anyhow::Result<()> {
    let providers: Api<StorageProvider> = Api::all(client.clone());
    if providers.get_opt(LOCAL).await?.is_none() {
        providers
            .create(&PostParams::default(), &local_provider()?)
            .await
            .context("creating StorageProvider local")?;
    }
    let repos: Api<BackupRepo> = Api::all(client.clone());
    if repos.get_opt(LOCAL).await?.is_none() {
        repos
            .create(&PostParams::default(), &local_repo(dir)?)
            .await
            .context("creating BackupRepo local")?;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let repo = repos.get(LOCAL).await.context("reading BackupRepo local")?;
        let status = repo.status.clone().unwrap_or_default();
        match status.phase {
            Some(cairn_api::backup_repo::BackupRepoPhase::Ready) => return Ok(()),
            Some(cairn_api::backup_repo::BackupRepoPhase::Failed) => {
                let why = status
                    .conditions
                    .iter()
                    .flatten()
                    .filter(|c| c.status != "True")
                    .map(|c| format!("{}: {}", c.type_, c.message))
                    .collect::<Vec<_>>()
                    .join("; ");
                anyhow::bail!("BackupRepo local failed its pre-check: {why}");
            }
            _ => {}
        }
        if tokio::time::Instant::now() > deadline {
            anyhow::bail!(
                "BackupRepo local did not become Ready within 60s (phase {:?})",
                status.phase
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
