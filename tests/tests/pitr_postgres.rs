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
use kube::api::{Api, ListParams};
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

/// The source server (`ledger-postgresql-0`, rows table `events` with row 1 written) and the
/// schedule's continuous Backup, once it archives.
async fn archiving_source(t: &TestStack) -> anyhow::Result<(Postgres, Backup)> {
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
    Ok((db, archiving))
}

/// A `pg_basebackup` Full named `name`, and the end of its time range.
async fn base_backup(t: &TestStack, name: &str) -> anyhow::Result<Timestamp> {
    let (base, _) = round_trip::backup(
        t,
        NS,
        "db/backup.yaml",
        &[
            ("BACKUP", name),
            ("POLICY", POLICY),
            ("METHOD", "pg-basebackup"),
        ],
    )
    .await?;
    Ok(base
        .status
        .as_ref()
        .and_then(|s| s.time_range.as_ref())
        .and_then(|r| r.end.clone())
        .ok_or_else(|| anyhow::anyhow!("the base {name} has no time range"))?
        .0)
}

/// Restores `continuous` to `at` into a new volume, starts PostgreSQL on it and returns the ids
/// of its `events` rows, with the sets the Restore replayed.
async fn restore_rows(
    t: &TestStack,
    db: &Postgres,
    continuous: &str,
    at: Timestamp,
    name: &str,
) -> anyhow::Result<(Vec<i64>, Vec<String>)> {
    let restored_pvc = format!("{name}-data");
    let restore = json!({
        "apiVersion": "dataprotection.kubeblocks.io/v1alpha1", "kind": "Restore",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "backup": {"name": continuous, "namespace": NS},
            "restoreTime": cairn_api::parse::restore_time::format(at),
            "prepareDataConfig": {"volumeClaimRestorePolicy": "Parallel", "volumeClaims": [{
                "metadata": {"name": restored_pvc, "namespace": NS},
                "volumeSource": "data",
                "volumeClaimSpec": {"accessModes": ["ReadWriteOnce"],
                                    "resources": {"requests": {"storage": "2Gi"}}}}]}
        }
    });
    t.kubectl.create(&serde_json::to_string(&restore)?).await?;
    let done = dp::restore_completed(&t.client, NS, name, WAIT).await?;
    let sets: Vec<String> = done
        .status
        .and_then(|s| s.actions)
        .and_then(|a| a.prepare_data)
        .unwrap_or_default()
        .into_iter()
        .map(|a| a.backup_name)
        .collect();
    let restored = deploy::pod(
        t,
        &PodSpec {
            template: postgres::TEMPLATE,
            namespace: NS,
            pod: &format!("{name}-0"),
            pvc: &restored_pvc,
            instance: name,
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
    anyhow::ensure!(
        in_recovery.trim() == "f",
        "the restored server was promoted"
    );
    let rows: Vec<i64> = copy
        .sql("SELECT id FROM events ORDER BY id")
        .await?
        .lines()
        .map(str::parse)
        .collect::<Result<_, _>>()?;
    Ok((rows, sets))
}

#[tokio::test(flavor = "multi_thread")]
async fn postgresql_restores_to_a_point_in_time_exact_to_the_second() -> anyhow::Result<()> {
    host::require(postgres::TOOLS)?;
    host::require(&["pg_receivewal"])?;
    stack::run("pitr-postgres", async |t| {
        let (db, archiving) = archiving_source(t).await?;
        let continuous = archiving.metadata.name.clone().unwrap_or_default();

        // The base, then rows one by one at known times, then the accident.
        let base_end = base_backup(t, "ledger-base").await?;
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
        let (rows, sets) = restore_rows(t, &db, &continuous, restore_at, "ledger-pitr").await?;
        anyhow::ensure!(
            sets == ["ledger-base".to_string(), continuous.clone()],
            "the base, then the WAL: {sets:?}"
        );
        anyhow::ensure!(
            rows == expected,
            "restored to {restore_time}: rows {rows:?}, expected exactly those written up to it {expected:?} (writes {written:?})"
        );
        Ok(())
    })
    .await
}

/// `kill -9` of the process group of every archiver container of this stack (the archiver's
/// shell and its `pg_receivewal`), found from localkube's records of its container processes.
fn kill9_archivers(t: &TestStack) -> anyhow::Result<usize> {
    let records = t.data_dir.join("kube/kubelet/processes");
    let mut killed = 0;
    for entry in std::fs::read_dir(&records)?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline).contains("cairn-postgresql-wal-archiver") {
            std::process::Command::new("kill")
                .args(["-9", "--", &format!("-{pid}")])
                .status()?;
            killed += 1;
        }
    }
    Ok(killed)
}

/// Writes row `id` and returns its commit time (`clock_timestamp()` at the insert).
async fn write_row(db: &Postgres, id: i64, note: &str) -> anyhow::Result<Timestamp> {
    let at = db
        .sql(&format!(
            "INSERT INTO events (id, note) VALUES ({id}, '{note}') RETURNING extract(epoch FROM written_at)::numeric(20,6)"
        ))
        .await?;
    let micros = (at.trim().parse::<f64>()? * 1e6).round() as i64;
    Ok(Timestamp::from_microsecond(micros)?)
}

/// `(start, end, gaps)` of the continuous Backup.
fn range_and_gaps(
    backup: &Backup,
) -> (
    Option<Timestamp>,
    Option<Timestamp>,
    Vec<(Timestamp, Timestamp)>,
) {
    let status = backup.status.clone().unwrap_or_default();
    let range = status.time_range.unwrap_or_default();
    let gaps = status
        .gaps
        .unwrap_or_default()
        .into_iter()
        .map(|g| (g.start.0, g.end.0))
        .collect();
    (range.start.map(|t| t.0), range.end.map(|t| t.0), gaps)
}

fn condition(backup: &Backup, type_: &str) -> Option<(String, String)> {
    backup
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status.clone(), c.message.clone()))
}

#[tokio::test(flavor = "multi_thread")]
async fn postgresql_archive_survives_kill9_without_a_gap_and_reports_a_real_gap()
-> anyhow::Result<()> {
    host::require(postgres::TOOLS)?;
    host::require(&["pg_receivewal"])?;
    stack::run("pitr-postgres-gaps", async |t| {
        let (db, archiving) = archiving_source(t).await?;
        let continuous = archiving.metadata.name.clone().unwrap_or_default();
        let (start, _, _) = range_and_gaps(&archiving);
        base_backup(t, "ledger-base").await?;
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let row_2 = write_row(&db, 2, "archived").await?;

        // 1. kill -9 of the archiver (its shell and pg_receivewal) and of the agent, a row
        //    written while they are down: the slot keeps the WAL, so when they are back the
        //    window goes on from the same start, with no gap.
        let killed = kill9_archivers(t)?;
        anyhow::ensure!(killed > 0, "the archiver's process is found");
        t.stack.agent().kill9();
        let row_3 = write_row(&db, 3, "written while the archiver was down").await?;
        tokio::time::sleep(Duration::from_secs(3)).await;
        t.stack.restart_agent().await?;
        let back = archived_past(
            t,
            row_3.checked_add(SignedDuration::from_secs(1))?,
            "the window to go on after kill -9 of the archiver and the agent",
        )
        .await?;
        let (same_start, old_end, gaps) = range_and_gaps(&back);
        anyhow::ensure!(
            same_start == start && gaps.is_empty() && condition(&back, "ArchiveGap").is_none(),
            "after kill -9 the window keeps its start {start:?} with no gap: {:?}",
            back.status
        );
        let old_end = old_end.ok_or_else(|| anyhow::anyhow!("no end"))?;

        // 2. A real gap: the agent down (the archiver cannot reach the repository, so it stops)
        //    while the server's WAL retention (max_slot_wal_keep_size) is exceeded and the slot
        //    is invalidated; the WAL of that time is gone.
        db.sql("CREATE TABLE filler (note text NOT NULL)").await?;
        db.sql("ALTER SYSTEM SET max_slot_wal_keep_size = '16MB'").await?;
        db.sql("SELECT pg_reload_conf()").await?;
        t.stack.agent().kill9();
        kill9_archivers(t)?;
        let down_at = Timestamp::now();
        let row_4 = write_row(&db, 4, "lost with the WAL").await?;
        until("the server to invalidate the archive's slot", WAIT, async || {
            for _ in 0..4 {
                db.sql("INSERT INTO filler SELECT repeat('x', 100) FROM generate_series(1, 999)")
                    .await?;
                db.sql("SELECT pg_switch_wal()").await?;
            }
            db.sql("CHECKPOINT").await?;
            let status = db
                .sql("SELECT coalesce(wal_status, 'none') FROM pg_replication_slots WHERE slot_name = 'cairn_wal_archive'")
                .await?;
            Ok(if status.trim() == "lost" {
                Check::Done(())
            } else {
                Check::Pending(format!("slot {}", status.trim()))
            })
        })
        .await?;
        db.sql("ALTER SYSTEM RESET max_slot_wal_keep_size").await?;
        db.sql("SELECT pg_reload_conf()").await?;
        tokio::time::sleep(Duration::from_secs(2)).await;
        t.stack.restart_agent().await?;

        // The Backup says so: the gap in status.gaps, from the end archived before to the new
        // window's start, a condition and a Warning event; the window keeps its start.
        let gapped = until("the gap to be reported", WAIT, async || {
            let Some(backup) = continuous_backup(t).await? else {
                return Ok(Check::Pending("no continuous Backup".into()));
            };
            let (_, _, gaps) = range_and_gaps(&backup);
            Ok(if gaps.is_empty() {
                Check::Pending(format!("no gap yet: {:?}", backup.status))
            } else {
                Check::Done(backup)
            })
        })
        .await?;
        let (kept_start, _, gaps) = range_and_gaps(&gapped);
        anyhow::ensure!(
            kept_start == start && gaps.len() == 1,
            "one gap, the window's start kept ({start:?}): {:?}",
            gapped.status
        );
        let (gap_start, gap_end) = gaps[0];
        anyhow::ensure!(
            gap_start >= old_end && gap_start <= down_at && gap_end > row_4,
            "the gap runs from the last end archived ({gap_start}, after {old_end}, before the agent went down at {down_at}) to the new window's start ({gap_end}, after the lost row at {row_4})"
        );
        let gap_text = format!(
            "from {} to {}",
            cairn_api::parse::restore_time::format(gap_start),
            cairn_api::parse::restore_time::format(gap_end)
        );
        let condition = condition(&gapped, "ArchiveGap");
        anyhow::ensure!(
            condition
                .as_ref()
                .is_some_and(|(status, message)| status == "True" && message.contains(&gap_text)),
            "condition ArchiveGap True naming {gap_text}: {condition:?}"
        );
        // Recorded as core/v1 Events (as the API server shows events.k8s.io ones).
        let events: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(t.client.clone(), NS);
        let warned = events
            .list(&ListParams::default())
            .await?
            .items
            .into_iter()
            .filter(|e| e.reason.as_deref() == Some("ArchiveGap"))
            .filter(|e| e.type_.as_deref() == Some("Warning"))
            .filter(|e| e.involved_object.name.as_deref() == Some(continuous.as_str()))
            .filter_map(|e| e.message)
            .collect::<Vec<_>>();
        anyhow::ensure!(
            warned.len() == 1 && warned[0].contains(&gap_text),
            "one Warning event ArchiveGap naming {gap_text}: {warned:?}"
        );

        // A new base after the gap, a row, archived.
        let base_after = base_backup(t, "ledger-base-after-gap").await?;
        let row_5 = write_row(&db, 5, "after the gap").await?;
        archived_past(
            t,
            row_5.checked_add(SignedDuration::from_secs(1))?,
            "the window to reach past the row after the gap",
        )
        .await?;

        // `cairnctl backup windows`: the window split in two, the gap from the last end archived
        // before it to the base after it.
        let json = cairnctl(t, &["backup", "windows", "-n", NS, "--json"]).await?;
        let windows: serde_json::Value = serde_json::from_str(json.stdout.trim())?;
        let window = windows
            .as_array()
            .and_then(|all| all.iter().find(|w| w["policy"] == POLICY))
            .ok_or_else(|| anyhow::anyhow!("no window of {POLICY}: {windows}"))?;
        let format = cairn_api::parse::restore_time::format;
        anyhow::ensure!(
            window["spans"].as_array().map(Vec::len) == Some(2)
                && window["gaps"]
                    == json!([{"from": format(gap_start), "to": format(base_after)}]),
            "two spans, the gap from {} to the base after it {}: {window}",
            format(gap_start),
            format(base_after)
        );
        let table = cairnctl(t, &["backup", "windows", "-n", NS]).await?;
        let said = format!("gap from {} to {}", format(gap_start), format(base_after));
        anyhow::ensure!(
            table.stdout.contains(&said),
            "backup windows says {said:?}: {table:?}"
        );

        // A time inside the gap: refused by cairnctl before anything is created, and a Restore
        // asking for it fails naming the gap.
        let inside = Timestamp::from_second(row_4.as_second() + 1)?;
        anyhow::ensure!(inside > gap_start && inside < gap_end, "{inside} inside the gap");
        let refused = cairnctl(
            t,
            &[
                "restore", "create", "in-the-gap", "--backup", &continuous, "--to-time",
                &format(inside), "--pvc", "in-the-gap-data", "-n", NS,
            ],
        )
        .await?;
        anyhow::ensure!(
            !refused.status.success()
                && refused.stderr.contains(&format!(
                    "the nearest restorable times are {} and {}",
                    format(gap_start),
                    format(base_after)
                )),
            "restore create --to-time inside the gap is refused naming the nearest times: {refused:?}"
        );
        let restore = json!({
            "apiVersion": "dataprotection.kubeblocks.io/v1alpha1", "kind": "Restore",
            "metadata": {"name": "in-the-gap", "namespace": NS},
            "spec": {
                "backup": {"name": continuous, "namespace": NS},
                "restoreTime": format(inside),
                "prepareDataConfig": {"volumeClaimRestorePolicy": "Parallel", "volumeClaims": [{
                    "metadata": {"name": "in-the-gap-data", "namespace": NS},
                    "volumeSource": "data",
                    "volumeClaimSpec": {"accessModes": ["ReadWriteOnce"],
                                        "resources": {"requests": {"storage": "2Gi"}}}}]}
            }
        });
        t.kubectl.create(&serde_json::to_string(&restore)?).await?;
        let failed = dp::restore_completed(&t.client, NS, "in-the-gap", WAIT)
            .await
            .err()
            .map(|e| format!("{e:#}"))
            .unwrap_or_default();
        anyhow::ensure!(
            failed.contains(&format!("falls in a gap of the archive of backup \\\"{continuous}\\\": nothing {gap_text} was archived")),
            "the Restore fails naming the gap {gap_text}: {failed}"
        );

        // Before the gap, everything is there: the row written while the archiver was killed
        // included (kill -9 lost nothing), the row lost with the WAL not.
        let before_gap = Timestamp::from_second(row_3.as_second() + 1)?;
        anyhow::ensure!(before_gap <= gap_start, "{before_gap} before the gap {gap_text}");
        let (rows, sets) = restore_rows(t, &db, &continuous, before_gap, "ledger-before-gap").await?;
        anyhow::ensure!(
            sets == ["ledger-base".to_string(), continuous.clone()] && rows == [1, 2, 3],
            "restored to {before_gap}: rows {rows:?} (want 1, 2 and 3) from {sets:?}; row 2 at {row_2}, row 3 at {row_3}"
        );
        Ok(())
    })
    .await
}
