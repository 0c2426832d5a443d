//! PostgreSQL round trips on localkube: a PostgreSQL 15 pod (Debian's server) is filled, backed
//! up with a physical `pg_basebackup` ActionSet through the default Tool repository, restored
//! with prepareData into a new PVC, started again on that volume, and compared by row count
//! and a checksum query over every row. Rows written after the backup must not come back.
//! Once with KubeBlocks' own `vanilla-pg-basebackup` ActionSet and derived BackupPolicy and
//! BackupSchedule, applied unchanged from `$CAIRN_KUBEBLOCKS_FIXTURES`; once with Cairn's own
//! ActionSet of the same shape (`tests/manifests/db/postgresql.yaml`).

use cairn_e2e::db::deploy::{self, Deployed, PodSpec};
use cairn_e2e::db::postgres::{self, Postgres};
use cairn_e2e::db::round_trip::{self, Measured};
use cairn_e2e::db::{fixtures, host};
use cairn_e2e::manifests::render;
use cairn_e2e::record::Recorder;
use cairn_e2e::stack::{self, TestStack};

/// About 40 MiB of data directory.
const ROWS: u64 = 150_000;
const USER: &str = "postgres";
const PASSWORD: &str = "pg-Secret-9d2f";

/// What differs between the two round trips.
struct Case<'a> {
    label: &'a str,
    namespace: &'a str,
    instance: &'a str,
    component: &'a str,
    secret: &'a str,
    policy: &'a str,
    method: &'a str,
}

/// Fills the source database, backs it up, writes more, restores into a new PVC, starts a new
/// server there and checks it holds exactly what the backup saw.
async fn round_trip(t: &TestStack, case: &Case<'_>) -> anyhow::Result<Measured> {
    deploy::account(t, case.namespace, case.secret, USER, PASSWORD).await?;
    let source_pod = format!("{}-{}-0", case.instance, case.component);
    let source_pvc = format!("data-{source_pod}");
    let source: Deployed = deploy::pod(
        t,
        &PodSpec {
            template: postgres::TEMPLATE,
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
    let db = Postgres {
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
        "db/backup.yaml",
        &[
            ("BACKUP", &backup_name),
            ("POLICY", case.policy),
            ("METHOD", case.method),
        ],
    )
    .await?;
    let status = backup.status.clone().unwrap_or_default();
    let stored_bytes = round_trip::stored_bytes(&backup);
    let stream_bytes = round_trip::streamed_bytes(&backup);
    assert!(
        stream_bytes > stored_bytes,
        "the agent counted the pushed stream ({stream_bytes} bytes) and it was compressed ({stored_bytes} stored)"
    );
    assert!(
        stored_bytes > 0,
        "the backup info file's totalSize reaches the status: {:?}",
        status.total_size
    );
    let range = status.time_range.clone().unwrap_or_default();
    assert!(
        range.start.is_some() && range.end.is_some(),
        "the backup info file's timeRange reaches the status: {range:?}"
    );
    let path = status.path.clone().unwrap_or_default();
    let file = t
        .local_repo()
        .join(path.trim_start_matches('/'))
        .join(format!("{backup_name}.tar.zst"));
    assert!(file.is_file(), "{} is in the repository", file.display());

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
            template: postgres::TEMPLATE,
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
    let copy = Postgres {
        port: restored.port,
        ..db.clone()
    };
    assert_eq!(
        copy.fingerprint().await?,
        before,
        "the restored database holds exactly the rows the backup saw"
    );
    Ok(Measured {
        label: case.label.into(),
        data_bytes,
        stream_bytes,
        stored_bytes,
        backup: backup_time,
        restore: restore_time,
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn kubeblocks_vanilla_pg_basebackup_round_trip_restores_every_row() -> anyhow::Result<()> {
    let Some(dir) =
        fixtures::dir("kubeblocks_vanilla_pg_basebackup_round_trip_restores_every_row")?
    else {
        return Ok(());
    };
    host::require(postgres::TOOLS)?;
    stack::run("db-pg-kubeblocks", async |t| {
        let recorder = Recorder::start(&t.client);
        for name in [
            "addons-0.9_vanilla-postgresql_actionset-pgbasebackup_vanilla-pg-basebackup.yaml",
            "derived-addons-0.9_vanilla-postgresql_backuppolicytemplate_vanilla-postgresql-backup-policy-template_0_mycluster-vanilla-postgresql-backup-policy.yaml",
            "derived-addons-0.9_vanilla-postgresql_backuppolicytemplate_vanilla-postgresql-backup-policy-template_0_mycluster-vanilla-postgresql-backup-schedule.yaml",
        ] {
            fixtures::apply(t, &dir, name).await?;
        }
        let measured = round_trip(
            t,
            &Case {
                label: "postgresql (KubeBlocks vanilla-pg-basebackup, Tool repository)",
                namespace: "default",
                instance: "mycluster",
                component: "vanilla-postgresql",
                secret: "mycluster-vanilla-postgresql-account-postgres",
                policy: "mycluster-vanilla-postgresql-backup-policy",
                method: "vanilla-pg-basebackup",
            },
        )
        .await?;
        measured.report();
        // The method's env (IMAGE_TAG 12.15) wins over the ActionSet's (14.7) in `$(IMAGE_TAG)`.
        let images = round_trip::job_images(&recorder.stop(), "dp-backup-");
        assert!(
            images.contains("docker.io/postgres:12.15"),
            "backup job images: {images:?}"
        );
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn cairn_postgresql_actionset_round_trip_restores_every_row() -> anyhow::Result<()> {
    host::require(postgres::TOOLS)?;
    stack::run("db-pg-cairn", async |t| {
        let namespace = "accounts";
        t.ensure_namespace(namespace).await?;
        t.kubectl
            .apply(&render(
                "db/postgresql.yaml",
                &[("CLUSTER", "ledger"), ("NS", namespace)],
            )?)
            .await?;
        let measured = round_trip(
            t,
            &Case {
                label: "postgresql (Cairn's pg_basebackup ActionSet, Tool repository)",
                namespace,
                instance: "ledger",
                component: "postgresql",
                secret: "ledger-postgresql-account",
                policy: "ledger-postgresql-backup-policy",
                method: "pg-basebackup",
            },
        )
        .await?;
        measured.report();
        Ok(())
    })
    .await
}
