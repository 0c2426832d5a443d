//! Redis round trips on localkube: a Redis pod (Debian's server) is filled with strings, hashes,
//! lists, sets and sorted sets, backed up by a job that runs on the target pod's node with the
//! pod's data volume mounted (`runOnTargetPodNode`) after a `BGSAVE`, restored with
//! prepareData into a new PVC, started again on it, and compared key by key (type and value
//! digest of every key). Changes made after the backup must not come back. Once with
//! KubeBlocks' own `redis-physical-backup` ActionSet and derived BackupPolicy from
//! `$CAIRN_KUBEBLOCKS_FIXTURES`, once with Cairn's own ActionSet of the same shape.

use cairn_e2e::db::deploy::{self, PodSpec};
use cairn_e2e::db::redis::{self, Redis};
use cairn_e2e::db::round_trip::{self, Measured};
use cairn_e2e::db::{fixtures, host};
use cairn_e2e::manifests::render;
use cairn_e2e::stack::{self, TestStack};

/// An RDB file of about 13 MiB.
const STRING_KEYS: u64 = 60_000;
const PASSWORD: &str = "redis-Secret-7c1e";

struct Case<'a> {
    label: &'a str,
    namespace: &'a str,
    instance: &'a str,
    component: &'a str,
    secret: &'a str,
    policy: &'a str,
    method: &'a str,
}

async fn round_trip(t: &TestStack, case: &Case<'_>) -> anyhow::Result<Measured> {
    deploy::account(t, case.namespace, case.secret, "default", PASSWORD).await?;
    let source_pod = format!("{}-{}-0", case.instance, case.component);
    let source_pvc = format!("data-{source_pod}");
    let source = deploy::pod(
        t,
        &PodSpec {
            template: redis::TEMPLATE,
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
    let db = Redis {
        port: source.port,
        password: PASSWORD.into(),
    };
    db.load(STRING_KEYS).await?;
    let before = db.digests().await?;
    assert!(before.len() as u64 > STRING_KEYS, "{} keys", before.len());

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
    // What the backup read: the RDB file the BGSAVE wrote into the data volume.
    let data_bytes = host::dir_bytes(&source.data_dir)?;
    let stored_bytes = round_trip::stored_bytes(&backup);
    let stream_bytes = round_trip::streamed_bytes(&backup);
    assert!(
        stream_bytes > stored_bytes,
        "the agent counted the pushed stream ({stream_bytes} bytes) and it was compressed ({stored_bytes} stored)"
    );
    assert!(stored_bytes > 0, "totalSize reaches the status");

    db.write_after_backup().await?;
    assert!(!redis::differences(&before, &db.digests().await?, 5).is_empty());

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
            template: redis::TEMPLATE,
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
    let copy = Redis {
        port: restored.port,
        password: PASSWORD.into(),
    };
    let after = copy.digests().await?;
    let differences = redis::differences(&before, &after, 20);
    assert!(
        differences.is_empty(),
        "the restored Redis differs from what the backup saw, key by key:\n{}",
        differences.join("\n")
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
async fn kubeblocks_redis_physical_backup_round_trip_restores_every_key() -> anyhow::Result<()> {
    let Some(dir) =
        fixtures::dir("kubeblocks_redis_physical_backup_round_trip_restores_every_key")?
    else {
        return Ok(());
    };
    host::require(redis::TOOLS)?;
    stack::run("db-redis-kubeblocks", async |t| {
        for name in [
            "addons-0.9_redis_backupactionset_redis-physical-backup.yaml",
            "derived-addons-0.9_redis_backuppolicytemplate_redis-backup-policy-template_0_mycluster-redis-backup-policy.yaml",
        ] {
            fixtures::apply(t, &dir, name).await?;
        }
        let measured = round_trip(
            t,
            &Case {
                label: "redis (KubeBlocks redis-physical-backup, Tool repository)",
                namespace: "default",
                instance: "mycluster",
                component: "redis",
                secret: "mycluster-conn-credential",
                policy: "mycluster-redis-backup-policy",
                method: "datafile",
            },
        )
        .await?;
        measured.report();
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn cairn_redis_actionset_round_trip_restores_every_key() -> anyhow::Result<()> {
    host::require(redis::TOOLS)?;
    stack::run("db-redis-cairn", async |t| {
        let namespace = "sessions";
        t.ensure_namespace(namespace).await?;
        t.kubectl
            .apply(&render(
                "db/redis.yaml",
                &[("CLUSTER", "cache"), ("NS", namespace)],
            )?)
            .await?;
        let measured = round_trip(
            t,
            &Case {
                label: "redis (Cairn's BGSAVE ActionSet, Tool repository)",
                namespace,
                instance: "cache",
                component: "redis",
                secret: "cache-redis-account",
                policy: "cache-redis-backup-policy",
                method: "rdb",
            },
        )
        .await?;
        measured.report();
        Ok(())
    })
    .await
}
