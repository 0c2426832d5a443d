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
    /// The earliest and latest point a point-in-time restore can reach, per policy (unix s).
    pub recoverable_first: Family<WindowLabel, Gauge>,
    pub recoverable_last: Family<WindowLabel, Gauge>,
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
            recoverable_first,
            recoverable_last,
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
}
