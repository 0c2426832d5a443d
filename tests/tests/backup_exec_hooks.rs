//! Exec hooks run in the target pod's container: a preBackup hook that fails with
//! `onError: Continue` is recorded and the backup goes on (data, then the postBackup hook); with
//! `onError: Fail` the Backup fails, naming the hook's failure, and nothing after it runs.

use std::time::Duration;

use cairn_api::backup::{ActionPhase, Backup};
use cairn_e2e::{dp, manifests, run, scenario};

const NS: &str = "shop";

/// `status.actions` as (name, phase, failureReason).
fn actions(backup: &Backup) -> Vec<(String, Option<ActionPhase>, String)> {
    backup
        .status
        .as_ref()
        .and_then(|s| s.actions.clone())
        .unwrap_or_default()
        .into_iter()
        .map(|a| {
            (
                a.name.unwrap_or_default(),
                a.phase,
                a.failure_reason.unwrap_or_default(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_pre_hook_is_skipped_with_on_error_continue_and_fails_the_backup_with_fail()
-> anyhow::Result<()> {
    run("exec-hooks", async |stack| {
        let mut workloads = Vec::new();
        for on_error in ["Continue", "Fail"] {
            let app = on_error.to_lowercase();
            let workload = scenario::workload(stack, NS, &app, 64 << 10).await?;
            let actionset = format!("hooks-{app}");
            stack
                .kubectl
                .apply(&manifests::render(
                    "actionset-hooks.yaml",
                    &[("ACTIONSET", &actionset), ("ON_ERROR", on_error)],
                )?)
                .await?;
            let policy = scenario::policy_for(stack, &workload, &app, &actionset, "", 2).await?;
            scenario::backup(stack, NS, &app, &policy.name, &policy.method, "Delete").await?;
            workloads.push(workload);
        }
        let hooks_log = |i: usize| {
            std::fs::read_to_string(workloads[i].side_dir.join("hooks.log")).unwrap_or_default()
        };

        let kept_going =
            dp::backup_finished(&stack.client, NS, "continue", Duration::from_secs(60)).await?;
        let steps = actions(&kept_going);
        anyhow::ensure!(
            dp::backup_phase(&kept_going) == "Completed",
            "onError Continue: the Backup completes, got {} ({}), actions {steps:?}",
            dp::backup_phase(&kept_going),
            dp::failure_reason(&kept_going)
        );
        anyhow::ensure!(
            hooks_log(0) == "pre-hook\nbackup-data\npost-hook\n",
            "onError Continue: every step ran in order, hooks.log is {:?}",
            hooks_log(0)
        );
        let pre = steps
            .iter()
            .find(|(name, _, _)| name.starts_with("dp-prebackup"))
            .ok_or_else(|| anyhow::anyhow!("no preBackup action in {steps:?}"))?;
        anyhow::ensure!(
            pre.1 == Some(ActionPhase::Failed) && pre.2.contains('3'),
            "onError Continue: the hook's failure (exit code 3) is recorded: {pre:?}"
        );
        let path = kept_going
            .status
            .as_ref()
            .and_then(|s| s.path.clone())
            .unwrap_or_default();
        anyhow::ensure!(
            stack
                .local_repo()
                .join(path.trim_start_matches('/'))
                .join("continue.tar.zst")
                .is_file(),
            "onError Continue: the data was backed up"
        );

        let stopped =
            dp::backup_finished(&stack.client, NS, "fail", Duration::from_secs(60)).await?;
        let steps = actions(&stopped);
        anyhow::ensure!(
            dp::backup_phase(&stopped) == "Failed",
            "onError Fail: the Backup fails, got {}, actions {steps:?}",
            dp::backup_phase(&stopped)
        );
        let reason = dp::failure_reason(&stopped);
        anyhow::ensure!(
            reason.contains("failed actions"),
            "onError Fail: failureReason points at the actions: {reason:?}"
        );
        let pre = steps
            .iter()
            .find(|(name, _, _)| name.starts_with("dp-prebackup"))
            .ok_or_else(|| anyhow::anyhow!("no preBackup action in {steps:?}"))?;
        anyhow::ensure!(
            pre.1 == Some(ActionPhase::Failed) && pre.2.contains('3'),
            "onError Fail: the hook's failure (exit code 3) is recorded: {pre:?}"
        );
        anyhow::ensure!(
            hooks_log(1) == "pre-hook\n",
            "onError Fail: nothing ran after the failed hook, hooks.log is {:?}",
            hooks_log(1)
        );
        let path = stopped
            .status
            .as_ref()
            .and_then(|s| s.path.clone())
            .unwrap_or_default();
        anyhow::ensure!(
            !stack
                .local_repo()
                .join(path.trim_start_matches('/'))
                .join("fail.tar.zst")
                .exists(),
            "onError Fail: no data was backed up"
        );
        Ok(())
    })
    .await
}
