//! Wires a running control plane: TLS, the agent service, health endpoints, leader election and
//! the reconcilers (which run only while this replica leads).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::args::RunArgs;
use crate::grpc::hub::{AgentHub, HubConfig};
use crate::health::Vitals;
use crate::leader::{self, Leadership, LeaseConfig};
use crate::metrics::Metrics;
use crate::reconcile;
use crate::shell::{Context, ShellSettings};

/// The `User-Agent` of the control plane's Kubernetes API requests.
pub const USER_AGENT: &str = concat!("cairn-control-plane/", env!("CARGO_PKG_VERSION"));

fn duration(flag: &str, text: &str) -> anyhow::Result<Duration> {
    crate::plan::time::go_duration(text)
        .map_err(|err| anyhow::anyhow!("--{flag}: invalid duration {text:?}: {err}"))
}

/// Runs until `shutdown` is cancelled.
pub async fn run(args: RunArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    let grace = duration("agent-grace-period", &args.agent_grace_period)?;
    let heartbeat = duration("heartbeat-interval", &args.heartbeat_interval)?;
    let progress = duration("progress-interval", &args.progress_interval)?;
    let kubeblocks_check = duration("kubeblocks-check-interval", &args.kubeblocks_check_interval)?;

    let (ca, cert, key) = if args.tls_generate {
        let files = cairn_certs::ensure_server_cert(&args.tls_dir, &args.tls_server_names)
            .with_context(|| format!("creating certificates in {}", args.tls_dir.display()))?;
        (args.tls_dir.join("ca.pem"), files.cert, files.key)
    } else {
        (
            args.tls_dir.join("ca.pem"),
            args.tls_dir.join("server.pem"),
            args.tls_dir.join("server-key.pem"),
        )
    };
    // Both ports follow their files: a certificate cert-manager renews, or a CA rotated in the
    // mounted Secret, applies from the next connection without a restart.
    let tls_config = cairn_certs::reloading_server_config(&ca, &cert, &key)
        .context("loading the agent service's TLS configuration")?;
    let api_tls = match args.api_listen {
        Some(_) => Some(api_tls_config(&args, &cert, &key)?),
        None => None,
    };

    let lease = if args.leader_elect {
        let config = lease_config(&args)?;
        tracing::info!(identity = %config.identity, "electing a leader");
        Some(config)
    } else {
        None
    };
    let leadership = if lease.is_some() {
        Leadership::elected()
    } else {
        Leadership::always()
    };

    let mut config = kube::Config::infer().await.context(
        "configuring the Kubernetes API client (KUBECONFIG, ~/.kube/config or in-cluster)",
    )?;
    // API servers' audit logs (and localkube's request counts) name the control plane.
    config.headers.push((
        axum::http::header::USER_AGENT,
        axum::http::HeaderValue::from_static(USER_AGENT),
    ));
    let client = kube::Client::try_from(config)
        .context("connecting to the Kubernetes API (KUBECONFIG, ~/.kube/config or in-cluster)")?;
    let hub = AgentHub::with_leadership(
        HubConfig {
            heartbeat_interval: heartbeat,
            ..HubConfig::default()
        },
        leadership.clone(),
    );
    // Every replica keeps its caches warm, so a new leader reconciles at once.
    let mut metrics = Metrics::new();
    // Finished Backups and Restores are counted from the caches' watch, by the leader.
    let finishes = Arc::new(metrics.finish_counter({
        let leadership = leadership.clone();
        move || leadership.is_leading()
    }));
    let (backup_finishes, restore_finishes, policy_finishes) =
        (finishes.clone(), finishes.clone(), finishes.clone());
    let caches = crate::shell::cache::Caches::spawn_observed(
        &client,
        &shutdown,
        crate::shell::cache::Observers {
            backups: Some(Box::new(
                move |event: &kube::runtime::watcher::Event<cairn_api::backup::Backup>| {
                    backup_finishes.backup_event(event)
                },
            )),
            restores: Some(Box::new(
                move |event: &kube::runtime::watcher::Event<cairn_api::restore::Restore>| {
                    restore_finishes.restore_event(event)
                },
            )),
            policies: Some(Box::new(
                move |event: &kube::runtime::watcher::Event<
                    cairn_api::backup_policy::BackupPolicy,
                >| { policy_finishes.policy_event(event) },
            )),
        },
    );
    let source_backups = caches.backups.clone();
    finishes.find_sources(move |namespace, name| source_backups.get_in(namespace, name));
    let cached_backups = caches.backups.clone();
    metrics.observe_backups(move || cached_backups.all());
    let (schedules, policies, actionsets) = (
        caches.schedules.clone(),
        caches.policies.clone(),
        caches.actionsets.clone(),
    );
    metrics.observe_schedules(move || {
        crate::metrics::scheduled_entries(
            &schedules.all(),
            |namespace, name| policies.get_in(namespace, name),
            &actionsets.all(),
        )
    });
    metrics.observe_certificates(certificate_files(&args, &ca, &cert));
    metrics.observe_allocator();
    let metrics = Arc::new(metrics);
    let ctx = Arc::new(Context::new(
        client.clone(),
        Arc::new(hub.clone()),
        leadership.clone(),
        metrics.clone(),
        ShellSettings {
            agent_grace: grace,
            namespace: args.leader_election_namespace.clone(),
            backup: crate::plan::backup::Settings {
                progress_interval: progress,
                ..Default::default()
            },
        },
        caches,
    ));

    let listener = tokio::net::TcpListener::bind(args.agent_listen)
        .await
        .with_context(|| format!("listening on {}", args.agent_listen))?;
    tracing::info!(addr = %listener.local_addr().unwrap_or(args.agent_listen), "agent service listening (mutual TLS)");
    let vitals = Vitals::default();
    let grpc_shutdown = shutdown.clone();
    let grpc_vitals = vitals.clone();
    let grpc_hub = hub.clone();
    vitals.set_agent_service(true);
    let grpc = tokio::spawn(async move {
        let served = crate::grpc::server::serve(listener, tls_config, grpc_hub, async move {
            grpc_shutdown.cancelled().await
        })
        .await;
        grpc_vitals.set_agent_service(false);
        served
    });
    let api = match (args.api_listen, api_tls) {
        (Some(addr), Some(api_tls)) => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("listening on {addr} (--api-listen)"))?;
            tracing::info!(addr = %listener.local_addr().unwrap_or(addr), "public API listening (TLS)");
            let api_client = client.clone();
            let api_shutdown = shutdown.clone();
            // Compiling the CRD schemas takes a while in a debug build: off the start-up path, so
            // leader election and the health endpoints do not wait for it.
            Some(tokio::spawn(async move {
                let checker =
                    tokio::task::spawn_blocking(cairn_api::validate::manifest::Checker::new)
                        .await
                        .context("compiling the CRD schemas for the API's checks")?
                        .context("compiling the CRD schemas for the API's checks")?;
                let state = crate::api::ApiState::new(api_client, Arc::new(checker));
                crate::api::serve(listener, api_tls, state, async move {
                    api_shutdown.cancelled().await
                })
                .await?;
                Ok::<(), anyhow::Error>(())
            }))
        }
        _ => None,
    };
    tokio::spawn(crate::health::probe_api(
        client.clone(),
        vitals.clone(),
        shutdown.clone(),
    ));

    let leading = leadership.subscribe();
    let standing = crate::coexist::spawn(
        client.clone(),
        crate::coexist::GuardSettings {
            take_over: args.take_over_from_kubeblocks,
            interval: kubeblocks_check,
        },
        shutdown.clone(),
    );
    vitals.follow_standing(standing.clone());
    if let Some(config) = lease {
        tokio::spawn(leader::run(client.clone(), config, leadership.clone()));
    }
    tokio::spawn(follow_leadership(
        hub.clone(),
        leadership.subscribe(),
        shutdown.clone(),
    ));
    tokio::spawn(count_agents(hub.clone(), metrics.clone(), shutdown.clone()));

    let health_listener = crate::health::bind(args.health_listen)
        .await
        .with_context(|| format!("listening on {} (--health-listen)", args.health_listen))?;
    tracing::info!(addr = %health_listener.local_addr().unwrap_or(args.health_listen), "health endpoints listening");
    let health_shutdown = shutdown.clone();
    let health = tokio::spawn(crate::health::serve(
        health_listener,
        metrics,
        vitals,
        leadership,
        async move { health_shutdown.cancelled().await },
    ));

    // Leading is not enough: while KubeBlocks' own data-protection controller runs, Cairn
    // stands by (coexist.rs, ARCHITECTURE.md §K9).
    let reconciling = crate::coexist::gate(leading, standing, shutdown.clone());
    let reconcilers = reconcile::run_while_leading(ctx, reconciling, shutdown.clone());
    reconcilers.await;
    shutdown.cancel();
    match grpc.await {
        Ok(Ok(())) => {}
        Ok(Err(err)) => {
            tracing::warn!(error = %crate::shell::chain(&err), "agent service ended with an error")
        }
        Err(err) => tracing::warn!(error = %err, "agent service task failed"),
    }
    if let Some(api) = api {
        match api.await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => {
                tracing::warn!(error = %format!("{err:#}"), "the public API ended with an error")
            }
            Err(err) => tracing::warn!(error = %err, "the public API task failed"),
        }
    }
    let _ = health.await;
    Ok(())
}

/// The certificates whose expiry `/metrics` reports: the CA the agents' certificates are checked
/// against, the serving certificate (agent service and public API) and the API's client CA.
fn certificate_files(
    args: &RunArgs,
    ca: &std::path::Path,
    cert: &std::path::Path,
) -> Vec<crate::metrics::CertificateFile> {
    let mut files = vec![
        crate::metrics::CertificateFile {
            role: "ca".into(),
            path: ca.to_path_buf(),
        },
        crate::metrics::CertificateFile {
            role: "server".into(),
            path: cert.to_path_buf(),
        },
    ];
    if let Some(path) = &args.api_client_ca {
        files.push(crate::metrics::CertificateFile {
            role: "api-client-ca".into(),
            path: path.clone(),
        });
    }
    files
}

/// The API port's TLS: the server certificate of the agent port, optional client certificates;
/// reloaded when the files change, like the agent port's.
fn api_tls_config(
    args: &RunArgs,
    cert: &std::path::Path,
    key: &std::path::Path,
) -> anyhow::Result<cairn_certs::ServerTls> {
    let mut paths = vec![cert.to_path_buf(), key.to_path_buf()];
    paths.extend(args.api_client_ca.iter().cloned());
    let reloading = cairn_certs::Reloading::new(
        "the public API's TLS certificates",
        paths,
        |pems: &[String]| {
            crate::api::tls::api_server_config(&pems[0], &pems[1], pems.get(2).map(String::as_str))
        },
    )
    .map_err(|err| match err {
        cairn_certs::ReloadError::Read { path, source } => {
            let flag = if args.api_client_ca.as_ref() == Some(&path) {
                "--api-client-ca: "
            } else {
                ""
            };
            anyhow::Error::new(source).context(format!("{flag}reading {}", path.display()))
        }
        cairn_certs::ReloadError::Build(err) => anyhow::Error::new(err),
    })
    .context("loading the public API's TLS configuration")?;
    Ok(cairn_certs::ServerTls::Reloading(Arc::new(reloading)))
}

fn lease_config(args: &RunArgs) -> anyhow::Result<LeaseConfig> {
    let identity = args.leader_election_identity.clone().unwrap_or_else(|| {
        format!(
            "{}-{}",
            hostname(),
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        )
    });
    let lease_duration = duration(
        "leader-election-lease-duration",
        &args.leader_election_lease_duration,
    )?;
    let renew_deadline = duration(
        "leader-election-renew-deadline",
        &args.leader_election_renew_deadline,
    )?;
    let retry_period = duration(
        "leader-election-retry-period",
        &args.leader_election_retry_period,
    )?;
    anyhow::ensure!(
        lease_duration.as_secs() >= 1,
        "--leader-election-lease-duration: {:?} is shorter than one second (the Lease counts whole seconds)",
        args.leader_election_lease_duration
    );
    anyhow::ensure!(
        renew_deadline < lease_duration,
        "--leader-election-renew-deadline ({:?}) must be shorter than --leader-election-lease-duration ({:?}), so that a leader steps down before another may take over",
        args.leader_election_renew_deadline,
        args.leader_election_lease_duration
    );
    anyhow::ensure!(
        retry_period < renew_deadline,
        "--leader-election-retry-period ({:?}) must be shorter than --leader-election-renew-deadline ({:?}), or a leader could never renew in time",
        args.leader_election_retry_period,
        args.leader_election_renew_deadline
    );
    Ok(LeaseConfig {
        namespace: args.leader_election_namespace.clone(),
        name: args.leader_election_name.clone(),
        identity,
        lease_duration,
        renew_deadline,
        retry_period,
    })
}

/// Makes the agent hub follow leadership: a replica that stops leading drops every agent
/// session at once (agents move to the new leader) and one that starts leading restarts the
/// grace period of the nodes it has not seen.
async fn follow_leadership(
    hub: AgentHub,
    mut leading: watch::Receiver<bool>,
    shutdown: CancellationToken,
) {
    let mut was = *leading.borrow_and_update();
    if was {
        hub.take_over();
    }
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            changed = leading.changed() => if changed.is_err() { return },
        }
        let now = *leading.borrow_and_update();
        match (was, now) {
            (false, true) => hub.take_over(),
            (true, false) => hub.step_down(),
            _ => {}
        }
        was = now;
    }
}

/// Keeps the connected-agents gauge and the action-result counters current, whether or not
/// this replica leads.
async fn count_agents(hub: AgentHub, metrics: Arc<Metrics>, shutdown: CancellationToken) {
    let mut events = hub.events();
    metrics
        .connected_agents
        .set(hub.connected_nodes().len() as i64);
    // Agents resend results until acknowledged: count each action once.
    let mut counted = std::collections::HashSet::new();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            event = events.recv() => match event {
                Ok(crate::grpc::hub::HubEvent::Connected { .. } | crate::grpc::hub::HubEvent::Disconnected { .. })
                | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                    metrics.connected_agents.set(hub.connected_nodes().len() as i64);
                }
                Ok(crate::grpc::hub::HubEvent::Result { state, owner, .. }) => {
                    if counted.len() > 10_000 {
                        counted.clear();
                    }
                    if !counted.insert(state.action_id.clone()) {
                        continue;
                    }
                    let phase = cairn_proto::agent::v1::ActionPhase::try_from(state.phase)
                        .map(|p| p.as_str_name().trim_start_matches("ACTION_PHASE_").to_lowercase())
                        .unwrap_or_else(|_| "unknown".into());
                    let kind = owner.map(|o| o.kind).unwrap_or_default();
                    metrics
                        .action_results
                        .get_or_create(&crate::metrics::PhaseLabel { kind, phase })
                        .inc();
                }
                Ok(_) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
        }
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "cairn".into())
}
