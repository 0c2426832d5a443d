//! The README's main job, as a user runs it: `cairnctl quickstart` as its own process, which
//! starts the standalone stack, backs a workload up, damages it, restores into a new PVC and
//! proves the data came back. Both workloads: the files writer and a real PostgreSQL.

use std::path::PathBuf;
use std::process::Command;

use cairn_cli::standalone::default_bin_dir;

/// Runs `cairnctl quickstart ARGS` in a fresh data dir; returns its stdout and stderr, failing
/// with both when it exits non-zero.
fn quickstart(args: &[&str]) -> anyhow::Result<String> {
    let dir = tempfile::tempdir()?;
    let cairnctl: PathBuf = default_bin_dir()?.join("cairnctl");
    let out = Command::new(&cairnctl)
        .arg("quickstart")
        .arg("--data-dir")
        .arg(dir.path().join("qs"))
        .args(args)
        .env("NO_COLOR", "1")
        .output()?;
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    anyhow::ensure!(
        out.status.success(),
        "{} quickstart failed ({}):\n{text}",
        cairnctl.display(),
        out.status
    );
    Ok(text)
}

fn assert_lines(text: &str, needles: &[&str]) {
    for needle in needles {
        assert!(
            text.contains(needle),
            "the quickstart output lacks {needle:?}:\n{text}"
        );
    }
}

#[test]
fn quickstart_backs_up_damages_and_restores_a_files_workload() -> anyhow::Result<()> {
    let text = quickstart(&["--workload", "files", "--size", "24Mi"])?;
    assert_lines(
        &text,
        &[
            "[7/7] Check that the restored data equals the original",
            "Backup quickstart/files-backup Completed",
            "Restore quickstart/files-restore of Backup files-backup Completed",
            "files identical",
            "Summary",
            "The stack is stopped",
        ],
    );
    assert!(
        !text.contains(" 0 of "),
        "no file may be missing after the restore:\n{text}"
    );
    Ok(())
}

#[test]
fn quickstart_restores_a_real_postgresql_and_compares_its_rows() -> anyhow::Result<()> {
    let text = quickstart(&["--workload", "postgres", "--size", "48Mi"])?;
    assert_lines(
        &text,
        &[
            "Backup quickstart/postgres-backup Completed",
            "Restore quickstart/postgres-restore of Backup postgres-backup Completed",
            "PostgreSQL started on the restored PVC",
            "a hash of every row and the top-customers query match",
        ],
    );
    let rows = |prefix: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(prefix).map(str::to_string))
            .unwrap_or_default()
    };
    assert_eq!(
        rows("original: "),
        rows("restored: "),
        "row count, sum and top customer must match:\n{text}"
    );
    assert!(
        !rows("original: ").is_empty(),
        "no fingerprint line:\n{text}"
    );
    Ok(())
}

#[test]
fn quickstart_pitr_restores_postgresql_to_the_second_before_the_accident() -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let text = quickstart(&["--workload", "postgres", "--size", "48Mi", "--pitr"])?;
    let took = started.elapsed();
    assert_lines(
        &text,
        &[
            "[9/9] Check that the point-in-time copy holds every row written up to that second",
            "Continuous ActionSet cairn-quickstart-pg-wal-archive archives: quickstart/",
            "5 orders written after the backup",
            "DROP TABLE orders at ",
            "the second before the accident (Restore quickstart/postgres-pitr)",
            "Restore quickstart/postgres-pitr of Backup ",
            "replayed the WAL to ",
            "the 5 written after the backup, up to ",
        ],
    );
    // The second restored to is the one before the accident's.
    let accident = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("DROP TABLE orders at "))
        .and_then(|rest| rest.get(..8))
        .ok_or_else(|| anyhow::anyhow!("no accident time:\n{text}"))?;
    let restored_to = text
        .lines()
        .find_map(|l| l.split_once("Restore to ").map(|(_, rest)| rest))
        .and_then(|rest| rest.get(..8))
        .ok_or_else(|| anyhow::anyhow!("no restore time:\n{text}"))?;
    let seconds = |hms: &str| -> anyhow::Result<i64> {
        let parts: Vec<i64> = hms.split(':').map(str::parse).collect::<Result<_, _>>()?;
        let [h, m, s] = parts.as_slice() else {
            anyhow::bail!("not HH:MM:SS: {hms}");
        };
        Ok(h * 3600 + m * 60 + s)
    };
    assert_eq!(
        (seconds(accident)? - seconds(restored_to)?).rem_euclid(86_400),
        1,
        "restored to {restored_to}, the second before the accident at {accident}:\n{text}"
    );
    println!("quickstart --pitr took {took:?}");
    Ok(())
}
