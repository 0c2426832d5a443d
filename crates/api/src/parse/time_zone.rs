//! `timeRange.timeZone`: a UTC offset `±HH:MM`, in the documented range -12:59 .. +13:00.
//!
//! KubeBlocks' CRD pattern accepts ±00:00..±13:59 and its restore helper silently ignores other
//! forms (ARCHITECTURE.md §K8 S11); Cairn enforces the documented range and reports the rest.

use std::fmt;

/// A UTC offset in minutes east of UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TimeZoneOffset(pub i32);

/// Why a time zone offset is invalid; the message quotes the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimeZoneError {
    /// Not of the form `±HH:MM`.
    #[error("invalid time zone {0:?}: want an offset ±HH:MM")]
    Format(String),
    /// Outside -12:59 .. +13:00.
    #[error("invalid time zone {0:?}: offset must be between -12:59 and +13:00")]
    OutOfRange(String),
}

/// The smallest offset allowed, in minutes (-12:59).
pub const MIN_MINUTES: i32 = -(12 * 60 + 59);
/// The largest offset allowed, in minutes (+13:00).
pub const MAX_MINUTES: i32 = 13 * 60;

/// Parses a time zone offset.
pub fn parse(input: &str) -> Result<TimeZoneOffset, TimeZoneError> {
    let b = input.as_bytes();
    let ok = b.len() == 6
        && (b[0] == b'+' || b[0] == b'-')
        && b[1].is_ascii_digit()
        && b[2].is_ascii_digit()
        && b[3] == b':'
        && b[4].is_ascii_digit()
        && b[5].is_ascii_digit();
    if !ok {
        return Err(TimeZoneError::Format(input.to_string()));
    }
    let hours = i32::from(b[1] - b'0') * 10 + i32::from(b[2] - b'0');
    let minutes = i32::from(b[4] - b'0') * 10 + i32::from(b[5] - b'0');
    if minutes > 59 {
        return Err(TimeZoneError::Format(input.to_string()));
    }
    let total = (hours * 60 + minutes) * if b[0] == b'-' { -1 } else { 1 };
    if !(MIN_MINUTES..=MAX_MINUTES).contains(&total) {
        return Err(TimeZoneError::OutOfRange(input.to_string()));
    }
    Ok(TimeZoneOffset(total))
}

impl fmt::Display for TimeZoneOffset {
    /// `+08:00`, `-05:30`; zero prints as `+00:00`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { '-' } else { '+' };
        let abs = self.0.abs();
        write!(f, "{sign}{:02}:{:02}", abs / 60, abs % 60)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn accepts_the_documented_range_and_nothing_else() {
        assert_eq!(parse("+08:00"), Ok(TimeZoneOffset(480)));
        assert_eq!(parse("-12:59"), Ok(TimeZoneOffset(MIN_MINUTES)));
        assert_eq!(parse("+13:00"), Ok(TimeZoneOffset(MAX_MINUTES)));
        assert_eq!(parse("-00:00"), Ok(TimeZoneOffset(0)));
        assert_eq!(
            parse("+13:01"),
            Err(TimeZoneError::OutOfRange("+13:01".into()))
        );
        assert_eq!(
            parse("-13:00"),
            Err(TimeZoneError::OutOfRange("-13:00".into()))
        );
        for bad in ["08:00", "+8:00", "+08:60", "UTC", "+0800", ""] {
            assert_eq!(
                parse(bad),
                Err(TimeZoneError::Format(bad.into())),
                "{bad:?}"
            );
        }
    }

    proptest! {
        #[test]
        fn printing_and_parsing_round_trips(minutes in MIN_MINUTES..=MAX_MINUTES) {
            prop_assert_eq!(parse(&TimeZoneOffset(minutes).to_string()), Ok(TimeZoneOffset(minutes)));
        }

        #[test]
        fn no_input_panics(s in "\\PC{0,8}") {
            let _ = parse(&s);
        }
    }
}
