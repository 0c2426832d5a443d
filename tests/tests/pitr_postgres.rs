//! PostgreSQL point-in-time recovery end to end, every part real: a PostgreSQL 15 server from
//! Debian's packages in a pod, Cairn's own Continuous ActionSet (`cairn-postgresql-wal-archive`
//! in `tests/manifests/db/postgresql-wal-archive.yaml`: `pg_receivewal` through a replication slot, WAL
//! pushed with `datasafed`) run as an archiver by a BackupSchedule, a `pg_basebackup` Full as
//! the base, rows written one by one at known times, then the accident (the table dropped). A
//! Restore with `restoreTime` T, a whole second between two writes, restores the base then the
//! WAL; PostgreSQL started on the restored volume replays to T and holds exactly the rows
//! committed up to T: none after, and the table the accident dropped. Nothing in the continuous
//! Backup's status is written by the test. `cairnctl backup windows` shows the window a restore
//! can reach (from the base to past the accident, no gap) and `cairnctl restore create
//! --to-time` refuses a time before it, naming the earliest restorable time. Real kubectl, localkube, control plane and agent,
//! each its own process.

use std::time::Duration;

use cairn_api::backup::Backup;
use cairn_e2e::db::deploy::{self, PodSpec};
use cairn_e2e::db::host;
use cairn_e2e::db::postgres::{self, Postgres};
use cairn_e2e::db::round_trip;
use cairn_e2e::dp;
use cairn_e2e::manifests::render;
use cairn_e2e::stack::{self, TestStack};
use cairn_e2e::wait::{Check, until};
use jiff::{SignedDuration, Timestamp};
use kube::api::Api;
use serde_json::json;

const NS: &str = "ledgers";
const CLUSTER: &str = "ledger";
const SECRET: &str = "ledger-postgresql-account";
const POLICY: &str = "ledger-postgresql-backup-policy";
const SCHEDULE: &str = "ledger-pitr";
const USER: &str = "postgres";
const PASSWORD: &str = "pg-Pitr-5e1a";
/// How long archiving may take to start or catch up (the machine is shared and loaded).
const WAIT: Duration = Duration::from_secs(180);
/// Rows written one by one after the base, this far apart.
const WRITES: usize = 16;
const WRITE_GAP: Duration = Duration::from_millis(350);
/// No row may have been written this close before T (its commit could fall after T).
const MARGIN: SignedDuration = SignedDuration::from_millis(150);

/// The schedule's continuous Backup, when there is one.
async fn continuous_backup(t: &TestStack) -> anyhow::Result<Option<Backup>> {
    dp::schedule_backup(&t.client, NS, SCHEDULE).await
}

/// Waits until the continuous Backup is Running with a window that ends at or after `after`.
async fn archived_past(t: &TestStack, after: Timestamp, what: &str) -> anyhow::Result<Backup> {
    until(what, WAIT, async || {
        let Some(backup) = continuous_backup(t).await? else {
            return Ok(Check::Pending("no continuous Backup yet".into()));
        };
        let phase = dp::backup_phase(&backup);
        if phase == "Failed" {
            anyhow::bail!(
                "the continuous Backup failed: {}",
                dp::failure_reason(&backup)
            );
        }
        let range = backup.status.as_ref().and_then(|s| s.time_range.clone());
        let end = range.as_ref().and_then(|r| r.end.as_ref()).map(|e| e.0);
        Ok(match end {
            Some(end) if phase == "Running" && end >= after => Check::Done(backup),
            _ => Check::Pending(format!("{phase}, window {range:?}")),
        })
    })
    .await
}

/// What a `cairnctl` run printed.
#[derive(Debug)]
struct Output {
    status: std::process::ExitStatus,
    stdout: String,
    stderr: String,
}

/// Runs `cairnctl ARGS` against the stack as its own process.
async fn cairnctl(t: &TestStack, args: &[&str]) -> anyhow::Result<Output> {
    let out = tokio::process::Command::new(t.stack.bin_dir.join("cairnctl"))
        .args(args)
        .arg("--kubeconfig")
        .arg(&t.stack.kubeconfig)
        .env("NO_COLOR", "1")
        .output()
        .await?;
    Ok(Output {
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

/// The latest whole second T with rows written before and after it and none in the margin
/// just before it.
fn restore_point(written: &[(i64, Timestamp)]) -> Option<Timestamp> {
    let first = written.first()?.1;
    let last = written.last()?.1;
    let mut candidate = Timestamp::from_second(last.as_second()).ok()?;
    while candidate > first {
        let lower = candidate.checked_sub(MARGIN).ok()?;
        let too_close = written
            .iter()
            .any(|(_, at)| *at <= candidate && *at > lower);
        let before = written.iter().filter(|(_, at)| *at <= candidate).count();
        if !too_close && before >= 2 && before < written.len() - 1 {
            return Some(candidate);
        }
        candidate = candidate.checked_sub(SignedDuration::from_secs(1)).ok()?;
    }
    None
}

#[tokio::test(flavor = "multi_thread")]
async fn postgresql_restores_to_a_point_in_time_exact_to_the_second() -> anyhow::Result<()> {
    host::require(postgres::TOOLS)?;
    host::require(&["pg_receivewal"])?;
    stack::run("pitr-postgres", async |t| {
        t.ensure_namespace(NS).await?;
        t.kubectl
            .apply(&render(
                "db/postgresql.yaml",
                &[("CLUSTER", CLUSTER), ("NS", NS)],
            )?)
            .await?;
        t.kubectl
            .apply(&render("db/postgresql-wal-archive.yaml", &[])?)
            .await?;
        deploy::account(t, NS, SECRET, USER, PASSWORD).await?;
        let source_pod = format!("{CLUSTER}-postgresql-0");
        let source = deploy::pod(
            t,
            &PodSpec {
                template: postgres::TEMPLATE,
                namespace: NS,
                pod: &source_pod,
                pvc: &format!("data-{source_pod}"),
                instance: CLUSTER,
                component: "postgresql",
                secret: SECRET,
                new_volume: true,
            },
        )
        .await?;
        let db = Postgres {
            port: source.port,
            user: USER.into(),
            password: PASSWORD.into(),
        };
        db.sql("CREATE TABLE events (id bigint PRIMARY KEY, note text NOT NULL, written_at timestamptz NOT NULL DEFAULT clock_timestamp())")
            .await?;
        db.sql("INSERT INTO events (id, note) VALUES (1, 'before the base')")
            .await?;

        // Continuous archiving from the schedule's entry.
        let schedule = json!({
            "apiVersion": "dataprotection.kubeblocks.io/v1alpha1", "kind": "BackupSchedule",
            "metadata": {"name": SCHEDULE, "namespace": NS},
            "spec": {"backupPolicyName": POLICY, "schedules": [{
                "name": "wal", "backupMethod": "wal-archive", "enabled": true,
                "cronExpression": "*/5 * * * *", "retentionPeriod": "1d"}]}
        });
        t.kubectl.apply(&serde_json::to_string(&schedule)?).await?;
        let archiving = archived_past(t, Timestamp::UNIX_EPOCH, "WAL archiving to start").await?;
        let continuous = archiving.metadata.name.clone().unwrap_or_default();

        // The base, then rows one by one at known times, then the accident.
        let (base, _) = round_trip::backup(
            t,
            NS,
            "db/backup.yaml",
            &[
                ("BACKUP", "ledger-base"),
                ("POLICY", POLICY),
                ("METHOD", "pg-basebackup"),
            ],
        )
        .await?;
        let base_end = base
            .status
            .as_ref()
            .and_then(|s| s.time_range.as_ref())
            .and_then(|r| r.end.clone())
            .ok_or_else(|| anyhow::anyhow!("the base has no time range"))?
            .0;
        // Writes start in the second after the base's end (a restore time must not be earlier).
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let mut written = Vec::new();
        for i in 0..WRITES {
            let id = 100 + i as i64;
            let at = db
                .sql(&format!(
                    "INSERT INTO events (id, note) VALUES ({id}, 'write {i}') RETURNING extract(epoch FROM written_at)::numeric(20,6)"
                ))
                .await?;
            let micros = (at.trim().parse::<f64>()? * 1e6).round() as i64;
            written.push((id, Timestamp::from_microsecond(micros)?));
            tokio::time::sleep(WRITE_GAP).await;
        }
        db.sql("DROP TABLE events").await?;
        let accident = Timestamp::now();
        println!("writes: {written:?}, accident at {accident}");

        let restore_at = restore_point(&written)
            .ok_or_else(|| anyhow::anyhow!("no whole second to restore to in {written:?}"))?;
        anyhow::ensure!(restore_at > base_end, "T {restore_at} after the base's end {base_end}");
        let expected: Vec<i64> = std::iter::once(1)
            .chain(
                written
                    .iter()
                    .filter(|(_, at)| *at <= restore_at)
                    .map(|(id, _)| *id),
            )
            .collect();

        // The archive reaches past the accident.
        archived_past(
            t,
            accident.checked_add(SignedDuration::from_secs(1))?,
            "the window to reach past the accident",
        )
        .await?;

        // `cairnctl backup windows` (its own process) shows what a restore can reach: one span,
        // from a base's end up to past the accident, with no gap.
        let table = cairnctl(t, &["backup", "windows", "-n", NS]).await?;
        anyhow::ensure!(
            table.status.success()
                && table
                    .stdout
                    .lines()
                    .any(|l| l.starts_with(POLICY) && l.contains(CLUSTER)),
            "backup windows lists the policy's window: {table:?}"
        );
        let json = cairnctl(t, &["backup", "windows", "-n", NS, "--json"]).await?;
        let windows: serde_json::Value = serde_json::from_str(json.stdout.trim())?;
        let window = windows
            .as_array()
            .and_then(|all| all.iter().find(|w| w["policy"] == POLICY))
            .ok_or_else(|| anyhow::anyhow!("no window of {POLICY}: {windows}"))?;
        let time = |key: &str| -> anyhow::Result<Timestamp> {
            let text = window[key]
                .as_str()
                .ok_or_else(|| anyhow::anyhow!("window without {key}: {window}"))?;
            Ok(cairn_api::parse::restore_time::parse(text)?)
        };
        let (first, last) = (time("first")?, time("last")?);
        let continuous_start = archiving
            .status
            .as_ref()
            .and_then(|s| s.time_range.as_ref())
            .and_then(|r| r.start.clone())
            .ok_or_else(|| anyhow::anyhow!("the continuous backup has no start"))?
            .0;
        anyhow::ensure!(
            continuous_start <= first
                && first <= restore_at
                && last >= Timestamp::from_second(accident.as_second())?
                && window["gaps"].as_array().is_some_and(Vec::is_empty),
            "the window reaches from a base after the archive's start ({continuous_start}) to past the accident ({accident}), T {restore_at} inside: {window}"
        );

        // A time before the window is refused before anything is created, naming the earliest.
        let too_early = cairn_api::parse::restore_time::format(
            first.checked_sub(SignedDuration::from_secs(1))?,
        );
        let refused = cairnctl(
            t,
            &[
                "restore", "create", "too-early", "--backup", &continuous, "--to-time", &too_early,
                "--pvc", "too-early-data", "-n", NS,
            ],
        )
        .await?;
        let earliest = format!(
            "the earliest restorable time is {}",
            cairn_api::parse::restore_time::format(first)
        );
        anyhow::ensure!(
            !refused.status.success() && refused.stderr.contains(&earliest),
            "restore create --to-time {too_early} is refused with {earliest:?}: {refused:?}"
        );
        let restores: Api<cairn_api::restore::Restore> = Api::namespaced(t.client.clone(), NS);
        anyhow::ensure!(
            restores.get_opt("too-early").await?.is_none(),
            "nothing was created for a time outside the window"
        );

        let restore_time = cairn_api::parse::restore_time::format(restore_at);
        let restored_pvc = "ledger-pitr-data";
        let restore = json!({
            "apiVersion": "dataprotection.kubeblocks.io/v1alpha1", "kind": "Restore",
            "metadata": {"name": "ledger-pitr", "namespace": NS},
            "spec": {
                "backup": {"name": continuous, "namespace": NS},
                "restoreTime": restore_time,
                "prepareDataConfig": {"volumeClaimRestorePolicy": "Parallel", "volumeClaims": [{
                    "metadata": {"name": restored_pvc, "namespace": NS},
                    "volumeSource": "data",
                    "volumeClaimSpec": {"accessModes": ["ReadWriteOnce"],
                                        "resources": {"requests": {"storage": "2Gi"}}}}]}
            }
        });
        t.kubectl.create(&serde_json::to_string(&restore)?).await?;
        let done = dp::restore_completed(&t.client, NS, "ledger-pitr", WAIT).await?;
        let sets: Vec<String> = done
            .status
            .and_then(|s| s.actions)
            .and_then(|a| a.prepare_data)
            .unwrap_or_default()
            .into_iter()
            .map(|a| a.backup_name)
            .collect();
        anyhow::ensure!(
            sets == ["ledger-base".to_string(), continuous.clone()],
            "the base, then the WAL: {sets:?}"
        );

        let restored = deploy::pod(
            t,
            &PodSpec {
                template: postgres::TEMPLATE,
                namespace: NS,
                pod: "ledger-restored-0",
                pvc: restored_pvc,
                instance: "ledger-restored",
                component: "postgresql",
                secret: SECRET,
                new_volume: false,
            },
        )
        .await?;
        let copy = Postgres {
            port: restored.port,
            ..db.clone()
        };
        let in_recovery = copy.sql("SELECT pg_is_in_recovery()").await?;
        anyhow::ensure!(in_recovery.trim() == "f", "the restored server was promoted");
        let rows: Vec<i64> = copy
            .sql("SELECT id FROM events ORDER BY id")
            .await?
            .lines()
            .map(str::parse)
            .collect::<Result<_, _>>()?;
        anyhow::ensure!(
            rows == expected,
            "restored to {restore_time}: rows {rows:?}, expected exactly those written up to it {expected:?} (writes {written:?})"
        );
        Ok(())
    })
    .await
}
