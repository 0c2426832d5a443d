//! An OpenTelemetry collector for tests and benchmarks: a small OTLP/gRPC `TraceService` server
//! on a free loopback port that keeps every span it is sent (its service, trace id, name and
//! `rpc` attribute), so a test can assert which processes' spans one trace holds.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value;
use tonic::{Request, Response, Status};

/// A span as the collector received it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Received {
    /// The exporting process's `service.name`.
    pub service: String,
    /// Lower-case hex.
    pub trace_id: String,
    pub name: String,
    /// The span's `rpc` attribute (storage calls), else empty.
    pub rpc: String,
}

/// The collector: keeps every span it is sent.
#[derive(Debug, Clone, Default)]
pub struct Collector {
    spans: Arc<Mutex<Vec<Received>>>,
}

fn string_value(value: Option<&opentelemetry_proto::tonic::common::v1::AnyValue>) -> String {
    match value.and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        _ => String::new(),
    }
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let mut spans = self.spans.lock().unwrap_or_else(PoisonError::into_inner);
        for resource_spans in request.into_inner().resource_spans {
            let service = resource_spans
                .resource
                .as_ref()
                .and_then(|r| r.attributes.iter().find(|a| a.key == "service.name"))
                .map(|a| string_value(a.value.as_ref()))
                .unwrap_or_default();
            for scope in resource_spans.scope_spans {
                for span in scope.spans {
                    let rpc = span
                        .attributes
                        .iter()
                        .find(|a| a.key == "rpc")
                        .map(|a| string_value(a.value.as_ref()))
                        .unwrap_or_default();
                    spans.push(Received {
                        service: service.clone(),
                        trace_id: span.trace_id.iter().map(|b| format!("{b:02x}")).collect(),
                        name: span.name,
                        rpc,
                    });
                }
            }
        }
        Ok(Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

impl Collector {
    /// Serves a collector on a free port: it, its `http://` endpoint (for
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`) and the server task (abort it when done).
    pub async fn start() -> anyhow::Result<(Collector, String, tokio::task::JoinHandle<()>)> {
        let collector = Collector::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let endpoint = format!("http://{}", listener.local_addr()?);
        let service = TraceServiceServer::new(collector.clone());
        let server = tokio::spawn(async move {
            let served = tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
                .await;
            if let Err(err) = served {
                eprintln!("the OTLP collector stopped: {err}");
            }
        });
        Ok((collector, endpoint, server))
    }

    /// How many spans it has received in all.
    pub fn len(&self) -> usize {
        self.spans
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Whether it has received no span.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The spans of `trace_id`.
    pub fn in_trace(&self, trace_id: &str) -> Vec<Received> {
        self.spans
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|s| s.trace_id == trace_id)
            .cloned()
            .collect()
    }

    /// Waits (up to 90 s) until the spans of `trace_id` satisfy `done`.
    pub async fn wait_for(
        &self,
        what: &str,
        trace_id: &str,
        done: impl Fn(&[Received]) -> bool,
    ) -> anyhow::Result<Vec<Received>> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
        loop {
            let spans = self.in_trace(trace_id);
            if done(&spans) {
                return Ok(spans);
            }
            if tokio::time::Instant::now() > deadline {
                anyhow::bail!(
                    "{what}: trace {trace_id} holds {spans:#?} ({} spans received in all)",
                    self.len()
                );
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

/// Whether `spans` hold one from `service` named `name` (with `rpc`, unless empty).
pub fn has(spans: &[Received], service: &str, name: &str, rpc: &str) -> bool {
    spans
        .iter()
        .any(|s| s.service == service && s.name == name && (rpc.is_empty() || s.rpc == rpc))
}
