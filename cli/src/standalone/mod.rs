//! Standalone mode: localkube, the control plane and one agent as child processes on one host,
//! with the CRDs, a `local` StorageProvider and a default `local` BackupRepo installed. Used by
//! `cairnctl up`, `cairnctl quickstart` and the end-to-end tests.
//!
//! # Layout of the data directory
//! - `kube/`: localkube's store, certificates, pod directories (`kube/kubelet/pods`) and its
//!   kubeconfig; `kubeconfig` at the top is a copy users point `KUBECONFIG` at.
//! - `tls/`: the Cairn CA, the control plane's server certificate and the agent certificate,
//!   created on first start and reused later.
//! - `agent/`: the agent's journal (`state/`) and the directory it shares with action pods
//!   (`node/bin/datasafed`, `node/sock/storage.sock`).
//! - `repo/`: the default local repository.
//! - `logs/`: one log file per process.
//! - `api/`: how to reach the public gRPC API (docs/API.md): `endpoint` (`host:port`) and
//!   `ca.crt` (the CA of its server certificate).
//! - `stack.json`: the ports in use, so that a second `up` keeps the same API server address.
//!
//! The data directory and `kube/`, `tls/` and `logs/` are 0700, `kubeconfig`, `stack.json` and
//! the logs 0600, whatever the umask: the store under `kube/` holds every Secret.

pub mod manifests;
pub mod process;

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, PostParams};
use serde::{Deserialize, Serialize};

use self::process::Child;

/// How to bring a stack up.
#[derive(Debug, Clone)]
pub struct StackOptions {
    pub data_dir: PathBuf,
    /// Directory holding `localkube`, `cairn-control-plane`, `cairn-agent` and `datasafed`
    /// (default: the directory of the running executable).
    pub bin_dir: Option<PathBuf>,
    /// Node name (default: localkube's default, the host name).
    pub node_name: Option<String>,
    /// How long agents may be away before their actions fail.
    pub agent_grace_period: String,
    /// Extra `RUST_LOG` for the children.
    pub log_filter: String,
    /// Extra environment of the control planes and the agent (e.g. `OTEL_*`).
    pub env: Vec<(String, String)>,
    /// Run two control planes that elect a leader (high-availability tests); `None`: one
    /// control plane without election.
    pub ha: Option<HaOptions>,
}

/// Two control planes, `cp-0` and `cp-1`, electing a leader through the Lease
/// `default/cairn-control-plane`; the agent is given both addresses and finds the leader.
#[derive(Debug, Clone)]
pub struct HaOptions {
    /// `--leader-election-lease-duration`.
    pub lease_duration: String,
    /// `--leader-election-renew-deadline`.
    pub renew_deadline: String,
    /// `--leader-election-retry-period`.
    pub retry_period: String,
    /// `--heartbeat-interval` (an agent on a frozen leader notices after three of them).
    pub heartbeat_interval: String,
}

/// The name of the Lease the control planes of an HA stack elect their leader with.
pub const HA_LEASE: &str = "cairn-control-plane";

impl StackOptions {
    /// Defaults for `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> StackOptions {
        StackOptions {
            data_dir: data_dir.into(),
            bin_dir: None,
            node_name: None,
            agent_grace_period: "5m".into(),
            log_filter: "info".into(),
            env: Vec::new(),
            ha: None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Ports {
    api: u16,
    agent: u16,
    health: u16,
    /// The public gRPC API (0 in a `stack.json` written before it existed).
    #[serde(default)]
    grpc_api: u16,
}

/// A running stack. Dropping it kills the children; `shutdown` stops them gracefully.
pub struct Stack {
    pub data_dir: PathBuf,
    pub kubeconfig: PathBuf,
    pub node_name: String,
    pub bin_dir: PathBuf,
    pub health_addr: SocketAddr,
    pub agent_addr: SocketAddr,
    pub api_addr: SocketAddr,
    /// The public gRPC API of the control plane `cp-0` (docs/API.md).
    pub public_api_addr: SocketAddr,
    /// The agent's /metrics, /healthz and /readyz.
    pub agent_health_addr: SocketAddr,
    localkube: Child,
    control_plane: Child,
    /// The second control plane of an HA stack (`cp-1`) and its health address.
    standby: Option<(Child, SocketAddr)>,
    agent: Child,
    options: StackOptions,
}

/// Ports this process has handed out: a port is probed free by binding and releasing it, so
/// the kernel may offer it again before its user binds it; one process never hands it out twice
/// (two listeners of one stack once got the same port).
static HANDED_OUT: std::sync::Mutex<std::collections::BTreeSet<u16>> =
    std::sync::Mutex::new(std::collections::BTreeSet::new());

fn hand_out(port: u16) -> bool {
    HANDED_OUT
        .lock()
        .map(|mut ports| ports.insert(port))
        .unwrap_or(true)
}

fn free_port() -> anyhow::Result<u16> {
    for _ in 0..64 {
        let listener = TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
        let port = listener.local_addr()?.port();
        if hand_out(port) {
            return Ok(port);
        }
    }
    anyhow::bail!("finding a free port: the kernel kept offering ports already handed out")
}

/// Whether `port` (the one a stopped stack of this data directory used) can be used again; it
/// is then recorded as handed out, so no other listener gets it.
fn port_is_free(port: u16) -> bool {
    let free = TcpListener::bind(("127.0.0.1", port)).is_ok();
    if free {
        hand_out(port);
    }
    free
}

/// The directory of the running executable (where cargo puts every binary of the workspace).
pub fn default_bin_dir() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("locating this executable")?;
    let mut dir = exe
        .parent()
        .map(Path::to_path_buf)
        .context("this executable has no directory")?;
    // Test executables live in target/<profile>/deps.
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir.pop();
    }
    Ok(dir)
}

impl Stack {
    /// Starts (or resumes, on an existing data directory) the whole stack and waits until the
    /// API server answers, the CRDs are established, the agent is connected and the default
    /// repository is installed.
    ///
    /// Ports are chosen by binding port 0 and letting go, so another process on the machine can
    /// take one before the child binds it; a child that then exits with "Address already in use"
    /// is started again on fresh ports (`load_ports` skips every port that is no longer free).
    pub async fn up(options: StackOptions) -> anyhow::Result<Stack> {
        const ATTEMPTS: usize = 3;
        let mut attempt = 1;
        loop {
            match Self::up_once(options.clone()).await {
                Err(err) if attempt < ATTEMPTS && is_port_taken(&err) => {
                    tracing::warn!(attempt, error = %format!("{err:#}"), "a port of the stack was taken by another process; starting again on fresh ports");
                    attempt += 1;
                }
                started => return started,
            }
        }
    }

    async fn up_once(options: StackOptions) -> anyhow::Result<Stack> {
        let data_dir = absolute(&options.data_dir)?;
        // The data directory holds the cluster's store, keys and kubeconfig: only this user
        // may enter it (also one made by an older version), whatever the umask.
        private_dir(&data_dir)?;
        for sub in ["kube", "tls", "logs"] {
            private_dir(&data_dir.join(sub))?;
        }
        // Shared with action pods through bind mounts (which ignore the modes above them):
        // their owners set their modes.
        for sub in ["agent/state", "agent/node", "repo"] {
            std::fs::create_dir_all(data_dir.join(sub))
                .with_context(|| format!("creating {}", data_dir.join(sub).display()))?;
        }
        let bin_dir = match &options.bin_dir {
            Some(dir) => dir.clone(),
            None => default_bin_dir()?,
        };
        for bin in [
            "localkube",
            "cairn-control-plane",
            "cairn-agent",
            "datasafed",
        ] {
            if !bin_dir.join(bin).is_file() {
                anyhow::bail!(
                    "{} is missing: build the workspace first (cargo build --workspace --bins)",
                    bin_dir.join(bin).display()
                );
            }
        }
        let ports = load_ports(&data_dir)?;
        let node_name = options.node_name.clone().unwrap_or_else(default_node_name);

        let api_addr = SocketAddr::from(([127, 0, 0, 1], ports.api));
        let mut localkube = Child::spawn(
            "localkube",
            &bin_dir.join("localkube"),
            &[
                "--data-dir".into(),
                data_dir.join("kube").display().to_string(),
                "--listen".into(),
                api_addr.to_string(),
                "--node-name".into(),
                node_name.clone(),
            ],
            &[("RUST_LOG", options.log_filter.clone())],
            &data_dir.join("logs/localkube.log"),
        )?;
        let kube_kubeconfig = data_dir.join("kube/kubeconfig");
        wait_for_api(&mut localkube, &kube_kubeconfig).await?;
        let kubeconfig = data_dir.join("kubeconfig");
        std::fs::read(&kube_kubeconfig)
            .and_then(|bytes| private_file(&kubeconfig, &bytes))
            .with_context(|| format!("writing {}", kubeconfig.display()))?;
        let client = client_for(&kubeconfig).await?;
        install_crds(&client).await?;

        let tls_dir = data_dir.join("tls");
        let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
        cairn_certs::ensure_server_cert(&tls_dir, &names)
            .context("creating the control plane's certificate")?;
        let agent_cert = cairn_certs::ensure_agent_cert(&tls_dir, &node_name)
            .context("creating the agent's certificate")?;

        let agent_addr = SocketAddr::from(([127, 0, 0, 1], ports.agent));
        let health_addr = SocketAddr::from(([127, 0, 0, 1], ports.health));
        let public_api_addr = SocketAddr::from(([127, 0, 0, 1], ports.grpc_api));
        write_api_files(&data_dir, &tls_dir, public_api_addr)?;
        let kube_env = ("KUBECONFIG", kubeconfig.display().to_string());
        let mut child_env = vec![kube_env, ("RUST_LOG", options.log_filter.clone())];
        child_env.extend(options.env.iter().map(|(k, v)| (k.as_str(), v.clone())));
        let control_plane_args = |identity: &str, agent: SocketAddr, health: SocketAddr| {
            let mut args: Vec<String> = vec![
                "--tls-dir".into(),
                tls_dir.display().to_string(),
                "--agent-listen".into(),
                agent.to_string(),
                "--health-listen".into(),
                health.to_string(),
                "--agent-grace-period".into(),
                options.agent_grace_period.clone(),
            ];
            match &options.ha {
                None => args.push("--leader-elect=false".into()),
                Some(ha) => args.extend([
                    "--leader-elect=true".into(),
                    "--leader-election-namespace=default".into(),
                    format!("--leader-election-name={HA_LEASE}"),
                    format!("--leader-election-identity={identity}"),
                    format!("--leader-election-lease-duration={}", ha.lease_duration),
                    format!("--leader-election-renew-deadline={}", ha.renew_deadline),
                    format!("--leader-election-retry-period={}", ha.retry_period),
                    format!("--heartbeat-interval={}", ha.heartbeat_interval),
                ]),
            }
            args
        };
        let mut cp0_args = control_plane_args("cp-0", agent_addr, health_addr);
        cp0_args.extend(["--api-listen".into(), public_api_addr.to_string()]);
        let control_plane = Child::spawn(
            "cairn-control-plane",
            &bin_dir.join("cairn-control-plane"),
            &cp0_args,
            &child_env,
            &data_dir.join("logs/control-plane.log"),
        )?;
        let mut endpoints = format!("https://{agent_addr}");
        let standby = match &options.ha {
            None => None,
            Some(_) => {
                let agent = SocketAddr::from(([127, 0, 0, 1], free_port()?));
                let health = SocketAddr::from(([127, 0, 0, 1], free_port()?));
                let child = Child::spawn(
                    "cairn-control-plane",
                    &bin_dir.join("cairn-control-plane"),
                    &control_plane_args("cp-1", agent, health),
                    &child_env,
                    &data_dir.join("logs/control-plane-1.log"),
                )?;
                endpoints.push_str(&format!(",https://{agent}"));
                Some((child, health))
            }
        };
        let agent_health_addr = SocketAddr::from(([127, 0, 0, 1], free_port()?));
        let agent = Child::spawn(
            "cairn-agent",
            &bin_dir.join("cairn-agent"),
            &[
                "--node-name".into(),
                node_name.clone(),
                "--control-plane".into(),
                endpoints,
                "--server-name".into(),
                "localhost".into(),
                "--tls-ca".into(),
                tls_dir.join("ca.pem").display().to_string(),
                "--tls-cert".into(),
                agent_cert.cert.display().to_string(),
                "--tls-key".into(),
                agent_cert.key.display().to_string(),
                "--state-dir".into(),
                data_dir.join("agent/state").display().to_string(),
                "--agent-dir".into(),
                data_dir.join("agent/node").display().to_string(),
                "--kubelet-dir".into(),
                data_dir.join("kube/kubelet").display().to_string(),
                "--datasafed-bin".into(),
                bin_dir.join("datasafed").display().to_string(),
                "--health-listen".into(),
                agent_health_addr.to_string(),
                // Action pods run on this host (localkube): a port on loopback, chosen once
                // so that a restarted agent serves the Jobs it re-adopts at the same address.
                "--storage-listen".into(),
                SocketAddr::from(([127, 0, 0, 1], free_port()?)).to_string(),
            ],
            &child_env,
            &data_dir.join("logs/agent.log"),
        )?;
        let mut stack = Stack {
            kubeconfig,
            node_name,
            bin_dir,
            health_addr,
            agent_addr,
            api_addr,
            public_api_addr,
            agent_health_addr,
            localkube,
            control_plane,
            standby,
            agent,
            options,
            data_dir,
        };
        stack.wait_ready(&client).await?;
        manifests::install_local_repository(&client, &stack.data_dir.join("repo")).await?;
        Ok(stack)
    }

    /// A kube client for the stack's API server.
    pub async fn client(&self) -> anyhow::Result<kube::Client> {
        client_for(&self.kubeconfig).await
    }

    /// Waits until the control plane answers `/healthz` and reports a connected agent.
    async fn wait_ready(&mut self, _client: &kube::Client) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            self.control_plane.check_alive()?;
            self.agent.check_alive()?;
            self.localkube.check_alive()?;
            if let Some((standby, _)) = &mut self.standby {
                standby.check_alive()?;
            }
            for addr in self.health_addrs() {
                if connected_agents(addr).await.unwrap_or(0) > 0 {
                    return Ok(());
                }
            }
            if tokio::time::Instant::now() > deadline {
                anyhow::bail!(
                    "the agent did not connect to the control plane within 60s; see {} and {}",
                    self.data_dir.join("logs/agent.log").display(),
                    self.data_dir.join("logs/control-plane.log").display()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The control plane child (for crash tests).
    pub fn control_plane(&mut self) -> &mut Child {
        &mut self.control_plane
    }

    /// The health addresses of the control planes (`cp-0` first, then `cp-1` in an HA stack).
    pub fn health_addrs(&self) -> Vec<SocketAddr> {
        let mut addrs = vec![self.health_addr];
        addrs.extend(self.standby.as_ref().map(|(_, addr)| *addr));
        addrs
    }

    /// Control plane `index` (0: `cp-0`, 1: `cp-1` of an HA stack) and its health address.
    pub fn control_plane_at(&mut self, index: usize) -> Option<(&mut Child, SocketAddr)> {
        match index {
            0 => Some((&mut self.control_plane, self.health_addr)),
            1 => self.standby.as_mut().map(|(child, addr)| (child, *addr)),
            _ => None,
        }
    }

    /// The agent child (for crash tests).
    pub fn agent(&mut self) -> &mut Child {
        &mut self.agent
    }

    /// Restarts a killed control plane with the same flags.
    pub async fn restart_control_plane(&mut self) -> anyhow::Result<()> {
        self.control_plane.respawn()?;
        Ok(())
    }

    /// Restarts a killed agent with the same flags.
    pub async fn restart_agent(&mut self) -> anyhow::Result<()> {
        self.agent.respawn()?;
        Ok(())
    }

    /// Whether every child is still running.
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        self.localkube.check_alive()?;
        self.control_plane.check_alive()?;
        if let Some((standby, _)) = &mut self.standby {
            standby.check_alive()?;
        }
        self.agent.check_alive()
    }

    /// The options the stack was started with.
    pub fn options(&self) -> &StackOptions {
        &self.options
    }

    /// Stops the agent, the control plane and localkube, in that order, with SIGTERM.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        self.agent.terminate(Duration::from_secs(10)).await;
        if let Some((standby, _)) = &mut self.standby {
            standby.terminate(Duration::from_secs(10)).await;
        }
        self.control_plane.terminate(Duration::from_secs(10)).await;
        self.localkube.terminate(Duration::from_secs(30)).await;
        Ok(())
    }
}

/// Creates `dir` 0700 (and its missing parents), or sets an existing one to 0700.
fn private_dir(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .and_then(|()| std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)))
        .with_context(|| format!("creating {} (mode 0700)", dir.display()))
}

/// Writes `contents` to `path` with mode 0600 (also when it existed).
fn private_file(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    f.write_all(contents)
}

fn absolute(path: &Path) -> anyhow::Result<PathBuf> {
    if path.is_absolute() {
        return Ok(path.to_path_buf());
    }
    Ok(std::env::current_dir()
        .context("reading the current directory")?
        .join(path))
}

fn default_node_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_lowercase())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// Writes `<data-dir>/api/endpoint` and `<data-dir>/api/ca.crt` (the Cairn CA, which issued the
/// control plane's server certificate).
fn write_api_files(data_dir: &Path, tls_dir: &Path, addr: SocketAddr) -> anyhow::Result<()> {
    let dir = data_dir.join("api");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let endpoint = dir.join("endpoint");
    std::fs::write(&endpoint, format!("{addr}\n"))
        .with_context(|| format!("writing {}", endpoint.display()))?;
    let ca = tls_dir.join("ca.pem");
    std::fs::copy(&ca, dir.join("ca.crt")).with_context(|| {
        format!(
            "copying {} to {}",
            ca.display(),
            dir.join("ca.crt").display()
        )
    })?;
    Ok(())
}

/// Whether start-up failed because a child could not bind its port.
fn is_port_taken(err: &anyhow::Error) -> bool {
    format!("{err:#}").contains("Address already in use")
}

fn load_ports(data_dir: &Path) -> anyhow::Result<Ports> {
    let file = data_dir.join("stack.json");
    let saved: Option<Ports> = std::fs::read(&file)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok());
    let ports = match saved {
        Some(ports) if port_is_free(ports.api) => Ports {
            api: ports.api,
            grpc_api: if ports.grpc_api != 0 && port_is_free(ports.grpc_api) {
                ports.grpc_api
            } else {
                free_port()?
            },
            agent: if port_is_free(ports.agent) {
                ports.agent
            } else {
                free_port()?
            },
            health: if port_is_free(ports.health) {
                ports.health
            } else {
                free_port()?
            },
        },
        _ => Ports {
            api: free_port()?,
            grpc_api: free_port()?,
            agent: free_port()?,
            health: free_port()?,
        },
    };
    private_file(&file, &serde_json::to_vec_pretty(&ports)?)
        .with_context(|| format!("writing {}", file.display()))?;
    Ok(ports)
}

async fn wait_for_api(localkube: &mut Child, kubeconfig: &Path) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        localkube.check_alive()?;
        if kubeconfig.is_file()
            && let Ok(client) = client_for(kubeconfig).await
            && client.apiserver_version().await.is_ok()
        {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            anyhow::bail!("localkube did not answer within 60s; see its log");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A kube client from a kubeconfig file.
pub async fn client_for(kubeconfig: &Path) -> anyhow::Result<kube::Client> {
    let config = kube::config::Kubeconfig::read_from(kubeconfig)
        .with_context(|| format!("reading {}", kubeconfig.display()))?;
    let config = kube::Config::from_custom_kubeconfig(config, &Default::default())
        .await
        .context("loading the kubeconfig")?;
    kube::Client::try_from(config).context("creating the Kubernetes client")
}

/// Creates or updates Cairn's CRDs and waits until they are established.
pub async fn install_crds(client: &kube::Client) -> anyhow::Result<()> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in cairn_api::crds::all() {
        let name = crd.metadata.name.clone().unwrap_or_default();
        match api.get_opt(&name).await? {
            Some(existing) => {
                let mut updated = crd.clone();
                updated.metadata.resource_version = existing.metadata.resource_version;
                api.replace(&name, &PostParams::default(), &updated)
                    .await
                    .with_context(|| format!("updating CRD {name}"))?;
            }
            None => {
                api.create(&PostParams::default(), &crd)
                    .await
                    .with_context(|| format!("creating CRD {name}"))?;
            }
        }
        let established = kube::runtime::wait::await_condition(
            api.clone(),
            &name,
            kube::runtime::wait::conditions::is_crd_established(),
        );
        tokio::time::timeout(Duration::from_secs(30), established)
            .await
            .with_context(|| format!("CRD {name} was not established within 30s"))?
            .with_context(|| format!("waiting for CRD {name}"))?;
    }
    Ok(())
}

/// A tiny HTTP/1.0 GET for the health port (no client crate needed for one call).
async fn http_get(addr: SocketAddr, path: &str) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await
        .ok()?;
    let mut body = String::new();
    stream.read_to_string(&mut body).await.ok()?;
    body.split_once("\r\n\r\n").map(|(_, b)| b.to_string())
}

/// The metrics text of a control plane or agent health port.
pub async fn metrics(addr: SocketAddr) -> Option<String> {
    http_get(addr, "/metrics").await
}

/// The body of a control plane's `/healthz` or `/readyz` (`None` when it does not answer).
pub async fn probe(addr: SocketAddr, path: &str) -> Option<String> {
    http_get(addr, path).await
}

/// `cairn_connected_agents` of the control plane at `addr` (`None` when it does not answer).
pub async fn connected_agents(addr: SocketAddr) -> Option<i64> {
    let text = http_get(addr, "/metrics").await?;
    text.lines()
        .find_map(|l| l.strip_prefix("cairn_connected_agents "))
        .and_then(|v| v.trim().parse().ok())
}

#[cfg(test)]
mod port_tests {
    use super::*;

    #[test]
    fn free_ports_handed_out_by_one_process_are_distinct() {
        let ports: Vec<u16> = (0..200).map(|_| free_port().unwrap()).collect();
        let distinct: std::collections::BTreeSet<u16> = ports.iter().copied().collect();
        assert_eq!(distinct.len(), ports.len());
    }
}
