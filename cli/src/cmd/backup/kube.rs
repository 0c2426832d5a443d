//! Where the cluster is and how `cairnctl` talks to it, as kubectl's global flags say:
//! `--kubeconfig` and `--context`, else the usual places (`$KUBECONFIG`, `~/.kube/config`,
//! in-cluster), the same for localkube and a real cluster; `--request-timeout` bounds each
//! request.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use kube::config::{KubeConfigOptions, Kubeconfig};

/// Options naming the cluster, shared by the commands that work on its objects (global:
/// accepted anywhere on the line).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct KubeArgs {
    /// Kubeconfig file (default: $KUBECONFIG, then ~/.kube/config, then the in-cluster config).
    #[arg(long, global = true)]
    pub kubeconfig: Option<PathBuf>,
    /// Kubeconfig context (default: the current context).
    #[arg(long, global = true)]
    pub context: Option<String>,
    /// How long to wait for the API server to answer a request before giving up (exit code
    /// 3), as kubectl: `0` (no limit), `30s`, `1m`, or seconds.
    #[arg(long, global = true, default_value = "0", value_parser = parse_request_timeout)]
    pub request_timeout: Duration,
}

/// A `--request-timeout`: kubectl's syntax (`0` for none, a plain number of seconds, or a
/// duration such as `30s`, `1m`, `1h`).
pub fn parse_request_timeout(text: &str) -> Result<Duration, String> {
    crate::exit::parse_timeout(text)
}

/// A connected client and the namespace the kubeconfig names.
pub struct Connection {
    pub client: kube::Client,
    pub default_namespace: String,
}

impl KubeArgs {
    /// Loads the configuration and creates a client.
    pub async fn connect(&self) -> anyhow::Result<Connection> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let options = KubeConfigOptions {
            context: self.context.clone(),
            ..Default::default()
        };
        let mut config = match (&self.kubeconfig, &self.context) {
            (Some(path), _) => {
                let file = Kubeconfig::read_from(path)
                    .with_context(|| format!("reading kubeconfig {}", path.display()))?;
                kube::Config::from_custom_kubeconfig(file, &options)
                    .await
                    .with_context(|| format!("loading kubeconfig {}", path.display()))?
            }
            (None, Some(context)) => kube::Config::from_kubeconfig(&options)
                .await
                .with_context(|| format!("loading context {context} from the kubeconfig"))?,
            (None, None) => kube::Config::infer().await.context(
                "finding the cluster (set KUBECONFIG or --kubeconfig; `cairnctl up` prints one)",
            )?,
        };
        if !self.request_timeout.is_zero() {
            // Connecting (TLS included), sending and each wait for the answer.
            config.connect_timeout = Some(self.request_timeout);
            config.read_timeout = Some(self.request_timeout);
            config.write_timeout = Some(self.request_timeout);
        }
        let default_namespace = config.default_namespace.clone();
        let client = kube::Client::try_from(config).context("creating the Kubernetes client")?;
        Ok(Connection {
            client,
            default_namespace,
        })
    }
}
