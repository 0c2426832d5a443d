//! Why a connection to the agent port was refused before gRPC: the reasons an operator reads.

use std::fmt;
use std::io;

use jiff::Timestamp;
use rustls::CertificateError;

/// The reason a TCP connection did not become an mTLS session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HandshakeRefusal {
    /// The client spoke something other than TLS (plaintext HTTP/2, for instance).
    Plaintext,
    /// The client sent no certificate.
    NoClientCertificate,
    /// The client certificate does not chain to the Cairn CA.
    UnknownCa,
    /// The client certificate has expired.
    Expired {
        /// End of validity, when rustls reported it.
        not_after: Option<Timestamp>,
    },
    /// The client certificate is not valid yet.
    NotYetValid,
    /// The client certificate was refused for another reason.
    BadCertificate(String),
    /// The client aborted the handshake with a TLS alert, typically because it does not trust
    /// the server certificate (wrong CA bundle or server name on the agent).
    ClientAborted(String),
    /// The handshake did not finish in time.
    TimedOut,
    /// The client closed the connection during the handshake (it refused our certificate,
    /// or it gave up).
    ClosedEarly,
    /// Any other TLS or IO failure.
    Other(String),
}

impl fmt::Display for HandshakeRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HandshakeRefusal::Plaintext => {
                f.write_str("plaintext connection (the agent port accepts mutual TLS only)")
            }
            HandshakeRefusal::NoClientCertificate => f.write_str("no client certificate"),
            HandshakeRefusal::UnknownCa => {
                f.write_str("client certificate is not signed by the Cairn CA")
            }
            HandshakeRefusal::Expired {
                not_after: Some(not_after),
            } => write!(f, "client certificate expired at {not_after}"),
            HandshakeRefusal::Expired { not_after: None } => {
                f.write_str("client certificate has expired")
            }
            HandshakeRefusal::NotYetValid => f.write_str("client certificate is not valid yet"),
            HandshakeRefusal::BadCertificate(why) => {
                write!(f, "client certificate is invalid: {why}")
            }
            HandshakeRefusal::ClientAborted(alert) => write!(
                f,
                "the client aborted the TLS handshake with alert {alert} (does it trust this server's certificate and CA?)"
            ),
            HandshakeRefusal::TimedOut => f.write_str("TLS handshake timed out"),
            HandshakeRefusal::ClosedEarly => {
                f.write_str("connection closed by the client during the TLS handshake")
            }
            HandshakeRefusal::Other(why) => write!(f, "TLS handshake failed: {why}"),
        }
    }
}

/// The TLS record type of a handshake message: the first byte a TLS client sends.
pub const TLS_HANDSHAKE_RECORD: u8 = 0x16;

impl HandshakeRefusal {
    /// Classifies the error `tokio_rustls` returned from an accept.
    pub fn from_io(err: &io::Error) -> HandshakeRefusal {
        if let Some(tls) = err
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        {
            return HandshakeRefusal::from_rustls(tls);
        }
        match err.kind() {
            io::ErrorKind::UnexpectedEof
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::BrokenPipe => HandshakeRefusal::ClosedEarly,
            io::ErrorKind::TimedOut => HandshakeRefusal::TimedOut,
            _ => HandshakeRefusal::Other(err.to_string()),
        }
    }

    /// Classifies a rustls error.
    pub fn from_rustls(err: &rustls::Error) -> HandshakeRefusal {
        match err {
            rustls::Error::NoCertificatesPresented => HandshakeRefusal::NoClientCertificate,
            rustls::Error::InvalidCertificate(cert) => match cert {
                CertificateError::UnknownIssuer | CertificateError::BadSignature => {
                    HandshakeRefusal::UnknownCa
                }
                CertificateError::Expired => HandshakeRefusal::Expired { not_after: None },
                CertificateError::ExpiredContext { not_after, .. } => HandshakeRefusal::Expired {
                    not_after: i64::try_from(not_after.as_secs())
                        .ok()
                        .and_then(|secs| Timestamp::from_second(secs).ok()),
                },
                CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                    HandshakeRefusal::NotYetValid
                }
                other => HandshakeRefusal::BadCertificate(other.to_string()),
            },
            rustls::Error::InvalidMessage(_) => HandshakeRefusal::Plaintext,
            rustls::Error::AlertReceived(alert) => {
                HandshakeRefusal::ClientAborted(format!("{alert:?}"))
            }
            other => HandshakeRefusal::Other(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::UnixTime;
    use std::time::Duration;

    fn wrapped(err: rustls::Error) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, err)
    }

    #[test]
    fn rustls_errors_become_reasons_an_operator_understands() {
        let cases = [
            (
                rustls::Error::NoCertificatesPresented,
                "no client certificate",
            ),
            (
                rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer),
                "client certificate is not signed by the Cairn CA",
            ),
            (
                rustls::Error::InvalidCertificate(CertificateError::Expired),
                "client certificate has expired",
            ),
            (
                rustls::Error::InvalidCertificate(CertificateError::ExpiredContext {
                    time: UnixTime::since_unix_epoch(Duration::from_secs(2_000_000_000)),
                    not_after: UnixTime::since_unix_epoch(Duration::from_secs(1_577_836_800)),
                }),
                "client certificate expired at 2020-01-01T00:00:00Z",
            ),
            (
                rustls::Error::InvalidCertificate(CertificateError::NotValidYet),
                "client certificate is not valid yet",
            ),
            (
                rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType),
                "plaintext connection (the agent port accepts mutual TLS only)",
            ),
            (
                rustls::Error::AlertReceived(rustls::AlertDescription::UnknownCA),
                "the client aborted the TLS handshake with alert UnknownCA (does it trust this server's certificate and CA?)",
            ),
        ];
        for (err, expected) in cases {
            assert_eq!(
                HandshakeRefusal::from_io(&wrapped(err)).to_string(),
                expected
            );
        }
    }

    #[test]
    fn io_errors_without_tls_cause_are_classified_by_kind() {
        let eof = io::Error::new(io::ErrorKind::UnexpectedEof, "eof");
        assert_eq!(
            HandshakeRefusal::from_io(&eof),
            HandshakeRefusal::ClosedEarly
        );
        let other = io::Error::other("boom");
        assert_eq!(
            HandshakeRefusal::from_io(&other).to_string(),
            "TLS handshake failed: boom"
        );
    }
}
