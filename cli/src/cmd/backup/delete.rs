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
    /// With --wait: give up after this long (exit code 3): a duration such as 90s, 10m or
    /// 1h, or seconds.
    #[arg(long, default_value = "300", value_parser = crate::exit::parse_timeout)]
    pub timeout: std::time::Duration,
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
            wait_gone(&api, name, args.timeout).await?;
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
    wait_deleted(api, "Backup", name, timeout, |backup: &Backup| {
        let why = backup
            .status
            .as_ref()
            .and_then(|s| {
                s.deletion_failure_reason
                    .clone()
                    .or(s.failure_reason.clone())
            })
            .unwrap_or_else(|| "no reason in its status".into());
        format!("(phase {}): {why}", phase_text(backup))
    })
    .await
}

/// Waits until object `name` of `kind` is gone; on timeout ([`crate::exit::TimedOut`]) says
/// what `state` reads from the object still there.
pub async fn wait_deleted<K>(
    api: &Api<K>,
    kind: &str,
    name: &str,
    timeout: Duration,
    state: impl Fn(&K) -> String,
) -> anyhow::Result<()>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let Some(object) = api
            .get_opt(name)
            .await
            .with_context(|| format!("reading {kind} {name}"))?
        else {
            return Ok(());
        };
        if tokio::time::Instant::now() > deadline {
            return Err(crate::exit::TimedOut(format!(
                "{kind} {name} is still there after {}s {}",
                timeout.as_secs(),
                state(&object)
            ))
            .into());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
