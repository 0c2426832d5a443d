//! Byte sizes as rclone and Kubernetes write them: `50Mi`, `8M`, `1G`, `4096`.

use crate::{Error, Result};

/// Parses a size: a number followed by an optional unit. `K/M/G/T` and `Ki/Mi/Gi/Ti` (and
/// the same with a trailing `B`) are all binary multiples, as in rclone.
pub fn parse_size(text: &str) -> Result<u64> {
    let trimmed = text.trim();
    let digits_end = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(digits_end);
    let bad = || {
        Error::invalid(format!(
            "{text:?} is not a size (expected e.g. 50Mi or 8388608)"
        ))
    };
    let value: u64 = number.parse().map_err(|_| bad())?;
    let unit = unit.trim().to_ascii_lowercase();
    let unit = unit.strip_suffix('b').unwrap_or(&unit);
    let unit = unit.strip_suffix('i').unwrap_or(unit);
    let shift = match unit {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        _ => return Err(bad()),
    };
    value.checked_mul(1u64 << shift).ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_the_units_kubeblocks_templates_use() {
        assert_eq!(parse_size("50Mi").ok(), Some(50 << 20));
        assert_eq!(parse_size("8M").ok(), Some(8 << 20));
        assert_eq!(parse_size("1G").ok(), Some(1 << 30));
        assert_eq!(parse_size("4096").ok(), Some(4096));
        assert_eq!(parse_size(" 2KiB ").ok(), Some(2048));
    }

    #[test]
    fn rejects_garbage_naming_the_value() {
        let err = parse_size("fifty").err().map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("\"fifty\" is not a size (expected e.g. 50Mi or 8388608)")
        );
        assert!(parse_size("5X").is_err());
        assert!(parse_size("99999999999999T").is_err());
    }

    proptest! {
        #[test]
        fn never_panics(s in ".{0,20}") {
            let _ = parse_size(&s);
        }

        #[test]
        fn plain_numbers_round_trip(n in 0u64..u64::MAX) {
            prop_assert_eq!(parse_size(&n.to_string()).ok(), Some(n));
        }
    }
}
