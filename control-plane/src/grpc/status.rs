//! Where the agent service's domain errors become `tonic::Status` (the only place).

use tonic::Status;

use super::hub::SessionEnd;
use super::version::VersionMismatch;
use cairn_certs::identity::IdentityError;

/// Why a `Session` stream was refused before it was registered (PROTOCOL.md §2.1, §2.3.1, §4).
#[derive(Debug, thiserror::Error)]
pub enum SessionRefusal {
    /// The connection carried no client certificate (only possible without the mTLS acceptor).
    #[error("no client certificate on the connection")]
    NoPeerCertificate,
    /// The certificate does not name an agent's node.
    #[error(transparent)]
    NotAnAgent(#[from] IdentityError),
    /// `Hello.node_name` differs from the certificate's node.
    #[error("certificate is for node {cert_node:?} but Hello claims node {hello_node:?}")]
    NodeMismatch {
        /// The node in the certificate.
        cert_node: String,
        /// The node in `Hello`.
        hello_node: String,
    },
    /// The agent's major version differs.
    #[error(transparent)]
    Version(#[from] VersionMismatch),
    /// The first message was not `Hello`.
    #[error("the first message of a session must be Hello, got {got}")]
    FirstMessageNotHello {
        /// What came instead.
        got: &'static str,
    },
    /// No `Hello` within the hello timeout.
    #[error("no Hello within {seconds} s")]
    HelloTimeout {
        /// The timeout.
        seconds: u64,
    },
    /// The agent closed the stream before `Hello`.
    #[error("the stream ended before Hello")]
    ClosedBeforeHello,
    /// Reading `Hello` failed.
    #[error("reading Hello")]
    Receive(#[source] Status),
    /// This replica does not hold the leader Lease (PROTOCOL.md §2.3.10); the message starts
    /// with [`NOT_LEADER`] so that agents recognise it and retry promptly.
    #[error("{NOT_LEADER}; {}", leader_hint(holder.as_deref()))]
    NotLeader {
        /// The Lease holder's identity as this replica last read it.
        holder: Option<String>,
    },
}

/// How every refusal and session end for lack of leadership starts (PROTOCOL.md §2.3.10).
pub const NOT_LEADER: &str = "not the leader";

fn leader_hint(holder: Option<&str>) -> String {
    match holder {
        Some(holder) if !holder.is_empty() => format!("the leader is {holder:?}"),
        _ => "no leader is known yet".to_owned(),
    }
}

/// The status that ends every session when this replica stops leading.
pub fn stepped_down_status() -> Status {
    Status::unavailable(format!(
        "{NOT_LEADER}: this replica lost the leader lease; reconnect to the leader"
    ))
}

impl SessionRefusal {
    /// The status that ends the stream.
    pub fn to_status(&self) -> Status {
        let message = error_chain(self);
        match self {
            SessionRefusal::NoPeerCertificate => Status::unauthenticated(message),
            SessionRefusal::NotAnAgent(_) | SessionRefusal::NodeMismatch { .. } => {
                Status::permission_denied(message)
            }
            SessionRefusal::Version(_) | SessionRefusal::FirstMessageNotHello { .. } => {
                Status::failed_precondition(message)
            }
            SessionRefusal::HelloTimeout { .. } => Status::deadline_exceeded(message),
            SessionRefusal::ClosedBeforeHello => Status::cancelled(message),
            SessionRefusal::Receive(status) => status.clone(),
            SessionRefusal::NotLeader { .. } => Status::unavailable(message),
        }
    }
}

/// The status that ends a registered session whose loop had to stop.
pub(crate) fn session_end_status(end: &SessionEnd) -> Status {
    match end {
        SessionEnd::Replaced => Status::aborted("replaced by a newer session"),
        SessionEnd::Protocol(text) => Status::failed_precondition(text.clone()),
    }
}

/// The status sent to a session that stayed silent too long.
pub(crate) fn liveness_status(silent_for_secs: u64) -> Status {
    Status::unavailable(format!(
        "no message from the agent for {silent_for_secs} s; session dropped"
    ))
}

/// `err: cause: cause` on one line, each cause once (the messages do not embed their source).
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Code;

    #[test]
    fn each_refusal_maps_to_the_code_the_protocol_names() {
        let mismatch = SessionRefusal::NodeMismatch {
            cert_node: "a".into(),
            hello_node: "b".into(),
        };
        let status = mismatch.to_status();
        assert_eq!(status.code(), Code::PermissionDenied);
        assert_eq!(
            status.message(),
            "certificate is for node \"a\" but Hello claims node \"b\""
        );
        let version = SessionRefusal::Version(VersionMismatch::MajorDiffers {
            agent: "2.0.0".into(),
            control_plane: "1.0.0".into(),
        });
        assert_eq!(version.to_status().code(), Code::FailedPrecondition);
        let first = SessionRefusal::FirstMessageNotHello { got: "Heartbeat" };
        assert_eq!(first.to_status().code(), Code::FailedPrecondition);
        let no_cert = SessionRefusal::NoPeerCertificate;
        assert_eq!(no_cert.to_status().code(), Code::Unauthenticated);
        let not_agent = SessionRefusal::NotAnAgent(IdentityError::NotAnAgentCertificate);
        assert_eq!(not_agent.to_status().code(), Code::PermissionDenied);
        assert_eq!(
            session_end_status(&SessionEnd::Replaced).code(),
            Code::Aborted
        );
    }
}
