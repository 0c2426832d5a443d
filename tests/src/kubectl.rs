//! The real `kubectl` against a stack's API server: apply manifests from stdin, read objects as
//! JSON, delete. Every call has a deadline and fails with kubectl's stderr.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context as _;
use tokio::io::AsyncWriteExt as _;

/// How long one kubectl call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// `kubectl` bound to one kubeconfig, with its own discovery cache.
#[derive(Debug, Clone)]
pub struct Kubectl {
    bin: PathBuf,
    kubeconfig: PathBuf,
    cache_dir: PathBuf,
}

/// What a kubectl call printed and how it ended.
#[derive(Debug)]
pub struct Output {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

impl Kubectl {
    /// `kubectl` from `PATH` (an error pointing at ./test.sh when it is missing).
    pub fn new(kubeconfig: &Path, cache_dir: &Path) -> anyhow::Result<Kubectl> {
        Ok(Kubectl {
            bin: crate::tools::find("kubectl")?,
            kubeconfig: kubeconfig.to_path_buf(),
            cache_dir: cache_dir.to_path_buf(),
        })
    }

    /// Runs kubectl with `args` (and `stdin` when given) and returns its output, whatever its
    /// exit status.
    pub async fn output(&self, args: &[&str], stdin: Option<&str>) -> anyhow::Result<Output> {
        let mut command = tokio::process::Command::new(&self.bin);
        command
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(&self.cache_dir)
            .args(args)
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
            .with_context(|| format!("starting {}", self.bin.display()))?;
        if let Some(text) = stdin {
            let mut pipe = child.stdin.take().context("kubectl has no stdin")?;
            pipe.write_all(text.as_bytes())
                .await
                .context("writing kubectl's stdin")?;
            drop(pipe);
        }
        let out = tokio::time::timeout(CALL_TIMEOUT, child.wait_with_output())
            .await
            .with_context(|| {
                format!(
                    "kubectl {} took longer than {CALL_TIMEOUT:?}",
                    args.join(" ")
                )
            })?
            .context("waiting for kubectl")?;
        Ok(Output {
            success: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }

    /// Runs kubectl and returns its stdout; fails with its stderr when it exits non-zero.
    pub async fn run(&self, args: &[&str]) -> anyhow::Result<String> {
        self.checked(args, None).await
    }

    /// `kubectl apply -f -` of `yaml`.
    pub async fn apply(&self, yaml: &str) -> anyhow::Result<String> {
        self.checked(&["apply", "-f", "-"], Some(yaml)).await
    }

    /// `kubectl create -f -` of `yaml`.
    pub async fn create(&self, yaml: &str) -> anyhow::Result<String> {
        self.checked(&["create", "-f", "-"], Some(yaml)).await
    }

    /// `kubectl get ARGS -o json`, parsed.
    pub async fn get_json(&self, args: &[&str]) -> anyhow::Result<serde_json::Value> {
        let mut all = vec!["get"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["-o", "json"]);
        let text = self.run(&all).await?;
        serde_json::from_str(&text)
            .with_context(|| format!("parsing the JSON of kubectl {}", all.join(" ")))
    }

    async fn checked(&self, args: &[&str], stdin: Option<&str>) -> anyhow::Result<String> {
        let out = self.output(args, stdin).await?;
        if !out.success {
            anyhow::bail!(
                "kubectl {} failed: {}{}",
                args.join(" "),
                out.stderr.trim(),
                if out.stdout.trim().is_empty() {
                    String::new()
                } else {
                    format!(" (stdout: {})", out.stdout.trim())
                }
            );
        }
        Ok(out.stdout)
    }
}
