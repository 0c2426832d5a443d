//! The API server's size limits, as localkube enforces them.

/// The largest request body the API server reads (`MaxRequestBodyBytes`, 3 MiB); larger ones
/// are refused with 413 before they are decoded.
pub const MAX_REQUEST_BYTES: usize = 3 * 1024 * 1024;
