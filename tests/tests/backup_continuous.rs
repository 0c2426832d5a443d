//! Continuous backups end to end (ARCHITECTURE.md §K2.9, §K6.3): a BackupSchedule entry whose
//! method is Continuous creates one Backup whose archiver (a StatefulSet run by the agent of the
//! target's node) pushes a segment every 2 s through datasafed; the Backup stays Running with
//! no expiration while its `timeRange.end` advances; `kill -9` of the archiver's process and of
//! the agent do not end the window (same start, the end goes on); disabling the entry completes
//! the Backup and removes the StatefulSet; enabling it again reopens the Backup and the window
//! goes on; deleting the schedule completes it again. A continuous Backup that failed (its
//! policy selected no pod) runs again once it can, while its entry is enabled. Retention: the
//! archiver prunes segments older than `DP_TTL_SECONDS` and the window's start follows, a
//! restore before it is refused, one inside restores, and a changed retention restarts the
//! running archiver with the new TTL. Real kubectl, localkube, control plane and agent, each its
//! own process.

use std::time::Duration;

use cairn_api::backup::Backup;
use cairn_api::well_known;
use cairn_e2e::manifests::render;
use cairn_e2e::wait::{Check, until};
use cairn_e2e::{TestStack, dp, run, scenario};
use k8s_openapi::api::apps::v1::StatefulSet;
use kube::api::{Api, ListParams};

const NS: &str = "pitr";
const SCHEDULE: &str = "db-pitr";
const WAIT: Duration = Duration::from_secs(90);

fn apply_vars<'a>(app: &'a str, enabled: &'a str) -> Vec<(&'a str, &'a str)> {
    with_retention(app, enabled, "1h")
}

fn with_retention<'a>(
    app: &'a str,
    enabled: &'a str,
    retention: &'a str,
) -> Vec<(&'a str, &'a str)> {
    vec![
        ("ACTIONSET", "files-continuous"),
        ("POLICY", "db-pitr"),
        ("NS", NS),
        ("APP", app),
        ("SEGMENT_SECONDS", "2"),
        ("SCHEDULE", SCHEDULE),
        ("ENABLED", enabled),
        ("RETENTION", retention),
    ]
}

/// The continuous Backup of the schedule (there must be exactly one).
async fn the_backup(stack: &TestStack) -> anyhow::Result<Option<Backup>> {
    let api: Api<Backup> = Api::namespaced(stack.client.clone(), NS);
    let list = api
        .list(&ListParams::default().labels(&format!(
            "{}={SCHEDULE}",
            well_known::label::BACKUP_SCHEDULE
        )))
        .await?;
    anyhow::ensure!(
        list.items.len() <= 1,
        "one continuous Backup per entry, found {:?}",
        list.items
            .iter()
            .map(|b| b.metadata.name.clone())
            .collect::<Vec<_>>()
    );
    Ok(list.items.into_iter().next())
}

/// `(start, end)` of the Backup's time range.
fn window(backup: &Backup) -> Option<(jiff::Timestamp, jiff::Timestamp)> {
    let range = backup.status.as_ref()?.time_range.as_ref()?;
    Some((range.start.as_ref()?.0, range.end.as_ref()?.0))
}

/// Waits until the Backup is Running with a window that ends after `after`, and returns it.
async fn archiving_past(
    stack: &TestStack,
    after: jiff::Timestamp,
    what: &str,
) -> anyhow::Result<Backup> {
    until(what, WAIT, async || {
        let Some(backup) = the_backup(stack).await? else {
            return Ok(Check::Pending("no continuous Backup yet".into()));
        };
        let phase = dp::backup_phase(&backup);
        if phase == "Failed" {
            anyhow::bail!(
                "the continuous Backup failed: {}",
                dp::failure_reason(&backup)
            );
        }
        Ok(match window(&backup) {
            Some((_, end)) if phase == "Running" && end > after => Check::Done(backup),
            other => Check::Pending(format!("{phase}, window {other:?}")),
        })
    })
    .await
}

async fn phase_becomes(stack: &TestStack, wanted: &str) -> anyhow::Result<Backup> {
    until(
        &format!("the continuous Backup to be {wanted}"),
        WAIT,
        async || {
            let Some(backup) = the_backup(stack).await? else {
                return Ok(Check::Pending("no continuous Backup".into()));
            };
            let phase = dp::backup_phase(&backup);
            Ok(if phase == wanted {
                Check::Done(backup)
            } else {
                Check::Pending(phase)
            })
        },
    )
    .await
}

/// The pids of the archiver's shell (its command line carries the marker of the ActionSet).
fn archiver_pids() -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| String::from_utf8_lossy(&c).contains("continuous-e2e-archiver"))
                .unwrap_or(false)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_continuous_schedule_archives_across_crashes_and_disable_enable() -> anyhow::Result<()> {
    run("backup-continuous", async |stack| {
        let workload = scenario::workload(stack, NS, "db", 4 << 10).await?;
        stack
            .kubectl
            .apply(&render(
                "actionset-continuous.yaml",
                &apply_vars(&workload.app, "true"),
            )?)
            .await?;

        // Running, no expiration, the window advancing.
        let first =
            archiving_past(stack, jiff::Timestamp::UNIX_EPOCH, "archiving to start").await?;
        let name = first.metadata.name.clone().unwrap_or_default();
        let labels = first.metadata.labels.clone().unwrap_or_default();
        anyhow::ensure!(
            labels
                .get(well_known::label::BACKUP_TYPE)
                .map(String::as_str)
                == Some("Continuous")
                && labels
                    .get(well_known::label::AUTOBACKUP)
                    .map(String::as_str)
                    == Some("true"),
            "labelled as a continuous scheduled backup: {labels:?}"
        );
        let status = first.status.clone().unwrap_or_default();
        anyhow::ensure!(
            status.expiration.is_none(),
            "a running continuous backup has no expiration"
        );
        let extras = serde_json::to_value(&status.extras)?;
        anyhow::ensure!(
            extras[0]["archiveInterval"] == "120s" && extras[0]["ttlSeconds"] == "3600",
            "the archiver got DP_ARCHIVE_INTERVAL and DP_TTL_SECONDS: {extras}"
        );
        let (start, end) = window(&first).unwrap_or_default();
        let advanced = archiving_past(stack, end, "the window to advance").await?;
        anyhow::ensure!(window(&advanced).map(|w| w.0) == Some(start), "same start");

        let sets: Api<StatefulSet> = Api::namespaced(stack.client.clone(), NS);
        let set = sets.get(&name).await?;
        let pod_spec = set
            .spec
            .as_ref()
            .and_then(|s| s.template.spec.clone())
            .unwrap_or_default();
        anyhow::ensure!(
            pod_spec.restart_policy.as_deref() == Some("Always"),
            "the archiver restarts: {:?}",
            pod_spec.restart_policy
        );

        // kill -9 of the archiver's process: the kubelet restarts it and the window goes on.
        let pids = archiver_pids();
        anyhow::ensure!(!pids.is_empty(), "the archiver's process is found");
        for pid in &pids {
            std::process::Command::new("kill")
                .args(["-9", &pid.to_string()])
                .status()?;
        }
        let killed_at = jiff::Timestamp::now();
        let after_kill = until("the archiver to start again", WAIT, async || {
            let starts = std::fs::read_to_string(workload.side_dir.join("archiver-starts"))?;
            Ok(if starts.lines().count() >= 2 {
                Check::Done(())
            } else {
                Check::Pending(format!("{} start(s)", starts.lines().count()))
            })
        });
        after_kill.await?;
        let resumed = archiving_past(
            stack,
            killed_at,
            "the window to go on after kill -9 of the archiver",
        )
        .await?;
        anyhow::ensure!(
            window(&resumed).map(|w| w.0) == Some(start),
            "the restarted archiver keeps the window's start: {:?} vs {start}",
            window(&resumed)
        );

        // kill -9 of the agent, then a restart: the window goes on.
        stack.stack.agent().kill9();
        tokio::time::sleep(Duration::from_secs(3)).await;
        stack.stack.restart_agent().await?;
        let restarted_at = jiff::Timestamp::now();
        let resumed = archiving_past(
            stack,
            restarted_at,
            "the window to go on after kill -9 of the agent",
        )
        .await?;
        anyhow::ensure!(
            window(&resumed).map(|w| w.0) == Some(start),
            "the window keeps its start across the agent's restart"
        );

        // Disabled: Completed, the StatefulSet removed, an expiration.
        stack
            .kubectl
            .apply(&render(
                "actionset-continuous.yaml",
                &apply_vars(&workload.app, "false"),
            )?)
            .await?;
        let completed = phase_becomes(stack, "Completed").await?;
        let status = completed.status.clone().unwrap_or_default();
        anyhow::ensure!(
            status.expiration.is_some() && status.completion_timestamp.is_some(),
            "a completed continuous backup has its completion and expiration: {status:?}"
        );
        dp::gone(&sets, &name, WAIT).await?;
        let (_, stopped_end) = window(&completed).unwrap_or_default();

        // Enabled again: reopened, the window goes on from the same start.
        stack
            .kubectl
            .apply(&render(
                "actionset-continuous.yaml",
                &apply_vars(&workload.app, "true"),
            )?)
            .await?;
        let reopened = archiving_past(stack, stopped_end, "the reopened backup to archive").await?;
        anyhow::ensure!(
            reopened.metadata.name.as_deref() == Some(name.as_str()),
            "the same Backup is reopened"
        );
        anyhow::ensure!(
            window(&reopened).map(|w| w.0) == Some(start),
            "the reopened backup's window keeps its start"
        );
        anyhow::ensure!(
            reopened
                .status
                .as_ref()
                .and_then(|s| s.expiration.clone())
                .is_none(),
            "reopened: no expiration"
        );

        // The schedule deleted: Completed, nothing left running.
        stack
            .kubectl
            .run(&[
                "delete",
                "backupschedule",
                SCHEDULE,
                "-n",
                NS,
                "--wait=false",
            ])
            .await?;
        phase_becomes(stack, "Completed").await?;
        dp::gone(&sets, &name, WAIT).await?;
        Ok(())
    })
    .await
}

/// A Failed continuous Backup whose entry is still enabled is run again (ARCHITECTURE.md §K2.9,
/// KubeBlocks re-drives Failed continuous backups): the policy first selects no pod, so the
/// schedule's continuous Backup fails naming the policy; once the policy selects the workload,
/// the same Backup runs again, archiving, its failure cleared.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_continuous_backup_runs_again_while_its_entry_is_enabled() -> anyhow::Result<()> {
    run("backup-continuous-redrive", async |stack| {
        let workload = scenario::workload(stack, NS, "db", 4 << 10).await?;
        stack
            .kubectl
            .apply(&render(
                "actionset-continuous.yaml",
                &apply_vars("nobody", "true"),
            )?)
            .await?;
        let failed = phase_becomes(stack, "Failed").await?;
        let name = failed.metadata.name.clone().unwrap_or_default();
        let reason = dp::failure_reason(&failed);
        anyhow::ensure!(
            reason.contains("failed to get target pods by backup policy"),
            "the Backup fails naming why: {reason}"
        );

        // The policy now selects the workload: the same Backup runs again and archives.
        stack
            .kubectl
            .apply(&render(
                "actionset-continuous.yaml",
                &apply_vars(&workload.app, "true"),
            )?)
            .await?;
        let running = until(
            "the failed continuous Backup to run again",
            WAIT,
            async || {
                let Some(backup) = the_backup(stack).await? else {
                    return Ok(Check::Pending("no continuous Backup".into()));
                };
                let phase = dp::backup_phase(&backup);
                Ok(match window(&backup) {
                    Some(_) if phase == "Running" => Check::Done(backup),
                    other => Check::Pending(format!(
                        "{phase} ({}), window {other:?}",
                        dp::failure_reason(&backup)
                    )),
                })
            },
        )
        .await?;
        let status = running.status.clone().unwrap_or_default();
        anyhow::ensure!(
            running.metadata.name.as_deref() == Some(name.as_str())
                && status.failure_reason.is_none()
                && status.expiration.is_none(),
            "the same Backup runs again, its failure cleared, no expiration: {status:?}"
        );
        Ok(())
    })
    .await
}

/// The archive's segment times (`segments/<unix seconds>.seg` under the Backup's path in the
/// local repository), sorted.
fn segments(stack: &TestStack, backup: &Backup) -> anyhow::Result<Vec<i64>> {
    let path = backup
        .status
        .as_ref()
        .and_then(|s| s.path.clone())
        .unwrap_or_default();
    let dir = stack
        .local_repo()
        .join(path.trim_start_matches('/'))
        .join("segments");
    let mut times: Vec<i64> = std::fs::read_dir(&dir)?
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.strip_suffix(".seg")?.parse().ok())
        .collect();
    times.sort_unstable();
    Ok(times)
}

fn archiver_starts(workload: &scenario::Workload) -> Vec<String> {
    std::fs::read_to_string(workload.side_dir.join("archiver-starts"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

fn pitr_restore(name: &str, backup: &str, time: jiff::Timestamp) -> anyhow::Result<String> {
    Ok(serde_json::to_string(&serde_json::json!({
        "apiVersion": "dataprotection.kubeblocks.io/v1alpha1", "kind": "Restore",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "backup": {"name": backup, "namespace": NS},
            "restoreTime": cairn_api::parse::restore_time::format(time),
            "prepareDataConfig": {"volumeClaimRestorePolicy": "Parallel", "volumeClaims": [{
                "metadata": {"name": format!("side-{name}"), "namespace": NS},
                "volumeSource": "side",
                "volumeClaimSpec": {"accessModes": ["ReadWriteOnce"],
                                    "resources": {"requests": {"storage": "1Gi"}}}}]}
        }
    }))?)
}

/// Retention that really trims (ARCHITECTURE.md §K6.3, semantics §6.4): with the entry's
/// retention at `1m` (the least the parser allows), the archiver removes segments older than
/// `DP_TTL_SECONDS` and reports the later start; the Backup's window follows with no gap; a
/// restore before the new start is refused with KubeBlocks' window error and one inside restores
/// the segments up to its time. The entry's retention changed to `2m` restarts the running
/// archiver (its StatefulSet updated in place, one pod at a time) with `DP_TTL_SECONDS=120`, and
/// the window goes on. Re-dispatching an unchanged archiver never restarted it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_trims_the_archive_and_a_changed_retention_restarts_the_archiver()
-> anyhow::Result<()> {
    run("backup-continuous-retention", async |stack| {
        let workload = scenario::workload(stack, NS, "db", 4 << 10).await?;
        stack
            .kubectl
            .apply(&render(
                "actionset-continuous.yaml",
                &with_retention(&workload.app, "true", "1m"),
            )?)
            .await?;
        let first =
            archiving_past(stack, jiff::Timestamp::UNIX_EPOCH, "archiving to start").await?;
        let name = first.metadata.name.clone().unwrap_or_default();
        let (start, _) = window(&first).unwrap_or_default();
        let extras = serde_json::to_value(&first.status.clone().unwrap_or_default().extras)?;
        anyhow::ensure!(
            extras[0]["ttlSeconds"] == "60",
            "the archiver got DP_TTL_SECONDS=60: {extras}"
        );

        // Past the TTL the start moves forward, with no gap, and the old segments are gone.
        let trimmed = until("retention to trim the window's start", Duration::from_secs(120), async || {
            let Some(backup) = the_backup(stack).await? else {
                return Ok(Check::Pending("no continuous Backup".into()));
            };
            Ok(match window(&backup) {
                Some((s, _)) if s > start => Check::Done(backup),
                other => Check::Pending(format!("window {other:?}")),
            })
        })
        .await?;
        let (new_start, end) = window(&trimmed).unwrap_or_default();
        let status = trimmed.status.clone().unwrap_or_default();
        anyhow::ensure!(
            status.gaps.is_none(),
            "a trimmed start is no gap: {:?}",
            status.gaps
        );
        anyhow::ensure!(
            end.as_second() - new_start.as_second() <= 70,
            "the window keeps about the TTL: {new_start} .. {end}"
        );
        let kept = segments(stack, &trimmed)?;
        let oldest = kept.first().copied().unwrap_or_default();
        anyhow::ensure!(
            oldest >= start.as_second() + 2 && oldest + 2 >= new_start.as_second(),
            "the segments before the new start {new_start} are pruned (oldest kept {oldest}, archiving since {start})"
        );
        anyhow::ensure!(
            archiver_starts(&workload).len() == 1,
            "re-dispatching the unchanged archiver never restarted it: {:?}",
            archiver_starts(&workload)
        );

        // A restore before the new start: KubeBlocks' window error.
        stack
            .kubectl
            .create(&pitr_restore("too-early", &name, start)?)
            .await?;
        let refused = dp::restore_completed(&stack.client, NS, "too-early", WAIT)
            .await
            .expect_err("a restore before the window is refused");
        anyhow::ensure!(
            refused
                .to_string()
                .contains("restore time out of the range for backup"),
            "KubeBlocks' window error: {refused:#}"
        );
        // One inside restores the segments up to its time (near the end: the start keeps
        // moving every round).
        let inside = end.checked_sub(jiff::SignedDuration::from_secs(4))?;
        stack
            .kubectl
            .create(&pitr_restore("inside", &name, inside)?)
            .await?;
        dp::restore_completed(&stack.client, NS, "inside", WAIT).await?;
        let restored = dp::pvc_dir(&stack.client, NS, "side-inside").await?;
        let mut pulled: Vec<i64> = std::fs::read_dir(restored.join("segments"))?
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().to_str()?.strip_suffix(".seg")?.parse().ok())
            .collect();
        pulled.sort_unstable();
        anyhow::ensure!(
            !pulled.is_empty()
                && pulled.iter().all(|t| *t <= inside.as_second())
                && pulled[0] + 2 >= new_start.as_second(),
            "the segments up to {inside} are restored: {pulled:?}"
        );

        // The entry's retention changed: the running archiver restarts with the new TTL.
        let pod_uid = |pod: Option<k8s_openapi::api::core::v1::Pod>| {
            pod.and_then(|p| p.metadata.uid).unwrap_or_default()
        };
        let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(stack.client.clone(), NS);
        let before = pod_uid(pods.get_opt(&format!("{name}-0")).await?);
        stack
            .kubectl
            .apply(&render(
                "actionset-continuous.yaml",
                &with_retention(&workload.app, "true", "2m"),
            )?)
            .await?;
        let changed_at = jiff::Timestamp::now();
        let retuned = until("the archiver to run with the new TTL", WAIT, async || {
            let Some(backup) = the_backup(stack).await? else {
                return Ok(Check::Pending("no continuous Backup".into()));
            };
            let extras = serde_json::to_value(&backup.status.clone().unwrap_or_default().extras)?;
            Ok(match window(&backup) {
                Some((_, end)) if extras[0]["ttlSeconds"] == "120" && end > changed_at => {
                    Check::Done(backup)
                }
                other => Check::Pending(format!("extras {extras}, window {other:?}")),
            })
        })
        .await?;
        let starts = archiver_starts(&workload);
        anyhow::ensure!(
            starts.len() == 2 && starts[1].ends_with("ttl 120"),
            "one restart, with the new TTL: {starts:?}"
        );
        let after = pod_uid(pods.get_opt(&format!("{name}-0")).await?);
        anyhow::ensure!(after != before, "a new archiver pod");
        let (start_after, _) = window(&retuned).unwrap_or_default();
        let status = retuned.status.clone().unwrap_or_default();
        anyhow::ensure!(
            start_after >= new_start && status.gaps.is_none() && status.phase.is_some(),
            "the window goes on with no gap: {start_after} vs {new_start}, gaps {:?}",
            status.gaps
        );
        anyhow::ensure!(
            dp::backup_phase(&retuned) == "Running"
                && retuned.spec.retention_period.as_deref() == Some("2m"),
            "still running, its retention synced"
        );
        Ok(())
    })
    .await
}
