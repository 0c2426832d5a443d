//! The rustls configuration of the agent port: TLS 1.3/1.2, ring, client certificates required.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};

/// A failure to build the server TLS configuration.
#[derive(Debug, thiserror::Error)]
pub enum ServerConfigError {
    /// A file could not be read.
    #[error("reading {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A PEM text held no certificate.
    #[error("no PEM certificate in the {what}")]
    NoCertificate {
        /// Which input: "CA certificate" or "server certificate".
        what: &'static str,
    },
    /// The key PEM held no usable private key.
    #[error("no usable PEM private key in the server key")]
    NoPrivateKey,
    /// The CA certificate was refused as a trust anchor.
    #[error("using the CA certificate as trust anchor")]
    TrustAnchor(#[source] rustls::Error),
    /// The client verifier could not be built.
    #[error("building the client certificate verifier")]
    Verifier(#[source] rustls::server::VerifierBuilderError),
    /// rustls refused the certificate/key pair or the protocol versions.
    #[error("building the TLS server configuration")]
    Config(#[source] rustls::Error),
}

/// The crypto provider of every Cairn TLS endpoint: ring (never aws-lc; deps.md §1.3).
pub fn crypto_provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Server configuration from PEM texts: `ca_pem` is the CA that client certificates must chain
/// to; `cert_pem` (with any intermediates) and `key_pem` are the server's own.
pub fn server_config(
    ca_pem: &str,
    cert_pem: &str,
    key_pem: &str,
) -> Result<Arc<ServerConfig>, ServerConfigError> {
    let provider = crypto_provider();
    let mut roots = RootCertStore::empty();
    let ca_certs = pem_certificates(ca_pem, "CA certificate")?;
    for ca in ca_certs {
        roots.add(ca).map_err(ServerConfigError::TrustAnchor)?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(ServerConfigError::Verifier)?;
    let chain = pem_certificates(cert_pem, "server certificate")?;
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
        .map_err(|_| ServerConfigError::NoPrivateKey)?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(ServerConfigError::Config)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(ServerConfigError::Config)?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// Server configuration from PEM files (`--tls-ca`, `--tls-cert`, `--tls-key`).
pub fn server_config_from_files(
    ca: &Path,
    cert: &Path,
    key: &Path,
) -> Result<Arc<ServerConfig>, ServerConfigError> {
    let read = |path: &Path| {
        std::fs::read_to_string(path).map_err(|source| ServerConfigError::Read {
            path: path.to_path_buf(),
            source,
        })
    };
    server_config(&read(ca)?, &read(cert)?, &read(key)?)
}

/// The certificates of a PEM text; `what` names the input in the error.
pub fn pem_certificates(
    pem: &str,
    what: &'static str,
) -> Result<Vec<CertificateDer<'static>>, ServerConfigError> {
    let certs: Vec<_> = CertificateDer::pem_slice_iter(pem.as_bytes())
        .filter_map(Result::ok)
        .collect();
    if certs.is_empty() {
        return Err(ServerConfigError::NoCertificate { what });
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ca::{Ca, Validity};

    #[test]
    fn server_config_builds_from_issued_pems_and_offers_h2() {
        let ca = Ca::generate(Validity::days(1)).unwrap();
        let server = ca
            .issue_server(&["localhost".into()], &[], Validity::days(1))
            .unwrap();
        let config = server_config(ca.cert_pem(), &server.cert_pem, &server.key_pem).unwrap();
        assert_eq!(config.alpn_protocols, vec![b"h2".to_vec()]);
    }

    #[test]
    fn garbage_inputs_are_named_in_the_error() {
        let ca = Ca::generate(Validity::days(1)).unwrap();
        let server = ca
            .issue_server(&["localhost".into()], &[], Validity::days(1))
            .unwrap();
        let err = server_config("nope", &server.cert_pem, &server.key_pem).unwrap_err();
        assert_eq!(err.to_string(), "no PEM certificate in the CA certificate");
        let err = server_config(ca.cert_pem(), &server.cert_pem, "nope").unwrap_err();
        assert_eq!(
            err.to_string(),
            "no usable PEM private key in the server key"
        );
    }
}
