//! Command-line flags of `cairn-control-plane`: `--help` is the whole reference.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::ca_cmd::CaArgs;

/// Cairn's control plane: reconciles the dataprotection.kubeblocks.io CRDs and dispatches backup
/// and restore actions to node agents over gRPC with mutual TLS. Reads the kubeconfig the usual
/// way (KUBECONFIG, ~/.kube/config, or in-cluster).
#[derive(Debug, Parser)]
#[command(name = "cairn-control-plane", version, about, long_about = None)]
pub struct Args {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub run: RunArgs,
}

/// Subcommands; without one, the control plane runs.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Manage the certificate authority of the agent protocol.
    Ca(CaArgs),
}

/// Flags of a running control plane.
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// Address of the agent gRPC service (mutual TLS only).
    #[arg(long, default_value = "0.0.0.0:9443", env = "CAIRN_AGENT_LISTEN")]
    pub agent_listen: SocketAddr,
    /// Directory with ca.pem, server.pem and server-key.pem for the agent service.
    #[arg(long, default_value = "/etc/cairn/tls", env = "CAIRN_TLS_DIR")]
    pub tls_dir: PathBuf,
    /// Create the CA and the server certificate in --tls-dir when missing or expired
    /// (standalone mode; in a cluster the Helm chart provides them).
    #[arg(long)]
    pub tls_generate: bool,
    /// DNS names or IPs the server certificate is issued for with --tls-generate (repeatable).
    #[arg(long = "tls-server-name", default_values = ["localhost", "127.0.0.1"])]
    pub tls_server_names: Vec<String>,
    /// Address of the public gRPC API for orchestrators (TLS with the server certificate of
    /// --tls-dir; docs/API.md). Without it the API is not served.
    #[arg(long, env = "CAIRN_API_LISTEN")]
    pub api_listen: Option<SocketAddr>,
    /// PEM CA whose client certificates authenticate API callers (subject CN = user,
    /// O = groups). Without it, API callers authenticate with bearer tokens only.
    #[arg(long, env = "CAIRN_API_CLIENT_CA")]
    pub api_client_ca: Option<PathBuf>,
    /// Address of /metrics, /healthz and /readyz (plain HTTP).
    #[arg(long, default_value = "0.0.0.0:8080", env = "CAIRN_HEALTH_LISTEN")]
    pub health_listen: SocketAddr,
    /// How long a node may be without its agent before that node's actions fail (Go duration).
    #[arg(long, default_value = "5m")]
    pub agent_grace_period: String,
    /// Heartbeat interval of agent sessions (Go duration).
    #[arg(long, default_value = "10s")]
    pub heartbeat_interval: String,
    /// Minimum time between two writes of a Backup's status.progress (Go duration).
    #[arg(long, default_value = "1s")]
    pub progress_interval: String,
    /// Reconcile even while KubeBlocks' own data-protection controller runs (its Deployment
    /// labelled app.kubernetes.io/name=kubeblocks,app.kubernetes.io/component=dataprotection
    /// asks for replicas, or its Lease abd03fda.kubeblocks.io is held). Without it, Cairn stands
    /// by until that controller is turned off (ARCHITECTURE.md §K9).
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set, env = "CAIRN_TAKE_OVER_FROM_KUBEBLOCKS")]
    pub take_over_from_kubeblocks: bool,
    /// How often to look for an active KubeBlocks data-protection controller (Go duration).
    #[arg(long, default_value = "30s", env = "CAIRN_KUBEBLOCKS_CHECK_INTERVAL")]
    pub kubeblocks_check_interval: String,
    /// Elect a leader through a Lease, so that only one replica reconciles.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub leader_elect: bool,
    /// Namespace of the leader-election Lease.
    #[arg(long, default_value = "default", env = "POD_NAMESPACE")]
    pub leader_election_namespace: String,
    /// Name of the leader-election Lease.
    #[arg(long, default_value = "cairn-control-plane")]
    pub leader_election_name: String,
    /// This replica's identity in the Lease (default: POD_NAME, else host name and a random suffix).
    #[arg(long, env = "POD_NAME")]
    pub leader_election_identity: Option<String>,
    /// How long the Lease is valid after its last renewal: how long after a leader dies
    /// (or freezes) another replica takes over (Go duration).
    #[arg(long, default_value = "15s")]
    pub leader_election_lease_duration: String,
    /// A leader that could not renew the Lease for this long steps down; shorter than the
    /// lease duration (Go duration).
    #[arg(long, default_value = "10s")]
    pub leader_election_renew_deadline: String,
    /// Time between two attempts to acquire or renew the Lease (Go duration).
    #[arg(long, default_value = "2s")]
    pub leader_election_retry_period: String,
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
