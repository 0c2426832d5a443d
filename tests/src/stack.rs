//! One Cairn stack per test: localkube, `cairn-control-plane` and `cairn-agent` as separate
//! processes (cairn-cli's standalone [`Stack`]) in a fresh temporary directory, with a `kubectl`
//! and a kube client for it. A test that fails keeps the directory and prints the tail of
//! every process's log.

use anyhow::Context as _;
use cairn_cli::standalone::{Stack, StackOptions};
use std::path::{Path, PathBuf};

use crate::kubectl::Kubectl;

/// Lines of each log printed when a test fails.
const LOG_TAIL: usize = 40;
/// Logs of the processes of a stack, in `<data>/logs`.
pub const LOGS: [&str; 4] = [
    "localkube.log",
    "control-plane.log",
    "control-plane-1.log",
    "agent.log",
];

/// A running stack and the tools to drive it.
pub struct TestStack {
    pub stack: Stack,
    pub kubectl: Kubectl,
    pub client: kube::Client,
    /// The stack's data directory (`<temp>/data`).
    pub data_dir: PathBuf,
    /// A scratch directory of the test beside the data directory (host paths for pods).
    pub scratch: PathBuf,
    /// Declared last: dropped after the processes are stopped.
    temp: KeepOnPanic,
}

/// The test's temporary directory, kept (and the logs' tails printed) when the test panics.
struct KeepOnPanic {
    dir: tempfile::TempDir,
    data_dir: PathBuf,
}

impl Drop for KeepOnPanic {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.dir.disable_cleanup(true);
            eprintln!(
                "the stack's data directory is kept at {}\n{}",
                self.data_dir.display(),
                diagnostics(&self.data_dir)
            );
        }
    }
}

/// Brings up a stack with default options, runs `body` against it and tears it down.
pub async fn run(
    name: &str,
    body: impl AsyncFnOnce(&mut TestStack) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    run_with(name, |_| {}, body).await
}

/// Like [`run`], with `configure` adjusting the stack's options first.
///
/// After `body` succeeds, no process log may contain a panic. On failure the data directory is
/// kept and its path and the tail of each log are printed to stderr.
pub async fn run_with(
    name: &str,
    configure: impl FnOnce(&mut StackOptions),
    body: impl AsyncFnOnce(&mut TestStack) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let mut test = TestStack::up(name, configure).await?;
    let result = match body(&mut test).await {
        Ok(()) => test.check_logs_for_panics(),
        Err(error) => Err(error),
    };
    match result {
        Ok(()) => {
            test.stack.check_alive()?;
            test.shutdown().await
        }
        Err(error) => {
            let kept = test.keep();
            eprintln!("{}", diagnostics(&kept));
            Err(error.context(format!(
                "the stack's data directory is kept at {}",
                kept.display()
            )))
        }
    }
}

impl TestStack {
    /// Starts a stack in a new temporary directory named after the test.
    pub async fn up(
        name: &str,
        configure: impl FnOnce(&mut StackOptions),
    ) -> anyhow::Result<TestStack> {
        // Fail before starting anything when kubectl is missing.
        crate::tools::find("kubectl")?;
        let mut temp = tempfile::Builder::new()
            .prefix(&format!("cairn-e2e-{name}-"))
            .tempdir()
            .context("creating the test's temporary directory")?;
        let data_dir = temp.path().join("data");
        let scratch = temp.path().join("scratch");
        std::fs::create_dir_all(&scratch).context("creating the scratch directory")?;
        let mut options = StackOptions::new(&data_dir);
        // `CAIRN_E2E_LOG=debug,kube=info` turns up the children's logs while chasing a failure.
        if let Ok(filter) = std::env::var("CAIRN_E2E_LOG") {
            options.log_filter = filter;
        }
        configure(&mut options);
        let stack = match Stack::up(options).await {
            Ok(stack) => stack,
            Err(error) => {
                temp.disable_cleanup(true);
                eprintln!("{}", diagnostics(&data_dir));
                return Err(error.context(format!(
                    "starting the stack (data directory kept at {})",
                    data_dir.display()
                )));
            }
        };
        let kubectl = Kubectl::new(&stack.kubeconfig, &temp.path().join("kubectl-cache"))?;
        let client = stack.client().await?;
        Ok(TestStack {
            stack,
            kubectl,
            client,
            data_dir: data_dir.clone(),
            scratch,
            temp: KeepOnPanic {
                dir: temp,
                data_dir,
            },
        })
    }

    /// The text of a process log (`control-plane.log`, `agent.log`, `localkube.log`).
    pub fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.data_dir.join("logs").join(name)).unwrap_or_default()
    }

    /// The default `local` repository's directory.
    pub fn local_repo(&self) -> PathBuf {
        self.data_dir.join("repo")
    }

    /// Creates a namespace with `kubectl apply` (nothing happens when it exists).
    pub async fn ensure_namespace(&self, name: &str) -> anyhow::Result<()> {
        self.kubectl
            .apply(&format!(
                "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {name}\n"
            ))
            .await?;
        Ok(())
    }

    /// Fails when a process's log shows a panic.
    pub fn check_logs_for_panics(&self) -> anyhow::Result<()> {
        for name in LOGS {
            let text = self.log(name);
            if let Some(line) = text.lines().find(|l| l.contains("panicked at")) {
                anyhow::bail!("{name} shows a panic: {line}");
            }
        }
        Ok(())
    }

    /// Stops the processes gracefully and removes the directory.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        let TestStack { stack, temp, .. } = self;
        stack.shutdown().await?;
        drop(temp);
        Ok(())
    }

    /// Keeps the temporary directory after the test; returns the data directory.
    fn keep(&mut self) -> PathBuf {
        self.temp.dir.disable_cleanup(true);
        self.data_dir.clone()
    }
}

/// The tail of each process log of the stack in `data_dir`.
fn diagnostics(data_dir: &Path) -> String {
    let mut out = String::new();
    for name in LOGS {
        let path = data_dir.join("logs").join(name);
        out.push_str(&format!(
            "----- last {LOG_TAIL} lines of {} -----\n{}\n",
            path.display(),
            cairn_cli::standalone::process::tail(&path, LOG_TAIL)
        ));
    }
    out
}
