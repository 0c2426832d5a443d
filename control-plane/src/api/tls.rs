//! The rustls configuration of the API port: the control plane's server certificate, and client
//! certificates verified against `--api-client-ca` when it is given (docs/API.md §2).

use std::sync::Arc;

use rustls::pki_types::PrivateKeyDer;
use rustls::pki_types::pem::PemObject;
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};

use cairn_certs::server_config::{
    ServerConfigError, crypto_provider, pem_certificates as certificates,
};

/// Server configuration from PEM texts; `client_ca_pem`, when given, is the CA that optional
/// client certificates must chain to (without it, none are requested).
pub fn api_server_config(
    cert_pem: &str,
    key_pem: &str,
    client_ca_pem: Option<&str>,
) -> Result<Arc<ServerConfig>, ServerConfigError> {
    let provider = crypto_provider();
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(ServerConfigError::Config)?;
    let builder = match client_ca_pem {
        Some(ca_pem) => {
            let mut roots = RootCertStore::empty();
            for ca in certificates(ca_pem, "client CA certificate")? {
                roots.add(ca).map_err(ServerConfigError::TrustAnchor)?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .allow_unauthenticated()
                .build()
                .map_err(ServerConfigError::Verifier)?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let chain = certificates(cert_pem, "server certificate")?;
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
        .map_err(|_| ServerConfigError::NoPrivateKey)?;
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(ServerConfigError::Config)?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}
