//! Establishing one session: dial over mTLS, send `Hello`, wait for `Welcome`.

use std::time::Duration;

use cairn_proto::agent::v1::agent_service_client::AgentServiceClient;
use cairn_proto::agent::v1::{
    AgentMessage, ControlMessage, Hello, Welcome, agent_message, control_message,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;

use crate::tls::{ClientTlsError, Dial};

/// Messages queued for the control plane beyond this drop the session: it is not reading,
/// and a fresh `Hello` resynchronises everything.
pub(crate) const OUTBOUND_CAPACITY: usize = 256;

/// Why a session could not be established.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The control plane ended the TLS handshake with a certificate alert: it does not accept
    /// this agent's certificate. With TLS 1.3 the alert only arrives after the client thinks the
    /// handshake is done, so it surfaces on the first request, where gRPC reports no more than
    /// "Unknown: transport error"; the alert is found in the error's causes.
    #[error(
        "the control plane refused this agent's certificate (TLS alert {alert}): check that the agent certificate (--tls-cert) was issued by the CA the control plane uses (cairn-control-plane ca issue-agent --node NODE), is currently valid and names this node; the control plane's log gives the reason with this agent's address"
    )]
    CertificateRefused {
        /// The TLS alert the control plane sent (`UnknownCA`, `CertificateExpired`, …).
        alert: String,
    },
    /// The agent could not verify the control plane's certificate.
    #[error(
        "this agent does not trust the control plane's certificate ({reason}): check that --tls-ca holds the CA that issued the control plane's certificate and that the certificate names the address dialled (or --server-name); the agent expected the name {server_name:?}"
    )]
    ServerNotTrusted {
        /// rustls' verdict.
        reason: String,
        /// The name the agent checked the certificate for.
        server_name: String,
    },
    /// TCP, TLS or HTTP/2 setup failed.
    #[error(transparent)]
    Dial(#[from] ClientTlsError),
    /// The control plane answered the session with an error status.
    #[error("the control plane refused the session: {code:?}: {message}")]
    Refused {
        /// The gRPC status code.
        code: tonic::Code,
        /// The status message.
        message: String,
    },
    /// No `Welcome` in time.
    #[error("no Welcome within {seconds} s")]
    NoWelcome {
        /// The timeout.
        seconds: u64,
    },
    /// The first message was not `Welcome`.
    #[error("the control plane answered Hello with {got} instead of Welcome")]
    UnexpectedFirst {
        /// What came.
        got: &'static str,
    },
    /// The stream ended before `Welcome`.
    #[error("the control plane closed the session before Welcome")]
    ClosedBeforeWelcome,
}

/// An open session.
#[derive(Debug)]
pub(crate) struct Established {
    pub outbound: mpsc::Sender<AgentMessage>,
    pub inbound: Streaming<ControlMessage>,
    pub welcome: Welcome,
}

/// Dials, sends `hello` and waits for `Welcome`. A TLS refusal by either side is reported as
/// [`ConnectError::CertificateRefused`] or [`ConnectError::ServerNotTrusted`].
pub(crate) async fn establish(
    dial: &Dial,
    hello: Hello,
    welcome_timeout: Duration,
) -> Result<Established, ConnectError> {
    establish_session(dial, hello, welcome_timeout)
        .await
        .map_err(|err| classify(dial, err))
}

/// Names a certificate refusal hidden among `err`'s causes.
fn classify(dial: &Dial, err: Failure) -> ConnectError {
    let found = match &err {
        Failure::Connect(ConnectError::Dial(dial_err)) => tls_failure(dial_err),
        Failure::Status(status) => tls_failure(status),
        Failure::Connect(_) => None,
    };
    match found {
        Some(TlsFailure::Alert(alert)) if is_certificate_alert(&alert) => {
            ConnectError::CertificateRefused { alert }
        }
        Some(TlsFailure::Untrusted(reason)) => ConnectError::ServerNotTrusted {
            reason,
            server_name: dial.server_name(),
        },
        _ => match err {
            Failure::Connect(err) => err,
            Failure::Status(status) => ConnectError::Refused {
                code: status.code(),
                message: status.message().to_owned(),
            },
        },
    }
}

/// A TLS failure found among an error's causes.
enum TlsFailure {
    /// The peer sent this alert (rustls' name for it, e.g. `UnknownCA`).
    Alert(String),
    /// The peer's certificate did not verify: rustls' reason.
    Untrusted(String),
}

/// The alerts a TLS server sends when it does not accept the client's certificate.
const CERTIFICATE_ALERTS: [rustls::AlertDescription; 9] = [
    rustls::AlertDescription::BadCertificate,
    rustls::AlertDescription::UnsupportedCertificate,
    rustls::AlertDescription::CertificateRevoked,
    rustls::AlertDescription::CertificateExpired,
    rustls::AlertDescription::CertificateUnknown,
    rustls::AlertDescription::UnknownCA,
    rustls::AlertDescription::AccessDenied,
    rustls::AlertDescription::CertificateRequired,
    rustls::AlertDescription::DecryptError,
];

fn is_certificate_alert(name: &str) -> bool {
    CERTIFICATE_ALERTS
        .iter()
        .any(|alert| format!("{alert:?}") == name)
}

fn from_rustls(err: &rustls::Error) -> Option<TlsFailure> {
    match err {
        rustls::Error::AlertReceived(alert) => Some(TlsFailure::Alert(format!("{alert:?}"))),
        rustls::Error::InvalidCertificate(reason) => {
            Some(TlsFailure::Untrusted(reason.to_string()))
        }
        _ => None,
    }
}

/// The TLS failure among `err`'s causes. The rustls error is found typed when the handshake
/// itself fails; when the alert arrives later (TLS 1.3 client authentication) h2 has kept only
/// its kind and text (`received fatal alert: UnknownCA`, rustls' wording), which is read
/// instead. `std::io::Error` does not list the error it wraps as its source, so it is unwrapped
/// by hand.
fn tls_failure(err: &(dyn std::error::Error + 'static)) -> Option<TlsFailure> {
    const ALERT: &str = "received fatal alert: ";
    const UNTRUSTED: &str = "invalid peer certificate: ";
    let mut current = Some(err);
    while let Some(error) = current {
        if let Some(tls) = error.downcast_ref::<rustls::Error>() {
            return from_rustls(tls);
        }
        if let Some(inner) = error
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            if let Some(tls) = inner.downcast_ref::<rustls::Error>() {
                return from_rustls(tls);
            }
            let text = inner.to_string();
            if let Some(alert) = text.strip_prefix(ALERT) {
                return Some(TlsFailure::Alert(alert.trim().to_owned()));
            }
            if let Some(reason) = text.strip_prefix(UNTRUSTED) {
                return Some(TlsFailure::Untrusted(reason.trim().to_owned()));
            }
        }
        current = error.source();
    }
    None
}

/// A failure before classification: a gRPC status keeps its causes until [`classify`].
enum Failure {
    Connect(ConnectError),
    Status(tonic::Status),
}

impl From<ConnectError> for Failure {
    fn from(err: ConnectError) -> Self {
        Failure::Connect(err)
    }
}

impl From<ClientTlsError> for Failure {
    fn from(err: ClientTlsError) -> Self {
        Failure::Connect(ConnectError::Dial(err))
    }
}

async fn establish_session(
    dial: &Dial,
    hello: Hello,
    welcome_timeout: Duration,
) -> Result<Established, Failure> {
    let channel = dial.connect().await?;
    let (outbound, rx) = mpsc::channel(OUTBOUND_CAPACITY);
    // The channel is new and empty: the first message always fits.
    let _ = outbound.try_send(AgentMessage {
        msg: Some(agent_message::Msg::Hello(hello)),
    });
    let no_welcome = || ConnectError::NoWelcome {
        seconds: welcome_timeout.as_secs(),
    };
    let mut client = AgentServiceClient::new(channel);
    let response = tokio::time::timeout(welcome_timeout, client.session(ReceiverStream::new(rx)))
        .await
        .map_err(|_| no_welcome())?
        .map_err(Failure::Status)?;
    let mut inbound = response.into_inner();
    let first = tokio::time::timeout(welcome_timeout, inbound.message())
        .await
        .map_err(|_| no_welcome())?
        .map_err(Failure::Status)?
        .ok_or(ConnectError::ClosedBeforeWelcome)?;
    match first.msg {
        Some(control_message::Msg::Welcome(welcome)) => Ok(Established {
            outbound,
            inbound,
            welcome,
        }),
        Some(control_message::Msg::Assign(_)) => {
            Err(ConnectError::UnexpectedFirst { got: "Assign" }.into())
        }
        Some(control_message::Msg::Cancel(_)) => {
            Err(ConnectError::UnexpectedFirst { got: "Cancel" }.into())
        }
        Some(control_message::Msg::ResultAck(_)) => {
            Err(ConnectError::UnexpectedFirst { got: "ResultAck" }.into())
        }
        Some(control_message::Msg::Heartbeat(_)) => {
            Err(ConnectError::UnexpectedFirst { got: "Heartbeat" }.into())
        }
        None => Err(ConnectError::UnexpectedFirst {
            got: "an empty or unknown message",
        }
        .into()),
    }
}
