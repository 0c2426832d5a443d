//! `RetentionPeriod`: `1y2mo3w4d5h6m`, where y = 365 days, mo = 30 days, w = 7 days, d, h and m = minutes.
//!
//! Follows KubeBlocks' `RetentionPeriod.ToDuration` (semantics §7.1) except where the brief is
//! stricter: negative numbers are rejected (KubeBlocks 0.9 accepted them, main rejects them), as are
//! a number without a unit, a unit without a number and unknown units. Surrounding spaces are
//! trimmed; the empty string means "no expiry"; a repeated unit replaces the earlier value, as in KubeBlocks.

use std::fmt;

/// A parsed retention period, one count per unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Retention {
    /// Years of 365 days.
    pub years: u32,
    /// Months of 30 days.
    pub months: u32,
    /// Weeks.
    pub weeks: u32,
    /// Days.
    pub days: u32,
    /// Hours.
    pub hours: u32,
    /// Minutes.
    pub minutes: u32,
}

/// Why a retention period is invalid; the message quotes the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RetentionError {
    /// A unit other than y, mo, w, d, h, m.
    #[error("invalid retention period {input:?}: unknown unit {unit:?}")]
    UnknownUnit {
        /// The whole input.
        input: String,
        /// The unknown unit.
        unit: String,
    },
    /// A number at the end without a unit.
    #[error("invalid retention period {input:?}: number {number} has no unit")]
    MissingUnit {
        /// The whole input.
        input: String,
        /// The number without unit.
        number: String,
    },
    /// A unit (or other character) where a number was expected.
    #[error("invalid retention period {input:?}: expected a number at {rest:?}")]
    MissingNumber {
        /// The whole input.
        input: String,
        /// The remaining text where a number was expected.
        rest: String,
    },
    /// A negative count.
    #[error("invalid retention period {input:?}: negative numbers are not allowed")]
    Negative {
        /// The whole input.
        input: String,
    },
    /// A count that does not fit.
    #[error("invalid retention period {input:?}: {number} is too large")]
    TooLarge {
        /// The whole input.
        input: String,
        /// The count that overflowed.
        number: String,
    },
}

/// Parses a retention period.
pub fn parse(input: &str) -> Result<Retention, RetentionError> {
    let mut rest = input.trim();
    let mut r = Retention::default();
    while !rest.is_empty() {
        if rest.starts_with('-') {
            return Err(RetentionError::Negative {
                input: input.to_string(),
            });
        }
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(RetentionError::MissingNumber {
                input: input.to_string(),
                rest: rest.to_string(),
            });
        }
        let number = &rest[..digits];
        let value: u32 = number.parse().map_err(|_| RetentionError::TooLarge {
            input: input.to_string(),
            number: number.to_string(),
        })?;
        rest = &rest[digits..];
        if rest.is_empty() {
            return Err(RetentionError::MissingUnit {
                input: input.to_string(),
                number: number.to_string(),
            });
        }
        let (slot, len) = if rest.starts_with("mo") {
            (&mut r.months, 2)
        } else {
            match rest.as_bytes()[0] {
                b'y' => (&mut r.years, 1),
                b'w' => (&mut r.weeks, 1),
                b'd' => (&mut r.days, 1),
                b'h' => (&mut r.hours, 1),
                b'm' => (&mut r.minutes, 1),
                _ => {
                    let unit: String = rest
                        .chars()
                        .take_while(|c| !c.is_ascii_digit() && *c != '-')
                        .collect();
                    return Err(RetentionError::UnknownUnit {
                        input: input.to_string(),
                        unit,
                    });
                }
            }
        };
        *slot = value;
        rest = &rest[len..];
    }
    Ok(r)
}

impl Retention {
    /// The total in minutes: m + 60h + 1440d + 10080w + 43200mo + 525600y.
    pub fn total_minutes(&self) -> u64 {
        u64::from(self.minutes)
            + 60 * u64::from(self.hours)
            + 1_440 * u64::from(self.days)
            + 10_080 * u64::from(self.weeks)
            + 43_200 * u64::from(self.months)
            + 525_600 * u64::from(self.years)
    }

    /// The period as a duration (zero means "keep forever").
    pub fn to_duration(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.total_minutes() * 60)
    }

    /// Whether the period is zero (no expiry).
    pub fn is_zero(&self) -> bool {
        self.total_minutes() == 0
    }
}

impl fmt::Display for Retention {
    /// The canonical form, units in order y, mo, w, d, h, m, zero units left out (`""` for zero).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (value, unit) in [
            (self.years, "y"),
            (self.months, "mo"),
            (self.weeks, "w"),
            (self.days, "d"),
            (self.hours, "h"),
            (self.minutes, "m"),
        ] {
            if value > 0 {
                write!(f, "{value}{unit}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Cases from KubeBlocks' `RetentionPeriod` tests, plus the brief's stricter rejections.
    #[test]
    fn parses_the_same_as_kubeblocks() {
        let ok = [
            ("", 0),
            ("30m", 30),
            ("12h", 720),
            ("30d", 43_200),
            ("1w", 10_080),
            ("6mo", 259_200),
            ("2y", 1_051_200),
            ("30d12h30m", 43_200 + 720 + 30),
            ("1y2mo3w4d5h6m", 525_600 + 86_400 + 30_240 + 5_760 + 300 + 6),
            (" 7d ", 10_080),
            ("1d2d", 2_880),
        ];
        for (input, minutes) in ok {
            assert_eq!(
                parse(input).map(|r| r.total_minutes()),
                Ok(minutes),
                "{input:?}"
            );
        }
    }

    #[test]
    fn rejects_unknown_units_missing_units_and_negatives_quoting_the_input() {
        let cases = [
            ("10x", r#"invalid retention period "10x": unknown unit "x""#),
            ("5", r#"invalid retention period "5": number 5 has no unit"#),
            (
                "d",
                r#"invalid retention period "d": expected a number at "d""#,
            ),
            (
                "-1d",
                r#"invalid retention period "-1d": negative numbers are not allowed"#,
            ),
            (
                "1d-2h",
                r#"invalid retention period "1d-2h": negative numbers are not allowed"#,
            ),
            (
                "1 d",
                r#"invalid retention period "1 d": unknown unit " d""#,
            ),
            (
                "99999999999d",
                r#"invalid retention period "99999999999d": 99999999999 is too large"#,
            ),
        ];
        for (input, message) in cases {
            assert_eq!(
                parse(input).map_err(|e| e.to_string()),
                Err(message.to_string()),
                "{input:?}"
            );
        }
    }

    proptest! {
        #[test]
        fn printing_and_parsing_round_trips(y in 0u32..100, mo in 0u32..100, w in 0u32..100, d in 0u32..1000, h in 0u32..1000, m in 0u32..1000) {
            let r = Retention { years: y, months: mo, weeks: w, days: d, hours: h, minutes: m };
            prop_assert_eq!(parse(&r.to_string()), Ok(r));
        }

        #[test]
        fn no_input_panics(s in "\\PC{0,20}") {
            let _ = parse(&s);
        }
    }
}
