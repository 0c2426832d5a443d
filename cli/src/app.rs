//! The `cairnctl` command line, shared by the `cairnctl` binary and its kubectl plugin form
//! `kubectl-cairn` (`kubectl cairn backup list`).

use std::process::ExitCode;

use clap::{CommandFactory as _, Parser, Subcommand};

use crate::cmd;

const ABOUT: &str = "cairnctl: backups and restores of stateful workloads on Kubernetes, with the KubeBlocks data-protection API (Backup, Restore, BackupPolicy, BackupSchedule, ActionSet, BackupRepo)";

const LONG_ABOUT: &str = "cairnctl drives Cairn, a drop-in for KubeBlocks' data protection: it creates, follows and \
inspects Backups and Restores on any cluster Cairn runs on (or on `cairnctl up`, a local \
standalone stack), imports the backups another cluster left in a repository, checks and \
converts manifests, and works with backup repositories directly.\n\n\
Exit codes: 0 success, 1 failure, 2 usage error, 3 timeout.\n\
As a kubectl plugin (the same program installed as `kubectl-cairn`): `kubectl cairn backup list`.";

#[derive(Debug, Parser)]
#[command(version, about = ABOUT, long_about = LONG_ABOUT)]
struct Cli {
    /// kubectl's global options (`-n`, `-A`, `-l`, `-o`, `--context`, `--kubeconfig`,
    /// `--request-timeout`), accepted anywhere on the line.
    #[command(flatten)]
    globals: cmd::backup::ObjectArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check manifests against the API types, the CRD schema rules and the semantic checks.
    Validate(cmd::validate::Args),
    /// Convert objects of the old API (BackupTool, RestoreJob, old BackupPolicy/Backup) to the new one.
    Convert(cmd::convert::Args),
    /// Print the CustomResourceDefinitions generated from the API types.
    Crds(cmd::crds::Args),
    /// Work with a backup repository directly (init, backup, restore, snapshots, forget, prune, check).
    Repo(cmd::repo::Args),
    /// Run standalone mode: localkube, the control plane and one agent, until Ctrl-C.
    Up(cmd::up::Args),
    /// The main job in one run: standalone mode, a workload, a backup with live progress, a
    /// restore into a new PVC, proof that the data came back, and a summary.
    Quickstart(cmd::quickstart::Args),
    /// Create, list, describe, delete and import Backups (progress bars, --json, --wait).
    Backup(cmd::backup::Args),
    /// Create, list, describe and delete Restores into new PVCs (progress, --json, --wait).
    Restore(cmd::restore::Args),
    /// List, describe, enable, disable and trigger BackupSchedules.
    Schedule(cmd::schedule::Args),
    /// Print the client's version and the control plane's (read from the cluster; -o json|yaml).
    Version(cmd::version::Args),
    /// Print a shell completion script: `source <(cairnctl completion bash)`.
    Completion(CompletionArgs),
}

/// Arguments of `cairnctl completion`.
#[derive(Debug, clap::Args)]
struct CompletionArgs {
    /// The shell.
    #[arg(value_enum)]
    shell: clap_complete::Shell,
}

/// Runs the command line as `name` (`cairnctl` or `kubectl-cairn`).
pub fn main(name: &'static str) -> ExitCode {
    cairn_repo::memory::tune_allocator();
    let command = Cli::command().name(name).bin_name(bin_name(name));
    let matches = match command.try_get_matches() {
        Ok(matches) => matches,
        Err(err) => {
            // --help and --version are not errors.
            let _ = err.print();
            return if err.use_stderr() {
                ExitCode::from(crate::exit::USAGE)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let cli = match <Cli as clap::FromArgMatches>::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(err) => {
            let _ = err.print();
            return ExitCode::from(crate::exit::USAGE);
        }
    };
    if let Command::Completion(args) = &cli.command {
        let mut command = Cli::command().name(name).bin_name(bin_name(name));
        clap_complete::generate(
            args.shell,
            &mut command,
            bin_name(name),
            &mut std::io::stdout(),
        );
        return ExitCode::SUCCESS;
    }
    if restores(&cli.command) {
        cairn_repo::memory::tune_allocator_for_restores();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("{name}: cannot start the async runtime: {err}");
            return ExitCode::from(crate::exit::FAILURE);
        }
    };
    let globals = cli.globals;
    let result = runtime.block_on(async {
        refuse_object_options(&cli.command, &globals)?;
        match cli.command {
            Command::Validate(args) => cmd::validate::run(args).await,
            Command::Convert(args) => cmd::convert::run(args).await,
            Command::Crds(args) => cmd::crds::run(args).await,
            Command::Repo(args) => cmd::repo::run(&globals, args).await,
            Command::Up(args) => cmd::up::run(args).await,
            Command::Quickstart(args) => cmd::quickstart::run(args).await,
            Command::Backup(args) => cmd::backup::run(&globals, args).await,
            Command::Restore(args) => cmd::restore::run(&globals, args).await,
            Command::Schedule(args) => cmd::schedule::run(&globals, args).await,
            Command::Version(args) => cmd::version::run(&globals, args).await,
            Command::Completion(_) => Ok(ExitCode::SUCCESS),
        }
    });
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("{name}: {err:#}");
            crate::exit::code_of(&err)
        }
    }
}

/// Whether `command` restores repository data in this process.
fn restores(command: &Command) -> bool {
    matches!(command, Command::Repo(args) if matches!(args.command, cmd::repo::Command::Restore(_)))
}

/// `-o`, `-l` and `-A` on a command that does not list cluster objects are refused (exit code
/// 2), not ignored.
fn refuse_object_options(
    command: &Command,
    globals: &cmd::backup::ObjectArgs,
) -> anyhow::Result<()> {
    let name = match command {
        Command::Backup(_) | Command::Restore(_) | Command::Schedule(_) | Command::Version(_) => {
            return Ok(());
        }
        Command::Repo(args) if matches!(args.command, cmd::repo::Command::List(_)) => {
            if globals.all_namespaces {
                return Err(crate::exit::Usage(
                    "cairnctl repo list does not take -A (BackupRepos belong to no namespace)"
                        .into(),
                )
                .into());
            }
            return Ok(());
        }
        Command::Validate(_) => "validate",
        Command::Convert(_) => "convert",
        Command::Crds(_) => "crds",
        Command::Repo(_) => "repo",
        Command::Up(_) => "up",
        Command::Quickstart(_) => "quickstart",
        Command::Completion(_) => "completion",
    };
    let given: Vec<&str> = [
        (globals.output.is_some(), "-o"),
        (globals.selector.is_some(), "-l"),
        (globals.all_namespaces, "-A"),
    ]
    .into_iter()
    .filter_map(|(set, flag)| set.then_some(flag))
    .collect();
    if given.is_empty() {
        return Ok(());
    }
    Err(crate::exit::Usage(format!(
        "cairnctl {name} does not take {} (they apply to the commands that list or show cluster objects)",
        given.join(", ")
    ))
    .into())
}

/// How the program is invoked: the plugin form is run by kubectl as `kubectl cairn`.
fn bin_name(name: &str) -> &'static str {
    if name == "kubectl-cairn" {
        "kubectl cairn"
    } else {
        "cairnctl"
    }
}
