//! `cairnctl`'s exit codes, distinct as kubectl users expect: 0 success, 1 a failure (an object
//! failed, a call was refused, nothing found), 2 a usage error (clap's: an unknown flag, a bad
//! value), 3 a timeout (`--wait` gave up, `--request-timeout` passed). And `--timeout` values:
//! Go durations (`90s`, `10m`, `1h30m`) or whole seconds (`300`).

use std::process::ExitCode;
use std::time::Duration;

/// Something failed.
pub const FAILURE: u8 = 1;
/// The command line is wrong (clap exits with it).
pub const USAGE: u8 = 2;
/// A wait or a request ran out of time.
pub const TIMEOUT: u8 = 3;

/// A wait that gave up: its message says what was still pending and for how long.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TimedOut(pub String);

/// A command line that is well-formed but asks for something the command does not do (an
/// option it cannot honour): exit code 2, like clap's usage errors.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Usage(pub String);

/// The exit code of a failed command.
pub fn code_of(err: &anyhow::Error) -> ExitCode {
    if err.chain().any(|cause| cause.is::<Usage>()) {
        return ExitCode::from(USAGE);
    }
    let timed_out = err.chain().any(|cause| {
        cause.is::<TimedOut>()
            || cause.is::<tokio::time::error::Elapsed>()
            || cause
                .downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
    });
    ExitCode::from(if timed_out { TIMEOUT } else { FAILURE })
}

/// Parses a `--timeout`: a Go duration (`90s`, `10m`, `1h30m`) or whole seconds (`300`).
pub fn parse_timeout(text: &str) -> Result<Duration, String> {
    let trimmed = text.trim();
    if let Ok(seconds) = trimmed.parse::<u64>() {
        return Ok(Duration::from_secs(seconds));
    }
    let parsed = cairn_api::parse::duration::parse(trimmed)
        .map_err(|err| format!("{err}: use a duration such as 90s, 10m or 1h30m, or seconds"))?;
    if parsed.0 < 0 {
        return Err(format!("{text:?} is negative"));
    }
    Ok(parsed.to_std())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_take_durations_and_plain_seconds() {
        assert_eq!(parse_timeout("300"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_timeout("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_timeout("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_timeout("1.5s"), Ok(Duration::from_millis(1500)));
        let err = parse_timeout("ten minutes").unwrap_err();
        assert!(err.contains("such as 90s"), "{err}");
        assert!(parse_timeout("-5m").is_err());
    }

    #[test]
    fn a_timeout_anywhere_in_the_chain_exits_3_and_anything_else_1() {
        let timed_out = anyhow::Error::new(TimedOut("Backup b1 is still Running after 10s".into()))
            .context("waiting for Backup b1");
        assert_eq!(code_of(&timed_out), ExitCode::from(TIMEOUT));
        let failed = anyhow::anyhow!("Backup b1 failed: no pod");
        assert_eq!(code_of(&failed), ExitCode::from(FAILURE));
    }
}
