//! The public gRPC API across processes (docs/API.md): a ServiceAccount token from the real
//! `kubectl create token`, verified by TokenReview and authorised by SubjectAccessReview in
//! localkube; a backup created and watched to Completed with its progress through the API and
//! seen by kubectl; refusals in another namespace, without credentials and for invalid input.

use std::time::{Duration, Instant};

use cairn_e2e::grpc_api::{backups, channel, rbac_manifest, token, with_token};
use cairn_e2e::{dp, run, scenario};
use cairn_proto::api::v1 as pb;
use tonic::Code;
use tonic_types::StatusExt as _;

const NS: &str = "team-a";
const OTHER: &str = "team-b";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_orchestrator_backs_up_through_the_api_within_its_rbac() -> anyhow::Result<()> {
    run("public-api", async |stack| {
        let workload = scenario::workload(stack, NS, "db", 48 << 20).await?;
        let policy = scenario::file_policy(stack, &workload, "db-files", "files", "", "").await?;
        stack.ensure_namespace(OTHER).await?;
        stack
            .kubectl
            .apply(&rbac_manifest(NS, "orch", &["create", "get", "list", "watch", "delete"]))
            .await?;
        let token = token(&stack.kubectl, NS, "orch").await?;
        let channel = channel(&stack.data_dir).await?;
        let mut client = backups(&channel);
        let create = |ns: &str, name: &str, retention: &str| pb::CreateBackupRequest {
            namespace: ns.into(),
            name: name.into(),
            spec: Some(pb::BackupSpec {
                backup_policy_name: policy.name.clone(),
                backup_method: policy.method.clone(),
                retention_period: retention.into(),
                ..Default::default()
            }),
            ..Default::default()
        };

        // No credentials: UNAUTHENTICATED.
        let err = client
            .create_backup(create(NS, "anon", ""))
            .await
            .expect_err("a call without credentials is refused");
        anyhow::ensure!(err.code() == Code::Unauthenticated, "{err:?}");

        // Another namespace: PERMISSION_DENIED, naming the user, the verb and the namespace.
        let err = client
            .create_backup(with_token(create(OTHER, "elsewhere", ""), &token)?)
            .await
            .expect_err("a backup in another namespace is refused");
        anyhow::ensure!(err.code() == Code::PermissionDenied, "{err:?}");
        anyhow::ensure!(
            err.message().contains("system:serviceaccount:team-a:orch")
                && err.message().contains("create")
                && err.message().contains(OTHER),
            "the refusal says who may not do what where: {}",
            err.message()
        );
        let info = err.get_details_error_info().expect("ErrorInfo details");
        anyhow::ensure!(info.metadata.get("namespace").map(String::as_str) == Some(OTHER));
        // kubectl auth can-i answers the same for the same token.
        let can_i = |ns: &'static str| {
            let kubectl = &stack.kubectl;
            let token = token.clone();
            async move {
                kubectl
                    .output(
                        &["--token", &token, "auth", "can-i", "create", "backups.dataprotection.kubeblocks.io", "-n", ns],
                        None,
                    )
                    .await
            }
        };
        anyhow::ensure!(can_i(OTHER).await?.stdout.trim() == "no");
        anyhow::ensure!(can_i(NS).await?.stdout.trim() == "yes");

        // Invalid input: INVALID_ARGUMENT with a field violation naming the field and the value.
        let err = client
            .create_backup(with_token(create(NS, "bad", "7x"), &token)?)
            .await
            .expect_err("an invalid retention period is refused");
        anyhow::ensure!(err.code() == Code::InvalidArgument, "{err:?}");
        let bad = err.get_details_bad_request().expect("BadRequest details");
        anyhow::ensure!(
            bad.field_violations
                .iter()
                .any(|v| v.field == "spec.retention_period" && v.description.contains("7x")),
            "field violations: {:?}",
            bad.field_violations
        );

        // Create and watch to Completed, with progress.
        let started = Instant::now();
        let made = client
            .create_backup(with_token(create(NS, "db-1", "7d"), &token)?)
            .await?
            .into_inner();
        let meta = made.metadata.unwrap_or_default();
        anyhow::ensure!(meta.name == "db-1" && !meta.uid.is_empty());
        let mut stream = client
            .watch_backup(with_token(
                pb::WatchBackupRequest {
                    namespace: NS.into(),
                    name: "db-1".into(),
                    resource_version: String::new(),
                },
                &token,
            )?)
            .await?
            .into_inner();
        let mut events = Vec::new();
        // Watch latency: from the control plane's write of status.progress (its updateTime)
        // to this client receiving the event (same host clock).
        let mut latencies_ms = Vec::new();
        while let Some(event) =
            tokio::time::timeout(Duration::from_secs(120), stream.message()).await??
        {
            let now = jiff::Timestamp::now();
            if let Some(updated) = event
                .backup
                .as_ref()
                .and_then(|b| b.status.as_ref())
                .filter(|s| s.phase == "Running")
                .and_then(|s| s.progress.as_ref())
                .and_then(|p| p.update_time.as_ref())
                && event.r#type == pb::EventType::Modified as i32
            {
                let written = jiff::Timestamp::new(updated.seconds, updated.nanos)?;
                latencies_ms.push(now.duration_since(written).as_millis_f64());
            }
            let last = event.r#final;
            events.push(event);
            if last {
                break;
            }
        }
        let elapsed = started.elapsed();
        let first = events.first().expect("at least one event");
        anyhow::ensure!(first.r#type == pb::EventType::Initial as i32);
        let last = events.last().expect("a final event");
        anyhow::ensure!(last.r#final, "the stream ended with a final event");
        let status = last
            .backup
            .clone()
            .and_then(|b| b.status)
            .unwrap_or_default();
        anyhow::ensure!(status.phase == "Completed", "final status: {status:?}");
        let progress = status.progress.unwrap_or_default();
        anyhow::ensure!(
            progress.bytes_done > 0 && progress.bytes_total == Some(progress.bytes_done),
            "the final progress counts the bytes: {progress:?}"
        );
        let progress_events = events
            .iter()
            .filter(|e| {
                e.backup
                    .as_ref()
                    .and_then(|b| b.status.as_ref())
                    .is_some_and(|s| s.phase == "Running" && s.progress.is_some())
            })
            .count();
        latencies_ms.sort_by(f64::total_cmp);
        eprintln!(
            "public API: create -> Completed in {elapsed:?} through the API, {} events, {progress_events} with running progress; progress write -> client latency ms (sorted): {latencies_ms:?}",
            events.len()
        );
        // The API is a view over the CR: kubectl sees the same Backup.
        let shown = stack.kubectl.run(&["get", "backup", "db-1", "-n", NS]).await?;
        anyhow::ensure!(shown.contains("Completed"), "kubectl get backup: {shown}");

        // A watch resumed from the first event's version replays the changes after it, up to
        // the same final status.
        let from = first
            .backup
            .as_ref()
            .and_then(|b| b.metadata.as_ref())
            .map(|m| m.resource_version.clone())
            .unwrap_or_default();
        let mut resumed = client
            .watch_backup(with_token(
                pb::WatchBackupRequest {
                    namespace: NS.into(),
                    name: "db-1".into(),
                    resource_version: from,
                },
                &token,
            )?)
            .await?
            .into_inner();
        let mut replayed = Vec::new();
        while let Some(event) =
            tokio::time::timeout(Duration::from_secs(30), resumed.message()).await??
        {
            replayed.push(event);
        }
        anyhow::ensure!(
            replayed.first().map(|e| e.r#type) == Some(pb::EventType::Modified as i32)
                && replayed.last().is_some_and(|e| e.r#final),
            "the resumed watch replays MODIFIED events up to the final one: {} events",
            replayed.len()
        );
        let got = client
            .get_backup(with_token(
                pb::GetBackupRequest {
                    namespace: NS.into(),
                    name: "missing".into(),
                },
                &token,
            )?)
            .await
            .expect_err("a missing backup is NOT_FOUND");
        anyhow::ensure!(got.code() == Code::NotFound, "{got:?}");
        let listed = client
            .list_backups(with_token(
                pb::ListBackupsRequest {
                    namespace: NS.into(),
                    ..Default::default()
                },
                &token,
            )?)
            .await?
            .into_inner();
        anyhow::ensure!(listed.backups.len() == 1, "{listed:?}");

        // Beside it, the same backup through kubectl, waited for with a kube-rs watch.
        let started = Instant::now();
        scenario::backup(stack, NS, "db-k", &policy.name, &policy.method, "Delete").await?;
        dp::backup_completed(&stack.client, NS, "db-k", Duration::from_secs(120)).await?;
        eprintln!("kubectl: create -> Completed in {:?}", started.elapsed());

        // The Python example (grpcio from PyPI) does the same as an orchestrator would.
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/python/backup_client.py");
        let data_dir = stack.data_dir.display().to_string();
        let python = tokio::process::Command::new("python3")
            .args([
                script,
                "--data-dir",
                &data_dir,
                "--namespace",
                NS,
                "--other-namespace",
                OTHER,
                "--policy",
                &policy.name,
                "--method",
                &policy.method,
                "--name",
                "db-py",
            ])
            .env("CAIRN_API_TOKEN", &token)
            .output()
            .await?;
        let out = String::from_utf8_lossy(&python.stdout);
        anyhow::ensure!(
            python.status.success(),
            "the Python example failed:\n{out}\n{}",
            String::from_utf8_lossy(&python.stderr)
        );
        let summary: serde_json::Value =
            serde_json::from_str(out.lines().last().unwrap_or_default())?;
        anyhow::ensure!(
            summary["phase"] == "Completed" && summary["other_namespace"] == "PERMISSION_DENIED",
            "{summary}"
        );
        eprintln!("Python example: {summary}");
        Ok(())
    })
    .await
}
