//! Time values in the API: Go durations (`exec.timeout`, `status.duration`) and retention
//! periods, through the API crate's parsers.

use std::time::Duration;

use cairn_api::parse::{duration, retention as retention_period};

/// Parses a Go duration such as `30s` or `1h2m0.5s`.
pub fn go_duration(text: &str) -> Result<Duration, String> {
    duration::parse(text)
        .map(|d| d.to_std())
        .map_err(|err| err.to_string())
}

/// Parses a retention period such as `7d` or `1y2mo3w`; empty or zero means no expiry (`None`).
pub fn retention(text: &str) -> Result<Option<Duration>, String> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    retention_period::parse(text)
        .map(|period| (!period.is_zero()).then(|| period.to_duration()))
        .map_err(|err| err.to_string())
}

/// A duration rounded to whole seconds, printed as Go does: `1h2m5s`, `45s`, `0s`.
pub fn go_duration_text(elapsed: Duration) -> String {
    let rounded = (elapsed.as_millis() + 500) / 1000 * 1_000_000_000;
    duration::GoDuration(i64::try_from(rounded).unwrap_or(i64::MAX)).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_durations_are_rounded_to_seconds_and_printed_like_go() {
        assert_eq!(go_duration_text(Duration::from_millis(0)), "0s");
        assert_eq!(go_duration_text(Duration::from_millis(65_400)), "1m5s");
        assert_eq!(go_duration_text(Duration::from_millis(65_500)), "1m6s");
        assert_eq!(go_duration_text(Duration::from_secs(3600)), "1h0m0s");
        assert_eq!(go_duration_text(Duration::from_secs(3725)), "1h2m5s");
    }

    #[test]
    fn empty_and_zero_retention_mean_no_expiry() {
        assert_eq!(retention(""), Ok(None));
        assert_eq!(retention("0d"), Ok(None));
        assert_eq!(retention("1d"), Ok(Some(Duration::from_secs(86_400))));
    }
}
