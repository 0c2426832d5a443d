//! Starting and stopping a localkube: the store, the REST layer, controllers, the kubelet and
//! the HTTPS listener, plus the kubeconfig clients use.
//!
//! ```no_run
//! # async fn demo() -> Result<(), localkube::ServerError> {
//! let server = localkube::Server::builder()
//!     .data_dir("/tmp/lk")
//!     .listen("127.0.0.1:0".parse().unwrap())
//!     .start()
//!     .await?;
//! println!("KUBECONFIG={}", server.kubeconfig_path().display());
//! server.shutdown().await?;
//! # Ok(()) }
//! ```

use crate::controllers;
use crate::http::{AppState, router};
use crate::kubelet::Kubelet;
use crate::rest::{Api, ApiConfig, index::index_object};
use crate::store::{Store, StoreError};
use crate::{kubeconfig, seed, tls};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

/// Why a server could not start or stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("no data directory was given")]
    NoDataDir,
    #[error("preparing the data directory {path}")]
    DataDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("opening the store")]
    Store(#[from] StoreError),
    #[error("preparing TLS")]
    Tls(#[from] tls::TlsError),
    #[error("listening on {addr}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("seeding the system objects: {0}")]
    Seed(String),
    #[error("flushing the store")]
    Flush(#[source] StoreError),
}

/// Configures a server; see [`Server::builder`].
#[derive(Debug, Clone)]
pub struct ServerBuilder {
    data_dir: Option<PathBuf>,
    listen: SocketAddr,
    node_name: Option<String>,
    history_limit: usize,
    bookmark_interval: Duration,
    kubelet: bool,
}

/// Entry point: `Server::builder().data_dir(..).start().await`.
pub struct Server;

impl Server {
    pub fn builder() -> ServerBuilder {
        ServerBuilder {
            data_dir: None,
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            node_name: None,
            history_limit: 20_000,
            bookmark_interval: Duration::from_secs(60),
            kubelet: true,
        }
    }
}

/// The host name, lowercased, as the default node name.
pub fn default_node_name() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .map(|h| h.to_lowercase())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localkube".to_string())
}

impl ServerBuilder {
    /// Where the store, PKI, kubeconfig and pod directories live (required).
    pub fn data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.data_dir = Some(dir.into());
        self
    }

    /// The address to listen on (default `127.0.0.1:0`, a free port).
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.listen = addr;
        self
    }

    /// The Node's name and `kubernetes.io/hostname` label (default: the host name).
    pub fn node_name(mut self, name: impl Into<String>) -> Self {
        self.node_name = Some(name.into());
        self
    }

    /// How many change events the watch history keeps (default 20,000).
    pub fn history_limit(mut self, events: usize) -> Self {
        self.history_limit = events.max(1);
        self
    }

    /// How often idle watches that allow bookmarks receive one (default 60 s).
    pub fn bookmark_interval(mut self, every: Duration) -> Self {
        self.bookmark_interval = every;
        self
    }

    /// Whether pods run as local processes (default true).
    pub fn kubelet(mut self, enabled: bool) -> Self {
        self.kubelet = enabled;
        self
    }

    /// Opens the store, starts controllers and the listener, and writes the kubeconfig.
    pub async fn start(self) -> Result<RunningServer, ServerError> {
        let data_dir = self.data_dir.clone().ok_or(ServerError::NoDataDir)?;
        make_private(&data_dir)?;
        let node_name = self.node_name.clone().unwrap_or_else(default_node_name);
        let store = Arc::new(Store::open(
            &data_dir.join("store.db"),
            Arc::new(index_object),
            self.history_limit,
        )?);
        let api = Arc::new(Api::new(store, ApiConfig { node_name }));
        seed::seed(&api).map_err(|e| ServerError::Seed(e.message))?;

        let shutdown = CancellationToken::new();
        let mut tasks = controllers::start_core(&api, &data_dir, &shutdown);
        let kubelet = if self.kubelet {
            let k = Arc::new(Kubelet::new(api.clone(), data_dir.clone()));
            tasks.push(tokio::spawn(controllers::runner::run(
                k.clone(),
                api.store().clone(),
                shutdown.clone(),
            )));
            Some(k)
        } else {
            None
        };

        let listener =
            TcpListener::bind(self.listen)
                .await
                .map_err(|source| ServerError::Listen {
                    addr: self.listen,
                    source,
                })?;
        let local = listener
            .local_addr()
            .map_err(|source| ServerError::Listen {
                addr: self.listen,
                source,
            })?;
        let pki = tls::load_or_create(&data_dir.join("pki"), &[local.ip()], &[])?;
        let token = load_or_create_token(&data_dir)?;
        let host = if local.ip().is_unspecified() {
            "127.0.0.1".to_string()
        } else if local.is_ipv6() {
            format!("[{}]", local.ip())
        } else {
            local.ip().to_string()
        };
        let server_address = format!("{host}:{}", local.port());
        let url = format!("https://{server_address}");
        let state = Arc::new(AppState::new(
            api.clone(),
            token.clone(),
            server_address,
            shutdown.clone(),
            self.bookmark_interval,
            kubelet.clone(),
        ));
        tasks.push(tokio::spawn(accept_loop(
            listener,
            TlsAcceptor::from(pki.server_config.clone()),
            state,
            shutdown.clone(),
        )));
        let kubeconfig_path = data_dir.join("kubeconfig");
        write_file(
            &kubeconfig_path,
            &kubeconfig::render(&url, &pki.ca_pem, &token),
        )?;
        Ok(RunningServer {
            url,
            local_addr: local,
            data_dir,
            kubeconfig_path,
            ca_pem: pki.ca_pem,
            token,
            api,
            kubelet,
            shutdown,
            tasks,
        })
    }
}

/// The directories directly under the data directory, created 0700 at start so that nothing
/// below them (pod directories, volumes, snapshots, process records) is reachable by other
/// users, whatever modes the pods' own files need.
const PRIVATE_DIRS: [&str; 5] = ["pki", "kubelet", "volumes", "shared", "snapshots"];

/// The files directly under the data directory (the store's files are set by the store).
const PRIVATE_FILES: [&str; 4] = ["token", "kubeconfig", "pki/ca.crt", "pki/ca.key"];

/// Creates the data directory and its top-level directories 0700 and brings what an older
/// version wrote there (0755 directories, a 0644 CA certificate) down to 0700 and 0600.
fn make_private(data_dir: &Path) -> Result<(), ServerError> {
    let err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ServerError::DataDir { path, source }
    };
    crate::private::create_dir(data_dir).map_err(err(data_dir))?;
    for dir in PRIVATE_DIRS {
        let path = data_dir.join(dir);
        crate::private::create_dir(&path).map_err(err(&path))?;
    }
    for file in PRIVATE_FILES {
        let path = data_dir.join(file);
        crate::private::restrict(&path, crate::private::FILE_MODE).map_err(err(&path))?;
    }
    Ok(())
}

fn write_file(path: &Path, contents: &str) -> Result<(), ServerError> {
    let tmp = path.with_extension("tmp");
    crate::private::write_file(&tmp, contents.as_bytes())
        .and_then(|_| std::fs::rename(&tmp, path))
        .map_err(|source| ServerError::DataDir {
            path: path.to_path_buf(),
            source,
        })
}

fn load_or_create_token(dir: &Path) -> Result<String, ServerError> {
    let path = dir.join("token");
    if let Ok(t) = std::fs::read_to_string(&path)
        && !t.trim().is_empty()
    {
        return Ok(t.trim().to_string());
    }
    let bytes: [u8; 32] = rand::random();
    let token = hex::encode(bytes);
    write_file(&path, &token)?;
    Ok(token)
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    state: Arc<AppState>,
    shutdown: CancellationToken,
) {
    let app = router(state);
    loop {
        let (tcp, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.cancelled() => return,
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let app = app.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(tcp).await else {
                return;
            };
            let service = TowerToHyperService::new(app);
            let conn = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(tls), service)
                .with_upgrades();
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = shutdown.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(Duration::from_secs(2), conn).await;
                }
            }
        });
    }
}

/// A started server. Dropping it without [`RunningServer::shutdown`] stops the listener and
/// controllers but does not wait for pods to terminate.
pub struct RunningServer {
    url: String,
    local_addr: SocketAddr,
    data_dir: PathBuf,
    kubeconfig_path: PathBuf,
    ca_pem: String,
    token: String,
    api: Arc<Api>,
    kubelet: Option<Arc<Kubelet>>,
    shutdown: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

impl RunningServer {
    /// `https://127.0.0.1:PORT`
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The kubeconfig clients use (`KUBECONFIG=...`).
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig_path
    }

    /// The CA certificate clients must trust, as PEM.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The bearer token clients present.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The in-process REST layer (for tests and embedding).
    pub fn api(&self) -> &Arc<Api> {
        &self.api
    }

    /// Drops all but the newest `keep` watch-history events, so older watches get 410.
    pub fn compact_history(&self, keep: usize) {
        self.api.store().compact(keep);
    }

    /// Stops accepting requests, ends watches, stops pods and flushes the store.
    pub async fn shutdown(mut self) -> Result<(), ServerError> {
        self.stop().await;
        self.api.store().flush().map_err(ServerError::Flush)?;
        Ok(())
    }

    /// Stops abruptly, as `kill -9` would: pod processes die without status updates, the
    /// store is not flushed (committed writes are durable anyway). For restart tests.
    pub async fn crash(mut self) {
        if let Some(k) = &self.kubelet {
            k.kill_all();
        }
        self.shutdown.cancel();
        for t in self.tasks.drain(..) {
            t.abort();
        }
    }

    async fn stop(&mut self) {
        if let Some(k) = &self.kubelet {
            k.shutdown().await;
        }
        self.shutdown.cancel();
        for t in self.tasks.drain(..) {
            let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
        }
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        // Without a graceful shutdown, pod processes must not outlive the server.
        if let Some(k) = &self.kubelet {
            k.kill_all();
        }
        self.shutdown.cancel();
    }
}
