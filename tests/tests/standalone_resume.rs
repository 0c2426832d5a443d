//! `cairnctl up` on a data directory that a previous run left: everything resumes as it was
//! (objects, the CA and certificates, the default repository), and the agent connects again.

use std::collections::BTreeMap;
use std::fs::Permissions;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use cairn_api::backup_repo::BackupRepo;
use cairn_cli::standalone::{Stack, StackOptions};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ObjectMeta, PostParams};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_up_on_the_same_data_dir_resumes_with_everything_as_it_was() -> anyhow::Result<()>
{
    let temp = tempfile::Builder::new()
        .prefix("cairn-e2e-resume-")
        .tempdir()?;
    let data_dir = temp.path().join("data");

    let first = Stack::up(StackOptions::new(&data_dir)).await?;
    let client = first.client().await?;
    let maps: Api<ConfigMap> = Api::namespaced(client, "default");
    let marker = ConfigMap {
        metadata: ObjectMeta {
            name: Some("before-restart".into()),
            ..Default::default()
        },
        data: Some(BTreeMap::from([("kept".to_string(), "yes".to_string())])),
        ..Default::default()
    };
    maps.create(&PostParams::default(), &marker).await?;
    let ca_before = std::fs::read(data_dir.join("tls/ca.pem"))?;
    let kubeconfig = first.kubeconfig.clone();
    first.shutdown().await?;
    assert_private(&data_dir)?;
    // A data directory an older version left open to every user is closed again.
    for (path, mode) in [
        ("", 0o755),
        ("kube", 0o755),
        ("kubeconfig", 0o644),
        ("stack.json", 0o644),
        ("kube/store.db", 0o644),
        ("logs/localkube.log", 0o644),
    ] {
        std::fs::set_permissions(data_dir.join(path), Permissions::from_mode(mode))?;
    }

    let second = Stack::up(StackOptions::new(&data_dir)).await?;
    anyhow::ensure!(
        second.kubeconfig == kubeconfig,
        "the kubeconfig moved from {} to {}",
        kubeconfig.display(),
        second.kubeconfig.display()
    );
    let client = second.client().await?;
    let kept = Api::<ConfigMap>::namespaced(client.clone(), "default")
        .get("before-restart")
        .await?;
    anyhow::ensure!(
        kept.data
            .unwrap_or_default()
            .get("kept")
            .map(String::as_str)
            == Some("yes"),
        "the object written before the restart is gone or changed"
    );
    anyhow::ensure!(
        std::fs::read(data_dir.join("tls/ca.pem"))? == ca_before,
        "the CA was regenerated instead of reused"
    );
    let repo = Api::<BackupRepo>::all(client).get("local").await?;
    let phase = repo
        .status
        .and_then(|s| s.phase)
        .map(|p| format!("{p:?}"))
        .unwrap_or_default();
    anyhow::ensure!(
        phase == "Ready",
        "BackupRepo local is {phase:?} after the restart"
    );
    second.shutdown().await?;
    assert_private(&data_dir)
}

/// The store holds every Secret: the data directory is 0700, the files with the store, the
/// credentials and the logs are 0600.
fn assert_private(data_dir: &Path) -> anyhow::Result<()> {
    let mode = |p: &str| -> anyhow::Result<u32> {
        Ok(std::fs::metadata(data_dir.join(p))?.permissions().mode() & 0o777)
    };
    for dir in ["", "kube", "tls", "logs"] {
        anyhow::ensure!(mode(dir)? == 0o700, "{dir:?} is {:o}", mode(dir)?);
    }
    for file in [
        "kubeconfig",
        "stack.json",
        "kube/store.db",
        "kube/kubeconfig",
        "kube/token",
        "kube/pki/ca.key",
        "logs/localkube.log",
        "logs/agent.log",
    ] {
        anyhow::ensure!(mode(file)? == 0o600, "{file} is {:o}", mode(file)?);
    }
    Ok(())
}
