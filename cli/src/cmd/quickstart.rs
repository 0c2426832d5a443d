//! `cairnctl quickstart`: the whole main job in one run, with nothing set up beyond building
//! Cairn. It brings standalone mode up in a fresh data directory, starts a workload (a real
//! PostgreSQL when one is installed, otherwise a pod writing a realistic data set), applies
//! Cairn's demo ActionSet and BackupPolicy, backs the workload up with live progress, damages
//! its data, restores into a new PVC with progress, proves the restored data equals the
//! original, prints a summary and the commands to look around, and stops the stack (or keeps
//! it running with `--keep`).
//!
//! Every step is numbered; a failure names the step and the reason and exits 1, leaving the
//! data directory (and its `logs/`) for inspection.

pub mod cluster;
pub mod dataset;
pub mod manifests;
pub mod postgres;
pub mod steps;
pub mod summary;
pub mod workload;
pub mod workload_files;
pub mod workload_postgres;
pub mod writer;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use cairn_api::backup::Backup;
use cairn_api::restore::Restore;
use clap::{Subcommand, ValueEnum};
use indicatif::HumanBytes;
use kube::api::{Api, PostParams};

use self::manifests::NAMESPACE;
use self::steps::{Steps, detail};
use self::workload::{Ctx, Workload};
use crate::cmd::backup;
use crate::cmd::restore;
use crate::progress::{DataWindow, Mode, Reporter};
use crate::standalone::{Stack, StackOptions, default_bin_dir};

/// Arguments of `cairnctl quickstart`.
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Args {
    #[command(subcommand)]
    pub internal: Option<Internal>,
    /// Data directory; a previous quickstart's directory there is replaced.
    #[arg(long, default_value = "cairn-quickstart")]
    pub data_dir: PathBuf,
    /// The workload to protect: PostgreSQL when installed (auto), postgres, or files.
    #[arg(long, value_enum, default_value_t = WorkloadChoice::Auto)]
    pub workload: WorkloadChoice,
    /// Size of the workload's data (a Kubernetes quantity: 300Mi, 1Gi).
    #[arg(long, default_value = "300Mi")]
    pub size: String,
    /// Keep the stack running after the summary, until Ctrl-C.
    #[arg(long)]
    pub keep: bool,
    /// Point-in-time recovery too (PostgreSQL): archive the WAL continuously, write more rows
    /// after the backup, and restore to the second before the accident.
    #[arg(long)]
    pub pitr: bool,
}

/// Which workload the quickstart runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum WorkloadChoice {
    /// PostgreSQL when it is installed, otherwise files.
    Auto,
    /// A real PostgreSQL server (fails when it is not installed).
    Postgres,
    /// A pod writing a data set of files to its PVC.
    Files,
}

/// Commands the quickstart runs inside its pods.
#[derive(Debug, Subcommand)]
pub enum Internal {
    /// Write the fallback workload's data set, then run until stopped.
    #[command(hide = true)]
    WriteDataset(writer::Args),
}

/// The binaries standalone mode runs next to `cairnctl`.
const SIBLINGS: [&str; 4] = [
    "localkube",
    "cairn-control-plane",
    "cairn-agent",
    "datasafed",
];
/// Host commands the workload and action scripts run.
const HOST_TOOLS: [&str; 4] = ["bash", "tar", "awk", "test"];

/// Marker file of a quickstart data directory (so a rerun may replace it).
const MARKER: &str = ".cairn-quickstart";

/// Runs `cairnctl quickstart`.
pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    if let Some(Internal::WriteDataset(a)) = args.internal {
        return writer::run(a).await;
    }
    let started = Instant::now();
    let bytes = cairn_api::parse::quantity::parse_bytes(&args.size)
        .with_context(|| format!("--size {:?}", args.size))?;
    if bytes < 1 << 20 {
        bail!(
            "--size {:?} is below 1Mi: there would be nothing to see",
            args.size
        );
    }
    let bin_dir = default_bin_dir()?;
    check_siblings(&bin_dir)?;
    check_host_tools()?;
    let cairnctl = std::env::current_exe().context("locating cairnctl")?;
    let data_dir = absolute(&args.data_dir)?;
    prepare_data_dir(&data_dir)?;

    if args.pitr && args.workload == WorkloadChoice::Files {
        bail!("--pitr needs the PostgreSQL workload (--workload postgres or auto)");
    }
    let postgres = match args.workload {
        WorkloadChoice::Files => None,
        WorkloadChoice::Postgres => Some(postgres::detect().map_err(anyhow::Error::msg)?),
        WorkloadChoice::Auto => match postgres::detect() {
            Ok(install) => Some(install),
            Err(why) if args.pitr => bail!("--pitr needs PostgreSQL: {why}"),
            Err(why) => {
                println!("{why}: using the file-writer workload instead.");
                None
            }
        },
    };
    match postgres {
        Some(install) => {
            let workload = workload_postgres::Postgres::new(install, bytes, args.pitr);
            drive(workload, &args, &data_dir, &bin_dir, &cairnctl, started).await
        }
        None => {
            let workload = workload_files::Files::new(bytes);
            drive(workload, &args, &data_dir, &bin_dir, &cairnctl, started).await
        }
    }
}

/// Fails with a one-line hint when a binary standalone mode needs is not next to `cairnctl`.
fn check_siblings(bin_dir: &Path) -> anyhow::Result<()> {
    let missing: Vec<&str> = SIBLINGS
        .iter()
        .copied()
        .filter(|bin| !bin_dir.join(bin).is_file())
        .collect();
    if !missing.is_empty() {
        bail!(
            "{} missing in {}: build every binary first with `cargo build --release --bins` and run target/release/cairnctl quickstart",
            missing.join(", "),
            bin_dir.display()
        );
    }
    Ok(())
}

/// Pods run the host's commands: the scripts need bash, tar and awk.
fn check_host_tools() -> anyhow::Result<()> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for tool in HOST_TOOLS {
        let found = std::env::split_paths(&path)
            .chain(["/usr/bin".into(), "/bin".into()])
            .any(|dir| dir.join(tool).is_file());
        if !found {
            bail!(
                "`{tool}` is not installed: the quickstart's pods run host commands (bash, tar, awk)"
            );
        }
    }
    Ok(())
}

fn absolute(path: &Path) -> anyhow::Result<PathBuf> {
    if path.is_absolute() {
        Ok(path.to_path_buf())
    } else {
        Ok(std::env::current_dir()
            .context("reading the current directory")?
            .join(path))
    }
}

/// Makes `dir` a fresh, empty quickstart directory: a previous quickstart's is removed (unless
/// its stack still runs); any other non-empty directory is refused.
fn prepare_data_dir(dir: &Path) -> anyhow::Result<()> {
    if dir.exists() {
        let empty = std::fs::read_dir(dir)
            .with_context(|| format!("reading {}", dir.display()))?
            .next()
            .is_none();
        if !empty {
            if !dir.join(MARKER).is_file() {
                bail!(
                    "{} exists and is not a quickstart directory: choose another with --data-dir",
                    dir.display()
                );
            }
            if let Some(port) = running_api_port(dir) {
                bail!(
                    "a quickstart is still running in {} (its API server holds port {port}): stop it first",
                    dir.display()
                );
            }
            println!("Removing the previous quickstart in {} ...", dir.display());
            std::fs::remove_dir_all(dir).with_context(|| {
                format!("removing the previous quickstart in {}", dir.display())
            })?;
        }
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::write(dir.join(MARKER), "created by cairnctl quickstart\n")
        .with_context(|| format!("writing {}", dir.join(MARKER).display()))?;
    Ok(())
}

/// The API port of a stack recorded in `dir` that is still taken.
fn running_api_port(dir: &Path) -> Option<u16> {
    let text = std::fs::read(dir.join("stack.json")).ok()?;
    let value: serde_json::Value = serde_json::from_slice(&text).ok()?;
    let port = u16::try_from(value.get("api")?.as_u64()?).ok()?;
    std::net::TcpListener::bind(("127.0.0.1", port))
        .is_err()
        .then_some(port)
}

/// Starts the stack, runs the steps with `workload`, prints the summary, and stops the stack
/// (after Ctrl-C with `--keep`). The stack is stopped on failure too; the data stays.
async fn drive<W: Workload>(
    mut workload: W,
    args: &Args,
    data_dir: &Path,
    bin_dir: &Path,
    cairnctl: &Path,
    started: Instant,
) -> anyhow::Result<ExitCode> {
    println!(
        "Cairn quickstart: standalone mode, {}, a backup and a verified restore.\n",
        workload.noun()
    );
    let point_in_time = workload.continuous()?.is_some();
    let mut steps = Steps::new(if point_in_time { 9 } else { 7 });
    let stack = steps
        .run(
            "Start Cairn in standalone mode (localkube, control plane, one agent)",
            start_stack(data_dir, bin_dir),
        )
        .await?;
    let ctx = Ctx {
        client: stack.client().await?,
        data_dir: data_dir.to_path_buf(),
        bin_dir: bin_dir.to_path_buf(),
        cairnctl: cairnctl.to_path_buf(),
    };
    let outcome = protect(&mut workload, &ctx, &mut steps, &stack, args, started).await;
    match outcome {
        Ok(summary) => {
            println!();
            print!("{}", summary::render(&summary));
            if args.keep {
                wait_for_signal().await;
            }
            println!("\nStopping the stack ...");
            stack.shutdown().await?;
            println!(
                "Quickstart finished in {}.",
                crate::progress::format_duration(started.elapsed().as_secs_f64())
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(err) => {
            eprintln!(
                "\nThe quickstart failed; logs are in {}.",
                data_dir.join("logs").display()
            );
            if args.keep {
                eprintln!(
                    "The stack keeps running for inspection (KUBECONFIG={}); Ctrl-C stops it.",
                    stack.kubeconfig.display()
                );
                wait_for_signal().await;
            }
            stack.shutdown().await?;
            Err(err)
        }
    }
}

async fn start_stack(data_dir: &Path, bin_dir: &Path) -> anyhow::Result<Stack> {
    let mut options = StackOptions::new(data_dir);
    options.bin_dir = Some(bin_dir.to_path_buf());
    let stack = Stack::up(options).await?;
    detail(&format!(
        "API server https://{}, agent on node {} connected, BackupRepo local Ready ({})",
        stack.api_addr,
        stack.node_name,
        data_dir.join("repo").display()
    ));
    Ok(stack)
}

/// Steps 2 to 7.
async fn protect<W: Workload>(
    workload: &mut W,
    ctx: &Ctx,
    steps: &mut Steps,
    stack: &Stack,
    args: &Args,
    started: Instant,
) -> anyhow::Result<summary::Summary> {
    steps
        .run(&workload.start_title(), async {
            cluster::create_cluster(&ctx.client, &manifests::namespace()?).await?;
            workload.start(ctx).await
        })
        .await?;
    let source_dir = cluster::volume_dir(&ctx.client, workload.claim())
        .await?
        .with_context(|| format!("PVC {} is not bound", workload.claim()))?;

    let actionset = workload.actionset()?;
    let policy = workload.policy()?;
    let continuous = workload.continuous()?;
    let title = if continuous.is_some() {
        "Apply Cairn's ActionSets and BackupPolicy, and archive continuously (BackupSchedule)"
    } else {
        "Apply Cairn's ActionSet and BackupPolicy"
    };
    steps
        .run(title, async {
            let actionset_name = actionset.metadata.name.clone().unwrap_or_default();
            let policy_name = policy.metadata.name.clone().unwrap_or_default();
            cluster::create_cluster(&ctx.client, &actionset).await?;
            let mut saved = vec![serde_json::to_value(&actionset)?];
            if let Some((continuous, _)) = &continuous {
                cluster::create_cluster(&ctx.client, continuous).await?;
                saved.push(serde_json::to_value(continuous)?);
            }
            cluster::create(&ctx.client, &policy).await?;
            cluster::wait_actionset(&ctx.client, &actionset_name).await?;
            cluster::wait_policy(&ctx.client, &policy_name).await?;
            saved.push(serde_json::to_value(&policy)?);
            if let Some((continuous, method)) = &continuous {
                let name = continuous.metadata.name.clone().unwrap_or_default();
                cluster::wait_actionset(&ctx.client, &name).await?;
                let schedule =
                    manifests::continuous_schedule(manifests::CONTINUOUS_SCHEDULE, &policy_name, method)?;
                cluster::create(&ctx.client, &schedule).await?;
                saved.push(serde_json::to_value(&schedule)?);
                let archiving = wait_window(ctx, None).await?;
                detail(&format!(
                    "Continuous ActionSet {name} archives: {}",
                    window_line(&archiving)
                ));
            }
            let file = ctx.data_dir.join("quickstart.yaml");
            save_yaml(&file, &saved)?;
            detail(&format!(
                "ActionSet {actionset_name} and BackupPolicy {NAMESPACE}/{policy_name} are Available (saved in {})",
                file.display()
            ));
            Ok(())
        })
        .await?;

    workload.before_backup(ctx, &source_dir).await?;
    let source_bytes = dataset::tree_bytes(&source_dir);
    let backup_name = format!("{}-backup", workload.app());
    let (backup, backup_seconds) = steps
        .run(
            &format!(
                "Back up PVC {} (Backup {NAMESPACE}/{backup_name})",
                workload.claim()
            ),
            run_backup(ctx, workload, &backup_name, source_bytes),
        )
        .await?;

    workload.after_backup(ctx).await?;

    // A restore writes back what the backup read (a database backup skips WAL and temp files).
    let restore_expected = backup
        .status
        .as_ref()
        .and_then(|s| s.progress.as_ref())
        .and_then(|p| u64::try_from(p.bytes_done).ok())
        .filter(|&bytes| bytes > 0)
        .unwrap_or(source_bytes);
    steps
        .run(&workload.damage_title(), workload.damage(ctx, &source_dir))
        .await?;

    let restore_name = format!("{}-restore", workload.app());
    let restored_claim = format!("{}-restored", workload.claim());
    let restored = steps
        .run(
            &format!("Restore {backup_name} into a new PVC {restored_claim} (Restore {NAMESPACE}/{restore_name})"),
            run_restore(ctx, &backup, &restore_name, &restored_claim, restore_expected, None),
        )
        .await?;

    let mut verification = steps
        .run(
            "Check that the restored data equals the original",
            workload.verify(ctx, &restored_claim, &restored.dir),
        )
        .await?;
    if continuous.is_some() {
        let accident = workload
            .accident_at()
            .context("the accident's time is not known")?;
        let at = jiff::Timestamp::from_second(accident.as_second() - 1)?;
        let pitr_name = format!("{}-pitr", workload.app());
        let pitr_claim = format!("{}-pitr", workload.claim());
        steps
            .run(
                &format!(
                    "Restore to {} UTC, the second before the accident (Restore {NAMESPACE}/{pitr_name})",
                    at.strftime("%H:%M:%S")
                ),
                async {
                    let archive = wait_window(ctx, Some(at)).await?;
                    detail(&format!("Backup {}", window_line(&archive)));
                    run_restore(ctx, &archive, &pitr_name, &pitr_claim, restore_expected, Some(at))
                        .await
                },
            )
            .await?;
        let proof = steps
            .run(
                "Check that the point-in-time copy holds every row written up to that second",
                workload.verify_point_in_time(ctx, &pitr_claim, at),
            )
            .await?;
        verification = format!("{verification}; point in time: {proof}");
    }

    let status = backup.status.clone().unwrap_or_default();
    let stored_bytes = status
        .total_size
        .as_deref()
        .and_then(|s| cairn_api::parse::quantity::parse_bytes(s).ok());
    let backup_read_bytes = status
        .progress
        .as_ref()
        .and_then(|p| u64::try_from(p.bytes_done).ok())
        .filter(|b| *b > 0);
    let backup_dir = ctx
        .data_dir
        .join("repo")
        .join(status.path.unwrap_or_default().trim_start_matches('/'));
    Ok(summary::Summary {
        workload: workload.description(),
        source_bytes,
        backup_read_bytes,
        stored_bytes,
        backup_seconds,
        restore_seconds: restored.seconds,
        restored_bytes: restored.bytes,
        restore_data: restored.window,
        backup_name,
        restore_name,
        namespace: NAMESPACE.into(),
        verification,
        data_dir: ctx.data_dir.clone(),
        backup_dir,
        source_dir,
        restored_dir: restored.dir,
        kubeconfig: stack.kubeconfig.clone(),
        extra_commands: workload.extra_commands(ctx),
        total_seconds: started.elapsed().as_secs_f64(),
        keep: args.keep,
    })
}

/// Creates the Backup and follows it to Completed; returns it and the wall time it took.
async fn run_backup<W: Workload>(
    ctx: &Ctx,
    workload: &W,
    name: &str,
    expected: u64,
) -> anyhow::Result<(Backup, f64)> {
    let create = backup::create::Args {
        name: Some(name.to_string()),
        policy: None,
        method: None,
        deletion_policy: None,
        retention: None,
        params: Vec::new(),
        wait: true,
        timeout: Duration::from_secs(600),
    };
    let policy = workload.policy()?;
    let object = backup::create::build(
        name,
        NAMESPACE,
        policy.metadata.name.as_deref().unwrap_or_default(),
        &policy
            .spec
            .backup_methods
            .first()
            .map(|m| m.name.clone())
            .unwrap_or_default(),
        &create,
    )?;
    let api: Api<Backup> = Api::namespaced(ctx.client.clone(), NAMESPACE);
    api.create(&PostParams::default(), &object)
        .await
        .with_context(|| format!("creating Backup {NAMESPACE}/{name}"))?;
    let mut reporter = Reporter::new(Mode::detect(false), Box::new(Indented::new()));
    let options = backup::wait::WaitOptions {
        timeout: create.timeout,
        expected_total: Some(expected),
        ..Default::default()
    };
    let (done, seconds) = backup::wait::until_done(&api, name, &mut reporter, &options).await?;
    detail(&backup::wait::completed_line(&done, Some(seconds)));
    Ok((done, seconds))
}

/// Creates the Restore into a new claim and follows it to Completed, measuring the bytes
/// written into the claim's directory; returns that directory and the wall time.
async fn run_restore(
    ctx: &Ctx,
    backup: &Backup,
    name: &str,
    claim: &str,
    expected: u64,
    to_time: Option<jiff::Timestamp>,
) -> anyhow::Result<Restored> {
    let create = restore::create::Args {
        name: Some(name.to_string()),
        backup: backup.metadata.name.clone().unwrap_or_default(),
        backup_namespace: None,
        pvcs: vec![claim.to_string()],
        volume_source: None,
        mount_path: None,
        size: Some(format!("{}Mi", (expected * 2).div_ceil(1 << 20).max(64))),
        storage_class: None,
        params: Vec::new(),
        env: Vec::new(),
        to_time,
        wait: true,
        timeout: Duration::from_secs(600),
    };
    let object = restore::create::build(name, NAMESPACE, backup, &create)?;
    let api: Api<Restore> = Api::namespaced(ctx.client.clone(), NAMESPACE);
    let created = jiff::Timestamp::now();
    api.create(&PostParams::default(), &object)
        .await
        .with_context(|| format!("creating Restore {NAMESPACE}/{name}"))?;
    let file = if to_time.is_some() {
        "quickstart-pitr-restore.yaml"
    } else {
        "quickstart-restore.yaml"
    };
    save_yaml(&ctx.data_dir.join(file), &[serde_json::to_value(&object)?])?;

    // The claim's directory appears once the restore job binds it.
    let finder = cluster::VolumeFinder::start(&ctx.client, claim);
    let mut probe = || finder.dir().map(|dir| dataset::tree_written(&dir));
    let mut reporter = Reporter::new(Mode::detect(false), Box::new(Indented::new()));
    let options = restore::wait::WaitOptions {
        timeout: create.timeout,
        expected_total: Some(expected),
        ..Default::default()
    };
    let (done, seconds) = restore::wait::until_done(
        &api,
        name,
        &mut reporter,
        &options,
        created,
        Some(&mut probe),
    )
    .await?;
    drop(finder);
    let dir = cluster::volume_dir(&ctx.client, claim)
        .await?
        .with_context(|| format!("PVC {claim} is not bound after the restore"))?;
    let written = dataset::tree_written(&dir);
    let window = DataWindow::of(&written, created);
    detail(&restore::wait::completed_line(
        &done,
        Some(seconds),
        window.map(|w| (written.bytes, w)),
    ));
    Ok(Restored {
        dir,
        seconds,
        bytes: written.bytes,
        window,
    })
}

/// What [`run_restore`] saw: the restored claim's directory, how long the Restore took, and
/// the bytes written into the directory and when they arrived.
struct Restored {
    dir: PathBuf,
    seconds: f64,
    bytes: u64,
    window: Option<DataWindow>,
}

/// Waits until the continuous Backup of the quickstart's schedule is Running with a window that
/// ends after `past` (with any window when `None`); fails at once when it failed.
async fn wait_window(ctx: &Ctx, past: Option<jiff::Timestamp>) -> anyhow::Result<Backup> {
    let api: Api<Backup> = Api::namespaced(ctx.client.clone(), NAMESPACE);
    let selector = format!(
        "{}={}",
        cairn_api::well_known::label::BACKUP_SCHEDULE,
        manifests::CONTINUOUS_SCHEDULE
    );
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut last = String::from("no continuous Backup yet");
    while Instant::now() < deadline {
        let list = api
            .list(&kube::api::ListParams::default().labels(&selector))
            .await
            .with_context(|| {
                format!(
                    "listing the Backups of schedule {}",
                    manifests::CONTINUOUS_SCHEDULE
                )
            })?;
        if let Some(backup) = list.items.into_iter().next() {
            let status = backup.status.clone().unwrap_or_default();
            if status.phase == Some(cairn_api::backup::BackupPhase::Failed) {
                bail!(
                    "continuous Backup {} failed: {}",
                    backup.metadata.name.as_deref().unwrap_or_default(),
                    status.failure_reason.unwrap_or_default()
                );
            }
            let end = status
                .time_range
                .as_ref()
                .and_then(|r| r.end.as_ref())
                .map(|e| e.0);
            let running = status.phase == Some(cairn_api::backup::BackupPhase::Running);
            match (end, past) {
                (Some(end), Some(past)) if running && end > past => return Ok(backup),
                (Some(_), None) if running => return Ok(backup),
                _ => last = window_line(&backup),
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    bail!("the continuous backup did not archive in time: {last}")
}

/// `NAME Running, window HH:MM:SS to HH:MM:SS UTC`.
fn window_line(backup: &Backup) -> String {
    let status = backup.status.clone().unwrap_or_default();
    let at = |t: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>| {
        t.map(|t| t.0.strftime("%H:%M:%S").to_string())
            .unwrap_or_else(|| "-".into())
    };
    let range = status.time_range.unwrap_or_default();
    format!(
        "{NAMESPACE}/{} {}, window {} to {} UTC",
        backup.metadata.name.as_deref().unwrap_or_default(),
        status
            .phase
            .map(|p| format!("{p:?}"))
            .unwrap_or_else(|| "New".into()),
        at(range.start.as_ref()),
        at(range.end.as_ref())
    )
}

/// Plain progress lines on stdout, indented under the step.
struct Indented {
    at_line_start: bool,
}

impl Indented {
    fn new() -> Indented {
        Indented {
            at_line_start: true,
        }
    }
}

impl std::io::Write for Indented {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut out = std::io::stdout().lock();
        for part in buf.split_inclusive(|b| *b == b'\n') {
            if self.at_line_start {
                out.write_all(b"      ")?;
            }
            out.write_all(part)?;
            self.at_line_start = part.ends_with(b"\n");
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stdout().flush()
    }
}

fn save_yaml(file: &Path, objects: &[serde_json::Value]) -> anyhow::Result<()> {
    let text = serde_saphyr::to_string_multiple(objects)
        .with_context(|| format!("rendering {}", file.display()))?;
    std::fs::write(file, text).with_context(|| format!("writing {}", file.display()))
}

async fn wait_for_signal() {
    let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
    else {
        let _ = tokio::signal::ctrl_c().await;
        return;
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// Bytes as the summary prints them (re-exported for the workloads' detail lines).
pub fn human(bytes: u64) -> String {
    HumanBytes(bytes).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_sibling_binary_gives_a_one_line_build_hint() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("localkube"), "").expect("write");
        let err = check_siblings(dir.path()).expect_err("missing");
        let text = err.to_string();
        assert!(
            text.starts_with("cairn-control-plane, cairn-agent, datasafed missing in "),
            "{text}"
        );
        assert!(text.contains("cargo build --release --bins"), "{text}");
        assert_eq!(text.lines().count(), 1);
    }

    #[test]
    fn only_a_previous_quickstart_directory_is_replaced() {
        let root = tempfile::tempdir().expect("tempdir");
        let other = root.path().join("other");
        std::fs::create_dir_all(&other).expect("mkdir");
        std::fs::write(other.join("precious.txt"), "keep me").expect("write");
        let err = prepare_data_dir(&other).expect_err("refused");
        assert!(
            err.to_string().contains("is not a quickstart directory"),
            "{err}"
        );
        assert!(other.join("precious.txt").is_file());

        let previous = root.path().join("previous");
        prepare_data_dir(&previous).expect("fresh");
        std::fs::write(previous.join("old-backup"), "x").expect("write");
        prepare_data_dir(&previous).expect("replaced");
        assert!(!previous.join("old-backup").exists());
        assert!(previous.join(MARKER).is_file());
    }

    #[test]
    fn a_directory_whose_stack_still_runs_is_not_replaced() {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("q");
        prepare_data_dir(&dir).expect("fresh");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        std::fs::write(
            dir.join("stack.json"),
            format!("{{\"api\":{port},\"agent\":1,\"health\":2}}"),
        )
        .expect("write");
        let err = prepare_data_dir(&dir).expect_err("running");
        assert!(err.to_string().contains("still running"), "{err}");
        drop(listener);
        prepare_data_dir(&dir).expect("replaced once stopped");
    }
}
