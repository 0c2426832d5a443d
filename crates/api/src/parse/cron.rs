//! Schedule cron expressions: 5 fields (minute hour day-of-month month day-of-week) in UTC, an
//! optional `CRON_TZ=<zone>`/`TZ=<zone>` prefix, and the `@yearly`/`@annually`/`@monthly`/`@weekly`/
//! `@daily`/`@midnight`/`@hourly` macros, as Kubernetes CronJobs accept them. Parsing and "next fire
//! time" come from `croner` (with the `jiff` time zone database).

use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use jiff::Timestamp;
use jiff::tz::TimeZone;

/// A parsed schedule.
#[derive(Debug, Clone)]
pub struct Schedule {
    cron: Cron,
    time_zone: TimeZone,
    minute_field: String,
    hour_field: String,
    is_macro: bool,
}

/// Why a cron expression is invalid; the message quotes the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CronError {
    /// The expression has the wrong number of fields or a bad field.
    #[error("invalid cron expression {input:?}: {reason}")]
    Invalid {
        /// The whole input.
        input: String,
        /// What is wrong.
        reason: String,
    },
    /// The `CRON_TZ=`/`TZ=` prefix names no known time zone.
    #[error("invalid cron expression {input:?}: unknown time zone {zone:?}")]
    UnknownTimeZone {
        /// The whole input.
        input: String,
        /// The zone name.
        zone: String,
    },
}

/// Parses a cron expression.
pub fn parse(input: &str) -> Result<Schedule, CronError> {
    let invalid = |reason: &str| CronError::Invalid {
        input: input.to_string(),
        reason: reason.to_string(),
    };
    let mut rest = input.trim();
    let mut time_zone = TimeZone::UTC;
    if let Some(spec) = rest
        .strip_prefix("CRON_TZ=")
        .or_else(|| rest.strip_prefix("TZ="))
    {
        let (zone, expr) = spec
            .split_once(char::is_whitespace)
            .ok_or_else(|| invalid("nothing after the time zone"))?;
        time_zone = TimeZone::get(zone).map_err(|_| CronError::UnknownTimeZone {
            input: input.to_string(),
            zone: zone.to_string(),
        })?;
        rest = expr.trim();
    }
    let is_macro = rest.starts_with('@');
    let expr = match rest.to_ascii_lowercase().as_str() {
        "@midnight" => "@daily".to_string(),
        m if m.starts_with("@every") => return Err(invalid("@every is not supported")),
        "@yearly" | "@annually" | "@monthly" | "@weekly" | "@daily" | "@hourly" => rest.to_string(),
        m if m.starts_with('@') => return Err(invalid(&format!("unknown macro {rest:?}"))),
        _ => {
            let fields = rest.split_whitespace().count();
            if fields != 5 {
                return Err(invalid(&format!("expected 5 fields, found {fields}")));
            }
            rest.to_string()
        }
    };
    let parser = CronParser::builder()
        .seconds(Seconds::Disallowed)
        .year(Year::Disallowed)
        .build();
    let cron = parser.parse(&expr).map_err(|e| invalid(&e.to_string()))?;
    let mut fields = expr.split_whitespace();
    let minute_field = fields.next().unwrap_or_default().to_string();
    let hour_field = fields.next().unwrap_or_default().to_string();
    Ok(Schedule {
        cron,
        time_zone,
        minute_field,
        hour_field,
        is_macro,
    })
}

impl Schedule {
    /// The first fire time strictly after `after`, or `None` if there is none (e.g. `0 0 30 2 *`).
    pub fn next_after(&self, after: Timestamp) -> Option<Timestamp> {
        let start = after.to_zoned(self.time_zone.clone());
        self.cron
            .find_next_occurrence(&start, false)
            .ok()
            .map(|z| z.timestamp())
    }

    /// The time zone the schedule is evaluated in (UTC unless `CRON_TZ=`/`TZ=` is given).
    pub fn time_zone(&self) -> &TimeZone {
        &self.time_zone
    }

    /// The archive interval KubeBlocks derives for continuous backups (semantics §7.3): macros →
    /// 60 s; minute field `*/N` → N×60 s; else hour field `*/N` → N×3600 s; else 60 s.
    pub fn archive_interval_seconds(&self) -> u64 {
        if self.is_macro {
            return 60;
        }
        let step = |field: &str| field.strip_prefix("*/").and_then(|n| n.parse::<u64>().ok());
        if let Some(n) = step(&self.minute_field) {
            n * 60
        } else if let Some(n) = step(&self.hour_field) {
            n * 3600
        } else {
            60
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().expect("test timestamp")
    }

    #[test]
    fn next_fire_time_is_computed_in_utc() {
        let s = parse("0 18 * * *").expect("valid");
        assert_eq!(
            s.next_after(at("2024-01-01T12:00:00Z")),
            Some(at("2024-01-01T18:00:00Z"))
        );
        assert_eq!(
            s.next_after(at("2024-01-01T18:00:00Z")),
            Some(at("2024-01-02T18:00:00Z"))
        );
        let weekdays = parse("30 2 * * 1-5").expect("valid");
        assert_eq!(
            weekdays.next_after(at("2024-01-05T03:00:00Z")),
            Some(at("2024-01-08T02:30:00Z"))
        );
    }

    #[test]
    fn time_zone_prefixes_shift_the_schedule() {
        let s = parse("CRON_TZ=Asia/Shanghai 0 2 * * *").expect("valid");
        assert_eq!(
            s.next_after(at("2024-01-01T00:00:00Z")),
            Some(at("2024-01-01T18:00:00Z"))
        );
        let s = parse("TZ=UTC 0 2 * * *").expect("valid");
        assert_eq!(
            s.next_after(at("2024-01-01T00:00:00Z")),
            Some(at("2024-01-01T02:00:00Z"))
        );
        assert!(matches!(
            parse("CRON_TZ=Mars/Base 0 2 * * *"),
            Err(CronError::UnknownTimeZone { .. })
        ));
    }

    #[test]
    fn macros_are_accepted() {
        let daily = parse("@daily").expect("valid");
        assert_eq!(
            daily.next_after(at("2024-01-01T12:00:00Z")),
            Some(at("2024-01-02T00:00:00Z"))
        );
        assert_eq!(
            parse("@midnight")
                .expect("valid")
                .next_after(at("2024-01-01T12:00:00Z")),
            Some(at("2024-01-02T00:00:00Z"))
        );
        assert_eq!(
            parse("@hourly")
                .expect("valid")
                .next_after(at("2024-01-01T12:30:00Z")),
            Some(at("2024-01-01T13:00:00Z"))
        );
        assert!(parse("@every 1h").is_err());
        assert!(parse("@sometimes").is_err());
    }

    #[test]
    fn wrong_field_counts_and_values_are_rejected_quoting_the_input() {
        assert_eq!(
            parse("0 0 * *").map(|_| ()).map_err(|e| e.to_string()),
            Err(r#"invalid cron expression "0 0 * *": expected 5 fields, found 4"#.to_string())
        );
        assert!(
            parse("0 0 0 * * *").is_err(),
            "six fields (seconds) are not allowed"
        );
        let err = parse("61 * * * *")
            .map(|_| ())
            .expect_err("minute 61")
            .to_string();
        assert!(
            err.starts_with(r#"invalid cron expression "61 * * * *": "#),
            "{err}"
        );
    }

    #[test]
    fn archive_intervals_follow_kubeblocks() {
        assert_eq!(
            parse("*/5 * * * *")
                .expect("valid")
                .archive_interval_seconds(),
            300
        );
        assert_eq!(
            parse("0 */2 * * *")
                .expect("valid")
                .archive_interval_seconds(),
            7200
        );
        assert_eq!(
            parse("0 18 * * *")
                .expect("valid")
                .archive_interval_seconds(),
            60
        );
        assert_eq!(
            parse("@daily").expect("valid").archive_interval_seconds(),
            60
        );
    }

    proptest! {
        #[test]
        fn next_fire_time_is_after_the_start_and_matches(m in 0u32..60, h in 0u32..24, secs in 0i64..4_000_000_000) {
            let s = parse(&format!("{m} {h} * * *")).expect("valid");
            let start = Timestamp::from_second(secs).expect("in range");
            let next = s.next_after(start).expect("daily schedules always fire");
            prop_assert!(next > start);
            prop_assert!(next.as_second() - start.as_second() <= 86_400);
            let z = next.to_zoned(TimeZone::UTC);
            prop_assert_eq!((z.minute() as u32, z.hour() as u32, z.second()), (m, h, 0));
        }

        #[test]
        fn no_input_panics(s in "[0-9*/,@a-zA-Z =_-]{0,30}") {
            if let Ok(schedule) = parse(&s) {
                let _ = schedule.next_after(Timestamp::UNIX_EPOCH);
            }
        }
    }
}
