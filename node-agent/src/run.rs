//! Wires a running agent: the storage socket, the action runtime and the session with the
//! control plane.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio_util::sync::CancellationToken;

use crate::args::Args;
use crate::runtime::job::NodeInjection;
use crate::runtime::mount_claim::MountClaims;
use crate::runtime::runner::{Runtime, RuntimeConfig, SharedRuntime};
use crate::session::{self, SessionConfig};
use crate::socket::grants::Grants;
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
    let bin_dir = args.agent_dir.join("bin");
    let socket_dir = args.agent_dir.join("sock");
    for dir in [&bin_dir, &socket_dir, &args.state_dir] {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    install_datasafed(args.datasafed_bin.clone(), &bin_dir)?;

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

    let grants = Grants::with_claim_resolver(Arc::new(MountClaims::new(
        client.clone(),
        args.node_name.clone(),
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

    let runtime = Runtime::new(
        client,
        RuntimeConfig {
            node: NodeInjection {
                node_name: args.node_name.clone(),
                datasafed_bin_dir: bin_dir,
                socket_dir,
            },
            kubelet_dir: args.kubelet_dir.clone(),
            progress_interval: Duration::from_secs(1),
        },
        grants,
    );
    let mut config = SessionConfig::new(args.node_name.clone(), dial, args.state_dir.clone());
    config.vitals = vitals.clone();
    tracing::info!(node = %args.node_name, control_plane = %args.control_plane, "agent starting");
    let session_shutdown = shutdown.clone();
    vitals.set_session(true);
    let session = session::run(
        config,
        Arc::new(SharedRuntime(Arc::new(runtime))),
        async move { session_shutdown.cancelled().await },
    )
    .await;
    vitals.set_session(false);
    session.context("running the agent session")?;
    shutdown.cancel();
    if let Some(health) = health {
        let _ = health.await;
    }
    match socket_task.await {
        Ok(Ok(())) => {}
        Ok(Err(err)) => {
            tracing::warn!(error = %crate::runtime::runner::chain(&err), "storage socket ended with an error")
        }
        Err(err) => tracing::warn!(error = %err, "storage socket task failed"),
    }
    Ok(())
}

/// Copies the datasafed client to `<bin_dir>/datasafed` (atomically, so running pods keep theirs).
fn install_datasafed(
    source: Option<std::path::PathBuf>,
    bin_dir: &std::path::Path,
) -> anyhow::Result<()> {
    let source = match source {
        Some(path) => path,
        None => std::env::current_exe()
            .context("locating this executable")?
            .with_file_name("datasafed"),
    };
    let target = bin_dir.join("datasafed");
    let staging = bin_dir.join(".datasafed.new");
    std::fs::copy(&source, &staging).with_context(|| {
        format!(
            "copying the datasafed client from {} (use --datasafed-bin)",
            source.display()
        )
    })?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&staging, std::fs::Permissions::from_mode(0o755))
        .with_context(|| format!("making {} executable", staging.display()))?;
    std::fs::rename(&staging, &target)
        .with_context(|| format!("installing {}", target.display()))?;
    Ok(())
}
