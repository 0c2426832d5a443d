//! One Backup, and one Restore, is one OpenTelemetry trace across processes: the control
//! plane's reconciles and dispatch, the agent's action and the storage socket calls that write
//! (or read) the repository all carry the object's uid as their trace id, exported over
//! OTLP/gRPC to a collector (a small `TraceService` server in this test,
//! [`cairn_e2e::otlp::Collector`]) by the real processes, configured only by the standard
//! `OTEL_*` variables. A public API call with a W3C `traceparent` continues the caller's trace.
//! The overhead of tracing on backup throughput is measured by `bench-tracing` (bench/README.md).

use std::time::Duration;

use cairn_e2e::otlp::{Collector, has};
use cairn_e2e::stack::run_with;
use cairn_e2e::{dp, grpc_api, scenario};
use kube::ResourceExt;
use tonic::Request;

const NS: &str = "shop";

/// The environment that sends the processes' spans to `endpoint` within a fraction of a second.
fn exporting_to(endpoint: &str) -> Vec<(String, String)> {
    vec![
        ("OTEL_EXPORTER_OTLP_ENDPOINT".into(), endpoint.into()),
        // Export within a fraction of a second instead of every 5 s.
        ("OTEL_BSP_SCHEDULE_DELAY".into(), "200".into()),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_backup_is_one_trace_across_control_plane_agent_and_repository() -> anyhow::Result<()> {
    let (collector, endpoint, server) = Collector::start().await?;
    let configure = |options: &mut cairn_cli::standalone::StackOptions| {
        options.env = exporting_to(&endpoint);
    };
    let result = run_with("tracing", configure, async |stack| {
        let workload = scenario::workload(stack, NS, "db", 256 << 10).await?;
        let policy = scenario::file_policy(stack, &workload, "db-files", "files", "", "").await?;
        scenario::backup(stack, NS, "traced", &policy.name, &policy.method, "Delete").await?;
        let backup =
            dp::backup_completed(&stack.client, NS, "traced", Duration::from_secs(120)).await?;
        let trace_id: String = backup.uid().unwrap_or_default().replace('-', "");
        anyhow::ensure!(trace_id.len() == 32, "the Backup has a uid: {trace_id:?}");

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_restore_is_one_trace_across_control_plane_agent_and_repository() -> anyhow::Result<()>
{
    let (collector, endpoint, server) = Collector::start().await?;
    let configure = |options: &mut cairn_cli::standalone::StackOptions| {
        options.env = exporting_to(&endpoint);
    };
    let result = run_with("tracing-restore", configure, async |stack| {
        let workload = scenario::workload(stack, NS, "db", 256 << 10).await?;
        let policy = scenario::file_policy(stack, &workload, "db-files", "files", "", "").await?;
        scenario::backup(stack, NS, "source", &policy.name, &policy.method, "Delete").await?;
        let backup =
            dp::backup_completed(&stack.client, NS, "source", Duration::from_secs(120)).await?;
        let backup_trace = backup.uid().unwrap_or_default().replace('-', "");
        scenario::restore(stack, NS, "traced", "source", "data-db-restored").await?;
        let restore =
            dp::restore_completed(&stack.client, NS, "traced", Duration::from_secs(180)).await?;
        let trace_id: String = restore.uid().unwrap_or_default().replace('-', "");
        anyhow::ensure!(trace_id.len() == 32, "the Restore has a uid: {trace_id:?}");
        anyhow::ensure!(trace_id != backup_trace, "a Restore is its own trace");

        let spans = collector
            .wait_for(
                "the Restore's trace spans the control plane, the agent and the repository",
                &trace_id,
                |spans| {
                    has(spans, "cairn-control-plane", "reconcile Restore", "")
                        && has(spans, "cairn-agent", "action", "")
                        && has(spans, "cairn-agent", "storage", "get")
                },
            )
            .await?;
        let reconciles = spans
            .iter()
            .filter(|s| s.name == "reconcile Restore")
            .count();
        anyhow::ensure!(
            reconciles >= 2,
            "several reconciles of the Restore are in its trace: {spans:#?}"
        );
        // Nothing of the Restore lands in the Backup's trace, nor of the Backup in the Restore's.
        anyhow::ensure!(
            !has(&spans, "cairn-control-plane", "reconcile Backup", ""),
            "the Backup's reconciles are not in the Restore's trace: {spans:#?}"
        );
        let backup_spans = collector.in_trace(&backup_trace);
        anyhow::ensure!(
            !has(
                &backup_spans,
                "cairn-control-plane",
                "reconcile Restore",
                ""
            ),
            "the Restore's spans are not in the Backup's trace: {backup_spans:#?}"
        );
        Ok(())
    })
    .await;
    server.abort();
    result
}
