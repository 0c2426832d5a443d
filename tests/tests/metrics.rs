//! The metrics operators alert on, scraped from the real processes' `/metrics` while one
//! Backup succeeds, one fails and a Restore completes: each is counted once by outcome (a later
//! reconcile does not count it again), the last-success gauge moves only for the policy whose
//! backup succeeded, and the certificates' expiry is reported; the agent's `/metrics` counts
//! the actions, the bytes pushed and pulled through the storage socket and the socket's calls,
//! and its `/healthz` and `/readyz` answer. An enabled BackupSchedule entry exports its interval
//! and start; a disabled one nothing.

use std::time::Duration;

use cairn_e2e::{dp, manifests, run, scenario};

const NS: &str = "shop";

/// The value of the series `series` (the whole name with labels) in `text`.
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        line.strip_prefix(series)
            .and_then(|rest| rest.strip_prefix(' '))
            .and_then(|v| v.trim().parse().ok())
    })
}

async fn scrape(stack: &cairn_e2e::TestStack) -> anyhow::Result<String> {
    cairn_cli::standalone::metrics(stack.stack.health_addr)
        .await
        .ok_or_else(|| anyhow::anyhow!("the control plane's /metrics did not answer"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finished_backups_and_restores_are_counted_once_by_outcome_with_the_last_success_time()
-> anyhow::Result<()> {
    run("metrics", async |stack| {
        let started = jiff::Timestamp::now().as_second() as f64;
        let workload = scenario::workload(stack, NS, "db", 64 << 10).await?;
        let good = scenario::file_policy(stack, &workload, "db-files", "files", "", "").await?;
        stack
            .kubectl
            .apply(&manifests::render(
                "actionset-failing-job.yaml",
                &[("ACTIONSET", "always-fails")],
            )?)
            .await?;
        let bad = scenario::policy_for(stack, &workload, "db-doomed", "always-fails", "", 0).await?;

        let before = scrape(stack).await?;
        anyhow::ensure!(
            !before.contains("cairn_backups_total{"),
            "no backup finished yet:\n{before}"
        );

        scenario::backup(stack, NS, "good", &good.name, &good.method, "Delete").await?;
        scenario::backup(stack, NS, "doomed", &bad.name, &bad.method, "Delete").await?;
        dp::backup_completed(&stack.client, NS, "good", Duration::from_secs(120)).await?;
        let doomed =
            dp::backup_finished(&stack.client, NS, "doomed", Duration::from_secs(120)).await?;
        anyhow::ensure!(dp::backup_phase(&doomed) == "Failed", "doomed failed");
        scenario::restore(stack, NS, "good-restore", "good", "data-db-restored").await?;
        dp::restore_completed(&stack.client, NS, "good-restore", Duration::from_secs(120)).await?;

        // Reconciles after the finish (an annotation change triggers one) count nothing more.
        for backup in ["good", "doomed"] {
            stack
                .kubectl
                .run(&["annotate", "backup", backup, "-n", NS, "touched=yes"])
                .await?;
        }
        tokio::time::sleep(Duration::from_secs(3)).await;

        let text = scrape(stack).await?;
        let completed = "cairn_backups_total{namespace=\"shop\",policy=\"db-files\",method=\"files\",schedule=\"\",outcome=\"completed\"}";
        let failed = "cairn_backups_total{namespace=\"shop\",policy=\"db-doomed\",method=\"files\",schedule=\"\",outcome=\"failed\"}";
        anyhow::ensure!(value(&text, completed) == Some(1.0), "{completed} is 1:\n{text}");
        anyhow::ensure!(value(&text, failed) == Some(1.0), "{failed} is 1:\n{text}");
        anyhow::ensure!(
            !text.contains("policy=\"db-files\",method=\"files\",schedule=\"\",outcome=\"failed\"")
                && !text.contains("policy=\"db-doomed\",method=\"files\",schedule=\"\",outcome=\"completed\""),
            "no other outcome was counted:\n{text}"
        );
        let restored = "cairn_restores_total{namespace=\"shop\",policy=\"db-files\",method=\"files\",outcome=\"completed\"}";
        anyhow::ensure!(value(&text, restored) == Some(1.0), "{restored} is 1:\n{text}");
        let duration_count = "cairn_backup_duration_seconds_count{namespace=\"shop\",policy=\"db-files\",method=\"files\",schedule=\"\"}";
        anyhow::ensure!(value(&text, duration_count) == Some(1.0), "{duration_count}:\n{text}");
        let size_count = "cairn_backup_size_bytes_count{namespace=\"shop\",policy=\"db-files\",method=\"files\",schedule=\"\"}";
        anyhow::ensure!(value(&text, size_count) == Some(1.0), "{size_count}:\n{text}");

        let now = jiff::Timestamp::now().as_second() as f64;
        let last = "cairn_backup_last_success_timestamp_seconds{namespace=\"shop\",policy=\"db-files\",method=\"files\",schedule=\"\"}";
        let at = value(&text, last).ok_or_else(|| anyhow::anyhow!("no {last}:\n{text}"))?;
        anyhow::ensure!(
            at >= started - 1.0 && at <= now + 1.0,
            "the last success ({at}) is the good backup's completion, between {started} and {now}"
        );
        anyhow::ensure!(
            !text.contains("cairn_backup_last_success_timestamp_seconds{namespace=\"shop\",policy=\"db-doomed\""),
            "a policy with only failed backups has no last success:\n{text}"
        );

        // Schedule entries: an enabled one exports its interval and start, a disabled one
        // nothing (CairnNoSuccessfulBackup compares the last success with them).
        for (schedule, enabled) in [("nightly", true), ("paused", false)] {
            stack
                .kubectl
                .apply(&format!(
                    "apiVersion: dataprotection.kubeblocks.io/v1alpha1
kind: BackupSchedule
metadata:
  name: {schedule}
  namespace: {NS}
spec:
  backupPolicyName: {policy}
  schedules:
    - backupMethod: {method}
      enabled: {enabled}
      cronExpression: \"0 3 * * *\"
",
                    policy = good.name,
                    method = good.method,
                ))
                .await?;
        }
        let created = jiff::Timestamp::now().as_second() as f64;
        let interval = "cairn_backup_schedule_interval_seconds{namespace=\"shop\",policy=\"db-files\",method=\"files\",schedule=\"nightly\"}";
        let start = "cairn_backup_schedule_start_timestamp_seconds{namespace=\"shop\",policy=\"db-files\",method=\"files\",schedule=\"nightly\"}";
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        let scheduled = loop {
            let text = scrape(stack).await?;
            if value(&text, interval).is_some() || std::time::Instant::now() > deadline {
                break text;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        };
        anyhow::ensure!(
            value(&scheduled, interval) == Some(86400.0),
            "{interval} is a day:\n{scheduled}"
        );
        let since = value(&scheduled, start)
            .ok_or_else(|| anyhow::anyhow!("no {start}:\n{scheduled}"))?;
        anyhow::ensure!(
            since > started - 1.0 && since <= created + 1.0,
            "the start ({since}) is the schedule's creation, between {started} and {created}"
        );
        anyhow::ensure!(
            !scheduled.contains("schedule=\"paused\""),
            "a disabled entry has no series:\n{scheduled}"
        );

        for role in ["ca", "server"] {
            let expiry = text
                .lines()
                .find(|l| {
                    l.starts_with(&format!(
                        "cairn_certificate_expiry_timestamp_seconds{{certificate=\"{role}\","
                    ))
                })
                .and_then(|l| l.rsplit(' ').next())
                .and_then(|v| v.parse::<f64>().ok())
                .ok_or_else(|| anyhow::anyhow!("no expiry of the {role} certificate:\n{text}"))?;
            anyhow::ensure!(
                expiry > now + 30.0 * 86400.0,
                "the {role} certificate expires in the future ({expiry})"
            );
        }

        let agent = stack.stack.agent_health_addr;
        let agent_text = cairn_cli::standalone::metrics(agent)
            .await
            .ok_or_else(|| anyhow::anyhow!("the agent's /metrics did not answer"))?;
        let positive = |series: &str| {
            value(&agent_text, series)
                .filter(|v| *v > 0.0)
                .ok_or_else(|| anyhow::anyhow!("{series} is not positive:\n{agent_text}"))
        };
        let pushed = positive("cairn_agent_bytes_moved_total{direction=\"push\"}")?;
        anyhow::ensure!(
            pushed >= f64::from(64u32 << 10),
            "the backup pushed at least the pod's 64 KiB, counted {pushed}"
        );
        positive("cairn_agent_bytes_moved_total{direction=\"pull\"}")?;
        positive("cairn_agent_socket_requests_total{rpc=\"put\",code=\"Ok\"}")?;
        positive("cairn_agent_actions_finished_total{kind=\"job\",outcome=\"succeeded\"}")?;
        positive("cairn_agent_actions_finished_total{kind=\"job\",outcome=\"failed\"}")?;
        anyhow::ensure!(
            value(&agent_text, "cairn_agent_actions_running{kind=\"job\"}") == Some(0.0),
            "no job runs any more:\n{agent_text}"
        );
        anyhow::ensure!(
            value(&agent_text, "cairn_agent_session_connected") == Some(1.0),
            "the agent's session is connected:\n{agent_text}"
        );
        let live = cairn_cli::standalone::probe(agent, "/healthz").await;
        anyhow::ensure!(live.as_deref() == Some("ok"), "agent /healthz: {live:?}");
        let ready = cairn_cli::standalone::probe(agent, "/readyz").await;
        anyhow::ensure!(
            ready.as_deref() == Some("connected"),
            "agent /readyz: {ready:?}"
        );
        Ok(())
    })
    .await
}
