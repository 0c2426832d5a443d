//! The crate's one public error: an opaque `Error` with a `kind()` and the object it concerns.
//!
//! Rules (after rustic_core's `error.rs`):
//! - Public functions return [`Error`]; modules build it with a constructor naming the step
//!   that failed (`Error::backend("reading pack data/ab/ab12…", source)`).
//! - The message says, in lowercase, what was being done and on which object; the cause is
//!   chained as `source()` and never repeated in the message, so a chain reporter (`{:#}` in
//!   anyhow) prints each cause once.
//! - Errors are never downgraded: a corrupt object stays `Corrupt` however deep it was found.

use std::fmt;

/// What kind of failure an [`Error`] is; callers branch on this, never on messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The named object, file, snapshot or path does not exist.
    NotFound,
    /// An object exists but its bytes are not what the format says (truncated, garbled,
    /// wrong magic, inconsistent with the index).
    Corrupt,
    /// Authentication failed: wrong passphrase, or data was tampered with.
    Crypto,
    /// The store failed (network, permissions, quota, server error).
    Backend,
    /// The operation conflicts with a concurrent one (a writer session or a prune).
    Locked,
    /// The caller passed something invalid (a config key, a URL, a flag value).
    InvalidInput,
    /// Valid but not supported by this implementation (ftp, sftp or webdav storage).
    Unsupported,
    /// Local file-system I/O failed (reading a source file, writing a restored file).
    Io,
}

impl ErrorKind {
    /// A short lowercase label, stable for metrics and JSON output.
    pub fn label(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "not_found",
            ErrorKind::Corrupt => "corrupt",
            ErrorKind::Crypto => "crypto",
            ErrorKind::Backend => "backend",
            ErrorKind::Locked => "locked",
            ErrorKind::InvalidInput => "invalid_input",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::Io => "io",
        }
    }
}

type Source = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The error of every public operation of this crate.
pub struct Error {
    kind: ErrorKind,
    message: String,
    transient: bool,
    source: Option<Source>,
}

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A new error of `kind` with a message saying what was being done.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            transient: false,
            source: None,
        }
    }

    /// Attaches the underlying cause.
    pub fn with_source(mut self, source: impl Into<Source>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// Marks the error as worth retrying.
    pub(crate) fn transient(mut self, transient: bool) -> Self {
        self.transient = transient;
        self
    }

    /// The kind of failure.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// Whether retrying the same operation may succeed (network hiccups, 5xx, throttling).
    pub fn is_transient(&self) -> bool {
        self.transient
    }

    /// The message without its causes.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Prefixes the message with more context (`"restoring snapshot 3fa…: " + message`).
    pub fn context(mut self, context: impl fmt::Display) -> Self {
        self.message = format!("{context}: {}", self.message);
        self
    }

    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::NotFound, message)
    }

    pub(crate) fn corrupt(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Corrupt, message)
    }

    pub(crate) fn crypto(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Crypto, message)
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::InvalidInput, message)
    }

    pub(crate) fn unsupported(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Unsupported, message)
    }

    pub(crate) fn io(message: impl Into<String>, source: std::io::Error) -> Self {
        let transient = matches!(
            source.kind(),
            std::io::ErrorKind::Interrupted
                | std::io::ErrorKind::TimedOut
                | std::io::ErrorKind::WouldBlock
        );
        Error::new(ErrorKind::Io, message)
            .with_source(source)
            .transient(transient)
    }

    /// Converts an I/O error that came out of one of our own `Read`/`Write` adapters back
    /// into the [`Error`] it wraps, or wraps it as local I/O.
    pub(crate) fn from_io(message: impl Into<String>, err: std::io::Error) -> Self {
        if err.get_ref().is_some_and(|inner| inner.is::<Error>()) {
            match err.into_inner().map(|inner| inner.downcast::<Error>()) {
                Some(Ok(inner)) => return *inner,
                Some(Err(other)) => {
                    return Error::new(ErrorKind::Io, message).with_source(other);
                }
                None => return Error::new(ErrorKind::Io, message),
            }
        }
        Error::io(message, err)
    }

    /// Wraps this error into an `io::Error` so it can travel through `Read`/`Write` code and
    /// be recovered by [`Error::from_io`].
    pub(crate) fn into_io(self) -> std::io::Error {
        std::io::Error::other(self)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = f.debug_struct("Error");
        s.field("kind", &self.kind).field("message", &self.message);
        if self.transient {
            s.field("transient", &true);
        }
        if let Some(source) = &self.source {
            s.field("source", &format_args!("{source}"));
        }
        s.finish()
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|s| s as &(dyn std::error::Error + 'static))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_round_trip_keeps_the_original_kind_and_message() {
        let original = Error::corrupt("pack data/ab/abcd: bad magic");
        let back = Error::from_io("reading", original.into_io());
        assert_eq!(back.kind(), ErrorKind::Corrupt);
        assert_eq!(back.to_string(), "pack data/ab/abcd: bad magic");
    }

    #[test]
    fn message_does_not_repeat_the_source() {
        let err = Error::io(
            "reading /x",
            std::io::Error::new(std::io::ErrorKind::PermissionDenied, "denied"),
        );
        assert_eq!(err.to_string(), "reading /x");
        assert!(std::error::Error::source(&err).is_some());
    }
}
