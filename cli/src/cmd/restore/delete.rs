//! `cairnctl restore delete`: deletes Restores (their Jobs go with them; the PVCs they restored
//! into stay). `--wait` follows each until it is gone.

use std::process::ExitCode;

use cairn_api::restore::Restore;

use crate::cmd::backup::Scope;
use crate::cmd::backup::delete::Deletion;

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
    let deletion = Deletion {
        kind: "Restore",
        resource: "restore.dataprotection.kubeblocks.io",
        deleting_note: "",
        wait: args.wait,
        timeout: args.timeout,
    };
    deletion
        .run(scope, &args.names, |restore: &Restore| {
            let phase = restore
                .status
                .as_ref()
                .and_then(|s| s.phase)
                .map(|p| format!("{p:?}"))
                .unwrap_or_else(|| "<none>".into());
            format!("(phase {phase})")
        })
        .await
}
