//! One Backup is one OpenTelemetry trace across processes: the control plane's reconciles and
//! dispatch, the agent's action and the storage socket calls that write the repository all
//! carry the Backup's uid as their trace id, exported over OTLP/gRPC to a collector (a small
//! `TraceService` server in this test) by the real processes, configured only by the standard
//! `OTEL_*` variables. A public API call with a W3C `traceparent` continues the caller's trace.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use cairn_e2e::stack::run_with;
use cairn_e2e::{dp, grpc_api, scenario};
use kube::ResourceExt;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value;
use tonic::{Request, Response, Status};

const NS: &str = "shop";

/// A span as the collector received it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Received {
    service: String,
    trace_id: String,
    name: String,
    rpc: String,
}

/// The collector: keeps every span it is sent.
#[derive(Debug, Clone, Default)]
struct Collector {
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
    /// Serves a collector on a free port: it, its `http://` endpoint and the server task.
    async fn start() -> anyhow::Result<(Collector, String, tokio::task::JoinHandle<()>)> {
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
                eprintln!("the test's OTLP collector stopped: {err}");
            }
        });
        Ok((collector, endpoint, server))
    }

    fn in_trace(&self, trace_id: &str) -> Vec<Received> {
        self.spans
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|s| s.trace_id == trace_id)
            .cloned()
            .collect()
    }

    /// Waits until the spans of `trace_id` satisfy `done`.
    async fn wait_for(
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
                let all = self
                    .spans
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .len();
                anyhow::bail!(
                    "{what}: trace {trace_id} holds {spans:#?} ({all} spans received in all)"
                );
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_backup_is_one_trace_across_control_plane_agent_and_repository() -> anyhow::Result<()> {
    let (collector, endpoint, server) = Collector::start().await?;
    let configure = |options: &mut cairn_cli::standalone::StackOptions| {
        options.env = vec![
            ("OTEL_EXPORTER_OTLP_ENDPOINT".into(), endpoint.clone()),
            // Export within a fraction of a second instead of every 5 s.
            ("OTEL_BSP_SCHEDULE_DELAY".into(), "200".into()),
        ];
    };
    let result = run_with("tracing", configure, async |stack| {
        let workload = scenario::workload(stack, NS, "db", 256 << 10).await?;
        let policy = scenario::file_policy(stack, &workload, "db-files", "files", "", "").await?;
        scenario::backup(stack, NS, "traced", &policy.name, &policy.method, "Delete").await?;
        let backup =
            dp::backup_completed(&stack.client, NS, "traced", Duration::from_secs(120)).await?;
        let trace_id: String = backup.uid().unwrap_or_default().replace('-', "");
        anyhow::ensure!(trace_id.len() == 32, "the Backup has a uid: {trace_id:?}");

        let has = |spans: &[Received], service: &str, name: &str, rpc: &str| {
            spans
                .iter()
                .any(|s| s.service == service && s.name == name && (rpc.is_empty() || s.rpc == rpc))
        };
        let spans = collector
            .wait_for(
                "the Backup's trace spans the control plane, the agent and the repository",
                &trace_id,
                |spans| {
                    has(spans, "cairn-control-plane", "reconcile Backup", "")
                        && has(spans, "cairn-agent", "action", "")
                        && has(spans, "cairn-agent", "storage", "put")
                },
            )
            .await?;
        // Reconciles before and after the action are in the same trace (the uid is the id).
        let reconciles = spans
            .iter()
            .filter(|s| s.name == "reconcile Backup")
            .count();
        anyhow::ensure!(
            reconciles >= 2,
            "several reconciles of the Backup are in its trace: {spans:#?}"
        );

        // The public API continues a caller's trace (here an unauthenticated call, refused).
        let caller_trace = "4bf92f3577b34da6a3ce929d0e0e4736";
        let channel = grpc_api::channel(&stack.data_dir).await?;
        let mut request = Request::new(cairn_proto::api::v1::ListBackupsRequest {
            namespace: NS.into(),
            ..Default::default()
        });
        request.metadata_mut().insert(
            "traceparent",
            format!("00-{caller_trace}-00f067aa0ba902b7-01").parse()?,
        );
        let refused = grpc_api::backups(&channel).list_backups(request).await;
        anyhow::ensure!(refused.is_err(), "a call without a token is refused");
        collector
            .wait_for(
                "the API call joins the caller's trace",
                caller_trace,
                |spans| has(spans, "cairn-control-plane", "api", ""),
            )
            .await?;
        Ok(())
    })
    .await;
    server.abort();
    result
}

/// Backup seconds (start to completion, from the Backup's status) of `runs` backups of a
/// `bytes`-byte workload, in a stack whose processes get `env`.
async fn backup_seconds(
    name: &str,
    env: Vec<(String, String)>,
    bytes: usize,
    runs: usize,
) -> anyhow::Result<Vec<f64>> {
    let mut seconds = Vec::new();
    let out = &mut seconds;
    run_with(
        name,
        |options| options.env = env,
        async move |stack| {
            let workload = scenario::workload(stack, NS, "db", bytes).await?;
            let policy =
                scenario::file_policy(stack, &workload, "db-files", "files", "", "").await?;
            for run in 0..runs {
                let backup = format!("b{run}");
                scenario::backup(stack, NS, &backup, &policy.name, &policy.method, "Delete")
                    .await?;
                let done =
                    dp::backup_completed(&stack.client, NS, &backup, Duration::from_secs(600))
                        .await?;
                let status = done.status.unwrap_or_default();
                let (start, end) = status
                    .start_timestamp
                    .zip(status.completion_timestamp)
                    .ok_or_else(|| anyhow::anyhow!("{backup} has no start or completion time"))?;
                out.push(end.0.duration_since(start.0).as_secs_f64());
            }
            Ok(())
        },
    )
    .await?;
    Ok(seconds)
}

/// The overhead of tracing on backup throughput: the same backups with traces exported to a
/// collector and without (README, "Observability"). A measurement, not a check: run it with
/// `cargo nextest run -p cairn-e2e --run-ignored only -E 'test(tracing_overhead)'
/// --no-capture` (`CAIRN_TRACING_BENCH_MIB`, `CAIRN_TRACING_BENCH_RUNS` size it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement; see the doc comment"]
async fn tracing_overhead_on_backup_throughput() -> anyhow::Result<()> {
    let mib: usize = std::env::var("CAIRN_TRACING_BENCH_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64);
    let runs: usize = std::env::var("CAIRN_TRACING_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let (collector, endpoint, server) = Collector::start().await?;
    let off = backup_seconds("tracing-off", Vec::new(), mib << 20, runs).await?;
    let on = backup_seconds(
        "tracing-on",
        vec![("OTEL_EXPORTER_OTLP_ENDPOINT".into(), endpoint)],
        mib << 20,
        runs,
    )
    .await?;
    server.abort();
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let spans = collector
        .spans
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .len();
    let (off_median, on_median) = (median(off.clone()), median(on.clone()));
    println!(
        "tracing overhead, {runs} backups of {mib} MiB each: off {off:?} s (median {off_median:.2} s, {:.1} MiB/s), on {on:?} s (median {on_median:.2} s, {:.1} MiB/s, {spans} spans exported): {:+.1} %",
        mib as f64 / off_median,
        mib as f64 / on_median,
        (on_median / off_median - 1.0) * 100.0
    );
    anyhow::ensure!(spans > 0, "the traced run exported spans");
    Ok(())
}
