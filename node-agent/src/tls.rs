//! The agent's side of mutual TLS: its certificate and key, and the CA it trusts, from PEM files.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use cairn_certs::server_config::crypto_provider;
use cairn_certs::{ReloadError, Reloading};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

/// A failure to load the TLS material or to reach the control plane.
#[derive(Debug, thiserror::Error)]
pub enum ClientTlsError {
    /// A file could not be read.
    #[error("reading {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A PEM input has no certificate.
    #[error("no PEM certificate in the {what}")]
    NoCertificate {
        /// "CA certificate" or "agent certificate".
        what: &'static str,
    },
    /// The key PEM has no private key.
    #[error("no PEM private key in the agent key")]
    NoPrivateKey,
    /// The key is not the agent certificate's, or rustls cannot use it.
    #[error("the agent key does not belong to the agent certificate")]
    KeyMismatch {
        /// rustls's reason.
        source: rustls::Error,
    },
    /// The endpoint is not `https://HOST[:PORT]`. The agent protocol is mutual TLS only
    /// (docs/PROTOCOL.md §2.1): an `http://` or scheme-less address is refused before any byte
    /// is sent, since the agent's first message names its node, version and capabilities.
    #[error(
        "control plane address {endpoint:?} {problem}: the agent reaches the control plane only over mutual TLS; give --control-plane https://HOST:PORT"
    )]
    NotTls {
        /// What was given (without any user information it carried).
        endpoint: String,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// The endpoint is not a URL tonic accepts.
    #[error("control plane address {endpoint:?} is invalid")]
    InvalidEndpoint {
        /// What was given.
        endpoint: String,
        /// The cause.
        source: tonic::transport::Error,
    },
    /// TCP or TLS setup failed.
    #[error("connecting to the control plane at {endpoint}")]
    Connect {
        /// The address dialled.
        endpoint: String,
        /// The cause.
        source: tonic::transport::Error,
    },
}

/// The agent's TLS identity and trust, as PEM texts. `Debug` never shows the key.
#[derive(Clone)]
struct Material {
    ca_pem: String,
    cert_pem: String,
    key_pem: String,
}

impl fmt::Debug for Material {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Material")
            .field("ca_pem", &self.ca_pem)
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"<redacted>")
            .finish()
    }
}

/// The agent's TLS identity and trust: fixed PEM texts, or files read again at every dial so
/// that a renewed agent certificate or a rotated CA is used from the next connection on,
/// without a restart (a set of files that does not fit together, e.g. a certificate written
/// before its key, is logged and the last complete set stays in use).
#[derive(Clone, Debug)]
pub struct ClientTls {
    source: Source,
}

#[derive(Clone, Debug)]
enum Source {
    Fixed(Material),
    Files(Arc<Reloading<Material, ClientTlsError>>),
}

impl ClientTls {
    /// From PEM texts: the Cairn CA, the agent certificate and its private key. Checks that
    /// each holds what it should and that the key is the certificate's, so a mix-up fails at
    /// start-up rather than at every dial.
    pub fn from_pem(
        ca_pem: &str,
        cert_pem: &str,
        key_pem: &str,
    ) -> Result<ClientTls, ClientTlsError> {
        Ok(ClientTls {
            source: Source::Fixed(Material::from_pem(ca_pem, cert_pem, key_pem)?),
        })
    }

    /// From PEM files (`--tls-ca`, `--tls-cert`, `--tls-key`), read again at every dial.
    pub fn from_files(ca: &Path, cert: &Path, key: &Path) -> Result<ClientTls, ClientTlsError> {
        let reloading = Reloading::new(
            "the agent's TLS certificates",
            vec![ca.to_path_buf(), cert.to_path_buf(), key.to_path_buf()],
            |pems: &[String]| Material::from_pem(&pems[0], &pems[1], &pems[2]),
        )
        .map_err(|err| match err {
            ReloadError::Read { path, source } => ClientTlsError::Read { path, source },
            ReloadError::Build(err) => err,
        })?;
        Ok(ClientTls {
            source: Source::Files(Arc::new(reloading)),
        })
    }

    fn material(&self) -> Material {
        match &self.source {
            Source::Fixed(material) => material.clone(),
            Source::Files(reloading) => reloading.current(),
        }
    }

    /// tonic's TLS settings for dialling a control plane whose certificate names `server_name`,
    /// with the certificates as they are now.
    pub fn tonic_config(&self, server_name: &str) -> ClientTlsConfig {
        let material = self.material();
        ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&material.ca_pem))
            .identity(Identity::from_pem(&material.cert_pem, &material.key_pem))
            .domain_name(server_name)
    }
}

impl Material {
    fn from_pem(ca_pem: &str, cert_pem: &str, key_pem: &str) -> Result<Material, ClientTlsError> {
        require_certificate(ca_pem, "CA certificate")?;
        require_certificate(cert_pem, "agent certificate")?;
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
            .map_err(|_| ClientTlsError::NoPrivateKey)?;
        let chain: Vec<_> = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
            .filter_map(Result::ok)
            .collect();
        rustls::sign::CertifiedKey::from_der(chain, key, &crypto_provider())
            .map_err(|source| ClientTlsError::KeyMismatch { source })?;
        Ok(Material {
            ca_pem: ca_pem.to_owned(),
            cert_pem: cert_pem.to_owned(),
            key_pem: key_pem.to_owned(),
        })
    }
}

fn require_certificate(pem: &str, what: &'static str) -> Result<(), ClientTlsError> {
    match CertificateDer::pem_slice_iter(pem.as_bytes()).next() {
        Some(Ok(_)) => Ok(()),
        _ => Err(ClientTlsError::NoCertificate { what }),
    }
}

/// Where and how the agent dials the control plane.
#[derive(Clone, Debug)]
pub struct Dial {
    /// `https://HOST:PORT` of the control plane's agent port.
    pub endpoint: String,
    /// The name the server certificate must carry; by default the endpoint's host.
    pub server_name: Option<String>,
    /// The agent's TLS material.
    pub tls: ClientTls,
    /// Limit for TCP connect plus TLS handshake.
    pub connect_timeout: Duration,
}

/// Checks that `endpoint` is `https://HOST[:PORT]` (any case of `https`), with no user
/// information, path, query or fragment: the agent never dials the control plane in plaintext.
pub fn check_endpoint(endpoint: &str) -> Result<(), ClientTlsError> {
    let refuse = |shown: &str, problem| ClientTlsError::NotTls {
        endpoint: shown.to_owned(),
        problem,
    };
    let Some((scheme, rest)) = endpoint.split_once("://") else {
        return Err(refuse(endpoint, "has no https:// scheme"));
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    if let Some((_, host)) = authority.rsplit_once('@') {
        // Never echo user information: it may be a password.
        return Err(refuse(
            &format!("{scheme}://<user information>@{host}{tail}"),
            "carries user information",
        ));
    }
    if !scheme.eq_ignore_ascii_case("https") {
        return Err(refuse(endpoint, "is not an https:// URL"));
    }
    if authority.is_empty() {
        return Err(refuse(endpoint, "has no host"));
    }
    if !tail.is_empty() && tail != "/" {
        return Err(refuse(endpoint, "has a path, query or fragment"));
    }
    Ok(())
}

/// Checks every endpoint of a comma-separated list (`--control-plane` names one control plane
/// or several replicas) as [`check_endpoint`] does; an empty list is refused like an empty
/// endpoint.
pub fn check_endpoints(endpoints: &str) -> Result<(), ClientTlsError> {
    let mut any = false;
    for endpoint in endpoints
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
    {
        check_endpoint(endpoint)?;
        any = true;
    }
    if any {
        Ok(())
    } else {
        check_endpoint(endpoints)
    }
}

impl Dial {
    /// Refuses an endpoint that is not `https://HOST:PORT`, or a list with one such endpoint
    /// (see [`check_endpoints`]).
    pub fn check(&self) -> Result<(), ClientTlsError> {
        check_endpoints(&self.endpoint)
    }

    /// The name the control plane's certificate must carry: `server_name`, else the endpoint's
    /// host.
    pub fn server_name(&self) -> String {
        match &self.server_name {
            Some(name) => name.clone(),
            None => self
                .endpoint
                .parse::<tonic::transport::Uri>()
                .ok()
                .and_then(|uri| uri.host().map(|h| h.trim_matches(['[', ']']).to_owned()))
                .unwrap_or_default(),
        }
    }

    /// Opens an HTTP/2 channel over mTLS to the control plane. Refuses, without connecting, an
    /// endpoint that is not `https://`.
    pub async fn connect(&self) -> Result<Channel, ClientTlsError> {
        self.check()?;
        let invalid = |source| ClientTlsError::InvalidEndpoint {
            endpoint: self.endpoint.clone(),
            source,
        };
        let endpoint = Endpoint::from_shared(self.endpoint.clone()).map_err(invalid)?;
        let server_name = self.server_name();
        endpoint
            .tls_config(self.tls.tonic_config(&server_name))
            .map_err(invalid)?
            .connect_timeout(self.connect_timeout)
            .tcp_nodelay(true)
            .connect()
            .await
            .map_err(|source| ClientTlsError::Connect {
                endpoint: self.endpoint.clone(),
                source,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_certs::{Ca, Validity};

    #[test]
    fn mixed_up_pem_inputs_are_named() {
        let ca = Ca::generate(Validity::days(1)).unwrap();
        let agent = ca.issue_agent("n1", Validity::days(1)).unwrap();
        assert!(ClientTls::from_pem(ca.cert_pem(), &agent.cert_pem, &agent.key_pem).is_ok());
        let err = ClientTls::from_pem(&agent.key_pem, &agent.cert_pem, &agent.key_pem).unwrap_err();
        assert_eq!(err.to_string(), "no PEM certificate in the CA certificate");
        let err = ClientTls::from_pem(ca.cert_pem(), &agent.cert_pem, &agent.cert_pem).unwrap_err();
        assert_eq!(err.to_string(), "no PEM private key in the agent key");
    }

    #[test]
    fn only_https_endpoints_are_accepted() {
        for ok in [
            "https://127.0.0.1:9443",
            "HTTPS://cairn.example:9443/",
            "https://[::1]:9443",
        ] {
            assert!(check_endpoint(ok).is_ok(), "{ok}");
        }
        for (bad, problem) in [
            ("http://127.0.0.1:9443", "is not an https:// URL"),
            ("HTTP://127.0.0.1:9443", "is not an https:// URL"),
            ("grpc://127.0.0.1:9443", "is not an https:// URL"),
            ("127.0.0.1:9443", "has no https:// scheme"),
            ("https://", "has no host"),
            ("https://h:1/agent", "has a path, query or fragment"),
        ] {
            let err = check_endpoint(bad).unwrap_err().to_string();
            assert_eq!(
                err,
                format!(
                    "control plane address {bad:?} {problem}: the agent reaches the control plane only over mutual TLS; give --control-plane https://HOST:PORT"
                )
            );
        }
        let err = check_endpoint("https://agent:pa55word@h:9443")
            .unwrap_err()
            .to_string();
        assert!(err.contains("carries user information"), "{err}");
        assert!(!err.contains("pa55word"), "{err}");
    }

    #[test]
    fn debug_never_shows_the_key() {
        let ca = Ca::generate(Validity::days(1)).unwrap();
        let agent = ca.issue_agent("n1", Validity::days(1)).unwrap();
        let tls = ClientTls::from_pem(ca.cert_pem(), &agent.cert_pem, &agent.key_pem).unwrap();
        assert!(!format!("{tls:?}").contains("PRIVATE KEY"));
    }

    #[test]
    fn every_endpoint_of_a_list_must_be_https() {
        assert!(check_endpoints("https://cp-0:9443,https://cp-1:9443").is_ok());
        assert!(check_endpoints(" https://cp-0:9443 , https://cp-1:9443 ").is_ok());
        for bad in [
            "https://cp-0:9443,http://cp-1:9443",
            "http://cp-0:9443,https://cp-1:9443",
            ",",
            "",
        ] {
            assert!(check_endpoints(bad).is_err(), "{bad:?}");
        }
    }
}
