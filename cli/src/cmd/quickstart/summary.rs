//! The quickstart's closing summary: sizes, durations, throughput, where the data lives, and
//! the commands to look around. Pure, so its wording is tested.

use std::path::PathBuf;

use indicatif::HumanBytes;

use crate::progress::{DataWindow, format_duration};

/// Everything the summary reports.
#[derive(Debug, Clone)]
pub struct Summary {
    /// `PostgreSQL 15 (2,097,152 rows in shop.orders)` or `a data set of 3,214 files`.
    pub workload: String,
    /// Bytes in the workload's volume when it was backed up.
    pub source_bytes: u64,
    /// Bytes the Backup read (its `status.progress.bytesDone`).
    pub backup_read_bytes: Option<u64>,
    /// Bytes stored in the repository (`status.totalSize`).
    pub stored_bytes: Option<u64>,
    pub backup_seconds: f64,
    pub restore_seconds: f64,
    /// Bytes in the restored volume when the Restore completed.
    pub restored_bytes: u64,
    /// When those bytes arrived (from the files' times), if any did.
    pub restore_data: Option<DataWindow>,
    pub backup_name: String,
    pub restore_name: String,
    pub namespace: String,
    pub verification: String,
    pub data_dir: PathBuf,
    pub backup_dir: PathBuf,
    pub source_dir: PathBuf,
    pub restored_dir: PathBuf,
    pub kubeconfig: PathBuf,
    /// Commands specific to the workload (e.g. psql into the restored database).
    pub extra_commands: Vec<String>,
    pub total_seconds: f64,
    /// Whether the stack keeps running after the summary.
    pub keep: bool,
}

fn rate(bytes: u64, seconds: f64) -> String {
    if seconds > 0.0 {
        format!("{}/s", HumanBytes((bytes as f64 / seconds) as u64))
    } else {
        "-".into()
    }
}

/// The summary text.
pub fn render(s: &Summary) -> String {
    let mut out = String::new();
    let mut line = |text: String| {
        out.push_str(&text);
        out.push('\n');
    };
    line("Summary".into());
    line(format!("  workload       {}", s.workload));
    line(format!(
        "  data           {} in the workload's volume",
        HumanBytes(s.source_bytes)
    ));
    let read = s.backup_read_bytes.unwrap_or(s.source_bytes);
    let mut backup = format!(
        "  backup         {} in {} ({} read, {})",
        s.backup_name,
        format_duration(s.backup_seconds),
        HumanBytes(read),
        rate(read, s.backup_seconds)
    );
    if let Some(stored) = s.stored_bytes.filter(|b| *b > 0) {
        backup.push_str(&format!(
            "; {} stored, {:.1}x smaller",
            HumanBytes(stored),
            read as f64 / stored as f64
        ));
    }
    line(backup);
    let restore = match s.restore_data {
        // The data's own rate, and the start-up before it, rather than one average over both.
        Some(window) => format!(
            "  restore        {} in {} ({} start-up, then {} written in {}, {})",
            s.restore_name,
            format_duration(s.restore_seconds),
            format_duration(window.started_after_seconds),
            HumanBytes(s.restored_bytes),
            format_duration(window.seconds),
            window
                .rate(s.restored_bytes)
                .map_or_else(|| "-".into(), |r| format!("{}/s", HumanBytes(r)))
        ),
        None => format!(
            "  restore        {} in {} ({} written, {})",
            s.restore_name,
            format_duration(s.restore_seconds),
            HumanBytes(s.restored_bytes),
            rate(s.restored_bytes, s.restore_seconds)
        ),
    };
    line(restore);
    line(format!("  verified       {}", s.verification));
    line(format!(
        "  total time     {}",
        format_duration(s.total_seconds)
    ));
    line(String::new());
    line("Where the data lives".into());
    line(format!("  repository     {}", s.backup_dir.display()));
    line(format!("  original PVC   {}", s.source_dir.display()));
    line(format!("  restored PVC   {}", s.restored_dir.display()));
    line(format!(
        "  logs           {}",
        s.data_dir.join("logs").display()
    ));
    line(String::new());
    if s.keep {
        line("The stack keeps running (Ctrl-C stops it). Look around:".into());
    } else {
        line(format!(
            "The stack is stopped; `cairnctl up --data-dir {}` brings it back as it was. Then:",
            s.data_dir.display()
        ));
    }
    line(format!("  export KUBECONFIG={}", s.kubeconfig.display()));
    line(format!(
        "  kubectl -n {} get pods,pvc,backups,restores",
        s.namespace
    ));
    line(format!(
        "  kubectl -n {} describe backup {}",
        s.namespace, s.backup_name
    ));
    line("  kubectl get backuprepos,actionsets,storageproviders".into());
    line(format!("  cairnctl backup list -n {}", s.namespace));
    line(format!(
        "  cairnctl restore describe -n {} {}",
        s.namespace, s.restore_name
    ));
    for command in &s.extra_commands {
        line(format!("  {command}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary() -> Summary {
        Summary {
            workload: "a data set of 10 files".into(),
            source_bytes: 300 << 20,
            backup_read_bytes: Some(300 << 20),
            stored_bytes: Some(100 << 20),
            backup_seconds: 2.0,
            restore_seconds: 3.0,
            restored_bytes: 300 << 20,
            restore_data: None,
            backup_name: "files-backup".into(),
            restore_name: "files-restore".into(),
            namespace: "quickstart".into(),
            verification: "10 of 10 files identical (BLAKE3)".into(),
            data_dir: "/d".into(),
            backup_dir: "/d/repo/quickstart/files-backup".into(),
            source_dir: "/d/kube/volumes/pvc-1".into(),
            restored_dir: "/d/kube/volumes/pvc-2".into(),
            kubeconfig: "/d/kubeconfig".into(),
            extra_commands: vec!["psql ...".into()],
            total_seconds: 40.0,
            keep: false,
        }
    }

    #[test]
    fn the_summary_gives_sizes_durations_throughput_and_places() {
        let text = render(&summary());
        for expected in [
            "backup         files-backup in 2.0s (300.00 MiB read, 150.00 MiB/s); 100.00 MiB stored, 3.0x smaller",
            "restore        files-restore in 3.0s (300.00 MiB written, 100.00 MiB/s)",
            "verified       10 of 10 files identical (BLAKE3)",
            "repository     /d/repo/quickstart/files-backup",
            "restored PVC   /d/kube/volumes/pvc-2",
            "`cairnctl up --data-dir /d` brings it back",
            "export KUBECONFIG=/d/kubeconfig",
            "kubectl -n quickstart describe backup files-backup",
            "  psql ...",
        ] {
            assert!(text.contains(expected), "{expected:?} missing in\n{text}");
        }
        let kept = render(&Summary {
            keep: true,
            ..summary()
        });
        assert!(kept.contains("keeps running"));
    }

    #[test]
    fn the_restore_line_separates_the_start_up_from_the_data_rate() {
        let text = render(&Summary {
            restore_data: Some(DataWindow {
                started_after_seconds: 2.5,
                seconds: 0.5,
            }),
            ..summary()
        });
        assert!(
            text.contains(
                "restore        files-restore in 3.0s (2.5s start-up, then 300.00 MiB written in 0.5s, 600.00 MiB/s)"
            ),
            "{text}"
        );
    }
}
