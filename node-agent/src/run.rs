//! Wires a running agent: the storage socket, the action runtime and the session with the
//! control plane.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio_util::sync::CancellationToken;

use crate::args::Args;
use crate::runtime::holder_pod::HolderConfig;
use crate::runtime::job::NodeInjection;
use crate::runtime::mount_claim::MountClaims;
use crate::runtime::mount_holder::{HolderTimes, MountHolders};
use crate::runtime::runner::{Runtime, RuntimeConfig, SharedRuntime};
use crate::session::{self, SessionConfig};
use crate::socket::grants::Grants;
use crate::socket::{EndpointServer, StorageIdentity};
use crate::tls::{ClientTls, Dial};

/// The `User-Agent` of the agent's Kubernetes API requests.
pub const USER_AGENT: &str = concat!("cairn-agent/", env!("CARGO_PKG_VERSION"));

/// Runs until `shutdown` is cancelled.
pub async fn run(args: Args, shutdown: CancellationToken) -> anyhow::Result<()> {
    if args.node_name.trim().is_empty() {
        anyhow::bail!("--node-name: must not be empty");
    }
    // Before anything else: the agent never dials the control plane in plaintext.
    crate::tls::check_endpoints(&args.control_plane)?;
    let socket_dir = args.agent_dir.join("sock");
    for dir in [&socket_dir, &args.state_dir] {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let install_command = install_command(args.datasafed_bin.clone())?;
    let Some(storage_host) = crate::socket::endpoint::advertised_host(
        args.storage_listen,
        args.storage_address.as_deref(),
    ) else {
        anyhow::bail!(
            "--storage-address: give the address action pods dial to reach this agent (on Kubernetes the pod IP); --storage-listen {} names no single host",
            args.storage_listen
        );
    };
    let identity = StorageIdentity::load_or_create(&args.state_dir.join("storage-tls"))
        .context("loading the storage endpoint's certificate")?;

    let tls = ClientTls::from_files(&args.tls_ca, &args.tls_cert, &args.tls_key)
        .context("loading the agent's TLS material")?;
    let dial = Dial {
        endpoint: args.control_plane.clone(),
        server_name: args.server_name.clone(),
        tls,
        connect_timeout: Duration::from_secs(10),
    };
    let mut kube_config = kube::Config::infer().await.context(
        "configuring the Kubernetes API client (KUBECONFIG, ~/.kube/config or in-cluster)",
    )?;
    // API servers' audit logs (and localkube's request counts) name the agent.
    kube_config.headers.push((
        tonic::codegen::http::header::USER_AGENT,
        tonic::codegen::http::HeaderValue::from_static(USER_AGENT),
    ));
    let client = kube::Client::try_from(kube_config)
        .context("connecting to the Kubernetes API (KUBECONFIG, ~/.kube/config or in-cluster)")?;

    let holders = Arc::new(MountHolders::new(
        client.clone(),
        HolderConfig {
            node: args.node_name.clone(),
            kubelet_dir: args.kubelet_dir.clone(),
            image: args.image.clone(),
            agent_binary: install_command.first().cloned().unwrap_or_default(),
        },
        HolderTimes {
            idle: Duration::from_secs(args.mount_holder_idle_seconds),
            ..HolderTimes::default()
        },
    ));
    // Before any action runs: the holder pods a previous run left are used again or deleted.
    match holders.adopt().await {
        Ok(0) => {}
        Ok(adopted) => tracing::info!(
            adopted,
            "took over repository holder pods of a previous run"
        ),
        Err(err) => {
            tracing::warn!(error = %err, "listing the repository holder pods of a previous run failed; they are deleted only when used again")
        }
    }
    let reaper = tokio::spawn(holders.clone().reap(shutdown.clone()));
    let holders_at_exit = holders.clone();
    let grants = Grants::with_claim_resolver(Arc::new(MountClaims::new(
        client.clone(),
        args.node_name.clone(),
        holders,
    )));
    let vitals = crate::health::Vitals::default();
    let health = match args.health_listen {
        Some(addr) => {
            let listener = crate::health::bind(addr)
                .await
                .with_context(|| format!("listening on {addr} (--health-listen)"))?;
            tracing::info!(addr = %listener.local_addr().unwrap_or(addr), "health endpoints listening");
            let health_shutdown = shutdown.clone();
            Some(tokio::spawn(crate::health::serve(
                listener,
                vitals.clone(),
                async move { health_shutdown.cancelled().await },
            )))
        }
        None => None,
    };
    let socket = crate::socket::server::SocketServer::bind(&socket_dir)
        .with_context(|| format!("binding the storage socket in {}", socket_dir.display()))?;
    let endpoint = EndpointServer::bind(args.storage_listen, identity.clone())
        .await
        .context("binding the storage endpoint (--storage-listen)")?;
    let storage_endpoint =
        crate::socket::endpoint::endpoint_url(&storage_host, endpoint.local_addr().port());
    let socket_shutdown = shutdown.clone();
    let socket_grants = grants.clone();
    let socket_vitals = vitals.clone();
    socket_vitals.set_socket(true);
    let socket_task = tokio::spawn(async move {
        let served = socket
            .run(
                socket_grants,
                async move { socket_shutdown.cancelled().await },
            )
            .await;
        socket_vitals.set_socket(false);
        served
    });
    let endpoint_shutdown = shutdown.clone();
    let endpoint_grants = grants.clone();
    let endpoint_task = tokio::spawn(async move {
        endpoint
            .run(endpoint_grants, async move {
                endpoint_shutdown.cancelled().await
            })
            .await
    });

    let runtime = Runtime::new(
        client,
        RuntimeConfig {
            node: NodeInjection {
                node_name: args.node_name.clone(),
                install_image: args.image.clone(),
                install_command,
                storage_endpoint: storage_endpoint.clone(),
                storage_cert_pem: identity.cert_pem().to_string(),
            },
            kubelet_dir: args.kubelet_dir.clone(),
            progress_interval: Duration::from_secs(1),
        },
        grants,
    );
    let mut config = SessionConfig::new(args.node_name.clone(), dial, args.state_dir.clone());
    config.vitals = vitals.clone();
    tracing::info!(node = %args.node_name, control_plane = %args.control_plane, storage_endpoint, "agent starting");
    let session_shutdown = shutdown.clone();
    vitals.set_session(true);
    let session = session::run(
        config,
        Arc::new(SharedRuntime(Arc::new(runtime))),
        async move { session_shutdown.cancelled().await },
    )
    .await;
    vitals.set_session(false);
    shutdown.cancel();
    let _ = reaper.await;
    // Nothing uses them once the agent stops (a restarted agent holds the volumes again).
    holders_at_exit.release_all().await;
    session.context("running the agent session")?;
    if let Some(health) = health {
        let _ = health.await;
    }
    for (what, task) in [
        ("storage socket", socket_task),
        ("storage endpoint", endpoint_task),
    ] {
        match task.await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => {
                tracing::warn!(error = %crate::runtime::runner::chain(&err), "{what} ended with an error")
            }
            Err(err) => tracing::warn!(error = %err, "{what} task failed"),
        }
    }
    Ok(())
}

/// The init container's command that copies `datasafed` (ARCHITECTURE.md §K2.3a): this
/// executable (the same path in the agent's image, and on localkube's host, whose kubelet runs
/// containers' commands on its own filesystem) with `install-datasafed --from <datasafed>`.
fn install_command(datasafed: Option<std::path::PathBuf>) -> anyhow::Result<Vec<String>> {
    let exe = std::env::current_exe().context("locating this executable")?;
    let datasafed = datasafed.unwrap_or_else(|| exe.with_file_name("datasafed"));
    if !datasafed.is_file() {
        anyhow::bail!(
            "--datasafed-bin: {} is not a file (the datasafed client action pods receive)",
            datasafed.display()
        );
    }
    Ok(vec![
        exe.display().to_string(),
        crate::install::SUBCOMMAND.into(),
        "--from".into(),
        datasafed.display().to_string(),
    ])
}
