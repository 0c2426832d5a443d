//! The agent's Prometheus metrics, served on `/metrics` by [`crate::health`].
//!
//! One registry per process ([`metrics`]): the socket handlers, the action runtime and the
//! session count into it without being handed a handle.
//! - `cairn_agent_actions_running{kind}`: actions running now, by kind (`exec`, `job`...).
//! - `cairn_agent_actions_finished_total{kind,outcome}`.
//! - `cairn_agent_bytes_moved_total{direction}`: bytes `datasafed` pushed into (`push`) and
//!   pulled from (`pull`) the repository through the storage socket.
//! - `cairn_agent_socket_requests_total{rpc,code}`: storage socket calls by gRPC code.
//! - `cairn_agent_storage_errors_total{rpc}`: calls the repository (the storage backend, or
//!   opening it) failed.
//! - `cairn_agent_session_connected`: 1 while a session with the control plane is open.

use std::sync::LazyLock;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FinishedLabels {
    pub kind: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DirectionLabel {
    pub direction: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub rpc: String,
    pub code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RpcLabel {
    pub rpc: String,
}

/// Every metric of the agent.
pub struct AgentMetrics {
    registry: Registry,
    pub actions_running: Family<KindLabel, Gauge>,
    pub actions_finished: Family<FinishedLabels, Counter>,
    pub bytes_moved: Family<DirectionLabel, Counter>,
    pub socket_requests: Family<RequestLabels, Counter>,
    pub storage_errors: Family<RpcLabel, Counter>,
    pub session_connected: Gauge,
}

impl Default for AgentMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl AgentMetrics {
    /// Registers every metric under the `cairn_agent_` prefix.
    pub fn new() -> AgentMetrics {
        let mut registry = Registry::with_prefix("cairn_agent");
        let actions_running = Family::<KindLabel, Gauge>::default();
        let actions_finished = Family::<FinishedLabels, Counter>::default();
        let bytes_moved = Family::<DirectionLabel, Counter>::default();
        let socket_requests = Family::<RequestLabels, Counter>::default();
        let storage_errors = Family::<RpcLabel, Counter>::default();
        let session_connected = Gauge::default();
        registry.register(
            "actions_running",
            "Actions running on this node, by kind",
            actions_running.clone(),
        );
        registry.register(
            "actions_finished",
            "Actions finished on this node, by kind and outcome",
            actions_finished.clone(),
        );
        registry.register(
            "bytes_moved",
            "Bytes pushed into (push) and pulled from (pull) repositories through the storage socket",
            bytes_moved.clone(),
        );
        registry.register(
            "socket_requests",
            "Storage socket calls by RPC and gRPC code",
            socket_requests.clone(),
        );
        registry.register(
            "storage_errors",
            "Storage socket calls the repository failed, by RPC",
            storage_errors.clone(),
        );
        registry.register(
            "session_connected",
            "1 while a session with the control plane is open",
            session_connected.clone(),
        );
        AgentMetrics {
            registry,
            actions_running,
            actions_finished,
            bytes_moved,
            socket_requests,
            storage_errors,
            session_connected,
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

    /// Counts bytes moved in `direction` (`push` or `pull`).
    pub fn moved(&self, direction: &str, bytes: u64) {
        self.bytes_moved
            .get_or_create(&DirectionLabel {
                direction: direction.into(),
            })
            .inc_by(bytes);
    }

    /// Counts one storage socket call that ended with `code`.
    pub fn request(&self, rpc: &str, code: tonic::Code) {
        self.socket_requests
            .get_or_create(&RequestLabels {
                rpc: rpc.into(),
                code: format!("{code:?}"),
            })
            .inc();
    }

    /// Counts one call the repository failed.
    pub fn storage_error(&self, rpc: &str) {
        self.storage_errors
            .get_or_create(&RpcLabel { rpc: rpc.into() })
            .inc();
    }

    /// Marks an action of `kind` running until the returned guard is dropped.
    pub fn running(&'static self, kind: &str) -> Running {
        let label = KindLabel { kind: kind.into() };
        self.actions_running.get_or_create(&label).inc();
        Running {
            metrics: self,
            label,
        }
    }
}

/// An action counted as running; dropping it counts it out.
pub struct Running {
    metrics: &'static AgentMetrics,
    label: KindLabel,
}

impl Running {
    /// Counts the action finished with `outcome` (it stops running when dropped).
    pub fn finished(&self, outcome: &str) {
        self.metrics
            .actions_finished
            .get_or_create(&FinishedLabels {
                kind: self.label.kind.clone(),
                outcome: outcome.into(),
            })
            .inc();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.metrics
            .actions_running
            .get_or_create(&self.label)
            .dec();
    }
}

static METRICS: LazyLock<AgentMetrics> = LazyLock::new(AgentMetrics::new);

/// This process's metrics.
pub fn metrics() -> &'static AgentMetrics {
    &METRICS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_running_action_is_counted_until_it_ends() {
        let metrics: &'static AgentMetrics = Box::leak(Box::new(AgentMetrics::new()));
        let running = metrics.running("job");
        assert!(
            metrics
                .render()
                .contains("cairn_agent_actions_running{kind=\"job\"} 1"),
            "{}",
            metrics.render()
        );
        running.finished("succeeded");
        drop(running);
        let text = metrics.render();
        assert!(
            text.contains("cairn_agent_actions_running{kind=\"job\"} 0"),
            "{text}"
        );
        assert!(
            text.contains(
                "cairn_agent_actions_finished_total{kind=\"job\",outcome=\"succeeded\"} 1"
            ),
            "{text}"
        );
    }

    #[test]
    fn requests_bytes_and_storage_errors_appear_by_label() {
        let metrics = AgentMetrics::new();
        metrics.request("put", tonic::Code::Ok);
        metrics.request("get", tonic::Code::NotFound);
        metrics.moved("push", 10);
        metrics.moved("push", 5);
        metrics.storage_error("get");
        let text = metrics.render();
        for line in [
            "cairn_agent_socket_requests_total{rpc=\"put\",code=\"Ok\"} 1",
            "cairn_agent_socket_requests_total{rpc=\"get\",code=\"NotFound\"} 1",
            "cairn_agent_bytes_moved_total{direction=\"push\"} 15",
            "cairn_agent_storage_errors_total{rpc=\"get\"} 1",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
    }
}
