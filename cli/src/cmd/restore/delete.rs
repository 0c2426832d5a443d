//! `cairnctl restore delete`: deletes Restores (their Jobs go with them; the PVCs they restored
//! into stay). `--wait` follows each until it is gone.

use std::process::ExitCode;

use anyhow::{Context as _, bail};
use cairn_api::restore::Restore;
use kube::api::{Api, DeleteParams};
use serde_json::json;

use crate::cmd::backup::Scope;
use crate::cmd::backup::delete::wait_deleted;

/// Arguments of `cairnctl restore delete`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The Restores to delete.
    #[arg(required = true)]
    pub names: Vec<String>,
    /// Wait until each Restore is gone.
    #[arg(long)]
    pub wait: bool,
    /// With --wait: give up after this long (exit code 3): a duration such as 90s, 10m or
    /// 1h, or seconds.
    #[arg(long, default_value = "300", value_parser = crate::exit::parse_timeout)]
    pub timeout: std::time::Duration,
}

/// Runs `cairnctl restore delete`.
pub async fn run(scope: &Scope, args: Args) -> anyhow::Result<ExitCode> {
    let api: Api<Restore> = Api::namespaced(scope.client.clone(), &scope.namespace);
    for name in &args.names {
        let existing = api
            .get_opt(name)
            .await
            .with_context(|| format!("reading Restore {}/{name}", scope.namespace))?;
        if existing.is_none() {
            bail!("there is no Restore {name} in namespace {}", scope.namespace);
        }
        api.delete(name, &DeleteParams::background())
            .await
            .with_context(|| format!("deleting Restore {}/{name}", scope.namespace))?;
        if args.wait {
            wait_deleted(&api, "Restore", name, args.timeout, |r: &Restore| {
                format!(
                    "(phase {})",
                    r.status
                        .as_ref()
                        .and_then(|s| s.phase)
                        .map(|p| format!("{p:?}"))
                        .unwrap_or_else(|| "<none>".into())
                )
            })
            .await?;
        }
        if scope.json {
            println!(
                "{}",
                json!({"type": "result", "kind": "Restore", "namespace": scope.namespace, "name": name,
                       "deleted": args.wait, "deleting": !args.wait})
            );
        } else if args.wait {
            println!("restore.dataprotection.kubeblocks.io/{name} deleted");
        } else {
            println!("restore.dataprotection.kubeblocks.io/{name} deleting");
        }
    }
    Ok(ExitCode::SUCCESS)
}
