//! `cairnctl backup delete`: deletes a Backup; the controller removes its repository data
//! (deletionPolicy Delete) before the object goes. `--wait` follows that to the end.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, bail};
use cairn_api::backup::Backup;
use kube::api::{Api, DeleteParams};
use serde_json::json;

use super::Scope;
use super::wait::phase_text;

/// Arguments of `cairnctl backup delete`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The Backups to delete.
    #[arg(required = true)]
    pub names: Vec<String>,
    /// Wait until each Backup (and its data) is gone.
    #[arg(long)]
    pub wait: bool,
    /// With --wait: give up after this many seconds.
    #[arg(long, default_value_t = 300)]
    pub timeout: u64,
}

/// Runs `cairnctl backup delete`.
pub async fn run(scope: &Scope, args: Args) -> anyhow::Result<ExitCode> {
    let api: Api<Backup> = Api::namespaced(scope.client.clone(), &scope.namespace);
    for name in &args.names {
        let existing = api
            .get_opt(name)
            .await
            .with_context(|| format!("reading Backup {}/{name}", scope.namespace))?;
        if existing.is_none() {
            bail!("there is no Backup {name} in namespace {}", scope.namespace);
        }
        api.delete(name, &DeleteParams::background())
            .await
            .with_context(|| format!("deleting Backup {}/{name}", scope.namespace))?;
        if args.wait {
            wait_gone(&api, name, Duration::from_secs(args.timeout)).await?;
        }
        if scope.json {
            println!(
                "{}",
                json!({"type": "result", "kind": "Backup", "namespace": scope.namespace, "name": name,
                       "deleted": args.wait, "deleting": !args.wait})
            );
        } else if args.wait {
            println!("backup.dataprotection.kubeblocks.io/{name} deleted");
        } else {
            println!(
                "backup.dataprotection.kubeblocks.io/{name} deleting (its data is removed first; --wait follows it)"
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn wait_gone(api: &Api<Backup>, name: &str, timeout: Duration) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let Some(backup) = api
            .get_opt(name)
            .await
            .with_context(|| format!("reading Backup {name}"))?
        else {
            return Ok(());
        };
        if tokio::time::Instant::now() > deadline {
            let why = backup
                .status
                .as_ref()
                .and_then(|s| {
                    s.deletion_failure_reason
                        .clone()
                        .or(s.failure_reason.clone())
                })
                .unwrap_or_else(|| "no reason in its status".into());
            bail!(
                "Backup {name} is still there after {}s (phase {}): {why}",
                timeout.as_secs(),
                phase_text(&backup)
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
