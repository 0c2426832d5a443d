//! The storage service over the network (docs/PROTOCOL.md §3.1): action pods reach their node
//! agent at `https://<agent address>:<port>`, so no pod needs a hostPath volume for the socket.
//!
//! - The endpoint serves TLS with a key the agent generated once and keeps in its state
//!   directory ([`StorageIdentity::load_or_create`]); each Job gets that certificate in its
//!   environment and its `datasafed` trusts nothing else (a pin, not a CA), so a restarted
//!   agent keeps serving the Jobs it re-adopts.
//! - The per-action bearer token authenticates each call, exactly as on the unix socket.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use cairn_proto::datasafed::transport::SERVER_NAME;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// The files of the identity in its directory.
const CERT_FILE: &str = "storage.pem";
const KEY_FILE: &str = "storage-key.pem";

/// Why the endpoint's identity could not be loaded or made.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// A file could not be read or written.
    #[error("{action} {}", .path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A stored file does not hold what it should.
    #[error("{} holds no PEM {what}; remove it and the agent makes a new one", .path.display())]
    Invalid { path: PathBuf, what: &'static str },
    /// Key generation failed.
    #[error("generating the storage endpoint's certificate")]
    Generate(#[source] rcgen::Error),
}

/// The storage endpoint's certificate and key. `Debug` never shows the key.
#[derive(Clone)]
pub struct StorageIdentity {
    cert_pem: String,
    key_pem: String,
}

impl std::fmt::Debug for StorageIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StorageIdentity")
            .field("cert_pem", &self.cert_pem)
            .finish_non_exhaustive()
    }
}

impl StorageIdentity {
    /// The identity kept in `dir`, made (self-signed, for [`SERVER_NAME`]) when absent.
    pub fn load_or_create(dir: &Path) -> Result<StorageIdentity, IdentityError> {
        let (cert_path, key_path) = (dir.join(CERT_FILE), dir.join(KEY_FILE));
        if cert_path.exists() || key_path.exists() {
            let read = |path: &Path| {
                std::fs::read_to_string(path).map_err(|source| IdentityError::Io {
                    action: "reading",
                    path: path.to_path_buf(),
                    source,
                })
            };
            let (cert_pem, key_pem) = (read(&cert_path)?, read(&key_path)?);
            if CertificateDer::from_pem_slice(cert_pem.as_bytes()).is_err() {
                return Err(IdentityError::Invalid {
                    path: cert_path,
                    what: "certificate",
                });
            }
            if PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).is_err() {
                return Err(IdentityError::Invalid {
                    path: key_path,
                    what: "private key",
                });
            }
            return Ok(StorageIdentity { cert_pem, key_pem });
        }
        let made = rcgen::generate_simple_self_signed(vec![SERVER_NAME.to_string()])
            .map_err(IdentityError::Generate)?;
        let identity = StorageIdentity {
            cert_pem: made.cert.pem(),
            key_pem: made.signing_key.serialize_pem(),
        };
        std::fs::create_dir_all(dir).map_err(|source| IdentityError::Io {
            action: "creating",
            path: dir.to_path_buf(),
            source,
        })?;
        write_new(&key_path, &identity.key_pem, 0o600)?;
        write_new(&cert_path, &identity.cert_pem, 0o644)?;
        Ok(identity)
    }

    /// The certificate (PEM) that action pods pin.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// tonic's server TLS settings.
    pub fn server_tls(&self) -> tonic::transport::ServerTlsConfig {
        tonic::transport::ServerTlsConfig::new().identity(tonic::transport::Identity::from_pem(
            &self.cert_pem,
            &self.key_pem,
        ))
    }
}

/// Writes `contents` to a new file with `mode` (through a temporary name, so a crash never
/// leaves half a key).
fn write_new(path: &Path, contents: &str, mode: u32) -> Result<(), IdentityError> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let staging = path.with_extension("new");
    let io = |action, source| IdentityError::Io {
        action,
        path: path.to_path_buf(),
        source,
    };
    let _ = std::fs::remove_file(&staging);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&staging)
        .map_err(|e| io("creating", e))?;
    file.write_all(contents.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| io("writing", e))?;
    std::fs::rename(&staging, path).map_err(|e| io("installing", e))
}

/// `https://HOST:PORT` for an address action pods dial (`[..]` around an IPv6 address).
pub fn endpoint_url(host: &str, port: u16) -> String {
    match host.parse::<IpAddr>() {
        Ok(IpAddr::V6(v6)) => format!("https://[{v6}]:{port}"),
        _ => format!("https://{host}:{port}"),
    }
}

/// The host action pods dial: `advertise` when given, else the listen address when it names
/// one host (not `0.0.0.0` or `::`).
pub fn advertised_host(listen: SocketAddr, advertise: Option<&str>) -> Option<String> {
    match advertise.map(str::trim).filter(|a| !a.is_empty()) {
        Some(host) => Some(host.trim_matches(['[', ']']).to_string()),
        None if listen.ip().is_unspecified() => None,
        None => Some(listen.ip().to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_identity_is_made_once_and_kept_across_restarts() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = StorageIdentity::load_or_create(dir.path()).expect("create");
        let again = StorageIdentity::load_or_create(dir.path()).expect("load");
        assert_eq!(first.cert_pem(), again.cert_pem());
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join(KEY_FILE))
            .expect("key")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "only the agent reads the key");
        assert!(!format!("{first:?}").contains("PRIVATE KEY"));
    }

    #[test]
    fn the_advertised_address_is_a_dialable_url() {
        let any: SocketAddr = "0.0.0.0:9444".parse().expect("addr");
        assert_eq!(advertised_host(any, None), None);
        assert_eq!(
            advertised_host(any, Some("10.0.0.7")).as_deref(),
            Some("10.0.0.7")
        );
        let local: SocketAddr = "127.0.0.1:4000".parse().expect("addr");
        assert_eq!(advertised_host(local, None).as_deref(), Some("127.0.0.1"));
        assert_eq!(endpoint_url("fd00::7", 9444), "https://[fd00::7]:9444");
        assert_eq!(endpoint_url("10.0.0.7", 9444), "https://10.0.0.7:9444");
    }
}
