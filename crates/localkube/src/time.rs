//! Kubernetes time formats (`metav1.Time`, `MicroTime`, RFC3339Nano) and human ages.

use jiff::{SignedDuration, Timestamp};

/// `metav1.Time`: RFC3339 with whole seconds and `Z`.
pub fn format_time(ts: Timestamp) -> String {
    ts.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// `metav1.MicroTime`: RFC3339 with exactly six fractional digits.
pub fn format_micro(ts: Timestamp) -> String {
    ts.strftime("%Y-%m-%dT%H:%M:%S.%6fZ").to_string()
}

/// Go's RFC3339Nano: up to nine fractional digits with trailing zeros trimmed.
pub fn format_nano(ts: Timestamp) -> String {
    let nanos = ts.subsec_nanosecond();
    let base = ts.strftime("%Y-%m-%dT%H:%M:%S").to_string();
    if nanos == 0 {
        return format!("{base}Z");
    }
    let frac = format!("{nanos:09}");
    format!("{base}.{}Z", frac.trim_end_matches('0'))
}

/// The current time as `metav1.Time`.
pub fn now_time() -> String {
    format_time(Timestamp::now())
}

/// The current time as `metav1.MicroTime`.
pub fn now_micro() -> String {
    format_micro(Timestamp::now())
}

/// Parses any RFC3339 timestamp a client may send.
pub fn parse(text: &str) -> Option<Timestamp> {
    text.parse::<Timestamp>().ok()
}

/// apimachinery's `duration.HumanDuration`, which the printers use for ages.
pub fn human_duration(d: SignedDuration) -> String {
    let seconds = d.as_secs();
    if seconds < -1 {
        return "<invalid>".to_string();
    }
    if seconds < 0 {
        return "0s".to_string();
    }
    if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    }
    if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = seconds / 3600;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{h}h", hours / 24)
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let dy = (hours / 24) % 365;
        return if dy == 0 {
            format!("{}y", hours / 24 / 365)
        } else {
            format!("{}y{dy}d", hours / 24 / 365)
        };
    }
    format!("{}y", hours / 24 / 365)
}

/// The age of a timestamp string relative to now, or `<unknown>` when it does not parse.
pub fn age_since(text: &str, now: Timestamp) -> String {
    match parse(text) {
        Some(ts) => human_duration(now.duration_since(ts)),
        None => "<unknown>".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(n: i64) -> SignedDuration {
        SignedDuration::from_secs(n)
    }

    #[test]
    fn human_duration_matches_apimachinery_table() {
        let table = [
            (-5, "<invalid>"),
            (-1, "0s"),
            (0, "0s"),
            (119, "119s"),
            (120, "2m"),
            (150, "2m30s"),
            (600, "10m"),
            (179 * 60, "179m"),
            (3 * 3600, "3h"),
            (3 * 3600 + 60 * 5, "3h5m"),
            (8 * 3600, "8h"),
            (47 * 3600, "47h"),
            (48 * 3600, "2d"),
            (50 * 3600, "2d2h"),
            (8 * 24 * 3600, "8d"),
            (2 * 365 * 24 * 3600, "2y"),
            (2 * 365 * 24 * 3600 + 24 * 3600, "2y1d"),
            (9 * 365 * 24 * 3600, "9y"),
        ];
        for (s, want) in table {
            assert_eq!(human_duration(secs(s)), want, "{s} seconds");
        }
    }

    #[test]
    fn times_are_formatted_like_go() {
        let ts: Timestamp = "2026-11-22T01:05:36.123450Z".parse().unwrap();
        assert_eq!(format_time(ts), "2026-11-22T01:05:36Z");
        assert_eq!(format_micro(ts), "2026-11-22T01:05:36.123450Z");
        assert_eq!(format_nano(ts), "2026-11-22T01:05:36.12345Z");
        let whole: Timestamp = "2026-11-22T01:05:36Z".parse().unwrap();
        assert_eq!(format_nano(whole), "2026-11-22T01:05:36Z");
    }
}
