//! String formats the API server checks (`kube-openapi` `strfmt.Default`): date-time, date, byte, uuid, ...

use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::LazyLock;

use regex::Regex;

static DATE_TIME_CLOCK: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(r"^([0-9]{2}):([0-9]{2}):([0-9]{2})(.[0-9]+)?(z|([+-][0-9]{2}:[0-9]{2}))$").ok()
});
static UUID: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$").ok()
});
static UUID3: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?3[0-9a-f]{3}-?[0-9a-f]{4}-?[0-9a-f]{12}$").ok()
});
static UUID4: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?4[0-9a-f]{3}-?[89ab][0-9a-f]{3}-?[0-9a-f]{12}$")
        .ok()
});
static UUID5: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?5[0-9a-f]{3}-?[89ab][0-9a-f]{3}-?[0-9a-f]{12}$")
        .ok()
});
static HOSTNAME: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(r"^([a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9\-]{0,61}[a-zA-Z0-9])(\.([a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9\-]{0,61}[a-zA-Z0-9]))*\.?$").ok()
});
static K8S_SHORT_NAME: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$").ok());
static K8S_LONG_NAME: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$").ok()
});
static MAC: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(r"^([0-9A-Fa-f]{2}[:-]){5}([0-9A-Fa-f]{2})$|^([0-9A-Fa-f]{4}\.){2}[0-9A-Fa-f]{4}$")
        .ok()
});
static HEXCOLOR: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"^#?([0-9a-fA-F]{3}|[0-9a-fA-F]{6})$").ok());
static RGBCOLOR: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(r"^rgb\(\s*(0|[1-9]\d?|1\d\d?|2[0-4]\d|25[0-5])\s*,\s*(0|[1-9]\d?|1\d\d?|2[0-4]\d|25[0-5])\s*,\s*(0|[1-9]\d?|1\d\d?|2[0-4]\d|25[0-5])\s*\)$").ok()
});
static SSN: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"^\d{3}[- ]?\d{2}[- ]?\d{4}$").ok());
static BSON_OBJECT_ID: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"^[0-9a-fA-F]{24}$").ok());
static DURATION: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(r"^(?i)[-+]?((\d+(\.\d*)?|\.\d+)\s*(ns|us|µs|μs|ms|s|m|h|d|w|nanoseconds?|microseconds?|milliseconds?|seconds?|minutes?|hours?|days?|weeks?|nanos?|micros?|millis?|secs?|mins?|hrs?))+$").ok()
});
static EMAIL: LazyLock<Option<Regex>> = LazyLock::new(|| Regex::new(r"^[^@\s]+@[^@\s]+$").ok());

fn matches(re: &LazyLock<Option<Regex>>, s: &str) -> bool {
    re.as_ref().is_some_and(|re| re.is_match(s))
}

/// Whether `value` is valid for `format` (a format the API server keeps; unknown formats always pass).
pub(crate) fn is_valid(format: &str, value: &str) -> bool {
    match format.replace('-', "").as_str() {
        "datetime" => is_date_time(value),
        "date" => is_date(value),
        "byte" => is_base64(value),
        "uuid" => matches(&UUID, value),
        "uuid3" => matches(&UUID3, value),
        "uuid4" => matches(&UUID4, value),
        "uuid5" => matches(&UUID5, value),
        "ipv4" => value.parse::<Ipv4Addr>().is_ok(),
        "ipv6" => value.parse::<Ipv6Addr>().is_ok(),
        "cidr" => is_cidr(value),
        "mac" => matches(&MAC, value),
        "hostname" => value.len() <= 255 && matches(&HOSTNAME, value),
        "k8sshortname" => value.len() <= 63 && matches(&K8S_SHORT_NAME, value),
        "k8slongname" => value.len() <= 253 && matches(&K8S_LONG_NAME, value),
        "hexcolor" => matches(&HEXCOLOR, value),
        "rgbcolor" => matches(&RGBCOLOR, value),
        "ssn" => matches(&SSN, value),
        "bsonobjectid" => matches(&BSON_OBJECT_ID, value),
        "duration" => matches(&DURATION, value),
        "email" => matches(&EMAIL, value),
        "uri" => is_uri(value),
        "isbn" | "isbn10" | "isbn13" => is_isbn(format, value),
        "creditcard" => is_credit_card(value),
        _ => true,
    }
}

/// `strfmt.IsDateTime`: a valid RFC 3339 full-date, a `T`, then `hh:mm:ss[.frac](z|±hh:mm)` (case-insensitive).
pub(crate) fn is_date_time(s: &str) -> bool {
    if s.len() < 4 {
        return false;
    }
    let lower = s.to_lowercase();
    let parts: Vec<&str> = lower.split('t').collect();
    if parts.len() < 2 || !is_date(parts[0]) {
        return false;
    }
    let Some(re) = DATE_TIME_CLOCK.as_ref() else {
        return false;
    };
    let Some(caps) = re.captures(parts[1]) else {
        return false;
    };
    let field = |i: usize| caps.get(i).map_or("", |m| m.as_str());
    field(1) <= "23" && field(2) <= "59" && field(3) <= "59"
}

/// `YYYY-MM-DD` naming a real calendar day.
pub(crate) fn is_date(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return false;
    }
    let digits = |r: std::ops::Range<usize>| -> Option<u32> {
        let part = &s[r];
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())
            .flatten()
    };
    let (Some(year), Some(month), Some(day)) = (digits(0..4), digits(5..7), digits(8..10)) else {
        return false;
    };
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1..=days).contains(&day)
}

fn is_base64(s: &str) -> bool {
    let bytes = s.as_bytes();
    if !bytes.len().is_multiple_of(4) {
        return false;
    }
    let padding = bytes.iter().rev().take_while(|&&c| c == b'=').count();
    if padding > 2 {
        return false;
    }
    bytes[..bytes.len() - padding]
        .iter()
        .all(|&c| c.is_ascii_alphanumeric() || c == b'+' || c == b'/')
}

fn is_cidr(s: &str) -> bool {
    let Some((addr, bits)) = s.split_once('/') else {
        return false;
    };
    let Ok(bits) = bits.parse::<u8>() else {
        return false;
    };
    if addr.parse::<Ipv4Addr>().is_ok() {
        bits <= 32
    } else {
        addr.parse::<Ipv6Addr>().is_ok() && bits <= 128
    }
}

fn is_uri(s: &str) -> bool {
    // Go's url.ParseRequestURI: an absolute URI with a scheme, or an absolute path.
    if s.starts_with('/') {
        return !s.contains(char::is_whitespace);
    }
    let Some((scheme, rest)) = s.split_once(':') else {
        return false;
    };
    !scheme.is_empty()
        && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
        && !rest.is_empty()
        && !s.contains(char::is_whitespace)
}

fn is_isbn(format: &str, s: &str) -> bool {
    let digits: Vec<char> = s.chars().filter(|c| c.is_ascii_alphanumeric()).collect();
    let isbn10 = digits.len() == 10 && {
        let sum: u32 = digits
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let v = if i == 9 && (*c == 'X' || *c == 'x') {
                    10
                } else {
                    c.to_digit(10).unwrap_or(100)
                };
                v * (10 - i as u32)
            })
            .sum();
        sum.is_multiple_of(11)
    };
    let isbn13 = digits.len() == 13 && digits.iter().all(char::is_ascii_digit) && {
        let sum: u32 = digits
            .iter()
            .enumerate()
            .map(|(i, c)| c.to_digit(10).unwrap_or(0) * if i % 2 == 0 { 1 } else { 3 })
            .sum();
        sum.is_multiple_of(10)
    };
    match format {
        "isbn10" => isbn10,
        "isbn13" => isbn13,
        _ => isbn10 || isbn13,
    }
}

fn is_credit_card(s: &str) -> bool {
    let digits: String = s.chars().filter(char::is_ascii_digit).collect();
    (13..=19).contains(&digits.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date_times_follow_kube_openapi() {
        assert!(is_date_time("2006-01-02T15:04:05Z"));
        assert!(is_date_time("2006-01-02t15:04:05.123+07:00"));
        assert!(!is_date_time("2006-01-02 15:04:05Z"));
        assert!(!is_date_time("2006-02-30T15:04:05Z"));
        assert!(!is_date_time("2006-01-02T24:04:05Z"));
        assert!(!is_date_time("yesterday"));
    }

    #[test]
    fn dates_must_exist_in_the_calendar() {
        assert!(is_date("2024-02-29"));
        assert!(!is_date("2023-02-29"));
        assert!(!is_date("2023-13-01"));
    }

    #[test]
    fn other_formats_accept_and_reject_the_obvious() {
        assert!(is_valid("byte", "aGVsbG8="));
        assert!(!is_valid("byte", "hello"));
        assert!(is_valid("uuid", "0a1b2c3d-0000-4000-8000-000000000000"));
        assert!(!is_valid("uuid", "nope"));
        assert!(is_valid("ipv4", "10.0.0.1"));
        assert!(!is_valid("ipv4", "10.0.0.256"));
        assert!(is_valid("cidr", "10.0.0.0/8"));
        assert!(is_valid("k8s-short-name", "my-name"));
        assert!(!is_valid("k8s-short-name", "My-name"));
        assert!(is_valid("something-unknown", "anything"));
    }
}
