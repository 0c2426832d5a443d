//! Logs and OpenTelemetry traces of Cairn's binaries (README, "Observability").
//!
//! - [`init`] installs the log subscriber (`RUST_LOG`, text or JSON) and, when the standard
//!   `OTEL_*` variables ask for it ([`export_requested`]), a `tracing-opentelemetry` layer that
//!   exports every span over OTLP/gRPC. Nothing is exported, and no exporter is even built,
//!   when neither `OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` nor
//!   `OTEL_TRACES_EXPORTER=otlp` is set.
//! - W3C trace context (`traceparent`) crosses processes in the agent protocol's
//!   `Action.traceparent` (PROTOCOL.md §2.4) and in the public API's gRPC metadata:
//!   [`traceparent`] writes the current span's, [`join`] makes a span continue one.
//! - [`join_object`] puts every span of one Kubernetes object (a Backup, a Restore) in one
//!   trace whose id is the object's uid, so the trace is the same across reconciles, restarts
//!   and leader changes without storing anything.

use std::collections::HashMap;

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{
    SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState, TracerProvider as _,
};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::Layer;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Why telemetry could not start.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The OTLP exporter could not be built (a bad endpoint, protocol or header variable).
    #[error("building the OTLP trace exporter (OTEL_EXPORTER_OTLP_* variables)")]
    Exporter(#[from] opentelemetry_otlp::ExporterBuildError),
    /// A global log subscriber was already installed.
    #[error("installing the log subscriber")]
    Subscriber(#[from] tracing_subscriber::util::TryInitError),
}

/// Whether the environment asks for trace export: `OTEL_TRACES_EXPORTER` lists `otlp`, or (when
/// it is unset) an OTLP endpoint is set; `OTEL_SDK_DISABLED=true` and
/// `OTEL_TRACES_EXPORTER=none` turn it off.
pub fn export_requested(env: impl Fn(&str) -> Option<String>) -> bool {
    let set = |key: &str| env(key).filter(|v| !v.trim().is_empty());
    if set("OTEL_SDK_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true")) {
        return false;
    }
    match set("OTEL_TRACES_EXPORTER") {
        Some(exporters) => exporters.split(',').any(|e| e.trim() == "otlp"),
        None => {
            set("OTEL_EXPORTER_OTLP_ENDPOINT").is_some()
                || set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").is_some()
        }
    }
}

/// The running trace export; [`Telemetry::shutdown`] flushes the spans still buffered.
#[derive(Debug, Default)]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Whether spans are exported.
    pub fn exporting(&self) -> bool {
        self.provider.is_some()
    }

    /// Exports what is buffered and stops the exporter.
    pub fn shutdown(self) {
        if let Some(provider) = self.provider
            && let Err(err) = provider.shutdown()
        {
            eprintln!("flushing the OpenTelemetry spans failed: {err}");
        }
    }
}

/// Installs the global log subscriber (`RUST_LOG`, default `info`; JSON lines when `json`) and,
/// when [`export_requested`], OTLP trace export naming the process `service` (unless
/// `OTEL_SERVICE_NAME` names it). Call inside a tokio runtime: the gRPC exporter needs one.
pub fn init(service: &'static str, json: bool) -> Result<Telemetry, TelemetryError> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let fmt = if json {
        tracing_subscriber::fmt::layer().json().boxed()
    } else {
        tracing_subscriber::fmt::layer().boxed()
    };
    let provider = if export_requested(|key| std::env::var(key).ok()) {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .build()?;
        let mut resource = opentelemetry_sdk::Resource::builder();
        if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
            resource = resource.with_service_name(service);
        }
        Some(
            SdkTracerProvider::builder()
                .with_batch_exporter(exporter)
                .with_resource(resource.build())
                .build(),
        )
    } else {
        None
    };
    let otel = provider.as_ref().map(|provider| {
        opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer(service))
            // Spans are exported whatever RUST_LOG says (it filters only the log lines).
            .with_filter(tracing_subscriber::filter::LevelFilter::INFO)
    });
    tracing_subscriber::registry()
        .with(fmt.with_filter(filter))
        .with(otel)
        .try_init()?;
    Ok(Telemetry { provider })
}

/// The W3C `traceparent` of the current span; empty when nothing is exported.
pub fn traceparent() -> String {
    traceparent_of(&tracing::Span::current())
}

/// The W3C `traceparent` of `span`; empty when nothing is exported.
pub fn traceparent_of(span: &tracing::Span) -> String {
    let context = span.context();
    if !context.span().span_context().is_valid() {
        return String::new();
    }
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(&context, &mut carrier);
    carrier.remove("traceparent").unwrap_or_default()
}

/// Makes `span` (not yet entered) continue the trace of the W3C `traceparent`; a blank or
/// malformed value leaves it alone.
pub fn join(span: &tracing::Span, traceparent: &str) {
    if traceparent.trim().is_empty() {
        return;
    }
    let carrier = HashMap::from([("traceparent".to_owned(), traceparent.trim().to_owned())]);
    let context = TraceContextPropagator::new().extract(&carrier);
    if context.span().span_context().is_valid() {
        let _ = span.set_parent(context);
    }
}

/// The trace of a Kubernetes object: its uid (a UUID, 16 bytes) is the trace id, and a span id
/// derived from it stands for the object as the parent of every reconcile span.
pub fn object_context(uid: &str) -> Option<SpanContext> {
    let hex: String = uid.chars().filter(|c| *c != '-').collect();
    let trace_id = TraceId::from_hex(&hex)
        .ok()
        .filter(|t| *t != TraceId::INVALID)?;
    let digest = blake3::hash(uid.as_bytes());
    let mut span_bytes = [0u8; 8];
    span_bytes.copy_from_slice(&digest.as_bytes()[..8]);
    let span_id = SpanId::from_bytes(span_bytes);
    (span_id != SpanId::INVALID).then(|| {
        SpanContext::new(
            trace_id,
            span_id,
            TraceFlags::SAMPLED,
            true,
            TraceState::default(),
        )
    })
}

/// Makes `span` (not yet entered) part of the trace of the object with `uid`.
pub fn join_object(span: &tracing::Span, uid: &str) {
    if let Some(context) = object_context(uid) {
        let _ = span.set_parent(opentelemetry::Context::new().with_remote_span_context(context));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |key| {
            pairs
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn nothing_is_exported_unless_the_environment_asks() {
        assert!(!export_requested(env(&[])));
        assert!(!export_requested(env(&[(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            " "
        )])));
        assert!(export_requested(env(&[(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "http://collector:4317"
        )])));
        assert!(export_requested(env(&[(
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "http://collector:4317"
        )])));
        assert!(export_requested(env(&[("OTEL_TRACES_EXPORTER", "otlp")])));
        assert!(!export_requested(env(&[
            ("OTEL_TRACES_EXPORTER", "none"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317")
        ])));
        assert!(!export_requested(env(&[
            ("OTEL_SDK_DISABLED", "true"),
            ("OTEL_TRACES_EXPORTER", "otlp")
        ])));
    }

    #[test]
    fn an_objects_trace_id_is_its_uid_and_stays_the_same() {
        let uid = "6f1c2a4e-93b1-4c55-8d0e-1a2b3c4d5e6f";
        let first = object_context(uid).expect("a UUID gives a trace");
        assert_eq!(
            first.trace_id().to_string(),
            "6f1c2a4e93b14c558d0e1a2b3c4d5e6f"
        );
        assert_eq!(object_context(uid), Some(first.clone()));
        assert!(first.is_sampled() && first.is_remote());
        let other = object_context("00000000-0000-4000-8000-000000000001").unwrap();
        assert_ne!(other.span_id(), first.span_id());
        assert_eq!(object_context("not-a-uuid"), None);
        assert_eq!(object_context(""), None);
    }
}
