//! Following a Backup until it is Completed or Failed, drawing its `status.progress` (bytes,
//! rate, ETA) as it goes. [`snapshot`] and [`outcome`] are pure, so what the user sees for a
//! given status is unit-tested; [`until_done`] is the polling shell.

use std::time::Duration;

use anyhow::{Context as _, bail};
use cairn_api::backup::{ActionPhase, Backup, BackupPhase};
use indicatif::HumanBytes;
use jiff::Timestamp;
use kube::api::Api;

use crate::progress::{Reporter, Snapshot, format_duration};

/// How long and how often to look.
#[derive(Debug, Clone)]
pub struct WaitOptions {
    /// Give up after this long.
    pub timeout: Duration,
    /// The longest time between two looks (a change of the object brings one at once).
    pub poll: Duration,
    /// Bytes the caller expects the backup to read or the restore to write (gives a bar and
    /// an ETA when the object has none).
    pub expected_total: Option<u64>,
}

impl Default for WaitOptions {
    fn default() -> Self {
        WaitOptions {
            timeout: Duration::from_secs(3600),
            poll: Duration::from_millis(250),
            expected_total: None,
        }
    }
}

/// How a Backup or a Restore ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Completed,
    /// Failed, with the reasons the status gives.
    Failed(String),
}

/// The phase as written, `New` before the controller wrote one.
pub fn phase_text(backup: &Backup) -> String {
    backup
        .status
        .as_ref()
        .and_then(|s| s.phase)
        .map(|p| format!("{p:?}"))
        .unwrap_or_else(|| "New".into())
}

/// Whether the Backup finished, and how.
pub fn outcome(backup: &Backup) -> Option<Outcome> {
    let status = backup.status.as_ref()?;
    match status.phase? {
        BackupPhase::Completed => Some(Outcome::Completed),
        BackupPhase::Failed => Some(Outcome::Failed(failure(backup))),
        _ => None,
    }
}

/// `failureReason` and the reasons of the failed actions, one sentence.
pub fn failure(backup: &Backup) -> String {
    let Some(status) = &backup.status else {
        return "no status".into();
    };
    let mut reasons: Vec<String> = status.failure_reason.iter().cloned().collect();
    for action in status.actions.iter().flatten() {
        if action.phase == Some(ActionPhase::Failed) {
            reasons.push(format!(
                "action {}: {}",
                action.name.as_deref().unwrap_or("?"),
                action.failure_reason.as_deref().unwrap_or("failed")
            ));
        }
    }
    if reasons.is_empty() {
        "failed without a reason in its status".into()
    } else {
        reasons.join("; ")
    }
}

/// What one look at a Backup shows: phase, bytes, rate, ETA and the running action.
pub fn snapshot(backup: &Backup, now: Timestamp, watching_since: Timestamp) -> Snapshot {
    let name = backup.metadata.name.clone().unwrap_or_default();
    let mut s = Snapshot::phase("Backup", &name, &phase_text(backup));
    let Some(status) = &backup.status else {
        s.elapsed_seconds = seconds_between(watching_since, now);
        s.message = Some("waiting for the controller".into());
        return s;
    };
    let start = status
        .start_timestamp
        .as_ref()
        .map(|t| t.0)
        .unwrap_or(watching_since);
    let end = status
        .completion_timestamp
        .as_ref()
        .map(|t| t.0)
        .unwrap_or(now);
    s.elapsed_seconds = seconds_between(start, end);
    if let Some(progress) = &status.progress {
        s.bytes_done = u64::try_from(progress.bytes_done).ok();
        s.bytes_total = progress.bytes_total.and_then(|t| u64::try_from(t).ok());
        s.bytes_per_second = progress
            .bytes_per_second
            .and_then(|r| u64::try_from(r).ok());
        s.eta_seconds = progress.eta_seconds.and_then(|e| u64::try_from(e).ok());
    }
    let running: Vec<String> = status
        .actions
        .iter()
        .flatten()
        .filter(|a| a.phase == Some(ActionPhase::Running))
        .map(|a| {
            let name = a.name.clone().unwrap_or_default();
            match &a.target_pod_name {
                Some(pod) => format!("{name} (pod {pod})"),
                None => name,
            }
        })
        .collect();
    if !running.is_empty() {
        s.message = Some(running.join(", "));
    }
    s
}

fn seconds_between(from: Timestamp, to: Timestamp) -> f64 {
    let d = to.duration_since(from).as_secs_f64();
    if d.is_finite() && d > 0.0 { d } else { 0.0 }
}

/// The line printed when a Backup completed: bytes read, time, rate, stored size and path.
/// `measured` is how long the caller saw it run (timestamps only have whole seconds).
pub fn completed_line(backup: &Backup, measured: Option<f64>) -> String {
    let namespace = backup.metadata.namespace.clone().unwrap_or_default();
    let name = backup.metadata.name.clone().unwrap_or_default();
    let Some(status) = &backup.status else {
        return format!("Backup {namespace}/{name} has no status");
    };
    let stamped = match (&status.start_timestamp, &status.completion_timestamp) {
        (Some(start), Some(end)) => Some(seconds_between(start.0, end.0)),
        _ => None,
    };
    let seconds = match (stamped, measured) {
        (Some(a), Some(b)) => Some(shown_seconds(a, b)),
        (a, b) => a.or(b),
    };
    let mut line = format!("Backup {namespace}/{name} {}", phase_text(backup));
    if let Some(seconds) = seconds {
        line.push_str(&format!(" in {}", format_duration(seconds)));
    }
    if let Some(done) = status
        .progress
        .as_ref()
        .and_then(|p| u64::try_from(p.bytes_done).ok())
        .filter(|b| *b > 0)
    {
        line.push_str(&format!(": {} read", HumanBytes(done)));
        if let Some(seconds) = seconds.filter(|s| *s > 0.0) {
            line.push_str(&format!(
                " ({}/s)",
                HumanBytes((done as f64 / seconds) as u64)
            ));
        }
    }
    if let Some(size) = status.total_size.as_deref() {
        match cairn_api::parse::quantity::parse_bytes(size) {
            Ok(bytes) => line.push_str(&format!(", {} stored", HumanBytes(bytes))),
            Err(_) => line.push_str(&format!(", {size} stored")),
        }
    }
    if let (Some(repo), Some(path)) = (&status.backup_repo_name, &status.path) {
        line.push_str(&format!(" in repo {repo} at {path}"));
    }
    line
}

/// The duration to show from a `stamped` one (whole-second timestamps: up to a second off
/// either way) and a `measured` one: the measured one, unless the stamped one is longer by
/// more than a second (the caller began watching late).
pub fn shown_seconds(stamped: f64, measured: f64) -> f64 {
    if stamped > measured + 1.0 {
        stamped
    } else {
        measured
    }
}

/// The last look at a finished object: no ETA, the average rate (of the data's window when
/// known), and the elapsed time as [`shown_seconds`] picks it.
pub fn final_look(mut look: Snapshot, measured: f64) -> Snapshot {
    look.elapsed_seconds = shown_seconds(look.elapsed_seconds, measured);
    look.eta_seconds = None;
    // The average over the data's own window when it is known (not the start-up's share of
    // the time), over the whole elapsed time otherwise.
    let data_rate = look
        .data
        .zip(look.bytes_done)
        .and_then(|(d, done)| d.rate(done));
    look.bytes_per_second = match look.bytes_done {
        Some(done) if done > 0 => data_rate.or_else(|| {
            (look.elapsed_seconds > 0.0).then(|| (done as f64 / look.elapsed_seconds) as u64)
        }),
        _ => None,
    };
    look
}

/// The last look at an object that completed: as [`final_look`], and the total is what was
/// done (the expected total was an estimate: a database backup reads less than its volume).
pub fn completed_look(look: Snapshot, measured: f64) -> Snapshot {
    let mut look = final_look(look, measured);
    look.bytes_total = look.bytes_done.or(look.bytes_total);
    look
}

/// Polls the Backup, drawing each look, until it completes (returned with the seconds it was
/// watched), fails (an error with the reasons), disappears or the timeout passes.
pub async fn until_done(
    api: &Api<Backup>,
    name: &str,
    reporter: &mut Reporter,
    options: &WaitOptions,
) -> anyhow::Result<(Backup, f64)> {
    let since = Timestamp::now();
    let watched = Watched {
        kind: "Backup",
        outcome,
        phase_text,
    };
    poll_until_done(api, name, reporter, options, &watched, |backup, _| {
        snapshot(backup, Timestamp::now(), since).with_expected_total(options.expected_total)
    })
    .await
}

/// What [`poll_until_done`] needs to know about the kind it waits for.
pub struct Watched<K> {
    pub kind: &'static str,
    pub outcome: fn(&K) -> Option<Outcome>,
    pub phase_text: fn(&K) -> String,
}

/// Looks at `name` on every change (a watch on the object) and at least every `options.poll`,
/// drawing `look(object, seconds watched)` each time, until it completes (returned with the
/// seconds it was watched), fails (an error with the reasons), disappears or the timeout
/// passes. Without a working watch it still looks every `options.poll`.
pub async fn poll_until_done<K>(
    api: &Api<K>,
    name: &str,
    reporter: &mut Reporter,
    options: &WaitOptions,
    watched: &Watched<K>,
    mut look: impl FnMut(&K, f64) -> Snapshot,
) -> anyhow::Result<(K, f64)>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    use futures::StreamExt as _;
    use kube::runtime::WatchStreamExt as _;
    let kind = watched.kind;
    // Wakes the loop when the object changes (its status reaching Completed, say), so that
    // the end is seen when it happens rather than at the next poll.
    let mut changes = kube::runtime::watcher(
        api.clone(),
        kube::runtime::watcher::Config::default().fields(&format!("metadata.name={name}")),
    )
    .default_backoff()
    .boxed();
    let mut watching = true;
    let clock = std::time::Instant::now();
    let deadline = tokio::time::Instant::now() + options.timeout;
    loop {
        let object = api
            .get_opt(name)
            .await
            .with_context(|| format!("reading {kind} {name}"))?
            .with_context(|| format!("{kind} {name} was deleted while waiting for it"))?;
        let measured = clock.elapsed().as_secs_f64();
        let seen = look(&object, measured);
        match (watched.outcome)(&object) {
            Some(Outcome::Completed) => {
                reporter.finish(&completed_look(seen, measured))?;
                return Ok((object, measured));
            }
            Some(Outcome::Failed(why)) => {
                reporter.finish(&final_look(seen, measured))?;
                bail!("{kind} {name} failed: {why}");
            }
            None => reporter.update(&seen)?,
        }
        if tokio::time::Instant::now() > deadline {
            reporter.clear();
            return Err(crate::exit::TimedOut(format!(
                "{kind} {name} is still {} after {}",
                (watched.phase_text)(&object),
                format_duration(options.timeout.as_secs_f64())
            ))
            .into());
        }
        tokio::select! {
            _ = tokio::time::sleep(options.poll) => {}
            change = changes.next(), if watching => watching = change.is_some(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backup(status: serde_json::Value) -> Backup {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "dataprotection.kubeblocks.io/v1alpha1",
            "kind": "Backup",
            "metadata": {"name": "b1", "namespace": "ns"},
            "spec": {"backupPolicyName": "p", "backupMethod": "m"},
            "status": status,
        }))
        .expect("backup")
    }

    fn at(s: &str) -> Timestamp {
        s.parse().expect("time")
    }

    #[test]
    fn a_running_backup_shows_its_progress_and_running_action() {
        let b = backup(serde_json::json!({
            "phase": "Running",
            "startTimestamp": "2026-01-10T12:00:00Z",
            "progress": {"bytesDone": 1000, "bytesPerSecond": 500},
            "actions": [
                {"name": "dp-backup-0", "phase": "Running", "targetPodName": "writer"},
                {"name": "dp-postbackup-0-0", "phase": "New"}
            ]
        }));
        let s = snapshot(&b, at("2026-01-10T12:00:03Z"), at("2026-01-10T12:00:01Z"));
        assert_eq!(s.phase, "Running");
        assert_eq!(s.bytes_done, Some(1000));
        assert_eq!(s.bytes_per_second, Some(500));
        assert_eq!(s.eta_seconds, None);
        assert_eq!(s.elapsed_seconds, 3.0);
        assert_eq!(s.message.as_deref(), Some("dp-backup-0 (pod writer)"));
        assert_eq!(outcome(&b), None);
    }

    #[test]
    fn a_backup_without_status_waits_for_the_controller() {
        let mut b = backup(serde_json::json!({}));
        b.status = None;
        let s = snapshot(&b, at("2026-01-10T12:00:02Z"), at("2026-01-10T12:00:00Z"));
        assert_eq!(s.phase, "New");
        assert_eq!(s.elapsed_seconds, 2.0);
        assert_eq!(s.message.as_deref(), Some("waiting for the controller"));
    }

    #[test]
    fn a_completed_backup_stops_the_clock_at_completion() {
        let b = backup(serde_json::json!({
            "phase": "Completed",
            "startTimestamp": "2026-01-10T12:00:00Z",
            "completionTimestamp": "2026-01-10T12:00:04Z",
            "totalSize": "1048576",
            "backupRepoName": "local",
            "path": "/ns/b1",
            "progress": {"bytesDone": 4194304}
        }));
        let s = snapshot(&b, at("2026-01-10T13:00:00Z"), at("2026-01-10T12:00:00Z"));
        assert_eq!(s.elapsed_seconds, 4.0);
        assert_eq!(outcome(&b), Some(Outcome::Completed));
        let last = completed_look(s, 4.5);
        assert_eq!(last.elapsed_seconds, 4.5, "the measured time is longer");
        assert_eq!(last.eta_seconds, None);
        assert_eq!(
            last.bytes_total,
            Some(4_194_304),
            "done is the total once completed"
        );
        assert_eq!(last.bytes_per_second, Some(932_067));
        assert_eq!(
            completed_line(&b, Some(1.5)),
            "Backup ns/b1 Completed in 4.0s: 4.00 MiB read (1.00 MiB/s), 1.00 MiB stored in repo local at /ns/b1"
        );
    }

    #[test]
    fn a_failed_backup_says_why_with_the_failed_actions() {
        let b = backup(serde_json::json!({
            "phase": "Failed",
            "failureReason": "there are failed actions",
            "actions": [
                {"name": "dp-backup-0", "phase": "Failed", "failureReason": "exit code 2"},
                {"name": "dp-backup-1", "phase": "Completed"}
            ]
        }));
        assert_eq!(
            outcome(&b),
            Some(Outcome::Failed(
                "there are failed actions; action dp-backup-0: exit code 2".into()
            ))
        );
    }
}
