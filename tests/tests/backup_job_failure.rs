//! A backupData job that keeps failing is retried up to the policy's backoffLimit, then the
//! Backup fails with the Job's reason and the last lines of its log; deleting the Backup
//! removes the failed Job and its pods.

use std::time::Duration;

use cairn_api::backup::Backup;
use cairn_e2e::{dp, manifests, run, scenario};
use kube::api::Api;

const NS: &str = "shop";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_failing_past_its_backoff_limit_fails_the_backup_with_the_jobs_reason_and_log()
-> anyhow::Result<()> {
    run("job-failure", async |stack| {
        let workload = scenario::workload(stack, NS, "db", 4096).await?;
        stack
            .kubectl
            .apply(&manifests::render(
                "actionset-failing-job.yaml",
                &[("ACTIONSET", "always-fails")],
            )?)
            .await?;
        let policy = scenario::policy_for(stack, &workload, "db", "always-fails", "", 1).await?;
        scenario::backup(stack, NS, "doomed", &policy.name, &policy.method, "Delete").await?;
        let backup =
            dp::backup_finished(&stack.client, NS, "doomed", Duration::from_secs(120)).await?;
        let actions = backup
            .status
            .as_ref()
            .and_then(|s| s.actions.clone())
            .unwrap_or_default();
        anyhow::ensure!(
            dp::backup_phase(&backup) == "Failed",
            "the Backup fails, got {} with actions {actions:?}",
            dp::backup_phase(&backup)
        );
        let attempts = std::fs::read_to_string(workload.side_dir.join("attempts"))?;
        anyhow::ensure!(
            attempts.lines().count() == 2,
            "backoffLimit 1 means two attempts, the job ran {} times",
            attempts.lines().count()
        );
        let data = actions
            .iter()
            .find(|a| a.name.as_deref() == Some("dp-backup-0"))
            .ok_or_else(|| anyhow::anyhow!("no dp-backup-0 action in {actions:?}"))?;
        let reason = data.failure_reason.clone().unwrap_or_default();
        anyhow::ensure!(
            reason.contains("BackoffLimitExceeded") && reason.contains("disk on fire"),
            "the action's failureReason names the Job's reason and its log: {reason:?}"
        );

        stack
            .kubectl
            .run(&["delete", "backup", "doomed", "-n", NS, "--timeout=60s"])
            .await?;
        let backups: Api<Backup> = Api::namespaced(stack.client.clone(), NS);
        dp::gone(&backups, "doomed", Duration::from_secs(30)).await?;
        dp::nothing_left_behind(&stack.client, NS, &[&workload.pod], Duration::from_secs(30)).await
    })
    .await
}

/// `backupData.onError: Continue` (ARCHITECTURE.md §K8 S2): the same always-failing Job, once
/// its retries are spent, lets the backup go on and complete; the failed action stays in
/// `status.actions` with the Job's reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_backup_data_job_with_on_error_continue_lets_the_backup_complete()
-> anyhow::Result<()> {
    run("job-failure-continue", async |stack| {
        let workload = scenario::workload(stack, NS, "db", 4096).await?;
        let actionset = manifests::render(
            "actionset-failing-job.yaml",
            &[("ACTIONSET", "fails-but-continues")],
        )?
        .replace(
            "      runOnTargetPodNode: true\n",
            "      runOnTargetPodNode: true\n      onError: Continue\n",
        );
        anyhow::ensure!(actionset.contains("onError: Continue"), "{actionset}");
        stack.kubectl.apply(&actionset).await?;
        let policy =
            scenario::policy_for(stack, &workload, "db", "fails-but-continues", "", 1).await?;
        scenario::backup(stack, NS, "goes-on", &policy.name, &policy.method, "Delete").await?;
        let backup =
            dp::backup_finished(&stack.client, NS, "goes-on", Duration::from_secs(120)).await?;
        let actions = backup
            .status
            .as_ref()
            .and_then(|s| s.actions.clone())
            .unwrap_or_default();
        anyhow::ensure!(
            dp::backup_phase(&backup) == "Completed",
            "the Backup completes, got {} with actions {actions:?}",
            dp::backup_phase(&backup)
        );
        let attempts = std::fs::read_to_string(workload.side_dir.join("attempts"))?;
        anyhow::ensure!(
            attempts.lines().count() == 2,
            "the job is still retried up to backoffLimit 1: it ran {} times",
            attempts.lines().count()
        );
        let data = actions
            .iter()
            .find(|a| a.name.as_deref() == Some("dp-backup-0"))
            .ok_or_else(|| anyhow::anyhow!("no dp-backup-0 action in {actions:?}"))?;
        anyhow::ensure!(
            data.phase == Some(cairn_api::backup::ActionPhase::Failed)
                && data
                    .failure_reason
                    .as_deref()
                    .is_some_and(|r| r.contains("disk on fire")),
            "the failed action is kept with its reason: {data:?}"
        );
        Ok(())
    })
    .await
}
