//! Which store errors are worth retrying, and the backoff used when they are
//! (docs/FORMAT.md §2.3).

use std::error::Error as StdError;
use std::time::Duration;

use backon::ExponentialBuilder;

/// How the repository layer retries idempotent operations on transient errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryOptions {
    /// Attempts after the first one.
    pub max_retries: usize,
    /// Delay before the first retry (then doubling, with full jitter).
    pub min_delay: Duration,
    /// Upper bound of one delay.
    pub max_delay: Duration,
}

impl Default for RetryOptions {
    fn default() -> Self {
        RetryOptions {
            max_retries: 4,
            min_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(10),
        }
    }
}

impl RetryOptions {
    /// The backon policy for these options: exponential, with jitter.
    pub(crate) fn backoff(&self) -> ExponentialBuilder {
        ExponentialBuilder::default()
            .with_min_delay(self.min_delay)
            .with_max_delay(self.max_delay)
            .with_max_times(self.max_retries)
            .with_jitter()
    }
}

/// Whether an `object_store` error may go away on retry: server errors (5xx), throttling
/// (429), network failures and timeouts. Not found, permission, precondition and other 4xx
/// errors are permanent.
pub(crate) fn is_transient(err: &object_store::Error) -> bool {
    match err {
        object_store::Error::Generic { store, source } if *store == super::local::STORE_NAME => {
            match source.downcast_ref::<super::local::LocalError>() {
                Some(local) => local.is_transient(),
                None => chain_is_transient(source.as_ref()),
            }
        }
        object_store::Error::Generic { source, .. } => chain_is_transient(source.as_ref()),
        object_store::Error::JoinError { .. } => true,
        _ => false,
    }
}

fn chain_is_transient(err: &(dyn StdError + 'static)) -> bool {
    let mut cause: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(current) = cause {
        if let Some(io) = current.downcast_ref::<std::io::Error>() {
            return io_is_transient(io);
        }
        if let Some(http) = current.downcast_ref::<reqwest::Error>() {
            if let Some(status) = http.status() {
                return status.is_server_error() || status.as_u16() == 429;
            }
            return http.is_timeout() || http.is_connect() || http.is_request() || http.is_body();
        }
        cause = current.source();
    }
    // object_store's HTTP client reports statuses only in its message.
    match http_status_in(&err.to_string()) {
        Some(status) => status >= 500 || status == 429,
        None => true,
    }
}

fn io_is_transient(io: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        io.kind(),
        Interrupted | TimedOut | WouldBlock | ConnectionReset | ConnectionAborted | BrokenPipe
    )
}

/// Finds `status code: 503` (object_store's wording) in an error message.
fn http_status_in(text: &str) -> Option<u16> {
    let marker = "status code: ";
    let start = text.find(marker)? + marker.len();
    text.get(start..start + 3)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn generic(source: impl StdError + Send + Sync + 'static) -> object_store::Error {
        object_store::Error::Generic {
            store: "test",
            source: Box::new(source),
        }
    }

    #[derive(Debug)]
    struct Msg(&'static str);
    impl std::fmt::Display for Msg {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }
    impl StdError for Msg {}

    #[test]
    fn server_errors_and_throttling_are_retried_client_errors_are_not() {
        assert!(is_transient(&generic(Msg(
            "Server returned non-2xx status code: 503 Service Unavailable: SlowDown"
        ))));
        assert!(is_transient(&generic(Msg(
            "Server returned non-2xx status code: 429 Too Many Requests"
        ))));
        assert!(!is_transient(&generic(Msg(
            "Server returned non-2xx status code: 400 Bad Request"
        ))));
        assert!(is_transient(&generic(Msg("error sending request"))));
    }

    #[test]
    fn local_io_errors_are_classified_by_kind() {
        let denied = std::io::Error::new(std::io::ErrorKind::PermissionDenied, "no");
        assert!(!is_transient(&generic(denied)));
        let reset = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset");
        assert!(is_transient(&generic(reset)));
    }

    #[test]
    fn not_found_is_permanent() {
        let err = object_store::Error::NotFound {
            path: "x".into(),
            source: Box::new(Msg("missing")),
        };
        assert!(!is_transient(&err));
    }
}
