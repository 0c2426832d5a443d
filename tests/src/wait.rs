//! Polling until something a test waits for is true, with a deadline and a description of the
//! last state seen (so a timeout says what was wrong, not just that time ran out).

use std::time::Duration;

/// One look at the state being waited for.
pub enum Check<T> {
    /// Done, with the value the caller wanted.
    Done(T),
    /// Not yet; the text says what was seen.
    Pending(String),
}

/// How often [`until`] looks.
pub const POLL: Duration = Duration::from_millis(100);

/// Calls `probe` every [`POLL`] until it returns [`Check::Done`], an error, or `timeout` passes
/// (then the error names `what` and the last pending state).
pub async fn until<T>(
    what: &str,
    timeout: Duration,
    mut probe: impl AsyncFnMut() -> anyhow::Result<Check<T>>,
) -> anyhow::Result<T> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let last = match probe().await? {
            Check::Done(value) => return Ok(value),
            Check::Pending(state) => state,
        };
        if tokio::time::Instant::now() >= deadline {
            anyhow::bail!("timed out after {timeout:?} waiting for {what}; last seen: {last}");
        }
        tokio::time::sleep(POLL).await;
    }
}
