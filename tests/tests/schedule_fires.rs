//! A BackupSchedule with cron `* * * * *` creates a Backup at each of the next two minute
//! boundaries, both complete, and the schedule's status records the last run. (This is the one
//! test that takes over a minute: cron has minute resolution.)

use std::time::Duration;

use cairn_api::backup::Backup;
use cairn_api::backup_schedule::BackupSchedule;
use cairn_api::well_known;
use cairn_e2e::wait::{Check, until};
use cairn_e2e::{dp, manifests, run, scenario};
use kube::api::{Api, ListParams};

const NS: &str = "shop";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_every_minute_schedule_fires_twice_and_both_backups_complete() -> anyhow::Result<()> {
    run("schedule", async |stack| {
        let workload = scenario::workload(stack, NS, "db", 64 << 10).await?;
        let policy = scenario::file_policy(stack, &workload, "db", "files", "", "").await?;
        stack
            .kubectl
            .apply(&manifests::render(
                "schedule.yaml",
                &[
                    ("SCHEDULE", "db-schedule"),
                    ("NS", NS),
                    ("POLICY", &policy.name),
                    ("METHOD", &policy.method),
                ],
            )?)
            .await?;
        let created = jiff::Timestamp::now();

        let backups: Api<Backup> = Api::namespaced(stack.client.clone(), NS);
        let selector = ListParams::default().labels(&format!(
            "{}=db-schedule",
            well_known::label::BACKUP_SCHEDULE
        ));
        // At most 60 s to the first boundary, 60 s to the second, and time to finish.
        let fired = until(
            "two scheduled backups to complete",
            Duration::from_secs(150),
            async || {
                let list = backups.list(&selector).await?;
                let done: Vec<Backup> = list
                    .items
                    .iter()
                    .filter(|b| dp::backup_phase(b) == "Completed")
                    .cloned()
                    .collect();
                if let Some(failed) = list.items.iter().find(|b| dp::backup_phase(b) == "Failed") {
                    anyhow::bail!(
                        "scheduled Backup {:?} failed: {}",
                        failed.metadata.name,
                        dp::failure_reason(failed)
                    );
                }
                Ok(if done.len() >= 2 {
                    Check::Done(done)
                } else {
                    Check::Pending(format!(
                        "{} scheduled backups, {} completed",
                        list.items.len(),
                        done.len()
                    ))
                })
            },
        )
        .await?;
        anyhow::ensure!(
            fired.len() == 2,
            "exactly two runs in two minutes, got {}",
            fired.len()
        );

        let mut times = Vec::new();
        for backup in &fired {
            let labels = backup.metadata.labels.clone().unwrap_or_default();
            anyhow::ensure!(
                labels
                    .get(well_known::label::AUTOBACKUP)
                    .map(String::as_str)
                    == Some("true"),
                "a scheduled backup is labelled autobackup: {labels:?}"
            );
            anyhow::ensure!(
                backup.spec.retention_period.as_deref() == Some("1h"),
                "the schedule's retentionPeriod is copied"
            );
            let created_at = backup
                .metadata
                .creation_timestamp
                .clone()
                .ok_or_else(|| anyhow::anyhow!("no creationTimestamp"))?
                .0;
            anyhow::ensure!(
                created_at >= created,
                "fired after the schedule was created"
            );
            // Names end in the fire time, %Y%m%d%H%M%S.
            let name = backup.metadata.name.clone().unwrap_or_default();
            let stamp = name.rsplit('-').next().unwrap_or_default();
            let fire = jiff::civil::DateTime::strptime("%Y%m%d%H%M%S", stamp)
                .map_err(|e| anyhow::anyhow!("backup name {name} does not end in a time: {e}"))?
                .to_zoned(jiff::tz::TimeZone::UTC)?
                .timestamp();
            anyhow::ensure!(
                fire.as_second() % 60 == 0,
                "{name} fired on a minute boundary"
            );
            times.push(fire);
        }
        times.sort();
        anyhow::ensure!(
            times[1].duration_since(times[0]) == jiff::SignedDuration::from_secs(60),
            "the two runs are a minute apart: {times:?}"
        );

        let schedules: Api<BackupSchedule> = Api::namespaced(stack.client.clone(), NS);
        let schedule = schedules.get("db-schedule").await?;
        let status = serde_json::to_value(&schedule.status)?;
        let last = status
            .pointer("/schedules/every-minute/lastScheduleTime")
            .and_then(|v| v.as_str())
            .unwrap_or_default();
        let last_time: jiff::Timestamp = last
            .parse()
            .map_err(|e| anyhow::anyhow!("lastScheduleTime {last:?}: {e}"))?;
        anyhow::ensure!(
            last_time == times[1],
            "lastScheduleTime is the second run: {last} vs {:?}",
            times[1]
        );
        Ok(())
    })
    .await
}
