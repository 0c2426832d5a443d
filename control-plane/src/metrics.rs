//! Prometheus metrics of the control plane, served on `/metrics`.

use prometheus_client::encoding::EncodeLabelSet;
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
    pub backup: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PhaseLabel {
    pub kind: String,
    pub phase: String,
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
    pub backup_bytes: Counter,
    pub backup_seconds: Histogram,
    pub connected_agents: Gauge,
    /// Running continuous backups: 1 while `timeRange.end` has not advanced for longer than
    /// the stall threshold (condition `ArchiveStalled`), else 0.
    pub continuous_stalled: Family<BackupLabel, Gauge>,
    /// Running continuous backups: `timeRange.end` as unix seconds.
    pub continuous_end: Family<BackupLabel, Gauge>,
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
        let backup_seconds = Histogram::new(exponential_buckets(1.0, 2.0, 16));
        let connected_agents = Gauge::default();
        let continuous_stalled = Family::<BackupLabel, Gauge>::default();
        let continuous_end = Family::<BackupLabel, Gauge>::default();
        registry.register(
            "continuous_backup_stalled",
            "Running continuous backups whose timeRange.end has stopped advancing (1) or not (0)",
            continuous_stalled.clone(),
        );
        registry.register(
            "continuous_backup_end_timestamp_seconds",
            "timeRange.end of running continuous backups, as unix seconds",
            continuous_end.clone(),
        );
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
            "backup_duration_seconds",
            "Durations of completed backups",
            backup_seconds.clone(),
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
            backup_seconds,
            connected_agents,
            continuous_stalled,
            continuous_end,
        }
    }

    /// Records how a continuous backup's archiving goes; forgets it once it is not Running.
    pub fn continuous(
        &self,
        namespace: &str,
        backup: &str,
        running: bool,
        stalled: bool,
        end: Option<i64>,
    ) {
        let label = BackupLabel {
            namespace: namespace.into(),
            backup: backup.into(),
        };
        if !running {
            self.continuous_stalled.remove(&label);
            self.continuous_end.remove(&label);
            return;
        }
        self.continuous_stalled
            .get_or_create(&label)
            .set(i64::from(stalled));
        if let Some(end) = end {
            self.continuous_end.get_or_create(&label).set(end);
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

    #[test]
    fn a_stalled_continuous_backup_shows_until_it_stops_running() {
        let metrics = Metrics::new();
        metrics.continuous("shop", "pitr-1", true, true, Some(1_800_000_000));
        let text = metrics.render();
        assert!(
            text.contains(
                "cairn_continuous_backup_stalled{namespace=\"shop\",backup=\"pitr-1\"} 1"
            ),
            "{text}"
        );
        assert!(text.contains(
            "cairn_continuous_backup_end_timestamp_seconds{namespace=\"shop\",backup=\"pitr-1\"} 1800000000"
        ));
        metrics.continuous("shop", "pitr-1", true, false, Some(1_800_000_060));
        assert!(
            metrics.render().contains(
                "cairn_continuous_backup_stalled{namespace=\"shop\",backup=\"pitr-1\"} 0"
            )
        );
        // Completed or deleted: the series go, so they do not grow with every backup ever run.
        metrics.continuous("shop", "pitr-1", false, false, None);
        assert!(!metrics.render().contains("pitr-1"));
    }
}
