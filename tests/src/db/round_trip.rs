//! The backup and restore halves of a database round trip, timed from `kubectl create` to the
//! phase `Completed`, and the throughput line each test prints.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use cairn_api::backup::Backup;

use crate::manifests::render;
use crate::stack::TestStack;

/// How long a database backup or restore may take.
pub const TIMEOUT: Duration = Duration::from_secs(180);

/// Creates a Backup from `template` (`db/backup.yaml` or `db/backup-to-repo.yaml`) and waits
/// until it is Completed; returns it and the time it took.
pub async fn backup(
    stack: &TestStack,
    namespace: &str,
    template: &str,
    vars: &[(&str, &str)],
) -> anyhow::Result<(Backup, Duration)> {
    let name = vars
        .iter()
        .find(|(k, _)| *k == "BACKUP")
        .map(|(_, v)| *v)
        .ok_or_else(|| anyhow::anyhow!("no BACKUP name given"))?;
    let mut all = vec![("NS", namespace)];
    all.extend_from_slice(vars);
    let yaml = render(template, &all)?;
    let started = Instant::now();
    stack.kubectl.create(&yaml).await?;
    let backup = crate::dp::backup_completed(&stack.client, namespace, name, TIMEOUT).await?;
    Ok((backup, started.elapsed()))
}

/// Creates a Restore of `backup` into the new PVC `pvc` and waits until it is Completed;
/// returns the time it took.
pub async fn restore(
    stack: &TestStack,
    namespace: &str,
    name: &str,
    backup: &str,
    pvc: &str,
) -> anyhow::Result<Duration> {
    let yaml = render(
        "db/restore.yaml",
        &[
            ("NS", namespace),
            ("RESTORE", name),
            ("BACKUP", backup),
            ("PVC", pvc),
        ],
    )?;
    let started = Instant::now();
    stack.kubectl.create(&yaml).await?;
    crate::dp::restore_completed(&stack.client, namespace, name, TIMEOUT).await?;
    Ok(started.elapsed())
}

/// The uncompressed bytes the backup's actions pushed through the node agent: the final
/// `status.progress.bytesDone` (0 when nothing went through `datasafed`).
pub fn streamed_bytes(backup: &Backup) -> u64 {
    backup
        .status
        .as_ref()
        .and_then(|s| s.progress.as_ref())
        .and_then(|p| u64::try_from(p.bytes_done).ok())
        .unwrap_or(0)
}

/// `status.totalSize` of a Backup in bytes (0 when absent or not a plain number).
pub fn stored_bytes(backup: &Backup) -> u64 {
    backup
        .status
        .as_ref()
        .and_then(|s| s.total_size.as_deref())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// The container images of the Jobs the recorder saw whose name starts with `prefix`.
pub fn job_images(recorded: &[String], prefix: &str) -> BTreeSet<String> {
    recorded
        .iter()
        .filter_map(|text| serde_json::from_str::<serde_json::Value>(text).ok())
        .filter(|o| o["kind"] == "Job")
        .filter(|o| {
            o["metadata"]["name"]
                .as_str()
                .is_some_and(|n| n.starts_with(prefix))
        })
        .flat_map(|o| {
            o["spec"]["template"]["spec"]["containers"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .filter_map(|c| c["image"].as_str().map(str::to_string))
        .collect()
}

/// What one round trip moved and how long it took.
#[derive(Debug, Clone)]
pub struct Measured {
    /// `postgresql (KubeBlocks vanilla-pg-basebackup)`, ...
    pub label: String,
    /// Bytes of the database's data directory when it was backed up (WAL and logs included).
    pub data_bytes: u64,
    /// Bytes of the uncompressed backup stream (what the backup read and the restore wrote
    /// back): the throughputs are these bytes over the times.
    pub stream_bytes: u64,
    /// What the repository holds for the backup.
    pub stored_bytes: u64,
    pub backup: Duration,
    pub restore: Duration,
}

impl Measured {
    /// One line: sizes, both times and both throughputs (stream bytes per second).
    pub fn line(&self) -> String {
        let mib = |bytes: u64| bytes as f64 / (1024.0 * 1024.0);
        let rate = |d: Duration| mib(self.stream_bytes) / d.as_secs_f64().max(1e-3);
        format!(
            "db round trip {}: data dir {:.1} MiB, stream {:.1} MiB, stored {:.1} MiB; backup {:.2} s ({:.1} MiB/s); restore {:.2} s ({:.1} MiB/s)",
            self.label,
            mib(self.data_bytes),
            mib(self.stream_bytes),
            mib(self.stored_bytes),
            self.backup.as_secs_f64(),
            rate(self.backup),
            self.restore.as_secs_f64(),
            rate(self.restore),
        )
    }

    /// Prints [`Measured::line`] (shown with `--no-capture`, and in the output of a failure).
    pub fn report(&self) {
        println!("{}", self.line());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_throughput_line_divides_the_stream_by_the_time() {
        let m = Measured {
            label: "x".into(),
            data_bytes: 30 * 1024 * 1024,
            stream_bytes: 10 * 1024 * 1024,
            stored_bytes: 1024 * 1024,
            backup: Duration::from_secs(2),
            restore: Duration::from_millis(500),
        };
        assert_eq!(
            m.line(),
            "db round trip x: data dir 30.0 MiB, stream 10.0 MiB, stored 1.0 MiB; backup 2.00 s (5.0 MiB/s); restore 0.50 s (20.0 MiB/s)"
        );
    }

    #[test]
    fn job_images_are_read_from_recorded_jobs_by_name() {
        let recorded = vec![
            r#"{"kind":"Job","metadata":{"name":"dp-backup-0-b1-1234"},"spec":{"template":{"spec":{"containers":[{"image":"docker.io/postgres:12.15"}]}}}}"#.to_string(),
            r#"{"kind":"Pod","metadata":{"name":"dp-backup-0-b1-1234-x"},"spec":{"containers":[{"image":"other"}]}}"#.to_string(),
            r#"{"kind":"Job","metadata":{"name":"restore-preparedata-1"},"spec":{"template":{"spec":{"containers":[{"image":"r"}]}}}}"#.to_string(),
        ];
        assert_eq!(
            job_images(&recorded, "dp-backup-"),
            BTreeSet::from(["docker.io/postgres:12.15".to_string()])
        );
    }
}
