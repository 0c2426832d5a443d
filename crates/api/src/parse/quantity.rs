//! Kubernetes resource quantities (`totalSize`, `volumeCapacity`): the `resource.Quantity` grammar,
//! converted exactly to bytes (fractions round up, as `Quantity.Value()` does).
//!
//! Grammar: `[+-]? (digits | digits.digits | digits. | .digits) suffix`, where the suffix is a
//! binary SI unit (`Ki Mi Gi Ti Pi Ei`), a decimal SI unit (`m`, none, `k M G T P E`) or a
//! decimal exponent (`e<int>` / `E<int>`).

/// Why a quantity is invalid; the message quotes the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    /// Not a quantity.
    #[error("invalid quantity {input:?}: {reason}")]
    Invalid {
        /// The whole input.
        input: String,
        /// What is wrong.
        reason: String,
    },
    /// Negative, where a size is expected.
    #[error("invalid quantity {0:?}: a size cannot be negative")]
    Negative(String),
    /// Larger than 2^63-1 bytes.
    #[error("invalid quantity {0:?}: larger than 2^63-1")]
    TooLarge(String),
}

/// Parses a quantity into bytes (a non-negative integer, fractions rounded up).
pub fn parse_bytes(input: &str) -> Result<u64, QuantityError> {
    let invalid = |reason: &str| QuantityError::Invalid {
        input: input.to_string(),
        reason: reason.to_string(),
    };
    let mut s = input;
    let negative = s.starts_with('-');
    if s.starts_with('-') || s.starts_with('+') {
        s = &s[1..];
    }
    let number_len = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, suffix) = s.split_at(number_len);
    let (int, frac) = number.split_once('.').unwrap_or((number, ""));
    if int.is_empty() && frac.is_empty() {
        return Err(invalid("no number"));
    }
    if frac.contains('.') {
        return Err(invalid("more than one decimal point"));
    }
    let (binary_power, mut exponent) = match suffix {
        "" => (0, 0i32),
        "Ki" => (10, 0),
        "Mi" => (20, 0),
        "Gi" => (30, 0),
        "Ti" => (40, 0),
        "Pi" => (50, 0),
        "Ei" => (60, 0),
        "m" => (0, -3),
        "k" => (0, 3),
        "M" => (0, 6),
        "G" => (0, 9),
        "T" => (0, 12),
        "P" => (0, 15),
        "E" => (0, 18),
        other => {
            let exp = other.strip_prefix('e').or_else(|| other.strip_prefix('E'));
            let value = exp
                .filter(|e| !e.is_empty())
                .and_then(|e| e.parse::<i32>().ok())
                .filter(|e| e.abs() <= 1000)
                .ok_or_else(|| invalid(&format!("unknown suffix {other:?}")))?;
            (0, value)
        }
    };
    let digits: String = format!("{int}{frac}").trim_start_matches('0').to_string();
    exponent -= frac.len() as i32;
    if digits.is_empty() {
        return Ok(0);
    }
    if negative {
        return Err(QuantityError::Negative(input.to_string()));
    }
    let too_large = || QuantityError::TooLarge(input.to_string());
    if digits.len() > 38 {
        return Err(too_large());
    }
    let mantissa: u128 = digits.parse().map_err(|_| too_large())?;
    let scaled = mantissa
        .checked_mul(1u128 << binary_power)
        .ok_or_else(too_large)?;
    let bytes = if exponent >= 0 {
        10u128
            .checked_pow(exponent as u32)
            .and_then(|p| scaled.checked_mul(p))
            .ok_or_else(too_large)?
    } else {
        match 10u128.checked_pow((-exponent) as u32) {
            Some(divisor) => scaled.div_ceil(divisor),
            None => 1,
        }
    };
    u64::try_from(bytes)
        .ok()
        .filter(|b| *b <= i64::MAX as u64)
        .ok_or_else(too_large)
}

/// Prints bytes as a quantity: the largest binary unit that divides it (`1Gi`, `1536Mi`), else plain bytes.
pub fn format_bytes(bytes: u64) -> String {
    if bytes == 0 {
        return "0".to_string();
    }
    for (power, unit) in [
        (60, "Ei"),
        (50, "Pi"),
        (40, "Ti"),
        (30, "Gi"),
        (20, "Mi"),
        (10, "Ki"),
    ] {
        if bytes.is_multiple_of(1u64 << power) {
            return format!("{}{unit}", bytes >> power);
        }
    }
    bytes.to_string()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn quantities_convert_to_bytes_like_kubernetes() {
        let cases = [
            ("0", 0),
            ("1024", 1024),
            ("1Ki", 1024),
            ("1.5Gi", 1_610_612_736),
            ("100Gi", 107_374_182_400),
            ("1k", 1000),
            ("1M", 1_000_000),
            ("1e3", 1000),
            ("1E6", 1_000_000),
            ("100m", 1),
            ("1500m", 2),
            (".5Ki", 512),
            ("5.", 5),
            ("+2Mi", 2_097_152),
            ("8Ei", 0),
        ];
        for (input, bytes) in cases.iter().take(cases.len() - 1) {
            assert_eq!(parse_bytes(input), Ok(*bytes), "{input:?}");
        }
        assert_eq!(
            parse_bytes("8Ei"),
            Err(QuantityError::TooLarge("8Ei".into()))
        );
    }

    #[test]
    fn malformed_and_negative_quantities_are_rejected_quoting_the_input() {
        assert_eq!(
            parse_bytes("10GB").map_err(|e| e.to_string()),
            Err(r#"invalid quantity "10GB": unknown suffix "GB""#.to_string())
        );
        assert_eq!(
            parse_bytes("-1Gi"),
            Err(QuantityError::Negative("-1Gi".into()))
        );
        for bad in ["", "Gi", ".", "1..2", "1.2.3Mi", "1e", "1ee3", "abc"] {
            assert!(parse_bytes(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn bytes_print_with_the_largest_binary_unit() {
        assert_eq!(format_bytes(1_610_612_736), "1536Mi");
        assert_eq!(format_bytes(1 << 30), "1Gi");
        assert_eq!(format_bytes(1000), "1000");
    }

    proptest! {
        #[test]
        fn printing_and_parsing_round_trips(bytes in 0u64..=(i64::MAX as u64)) {
            prop_assert_eq!(parse_bytes(&format_bytes(bytes)), Ok(bytes));
        }

        #[test]
        fn no_input_panics(s in "[-+0-9.eEkKMGTPmi]{0,30}") {
            let _ = parse_bytes(&s);
        }
    }
}
