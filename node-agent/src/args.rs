//! Command-line flags of `cairn-agent`: `--help` is the whole reference.

use std::path::PathBuf;

use clap::Parser;

/// Cairn's node agent: dials the control plane over mutual TLS, runs the exec and job actions
/// for pods on its node, serves the storage socket that action containers' `datasafed` uses, and
/// reports progress every second. Reads the kubeconfig the usual way (KUBECONFIG,
/// ~/.kube/config, or in-cluster).
#[derive(Debug, Clone, Parser)]
#[command(name = "cairn-agent", version, about, long_about = None)]
pub struct Args {
    /// This node's name: must equal the node in the agent certificate and the pods'
    /// spec.nodeName.
    #[arg(long, env = "NODE_NAME")]
    pub node_name: String,
    /// The control plane's agent service, `https://HOST:PORT`; several control planes
    /// separated by commas are tried in turn until one that leads accepts the session.
    /// Anything but `https://` (`http://`, no scheme) is refused at start-up: the agent speaks
    /// to the control plane only over mutual TLS.
    #[arg(long, env = "CAIRN_CONTROL_PLANE")]
    pub control_plane: String,
    /// Name the control plane's certificate must carry (default: the endpoint's host).
    #[arg(long)]
    pub server_name: Option<String>,
    /// The Cairn CA certificate (PEM).
    #[arg(long, env = "CAIRN_TLS_CA", default_value = "/etc/cairn/tls/ca.pem")]
    pub tls_ca: PathBuf,
    /// This agent's certificate (PEM), issued for --node-name.
    #[arg(
        long,
        env = "CAIRN_TLS_CERT",
        default_value = "/etc/cairn/tls/agent.pem"
    )]
    pub tls_cert: PathBuf,
    /// This agent's private key (PEM).
    #[arg(
        long,
        env = "CAIRN_TLS_KEY",
        default_value = "/etc/cairn/tls/agent-key.pem"
    )]
    pub tls_key: PathBuf,
    /// Directory for the action journal (must survive agent restarts).
    #[arg(long, default_value = "/var/lib/cairn-agent/state")]
    pub state_dir: PathBuf,
    /// Directory of the agent's local storage socket `sock/storage.sock` (for tools on the
    /// agent's own host; action pods use the storage endpoint, --storage-listen).
    #[arg(long, default_value = "/var/lib/cairn-agent/node")]
    pub agent_dir: PathBuf,
    /// The kubelet's root directory on this node (pod volumes are read under `pods/`).
    #[arg(long, default_value = "/var/lib/kubelet")]
    pub kubelet_dir: PathBuf,
    /// Where the storage endpoint that action pods' `datasafed` dials listens (TCP, TLS with a
    /// certificate the agent keeps in --state-dir; port 0 picks a free port).
    #[arg(long, env = "CAIRN_STORAGE_LISTEN", default_value = "0.0.0.0:9444")]
    pub storage_listen: std::net::SocketAddr,
    /// The address (host or IP) action pods dial to reach the storage endpoint: on Kubernetes
    /// the agent pod's IP. Default: the --storage-listen address when it names one.
    #[arg(long, env = "CAIRN_STORAGE_ADDRESS")]
    pub storage_address: Option<String>,
    /// The agent's own image: action Jobs run it as the init container that copies
    /// `datasafed` into the pod (localkube ignores images and runs the same paths on its host).
    #[arg(long, env = "CAIRN_AGENT_IMAGE", default_value = "cairn-agent:local")]
    pub image: String,
    /// The `datasafed` binary inside --image, copied into action pods by their init container
    /// (default: `datasafed` next to this executable).
    #[arg(long)]
    pub datasafed_bin: Option<PathBuf>,
    /// Address of /metrics, /healthz and /readyz (plain HTTP), e.g. `0.0.0.0:9090`; none are
    /// served when unset.
    #[arg(long, env = "CAIRN_HEALTH_LISTEN")]
    pub health_listen: Option<std::net::SocketAddr>,
    /// Seconds a holder pod of a Mount repository's PVC (a volume that is not a local directory
    /// of this node) is kept once no action uses it.
    #[arg(long, env = "CAIRN_MOUNT_HOLDER_IDLE_SECONDS", default_value_t = 30)]
    pub mount_holder_idle_seconds: u64,
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// How logs are written (RUST_LOG sets the filter; default info).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}
