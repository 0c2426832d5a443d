//! Prometheus metrics of the control plane, served on `/metrics`.
//!
//! What operators alert on (README, "Observability"; the chart's PrometheusRule):
//! - `cairn_backups_total{namespace,policy,method,schedule,outcome}` and
//!   `cairn_restores_total{namespace,policy,method,outcome}`: counted once per entry of a
//!   Backup/Restore into Completed or Failed, as the leader's watch sees it ([`Finishes`]):
//!   whatever the reconcile that wrote it did next. A restarted replica starts its counters at
//!   zero (Prometheus' `increase()` treats it as a reset) without counting what finished before.
//! - `cairn_backup_duration_seconds`, `cairn_backup_size_bytes` (histograms, same labels less
//!   the outcome) and `cairn_restore_duration_seconds`.
//! - `cairn_backup_last_success_timestamp_seconds{namespace,policy,method,schedule}`: derived
//!   at every scrape from the cached Backups (every replica keeps its caches), so it survives
//!   restarts and leader changes.
//! - `cairn_backup_schedule_interval_seconds{namespace,policy,method,schedule}`: per enabled,
//!   non-continuous schedule entry, the longest gap between two of its cron fire times; and
//!   `cairn_backup_schedule_start_timestamp_seconds` (same labels), since when it is expected to
//!   run (its BackupSchedule's creation). `CairnNoSuccessfulBackup` fires when the last success
//!   (or, for an entry that never succeeded, the start) is older than the interval times a
//!   factor plus a margin; a disabled entry has no series and never fires.
//! - `cairn_certificate_expiry_timestamp_seconds{certificate,path}`: read from the certificate
//!   files at every scrape, so a rotated certificate is seen without a restart.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use cairn_api::actionset::ActionSet;
use cairn_api::backup::{Backup, BackupPhase};
use cairn_api::backup_policy::BackupPolicy;
use cairn_api::backup_schedule::BackupSchedule;
use cairn_api::restore::{Restore, RestorePhase};
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

/// What to count for `backup` if its status is Completed or Failed.
pub fn finished_backup(backup: &Backup) -> Option<FinishedBackup> {
    let status = backup.status.as_ref()?;
    if !matches!(
        status.phase,
        Some(BackupPhase::Completed | BackupPhase::Failed)
    ) {
        return None;
    }
    let completed = status.phase == Some(BackupPhase::Completed);
    Some(FinishedBackup {
        labels: backup_labels(backup),
        completed,
        seconds: seconds_between(
            status.start_timestamp.as_ref(),
            status.completion_timestamp.as_ref(),
        ),
        bytes: completed
            .then(|| {
                status
                    .progress
                    .as_ref()
                    .and_then(|p| u64::try_from(p.bytes_done).ok())
                    .filter(|b| *b > 0)
                    .or_else(|| status.total_size.as_deref().and_then(|s| s.parse().ok()))
            })
            .flatten(),
    })
}

/// What to count for `restore` if its status is Completed or Failed; `source` is the Backup it
/// restores, if known.
pub fn finished_restore(restore: &Restore, source: Option<&Backup>) -> Option<FinishedRestore> {
    let status = restore.status.as_ref()?;
    if !matches!(
        status.phase,
        Some(RestorePhase::Completed | RestorePhase::Failed)
    ) {
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
        completed: status.phase == Some(RestorePhase::Completed),
        seconds: seconds_between(
            status.start_timestamp.as_ref(),
            status.completion_timestamp.as_ref(),
        ),
    })
}

/// Where a Backup or Restore stands, for counting its finish.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// New or running (no phase, `New`, `InProgress`, `Running`).
    Open,
    /// `Completed` or `Failed`.
    Finished,
    /// Anything else (`Deleting`, `AsDataSource`): changes nothing.
    Other,
}

/// One watch event of a Backup or Restore, as [`Finishes`] reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Watched<'a> {
    /// A (re)list begins.
    Listing,
    /// An object of the list.
    Listed { uid: &'a str, stage: Stage },
    /// The list is complete.
    ListDone,
    /// An object was created or changed.
    Changed { uid: &'a str, stage: Stage },
    /// An object was deleted.
    Deleted { uid: &'a str },
}

fn backup_stage(backup: &Backup) -> Stage {
    match backup.status.as_ref().and_then(|s| s.phase) {
        None | Some(BackupPhase::New | BackupPhase::InProgress | BackupPhase::Running) => {
            Stage::Open
        }
        Some(BackupPhase::Completed | BackupPhase::Failed) => Stage::Finished,
        Some(BackupPhase::Deleting) => Stage::Other,
    }
}

fn restore_stage(restore: &Restore) -> Stage {
    match restore.status.as_ref().and_then(|s| s.phase) {
        None | Some(RestorePhase::Running) => Stage::Open,
        Some(RestorePhase::Completed | RestorePhase::Failed) => Stage::Finished,
        Some(RestorePhase::AsDataSource) => Stage::Other,
    }
}

/// Which Backups (or Restores) this replica has seen Completed or Failed, by uid, so that each
/// entry into a final phase is counted exactly once, from the watch rather than from the
/// reconcile that wrote it (a reconcile failing after its status write, a crash, a new leader
/// all still count it once):
/// - the objects the first list finds finished finished before this process started and are not
///   counted (a restart resets the counters, which Prometheus' `increase()` expects);
/// - after it, an object seen finished whose uid is not known finished is counted; the same
///   object seen again (another status write, a relist after the watch broke) is not;
/// - an object seen New or Running again is forgotten, so a continuous Backup reopened and
///   completed again counts again (a Deleting one is not: its deletion failing does not count
///   it again); deleted objects are forgotten, and a relist forgets those it no longer
///   lists: the set is bounded by the objects that exist.
#[derive(Debug, Default)]
pub struct Finishes {
    finished: HashSet<String>,
    /// The uids of the (re)list under way.
    listing: Option<HashSet<String>>,
    /// Whether the first list is complete.
    listed: bool,
}

impl Finishes {
    /// Takes in one event; `true` when it is a finish to count.
    pub fn observe(&mut self, event: Watched<'_>) -> bool {
        match event {
            Watched::Listing => {
                self.listing = Some(HashSet::new());
                false
            }
            Watched::Listed { uid, stage } => {
                if let Some(listing) = self.listing.as_mut() {
                    listing.insert(uid.to_owned());
                }
                self.seen(uid, stage) && self.listed
            }
            Watched::ListDone => {
                if let Some(listing) = self.listing.take() {
                    self.finished.retain(|uid| listing.contains(uid));
                }
                self.listed = true;
                false
            }
            Watched::Changed { uid, stage } => self.seen(uid, stage),
            Watched::Deleted { uid } => {
                self.finished.remove(uid);
                false
            }
        }
    }

    /// Whether `uid` newly entered a final phase.
    fn seen(&mut self, uid: &str, stage: Stage) -> bool {
        match stage {
            Stage::Finished => self.finished.insert(uid.to_owned()),
            Stage::Open => {
                self.finished.remove(uid);
                false
            }
            Stage::Other => false,
        }
    }
}

/// The watch event `event` as [`Finishes`] reads it, `stage` telling where an object stands;
/// `None` for an object without a uid (never from the API server).
fn watched<K: kube::Resource>(
    event: &kube::runtime::watcher::Event<K>,
    stage: impl Fn(&K) -> Stage,
) -> Option<(Watched<'_>, Option<&K>)> {
    use kube::runtime::watcher::Event;
    Some(match event {
        Event::Init => (Watched::Listing, None),
        Event::InitDone => (Watched::ListDone, None),
        Event::InitApply(o) => (
            Watched::Listed {
                uid: o.meta().uid.as_deref()?,
                stage: stage(o),
            },
            Some(o),
        ),
        Event::Apply(o) => (
            Watched::Changed {
                uid: o.meta().uid.as_deref()?,
                stage: stage(o),
            },
            Some(o),
        ),
        Event::Delete(o) => (
            Watched::Deleted {
                uid: o.meta().uid.as_deref()?,
            },
            None,
        ),
    })
}

/// Finds the Backup `namespace`/`name`.
type FindBackup = Box<dyn Fn(&str, &str) -> Option<Backup> + Send + Sync>;

/// Counts finished Backups and Restores from the caches' watch events ([`Finishes`]); only
/// the leader counts, so that the replicas' counters together count each finish once. Every
/// replica keeps its [`Finishes`] current, so a new leader does not count again what finished
/// before it led; a finish its watch delivers while it does not lead yet (inside a hand-over)
/// is counted by no replica.
pub struct FinishCounter {
    backups: Mutex<Finishes>,
    restores: Mutex<Finishes>,
    counts: FinishFamilies,
    leading: Box<dyn Fn() -> bool + Send + Sync>,
    /// Finds the Backup a Restore restores (`namespace`, `name`), for its labels.
    source: OnceLock<FindBackup>,
}

impl FinishCounter {
    /// Finds the Backup a finished Restore restores through `source` (set once).
    pub fn find_sources(
        &self,
        source: impl Fn(&str, &str) -> Option<Backup> + Send + Sync + 'static,
    ) {
        let _ = self.source.set(Box::new(source));
    }

    /// Takes in one watch event of the Backups.
    pub fn backup_event(&self, event: &kube::runtime::watcher::Event<Backup>) {
        let Some((seen, object)) = watched(event, backup_stage) else {
            return;
        };
        let new = self
            .backups
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .observe(seen);
        if new
            && (self.leading)()
            && let Some(finished) = object.and_then(finished_backup)
        {
            self.counts.backup(&finished);
        }
    }

    /// Takes in one watch event of the BackupPolicies: a deleted policy's series go.
    pub fn policy_event(&self, event: &kube::runtime::watcher::Event<BackupPolicy>) {
        if let kube::runtime::watcher::Event::Delete(policy) = event {
            self.counts
                .forget_policy(&policy.namespace().unwrap_or_default(), &policy.name_any());
        }
    }

    /// Takes in one watch event of the Restores.
    pub fn restore_event(&self, event: &kube::runtime::watcher::Event<Restore>) {
        let Some((seen, object)) = watched(event, restore_stage) else {
            return;
        };
        let new = self
            .restores
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .observe(seen);
        if !new || !(self.leading)() {
            return;
        }
        let Some(restore) = object else {
            return;
        };
        let source = self
            .source
            .get()
            .and_then(|find| find(&restore.spec.backup.namespace, &restore.spec.backup.name));
        if let Some(finished) = finished_restore(restore, source.as_ref()) {
            self.counts.restore(&finished);
        }
    }
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

/// An enabled entry of a BackupSchedule that completes Backups (not a continuous one): the
/// series `CairnNoSuccessfulBackup` compares the last success with.
#[derive(Clone, Debug, PartialEq)]
pub struct ScheduledEntry {
    /// The labels its Backups carry (`schedule` is the BackupSchedule's name).
    pub labels: BackupLabels,
    pub cron_expression: String,
    /// Since when (unix seconds) it is expected to run: the BackupSchedule's creation.
    pub since: Option<f64>,
}

/// The enabled, non-continuous entries of `schedules`; `policy(namespace, name)` finds a
/// schedule's BackupPolicy (a schedule whose policy is missing keeps its entries: it makes no
/// backups, which is what the alert is for).
pub fn scheduled_entries(
    schedules: &[BackupSchedule],
    policy: impl Fn(&str, &str) -> Option<BackupPolicy>,
    actionsets: &[ActionSet],
) -> Vec<ScheduledEntry> {
    let mut entries = Vec::new();
    for schedule in schedules {
        if schedule.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let namespace = schedule.namespace().unwrap_or_default();
        let policy_name = &schedule.spec.backup_policy_name;
        let policy = policy(&namespace, policy_name);
        for entry in &schedule.spec.schedules {
            let continuous = policy.as_ref().is_some_and(|p| {
                crate::plan::schedule::is_continuous_method(actionsets, p, &entry.backup_method)
            });
            if entry.enabled != Some(true) || continuous {
                continue;
            }
            entries.push(ScheduledEntry {
                labels: BackupLabels {
                    namespace: namespace.clone(),
                    policy: policy_name.clone(),
                    method: entry.backup_method.clone(),
                    schedule: schedule.name_any(),
                },
                cron_expression: entry.cron_expression.clone(),
                since: schedule
                    .metadata
                    .creation_timestamp
                    .as_ref()
                    .map(|t| t.0.as_millisecond() as f64 / 1000.0),
            });
        }
    }
    entries
}

/// Reads the schedule entries the interval gauges are derived from.
type ScheduleSource = Arc<dyn Fn() -> Vec<ScheduledEntry> + Send + Sync>;

/// Derives `cairn_backup_schedule_interval_seconds` and
/// `cairn_backup_schedule_start_timestamp_seconds` from the BackupSchedules at every scrape.
struct ScheduleCollector {
    source: ScheduleSource,
    /// Intervals by cron expression (computing one walks up to 10,000 fire times); cleared
    /// when it reaches [`INTERVALS_KEPT`] expressions.
    intervals: Mutex<HashMap<String, Option<f64>>>,
}

const INTERVALS_KEPT: usize = 1024;

impl std::fmt::Debug for ScheduleCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ScheduleCollector")
    }
}

impl ScheduleCollector {
    fn interval(&self, expression: &str) -> Option<f64> {
        let mut known = self.intervals.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(interval) = known.get(expression) {
            return *interval;
        }
        let interval = cairn_api::parse::cron::parse(expression)
            .ok()
            .and_then(|cron| crate::plan::schedule::longest_interval(&cron, jiff::Timestamp::now()))
            .map(|d| d.as_secs_f64());
        if known.len() >= INTERVALS_KEPT {
            known.clear();
        }
        known.insert(expression.to_owned(), interval);
        interval
    }
}

impl Collector for ScheduleCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        // Entries of one schedule sharing a method share the series: the shortest interval
        // and the earliest start apply.
        let mut intervals = std::collections::BTreeMap::<BackupLabels, f64>::new();
        let mut starts = std::collections::BTreeMap::<BackupLabels, f64>::new();
        for entry in (self.source)() {
            if let Some(interval) = self.interval(&entry.cron_expression) {
                let at = intervals.entry(entry.labels.clone()).or_insert(interval);
                *at = at.min(interval);
            }
            if let Some(since) = entry.since {
                let at = starts.entry(entry.labels).or_insert(since);
                *at = at.min(since);
            }
        }
        for (name, help, values) in [
            (
                "backup_schedule_interval_seconds",
                "Longest gap between two fire times of each enabled, non-continuous schedule entry",
                intervals,
            ),
            (
                "backup_schedule_start_timestamp_seconds",
                "Since when (unix seconds, the BackupSchedule's creation) each enabled, non-continuous schedule entry is expected to run",
                starts,
            ),
        ] {
            let family =
                Family::<BackupLabels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
            for (labels, value) in values {
                family.get_or_create(&labels).set(value);
            }
            let metric = encoder.encode_descriptor(name, help, None, family.metric_type())?;
            family.encode(metric)?;
        }
        Ok(())
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

/// The series a finished Backup or Restore is counted in (shared with [`Metrics`]).
#[derive(Clone)]
struct FinishFamilies {
    backups: Family<BackupOutcomeLabels, Counter>,
    backup_seconds: Family<BackupLabels, Histogram>,
    backup_size: Family<BackupLabels, Histogram>,
    backup_bytes: Counter,
    restores: Family<RestoreOutcomeLabels, Counter>,
    restore_seconds: Family<RestoreLabels, Histogram>,
    /// The label sets counted so far, so that a policy's series go with it.
    counted: Arc<Mutex<CountedLabels>>,
}

#[derive(Debug, Default)]
struct CountedLabels {
    backups: HashSet<BackupLabels>,
    restores: HashSet<RestoreLabels>,
}

impl FinishFamilies {
    /// Removes every series of the policy `namespace/policy`: a deleted BackupPolicy's series
    /// would otherwise stay for the life of the process, one set per policy ever counted.
    fn forget_policy(&self, namespace: &str, policy: &str) {
        let mut counted = self.counted.lock().unwrap_or_else(|p| p.into_inner());
        let of_policy = |ns: &str, p: &str| ns == namespace && p == policy;
        counted.backups.retain(|l| {
            if !of_policy(&l.namespace, &l.policy) {
                return true;
            }
            for outcome in [true, false] {
                self.backups.remove(&backup_outcome_labels(l, outcome));
            }
            self.backup_seconds.remove(l);
            self.backup_size.remove(l);
            false
        });
        counted.restores.retain(|l| {
            if !of_policy(&l.namespace, &l.policy) {
                return true;
            }
            for outcome in [true, false] {
                self.restores.remove(&restore_outcome_labels(l, outcome));
            }
            self.restore_seconds.remove(l);
            false
        });
    }

    fn backup(&self, finished: &FinishedBackup) {
        let l = &finished.labels;
        self.counted
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .backups
            .insert(l.clone());
        self.backups
            .get_or_create(&backup_outcome_labels(l, finished.completed))
            .inc();
        if let Some(seconds) = finished.seconds {
            self.backup_seconds.get_or_create(l).observe(seconds);
        }
        if let Some(bytes) = finished.bytes {
            self.backup_bytes.inc_by(bytes);
            self.backup_size.get_or_create(l).observe(bytes as f64);
        }
    }

    fn restore(&self, finished: &FinishedRestore) {
        let l = &finished.labels;
        self.counted
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .restores
            .insert(l.clone());
        self.restores
            .get_or_create(&restore_outcome_labels(l, finished.completed))
            .inc();
        if let Some(seconds) = finished.seconds {
            self.restore_seconds.get_or_create(l).observe(seconds);
        }
    }
}

fn backup_outcome_labels(l: &BackupLabels, completed: bool) -> BackupOutcomeLabels {
    BackupOutcomeLabels {
        namespace: l.namespace.clone(),
        policy: l.policy.clone(),
        method: l.method.clone(),
        schedule: l.schedule.clone(),
        outcome: outcome(completed),
    }
}

fn restore_outcome_labels(l: &RestoreLabels, completed: bool) -> RestoreOutcomeLabels {
    RestoreOutcomeLabels {
        namespace: l.namespace.clone(),
        policy: l.policy.clone(),
        method: l.method.clone(),
        outcome: outcome(completed),
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
    counted: Arc<Mutex<CountedLabels>>,
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
            counted: Arc::default(),
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

    /// Derives the schedule interval and start gauges from the entries `source` returns, at
    /// every scrape.
    pub fn observe_schedules(
        &mut self,
        source: impl Fn() -> Vec<ScheduledEntry> + Send + Sync + 'static,
    ) {
        self.registry
            .register_collector(Box::new(ScheduleCollector {
                source: Arc::new(source),
                intervals: Mutex::new(HashMap::new()),
            }));
    }

    /// Reports the allocator's statistics at every scrape ([`crate::allocator`]).
    pub fn observe_allocator(&mut self) {
        self.registry
            .register_collector(Box::new(crate::allocator::AllocatorCollector));
    }

    /// Reports the expiry of `files` at every scrape.
    pub fn observe_certificates(&mut self, files: Vec<CertificateFile>) {
        self.registry
            .register_collector(Box::new(CertificateCollector { files }));
    }

    fn finish_families(&self) -> FinishFamilies {
        FinishFamilies {
            backups: self.backups.clone(),
            backup_seconds: self.backup_seconds.clone(),
            backup_size: self.backup_size.clone(),
            backup_bytes: self.backup_bytes.clone(),
            restores: self.restores.clone(),
            restore_seconds: self.restore_seconds.clone(),
            counted: self.counted.clone(),
        }
    }

    /// What counts finished Backups and Restores into these metrics from the caches' watch
    /// events, while `leading` says this replica leads.
    pub fn finish_counter(
        &self,
        leading: impl Fn() -> bool + Send + Sync + 'static,
    ) -> FinishCounter {
        FinishCounter {
            backups: Mutex::new(Finishes::default()),
            restores: Mutex::new(Finishes::default()),
            counts: self.finish_families(),
            leading: Box::new(leading),
            source: OnceLock::new(),
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

    /// `backup` with uid `uid`.
    fn with_uid(mut backup: Backup, uid: &str) -> Backup {
        backup.metadata.uid = Some(uid.into());
        backup
    }

    fn done(name: &str, uid: &str) -> Backup {
        with_uid(
            backup(
                name,
                Some("daily"),
                serde_json::json!({
                    "phase": "Completed",
                    "startTimestamp": "2026-01-01T00:00:00Z",
                    "completionTimestamp": "2026-01-01T00:01:30Z",
                    "totalSize": "2048",
                }),
            ),
            uid,
        )
    }

    fn in_phase(name: &str, uid: &str, phase: &str) -> Backup {
        with_uid(
            backup(name, Some("daily"), serde_json::json!({"phase": phase})),
            uid,
        )
    }

    /// The value of `cairn_backups_total` for the daily schedule's `outcome` (0 when absent).
    fn counted(metrics: &Metrics, outcome: &str) -> u64 {
        let text = metrics.render();
        let prefix = format!(
            "cairn_backups_total{{namespace=\"db\",policy=\"pg-policy\",method=\"pg-basebackup\",schedule=\"daily\",outcome=\"{outcome}\"}} "
        );
        text.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .map(|v| v.parse().unwrap())
            .unwrap_or(0)
    }

    #[test]
    fn each_finish_is_counted_once_from_the_watch_whatever_writes_it_and_however_often_seen() {
        use kube::runtime::watcher::Event;
        let metrics = Metrics::new();
        let counter = metrics.finish_counter(|| true);
        // Started: what the first list finds finished finished before; nothing is counted.
        counter.backup_event(&Event::Init);
        counter.backup_event(&Event::InitApply(done("old", "u0")));
        counter.backup_event(&Event::InitApply(in_phase("b1", "u1", "Running")));
        counter.backup_event(&Event::InitDone);
        assert_eq!(counted(&metrics, "completed"), 0);
        // The watch sees b1 enter Completed: counted, whether or not the reconcile that wrote
        // it went on to fail (reconciles count nothing any more).
        counter.backup_event(&Event::Apply(done("b1", "u1")));
        assert_eq!(counted(&metrics, "completed"), 1);
        let text = metrics.render();
        assert!(
            text.contains("cairn_backup_duration_seconds_sum{namespace=\"db\",policy=\"pg-policy\",method=\"pg-basebackup\",schedule=\"daily\"} 90.0")
                && text.contains("cairn_backup_size_bytes_sum{namespace=\"db\",policy=\"pg-policy\",method=\"pg-basebackup\",schedule=\"daily\"} 2048.0"),
            "{text}"
        );
        // Written again (a retried reconcile, a new leader's first reconcile): not again.
        counter.backup_event(&Event::Apply(done("b1", "u1")));
        assert_eq!(counted(&metrics, "completed"), 1);
        // The watch broke and relists: b1 is known; b2 failed meanwhile and counts once.
        counter.backup_event(&Event::Init);
        counter.backup_event(&Event::InitApply(done("b1", "u1")));
        counter.backup_event(&Event::InitApply(in_phase("b2", "u2", "Failed")));
        counter.backup_event(&Event::InitDone);
        counter.backup_event(&Event::Apply(in_phase("b2", "u2", "Failed")));
        assert_eq!(
            (counted(&metrics, "completed"), counted(&metrics, "failed")),
            (1, 1)
        );
        // A continuous Backup reopened and completed again finishes again.
        counter.backup_event(&Event::Apply(done("pitr", "u3")));
        counter.backup_event(&Event::Apply(in_phase("pitr", "u3", "Running")));
        counter.backup_event(&Event::Apply(done("pitr", "u3")));
        assert_eq!(counted(&metrics, "completed"), 3);
        // A finished Backup being deleted, its deletion failing: nothing more.
        counter.backup_event(&Event::Apply(in_phase("b2", "u2", "Deleting")));
        counter.backup_event(&Event::Apply(in_phase("b2", "u2", "Failed")));
        assert_eq!(counted(&metrics, "failed"), 1);
        // Deleted objects are forgotten, and a relist forgets those it no longer lists: the
        // set holds only the finished objects that exist.
        counter.backup_event(&Event::Delete(done("b1", "u1")));
        counter.backup_event(&Event::Init);
        counter.backup_event(&Event::InitApply(done("pitr", "u3")));
        counter.backup_event(&Event::InitDone);
        let known = counter.backups.lock().unwrap().finished.clone();
        assert_eq!(known, HashSet::from(["u3".to_string()]));

        // A restarted control plane counts none of what finished before it started.
        let restarted = Metrics::new();
        let counter = restarted.finish_counter(|| true);
        counter.backup_event(&Event::Init);
        for b in [
            done("b1", "u1"),
            in_phase("b2", "u2", "Failed"),
            done("pitr", "u3"),
        ] {
            counter.backup_event(&Event::InitApply(b));
        }
        counter.backup_event(&Event::InitDone);
        counter.backup_event(&Event::Apply(done("b1", "u1")));
        assert_eq!(
            (
                counted(&restarted, "completed"),
                counted(&restarted, "failed")
            ),
            (0, 0)
        );
    }

    #[test]
    fn only_the_leader_counts_a_finish_and_a_new_leader_does_not_count_it_again() {
        use kube::runtime::watcher::Event;
        use std::sync::atomic::{AtomicBool, Ordering};
        let leading = Arc::new(AtomicBool::new(false));
        let metrics = Metrics::new();
        let counter = metrics.finish_counter({
            let leading = leading.clone();
            move || leading.load(Ordering::SeqCst)
        });
        counter.backup_event(&Event::Init);
        counter.backup_event(&Event::InitDone);
        // A follower sees the finish the leader counted.
        counter.backup_event(&Event::Apply(done("b1", "u1")));
        assert_eq!(counted(&metrics, "completed"), 0);
        // It becomes leader and reconciles b1 again (its status re-written): not counted.
        leading.store(true, Ordering::SeqCst);
        counter.backup_event(&Event::Apply(done("b1", "u1")));
        assert_eq!(counted(&metrics, "completed"), 0);
        counter.backup_event(&Event::Apply(done("b2", "u2")));
        assert_eq!(counted(&metrics, "completed"), 1);
    }

    #[test]
    fn a_deleted_policys_series_go_with_it() {
        use kube::runtime::watcher::Event;
        let policy = |namespace: &str, name: &str| -> BackupPolicy {
            serde_json::from_value(serde_json::json!({
                "apiVersion": "dataprotection.kubeblocks.io/v1alpha1",
                "kind": "BackupPolicy",
                "metadata": {"name": name, "namespace": namespace},
                "spec": {"backupMethods": []},
            }))
            .unwrap()
        };
        let metrics = Metrics::new();
        let counter = metrics.finish_counter(|| true);
        counter.backup_event(&Event::Init);
        counter.backup_event(&Event::InitDone);
        counter.backup_event(&Event::Apply(done("b1", "u1")));
        counter.backup_event(&Event::Apply(in_phase("b2", "u2", "Failed")));
        let mut other = done("b3", "u3");
        other.spec.backup_policy_name = "other-policy".into();
        counter.backup_event(&Event::Apply(other));
        assert_eq!(
            (counted(&metrics, "completed"), counted(&metrics, "failed")),
            (1, 1)
        );
        // Another namespace's policy of the same name, then the policy itself.
        counter.policy_event(&Event::Delete(policy("elsewhere", "pg-policy")));
        assert_eq!(counted(&metrics, "completed"), 1);
        counter.policy_event(&Event::Delete(policy("db", "pg-policy")));
        let text = metrics.render();
        assert!(!text.contains("policy=\"pg-policy\""), "{text}");
        assert!(
            text.contains("cairn_backups_total{namespace=\"db\",policy=\"other-policy\""),
            "{text}"
        );
        // Counted again from zero if it comes back.
        counter.backup_event(&Event::Apply(done("b4", "u4")));
        assert_eq!(counted(&metrics, "completed"), 1);
    }

    #[test]
    fn a_finished_restore_is_counted_once_with_its_backups_policy_and_method() {
        use kube::runtime::watcher::Event;
        let restore = |phase: &str| -> Restore {
            serde_json::from_value(serde_json::json!({
                "apiVersion": "dataprotection.kubeblocks.io/v1alpha1",
                "kind": "Restore",
                "metadata": {"name": "r1", "namespace": "db", "uid": "r-uid"},
                "spec": {"backup": {"name": "b1", "namespace": "db"}},
                "status": {"phase": phase, "startTimestamp": "2026-01-01T00:00:00Z",
                           "completionTimestamp": "2026-01-01T00:00:07Z"},
            }))
            .unwrap()
        };
        let metrics = Metrics::new();
        let counter = metrics.finish_counter(|| true);
        let source = done("b1", "u1");
        counter.find_sources(move |namespace, name| {
            (namespace == "db" && name == "b1").then(|| source.clone())
        });
        counter.restore_event(&Event::Init);
        counter.restore_event(&Event::InitApply(restore("Running")));
        counter.restore_event(&Event::InitDone);
        counter.restore_event(&Event::Apply(restore("Failed")));
        counter.restore_event(&Event::Apply(restore("Failed")));
        let text = metrics.render();
        for line in [
            "cairn_restores_total{namespace=\"db\",policy=\"pg-policy\",method=\"pg-basebackup\",outcome=\"failed\"} 1",
            "cairn_restore_duration_seconds_sum{namespace=\"db\",policy=\"pg-policy\",method=\"pg-basebackup\"} 7.0",
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

    /// What `CairnNoSuccessfulBackup` compares the last success with: each enabled entry's
    /// interval and start; disabled and continuous entries have neither.
    #[test]
    fn enabled_schedule_entries_export_their_interval_and_start() {
        let schedule: BackupSchedule = serde_json::from_value(serde_json::json!({
            "apiVersion": "dataprotection.kubeblocks.io/v1alpha1", "kind": "BackupSchedule",
            "metadata": {"name": "nightly", "namespace": "db",
                         "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"backupPolicyName": "pg-policy", "schedules": [
                {"backupMethod": "dump", "cronExpression": "0 * * * *", "enabled": true},
                {"backupMethod": "basebackup", "cronExpression": "30 2 * * *", "enabled": true},
                {"backupMethod": "files", "cronExpression": "0 * * * *", "enabled": false},
                {"backupMethod": "wal", "cronExpression": "*/5 * * * *", "enabled": true}
            ]}
        }))
        .unwrap();
        let policy: BackupPolicy = serde_json::from_value(serde_json::json!({
            "apiVersion": "dataprotection.kubeblocks.io/v1alpha1", "kind": "BackupPolicy",
            "metadata": {"name": "pg-policy", "namespace": "db"},
            "spec": {"backupMethods": [
                {"name": "dump", "actionSetName": "pg-dump"},
                {"name": "basebackup", "actionSetName": "pg-dump"},
                {"name": "files", "actionSetName": "pg-dump"},
                {"name": "wal", "actionSetName": "pg-wal"}
            ]}
        }))
        .unwrap();
        let actionset = |name: &str, kind: &str| -> ActionSet {
            serde_json::from_value(serde_json::json!({
                "apiVersion": "dataprotection.kubeblocks.io/v1alpha1", "kind": "ActionSet",
                "metadata": {"name": name},
                "spec": {"backupType": kind,
                         "backup": {"backupData": {"image": "x", "command": ["x"]}}}
            }))
            .unwrap()
        };
        let actionsets = vec![
            actionset("pg-dump", "Full"),
            actionset("pg-wal", "Continuous"),
        ];
        let mut metrics = Metrics::new();
        metrics.observe_schedules(move || {
            scheduled_entries(
                std::slice::from_ref(&schedule),
                |namespace, name| {
                    (namespace == "db" && name == "pg-policy").then(|| policy.clone())
                },
                &actionsets,
            )
        });
        let text = metrics.render();
        let series = |name: &str, method: &str, value: &str| {
            format!(
                "cairn_backup_schedule_{name}{{namespace=\"db\",policy=\"pg-policy\",method=\"{method}\",schedule=\"nightly\"}} {value}"
            )
        };
        for line in [
            series("interval_seconds", "dump", "3600.0"),
            series("interval_seconds", "basebackup", "86400.0"),
            series("start_timestamp_seconds", "dump", "1767225600.0"),
            series("start_timestamp_seconds", "basebackup", "1767225600.0"),
        ] {
            assert!(text.contains(&line), "missing {line:?} in\n{text}");
        }
        assert!(!text.contains("method=\"files\""), "disabled: {text}");
        assert!(!text.contains("method=\"wal\""), "continuous: {text}");
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
