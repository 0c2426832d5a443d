//! How much a running backup asks of the Kubernetes API: the control plane reads what its
//! planners need from reflector caches, so the agent's progress reports (about one a second
//! per running action) cost no reads, and no reconcile lists the pods of a namespace. Counted
//! by localkube (`GET /debug/requests`) for the control plane's `User-Agent`, while
//! `status.progress` still moves during the action, as `kubectl get backup -w` shows it.

use std::collections::BTreeMap;
use std::time::Duration;

use cairn_api::backup::{Backup, BackupPhase};
use cairn_e2e::{TestStack, dp, run, scenario};
use kube::api::Api;

const NS: &str = "counted";
/// Pushes 64 KiB a second for six seconds: an action lasting a few seconds whose byte count
/// grows while it runs.
const SLOW_PUSH: &str = r#"for i in 1 2 3 4 5 6; do head -c 65536 /dev/urandom | datasafed push - "/slow-$i"; sleep 1; done"#;
/// Requests the control plane may make per second of a running backup: its status write
/// (progress, at most once a second) and an event now and then; reads come from caches.
const MAX_REQUESTS_PER_SECOND: f64 = 2.0;

/// `(verb, resource) -> count` of the control plane's requests so far.
async fn control_plane_requests(
    stack: &TestStack,
) -> anyhow::Result<BTreeMap<(String, String), u64>> {
    let request = http::Request::get("/debug/requests").body(Vec::new())?;
    let text = stack.client.request_text(request).await?;
    let json: serde_json::Value = serde_json::from_str(&text)?;
    let mut counts = BTreeMap::new();
    for row in json["requests"].as_array().into_iter().flatten() {
        let agent = row["userAgent"].as_str().unwrap_or_default();
        if !agent.starts_with("cairn-control-plane/") {
            continue;
        }
        let key = (
            row["verb"].as_str().unwrap_or_default().to_string(),
            row["resource"].as_str().unwrap_or_default().to_string(),
        );
        *counts.entry(key).or_default() += row["count"].as_u64().unwrap_or(0);
    }
    Ok(counts)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_backup_reads_from_caches_and_still_shows_live_progress() -> anyhow::Result<()> {
    run("api-requests", async |stack| {
        let workload = scenario::workload(stack, NS, "db", 64 << 10).await?;
        let policy =
            scenario::file_policy(stack, &workload, "db-files", "files", "", SLOW_PUSH).await?;
        // Let the reconcilers of the objects just applied settle.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let before = control_plane_requests(stack).await?;

        scenario::backup(stack, NS, "db-1", &policy.name, &policy.method, "Delete").await?;
        // Watch status.progress while the backup runs.
        let api: Api<Backup> = Api::namespaced(stack.client.clone(), NS);
        let mut seen: Vec<i64> = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
        let backup = loop {
            anyhow::ensure!(
                tokio::time::Instant::now() < deadline,
                "the backup did not finish in 90s; progress seen: {seen:?}"
            );
            if let Some(backup) = api.get_opt("db-1").await? {
                let status = backup.status.clone().unwrap_or_default();
                match status.phase {
                    Some(BackupPhase::Completed | BackupPhase::Failed) => break backup,
                    Some(BackupPhase::Running) => {
                        if let Some(done) = status.progress.map(|p| p.bytes_done)
                            && seen.last() != Some(&done)
                        {
                            seen.push(done);
                        }
                    }
                    _ => {}
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let backup = dp::backup_completed(&stack.client, NS, "db-1", Duration::from_secs(5))
            .await
            .map_err(|e| e.context(format!("{:?}", backup.status)))?;
        let after = control_plane_requests(stack).await?;

        let status = backup.status.unwrap_or_default();
        let seconds = status
            .start_timestamp
            .as_ref()
            .zip(status.completion_timestamp.as_ref())
            .map(|(a, b)| b.0.duration_since(a.0).as_secs_f64())
            .unwrap_or(0.0);
        let mut made: BTreeMap<(String, String), u64> = BTreeMap::new();
        for (key, count) in &after {
            let count = count - before.get(key).copied().unwrap_or(0);
            if count > 0 {
                made.insert(key.clone(), count);
            }
        }
        let total: u64 = made.values().sum();
        let table: Vec<String> = made
            .iter()
            .map(|((verb, resource), count)| format!("{count:>5} {verb} {resource}"))
            .collect();
        eprintln!(
            "control-plane API requests for one backup running {seconds:.1}s: {total} \
             ({:.2}/s)\n{}\nprogress seen while Running: {seen:?}",
            total as f64 / seconds.max(1.0),
            table.join("\n")
        );

        anyhow::ensure!(
            seconds >= 5.0,
            "the action lasted a few seconds (it pushes for six), took {seconds:.1}s"
        );
        // kubectl get backup -w shows the count growing while the action runs.
        let growing = seen.windows(2).filter(|w| w[1] > w[0]).count();
        anyhow::ensure!(
            growing >= 3,
            "status.progress.bytesDone grew at least 3 times while Running, saw {seen:?}"
        );
        let lists: Vec<&String> = made
            .iter()
            .filter(|((verb, _), _)| verb == "list")
            .map(|((_, resource), _)| resource)
            .collect();
        anyhow::ensure!(
            lists.is_empty(),
            "the control plane listed {lists:?} during the backup (observation must read its \
             caches):\n{}",
            table.join("\n")
        );
        anyhow::ensure!(
            (total as f64) <= MAX_REQUESTS_PER_SECOND * seconds + 10.0,
            "the control plane made {total} API requests for a backup running {seconds:.1}s, \
             more than {MAX_REQUESTS_PER_SECOND}/s (+10 to start and finish):\n{}",
            table.join("\n")
        );
        Ok(())
    })
    .await
}
