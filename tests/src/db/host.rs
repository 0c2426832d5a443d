//! What the database tests need from the host: Debian's database tools, free loopback ports,
//! host commands with a deadline, and the size of a directory.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context as _;
use tokio::io::AsyncWriteExt as _;

/// How long one client command may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);

/// Fails, naming the first missing one, unless every tool is on `PATH` (or, for an absolute
/// path, exists). The pods run the host's binaries, so they need them too.
pub fn require(tools: &[&str]) -> anyhow::Result<()> {
    for tool in tools {
        let found = if tool.starts_with('/') {
            Path::new(tool).is_file()
        } else {
            crate::tools::find(tool).is_ok()
        };
        if !found {
            anyhow::bail!(
                "`{tool}` is missing on this host; the database round trips run Debian's \
                 postgresql, redis-server, mariadb-server, mariadb-backup, rsync and zstd \
                 packages (./test.sh installs them from .ci/apt-packages.txt): run ./test.sh"
            );
        }
    }
    Ok(())
}

/// A TCP port on 127.0.0.1 that nothing listens on right now.
pub fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0))
        .context("finding a free port on 127.0.0.1")?;
    Ok(listener.local_addr()?.port())
}

/// Runs `program` with `args` (and `env`, and `stdin` when given) on the host and returns its
/// stdout; fails with its stderr when it exits non-zero or takes longer than two minutes.
pub async fn run(
    program: &str,
    args: &[&str],
    env: &[(&str, &str)],
    stdin: Option<&[u8]>,
) -> anyhow::Result<String> {
    let mut command = tokio::process::Command::new(program);
    command
        .args(args)
        .envs(env.iter().copied())
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = command
        .spawn()
        .with_context(|| format!("starting {program}"))?;
    if let Some(bytes) = stdin {
        let mut pipe = child.stdin.take().context("no stdin pipe")?;
        pipe.write_all(bytes)
            .await
            .with_context(|| format!("writing the input of {program}"))?;
        drop(pipe);
    }
    let out = tokio::time::timeout(COMMAND_TIMEOUT, child.wait_with_output())
        .await
        .with_context(|| format!("{program} took longer than {COMMAND_TIMEOUT:?}"))?
        .with_context(|| format!("waiting for {program}"))?;
    if !out.status.success() {
        anyhow::bail!(
            "{program} {} failed ({}): {}",
            args.first().copied().unwrap_or_default(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Bytes of the regular files under `root` (symlinks not followed).
pub fn dir_bytes(root: &Path) -> anyhow::Result<u64> {
    let mut total = 0;
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in
            std::fs::read_dir(&dir).with_context(|| format!("listing {}", dir.display()))?
        {
            let entry = entry?;
            let meta = entry.metadata()?;
            if meta.is_dir() {
                stack.push(entry.path());
            } else if meta.is_file() {
                total += meta.len();
            }
        }
    }
    Ok(total)
}
