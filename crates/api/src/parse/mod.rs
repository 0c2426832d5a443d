//! Parsers for the string formats of the API, one per file, each with an error that quotes the bad input.
//!
//! - [`retention`]: `RetentionPeriod` (`1y2mo3w4d5h6m`).
//! - [`duration`]: Kubernetes/Go durations (`1h2m0.5s`, `time.ParseDuration`).
//! - [`restore_time`]: `Restore.spec.restoreTime` (`YYYY-MM-DDTHH:MM:SSZ`).
//! - [`time_zone`]: `timeRange.timeZone` offsets (`±HH:MM`).
//! - [`cron`]: schedule cron expressions (5 fields, UTC, `CRON_TZ=`/`TZ=`, `@daily` macros).
//! - [`quantity`]: resource quantities (`totalSize`, `volumeCapacity`) to bytes.
//! - [`selector`]: label selectors: validation with field paths and matching.

pub mod cron;
pub mod duration;
pub mod quantity;
pub mod restore_time;
pub mod retention;
pub mod selector;
pub mod time_zone;
