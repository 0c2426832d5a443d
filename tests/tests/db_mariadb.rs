//! MariaDB round trips on localkube through a Mount repository: a MariaDB pod (Debian's
//! server) is filled, backed up with `mariadb-backup --stream=mbstream` by a job on the target
//! pod's node into a BackupRepo whose access method is Mount (every namespace gets a repository
//! PVC, bound by localkube's local-path provisioner, seen by jobs at `/backupdata` and by the
//! node agent through the PVC's volume), restored with prepareData into a new PVC, started
//! again on it, and compared by row count and `CHECKSUM TABLE`. Changes made after the backup
//! must not come back; deleting the Backup removes its files from the repository PVC.
//! Once with KubeBlocks' own `mariadb-physical-backup` ActionSet, derived BackupPolicy and `pvc`
//! StorageProvider from `$CAIRN_KUBEBLOCKS_FIXTURES`; once with Cairn's own ActionSet and PVC
//! provider of the same shape.

use std::path::{Path, PathBuf};
use std::time::Duration;

use cairn_api::backup::Backup;
use cairn_api::backup_repo::BackupRepo;
use cairn_e2e::db::deploy::{self, PodSpec};
use cairn_e2e::db::mariadb::{self, Mariadb};
use cairn_e2e::db::round_trip::{self, Measured};
use cairn_e2e::db::{fixtures, host};
use cairn_e2e::manifests::render;
use cairn_e2e::stack::{self, TestStack};
use cairn_e2e::wait::{Check, until};
use kube::api::{Api, DeleteParams};

/// About 40 MiB of data directory (the table plus InnoDB's system files).
const ROWS: u64 = 120_000;
const USER: &str = "root";
const PASSWORD: &str = "maria-Secret-4b8a";

struct Case<'a> {
    label: &'a str,
    namespace: &'a str,
    instance: &'a str,
    component: &'a str,
    secret: &'a str,
    policy: &'a str,
    method: &'a str,
    repo: &'a str,
    /// Where the backup's stream lands, relative to the repository PVC's root.
    stream: &'a dyn Fn(&Backup) -> String,
}

/// The repository PVC of `repo` in `namespace`, as a directory on this host.
async fn repo_dir(t: &TestStack, repo: &str, namespace: &str) -> anyhow::Result<PathBuf> {
    let repo: BackupRepo = Api::all(t.client.clone()).get(repo).await?;
    let claim = repo
        .status
        .and_then(|s| s.backup_pvc_name)
        .ok_or_else(|| anyhow::anyhow!("the Mount repository names no backupPVCName"))?;
    cairn_e2e::dp::pvc_dir(&t.client, namespace, &claim).await
}

async fn round_trip(t: &TestStack, case: &Case<'_>) -> anyhow::Result<Measured> {
    cairn_e2e::dp::repo_ready(&t.client, case.repo, Duration::from_secs(120)).await?;
    deploy::account(t, case.namespace, case.secret, USER, PASSWORD).await?;
    let source_pod = format!("{}-{}-0", case.instance, case.component);
    let source_pvc = format!("data-{source_pod}");
    let source = deploy::pod(
        t,
        &PodSpec {
            template: mariadb::TEMPLATE,
            namespace: case.namespace,
            pod: &source_pod,
            pvc: &source_pvc,
            instance: case.instance,
            component: case.component,
            secret: case.secret,
            new_volume: true,
        },
    )
    .await?;
    let db = Mariadb {
        port: source.port,
        user: USER.into(),
        password: PASSWORD.into(),
    };
    db.load(ROWS).await?;
    let before = db.fingerprint().await?;
    assert_eq!(before.rows, ROWS);
    let data_bytes = host::dir_bytes(&source.data_dir)?;

    let backup_name = format!("{}-backup", case.instance);
    let (backup, backup_time) = round_trip::backup(
        t,
        case.namespace,
        "db/backup-to-repo.yaml",
        &[
            ("BACKUP", &backup_name),
            ("POLICY", case.policy),
            ("METHOD", case.method),
            ("REPO", case.repo),
        ],
    )
    .await?;
    let status = backup.status.clone().unwrap_or_default();
    assert_eq!(status.backup_repo_name.as_deref(), Some(case.repo));
    let repo_root = repo_dir(t, case.repo, case.namespace).await?;
    let stream = repo_root.join((case.stream)(&backup));
    let file_bytes = std::fs::metadata(&stream)
        .map_err(|e| anyhow::anyhow!("the backup stream {} is missing: {e}", stream.display()))?
        .len();
    assert!(file_bytes > 0, "{} is empty", stream.display());
    let path = status.path.clone().unwrap_or_default();
    let backup_dir = repo_root.join(path.trim_start_matches('/'));
    let manifest = backup_dir.join("kubeblocks-backup.json");
    let written: Backup = serde_json::from_slice(&std::fs::read(&manifest).map_err(|e| {
        anyhow::anyhow!(
            "the agent wrote no {} into the repository PVC: {e}",
            manifest.display()
        )
    })?)?;
    assert_eq!(written.metadata.name.as_deref(), Some(backup_name.as_str()));

    db.write_after_backup().await?;
    assert_ne!(db.fingerprint().await?, before);

    let restored_pvc = format!("{}-restored-data", case.instance);
    let restore_time = round_trip::restore(
        t,
        case.namespace,
        &format!("{}-restore", case.instance),
        &backup_name,
        &restored_pvc,
    )
    .await?;
    let restored_instance = format!("{}-restored", case.instance);
    let restored_pod = format!("{restored_instance}-0");
    let restored = deploy::pod(
        t,
        &PodSpec {
            template: mariadb::TEMPLATE,
            namespace: case.namespace,
            pod: &restored_pod,
            pvc: &restored_pvc,
            instance: &restored_instance,
            component: case.component,
            secret: case.secret,
            new_volume: false,
        },
    )
    .await?;
    let copy = Mariadb {
        port: restored.port,
        ..db.clone()
    };
    assert_eq!(
        copy.fingerprint().await?,
        before,
        "the restored table has the rows and checksum the backup saw"
    );

    // deletionPolicy Delete: the agent removes the backup's path from the repository PVC.
    let backups: Api<Backup> = Api::namespaced(t.client.clone(), case.namespace);
    backups
        .delete(&backup_name, &DeleteParams::default())
        .await?;
    cairn_e2e::dp::gone(&backups, &backup_name, Duration::from_secs(60)).await?;
    until(
        "the backup's directory to leave the repository PVC",
        Duration::from_secs(30),
        async || {
            Ok(if backup_dir.exists() {
                Check::Pending(format!("{} still exists", backup_dir.display()))
            } else {
                Check::Done(())
            })
        },
    )
    .await?;
    // A script that writes /backupdata itself moves nothing through the agent; its file is
    // the uncompressed stream.
    let streamed = match round_trip::streamed_bytes(&backup) {
        0 => file_bytes,
        counted => counted,
    };
    Ok(Measured {
        label: case.label.into(),
        data_bytes,
        stream_bytes: streamed,
        stored_bytes: file_bytes,
        backup: backup_time,
        restore: restore_time,
    })
}

/// KubeBlocks' restore script unpacks into the fixed host path `/tmp/data` (pods share the
/// host's /tmp here), so two such restores on one host must not overlap, and a leftover from an
/// interrupted run must go first.
fn lock_fixture_scratch() -> anyhow::Result<std::fs::File> {
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open("/tmp/cairn-e2e-mariadb-tmp-data.lock")?;
    lock.lock()?;
    let scratch = Path::new("/tmp/data");
    if scratch.exists() {
        println!("removing /tmp/data left by an interrupted mariadb-physical-backup restore");
        std::fs::remove_dir_all(scratch)?;
    }
    Ok(lock)
}

#[tokio::test(flavor = "multi_thread")]
async fn kubeblocks_mariadb_physical_backup_round_trip_through_a_mount_repository()
-> anyhow::Result<()> {
    let Some(dir) =
        fixtures::dir("kubeblocks_mariadb_physical_backup_round_trip_through_a_mount_repository")?
    else {
        return Ok(());
    };
    host::require(mariadb::TOOLS)?;
    let _scratch = tokio::task::spawn_blocking(lock_fixture_scratch).await??;
    stack::run("db-mariadb-kubeblocks", async |t| {
        for name in [
            "kb-0.9_helm_pvc_pvc.yaml",
            "addons-0.9_mariadb_actionset_mariadb-physical-backup.yaml",
            "derived-addons-0.9_mariadb_backuppolicytemplate_mariadb-backup-policy-template_0_mycluster-mariadb-compdef-backup-policy.yaml",
        ] {
            fixtures::apply(t, &dir, name).await?;
        }
        t.kubectl
            .apply(&render(
                "db/mount-repo.yaml",
                &[("REPO", "kb-pvc-repo"), ("PROVIDER", "pvc")],
            )?)
            .await?;
        // The ActionSet writes `${DATASAFED_LOCAL_BACKEND_PATH}/<backup>.mbstream`: the PVC's root.
        let stream = |b: &Backup| {
            format!(
                "{}.mbstream",
                b.metadata.name.as_deref().unwrap_or_default()
            )
        };
        let measured = round_trip(
            t,
            &Case {
                label: "mariadb (KubeBlocks mariadb-physical-backup, Mount repository)",
                namespace: "default",
                instance: "mycluster",
                component: "mariadb-compdef",
                secret: "mycluster-conn-credential",
                policy: "mycluster-mariadb-compdef-backup-policy",
                method: "mariadb-backup",
                repo: "kb-pvc-repo",
                stream: &stream,
            },
        )
        .await?;
        measured.report();
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn cairn_mariadb_actionset_round_trip_through_a_mount_repository() -> anyhow::Result<()> {
    host::require(mariadb::TOOLS)?;
    stack::run("db-mariadb-cairn", async |t| {
        let namespace = "shop";
        t.ensure_namespace(namespace).await?;
        t.kubectl
            .apply(&render("db/pvc-provider.yaml", &[])?)
            .await?;
        t.kubectl
            .apply(&render(
                "db/mount-repo.yaml",
                &[("REPO", "shop-pvc-repo"), ("PROVIDER", "cairn-pvc")],
            )?)
            .await?;
        t.kubectl
            .apply(&render(
                "db/mariadb.yaml",
                &[
                    ("CLUSTER", "orders"),
                    ("NS", namespace),
                    ("REPO", "shop-pvc-repo"),
                ],
            )?)
            .await?;
        // The ActionSet pushes through datasafed: the agent writes under the backup's path.
        let stream = |b: &Backup| {
            let status = b.status.clone().unwrap_or_default();
            format!(
                "{}/{}.mbstream.zst",
                status.path.unwrap_or_default().trim_start_matches('/'),
                b.metadata.name.as_deref().unwrap_or_default()
            )
        };
        let measured = round_trip(
            t,
            &Case {
                label: "mariadb (Cairn's mariadb-backup ActionSet, Mount repository)",
                namespace,
                instance: "orders",
                component: "mariadb",
                secret: "orders-mariadb-account",
                policy: "orders-mariadb-backup-policy",
                method: "mariadb-backup",
                repo: "shop-pvc-repo",
                stream: &stream,
            },
        )
        .await?;
        measured.report();
        Ok(())
    })
    .await
}
