//! `cairnctl backup create|list|describe|delete|windows`: thin, friendly wrappers over Backup objects,
//! with live progress on a terminal, plain lines in a pipe, `--json` for machines and `--wait`.
//! They work the same against standalone mode (localkube) and a real cluster.
//!
//! `kube` (cluster connection), `table` (kubectl-style output) and `wait` (following an object
//! until it finishes) are shared with `cairnctl restore` and `cairnctl repo list`.

pub mod create;
pub mod delete;
pub mod describe;
pub mod import;
pub mod kube;
pub mod list;
pub mod logs;
pub mod repo_list;
pub mod table;
pub mod wait;
pub mod windows;

use std::process::ExitCode;

use clap::Subcommand;

pub use self::kube::KubeArgs;
use crate::exit::Usage;

/// Arguments of `cairnctl backup`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: Command,
}

/// kubectl's global options, accepted anywhere on the line (`cairnctl -n prod backup list`,
/// `cairnctl backup list -n prod`): the cluster, the namespace, selectors and the output format.
/// Commands that cannot honour one refuse it (`Scope::refuse_list_options`) rather than ignore it.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ObjectArgs {
    #[command(flatten)]
    pub kube: KubeArgs,
    /// Namespace of the objects (default: the kubeconfig's namespace).
    #[arg(short = 'n', long, global = true)]
    pub namespace: Option<String>,
    /// List the objects of every namespace (list commands).
    #[arg(short = 'A', long, global = true)]
    pub all_namespaces: bool,
    /// A label selector (`app=pg,tier!=cache`, `env in (prod,qa)`, `!draft`): only the objects
    /// it matches (list commands; the API server selects, as for kubectl).
    #[arg(short = 'l', long, global = true)]
    pub selector: Option<String>,
    /// Output format, as kubectl: json, yaml, wide, name, jsonpath=TEMPLATE,
    /// custom-columns=HEADER:PATH,... (also jsonpath-file=, custom-columns-file=).
    #[arg(short = 'o', long, global = true, value_parser = crate::output::Format::parse)]
    pub output: Option<crate::output::Format>,
    /// Print JSON instead of text: JSON lines while waiting, the object(s) at the end (a list
    /// is a JSON array; `-o json` prints kubectl's List instead).
    #[arg(long, global = true, conflicts_with = "output")]
    pub json: bool,
}

impl ObjectArgs {
    /// Connects to the cluster; the namespace is `-n`, else the kubeconfig's.
    pub async fn scope(&self) -> anyhow::Result<Scope> {
        let connection = self.kube.connect().await?;
        Ok(Scope {
            client: connection.client,
            namespace: self
                .namespace
                .clone()
                .unwrap_or(connection.default_namespace),
            json: self.json,
            output: self.output.clone(),
            selector: self.selector.clone(),
            all_namespaces: self.all_namespaces,
        })
    }
}

/// `cairnctl backup` subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a Backup with a method of a BackupPolicy (and follow it with --wait).
    Create(create::Args),
    /// List Backups: phase, size, duration, age.
    #[command(alias = "ls")]
    List(list::Args),
    /// Show one Backup: where its data is, its progress and actions, why it failed.
    Describe(describe::Args),
    /// Delete a Backup (and, with deletionPolicy Delete, its data in the repository).
    #[command(alias = "rm")]
    Delete(delete::Args),
    /// Show what point-in-time restores can reach: per policy, the earliest and latest
    /// restorable times of its Continuous backups, and the gaps.
    Windows(windows::Args),
    /// Print the logs of the Backup's actions: its Jobs' pods (`-f` follows them), and what
    /// the agent recorded of actions run in the target pod.
    Logs(logs::Args),
    /// Rebuild Backups from the kubeblocks-backup.json manifests in a BackupRepo's repository
    /// (backups another cluster took), so that they restore here. Dry run unless --apply.
    Import(import::Args),
}

/// Runs `cairnctl backup`.
pub async fn run(common: &ObjectArgs, args: Args) -> anyhow::Result<ExitCode> {
    let explicit_namespace = common.namespace.clone();
    let scope = common.scope().await?;
    match args.command {
        Command::Create(a) => {
            scope.refuse_list_options("backup create")?;
            create::run(&scope, a).await
        }
        Command::List(a) => list::run(&scope, a).await,
        Command::Describe(a) => describe::run(&scope, a).await,
        Command::Delete(a) => {
            scope.refuse_list_options("backup delete")?;
            delete::run(&scope, a).await
        }
        Command::Windows(a) => windows::run(&scope, a).await,
        Command::Logs(a) => {
            scope.refuse_list_options("backup logs")?;
            let backup = get::<cairn_api::backup::Backup>(&scope, &a.name).await?;
            let sources = logs::choose(
                logs::backup_sources(&backup),
                &a.actions,
                &format!("Backup {}", a.name),
            )?;
            logs::print(&scope.client, &sources, &a).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Import(a) => {
            scope.refuse_list_options("backup import")?;
            import::run(&scope, explicit_namespace, a).await
        }
    }
}

/// The object `name` of kind `K` in the scope's namespace, typed; an error names it if absent.
pub async fn get<K>(scope: &Scope, name: &str) -> anyhow::Result<K>
where
    K: ::kube::Resource<DynamicType = ()> + serde::de::DeserializeOwned,
{
    let object = table::fetch_named::<K>(scope, name).await?;
    table::typed::<K>(std::slice::from_ref(&object))?
        .pop()
        .ok_or_else(|| anyhow::anyhow!("reading {} {name}", K::kind(&())))
}

/// What every subcommand works with.
pub struct Scope {
    pub client: ::kube::Client,
    pub namespace: String,
    pub json: bool,
    /// `-o`.
    pub output: Option<crate::output::Format>,
    /// `-l`.
    pub selector: Option<String>,
    /// `-A`.
    pub all_namespaces: bool,
}

impl Scope {
    /// Refuses `-o`, `-l` and `-A` on a command that does not list or show objects.
    pub fn refuse_list_options(&self, command: &str) -> Result<(), Usage> {
        let refuse = |option: &str, why: &str| {
            Err(Usage(format!(
                "cairnctl {command} does not take {option} ({why})"
            )))
        };
        if self.output.is_some() {
            return refuse("-o", "it prints what it did; --json prints it as JSON");
        }
        if self.selector.is_some() {
            return refuse("-l", "it works on the objects it names");
        }
        if self.all_namespaces {
            return refuse("-A", "name the namespace with -n");
        }
        Ok(())
    }

    /// Refuses `-l` and `-A` on a command about one named object.
    pub fn refuse_selection(&self, command: &str) -> Result<(), Usage> {
        let refuse = |option: &str| {
            Err(Usage(format!(
                "cairnctl {command} does not take {option} (it shows the one object it names; list commands select)"
            )))
        };
        if self.selector.is_some() {
            return refuse("-l");
        }
        if self.all_namespaces {
            return refuse("-A");
        }
        Ok(())
    }
}
