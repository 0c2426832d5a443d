//! The Cairn certificate authority: creates, stores and loads the CA, and issues certificates.
//!
//! The control plane is the CA of the agent protocol (docs/PROTOCOL.md §2.1). Keys are ECDSA
//! P-256 made with ring. Files: `<dir>/ca.pem` (certificate) and `<dir>/ca-key.pem` (mode 0600).

use std::fmt;
use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use jiff::{SignedDuration, Timestamp};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};

use super::cert_info::{CertInfo, CertInfoError};
use super::identity::{AGENT_URI_PREFIX, InvalidNodeName, validate_node_name};
use super::pem_files::{CertFiles, PRIVATE_MODE, PUBLIC_MODE, write_atomically};

/// File name of the CA certificate inside the CA directory.
pub const CA_CERT_FILE: &str = "ca.pem";
/// File name of the CA private key inside the CA directory.
pub const CA_KEY_FILE: &str = "ca-key.pem";
/// Validity of a new CA.
pub const CA_DEFAULT_DAYS: u32 = 3650;
/// Validity of a new server or agent certificate unless told otherwise.
pub const LEAF_DEFAULT_DAYS: u32 = 365;

/// How long before "now" a new certificate starts to be valid, so that a peer whose clock is a
/// little behind does not refuse it.
const CLOCK_SKEW_ALLOWANCE: SignedDuration = SignedDuration::from_mins(5);

/// A failure to create, load or use the CA.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    /// `ca init` found a CA already there.
    #[error("a CA already exists at {path}; remove it first to create a new one")]
    AlreadyExists {
        /// The existing certificate file.
        path: PathBuf,
    },
    /// The directory could not be created.
    #[error("creating directory {path}")]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// A file could not be read.
    #[error("reading {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// A file could not be written.
    #[error("writing {path}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The CA key file is not a usable private key.
    #[error("parsing the CA key {path}")]
    ParseKey {
        /// The key file.
        path: PathBuf,
        /// The cause.
        source: rcgen::Error,
    },
    /// The CA certificate file is not a usable CA certificate.
    #[error("parsing the CA certificate {path}")]
    ParseCert {
        /// The certificate file.
        path: PathBuf,
        /// The cause.
        source: rcgen::Error,
    },
    /// A certificate could not be read back.
    #[error("reading certificate fields")]
    CertInfo(#[source] CertInfoError),
    /// Key generation failed.
    #[error("generating a key pair")]
    GenerateKey(#[source] rcgen::Error),
    /// Signing failed.
    #[error("signing the certificate for {subject:?}")]
    Sign {
        /// The subject being certified.
        subject: String,
        /// The cause.
        source: rcgen::Error,
    },
    /// A name cannot be put into a certificate (rcgen wants IA5 strings: ASCII).
    #[error("name {name:?} cannot be put into a certificate")]
    InvalidName {
        /// The rejected name.
        name: String,
        /// The cause.
        source: rcgen::Error,
    },
    /// `issue_server` got neither a DNS name nor an IP address.
    #[error("a server certificate needs at least one DNS name or IP address")]
    NoServerNames,
    /// `issue_agent` got a name that is not a node name.
    #[error("issuing an agent certificate")]
    InvalidNode(#[source] InvalidNodeName),
    /// `not_after` is not after `not_before`, or a date cannot be encoded.
    #[error("invalid validity period {not_before} .. {not_after}")]
    InvalidValidity {
        /// Requested start.
        not_before: Timestamp,
        /// Requested end.
        not_after: Timestamp,
    },
}

/// The period a certificate is valid for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Validity {
    /// Start of validity.
    pub not_before: Timestamp,
    /// End of validity.
    pub not_after: Timestamp,
}

impl Validity {
    /// From a few minutes ago (clock skew) until `days` days from now.
    pub fn days(days: u32) -> Validity {
        let now = Timestamp::now();
        Validity {
            not_before: now - CLOCK_SKEW_ALLOWANCE,
            not_after: now + SignedDuration::from_hours(i64::from(days) * 24),
        }
    }

    /// An explicit period (tests use one in the past to make expired certificates).
    pub fn between(not_before: Timestamp, not_after: Timestamp) -> Result<Validity, CaError> {
        if not_after <= not_before {
            return Err(CaError::InvalidValidity {
                not_before,
                not_after,
            });
        }
        Ok(Validity {
            not_before,
            not_after,
        })
    }

    fn apply(&self, params: &mut CertificateParams) -> Result<(), CaError> {
        let convert = |ts: Timestamp| {
            time::OffsetDateTime::from_unix_timestamp(ts.as_second()).map_err(|_| {
                CaError::InvalidValidity {
                    not_before: self.not_before,
                    not_after: self.not_after,
                }
            })
        };
        params.not_before = convert(self.not_before)?;
        params.not_after = convert(self.not_after)?;
        Ok(())
    }
}

/// A certificate and its private key, both PEM. `Debug` never shows the key.
#[derive(Clone)]
pub struct IssuedCert {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The private key, PEM (PKCS#8). Secret.
    pub key_pem: String,
}

impl fmt::Debug for IssuedCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedCert")
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"<redacted>")
            .finish()
    }
}

impl IssuedCert {
    /// Writes the certificate (0644) and the key (0600) atomically.
    pub fn write(&self, files: &CertFiles) -> Result<(), CaError> {
        for path in [&files.cert, &files.key] {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                create_dir(dir)?;
            }
        }
        write_atomically(&files.cert, self.cert_pem.as_bytes(), PUBLIC_MODE).map_err(|source| {
            CaError::Write {
                path: files.cert.clone(),
                source,
            }
        })?;
        write_atomically(&files.key, self.key_pem.as_bytes(), PRIVATE_MODE).map_err(|source| {
            CaError::Write {
                path: files.key.clone(),
                source,
            }
        })
    }

    /// The certificate's fields.
    pub fn info(&self) -> Result<CertInfo, CaError> {
        CertInfo::from_pem(&self.cert_pem).map_err(CaError::CertInfo)
    }
}

/// The Cairn certificate authority. `Debug` never shows the key.
pub struct Ca {
    cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl fmt::Debug for Ca {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ca")
            .field("cert_pem", &self.cert_pem)
            .finish_non_exhaustive()
    }
}

impl Ca {
    /// The CA's files inside `dir`.
    pub fn files(dir: &Path) -> CertFiles {
        CertFiles {
            cert: dir.join(CA_CERT_FILE),
            key: dir.join(CA_KEY_FILE),
        }
    }

    /// Creates a new CA in memory.
    pub fn generate(validity: Validity) -> Result<Ca, CaError> {
        let key = KeyPair::generate().map_err(CaError::GenerateKey)?;
        let mut params = CertificateParams::default();
        let mut name = DistinguishedName::new();
        name.push(DnType::CommonName, "Cairn CA");
        name.push(DnType::OrganizationName, "Cairn");
        params.distinguished_name = name;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        validity.apply(&mut params)?;
        let cert = params.self_signed(&key).map_err(|source| CaError::Sign {
            subject: "Cairn CA".to_owned(),
            source,
        })?;
        Ok(Ca {
            cert_pem: cert.pem(),
            issuer: Issuer::new(params, key),
        })
    }

    /// Creates a CA valid for [`CA_DEFAULT_DAYS`] and writes it to `dir`; refuses to replace one.
    pub fn init(dir: &Path) -> Result<Ca, CaError> {
        let files = Ca::files(dir);
        if files.cert.exists() || files.key.exists() {
            return Err(CaError::AlreadyExists { path: files.cert });
        }
        let ca = Ca::generate(Validity::days(CA_DEFAULT_DAYS))?;
        ca.write(dir)?;
        Ok(ca)
    }

    /// Loads the CA written by [`Ca::init`] from `dir`.
    pub fn load(dir: &Path) -> Result<Ca, CaError> {
        let files = Ca::files(dir);
        let read = |path: &PathBuf| {
            std::fs::read_to_string(path).map_err(|source| CaError::Read {
                path: path.clone(),
                source,
            })
        };
        let cert_pem = read(&files.cert)?;
        let key_pem = read(&files.key)?;
        let key = KeyPair::from_pem(&key_pem).map_err(|source| CaError::ParseKey {
            path: files.key.clone(),
            source,
        })?;
        let issuer =
            Issuer::from_ca_cert_pem(&cert_pem, key).map_err(|source| CaError::ParseCert {
                path: files.cert.clone(),
                source,
            })?;
        Ok(Ca { cert_pem, issuer })
    }

    /// Writes `ca.pem` (0644) and `ca-key.pem` (0600) into `dir`, creating it (0700) if needed.
    pub fn write(&self, dir: &Path) -> Result<CertFiles, CaError> {
        let files = Ca::files(dir);
        IssuedCert {
            cert_pem: self.cert_pem.clone(),
            key_pem: self.issuer.key().serialize_pem(),
        }
        .write(&files)?;
        Ok(files)
    }

    /// The CA certificate, PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA certificate's fields.
    pub fn info(&self) -> Result<CertInfo, CaError> {
        CertInfo::from_pem(&self.cert_pem).map_err(CaError::CertInfo)
    }

    /// Issues a server certificate (serverAuth) for the control plane's agent port.
    pub fn issue_server(
        &self,
        dns_names: &[String],
        ip_addrs: &[IpAddr],
        validity: Validity,
    ) -> Result<IssuedCert, CaError> {
        let subject = match (dns_names.first(), ip_addrs.first()) {
            (Some(dns), _) => dns.clone(),
            (None, Some(ip)) => ip.to_string(),
            (None, None) => return Err(CaError::NoServerNames),
        };
        let mut sans = Vec::with_capacity(dns_names.len() + ip_addrs.len());
        for dns in dns_names {
            sans.push(SanType::DnsName(ia5(dns)?));
        }
        sans.extend(ip_addrs.iter().copied().map(SanType::IpAddress));
        self.issue(
            &subject,
            sans,
            ExtendedKeyUsagePurpose::ServerAuth,
            validity,
        )
    }

    /// Issues an agent certificate: CN = `node`, URI SAN `cairn:agent:node:<node>`, clientAuth.
    pub fn issue_agent(&self, node: &str, validity: Validity) -> Result<IssuedCert, CaError> {
        validate_node_name(node).map_err(CaError::InvalidNode)?;
        let uri = format!("{AGENT_URI_PREFIX}{node}");
        let sans = vec![SanType::URI(ia5(&uri)?)];
        self.issue(node, sans, ExtendedKeyUsagePurpose::ClientAuth, validity)
    }

    /// Issues a client certificate with CN = `name` and no node identity (operators, tests).
    /// The agent service refuses it: it names no node.
    pub fn issue_client(&self, name: &str, validity: Validity) -> Result<IssuedCert, CaError> {
        self.issue(
            name,
            Vec::new(),
            ExtendedKeyUsagePurpose::ClientAuth,
            validity,
        )
    }

    fn issue(
        &self,
        common_name: &str,
        sans: Vec<SanType>,
        usage: ExtendedKeyUsagePurpose,
        validity: Validity,
    ) -> Result<IssuedCert, CaError> {
        let key = KeyPair::generate().map_err(CaError::GenerateKey)?;
        let mut params = CertificateParams::default();
        let mut name = DistinguishedName::new();
        name.push(DnType::CommonName, common_name);
        params.distinguished_name = name;
        params.subject_alt_names = sans;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![usage];
        params.use_authority_key_identifier_extension = true;
        validity.apply(&mut params)?;
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(|source| CaError::Sign {
                subject: common_name.to_owned(),
                source,
            })?;
        Ok(IssuedCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

/// Creates `dir` (and parents) with mode 0700 for the directories it creates.
pub(crate) fn create_dir(dir: &Path) -> Result<(), CaError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| CaError::CreateDir {
            path: dir.to_path_buf(),
            source,
        })
}

fn ia5(name: &str) -> Result<rcgen::string::Ia5String, CaError> {
    rcgen::string::Ia5String::try_from(name).map_err(|source| CaError::InvalidName {
        name: name.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cert_info::{first_pem_certificate, is_signed_by};
    use crate::identity::AgentIdentity;

    #[test]
    fn agent_certificate_names_its_node_in_cn_and_uri() {
        let ca = Ca::generate(Validity::days(1)).unwrap();
        let cert = ca.issue_agent("node-a", Validity::days(1)).unwrap();
        let info = cert.info().unwrap();
        assert_eq!(info.common_names, vec!["node-a"]);
        assert_eq!(info.uris, vec!["cairn:agent:node:node-a"]);
        let der = first_pem_certificate(&cert.cert_pem).unwrap();
        assert_eq!(AgentIdentity::from_der(&der).unwrap().node, "node-a");
    }

    #[test]
    fn agent_certificate_refuses_a_name_that_is_not_a_node_name() {
        let ca = Ca::generate(Validity::days(1)).unwrap();
        let err = ca.issue_agent("Node_A", Validity::days(1)).unwrap_err();
        let chain = format!("{err}: {}", std::error::Error::source(&err).unwrap());
        assert!(chain.contains("\"Node_A\""), "{chain}");
    }

    #[test]
    fn server_certificate_carries_dns_and_ip_names() {
        let ca = Ca::generate(Validity::days(1)).unwrap();
        let cert = ca
            .issue_server(
                &["cairn.example".to_owned()],
                &["127.0.0.1".parse().unwrap()],
                Validity::days(1),
            )
            .unwrap();
        let info = cert.info().unwrap();
        assert_eq!(info.dns_names, vec!["cairn.example"]);
        assert_eq!(info.ip_addrs, vec!["127.0.0.1".parse::<IpAddr>().unwrap()]);
        assert!(matches!(
            ca.issue_server(&[], &[], Validity::days(1)),
            Err(CaError::NoServerNames)
        ));
    }

    #[test]
    fn loaded_ca_signs_certificates_that_chain_to_the_written_ca() {
        let dir = tempfile::tempdir().unwrap();
        let created = Ca::init(dir.path()).unwrap();
        let loaded = Ca::load(dir.path()).unwrap();
        assert_eq!(created.cert_pem(), loaded.cert_pem());
        let cert = loaded.issue_agent("n1", Validity::days(1)).unwrap();
        let cert_der = first_pem_certificate(&cert.cert_pem).unwrap();
        let ca_der = first_pem_certificate(created.cert_pem()).unwrap();
        assert!(is_signed_by(&cert_der, &ca_der).unwrap());
        let other = Ca::generate(Validity::days(1)).unwrap();
        let other_der = first_pem_certificate(other.cert_pem()).unwrap();
        assert!(!is_signed_by(&cert_der, &other_der).unwrap());
    }

    #[test]
    fn init_refuses_to_replace_an_existing_ca_and_keeps_the_key_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        Ca::init(dir.path()).unwrap();
        let err = Ca::init(dir.path()).unwrap_err();
        assert!(matches!(err, CaError::AlreadyExists { .. }), "{err}");
        let mode = std::fs::metadata(dir.path().join(CA_KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn debug_output_never_shows_private_keys() {
        let ca = Ca::generate(Validity::days(1)).unwrap();
        let cert = ca.issue_agent("n1", Validity::days(1)).unwrap();
        assert!(!format!("{cert:?}").contains("PRIVATE KEY"));
        assert!(!format!("{ca:?}").contains("PRIVATE KEY"));
    }

    #[test]
    fn validity_must_end_after_it_starts() {
        let now = Timestamp::now();
        assert!(Validity::between(now, now).is_err());
        assert!(Validity::between(now, now + SignedDuration::from_secs(1)).is_ok());
    }
}
