//! Running processes in a sandbox: container processes (output captured to timestamped log
//! files, one file per run) and exec processes (pipes handed to the caller).

use super::sandbox::Sandbox;
use crate::time::format_nano;
use jiff::Timestamp;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::Mutex;

/// What to run.
#[derive(Debug, Clone)]
pub struct ProcessSpec {
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    pub sandbox: Arc<Sandbox>,
    /// The pid of the container's running process (0 when none): `exec` joins it.
    pub running: Arc<AtomicU32>,
}

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exit {
    pub code: i32,
    pub signal: Option<i32>,
}

impl Exit {
    fn from_status(s: std::process::ExitStatus) -> Exit {
        match (s.code(), s.signal()) {
            (Some(c), _) => Exit {
                code: c,
                signal: None,
            },
            (None, Some(sig)) => Exit {
                code: 128 + sig,
                signal: Some(sig),
            },
            _ => Exit {
                code: 255,
                signal: None,
            },
        }
    }
}

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The command for `spec`; `join` runs it inside the container's running process's
/// namespaces (exec) instead of a new sandbox.
fn command(spec: &ProcessSpec, join: bool) -> std::io::Result<Command> {
    let Some((program, args)) = spec.argv.split_first() else {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "no command to run",
        ));
    };
    let mut cmd = Command::new(program);
    cmd.args(args).env_clear();
    if !spec.env.iter().any(|(k, _)| k == "PATH") {
        cmd.env("PATH", DEFAULT_PATH);
    }
    if !spec.env.iter().any(|(k, _)| k == "HOME") {
        cmd.env("HOME", "/root");
    }
    cmd.envs(spec.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    cmd.process_group(0);
    let pid = spec.running.load(Ordering::SeqCst);
    if join && pid != 0 {
        let joiner = spec
            .sandbox
            .joiner(pid)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()))?;
        // SAFETY: `enter` only performs system calls on data prepared before the fork.
        unsafe {
            cmd.pre_exec(move || joiner.enter());
        }
    } else {
        let sandbox = spec.sandbox.clone();
        // SAFETY: `enter` only performs system calls on data prepared before the fork.
        unsafe {
            cmd.pre_exec(move || sandbox.enter());
        }
    }
    Ok(cmd)
}

/// The log file of run `run` of a container, and its completion marker.
pub fn log_path(pod_dir: &Path, container: &str, run: i64) -> PathBuf {
    pod_dir
        .join("logs")
        .join(container)
        .join(format!("{run}.log"))
}

pub fn done_path(log: &Path) -> PathBuf {
    log.with_extension("done")
}

async fn pump(
    reader: impl tokio::io::AsyncRead + Unpin,
    stream: &'static str,
    file: Arc<Mutex<tokio::fs::File>>,
) {
    let mut lines = BufReader::new(reader);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match lines.read_until(b'\n', &mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                if buf.last() != Some(&b'\n') {
                    buf.push(b'\n');
                }
                let mut line = format!("{} {stream} ", format_nano(Timestamp::now())).into_bytes();
                line.extend_from_slice(&buf);
                let mut f = file.lock().await;
                if f.write_all(&line).await.is_err() {
                    return;
                }
                let _ = f.flush().await;
            }
        }
    }
}

/// How long a container's output is still read once its main process has exited. A process
/// that left the container's process group (`setsid`) may hold its stdout open for ever; it
/// must not hold the container running, since a container ends with its main process.
const OUTPUT_DRAIN: Duration = Duration::from_secs(2);

/// A running container process.
pub struct Running {
    pub pid: u32,
    pub child: Child,
    pumps: Vec<tokio::task::JoinHandle<()>>,
    log: PathBuf,
    running: Arc<AtomicU32>,
}

impl Running {
    /// Waits for the process and its output, then marks the log complete. As a container
    /// runtime does when a container's first process exits, the processes it left behind in
    /// its process group are killed.
    pub async fn wait(mut self) -> Exit {
        let status = self.child.wait().await;
        let _ = self
            .running
            .compare_exchange(self.pid, 0, Ordering::SeqCst, Ordering::SeqCst);
        if self.pid != 0 {
            let _ = killpg(Pid::from_raw(self.pid as i32), Signal::SIGKILL);
        }
        let drained_by = tokio::time::Instant::now() + OUTPUT_DRAIN;
        for p in self.pumps.drain(..) {
            let abort = p.abort_handle();
            if tokio::time::timeout_at(drained_by, p).await.is_err() {
                abort.abort();
            }
        }
        let _ = crate::private::write_file(&done_path(&self.log), b"");
        match status {
            Ok(s) => Exit::from_status(s),
            Err(_) => Exit {
                code: 255,
                signal: None,
            },
        }
    }
}

/// Starts a container process whose output goes to `log`.
pub async fn spawn_container(spec: &ProcessSpec, log: &Path) -> std::io::Result<Running> {
    if let Some(parent) = log.parent() {
        crate::private::create_dir(parent)?;
    }
    let _ = tokio::fs::remove_file(done_path(log)).await;
    let file = Arc::new(Mutex::new(tokio::fs::File::from_std(
        crate::private::create_file(log)?,
    )));
    // A (re)started container gets a fresh writable layer and /tmp.
    spec.sandbox.scratch().reset()?;
    let mut cmd = command(spec, false)?;
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn()?;
    let pid = child.id().unwrap_or(0);
    spec.running.store(pid, Ordering::SeqCst);
    let mut pumps = Vec::new();
    if let Some(out) = child.stdout.take() {
        pumps.push(tokio::spawn(pump(out, "stdout", file.clone())));
    }
    if let Some(err) = child.stderr.take() {
        pumps.push(tokio::spawn(pump(err, "stderr", file.clone())));
    }
    Ok(Running {
        pid,
        child,
        pumps,
        log: log.to_path_buf(),
        running: spec.running.clone(),
    })
}

/// Starts an exec process with piped stdio.
pub fn spawn_exec(spec: &ProcessSpec, stdin: bool) -> std::io::Result<Child> {
    let mut cmd = command(spec, true)?;
    cmd.stdin(if stdin { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd.spawn()
}

/// Sends `signal` to the process group of `pid`.
pub fn signal_group(pid: u32, signal: Signal) {
    if pid > 1 {
        let _ = killpg(Pid::from_raw(pid as i32), signal);
    }
}
