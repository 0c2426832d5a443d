//! The public API's overhead (docs/API.md), on one standalone stack (localkube, the control
//! plane serving the API and an agent as separate release processes):
//!
//! - create → Completed of the same small Backup, alternating three ways in the same run:
//!   through the API (CreateBackup, then WatchBackup to the final event), through kubectl
//!   (`kubectl create -f -`, then `kubectl wait --for=jsonpath={.status.phase}=Completed`) and
//!   through kube-rs (create, then a watch of the object);
//! - watch latency: one backup that moves data for a while (its `status.progress` changes about
//!   once a second), watched at once by a kube-rs watch on the API server and by the API's
//!   WatchBackup; per resourceVersion, the arrival at each client after the control plane wrote
//!   the progress (`status.progress.updateTime`, same host clock), and how much later the API's
//!   event arrived than the kube-rs one.
//!
//! ```text
//! cargo build --release -p localkube -p cairn-control-plane -p cairn-agent -p cairn-cli --bins
//! cargo run --release -p cairn-bench --bin bench-api            # kubectl on PATH
//! ```

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use cairn_api::backup::Backup;
use cairn_cli::standalone::{Stack, StackOptions};
use cairn_proto::api::v1 as pb;
use cairn_proto::api::v1::backup_service_client::BackupServiceClient;
use clap::Parser;
use futures::{StreamExt, TryStreamExt};
use kube::api::{Api, PostParams, WatchEvent, WatchParams};
use serde_json::json;
use tonic::metadata::MetadataValue;
use tonic::transport::{Certificate, Channel, ClientTlsConfig};

const NS: &str = "bench";

/// API overhead benchmark.
#[derive(Debug, Parser)]
struct Args {
    /// Backups measured each way (alternating API, kubectl, kube-rs).
    #[arg(long, default_value_t = 5)]
    reps: usize,
    /// Seconds the watched backup spends pushing (one progress write a second).
    #[arg(long, default_value_t = 12)]
    slow_seconds: u32,
    /// The kubectl binary.
    #[arg(long, default_value = "kubectl")]
    kubectl: String,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// `p50 / p90 / max` of samples in ms.
fn summary(mut samples: Vec<f64>) -> String {
    if samples.is_empty() {
        return "no samples".into();
    }
    samples.sort_by(f64::total_cmp);
    let at =
        |p: f64| samples[((p * samples.len() as f64).ceil() as usize).clamp(1, samples.len()) - 1];
    format!(
        "p50 {:.1} ms, p90 {:.1} ms, max {:.1} ms ({} samples)",
        at(0.5),
        at(0.9),
        samples[samples.len() - 1],
        samples.len()
    )
}

fn kubectl(
    bin: &str,
    kubeconfig: &Path,
    args: &[&str],
    stdin: Option<&str>,
) -> anyhow::Result<String> {
    use std::io::Write as _;
    let mut child = std::process::Command::new(bin)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .with_context(|| format!("running {bin}"))?;
    if let Some(input) = stdin
        && let Some(mut pipe) = child.stdin.take()
    {
        pipe.write_all(input.as_bytes())?;
    }
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "kubectl {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

const SETUP: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: bench}
---
apiVersion: v1
kind: Pod
metadata: {name: db-0, namespace: bench, labels: {app: db}}
spec:
  terminationGracePeriodSeconds: 1
  containers: [{name: main, image: busybox, command: [sleep, "36000"]}]
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: orch, namespace: bench}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: orch, namespace: bench}
rules:
- apiGroups: [dataprotection.kubeblocks.io]
  resources: [backups]
  verbs: [create, get, list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: orch, namespace: bench}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: orch}
subjects: [{kind: ServiceAccount, name: orch}]
---
apiVersion: dataprotection.kubeblocks.io/v1alpha1
kind: BackupPolicy
metadata: {name: db, namespace: bench}
spec:
  target: {podSelector: {matchLabels: {app: db}, strategy: Any}}
  backupMethods:
  - {name: small, actionSetName: small}
  - {name: slow, actionSetName: slow}
"#;

/// An ActionSet `name` whose backup pipes `data` (a shell pipeline) into `datasafed push`.
fn actionset_yaml(name: &str, data: &str) -> String {
    format!(
        r#"---
apiVersion: dataprotection.kubeblocks.io/v1alpha1
kind: ActionSet
metadata: {{name: {name}}}
spec:
  backupType: Full
  backup:
    backupData:
      image: busybox
      runOnTargetPodNode: false
      command: [sh, -c, 'export PATH="$PATH:$DP_DATASAFED_BIN_PATH"; export DATASAFED_BACKEND_BASE_PATH="$DP_BACKUP_BASE_PATH"; {data} | datasafed push - /{name}.bin']
"#
    )
}

fn backup_yaml(name: &str, method: &str) -> String {
    format!(
        "apiVersion: dataprotection.kubeblocks.io/v1alpha1\nkind: Backup\nmetadata: {{name: {name}, namespace: {NS}}}\nspec: {{backupPolicyName: db, backupMethod: {method}, deletionPolicy: Delete}}\n"
    )
}

fn with_token<T>(message: T, token: &str) -> anyhow::Result<tonic::Request<T>> {
    let mut request = tonic::Request::new(message);
    let value: MetadataValue<_> = format!("Bearer {token}").parse()?;
    request.metadata_mut().insert("authorization", value);
    Ok(request)
}

async fn api_channel(data_dir: &Path) -> anyhow::Result<Channel> {
    let endpoint = std::fs::read_to_string(data_dir.join("api/endpoint"))?;
    let ca = std::fs::read_to_string(data_dir.join("api/ca.crt"))?;
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca))
        .domain_name("localhost");
    Ok(
        Channel::from_shared(format!("https://{}", endpoint.trim()))?
            .tls_config(tls)?
            .connect()
            .await?,
    )
}

fn watch_request(name: &str) -> pb::WatchBackupRequest {
    pb::WatchBackupRequest {
        namespace: NS.into(),
        name: name.into(),
        resource_version: String::new(),
    }
}

/// CreateBackup, then WatchBackup until the final event; the final phase.
async fn through_api(
    client: &mut BackupServiceClient<Channel>,
    token: &str,
    name: &str,
) -> anyhow::Result<String> {
    client
        .create_backup(with_token(
            pb::CreateBackupRequest {
                namespace: NS.into(),
                name: name.into(),
                spec: Some(pb::BackupSpec {
                    backup_policy_name: "db".into(),
                    backup_method: "small".into(),
                    deletion_policy: "Delete".into(),
                    ..Default::default()
                }),
                ..Default::default()
            },
            token,
        )?)
        .await?;
    let mut stream = client
        .watch_backup(with_token(watch_request(name), token)?)
        .await?
        .into_inner();
    while let Some(event) = stream.message().await? {
        if event.r#final {
            return Ok(event
                .backup
                .and_then(|b| b.status)
                .map(|s| s.phase)
                .unwrap_or_default());
        }
    }
    bail!("the watch of {name} ended without a final event")
}

/// Create, then a kube-rs watch of the object until Completed or Failed.
async fn through_kube(api: &Api<Backup>, name: &str, method: &str) -> anyhow::Result<String> {
    let made = api
        .create(&PostParams::default(), &backup_object(name, method)?)
        .await?;
    let version = made.metadata.resource_version.clone().unwrap_or_default();
    let params = WatchParams::default().fields(&format!("metadata.name={name}"));
    let mut stream = api.watch(&params, &version).await?.boxed();
    while let Some(event) = stream.try_next().await? {
        if let WatchEvent::Modified(b) | WatchEvent::Added(b) = event {
            let phase = b
                .status
                .and_then(|s| s.phase)
                .map(|p| format!("{p:?}"))
                .unwrap_or_default();
            if phase == "Completed" || phase == "Failed" {
                return Ok(phase);
            }
        }
    }
    bail!("the watch of {name} ended")
}

/// The Backup of [`backup_yaml`], for kube-rs.
fn backup_object(name: &str, method: &str) -> anyhow::Result<Backup> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "dataprotection.kubeblocks.io/v1alpha1", "kind": "Backup",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"backupPolicyName": "db", "backupMethod": method, "deletionPolicy": "Delete"}
    }))?)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::Builder::new()
        .prefix("cairn-bench-api-")
        .tempdir()
        .context("creating a data directory")?;
    eprintln!("starting the stack in {}", dir.path().display());
    let data_dir = dir.path().join("data");
    let mut options = StackOptions::new(&data_dir);
    options.log_filter = "warn".into();
    let stack = Stack::up(options).await?;
    let client = stack.client().await?;
    let kubeconfig = stack.kubeconfig.clone();
    let loops = args.slow_seconds * 4;
    let setup = format!(
        "{}{}---{SETUP}",
        actionset_yaml("small", "head -c 65536 /dev/urandom"),
        actionset_yaml(
            "slow",
            &format!(
                "i=0; while [ $i -lt {loops} ]; do head -c 262144 /dev/urandom; sleep 0.25; i=$((i+1)); done"
            )
        )
    );
    kubectl(
        &args.kubectl,
        &kubeconfig,
        &["apply", "-f", "-"],
        Some(&setup),
    )?;
    let token = kubectl(
        &args.kubectl,
        &kubeconfig,
        &["create", "token", "orch", "-n", NS],
        None,
    )?
    .trim()
    .to_owned();
    let mut grpc = BackupServiceClient::new(api_channel(&data_dir).await?);
    let backups: Api<Backup> = Api::namespaced(client.clone(), NS);

    // Warm-up: connections, caches, the token review.
    through_api(&mut grpc, &token, "warmup").await?;

    eprintln!("measuring {} backups each way", args.reps);
    let (mut by_api, mut by_kubectl, mut by_kube) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..args.reps {
        let name = format!("api-{i}");
        let started = Instant::now();
        let phase = through_api(&mut grpc, &token, &name).await?;
        by_api.push(ms(started.elapsed()));
        anyhow::ensure!(phase == "Completed", "{name}: {phase}");

        let name = format!("kubectl-{i}");
        let started = Instant::now();
        kubectl(
            &args.kubectl,
            &kubeconfig,
            &["create", "-f", "-"],
            Some(&backup_yaml(&name, "small")),
        )?;
        kubectl(
            &args.kubectl,
            &kubeconfig,
            &[
                "wait",
                "-n",
                NS,
                &format!("backup/{name}"),
                "--for=jsonpath={.status.phase}=Completed",
                "--timeout=120s",
            ],
            None,
        )?;
        by_kubectl.push(ms(started.elapsed()));

        let name = format!("kube-{i}");
        let started = Instant::now();
        let phase = through_kube(&backups, &name, "small").await?;
        by_kube.push(ms(started.elapsed()));
        anyhow::ensure!(phase == "Completed", "{name}: {phase}");
    }

    // Watch latency: both watches on the same running backup.
    let slow = "slow";
    let made = backups
        .create(&PostParams::default(), &backup_object(slow, "slow")?)
        .await?;
    let version = made.metadata.resource_version.clone().unwrap_or_default();
    let kube_side = {
        let backups = backups.clone();
        tokio::spawn(async move {
            let mut seen: HashMap<String, (Instant, jiff::Timestamp, Option<jiff::Timestamp>)> =
                HashMap::new();
            let params = WatchParams::default().fields(&format!("metadata.name={slow}"));
            let mut stream = backups.watch(&params, &version).await?.boxed();
            while let Some(event) = stream.try_next().await? {
                let (at, wall) = (Instant::now(), jiff::Timestamp::now());
                if let WatchEvent::Modified(b) = event {
                    let status = b.status.clone().unwrap_or_default();
                    let written = status
                        .progress
                        .as_ref()
                        .and_then(|p| p.update_time.as_ref())
                        .map(|t| t.0);
                    let rv = b.metadata.resource_version.clone().unwrap_or_default();
                    seen.insert(rv, (at, wall, written));
                    if matches!(
                        status.phase,
                        Some(
                            cairn_api::backup::BackupPhase::Completed
                                | cairn_api::backup::BackupPhase::Failed
                        )
                    ) {
                        break;
                    }
                }
            }
            anyhow::Ok(seen)
        })
    };
    let mut api_seen: HashMap<String, (Instant, jiff::Timestamp)> = HashMap::new();
    let mut stream = grpc
        .watch_backup(with_token(watch_request(slow), &token)?)
        .await?
        .into_inner();
    while let Some(event) = stream.message().await? {
        let (at, wall) = (Instant::now(), jiff::Timestamp::now());
        let rv = event
            .backup
            .as_ref()
            .and_then(|b| b.metadata.as_ref())
            .map(|m| m.resource_version.clone())
            .unwrap_or_default();
        if event.r#type == pb::EventType::Modified as i32 {
            api_seen.insert(rv, (at, wall));
        }
        if event.r#final {
            break;
        }
    }
    let kube_seen = kube_side.await??;
    let (mut kube_latency, mut api_latency, mut behind) = (Vec::new(), Vec::new(), Vec::new());
    for (rv, (kube_at, kube_wall, written)) in &kube_seen {
        let Some((api_at, api_wall)) = api_seen.get(rv) else {
            continue;
        };
        behind.push(
            ms(api_at.saturating_duration_since(*kube_at))
                - ms(kube_at.saturating_duration_since(*api_at)),
        );
        if let Some(written) = written {
            kube_latency.push(kube_wall.duration_since(*written).as_secs_f64() * 1000.0);
            api_latency.push(api_wall.duration_since(*written).as_secs_f64() * 1000.0);
        }
    }

    println!(
        "create -> Completed of the same Backup ({} reps each, alternating):",
        args.reps
    );
    println!(
        "  through the API (CreateBackup + WatchBackup): {}",
        summary(by_api)
    );
    println!(
        "  through kubectl (create -f + wait):           {}",
        summary(by_kubectl)
    );
    println!(
        "  through kube-rs (create + watch):             {}",
        summary(by_kube)
    );
    println!("watch latency, one running backup, per resourceVersion seen by both:");
    println!(
        "  progress write -> kube-rs watch:   {}",
        summary(kube_latency)
    );
    println!(
        "  progress write -> API WatchBackup: {}",
        summary(api_latency)
    );
    println!("  API event after the kube-rs event: {}", summary(behind));
    stack.shutdown().await?;
    Ok(())
}
