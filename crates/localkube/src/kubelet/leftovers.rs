//! Container process groups recorded on disk, so a localkube that restarts after a crash
//! (or `kill -9`) can end the processes of its previous run, as a reboot would.
//! A record holds the group leader's pid and start time, so a reused pid is left alone.

use std::path::{Path, PathBuf};

fn dir(data_dir: &Path) -> PathBuf {
    data_dir.join("kubelet").join("processes")
}

pub fn record_path(data_dir: &Path, pid: u32) -> PathBuf {
    dir(data_dir).join(pid.to_string())
}

/// The start time of `pid` in clock ticks since boot (field 22 of `/proc/<pid>/stat`).
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_comm = stat.rsplit_once(')')?.1;
    after_comm.split_whitespace().nth(19)?.parse().ok()
}

pub fn record(path: &Path, pid: u32) {
    if let (Some(parent), Some(start)) = (path.parent(), start_time(pid)) {
        let _ = crate::private::create_dir(parent);
        let _ = crate::private::write_file(path, start.to_string().as_bytes());
    }
}

/// Kills every recorded process group whose leader is still the recorded process.
pub fn kill_recorded(data_dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir(data_dir)) else {
        return;
    };
    for e in entries.flatten() {
        let path = e.path();
        let pid: Option<u32> = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.parse().ok());
        let recorded: Option<u64> = std::fs::read_to_string(&path)
            .ok()
            .and_then(|s| s.trim().parse().ok());
        if let (Some(pid), Some(recorded)) = (pid, recorded)
            && start_time(pid) == Some(recorded)
        {
            super::process::signal_group(pid, nix::sys::signal::Signal::SIGKILL);
        }
        let _ = std::fs::remove_file(&path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recorded_group_is_killed_and_a_stale_record_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        use std::os::unix::process::CommandExt;
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .process_group(0)
            .spawn()
            .unwrap();
        let pid = child.id();
        record(&record_path(dir.path(), pid), pid);
        std::fs::write(record_path(dir.path(), 999_999), "1").unwrap();
        kill_recorded(dir.path());
        let status = child.wait().unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(9));
        assert!(
            std::fs::read_dir(super::dir(dir.path()))
                .unwrap()
                .next()
                .is_none()
        );
    }
}
