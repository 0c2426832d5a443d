//! What Cairn reads from an X.509 certificate: subject name, alternative names, validity, issuer.

use std::net::IpAddr;

use jiff::Timestamp;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::FromDer;

/// Why a certificate could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CertInfoError {
    /// The PEM text held no `CERTIFICATE` block.
    #[error("no PEM certificate found")]
    NoPemCertificate,
    /// The DER bytes are not an X.509 certificate.
    #[error("certificate is not valid DER X.509: {reason}")]
    InvalidDer {
        /// The parser's description of the defect.
        reason: String,
    },
    /// The validity dates are outside what a timestamp can hold.
    #[error("certificate validity dates are out of range")]
    ValidityOutOfRange,
}

/// The fields of a certificate Cairn makes decisions on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertInfo {
    /// Subject common names (normally exactly one).
    pub common_names: Vec<String>,
    /// DNS subject alternative names.
    pub dns_names: Vec<String>,
    /// IP subject alternative names.
    pub ip_addrs: Vec<IpAddr>,
    /// URI subject alternative names (agent certificates carry `cairn:agent:node:<NAME>`).
    pub uris: Vec<String>,
    /// Start of validity.
    pub not_before: Timestamp,
    /// End of validity.
    pub not_after: Timestamp,
}

impl CertInfo {
    /// Reads the first certificate of a PEM text.
    pub fn from_pem(pem: &str) -> Result<CertInfo, CertInfoError> {
        let der = first_pem_certificate(pem)?;
        CertInfo::from_der(der.as_ref())
    }

    /// Reads a DER-encoded certificate.
    pub fn from_der(der: &[u8]) -> Result<CertInfo, CertInfoError> {
        let cert = parse_der(der)?;
        let common_names = cert
            .subject()
            .iter_common_name()
            .filter_map(|attr| attr.as_str().ok().map(str::to_owned))
            .collect();
        let mut info = CertInfo {
            common_names,
            dns_names: Vec::new(),
            ip_addrs: Vec::new(),
            uris: Vec::new(),
            not_before: asn1_timestamp(cert.validity().not_before.timestamp())?,
            not_after: asn1_timestamp(cert.validity().not_after.timestamp())?,
        };
        let san = cert
            .subject_alternative_name()
            .map_err(|err| CertInfoError::InvalidDer {
                reason: err.to_string(),
            })?;
        for name in san.iter().flat_map(|ext| ext.value.general_names.iter()) {
            match name {
                GeneralName::DNSName(dns) => info.dns_names.push((*dns).to_owned()),
                GeneralName::URI(uri) => info.uris.push((*uri).to_owned()),
                GeneralName::IPAddress(octets) => {
                    if let Some(ip) = ip_from_octets(octets) {
                        info.ip_addrs.push(ip);
                    }
                }
                _ => {}
            }
        }
        Ok(info)
    }

    /// Whether `now` lies within the validity period.
    pub fn is_valid_at(&self, now: Timestamp) -> bool {
        self.not_before <= now && now <= self.not_after
    }
}

/// Whether the certificate `cert_der` carries a signature made by the key of `issuer_der`.
///
/// Only the signature is checked, not the chain rules (rustls does those at handshake time);
/// this is how the standalone helpers notice a certificate left over from an older CA.
pub fn is_signed_by(cert_der: &[u8], issuer_der: &[u8]) -> Result<bool, CertInfoError> {
    let cert = parse_der(cert_der)?;
    let issuer = parse_der(issuer_der)?;
    Ok(cert.verify_signature(Some(issuer.public_key())).is_ok())
}

/// The first `CERTIFICATE` block of a PEM text, as DER.
pub fn first_pem_certificate(pem: &str) -> Result<CertificateDer<'static>, CertInfoError> {
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .next()
        .and_then(Result::ok)
        .ok_or(CertInfoError::NoPemCertificate)
}

fn parse_der(der: &[u8]) -> Result<X509Certificate<'_>, CertInfoError> {
    let (_rest, cert) =
        X509Certificate::from_der(der).map_err(|err| CertInfoError::InvalidDer {
            reason: err.to_string(),
        })?;
    Ok(cert)
}

fn asn1_timestamp(seconds: i64) -> Result<Timestamp, CertInfoError> {
    Timestamp::from_second(seconds).map_err(|_| CertInfoError::ValidityOutOfRange)
}

fn ip_from_octets(octets: &[u8]) -> Option<IpAddr> {
    match octets.len() {
        4 => <[u8; 4]>::try_from(octets).ok().map(IpAddr::from),
        16 => <[u8; 16]>::try_from(octets).ok().map(IpAddr::from),
        _ => None,
    }
}
