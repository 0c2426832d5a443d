//! `Restore.spec.restoreTime`: exactly `YYYY-MM-DDTHH:MM:SSZ` (UTC, whole seconds), a real calendar time.

use jiff::Timestamp;

/// Why a restore time is invalid; the message quotes the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RestoreTimeError {
    /// Not of the form `YYYY-MM-DDTHH:MM:SSZ`.
    #[error("invalid restore time {0:?}: want YYYY-MM-DDTHH:MM:SSZ")]
    Format(String),
    /// The right form but no such time (e.g. month 13).
    #[error("invalid restore time {input:?}: {reason}")]
    OutOfRange {
        /// The whole input.
        input: String,
        /// What is out of range.
        reason: String,
    },
}

/// Parses a restore time.
pub fn parse(input: &str) -> Result<Timestamp, RestoreTimeError> {
    let b = input.as_bytes();
    let digit = |i: usize| b.get(i).is_some_and(u8::is_ascii_digit);
    let shape = b.len() == 20
        && [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18]
            .iter()
            .all(|&i| digit(i))
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && b[19] == b'Z';
    if !shape {
        return Err(RestoreTimeError::Format(input.to_string()));
    }
    let num = |r: std::ops::Range<usize>| input[r].parse::<i16>().unwrap_or(-1);
    let (year, month, day) = (num(0..4), num(5..7), num(8..10));
    let (hour, minute, second) = (num(11..13), num(14..16), num(17..19));
    let out_of_range = |e: jiff::Error| RestoreTimeError::OutOfRange {
        input: input.to_string(),
        reason: e.to_string(),
    };
    let date = jiff::civil::Date::new(year, month as i8, day as i8).map_err(out_of_range)?;
    let time =
        jiff::civil::Time::new(hour as i8, minute as i8, second as i8, 0).map_err(out_of_range)?;
    date.to_datetime(time)
        .to_zoned(jiff::tz::TimeZone::UTC)
        .map(|z| z.timestamp())
        .map_err(out_of_range)
}

/// Prints a timestamp as a restore time (whole seconds, UTC).
pub fn format(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn accepts_only_utc_whole_seconds() {
        assert_eq!(
            parse("2024-02-29T23:59:59Z").map(format),
            Ok("2024-02-29T23:59:59Z".to_string())
        );
        for bad in [
            "2024-02-29 23:59:59Z",
            "2024-02-29T23:59:59+00:00",
            "2024-02-29T23:59:59.5Z",
            "2024-2-29T23:59:59Z",
            "",
        ] {
            assert_eq!(
                parse(bad),
                Err(RestoreTimeError::Format(bad.to_string())),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn rejects_times_that_do_not_exist_quoting_the_input() {
        for bad in [
            "2023-02-29T00:00:00Z",
            "2024-13-01T00:00:00Z",
            "2024-01-01T24:00:00Z",
        ] {
            let err = parse(bad).expect_err(bad).to_string();
            assert!(
                err.starts_with(&format!("invalid restore time {bad:?}: ")),
                "{err}"
            );
        }
    }

    proptest! {
        #[test]
        fn printing_and_parsing_round_trips(secs in 0i64..253_402_300_799) {
            let t = Timestamp::from_second(secs).expect("in range");
            prop_assert_eq!(parse(&format(t)), Ok(t));
        }

        #[test]
        fn no_input_panics(s in "[0-9TZ:-]{0,22}") {
            let _ = parse(&s);
        }
    }
}
