//! datasafed's agent mode: with `CAIRN_STORAGE_ENDPOINT` (an action pod: the agent's TLS
//! endpoint, trusting only the certificate in `CAIRN_STORAGE_CERT`) or `CAIRN_STORAGE_SOCKET`
//! (the agent's unix socket, on its own host) set, every operation goes to the node agent with
//! the action's bearer token (docs/PROTOCOL.md §3). No config file, credential or encryption
//! key is read: the agent holds them.
//!
//! Paths are joined with `DATASAFED_BACKEND_BASE_PATH` exactly as the direct client joins
//! them, and sent as absolute repository paths; listings come back with absolute paths and
//! are shown as the user typed the listed path, so output is identical to direct mode.

use std::fmt;
use std::io::Read as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, bail};
use bytes::BytesMut;
use cairn_proto::datasafed::transport;
use cairn_proto::datasafed::v1 as pb;
use cairn_proto::datasafed::v1::put_request::Msg;
use cairn_proto::datasafed::v1::storage_client::StorageClient;
use cairn_repo::Compression;
use cairn_repo::config::Secret;
use cairn_repo::plain::{Entry, ListOptions, SortBy, StatSummary, normalize};
use jiff::Timestamp;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::io::{StreamReader, SyncIoBridge};
use tonic::metadata::AsciiMetadataValue;
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};
use tonic::{Request, Status};

use super::settings::env::BACKEND_BASE_PATH;

/// The environment the node agent gives a job action.
pub mod env {
    use cairn_proto::datasafed::transport;
    /// The agent's storage endpoint `https://HOST:PORT`; selects agent mode.
    pub const ENDPOINT: &str = transport::ENV_ENDPOINT;
    /// The certificate (PEM) the endpoint must present.
    pub const CERT: &str = transport::ENV_CERT;
    /// The agent's storage socket; selects agent mode when no endpoint is given.
    pub const SOCKET: &str = transport::ENV_SOCKET;
    /// The action's bearer token.
    pub const TOKEN: &str = transport::ENV_TOKEN;
}

/// How datasafed reaches the node agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentAddress {
    /// The agent's unix socket.
    Socket(PathBuf),
    /// The agent's TLS endpoint and the one certificate it must present.
    Endpoint { url: String, cert_pem: String },
}

impl fmt::Display for AgentAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AgentAddress::Socket(path) => write!(f, "socket {}", path.display()),
            AgentAddress::Endpoint { url, .. } => write!(f, "endpoint {url}"),
        }
    }
}

/// The largest data message `push` sends.
pub const CHUNK_SIZE: usize = 1 << 20;

/// Chunks received but not yet decompressed (a pull answered still compressed).
const DECOMPRESS_QUEUE: usize = 4;

/// How often a pull that decompresses here reports its bytes to the agent.
const REPORT_INTERVAL: std::time::Duration = std::time::Duration::from_millis(250);

/// Where the agent is and who we are to it.
#[derive(Debug, Clone)]
pub struct SocketSettings {
    /// Where the agent is.
    pub agent: AgentAddress,
    token: Secret,
    /// `DATASAFED_BACKEND_BASE_PATH`, normalised (may be empty).
    pub base_path: String,
}

impl SocketSettings {
    /// Agent settings when `CAIRN_STORAGE_ENDPOINT` or `CAIRN_STORAGE_SOCKET` is set, `None`
    /// otherwise.
    pub fn from_env(
        env: &dyn Fn(&str) -> Option<String>,
    ) -> anyhow::Result<Option<SocketSettings>> {
        let get = |name: &str| env(name).filter(|v| !v.trim().is_empty());
        let (agent, selected_by) = match (get(env::ENDPOINT), get(env::SOCKET)) {
            (Some(url), _) => {
                let cert_pem = get(env::CERT).with_context(|| {
                    format!("{} is set but {} is empty", env::ENDPOINT, env::CERT)
                })?;
                let url = url.trim().to_string();
                if !url.starts_with("https://") {
                    bail!("{} = {url:?} is not an https:// address", env::ENDPOINT);
                }
                (AgentAddress::Endpoint { url, cert_pem }, env::ENDPOINT)
            }
            (None, Some(socket)) => (
                AgentAddress::Socket(PathBuf::from(socket.trim())),
                env::SOCKET,
            ),
            (None, None) => return Ok(None),
        };
        let token = get(env::TOKEN)
            .with_context(|| format!("{selected_by} is set but {} is empty", env::TOKEN))?;
        let base_path = normalize(&get(BACKEND_BASE_PATH).unwrap_or_default())
            .with_context(|| format!("reading {BACKEND_BASE_PATH}"))?;
        Ok(Some(SocketSettings {
            agent,
            token: Secret::new(token.trim()),
            base_path,
        }))
    }

    /// `getconf section.field` in agent-socket mode: the storage configuration is the node
    /// agent's, so no storage item is known here; the error says so.
    pub fn getconf(&self, item: &str) -> anyhow::Result<String> {
        if !item.contains('.') {
            bail!("invalid config item name {item:?}");
        }
        bail!(
            "config item {item:?} not found: in agent-socket mode the node agent holds the storage configuration"
        )
    }

    /// What `getconf` prints in this mode (the token redacted).
    pub fn describe(&self) -> String {
        format!(
            "# agent-socket mode: the node agent holds the storage configuration, credentials and encryption keys\n\
             [agent]\n{}\ntoken = ***\n\n[datasafed]\nbase_path = /{}\nmode = agent-socket\n",
            match &self.agent {
                AgentAddress::Socket(path) => format!("socket = {}", path.display()),
                AgentAddress::Endpoint { url, .. } => format!("endpoint = {url}"),
            },
            self.base_path
        )
    }
}

/// Puts the bearer token on every call.
#[derive(Clone)]
struct Bearer(AsciiMetadataValue);

impl Interceptor for Bearer {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        request
            .metadata_mut()
            .insert("authorization", self.0.clone());
        Ok(request)
    }
}

/// A connection to the node agent's storage socket.
#[derive(Clone)]
pub struct SocketClient {
    client: StorageClient<InterceptedService<Channel, Bearer>>,
    agent: AgentAddress,
    base_path: String,
}

impl fmt::Debug for SocketClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SocketClient")
            .field("agent", &self.agent.to_string())
            .field("base_path", &self.base_path)
            .finish_non_exhaustive()
    }
}

/// Why reading the local data of a push stopped, with the request body's sender kept so the
/// upload is never ended cleanly (which would store a truncated file).
struct PumpFailed {
    error: std::io::Error,
    sender: mpsc::Sender<pb::PutRequest>,
}

impl SocketClient {
    /// Connects to the agent.
    pub async fn connect(settings: &SocketSettings) -> anyhow::Result<SocketClient> {
        let mut bearer =
            AsciiMetadataValue::try_from(format!("Bearer {}", settings.token.expose())).map_err(
                |_| {
                    anyhow::anyhow!(
                        "{} holds characters that cannot be sent in a header",
                        env::TOKEN
                    )
                },
            )?;
        bearer.set_sensitive(true);
        let channel = match &settings.agent {
            AgentAddress::Socket(path) => {
                let socket = path.display().to_string();
                Endpoint::from_shared(format!("unix:{socket}"))
                    .with_context(|| {
                        format!("{} = {socket:?} is not a usable socket path", env::SOCKET)
                    })?
                    .connect()
                    .await
                    .with_context(|| {
                        format!(
                            "connecting to the node agent's storage socket {socket} ({})",
                            env::SOCKET
                        )
                    })?
            }
            AgentAddress::Endpoint { url, cert_pem } => {
                // The agent's certificate is the only trust anchor: a pin, checked for the
                // fixed name it carries (the address is an IP).
                let tls = ClientTlsConfig::new()
                    .ca_certificate(Certificate::from_pem(cert_pem))
                    .domain_name(transport::SERVER_NAME);
                Endpoint::from_shared(url.clone())
                    .with_context(|| {
                        format!("{} = {url:?} is not a usable address", env::ENDPOINT)
                    })?
                    .tls_config(tls)
                    .with_context(|| format!("{} is not a usable certificate", env::CERT))?
                    .connect_timeout(std::time::Duration::from_secs(30))
                    .connect()
                    .await
                    .with_context(|| {
                        format!(
                            "connecting to the node agent's storage endpoint {url} ({})",
                            env::ENDPOINT
                        )
                    })?
            }
        };
        Ok(SocketClient {
            client: StorageClient::with_interceptor(channel, Bearer(bearer)),
            agent: settings.agent.clone(),
            base_path: settings.base_path.clone(),
        })
    }

    /// The absolute repository path of a remote path, as the direct client resolves it
    /// under its base path.
    fn remote(&self, path: &str) -> anyhow::Result<String> {
        let relative = normalize(path)?;
        Ok(join(&self.base_path, &relative))
    }

    /// `push`: streams `reader` to `path` in chunks of at most [`CHUNK_SIZE`]; returns the
    /// bytes the agent received. A failed read resets the call, so nothing is stored.
    pub async fn put<R>(
        &self,
        path: &str,
        reader: R,
        compression: Option<&str>,
    ) -> anyhow::Result<u64>
    where
        R: AsyncRead + Send + Unpin + 'static,
    {
        if let Some(name) = compression {
            Compression::parse(name)?;
        }
        if normalize(path)?.is_empty() {
            bail!("cannot push to the repository root (empty path)");
        }
        let header = pb::PutRequest {
            msg: Some(Msg::Header(pb::PutHeader {
                path: self.remote(path)?,
                compression: compression.unwrap_or_default().to_string(),
            })),
        };
        let (tx, rx) = mpsc::channel(2);
        tx.send(header)
            .await
            .map_err(|_| anyhow::anyhow!("the push stopped before it started"))?;
        let mut client = self.client.clone();
        let call = client.put(ReceiverStream::new(rx));
        let pump = pump(reader, tx);
        tokio::pin!(call, pump);
        let mut pumped = false;
        loop {
            tokio::select! {
                response = &mut call => {
                    return response.map(|r| r.into_inner().bytes).map_err(failed);
                }
                result = &mut pump, if !pumped => match result {
                    Ok(()) => pumped = true,
                    Err(PumpFailed { error, sender }) => {
                        // The body must never end cleanly now, or the agent would store what
                        // it got. Returning drops `call`, which resets the stream; the sender
                        // is leaked so that not even the runtime's shutdown (the process exits
                        // next) can close the body first: a task holding it was dropped at
                        // shutdown and its end-of-stream sometimes reached the agent.
                        std::mem::forget(sender);
                        return Err(anyhow::Error::new(error).context("reading the data to push"));
                    }
                },
            }
        }
    }

    /// `pull`: writes the file at `path` into `writer`, in order; returns the bytes written.
    /// With a decompression, the agent may answer with the stored bytes still compressed
    /// (docs/PROTOCOL.md §3.2); they are then decompressed here, on a blocking thread, while
    /// the next ones arrive, and the decompressed bytes are reported for the action's progress.
    pub async fn get<W>(
        &self,
        path: &str,
        mut writer: W,
        decompression: Option<&str>,
    ) -> anyhow::Result<u64>
    where
        W: AsyncWrite + Send + Unpin + 'static,
    {
        if let Some(name) = decompression {
            Compression::parse(name)?;
        }
        let request = pb::GetRequest {
            path: self.remote(path)?,
            decompression: decompression.unwrap_or_default().to_string(),
            client_decompresses: decompression.is_some(),
        };
        let response = self.client.clone().get(request).await.map_err(failed)?;
        let still_compressed = response
            .metadata()
            .get(transport::CONTENT_COMPRESSION)
            .map(|value| {
                let name = value.to_str().unwrap_or_default();
                Compression::parse(name).with_context(|| {
                    format!(
                        "the node agent sent {path} compressed with {name:?}, which this datasafed cannot decompress"
                    )
                })
            })
            .transpose()?;
        let mut stream = response.into_inner();
        if let Some(compression) = still_compressed {
            return self.decompress(path, stream, writer, compression).await;
        }
        let mut written = 0u64;
        while let Some(chunk) = stream.message().await.map_err(failed)? {
            writer
                .write_all(&chunk.data)
                .await
                .with_context(|| format!("writing {path} to its destination"))?;
            written += chunk.data.len() as u64;
        }
        writer
            .flush()
            .await
            .and(writer.shutdown().await)
            .with_context(|| format!("writing {path} to its destination"))?;
        Ok(written)
    }

    /// The rest of a `Get` answered still compressed: chunks go from the call to a blocking
    /// thread that decompresses them into `writer`; what it wrote is reported to the agent
    /// about every [`REPORT_INTERVAL`] and once at the end.
    async fn decompress<W>(
        &self,
        path: &str,
        mut stream: tonic::Streaming<pb::DataChunk>,
        writer: W,
        compression: Compression,
    ) -> anyhow::Result<u64>
    where
        W: AsyncWrite + Send + Unpin + 'static,
    {
        let (tx, rx) = mpsc::channel::<std::io::Result<bytes::Bytes>>(DECOMPRESS_QUEUE);
        let written = Arc::new(AtomicU64::new(0));
        let decoder = {
            let written = written.clone();
            let source = SyncIoBridge::new(StreamReader::new(ReceiverStream::new(rx)));
            let sink = SyncIoBridge::new(writer);
            let name = path.to_string();
            tokio::task::spawn_blocking(move || {
                decompress_into(source, sink, compression, &written, &name)
            })
        };
        let receive = async {
            while let Some(chunk) = stream.message().await.map_err(failed)? {
                if tx.send(Ok(bytes::Bytes::from(chunk.data))).await.is_err() {
                    // The decoder stopped early; its result says why.
                    break;
                }
            }
            drop(tx);
            Ok::<(), anyhow::Error>(())
        };
        let mut reported = 0u64;
        let mut ticks = tokio::time::interval(REPORT_INTERVAL);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(decoder, receive);
        let mut received = false;
        let decoded = loop {
            tokio::select! {
                result = &mut receive, if !received => {
                    result?;
                    received = true;
                }
                result = &mut decoder => {
                    break result.map_err(|e| anyhow::anyhow!("the decompression thread failed: {e}"))?;
                }
                _ = ticks.tick() => {
                    reported = self.report(&written, reported).await;
                }
            }
        };
        let total = decoded?;
        if !received {
            // Everything decoded means the stream ended; take its status (an error after the
            // last chunk still fails the pull).
            receive.await?;
        }
        self.report(&written, reported).await;
        Ok(total)
    }

    /// Reports the bytes written since `reported` (progress only: a failure is logged and
    /// the next report carries the bytes); returns what has now been reported.
    async fn report(&self, written: &AtomicU64, reported: u64) -> u64 {
        let now = written.load(Ordering::Relaxed);
        if now <= reported {
            return reported;
        }
        let request = pb::PulledReport {
            bytes: now - reported,
        };
        match self.client.clone().report_pulled(request).await {
            Ok(_) => now,
            Err(status) => {
                tracing::debug!(error = %status.message(), "reporting pulled bytes failed");
                reported
            }
        }
    }

    /// `list`: the agent filters and sorts; paths are shown as `path` was typed.
    pub async fn list(&self, path: &str, options: &ListOptions) -> anyhow::Result<Vec<Entry>> {
        // A bad glob fails here exactly as in direct mode.
        options.filter()?;
        let listed = self.remote(path)?;
        let request = list_request(&listed, options);
        let mut stream = self
            .client
            .clone()
            .list(request)
            .await
            .map_err(failed)?
            .into_inner();
        let mut entries = Vec::new();
        while let Some(entry) = stream.message().await.map_err(failed)? {
            entries.push(entry_of(path, &listed, entry)?);
        }
        Ok(entries)
    }

    /// `stat`.
    pub async fn stat(&self, path: &str) -> anyhow::Result<StatSummary> {
        let request = pb::StatRequest {
            path: self.remote(path)?,
        };
        let stat = self
            .client
            .clone()
            .stat(request)
            .await
            .map_err(failed)?
            .into_inner();
        Ok(StatSummary {
            total_size: stat.total_size,
            entries: stat.entries,
            dirs: stat.dirs,
            files: stat.files,
        })
    }

    /// `rm [-r]`.
    pub async fn remove(&self, path: &str, recursive: bool) -> anyhow::Result<()> {
        self.remove_request(path, recursive, false).await
    }

    /// `rmdir`.
    pub async fn rmdir(&self, path: &str) -> anyhow::Result<()> {
        self.remove_request(path, false, true).await
    }

    async fn remove_request(
        &self,
        path: &str,
        recursive: bool,
        dir_only: bool,
    ) -> anyhow::Result<()> {
        let request = pb::RemoveRequest {
            path: self.remote(path)?,
            recursive,
            dir_only,
        };
        self.client.clone().remove(request).await.map_err(failed)?;
        Ok(())
    }

    /// `mkdir`.
    pub async fn mkdir(&self, path: &str) -> anyhow::Result<()> {
        let request = pb::MkdirRequest {
            path: self.remote(path)?,
        };
        self.client.clone().mkdir(request).await.map_err(failed)?;
        Ok(())
    }
}

/// Decompresses `source` into `sink` in blocks of [`CHUNK_SIZE`], counting what was written
/// into `written`; returns the total.
fn decompress_into<W: AsyncWrite + Unpin>(
    source: impl std::io::Read + Send + 'static,
    mut sink: SyncIoBridge<W>,
    compression: Compression,
    written: &AtomicU64,
    name: &str,
) -> anyhow::Result<u64> {
    let corrupt =
        || format!("decompressing {name}: the data is not in the expected format or is damaged");
    let mut decoder = compression
        .decompressing(std::io::BufReader::with_capacity(CHUNK_SIZE, source))
        .with_context(corrupt)?;
    let mut buffer = vec![0u8; CHUNK_SIZE];
    let mut total = 0u64;
    loop {
        let n = match decoder.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(anyhow::Error::new(e).context(corrupt())),
        };
        std::io::Write::write_all(&mut sink, &buffer[..n])
            .with_context(|| format!("writing {name} to its destination"))?;
        total += n as u64;
        written.store(total, Ordering::Relaxed);
    }
    std::io::Write::flush(&mut sink)
        .and_then(|()| sink.shutdown())
        .with_context(|| format!("writing {name} to its destination"))?;
    Ok(total)
}

/// Sends `reader` as data messages of [`CHUNK_SIZE`] (the last one shorter); dropping the
/// sender at the end is the end of the upload.
async fn pump<R>(mut reader: R, tx: mpsc::Sender<pb::PutRequest>) -> Result<(), PumpFailed>
where
    R: AsyncRead + Unpin,
{
    let mut buffer = BytesMut::with_capacity(CHUNK_SIZE);
    loop {
        let read = match reader.read_buf(&mut buffer).await {
            Ok(read) => read,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(PumpFailed { error, sender: tx }),
        };
        let done = read == 0;
        if buffer.len() >= CHUNK_SIZE || (done && !buffer.is_empty()) {
            let data = buffer.split().freeze();
            buffer.reserve(CHUNK_SIZE);
            let message = pb::PutRequest {
                msg: Some(Msg::Data(data.into())),
            };
            if tx.send(message).await.is_err() {
                // The call ended early; its status says why.
                return Ok(());
            }
        }
        if done {
            return Ok(());
        }
    }
}

/// `base` and a normalised relative path joined (either may be empty).
fn join(base: &str, relative: &str) -> String {
    match (base.is_empty(), relative.is_empty()) {
        (true, _) => relative.to_string(),
        (false, true) => base.to_string(),
        (false, false) => format!("{base}/{relative}"),
    }
}

fn list_request(listed: &str, options: &ListOptions) -> pb::ListRequest {
    let time = |t: Option<Timestamp>| t.map(|t| t.to_string()).unwrap_or_default();
    pb::ListRequest {
        path: listed.to_string(),
        recursive: options.recursive,
        dirs_only: options.dirs_only,
        files_only: options.files_only,
        // 0 is "unlimited" on the wire; the engine treats a depth of 0 as 1.
        max_depth: options
            .max_depth
            .map_or(0, |depth| u32::try_from(depth.max(1)).unwrap_or(u32::MAX)),
        sort_by: match options.sort_by {
            SortBy::Path => "path",
            SortBy::Size => "size",
            SortBy::Mtime => "mtime",
        }
        .to_string(),
        reverse: options.reverse,
        newer_than: time(options.newer_than),
        older_than: time(options.older_than),
        name_glob: options.name_glob.clone().unwrap_or_default(),
    }
}

/// An entry from the agent (absolute path) as the direct client shows it: the listed path
/// as typed, joined with the entry's path below it.
fn entry_of(typed: &str, listed: &str, entry: pb::Entry) -> anyhow::Result<Entry> {
    let below = if listed.is_empty() {
        Some(entry.path.as_str())
    } else {
        entry
            .path
            .strip_prefix(listed)
            .filter(|rest| rest.is_empty() || rest.starts_with('/'))
            .map(|rest| rest.trim_start_matches('/'))
    };
    let path = match below {
        Some("") => typed.to_string(),
        Some(relative) => cairn_repo::plain::path::display(typed, relative),
        None => bail!(
            "the node agent listed {:?}, which is not under the listed path /{listed}",
            entry.path
        ),
    };
    let modified = match entry.modified.as_str() {
        "" => None,
        text => Some(text.parse::<Timestamp>().with_context(|| {
            format!(
                "the node agent sent modification time {text:?} for {}",
                entry.path
            )
        })?),
    };
    Ok(Entry {
        name: entry
            .path
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_string(),
        path,
        is_dir: entry.is_dir,
        size: entry.size,
        modified,
    })
}

/// A call's failure as the user sees it: the agent's message (with its cause chain), or the
/// transport's when the agent was never reached.
fn failed(status: Status) -> anyhow::Error {
    let mut text = status.message().to_string();
    if text.is_empty() {
        text = format!("the node agent answered {:?}", status.code());
    }
    let mut source = std::error::Error::source(&status);
    while let Some(cause) = source {
        let line = cause.to_string();
        if !line.is_empty() && !text.contains(&line) {
            text.push_str(": ");
            text.push_str(&line);
        }
        source = cause.source();
    }
    anyhow::Error::msg(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        }
    }

    #[test]
    fn the_socket_variable_selects_agent_socket_mode() {
        assert!(
            SocketSettings::from_env(&env_of(&[]))
                .expect("env")
                .is_none()
        );
        let settings = SocketSettings::from_env(&env_of(&[
            (env::SOCKET, "/var/run/cairn/storage.sock"),
            (env::TOKEN, "abc123"),
            (BACKEND_BASE_PATH, "/ns//policy/b1/"),
        ]))
        .expect("env")
        .expect("socket mode");
        assert_eq!(
            settings.agent,
            AgentAddress::Socket(PathBuf::from("/var/run/cairn/storage.sock"))
        );
        assert_eq!(settings.base_path, "ns/policy/b1");
    }

    #[test]
    fn the_endpoint_variable_selects_the_agents_tls_endpoint_with_its_certificate() {
        let settings = SocketSettings::from_env(&env_of(&[
            (env::ENDPOINT, "https://10.0.0.7:9444"),
            (env::CERT, "PEM"),
            (env::SOCKET, "/s"),
            (env::TOKEN, "abc123"),
        ]))
        .expect("env")
        .expect("agent mode");
        assert_eq!(
            settings.agent,
            AgentAddress::Endpoint {
                url: "https://10.0.0.7:9444".into(),
                cert_pem: "PEM".into()
            }
        );
        assert!(
            settings
                .describe()
                .contains("endpoint = https://10.0.0.7:9444")
        );
        let err = SocketSettings::from_env(&env_of(&[
            (env::ENDPOINT, "https://10.0.0.7:9444"),
            (env::TOKEN, "abc123"),
        ]))
        .expect_err("no certificate");
        assert_eq!(
            err.to_string(),
            "CAIRN_STORAGE_ENDPOINT is set but CAIRN_STORAGE_CERT is empty"
        );
        let err = SocketSettings::from_env(&env_of(&[
            (env::ENDPOINT, "http://10.0.0.7:9444"),
            (env::CERT, "PEM"),
            (env::TOKEN, "abc123"),
        ]))
        .expect_err("plaintext");
        assert!(err.to_string().contains("not an https://"), "{err}");
    }

    #[test]
    fn a_socket_without_a_token_is_an_error_naming_both_variables() {
        let err = SocketSettings::from_env(&env_of(&[(env::SOCKET, "/s")])).expect_err("no token");
        assert_eq!(
            err.to_string(),
            "CAIRN_STORAGE_SOCKET is set but CAIRN_STORAGE_TOKEN is empty"
        );
    }

    #[test]
    fn getconf_and_debug_never_show_the_token() {
        let settings = SocketSettings::from_env(&env_of(&[
            (env::SOCKET, "/s"),
            (env::TOKEN, "supersecrettoken"),
        ]))
        .expect("env")
        .expect("socket mode");
        assert!(!settings.describe().contains("supersecrettoken"));
        assert!(settings.describe().contains("agent-socket"));
        assert!(!format!("{settings:?}").contains("supersecrettoken"));
    }

    #[test]
    fn remote_paths_join_the_base_path_like_the_direct_client() {
        assert_eq!(join("ns/b1", "x/y"), "ns/b1/x/y");
        assert_eq!(join("ns/b1", ""), "ns/b1");
        assert_eq!(join("", "x"), "x");
        assert_eq!(join("", ""), "");
    }

    fn wire(path: &str, is_dir: bool) -> pb::Entry {
        pb::Entry {
            path: path.into(),
            is_dir,
            size: 3,
            modified: if is_dir {
                String::new()
            } else {
                "2024-01-02T03:04:05.000000123Z".into()
            },
        }
    }

    #[test]
    fn listed_paths_are_shown_as_the_user_typed_the_listed_path() {
        // Below the root, names are relative as apecloud/datasafed prints them (rclone's
        // `Remote()`, ARCHITECTURE.md §K5.6); below a directory, as typed.
        let shown = |typed: &str, listed: &str, path: &str| {
            entry_of(typed, listed, wire(path, false))
                .expect("entry")
                .path
        };
        assert_eq!(shown("/", "ns/b1", "ns/b1/data.tar.zst"), "data.tar.zst");
        assert_eq!(shown("", "ns/b1", "ns/b1/data.tar.zst"), "data.tar.zst");
        assert_eq!(shown("sub/", "ns/b1/sub", "ns/b1/sub/x"), "sub/x");
        assert_eq!(
            shown("b1.tar.zst", "ns/b1/b1.tar.zst", "ns/b1/b1.tar.zst"),
            "b1.tar.zst"
        );
        assert_eq!(shown("/", "", "ns"), "ns");
        let entry = entry_of("/", "ns/b1", wire("ns/b1/sub/x.log", false)).expect("entry");
        assert_eq!(entry.name, "x.log");
        assert_eq!(
            entry.modified.map(|t| t.subsec_nanosecond()),
            Some(123),
            "times keep nanoseconds"
        );
        assert!(
            entry_of("/", "ns/b1", wire("ns/b1/d", true))
                .expect("dir")
                .modified
                .is_none()
        );
    }

    #[test]
    fn an_entry_outside_the_listed_path_is_refused() {
        assert!(entry_of("/", "ns/b1", wire("ns/b10/x", false)).is_err());
        assert!(entry_of("/", "ns/b1", wire("other", false)).is_err());
    }

    #[test]
    fn list_options_travel_with_unlimited_depth_as_zero() {
        let request = list_request(
            "ns/b1",
            &ListOptions {
                recursive: true,
                sort_by: SortBy::Mtime,
                newer_than: Timestamp::from_second(60).ok(),
                name_glob: Some("*.zst".into()),
                ..Default::default()
            },
        );
        assert_eq!(request.max_depth, 0);
        assert_eq!(request.sort_by, "mtime");
        assert_eq!(request.newer_than, "1970-01-01T00:01:00Z");
        assert_eq!(request.name_glob, "*.zst");
        let depth = list_request(
            "x",
            &ListOptions {
                max_depth: Some(0),
                ..Default::default()
            },
        );
        assert_eq!(
            depth.max_depth, 1,
            "--max-depth 0 lists one level, as in direct mode"
        );
    }

    #[test]
    fn a_status_prints_as_its_message() {
        let err = failed(Status::permission_denied(
            "writing /ns/b2/x is not allowed: this action may write only under /ns/b1",
        ));
        assert_eq!(
            format!("{err:#}"),
            "writing /ns/b2/x is not allowed: this action may write only under /ns/b1"
        );
        assert!(format!("{:#}", failed(Status::unknown(""))).contains("Unknown"));
    }
}
