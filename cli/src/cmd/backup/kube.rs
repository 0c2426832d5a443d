//! Where the cluster is: `--kubeconfig` and `--context`, else the usual places (`$KUBECONFIG`,
//! `~/.kube/config`, in-cluster), the same for localkube and a real cluster.

use std::path::PathBuf;

use anyhow::Context as _;
use kube::config::{KubeConfigOptions, Kubeconfig};

/// Options naming the cluster, shared by the commands that work on its objects.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct KubeArgs {
    /// Kubeconfig file (default: $KUBECONFIG, then ~/.kube/config, then the in-cluster config).
    #[arg(long, global = true)]
    pub kubeconfig: Option<PathBuf>,
    /// Kubeconfig context (default: the current context).
    #[arg(long, global = true)]
    pub context: Option<String>,
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
        let config = match (&self.kubeconfig, &self.context) {
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
        let default_namespace = config.default_namespace.clone();
        let client = kube::Client::try_from(config).context("creating the Kubernetes client")?;
        Ok(Connection {
            client,
            default_namespace,
        })
    }
}
