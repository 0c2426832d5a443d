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
    let deletion = Deletion {
        kind: "Backup",
        resource: "backup.dataprotection.kubeblocks.io",
        deleting_note: " (its data is removed first; --wait follows it)",
        wait: args.wait,
        timeout: args.timeout,
    };
    deletion
        .run(scope, &args.names, |backup: &Backup| {
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

/// `delete NAME...` of one kind: each object must exist, is deleted in the background and,
/// with `wait`, followed until it is gone.
pub struct Deletion {
    pub kind: &'static str,
    /// `<plural>.<group>`, as kubectl prints it.
    pub resource: &'static str,
    /// Appended to `<resource>/<name> deleting` without --wait.
    pub deleting_note: &'static str,
    pub wait: bool,
    pub timeout: Duration,
}

impl Deletion {
    /// Deletes `names` in the scope's namespace; `state` describes an object still there when
    /// the wait gives up.
    pub async fn run<K>(
        &self,
        scope: &Scope,
        names: &[String],
        state: impl Fn(&K) -> String,
    ) -> anyhow::Result<ExitCode>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
    {
        let kind = self.kind;
        let api: Api<K> = Api::namespaced(scope.client.clone(), &scope.namespace);
        for name in names {
            let existing = api
                .get_opt(name)
                .await
                .with_context(|| format!("reading {kind} {}/{name}", scope.namespace))?;
            if existing.is_none() {
                bail!("there is no {kind} {name} in namespace {}", scope.namespace);
            }
            api.delete(name, &DeleteParams::background())
                .await
                .with_context(|| format!("deleting {kind} {}/{name}", scope.namespace))?;
            if self.wait {
                wait_deleted(&api, kind, name, self.timeout, &state).await?;
            }
            let resource = self.resource;
            if scope.json {
                println!(
                    "{}",
                    json!({"type": "result", "kind": kind, "namespace": scope.namespace, "name": name,
                           "deleted": self.wait, "deleting": !self.wait})
                );
            } else if self.wait {
                println!("{resource}/{name} deleted");
            } else {
                println!("{resource}/{name} deleting{}", self.deleting_note);
            }
        }
        Ok(ExitCode::SUCCESS)
    }
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
