//! The one place where storage-socket failures become `tonic::Status`: which code each
//! failure gets, and a message that carries its whole cause chain (the client prints it as
//! `Error: …`, exactly like the direct `datasafed`).

use std::error::Error as StdError;

use cairn_repo::ErrorKind;
use tonic::{Code, Status};

use super::access::AccessError;
use super::repository::OpenError;

/// Why a storage-socket call failed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// No `authorization: Bearer` metadata, or not a valid header value.
    #[error(
        "the call carries no storage token (expected \"authorization: Bearer <token>\" metadata)"
    )]
    MissingToken,
    /// The token is not (or no longer) live.
    #[error(
        "the storage token is unknown or has been revoked (the action has ended or the agent restarted)"
    )]
    UnknownToken,
    /// A path was outside the grant or not a valid path.
    #[error(transparent)]
    Access(#[from] AccessError),
    /// The grant's repository cannot be opened.
    #[error(transparent)]
    Open(#[from] OpenError),
    /// The repository engine failed.
    #[error(transparent)]
    Repository(#[from] cairn_repo::Error),
    /// The client's request stream failed (reset, cancelled, undecodable).
    #[error("receiving the request: {}", .0.message())]
    Receive(Status),
    /// The client broke the call's message order (Put without a header first, or two).
    #[error("{0}")]
    Protocol(&'static str),
    /// A request field has a value the agent cannot use.
    #[error("{field} {value:?} is not valid: {reason}")]
    InvalidField {
        /// The request field.
        field: &'static str,
        /// Its value.
        value: String,
        /// What was expected.
        reason: &'static str,
    },
}

impl CallError {
    /// The gRPC code of this failure.
    pub fn code(&self) -> Code {
        match self {
            CallError::MissingToken | CallError::UnknownToken => Code::Unauthenticated,
            CallError::Access(AccessError::Denied { .. }) => Code::PermissionDenied,
            CallError::Access(AccessError::InvalidPath { .. }) => Code::InvalidArgument,
            CallError::Access(AccessError::InvalidPrefix { .. }) => Code::FailedPrecondition,
            CallError::Open(OpenError::Dedup { source, .. }) => repo_code(source),
            CallError::Open(OpenError::DedupUnsupported { .. }) => Code::Unimplemented,
            CallError::Open(_) => Code::FailedPrecondition,
            CallError::Repository(err) => {
                client_status(err).map_or_else(|| repo_code(err), Status::code)
            }
            CallError::Receive(status) => status.code(),
            CallError::Protocol(_) | CallError::InvalidField { .. } => Code::InvalidArgument,
        }
    }
}

impl From<CallError> for Status {
    fn from(err: CallError) -> Status {
        Status::new(err.code(), chain(&err))
    }
}

fn repo_code(err: &cairn_repo::Error) -> Code {
    match err.kind() {
        ErrorKind::NotFound => Code::NotFound,
        ErrorKind::InvalidInput => Code::InvalidArgument,
        ErrorKind::Unsupported => Code::Unimplemented,
        ErrorKind::Corrupt => Code::DataLoss,
        // A wrong passphrase or tampered data: the grant does not fit the object.
        ErrorKind::Crypto => Code::FailedPrecondition,
        ErrorKind::Locked => Code::Aborted,
        ErrorKind::Backend if err.is_transient() => Code::Unavailable,
        ErrorKind::Backend | ErrorKind::Io => Code::Internal,
    }
}

/// A `Status` that came from the client's own request stream (a broken or reset `Put`),
/// somewhere in the cause chain: its code is the truthful one.
fn client_status(err: &cairn_repo::Error) -> Option<&Status> {
    let mut source: Option<&(dyn StdError + 'static)> = err.source();
    while let Some(current) = source {
        if let Some(status) = as_status(current) {
            return Some(status);
        }
        source = current.source();
    }
    None
}

/// The `Status` an error is, or wraps as an `io::Error` (whose `source()` skips it).
fn as_status<'a>(err: &'a (dyn StdError + 'static)) -> Option<&'a Status> {
    err.downcast_ref::<Status>().or_else(|| {
        err.downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|inner| inner.downcast_ref::<Status>())
    })
}

/// The error and its causes joined by `: `, each cause once.
pub fn chain(err: &(dyn StdError + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let line = match as_status(cause) {
            Some(status) => status.message().to_string(),
            None => cause.to_string(),
        };
        if !line.is_empty() && !text.contains(&line) {
            text.push_str(": ");
            text.push_str(&line);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::socket::access::{Access, Operation};

    #[test]
    fn a_denied_path_is_permission_denied_naming_path_and_prefix() {
        let access = Access::new("/ns/b1", &[]).expect("grant");
        let err = access
            .check(Operation::Write, "/ns/b2/x")
            .expect_err("denied");
        let status = Status::from(CallError::from(err));
        assert_eq!(status.code(), Code::PermissionDenied);
        assert!(
            status.message().contains("/ns/b2/x"),
            "{}",
            status.message()
        );
        assert!(status.message().contains("/ns/b1"), "{}", status.message());
    }

    #[test]
    fn unknown_and_missing_tokens_are_unauthenticated() {
        assert_eq!(
            Status::from(CallError::UnknownToken).code(),
            Code::Unauthenticated
        );
        assert_eq!(
            Status::from(CallError::MissingToken).code(),
            Code::Unauthenticated
        );
    }

    #[test]
    fn repository_errors_map_by_kind_with_their_cause_chain() {
        let io = std::io::Error::new(std::io::ErrorKind::PermissionDenied, "disk says no");
        let err = cairn_repo::Error::new(ErrorKind::Io, "writing ns/b1/x").with_source(io);
        let status = Status::from(CallError::from(err));
        assert_eq!(status.code(), Code::Internal);
        assert_eq!(status.message(), "writing ns/b1/x: disk says no");
        for (kind, code) in [
            (ErrorKind::NotFound, Code::NotFound),
            (ErrorKind::InvalidInput, Code::InvalidArgument),
            (ErrorKind::Unsupported, Code::Unimplemented),
            (ErrorKind::Corrupt, Code::DataLoss),
            (ErrorKind::Crypto, Code::FailedPrecondition),
            (ErrorKind::Locked, Code::Aborted),
            (ErrorKind::Backend, Code::Internal),
        ] {
            let status = Status::from(CallError::from(cairn_repo::Error::new(
                kind,
                "x does not exist",
            )));
            assert_eq!(status.code(), code, "{kind:?}");
            assert_eq!(status.message(), "x does not exist");
        }
    }

    #[test]
    fn a_broken_client_stream_keeps_the_clients_code() {
        let client = Status::invalid_argument("a second PutHeader arrived after data");
        let err = cairn_repo::Error::new(ErrorKind::Io, "reading the data to push")
            .with_source(std::io::Error::other(client));
        let status = Status::from(CallError::from(err));
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(
            status.message(),
            "reading the data to push: a second PutHeader arrived after data"
        );
    }
}
