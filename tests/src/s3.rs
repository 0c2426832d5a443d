//! A real S3-compatible server on loopback for the tests: SeaweedFS (`weed mini`, started by
//! `cairn_repo::testing::launch`) with fresh random credentials per server, so a test can search
//! for the secret key everywhere and know that any hit is a leak.

use std::path::Path;
use std::sync::mpsc;

use cairn_repo::testing::{S3Identity, launch};

/// A running SeaweedFS server; dropping it stops the server.
pub struct SeaweedFs {
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    /// The bucket created at start.
    pub bucket: String,
    pub access_key: String,
    pub secret_key: String,
    _stop: mpsc::Sender<()>,
}

impl SeaweedFs {
    /// Starts a server with its data under `dir`; fails when `weed` is missing from `PATH`
    /// (pointing at ./test.sh) or does not answer within 60 s.
    pub fn start(dir: &Path) -> anyhow::Result<SeaweedFs> {
        let identity = S3Identity {
            access_key: format!("e2e{}", random_hex(8)),
            secret_key: format!("s3secret{}", random_hex(16)),
            bucket: "cairn-e2e".to_string(),
        };
        let (endpoint, stop) = launch(dir, &identity).map_err(anyhow::Error::msg)?;
        Ok(SeaweedFs {
            endpoint,
            bucket: identity.bucket,
            access_key: identity.access_key,
            secret_key: identity.secret_key,
            _stop: stop,
        })
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

fn random_hex(bytes: usize) -> String {
    (0..bytes)
        .map(|_| format!("{:02x}", rand::random::<u8>()))
        .collect()
}
