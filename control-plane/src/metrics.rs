//! Prometheus metrics of the control plane, served on `/metrics`.
//!
//! What operators alert on (README, "Observability"; the chart's PrometheusRule):
//! - `cairn_backups_total{namespace,policy,method,schedule,outcome}` and
//!   `cairn_restores_total{namespace,policy,method,outcome}`: counted once per Backup/Restore,
//!   by the reconcile whose status write makes it Completed or Failed (a status is written once,
//!   by the leader; a restarted or newly elected replica starts its counters at zero, which
//!   Prometheus' `increase()` treats as a reset).
//! - `cairn_backup_duration_seconds`, `cairn_backup_size_bytes` (histograms, same labels less
//!   the outcome) and `cairn_restore_duration_seconds`.
//! - `cairn_backup_last_success_timestamp_seconds{namespace,policy,method,schedule}`: derived
//!   at every scrape from the cached Backups (every replica keeps its caches), so it survives
//!   restarts and leader changes: the "no successful backup in 25 h" alert.
//! - `cairn_certificate_expiry_timestamp_seconds{certificate,path}`: read from the certificate
//!   files at every scrape, so a rotated certificate is seen without a restart.

use std::path::PathBuf;
use std::sync::Arc;

use cairn_api::backup::{Backup, BackupPhase, BackupStatus};
use cairn_api::restore::{Restore, RestorePhase, RestoreStatus};
use cairn_api::well_known::label as well_known;
use kube::ResourceExt;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabel {
    pub kind: String,
    pub error: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BackupLabel {
    pub namespace: String,
    pub policy: String,
    pub method: String,
    pub backup: String,
}

impl BackupLabel {
    /// The labels of one Backup.
    pub fn of(backup: &Backup) -> BackupLabel {
        BackupLabel {
            namespace: backup.namespace().unwrap_or_default(),
            policy: backup.spec.backup_policy_name.clone(),
            method: backup.spec.backup_method.clone(),
            backup: backup.name_any(),
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PhaseLabel {
    pub kind: String,
    pub phase: String,
}

/// A recoverability window's policy (and cluster, empty when unlabelled).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WindowLabel {
    pub namespace: String,
    pub policy: String,
    pub cluster: String,
}

/// What a finished Backup is counted by.
#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
pub struct BackupLabels {
    pub namespace: String,
    pub policy: String,
    pub method: String,
    /// The BackupSchedule that made the Backup; empty for a Backup made by hand.
    pub schedule: String,
}

/// A finished Backup's labels and outcome.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BackupOutcomeLabels {
    pub namespace: String,
    pub policy: String,
    pub method: String,
    pub schedule: String,
    /// `completed` or `failed`.
    pub outcome: String,
}

/// What a finished Restore is counted by (the policy and method of the Backup it restores,
/// empty when that Backup is not known).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RestoreLabels {
    pub namespace: String,
    pub policy: String,
    pub method: String,
}

/// A finished Restore's labels and outcome.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RestoreOutcomeLabels {
    pub namespace: String,
    pub policy: String,
    pub method: String,
    /// `completed` or `failed`.
    pub outcome: String,
}

/// A Backup whose status write makes it finish: what to count.
#[derive(Clone, Debug, PartialEq)]
pub struct FinishedBackup {
    pub labels: BackupLabels,
    pub completed: bool,
    /// Start to completion, when both are known.
    pub seconds: Option<f64>,
    /// Bytes written (completed backups only).
    pub bytes: Option<u64>,
}

/// A Restore whose status write makes it finish.
#[derive(Clone, Debug, PartialEq)]
pub struct FinishedRestore {
    pub labels: RestoreLabels,
    pub completed: bool,
    pub seconds: Option<f64>,
}

/// The labels of `backup`.
pub fn backup_labels(backup: &Backup) -> BackupLabels {
    BackupLabels {
        namespace: backup.namespace().unwrap_or_default(),
        policy: backup.spec.backup_policy_name.clone(),
        method: backup.spec.backup_method.clone(),
        schedule: backup
            .labels()
            .get(well_known::BACKUP_SCHEDULE)
            .cloned()
            .unwrap_or_default(),
    }
}

fn seconds_between(
    start: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
    end: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
) -> Option<f64> {
    let (start, end) = start.zip(end)?;
    Some(end.0.duration_since(start.0).as_secs_f64().max(0.0))
}

/// What to count when `backup`'s status goes from its current one to `next`: `Some` exactly
/// when `next` is the write that makes it Completed or Failed.
pub fn finished_backup(backup: &Backup, next: &BackupStatus) -> Option<FinishedBackup> {
    let terminal = |phase: Option<BackupPhase>| {
        matches!(phase, Some(BackupPhase::Completed | BackupPhase::Failed))
    };
    let before = backup.status.as_ref().and_then(|s| s.phase);
    if !terminal(next.phase) || terminal(before) {
        return None;
    }
    let completed = next.phase == Some(BackupPhase::Completed);
    Some(FinishedBackup {
        labels: backup_labels(backup),
        completed,
        seconds: seconds_between(
            next.start_timestamp.as_ref(),
            next.completion_timestamp.as_ref(),
        ),
        bytes: completed
            .then(|| {
                next.progress
                    .as_ref()
                    .and_then(|p| u64::try_from(p.bytes_done).ok())
                    .filter(|b| *b > 0)
                    .or_else(|| next.total_size.as_deref().and_then(|s| s.parse().ok()))
            })
            .flatten(),
    })
}

/// What to count when `restore`'s status goes from its current one to `next`; `source` is the
/// Backup it restores, if known.
pub fn finished_restore(
    restore: &Restore,
    next: &RestoreStatus,
    source: Option<&Backup>,
) -> Option<FinishedRestore> {
    let terminal = |phase: Option<RestorePhase>| {
        matches!(phase, Some(RestorePhase::Completed | RestorePhase::Failed))
    };
    let before = restore.status.as_ref().and_then(|s| s.phase);
    if !terminal(next.phase) || terminal(before) {
        return None;
    }
    Some(FinishedRestore {
        labels: RestoreLabels {
            namespace: restore.namespace().unwrap_or_default(),
            policy: source
                .map(|b| b.spec.backup_policy_name.clone())
                .unwrap_or_default(),
            method: source
                .map(|b| b.spec.backup_method.clone())
                .unwrap_or_default(),
        },
        completed: next.phase == Some(RestorePhase::Completed),
        seconds: seconds_between(
            next.start_timestamp.as_ref(),
            next.completion_timestamp.as_ref(),
        ),
    })
}

/// The completion time (unix seconds) of the newest Completed backup of each policy, method
/// and schedule among `backups`.
pub fn last_successes(backups: &[Backup]) -> std::collections::BTreeMap<BackupLabels, f64> {
    let mut last = std::collections::BTreeMap::new();
    for backup in backups {
        let Some(status) = backup.status.as_ref() else {
            continue;
        };
        if status.phase != Some(BackupPhase::Completed) {
            continue;
        }
        let Some(done) = status.completion_timestamp.as_ref() else {
            continue;
        };
        let at = done.0.as_millisecond() as f64 / 1000.0;
        let entry = last.entry(backup_labels(backup)).or_insert(at);
        if at > *entry {
            *entry = at;
        }
    }
    last
}

fn outcome(completed: bool) -> String {
    if completed { "completed" } else { "failed" }.to_owned()
}

/// Reads the Backups the gauges are derived from (the control plane's cache).
type BackupSource = Arc<dyn Fn() -> Vec<Backup> + Send + Sync>;

/// The running continuous Backups among `backups` (not being deleted): their labels, whether
/// their archiving is stalled (the `ArchiveStalled` condition) and their `timeRange.end`.
pub fn running_continuous(backups: &[Backup]) -> Vec<(BackupLabel, bool, Option<i64>)> {
    backups
        .iter()
        .filter(|b| {
            b.metadata.deletion_timestamp.is_none()
                && b.labels().get(well_known::BACKUP_TYPE).map(String::as_str) == Some("Continuous")
        })
        .filter_map(|b| {
            let status = b.status.as_ref()?;
            if status.phase != Some(BackupPhase::Running) {
                return None;
            }
            let stalled = status
                .conditions
                .as_ref()
                .and_then(|c| {
                    c.iter().find(|c| {
                        c.type_ == cairn_api::well_known::conditions::backup::CONDITION_ARCHIVE_STALLED
                    })
                })
                .is_some_and(|c| c.status == "True");
            let end = status
                .time_range
                .as_ref()
                .and_then(|r| r.end.as_ref())
                .map(|t| t.0.as_second());
            Some((BackupLabel::of(b), stalled, end))
        })
        .collect()
}

/// Derives `cairn_backup_last_success_timestamp_seconds` and the continuous-backup gauges
/// from the Backups at every scrape: no series outlives the Backup it describes, however it
/// went (nothing per Backup is kept between scrapes).
struct BackupCollector {
    source: BackupSource,
}

impl std::fmt::Debug for BackupCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BackupCollector")
    }
}

impl Collector for BackupCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let backups = (self.source)();
        let family = Family::<BackupLabels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
        for (labels, at) in last_successes(&backups) {
            family.get_or_create(&labels).set(at);
        }
        let metric = encoder.encode_descriptor(
            "backup_last_success_timestamp_seconds",
            "Completion time (unix seconds) of the newest Completed Backup of each policy, method and schedule",
            None,
            family.metric_type(),
        )?;
        family.encode(metric)?;
        let stalled = Family::<BackupLabel, Gauge>::default();
        let end = Family::<BackupLabel, Gauge>::default();
        for (label, is_stalled, at) in running_continuous(&backups) {
            stalled.get_or_create(&label).set(i64::from(is_stalled));
            if let Some(at) = at {
                end.get_or_create(&label).set(at);
            }
        }
        let metric = encoder.encode_descriptor(
            "continuous_backup_stalled",
            "Running continuous backups whose timeRange.end has stopped advancing (1) or not (0)",
            None,
            stalled.metric_type(),
        )?;
        stalled.encode(metric)?;
        let metric = encoder.encode_descriptor(
            "continuous_backup_end_timestamp_seconds",
            "timeRange.end of running continuous backups, as unix seconds",
            None,
            end.metric_type(),
        )?;
        end.encode(metric)
    }
}

/// A certificate file the control plane loads, by role.
#[derive(Clone, Debug)]
pub struct CertificateFile {
    /// `ca`, `server`, `api-client-ca`...
    pub role: String,
    pub path: PathBuf,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CertificateLabels {
    certificate: String,
    path: String,
}

/// Reads the certificates' expiry at every scrape (a rotated file is seen at once).
#[derive(Debug)]
struct CertificateCollector {
    files: Vec<CertificateFile>,
}

/// The expiry (unix seconds) of the first certificate in `path`.
pub fn certificate_expiry(path: &std::path::Path) -> Option<f64> {
    let pem = std::fs::read_to_string(path).ok()?;
    let info = cairn_certs::cert_info::CertInfo::from_pem(&pem).ok()?;
    Some(info.not_after.as_second() as f64)
}

impl Collector for CertificateCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let family =
            Family::<CertificateLabels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
        for file in &self.files {
            match certificate_expiry(&file.path) {
                Some(at) => {
                    family
                        .get_or_create(&CertificateLabels {
                            certificate: file.role.clone(),
                            path: file.path.display().to_string(),
                        })
                        .set(at);
                }
                None => {
                    tracing::debug!(path = %file.path.display(), "certificate unreadable; no expiry metric")
                }
            }
        }
        let metric = encoder.encode_descriptor(
            "certificate_expiry_timestamp_seconds",
            "Expiry (unix seconds, notAfter) of the certificates the control plane loads",
            None,
            family.metric_type(),
        )?;
        family.encode(metric)
    }
}

/// All metrics; cheap to share.
pub struct Metrics {
    registry: Registry,
    pub reconciles: Family<KindLabel, Counter>,
    pub reconcile_errors: Family<ErrorLabel, Counter>,
    pub reconcile_seconds: Family<KindLabel, Histogram>,
    /// Finished actions by owner kind and final phase (from agent results).
    pub action_results: Family<PhaseLabel, Counter>,
    pub actions_dispatched: Family<KindLabel, Counter>,
    /// Bytes of completed backups (all backups together).
    pub backup_bytes: Counter,
    pub connected_agents: Gauge,
    /// The earliest and latest point a point-in-time restore can reach, per policy (unix s).
    pub recoverable_first: Family<WindowLabel, Gauge>,
    pub recoverable_last: Family<WindowLabel, Gauge>,
    pub backups: Family<BackupOutcomeLabels, Counter>,
    pub backup_seconds: Family<BackupLabels, Histogram>,
    pub backup_size: Family<BackupLabels, Histogram>,
    pub restores: Family<RestoreOutcomeLabels, Counter>,
    pub restore_seconds: Family<RestoreLabels, Histogram>,
    // `cairn_continuous_backup_stalled` and `..._end_timestamp_seconds` (labelled by Backup
    // name) are derived from the cached Backups at every scrape (`BackupCollector`).
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric under the `cairn_` prefix.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("cairn");
        let reconciles = Family::<KindLabel, Counter>::default();
        let reconcile_errors = Family::<ErrorLabel, Counter>::default();
        let reconcile_seconds = Family::<KindLabel, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.001, 2.0, 14))
        });
        let action_results = Family::<PhaseLabel, Counter>::default();
        let actions_dispatched = Family::<KindLabel, Counter>::default();
        let backup_bytes = Counter::default();
        let connected_agents = Gauge::default();
        let recoverable_first = Family::<WindowLabel, Gauge>::default();
        let recoverable_last = Family::<WindowLabel, Gauge>::default();
        registry.register(
            "recoverable_first_timestamp_seconds",
            "Earliest point a point-in-time restore can reach, per backup policy",
            recoverable_first.clone(),
        );
        registry.register(
            "recoverable_last_timestamp_seconds",
            "Latest point a point-in-time restore can reach, per backup policy",
            recoverable_last.clone(),
        );
        let backups = Family::<BackupOutcomeLabels, Counter>::default();
        // 1 s .. ~9 h.
        let backup_seconds = Family::<BackupLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(1.0, 2.0, 16))
        });
        // 1 MiB .. 16 TiB.
        let backup_size = Family::<BackupLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(1024.0 * 1024.0, 4.0, 13))
        });
        let restores = Family::<RestoreOutcomeLabels, Counter>::default();
        let restore_seconds = Family::<RestoreLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(1.0, 2.0, 16))
        });
        registry.register("reconciles", "Reconciles by kind", reconciles.clone());
        registry.register(
            "reconcile_errors",
            "Failed reconciles by kind and failed step",
            reconcile_errors.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Reconcile durations by kind",
            reconcile_seconds.clone(),
        );
        registry.register(
            "action_results",
            "Finished actions by owner kind and final phase",
            action_results.clone(),
        );
        registry.register(
            "actions_dispatched",
            "Actions sent to agents by owner kind",
            actions_dispatched.clone(),
        );
        registry.register(
            "backup_bytes",
            "Bytes of completed backups",
            backup_bytes.clone(),
        );
        registry.register(
            "backups",
            "Backups finished, by namespace, policy, method, schedule and outcome",
            backups.clone(),
        );
        registry.register(
            "backup_duration_seconds",
            "Start to completion of finished backups",
            backup_seconds.clone(),
        );
        registry.register(
            "backup_size_bytes",
            "Bytes written by completed backups",
            backup_size.clone(),
        );
        registry.register(
            "restores",
            "Restores finished, by namespace, the restored backup's policy and method, and outcome",
            restores.clone(),
        );
        registry.register(
            "restore_duration_seconds",
            "Start to completion of finished restores",
            restore_seconds.clone(),
        );
        registry.register(
            "connected_agents",
            "Node agents with an open session",
            connected_agents.clone(),
        );
        Metrics {
            registry,
            reconciles,
            reconcile_errors,
            reconcile_seconds,
            action_results,
            actions_dispatched,
            backup_bytes,
            connected_agents,
            recoverable_first,
            recoverable_last,
            backups,
            backup_seconds,
            backup_size,
            restores,
            restore_seconds,
        }
    }

    /// Replaces the recoverability gauges with `windows` (a policy with nothing restorable has
    /// none).
    pub fn set_windows(&self, windows: &[cairn_api::window::Window]) {
        self.recoverable_first.clear();
        self.recoverable_last.clear();
        for window in windows {
            let (Some(first), Some(last)) = (window.first(), window.last()) else {
                continue;
            };
            let label = WindowLabel {
                namespace: window.namespace.clone(),
                policy: window.policy.clone(),
                cluster: window.cluster.clone().unwrap_or_default(),
            };
            self.recoverable_first
                .get_or_create(&label)
                .set(first.as_second());
            self.recoverable_last
                .get_or_create(&label)
                .set(last.as_second());
        }
    }

    /// Derives the last-success gauge from the Backups `source` returns, at every scrape.
    pub fn observe_backups(&mut self, source: impl Fn() -> Vec<Backup> + Send + Sync + 'static) {
        self.registry.register_collector(Box::new(BackupCollector {
            source: Arc::new(source),
        }));
    }

    /// Reports the expiry of `files` at every scrape.
    pub fn observe_certificates(&mut self, files: Vec<CertificateFile>) {
        self.registry
            .register_collector(Box::new(CertificateCollector { files }));
    }

    /// Counts a Backup that finished.
    pub fn backup_finished(&self, finished: &FinishedBackup) {
        let l = &finished.labels;
        self.backups
            .get_or_create(&BackupOutcomeLabels {
                namespace: l.namespace.clone(),
                policy: l.policy.clone(),
                method: l.method.clone(),
                schedule: l.schedule.clone(),
                outcome: outcome(finished.completed),
            })
            .inc();
        if let Some(seconds) = finished.seconds {
            self.backup_seconds.get_or_create(l).observe(seconds);
        }
        if let Some(bytes) = finished.bytes {
            self.backup_bytes.inc_by(bytes);
            self.backup_size.get_or_create(l).observe(bytes as f64);
        }
    }

    /// Counts a Restore that finished.
    pub fn restore_finished(&self, finished: &FinishedRestore) {
        let l = &finished.labels;
        self.restores
            .get_or_create(&RestoreOutcomeLabels {
                namespace: l.namespace.clone(),
                policy: l.policy.clone(),
                method: l.method.clone(),
                outcome: outcome(finished.completed),
            })
            .inc();
        if let Some(seconds) = finished.seconds {
            self.restore_seconds.get_or_create(l).observe(seconds);
        }
    }

    /// The OpenMetrics text of every metric.
    pub fn render(&self) -> String {
        let mut text = String::new();
        if prometheus_client::encoding::text::encode(&mut text, &self.registry).is_err() {
            text.clear();
        }
        text
    }

    /// Counts a reconcile of `kind`.
    pub fn reconciled(&self, kind: &str, seconds: f64) {
        let label = KindLabel { kind: kind.into() };
        self.reconciles.get_or_create(&label).inc();
        self.reconcile_seconds
            .get_or_create(&label)
            .observe(seconds);
    }

    /// Counts a failed reconcile of `kind` at `step`.
    pub fn failed(&self, kind: &str, step: &str) {
        self.reconcile_errors
            .get_or_create(&ErrorLabel {
                kind: kind.into(),
                error: step.into(),
            })
            .inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recoverability_windows_appear_per_policy_and_go_when_they_do() {
        let backup = |name: &str, kind: &str, status: serde_json::Value| {
            serde_json::from_value::<cairn_api::backup::Backup>(serde_json::json!({
                "apiVersion": "dataprotection.kubeblocks.io/v1alpha1", "kind": "Backup",
                "metadata": {"name": name, "namespace": "db", "labels": {
                    "dataprotection.kubeblocks.io/backup-type": kind,
                    "dataprotection.kubeblocks.io/backup-policy": "pg-policy",
                    "app.kubernetes.io/instance": "pg"}},
                "spec": {"backupPolicyName": "pg-policy", "backupMethod": "m"},
                "status": status
            }))
            .unwrap()
        };
        let backups = [
            backup(
                "f1",
                "Full",
                serde_json::json!({"phase": "Completed",
                                   "completionTimestamp": "2026-11-22T08:30:00Z"}),
            ),
            backup(
                "c1",
                "Continuous",
                serde_json::json!({"phase": "Running", "timeRange": {
                    "start": "2026-11-22T08:00:00Z", "end": "2026-11-22T10:00:00Z"}}),
            ),
        ];
        let metrics = Metrics::new();
        let none = std::collections::BTreeSet::new();
        metrics.set_windows(&cairn_api::window::windows(&backups, &none));
        let text = metrics.render();
        let labels = "{namespace=\"db\",policy=\"pg-policy\",cluster=\"pg\"}";
        assert!(
            text.contains(&format!(
                "cairn_recoverable_first_timestamp_seconds{labels} 1795336200"
            )) && text.contains(&format!(
                "cairn_recoverable_last_timestamp_seconds{labels} 1795341600"
            )),
            "{text}"
        );
        metrics.set_windows(&cairn_api::window::windows(&backups[1..], &none));
        assert!(!metrics.render().contains("pg-policy"));
    }

    #[test]
    fn counted_reconciles_and_errors_appear_in_the_text() {
        let metrics = Metrics::new();
        metrics.reconciled("Backup", 0.01);
        metrics.failed("Backup", "patch_status");
        let text = metrics.render();
        assert!(
            text.contains("cairn_reconciles_total{kind=\"Backup\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("cairn_reconcile_errors_total{kind=\"Backup\",error=\"patch_status\"} 1")
        );
    }

    fn backup(name: &str, schedule: Option<&str>, status: serde_json::Value) -> Backup {
        let mut labels = serde_json::Map::new();
        if let Some(schedule) = schedule {
            labels.insert(well_known::BACKUP_SCHEDULE.into(), schedule.into());
        }
        serde_json::from_value(serde_json::json!({
            "apiVersion": "dataprotection.kubeblocks.io/v1alpha1",
            "kind": "Backup",
            "metadata": {"name": name, "namespace": "db", "labels": labels},
            "spec": {"backupPolicyName": "pg-policy", "backupMethod": "pg-basebackup"},
            "status": status,
        }))
        .unwrap()
    }

    fn status(value: serde_json::Value) -> BackupStatus {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn a_backup_is_counted_only_by_the_write_that_makes_it_finish() {
        let running = backup("b1", Some("daily"), serde_json::json!({"phase": "Running"}));
        let done = status(serde_json::json!({
            "phase": "Completed",
            "startTimestamp": "2026-01-01T00:00:00Z",
            "completionTimestamp": "2026-01-01T00:01:30Z",
            "totalSize": "2048",
        }));
        let finished = finished_backup(&running, &done).expect("Running -> Completed finishes");
        assert_eq!(
            finished.labels,
            BackupLabels {
                namespace: "db".into(),
                policy: "pg-policy".into(),
                method: "pg-basebackup".into(),
                schedule: "daily".into(),
            }
        );
        assert!(finished.completed);
        assert_eq!(finished.seconds, Some(90.0));
        assert_eq!(finished.bytes, Some(2048));

        // Later reconciles of the finished Backup (a restart, a new leader) count nothing.
        let completed = backup("b1", Some("daily"), serde_json::to_value(&done).unwrap());
        assert_eq!(finished_backup(&completed, &done), None);
        // A progress update is not a finish.
        let progress = status(serde_json::json!({"phase": "Running"}));
        assert_eq!(finished_backup(&running, &progress), None);
        // A failure is counted, without bytes; a Backup made by hand has no schedule.
        let manual = backup("b2", None, serde_json::json!({"phase": "New"}));
        let failed = finished_backup(&manual, &status(serde_json::json!({"phase": "Failed"})))
            .expect("New -> Failed finishes");
        assert!(!failed.completed);
        assert_eq!(failed.bytes, None);
        assert_eq!(failed.labels.schedule, "");
    }

    #[test]
    fn finished_backups_and_restores_appear_by_outcome_with_histograms() {
        let metrics = Metrics::new();
        let running = backup("b1", Some("daily"), serde_json::json!({"phase": "Running"}));
        let done = status(serde_json::json!({
            "phase": "Completed",
            "startTimestamp": "2026-01-01T00:00:00Z",
            "completionTimestamp": "2026-01-01T00:00:03Z",
            "progress": {"bytesDone": 5000000},
        }));
        metrics.backup_finished(&finished_backup(&running, &done).unwrap());
        metrics.backup_finished(
            &finished_backup(&running, &status(serde_json::json!({"phase": "Failed"}))).unwrap(),
        );
        let restore: Restore = serde_json::from_value(serde_json::json!({
            "apiVersion": "dataprotection.kubeblocks.io/v1alpha1",
            "kind": "Restore",
            "metadata": {"name": "r1", "namespace": "db"},
            "spec": {"backup": {"name": "b1", "namespace": "db"}},
            "status": {"phase": "Running"},
        }))
        .unwrap();
        let restored: RestoreStatus =
            serde_json::from_value(serde_json::json!({"phase": "Failed"})).unwrap();
        metrics.restore_finished(&finished_restore(&restore, &restored, Some(&running)).unwrap());
        let text = metrics.render();
        for line in [
            "cairn_backups_total{namespace=\"db\",policy=\"pg-policy\",method=\"pg-basebackup\",schedule=\"daily\",outcome=\"completed\"} 1",
            "cairn_backups_total{namespace=\"db\",policy=\"pg-policy\",method=\"pg-basebackup\",schedule=\"daily\",outcome=\"failed\"} 1",
            "cairn_backup_duration_seconds_count{namespace=\"db\",policy=\"pg-policy\",method=\"pg-basebackup\",schedule=\"daily\"} 1",
            "cairn_backup_size_bytes_sum{namespace=\"db\",policy=\"pg-policy\",method=\"pg-basebackup\",schedule=\"daily\"} 5000000.0",
            "cairn_restores_total{namespace=\"db\",policy=\"pg-policy\",method=\"pg-basebackup\",outcome=\"failed\"} 1",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
    }

    #[test]
    fn the_last_success_is_the_newest_completed_backup_of_each_schedule() {
        let backups = vec![
            backup(
                "old",
                Some("daily"),
                serde_json::json!({"phase": "Completed", "completionTimestamp": "2026-01-01T00:00:00Z"}),
            ),
            backup(
                "new",
                Some("daily"),
                serde_json::json!({"phase": "Completed", "completionTimestamp": "2026-01-02T00:00:00Z"}),
            ),
            backup(
                "failed-later",
                Some("daily"),
                serde_json::json!({"phase": "Failed", "completionTimestamp": "2026-01-03T00:00:00Z"}),
            ),
            backup(
                "manual",
                None,
                serde_json::json!({"phase": "Completed", "completionTimestamp": "2026-01-01T12:00:00Z"}),
            ),
            backup(
                "running",
                Some("hourly"),
                serde_json::json!({"phase": "Running"}),
            ),
        ];
        let mut metrics = Metrics::new();
        metrics.observe_backups(move || backups.clone());
        let text = metrics.render();
        let jan2 = jiff::Timestamp::from_second(1_767_312_000).unwrap();
        assert_eq!(jan2.to_string(), "2026-01-02T00:00:00Z");
        assert!(
            text.contains("cairn_backup_last_success_timestamp_seconds{namespace=\"db\",policy=\"pg-policy\",method=\"pg-basebackup\",schedule=\"daily\"} 1767312000.0"),
            "{text}"
        );
        assert!(
            text.contains("cairn_backup_last_success_timestamp_seconds{namespace=\"db\",policy=\"pg-policy\",method=\"pg-basebackup\",schedule=\"\"} 1767268800.0"),
            "{text}"
        );
        assert!(!text.contains("schedule=\"hourly\""), "{text}");
    }

    #[test]
    fn certificate_expiry_is_read_from_the_files_at_every_scrape() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("server.pem");
        let write = |not_after: (i32, u8, u8)| {
            let mut params = rcgen::CertificateParams::new(vec!["cairn".into()]).unwrap();
            params.not_after = rcgen::date_time_ymd(not_after.0, not_after.1, not_after.2);
            let key = rcgen::KeyPair::generate().unwrap();
            let cert = params.self_signed(&key).unwrap();
            std::fs::write(&path, cert.pem()).unwrap();
        };
        write((2030, 1, 1));
        let mut metrics = Metrics::new();
        metrics.observe_certificates(vec![
            CertificateFile {
                role: "server".into(),
                path: path.clone(),
            },
            CertificateFile {
                role: "ca".into(),
                path: dir.path().join("missing.pem"),
            },
        ]);
        let series = |year: i64| {
            format!(
                "cairn_certificate_expiry_timestamp_seconds{{certificate=\"server\",path=\"{}\"}} {}.0",
                path.display(),
                jiff::civil::date(year as i16, 1, 1)
                    .to_zoned(jiff::tz::TimeZone::UTC)
                    .unwrap()
                    .timestamp()
                    .as_second()
            )
        };
        let text = metrics.render();
        assert!(text.contains(&series(2030)), "{text}");
        assert!(!text.contains("certificate=\"ca\""), "{text}");
        // A rotated certificate is seen without a restart.
        write((2031, 1, 1));
        let text = metrics.render();
        assert!(text.contains(&series(2031)), "{text}");
    }

    fn continuous(name: &str, phase: &str, stalled: bool, end: &str) -> Backup {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "dataprotection.kubeblocks.io/v1alpha1",
            "kind": "Backup",
            "metadata": {"name": name, "namespace": "shop",
                "labels": {"dataprotection.kubeblocks.io/backup-type": "Continuous"}},
            "spec": {"backupPolicyName": "pg", "backupMethod": "wal"},
            "status": {"phase": phase,
                "timeRange": {"end": end},
                "conditions": [{"type": "ArchiveStalled",
                    "status": if stalled { "True" } else { "False" },
                    "reason": "r", "message": "m",
                    "lastTransitionTime": "2027-01-15T08:00:00Z"}]}
        }))
        .expect("a continuous Backup")
    }

    #[test]
    fn a_continuous_backup_shows_while_it_runs_and_not_after_it_is_gone() {
        let cached = Arc::new(std::sync::Mutex::new(vec![continuous(
            "pitr-1",
            "Running",
            true,
            "2027-01-15T08:00:00Z",
        )]));
        let mut metrics = Metrics::new();
        let source = cached.clone();
        metrics.observe_backups(move || source.lock().expect("cache").clone());
        let series = |gauge: &str, value: &str| {
            format!(
                "cairn_{gauge}{{namespace=\"shop\",policy=\"pg\",method=\"wal\",backup=\"pitr-1\"}} {value}"
            )
        };
        let text = metrics.render();
        assert!(
            text.contains(&series("continuous_backup_stalled", "1")),
            "{text}"
        );
        assert!(
            text.contains(&series(
                "continuous_backup_end_timestamp_seconds",
                &"2027-01-15T08:00:00Z"
                    .parse::<jiff::Timestamp>()
                    .expect("a time")
                    .as_second()
                    .to_string()
            )),
            "{text}"
        );
        *cached.lock().expect("cache") = vec![continuous(
            "pitr-1",
            "Running",
            false,
            "2027-01-15T08:01:00Z",
        )];
        assert!(
            metrics
                .render()
                .contains(&series("continuous_backup_stalled", "0"))
        );
        // Completed: no longer running, the series go.
        *cached.lock().expect("cache") = vec![continuous(
            "pitr-1",
            "Completed",
            false,
            "2027-01-15T08:01:00Z",
        )];
        assert!(!metrics.render().contains("pitr-1"));
        // Gone from the cache while Running, whether or not a reconcile saw it go (its
        // finalizer removed by hand): nothing of it is left, so the series do not grow with
        // every continuous Backup ever run.
        *cached.lock().expect("cache") = vec![continuous(
            "pitr-2",
            "Running",
            false,
            "2027-01-15T08:01:00Z",
        )];
        let text = metrics.render();
        assert!(!text.contains("pitr-1"), "{text}");
        assert!(text.contains("pitr-2"), "{text}");
    }
}
