//! `kill -9` of a Cairn process in the middle of a backup: the scenario both crash tests run.
//!
//! The backup job appends a line to `/side/runs` (a host directory, outside the backup) and then
//! sleeps before pushing, so the test can kill the process while the action runs. Afterwards
//! the Backup must end Completed (or Failed with a reason naming the loss), the job must have run
//! exactly once, the restored data must equal the original, the action's storage token must be
//! revoked, and no Job or action pod may be left.

use std::time::Duration;

use anyhow::Context as _;
use cairn_api::well_known;
use k8s_openapi::api::batch::v1::Job;
use kube::api::{Api, ListParams};

use crate::stack::TestStack;
use crate::wait::{Check, until};
use crate::{dp, files, scenario};

/// The process killed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Victim {
    Agent,
    ControlPlane,
}

const NS: &str = "shop";
/// What the backup job does before pushing: count its run, then give the test time to kill.
const BEFORE_PUSH: &str = "echo run >> /side/runs; sleep 4";

/// Runs the scenario against `stack`, killing `victim`.
pub async fn kill_in_the_middle_of_a_backup(
    stack: &mut TestStack,
    victim: Victim,
) -> anyhow::Result<()> {
    let workload = scenario::workload(stack, NS, "db", 1 << 20).await?;
    let source = files::tree(&workload.data_dir)?;
    let policy =
        scenario::file_policy(stack, &workload, "db", "slow-files", "", BEFORE_PUSH).await?;
    scenario::backup(stack, NS, "db-1", &policy.name, &policy.method, "Delete").await?;

    let runs = workload.side_dir.join("runs");
    until(
        "the backup job to start",
        Duration::from_secs(60),
        async || {
            Ok(match std::fs::read_to_string(&runs) {
                Ok(text) if !text.is_empty() => Check::Done(()),
                _ => Check::Pending("the job has not counted its run".into()),
            })
        },
    )
    .await?;
    let token = job_token(&stack.client, "db-1").await?;
    match victim {
        Victim::Agent => {
            stack.stack.agent().kill9();
            stack.stack.restart_agent().await?;
        }
        Victim::ControlPlane => {
            stack.stack.control_plane().kill9();
            // Long enough for the agent to notice that its session is gone.
            tokio::time::sleep(Duration::from_secs(1)).await;
            stack.stack.restart_control_plane().await?;
        }
    }

    let backup = dp::backup_finished(&stack.client, NS, "db-1", Duration::from_secs(90)).await?;
    let phase = dp::backup_phase(&backup);
    let reason = dp::failure_reason(&backup);
    anyhow::ensure!(
        phase == "Completed"
            || (phase == "Failed" && (reason.contains("agent") || reason.contains("lost"))),
        "after the crash the Backup is Completed or Failed naming the loss; got {phase} {reason:?}"
    );
    let counted = std::fs::read_to_string(&runs)?;
    anyhow::ensure!(
        counted.lines().count() == 1,
        "the action ran exactly once, /side/runs has {} lines",
        counted.lines().count()
    );
    dp::nothing_left_behind(&stack.client, NS, &[&workload.pod], Duration::from_secs(30)).await?;
    if let Some(token) = token {
        anyhow::ensure!(
            token_is_refused(stack, &token).await?,
            "the finished action's storage token still opens the repository"
        );
    }
    if phase == "Completed" {
        scenario::restore(stack, NS, "db-1-restore", "db-1", "data-db-restored").await?;
        dp::restore_completed(&stack.client, NS, "db-1-restore", Duration::from_secs(60)).await?;
        let restored = files::tree(&dp::pvc_dir(&stack.client, NS, "data-db-restored").await?)?;
        let differences = files::differences(&source, &restored);
        anyhow::ensure!(
            differences.is_empty(),
            "the data backed up across the crash restores unchanged:\n{}",
            differences.join("\n")
        );
    }
    Ok(())
}

/// The storage token in the env of the backup's Job (`None` when the Job is already gone).
async fn job_token(client: &kube::Client, backup: &str) -> anyhow::Result<Option<String>> {
    let jobs: Api<Job> = Api::namespaced(client.clone(), NS);
    let list = jobs
        .list(
            &ListParams::default().labels(&format!("{}={backup}", well_known::label::BACKUP_NAME)),
        )
        .await
        .context("listing the backup's Jobs")?;
    Ok(list.items.iter().find_map(|job| {
        job.spec
            .as_ref()?
            .template
            .spec
            .as_ref()?
            .containers
            .iter()
            .flat_map(|c| c.env.iter().flatten())
            .find(|e| e.name == "CAIRN_STORAGE_TOKEN")
            .and_then(|e| e.value.clone())
    }))
}

/// Whether the agent's storage socket refuses `token` (what a leftover grant would not do).
async fn token_is_refused(stack: &TestStack, token: &str) -> anyhow::Result<bool> {
    let socket = stack.data_dir.join("agent/node/sock/storage.sock");
    let out = tokio::process::Command::new(stack.stack.bin_dir.join("datasafed"))
        .args(["list", "/"])
        .env_clear()
        .env("CAIRN_STORAGE_SOCKET", &socket)
        .env("CAIRN_STORAGE_TOKEN", token)
        .output()
        .await
        .context("running datasafed against the agent's socket")?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.success() {
        return Ok(false);
    }
    anyhow::ensure!(
        stderr.contains("unknown or has been revoked"),
        "datasafed failed for another reason than the token: {stderr}"
    );
    Ok(true)
}
