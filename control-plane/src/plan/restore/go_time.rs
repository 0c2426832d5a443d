//! Formats a time with a Go layout (`2006-01-02T15:04:05Z07:00`), the way restore jobs get
//! `DP_BACKUP_STOP_TIME` (ARCHITECTURE.md §K3.2: ActionSet env `DP_TIME_FORMAT`, default RFC 3339).
//!
//! Hand-written because no maintained crate formats Go layouts; the token table follows Go's
//! `time.nextStdChunk` (same tokens, same precedence), so a layout means what it means in Go.

use jiff::Zoned;

/// Go's `time.RFC3339`, KubeBlocks' default restore time layout.
pub const RFC3339: &str = "2006-01-02T15:04:05Z07:00";

/// One element of a Go layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    LongMonth,
    Month,
    NumMonth,
    ZeroMonth,
    LongWeekDay,
    WeekDay,
    Day,
    UnderDay,
    ZeroDay,
    UnderYearDay,
    ZeroYearDay,
    Hour,
    Hour12,
    ZeroHour12,
    Minute,
    ZeroMinute,
    Second,
    ZeroSecond,
    LongYear,
    Year,
    PM,
    Pm,
    TzName,
    /// Numeric offset; `z` prints `Z` for UTC; `colon` separates; `seconds` adds seconds;
    /// `hours_only` prints just `±hh`.
    Offset {
        z: bool,
        colon: bool,
        seconds: bool,
        hours_only: bool,
    },
    /// Fractional seconds: `digits` wide; `trim` drops trailing zeros (the `9` form); `sep` is `.` or `,`.
    Fraction {
        digits: usize,
        trim: bool,
        sep: char,
    },
}

/// Splits a layout at its first token: (literal prefix, token, rest).
fn next_token(layout: &str) -> (&str, Option<(Token, &str)>) {
    let b = layout.as_bytes();
    let at = |i: usize, s: &str| layout.get(i..).is_some_and(|r| r.starts_with(s));
    let mut i = 0;
    while i < b.len() {
        let found = match b[i] {
            b'J' if at(i, "January") => Some((Token::LongMonth, 7)),
            b'J' if at(i, "Jan") => Some((Token::Month, 3)),
            b'M' if at(i, "Monday") => Some((Token::LongWeekDay, 6)),
            b'M' if at(i, "Mon") => Some((Token::WeekDay, 3)),
            b'M' if at(i, "MST") => Some((Token::TzName, 3)),
            b'0' if at(i, "002") => Some((Token::ZeroYearDay, 3)),
            b'0' if matches!(b.get(i + 1), Some(b'1'..=b'6')) => {
                let token = match b[i + 1] {
                    b'1' => Token::ZeroMonth,
                    b'2' => Token::ZeroDay,
                    b'3' => Token::ZeroHour12,
                    b'4' => Token::ZeroMinute,
                    b'5' => Token::ZeroSecond,
                    _ => Token::Year,
                };
                Some((token, 2))
            }
            b'1' if at(i, "15") => Some((Token::Hour, 2)),
            b'1' => Some((Token::NumMonth, 1)),
            b'2' if at(i, "2006") => Some((Token::LongYear, 4)),
            b'2' => Some((Token::Day, 1)),
            // `_2006` is a literal `_` followed by the year.
            b'_' if at(i, "_2006") => {
                return (&layout[..i + 1], Some((Token::LongYear, &layout[i + 5..])));
            }
            b'_' if at(i, "_2") => Some((Token::UnderDay, 2)),
            b'_' if at(i, "__2") => Some((Token::UnderYearDay, 3)),
            b'3' => Some((Token::Hour12, 1)),
            b'4' => Some((Token::Minute, 1)),
            b'5' => Some((Token::Second, 1)),
            b'P' if at(i, "PM") => Some((Token::PM, 2)),
            b'p' if at(i, "pm") => Some((Token::Pm, 2)),
            b'-' | b'Z' => {
                let z = b[i] == b'Z';
                [
                    ("070000", false, true, false),
                    ("07:00:00", true, true, false),
                    ("0700", false, false, false),
                    ("07:00", true, false, false),
                    ("07", false, false, true),
                ]
                .iter()
                .find(|(form, ..)| at(i + 1, form))
                .map(|&(form, colon, seconds, hours_only)| {
                    (
                        Token::Offset {
                            z,
                            colon,
                            seconds,
                            hours_only,
                        },
                        form.len() + 1,
                    )
                })
            }
            b'.' | b',' if matches!(b.get(i + 1), Some(b'0' | b'9')) => {
                let digit = b[i + 1];
                let mut j = i + 1;
                while b.get(j) == Some(&digit) {
                    j += 1;
                }
                // Only a fraction when the run of equal digits is not followed by another digit.
                if b.get(j).is_some_and(u8::is_ascii_digit) {
                    None
                } else {
                    Some((
                        Token::Fraction {
                            digits: j - (i + 1),
                            trim: digit == b'9',
                            sep: char::from(b[i]),
                        },
                        j - i,
                    ))
                }
            }
            _ => None,
        };
        if let Some((token, len)) = found {
            return (&layout[..i], Some((token, &layout[i + len..])));
        }
        i += layout[i..].chars().next().map_or(1, char::len_utf8);
    }
    (layout, None)
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const WEEKDAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

/// Formats `time` with the Go `layout`.
pub fn format(time: &Zoned, layout: &str) -> String {
    let mut out = String::new();
    let mut rest = layout;
    loop {
        let (literal, token) = next_token(rest);
        out.push_str(literal);
        let Some((token, after)) = token else {
            break;
        };
        push_token(&mut out, time, token);
        rest = after;
    }
    out
}

fn push_token(out: &mut String, t: &Zoned, token: Token) {
    let month = usize::try_from(t.month()).unwrap_or(1).clamp(1, 12) - 1;
    let weekday = usize::from(t.weekday().to_monday_zero_offset().unsigned_abs()).min(6);
    let hour12 = match t.hour() % 12 {
        0 => 12,
        h => h,
    };
    let text = match token {
        Token::LongMonth => MONTHS[month].to_string(),
        Token::Month => MONTHS[month][..3].to_string(),
        Token::NumMonth => t.month().to_string(),
        Token::ZeroMonth => format!("{:02}", t.month()),
        Token::LongWeekDay => WEEKDAYS[weekday].to_string(),
        Token::WeekDay => WEEKDAYS[weekday][..3].to_string(),
        Token::Day => t.day().to_string(),
        Token::UnderDay => format!("{:>2}", t.day()),
        Token::ZeroDay => format!("{:02}", t.day()),
        Token::UnderYearDay => format!("{:>3}", t.day_of_year()),
        Token::ZeroYearDay => format!("{:03}", t.day_of_year()),
        Token::Hour => format!("{:02}", t.hour()),
        Token::Hour12 => hour12.to_string(),
        Token::ZeroHour12 => format!("{hour12:02}"),
        Token::Minute => t.minute().to_string(),
        Token::ZeroMinute => format!("{:02}", t.minute()),
        Token::Second => t.second().to_string(),
        Token::ZeroSecond => format!("{:02}", t.second()),
        Token::LongYear => format!("{:04}", t.year()),
        Token::Year => format!("{:02}", t.year().rem_euclid(100)),
        Token::PM => if t.hour() >= 12 { "PM" } else { "AM" }.to_string(),
        Token::Pm => if t.hour() >= 12 { "pm" } else { "am" }.to_string(),
        Token::TzName => zone_name(t),
        Token::Offset {
            z,
            colon,
            seconds,
            hours_only,
        } => offset_text(t.offset().seconds(), z, colon, seconds, hours_only),
        Token::Fraction { digits, trim, sep } => {
            let nanos = format!("{:09}", t.subsec_nanosecond());
            let mut shown = nanos[..digits.min(9)].to_string();
            if trim {
                shown = shown.trim_end_matches('0').to_string();
                if shown.is_empty() {
                    return;
                }
            }
            format!("{sep}{shown}")
        }
    };
    out.push_str(&text);
}

/// Go prints a zone's abbreviation; a fixed offset without one prints as `-0700`.
fn zone_name(t: &Zoned) -> String {
    let seconds = t.offset().seconds();
    if seconds == 0 {
        return "UTC".into();
    }
    offset_text(seconds, false, false, false, false)
}

fn offset_text(seconds: i32, z: bool, colon: bool, with_seconds: bool, hours_only: bool) -> String {
    if z && seconds == 0 {
        return "Z".into();
    }
    let sign = if seconds < 0 { '-' } else { '+' };
    let abs = seconds.unsigned_abs();
    let (h, m, s) = (abs / 3600, abs / 60 % 60, abs % 60);
    let sep = if colon { ":" } else { "" };
    let mut text = format!("{sign}{h:02}");
    if !hours_only {
        text.push_str(&format!("{sep}{m:02}"));
    }
    if with_seconds {
        text.push_str(&format!("{sep}{s:02}"));
    }
    text
}

#[cfg(test)]
mod tests {
    use jiff::tz::{Offset, TimeZone};

    use super::*;

    fn at(offset_hours: i8) -> Zoned {
        let ts: jiff::Timestamp = "2009-11-10T23:04:05.123400Z".parse().unwrap();
        ts.to_zoned(TimeZone::fixed(Offset::constant(offset_hours)))
    }

    #[test]
    fn rfc3339_prints_z_for_utc_and_the_offset_elsewhere() {
        assert_eq!(format(&at(0), RFC3339), "2009-11-10T23:04:05Z");
        assert_eq!(format(&at(8), RFC3339), "2009-11-11T07:04:05+08:00");
        assert_eq!(format(&at(-5), RFC3339), "2009-11-10T18:04:05-05:00");
    }

    #[test]
    fn layouts_from_go_documentation_format_like_go() {
        let t = at(0);
        let cases = [
            ("2006-01-02 15:04:05", "2009-11-10 23:04:05"),
            ("Mon Jan _2 15:04:05 2006", "Tue Nov 10 23:04:05 2009"),
            (
                "Monday, 02-Jan-06 15:04:05 MST",
                "Tuesday, 10-Nov-09 23:04:05 UTC",
            ),
            ("02 Jan 06 15:04 -0700", "10 Nov 09 23:04 +0000"),
            ("3:04PM", "11:04PM"),
            ("Jan 2 15:04:05.000", "Nov 10 23:04:05.123"),
            ("15:04:05.999999999", "23:04:05.1234"),
            ("15:04:05,000000", "23:04:05,123400"),
            ("January 2, 2006", "November 10, 2009"),
            ("20060102150405", "20091110230405"),
            ("002 __2", "314 314"),
            ("1/2/06 3:4:5 pm", "11/10/09 11:4:5 pm"),
        ];
        for (layout, want) in cases {
            assert_eq!(format(&t, layout), want, "layout {layout:?}");
        }
    }

    #[test]
    fn a_zone_without_abbreviation_prints_its_numeric_offset() {
        assert_eq!(format(&at(8), "15:04 MST"), "07:04 +0800");
        assert_eq!(format(&at(8), "Z07"), "+08");
        assert_eq!(format(&at(8), "-07:00:00"), "+08:00:00");
    }

    #[test]
    fn underscore_before_a_long_year_is_a_literal() {
        assert_eq!(format(&at(0), "_2006"), "_2009");
    }

    #[test]
    fn text_without_tokens_is_copied_unchanged() {
        assert_eq!(format(&at(0), "backup at: ü"), "backup at: ü");
        assert_eq!(format(&at(0), ""), "");
    }

    #[test]
    fn trimmed_fraction_of_a_whole_second_disappears() {
        let ts: jiff::Timestamp = "2009-11-10T23:04:05Z".parse().unwrap();
        let t = ts.to_zoned(TimeZone::UTC);
        assert_eq!(format(&t, "05.999"), "05");
        assert_eq!(format(&t, "05.000"), "05.000");
    }
}
