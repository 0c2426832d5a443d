//! A real S3-compatible server on loopback for the tests: SeaweedFS (`weed mini`) with fresh
//! random credentials per server, so a test can search for the secret key everywhere and know
//! that any hit is a leak.
//!
//! cairn-repo's `testing::SeaweedFs` is not reused because its keys are fixed strings; the
//! start-up approach (13 consecutive random ports, one owner thread, parent-death signal) is
//! the same.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::Context as _;

/// Ports `weed mini` binds, consecutive from a random base.
const PORTS: u16 = 13;

/// A running SeaweedFS server; dropping it stops the server.
pub struct SeaweedFs {
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    /// The bucket created at start.
    pub bucket: String,
    pub access_key: String,
    pub secret_key: String,
    stop: Option<mpsc::Sender<()>>,
}

impl SeaweedFs {
    /// Starts a server with its data under `dir`; fails when `weed` is missing from `PATH`
    /// (pointing at ./test.sh) or does not answer within 60 s.
    pub fn start(dir: &Path) -> anyhow::Result<SeaweedFs> {
        let weed = crate::tools::find("weed")?;
        std::fs::create_dir_all(dir.join("data"))
            .with_context(|| format!("creating {}", dir.display()))?;
        let access_key = format!("e2e{}", random_hex(8));
        let secret_key = format!("s3secret{}", random_hex(16));
        let bucket = "cairn-e2e".to_string();
        let config = dir.join("s3.json");
        std::fs::write(
            &config,
            format!(
                r#"{{"identities":[{{"name":"admin","credentials":[{{"accessKey":"{access_key}","secretKey":"{secret_key}"}}],"actions":["Admin","Read","Write","List","Tagging"]}}]}}"#
            ),
        )
        .with_context(|| format!("writing {}", config.display()))?;
        let mut last_error = String::new();
        for _attempt in 0..5 {
            let base = 20000 + 20 * (rand::random::<u16>() % 1000);
            if !ports_free(base) {
                continue;
            }
            match spawn(&weed, dir, &config, &bucket, base) {
                Ok((endpoint, stop)) => {
                    return Ok(SeaweedFs {
                        endpoint,
                        bucket,
                        access_key,
                        secret_key,
                        stop: Some(stop),
                    });
                }
                Err(error) => last_error = error.to_string(),
            }
        }
        anyhow::bail!("SeaweedFS did not start: {last_error}")
    }

    /// A datasafed configuration reaching the bucket directly (for a test to look at what a
    /// backup stored, as an operator with the keys would).
    pub fn datasafed_config(&self) -> String {
        format!(
            "[storage]\ntype = s3\nprovider = Minio\nenv_auth = false\naccess_key_id = {}\n\
             secret_access_key = {}\nregion = us-east-1\nendpoint = {}\nroot = {}\n",
            self.access_key, self.secret_key, self.endpoint, self.bucket
        )
    }
}

impl Drop for SeaweedFs {
    fn drop(&mut self) {
        // The owner thread kills the server when the channel closes.
        self.stop.take();
    }
}

fn random_hex(bytes: usize) -> String {
    (0..bytes)
        .map(|_| format!("{:02x}", rand::random::<u8>()))
        .collect()
}

fn ports_free(base: u16) -> bool {
    // `weed` also binds the gRPC port of its S3 gateway 10000 above it.
    (base..base + PORTS)
        .chain([base + 10 + 10000])
        .all(|port| TcpListener::bind(("127.0.0.1", port)).is_ok())
}

/// Starts `weed mini` from an owner thread that kills it when the returned sender is dropped;
/// the parent-death signal covers a test process that dies.
fn spawn(
    weed: &PathBuf,
    dir: &Path,
    config: &Path,
    bucket: &str,
    base: u16,
) -> anyhow::Result<(String, mpsc::Sender<()>)> {
    let port = |offset: u16| (base + offset).to_string();
    let log = std::fs::File::create(dir.join(format!("weed-{base}.log")))
        .with_context(|| format!("creating the weed log in {}", dir.display()))?;
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
    // SAFETY: between fork and exec only prctl(2) runs, which is async-signal-safe.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut command, || {
            nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
                .map_err(std::io::Error::from)
        });
    }
    let (started_tx, started_rx) = mpsc::channel::<Result<(), String>>();
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    std::thread::Builder::new()
        .name("seaweedfs-owner".into())
        .spawn(move || match command.spawn() {
            Ok(mut child) => {
                let _ = started_tx.send(Ok(()));
                // Blocks until the SeaweedFs value is dropped (the sender closes).
                let _ = stop_rx.recv();
                let _ = child.kill();
                let _ = child.wait();
            }
            Err(error) => {
                let _ = started_tx.send(Err(format!("spawning weed: {error}")));
            }
        })
        .context("starting the SeaweedFS owner thread")?;
    started_rx
        .recv()
        .context("the SeaweedFS owner thread ended")?
        .map_err(anyhow::Error::msg)?;
    let s3_port = base + 6;
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if bucket_ready(s3_port, bucket) {
            return Ok((format!("http://127.0.0.1:{s3_port}"), stop_tx));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    anyhow::bail!(
        "no S3 answer on port {s3_port} within 60 s (log in {})",
        dir.display()
    )
}

/// Whether an unsigned HEAD of the bucket gets 200 or 403 (the bucket exists).
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
