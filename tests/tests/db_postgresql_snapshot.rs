//! A PostgreSQL volume snapshot backup and restore on localkube (ARCHITECTURE.md §K2.5,
//! §K4.2a): a PostgreSQL 15 pod (Debian's server) on a CSI volume (StorageClass local-csi) is
//! filled; a `volume-snapshot` method whose preBackup hook runs `CHECKPOINT` in the database
//! container snapshots its data volume; rows written after the backup must not come back; a
//! Restore makes a new claim from the snapshot, and a PostgreSQL started on it holds exactly the
//! rows the backup saw (row count, a checksum over every row, the sum of a column).

use anyhow::ensure;
use cairn_api::backup::ActionPhase;
use cairn_e2e::db::deploy::{self, PodSpec};
use cairn_e2e::db::host;
use cairn_e2e::db::postgres::{self, Postgres};
use cairn_e2e::db::round_trip;
use cairn_e2e::manifests::render;
use cairn_e2e::stack;

/// About 10 MiB of table.
const ROWS: u64 = 40_000;
const USER: &str = "postgres";
const PASSWORD: &str = "pg-Snap-41c7";

#[tokio::test(flavor = "multi_thread")]
async fn a_postgresql_snapshot_taken_after_a_checkpoint_restores_every_row() -> anyhow::Result<()> {
    host::require(postgres::TOOLS)?;
    stack::run("db-pg-snapshot", async |t| {
        let ns = "ledgers";
        let cluster = "books";
        t.ensure_namespace(ns).await?;
        let secret = format!("{cluster}-postgresql-account");
        deploy::account(t, ns, &secret, USER, PASSWORD).await?;
        t.kubectl
            .apply(&render(
                "db/postgresql-snapshot.yaml",
                &[("CLUSTER", cluster), ("NS", ns)],
            )?)
            .await?;
        let source_pod = format!("{cluster}-postgresql-0");
        let source = deploy::pod(
            t,
            &PodSpec {
                template: postgres::TEMPLATE,
                namespace: ns,
                pod: &source_pod,
                pvc: &format!("data-{source_pod}"),
                instance: cluster,
                component: "postgresql",
                secret: &secret,
                // The manifest made the claim, on the CSI class.
                new_volume: false,
            },
        )
        .await?;
        let db = Postgres {
            port: source.port,
            user: USER.into(),
            password: PASSWORD.into(),
        };
        db.load(ROWS).await?;
        // Written after load's own CHECKPOINT: only the hook's CHECKPOINT (or WAL replay) puts
        // these rows in the data files the snapshot copies.
        db.sql("INSERT INTO accounts VALUES (0, 'just before the backup', 42, NULL)")
            .await?;
        let before = db.fingerprint().await?;
        ensure!(before.rows == ROWS + 1, "{before:?}");
        // PostgreSQL 15 counts requested checkpoints (the CHECKPOINT command) in pg_stat_bgwriter.
        let checkpoints = async |db: &Postgres| -> anyhow::Result<u64> {
            let out = db.sql("SELECT checkpoints_req FROM pg_stat_bgwriter").await?;
            Ok(out.trim().parse()?)
        };
        let requested_before = checkpoints(&db).await?;

        let backup_name = format!("{cluster}-snapshot");
        let (backup, backup_time) = round_trip::backup(
            t,
            ns,
            "db/backup.yaml",
            &[
                ("BACKUP", &backup_name),
                ("POLICY", &format!("{cluster}-postgresql-snapshot-policy")),
                ("METHOD", "volume-snapshot"),
            ],
        )
        .await?;
        let requested_after = checkpoints(&db).await?;
        ensure!(
            requested_after > requested_before,
            "the preBackup hook ran CHECKPOINT ({requested_before} -> {requested_after} requested checkpoints)"
        );
        let status = backup.status.clone().unwrap_or_default();
        let actions = status.actions.clone().unwrap_or_default();
        let names: Vec<_> = actions
            .iter()
            .map(|a| (a.name.clone().unwrap_or_default(), a.phase))
            .collect();
        ensure!(
            names
                == [
                    ("dp-prebackup-0-0".to_string(), Some(ActionPhase::Completed)),
                    ("createVolumeSnapshot-0".to_string(), Some(ActionPhase::Completed))
                ],
            "the checkpoint hook, then the snapshot: {names:?}"
        );
        let snapshot = format!("{backup_name}-0-data");
        ensure!(
            actions[1]
                .volume_snapshots
                .iter()
                .flatten()
                .any(|s| s.name.as_deref() == Some(snapshot.as_str())),
            "{actions:?}"
        );

        db.write_after_backup().await?;
        ensure!(db.fingerprint().await? != before, "the source changed");
        // Pods share the host's PID namespace on localkube: the copy of postmaster.pid in the
        // snapshot names the running source server, which a second server would take for a
        // live postmaster. Stop the source first, as a restore after a loss would.
        t.kubectl
            .run(&["delete", "pod", &source_pod, "-n", ns, "--timeout=60s"])
            .await?;

        let restored_pvc = format!("{cluster}-restored-data");
        let restore_name = format!("{cluster}-restore");
        let started = std::time::Instant::now();
        t.kubectl
            .create(&render(
                "db/snapshot-restore.yaml",
                &[
                    ("NS", ns),
                    ("RESTORE", &restore_name),
                    ("BACKUP", &backup_name),
                    ("PVC", &restored_pvc),
                ],
            )?)
            .await?;
        cairn_e2e::dp::restore_completed(&t.client, ns, &restore_name, round_trip::TIMEOUT)
            .await?;
        let restore_time = started.elapsed();
        let restored_pod = format!("{cluster}-restored-0");
        let restored = deploy::pod(
            t,
            &PodSpec {
                template: postgres::TEMPLATE,
                namespace: ns,
                pod: &restored_pod,
                pvc: &restored_pvc,
                instance: &format!("{cluster}-restored"),
                component: "postgresql",
                secret: &secret,
                new_volume: false,
            },
        )
        .await?;
        let copy = Postgres {
            port: restored.port,
            ..db.clone()
        };
        let after = copy.fingerprint().await?;
        ensure!(
            after == before,
            "the restored database holds exactly the rows the backup saw: {after:?} vs {before:?}"
        );
        let pvc = t
            .kubectl
            .get_json(&["pvc", &restored_pvc, "-n", ns])
            .await?;
        ensure!(
            pvc["spec"]["dataSource"]["name"] == snapshot.as_str(),
            "made from the snapshot: {pvc}"
        );
        eprintln!(
            "postgresql volume snapshot: {} bytes of data directory, backup {:.1?}, restore {:.1?} (to Completed)",
            host::dir_bytes(&restored.data_dir)?,
            backup_time,
            restore_time
        );
        Ok(())
    })
    .await
}
