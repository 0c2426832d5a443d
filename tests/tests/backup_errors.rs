//! A Backup whose policy, method, ActionSet or repository does not exist fails at once with a
//! message naming what is missing, visible in `kubectl describe`, and starts nothing.

use std::time::Duration;

use cairn_e2e::{dp, run, scenario};

const NS: &str = "shop";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_naming_a_missing_policy_method_actionset_or_repo_fails_saying_which()
-> anyhow::Result<()> {
    run("backup-errors", async |stack| {
        let workload = scenario::workload(stack, NS, "db", 4096).await?;
        let good = scenario::file_policy(stack, &workload, "good", "files", "", "").await?;
        scenario::policy_for(stack, &workload, "no-actionset", "ghost-actionset", "", 2).await?;
        scenario::policy_for(stack, &workload, "no-repo", "files", "ghost-repo", 2).await?;

        let cases = [
            (
                "missing-policy",
                "ghost-policy",
                "files",
                "backuppolicies.dataprotection.kubeblocks.io \"ghost-policy\" not found",
            ),
            (
                "missing-method",
                good.name.as_str(),
                "ghost-method",
                "backupMethod: ghost-method not found",
            ),
            (
                "missing-actionset",
                "no-actionset",
                "files",
                "actionsets.dataprotection.kubeblocks.io \"ghost-actionset\" not found",
            ),
            (
                "missing-repo",
                "no-repo",
                "files",
                "backup repo ghost-repo not found",
            ),
        ];
        for (backup, policy, method, _) in &cases {
            scenario::backup(stack, NS, backup, policy, method, "Delete").await?;
        }
        for (backup, _, _, expected) in &cases {
            let found =
                dp::backup_finished(&stack.client, NS, backup, Duration::from_secs(30)).await?;
            let reason = dp::failure_reason(&found);
            anyhow::ensure!(
                dp::backup_phase(&found) == "Failed" && reason.contains(expected),
                "Backup {backup}: expected Failed with {expected:?}, got {} with {reason:?}",
                dp::backup_phase(&found)
            );
            let described = stack
                .kubectl
                .run(&["describe", "backup", backup, "-n", NS])
                .await?;
            anyhow::ensure!(
                described.contains(expected),
                "kubectl describe backup {backup} shows the reason:\n{described}"
            );
        }
        dp::nothing_left_behind(&stack.client, NS, &[&workload.pod], Duration::from_secs(10))
            .await?;
        anyhow::ensure!(
            !stack.local_repo().join(NS).exists(),
            "no failed backup wrote into the repository"
        );
        Ok(())
    })
    .await
}
