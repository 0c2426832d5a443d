//! Live progress of a Backup or Restore as `cairnctl` shows it: an indicatif bar on a terminal,
//! one plain line per change otherwise, and JSON lines with `--json`.
//!
//! The numbers come from the objects (a Backup's `status.progress`: bytesDone, bytesTotal,
//! bytesPerSecond, etaSeconds); [`Snapshot`] is what one look at an object shows, and
//! [`Reporter`] draws a stream of them. Formatting is pure ([`plain_line`], [`format_duration`]),
//! so it is unit-tested without a terminal.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use indicatif::{HumanBytes, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// An animated bar on stderr.
    Terminal,
    /// One line per change, for logs and pipes.
    Plain,
    /// One JSON object per line (`{"type":"progress",...}`), for machines.
    Json,
}

impl Mode {
    /// `Json` when asked for, `Terminal` when stderr is a terminal, `Plain` otherwise.
    pub fn detect(json: bool) -> Mode {
        if json {
            Mode::Json
        } else if std::io::stderr().is_terminal() {
            Mode::Terminal
        } else {
            Mode::Plain
        }
    }
}

/// What one look at a Backup or Restore shows.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Snapshot {
    /// `Backup` or `Restore`.
    pub kind: &'static str,
    pub name: String,
    /// The object's phase (`New` before the controller wrote one).
    pub phase: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes_done: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes_total: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes_per_second: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eta_seconds: Option<u64>,
    /// Seconds since the object started (or since we started watching).
    pub elapsed_seconds: f64,
    /// What is happening now (the running action, a wait reason).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// When the data itself moved, when the caller saw it (a restore's files in its volume):
    /// the rate is then the data's, and the time before it is shown as start-up.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<DataWindow>,
}

/// When the data of a transfer moved, relative to the start of the object.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DataWindow {
    /// Seconds from the start until the first byte arrived (the start-up: controller, volume,
    /// Job, pod).
    pub started_after_seconds: f64,
    /// Seconds from the first byte to the last one seen so far.
    pub seconds: f64,
}

impl DataWindow {
    /// The window of `written` for an object started at `start`; `None` before the first byte.
    pub fn of(written: &Written, start: jiff::Timestamp) -> Option<DataWindow> {
        let first = written.first?;
        let last = written.last.unwrap_or(first).max(first);
        let seconds = |from: jiff::Timestamp, to: jiff::Timestamp| {
            to.duration_since(from).as_secs_f64().max(0.0)
        };
        Some(DataWindow {
            started_after_seconds: seconds(start, first),
            seconds: seconds(first, last),
        })
    }

    /// Bytes per second over the window, once it is long enough to mean something (10 ms).
    pub fn rate(&self, bytes: u64) -> Option<u64> {
        (self.seconds >= 0.01).then(|| (bytes as f64 / self.seconds) as u64)
    }
}

/// What has been written into a directory so far: the bytes of its regular files, when the
/// first of them was created and when the last change happened (the kernel's birth and change
/// times, so the window is the writer's, not the observer's sampling).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Written {
    pub bytes: u64,
    /// The earliest creation of a regular file (its change time where the file system does
    /// not record creation).
    pub first: Option<jiff::Timestamp>,
    /// The latest change of any entry below the directory.
    pub last: Option<jiff::Timestamp>,
}

impl Snapshot {
    /// A snapshot with only a phase.
    pub fn phase(kind: &'static str, name: &str, phase: &str) -> Snapshot {
        Snapshot {
            kind,
            name: name.to_string(),
            phase: phase.to_string(),
            bytes_done: None,
            bytes_total: None,
            bytes_per_second: None,
            eta_seconds: None,
            elapsed_seconds: 0.0,
            message: None,
            data: None,
        }
    }

    /// Fills in the ETA from a total known to the caller (for example the size of the data
    /// set being backed up) when the object itself does not know one.
    pub fn with_expected_total(mut self, total: Option<u64>) -> Snapshot {
        if self.bytes_total.is_none() {
            self.bytes_total = total;
        }
        if self.eta_seconds.is_none()
            && let (Some(total), Some(done), Some(rate)) =
                (self.bytes_total, self.bytes_done, self.bytes_per_second)
            && rate > 0
        {
            self.eta_seconds = Some(total.saturating_sub(done).div_ceil(rate));
        }
        self
    }

    /// The numbers part of a line: `120.00 MiB / 300.00 MiB, 45.20 MiB/s, ETA 4s`.
    fn numbers(&self) -> String {
        let mut parts = Vec::new();
        match (self.bytes_done, self.bytes_total) {
            (Some(done), Some(total)) => {
                parts.push(format!("{} / {}", HumanBytes(done), HumanBytes(total)))
            }
            (Some(done), None) => parts.push(format!("{}", HumanBytes(done))),
            (None, _) => {}
        }
        if let Some(rate) = self.bytes_per_second.filter(|r| *r > 0) {
            match &self.data {
                Some(data) => parts.push(format!(
                    "{}/s after {} of start-up",
                    HumanBytes(rate),
                    format_duration(data.started_after_seconds)
                )),
                None => parts.push(format!("{}/s", HumanBytes(rate))),
            }
        }
        if let Some(eta) = self.eta_seconds {
            parts.push(format!("ETA {}", format_duration(eta as f64)));
        }
        parts.join(", ")
    }
}

/// A transfer rate from successive byte counts (for progress the object itself does not
/// report, such as bytes written into a restored volume): bytes per second over the samples of
/// the last `window` seconds.
#[derive(Debug, Clone)]
pub struct RateMeter {
    window: f64,
    samples: std::collections::VecDeque<(f64, u64)>,
}

impl RateMeter {
    /// A meter averaging over `window` seconds.
    pub fn new(window: f64) -> RateMeter {
        RateMeter {
            window,
            samples: std::collections::VecDeque::new(),
        }
    }

    /// Records `bytes` seen at `at` seconds (monotonic) and returns the rate, once two samples
    /// at least a tenth of a second apart exist.
    pub fn observe(&mut self, at: f64, bytes: u64) -> Option<u64> {
        self.samples.push_back((at, bytes));
        while self
            .samples
            .front()
            .is_some_and(|(t, _)| at - t > self.window)
            && self.samples.len() > 2
        {
            self.samples.pop_front();
        }
        let (t0, b0) = *self.samples.front()?;
        let dt = at - t0;
        if dt < 0.1 {
            return None;
        }
        Some((bytes.saturating_sub(b0) as f64 / dt) as u64)
    }
}

/// `Backup b1: Running, 120.00 MiB / 300.00 MiB, 45.20 MiB/s, ETA 4s (3.0s) dp-backup-0`.
pub fn plain_line(s: &Snapshot) -> String {
    let mut line = format!("{} {}: {}", s.kind, s.name, s.phase);
    let numbers = s.numbers();
    if !numbers.is_empty() {
        line.push_str(", ");
        line.push_str(&numbers);
    }
    line.push_str(&format!(" ({})", format_duration(s.elapsed_seconds)));
    if let Some(message) = &s.message {
        line.push(' ');
        line.push_str(message);
    }
    line
}

/// `0.4s`, `12.3s`, `2m05s`, `1h02m`.
pub fn format_duration(seconds: f64) -> String {
    let seconds = if seconds.is_finite() && seconds > 0.0 {
        seconds
    } else {
        0.0
    };
    if seconds < 60.0 {
        return format!("{seconds:.1}s");
    }
    let whole = seconds.round() as u64;
    if whole < 3600 {
        format!("{}m{:02}s", whole / 60, whole % 60)
    } else {
        format!("{}h{:02}m", whole / 3600, (whole % 3600) / 60)
    }
}

/// The line `Plain` mode prints, minus the elapsed time (which changes every look): a new
/// line is printed only when this changes.
fn change_key(s: &Snapshot) -> (String, String, Option<String>) {
    (s.phase.clone(), s.numbers(), s.message.clone())
}

/// Draws a stream of snapshots in one [`Mode`].
pub struct Reporter {
    mode: Mode,
    out: Box<dyn Write + Send>,
    bar: Option<ProgressBar>,
    bar_has_total: bool,
    last: Option<(String, String, Option<String>)>,
}

impl Reporter {
    /// A reporter writing plain and JSON lines to `out` (a bar always goes to stderr).
    pub fn new(mode: Mode, out: Box<dyn Write + Send>) -> Reporter {
        Reporter {
            mode,
            out,
            bar: None,
            bar_has_total: false,
            last: None,
        }
    }

    /// The mode this reporter draws in.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Shows one look at the object.
    pub fn update(&mut self, s: &Snapshot) -> std::io::Result<()> {
        match self.mode {
            Mode::Terminal => {
                self.draw_bar(s);
                Ok(())
            }
            Mode::Plain => {
                let key = change_key(s);
                if self.last.as_ref() != Some(&key) {
                    self.last = Some(key);
                    writeln!(self.out, "{}", plain_line(s))?;
                    self.out.flush()?;
                }
                Ok(())
            }
            Mode::Json => {
                let key = change_key(s);
                if self.last.as_ref() != Some(&key) {
                    self.last = Some(key);
                    self.json_line("progress", s)?;
                }
                Ok(())
            }
        }
    }

    /// Shows the last look (the object finished or failed) and removes the bar.
    pub fn finish(&mut self, s: &Snapshot) -> std::io::Result<()> {
        match self.mode {
            Mode::Terminal => {
                if let Some(bar) = self.bar.take() {
                    bar.finish_and_clear();
                }
                writeln!(std::io::stderr(), "{}", plain_line(s))
            }
            Mode::Plain => {
                writeln!(self.out, "{}", plain_line(s))?;
                self.out.flush()
            }
            Mode::Json => self.json_line("progress", s),
        }
    }

    /// Removes the bar without a last line (before printing something else).
    pub fn clear(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        self.bar_has_total = false;
        self.last = None;
    }

    fn json_line(&mut self, kind: &str, s: &Snapshot) -> std::io::Result<()> {
        let mut value = serde_json::to_value(s).map_err(std::io::Error::other)?;
        if let Some(map) = value.as_object_mut() {
            map.insert("type".into(), serde_json::Value::String(kind.into()));
        }
        writeln!(self.out, "{value}")?;
        self.out.flush()
    }

    fn draw_bar(&mut self, s: &Snapshot) {
        let bar = self.bar.get_or_insert_with(|| {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            bar.set_style(spinner_style());
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        bar.set_prefix(format!("{} {}", s.kind, s.name));
        match (s.bytes_total, self.bar_has_total) {
            (Some(total), false) => {
                bar.set_style(bar_style());
                bar.set_length(total);
                self.bar_has_total = true;
            }
            (Some(total), true) => bar.set_length(total),
            (None, _) => {}
        }
        if let Some(done) = s.bytes_done {
            bar.set_position(done);
        }
        let numbers = s.numbers();
        let mut message = s.phase.clone();
        if !numbers.is_empty() {
            message.push_str("  ");
            message.push_str(&numbers);
        }
        if let Some(extra) = &s.message {
            message.push_str("  ");
            message.push_str(extra);
        }
        bar.set_message(message);
    }
}

impl Drop for Reporter {
    fn drop(&mut self) {
        self.clear();
    }
}

fn spinner_style() -> ProgressStyle {
    ProgressStyle::with_template("{spinner} {prefix:.bold} {msg} [{elapsed}]")
        .unwrap_or_else(|_| ProgressStyle::default_spinner())
}

fn bar_style() -> ProgressStyle {
    ProgressStyle::with_template("{spinner} {prefix:.bold} [{bar:28}] {msg} [{elapsed}]")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn running() -> Snapshot {
        Snapshot {
            kind: "Backup",
            name: "b1".into(),
            phase: "Running".into(),
            bytes_done: Some(100 * 1024 * 1024),
            bytes_total: None,
            bytes_per_second: Some(50 * 1024 * 1024),
            eta_seconds: None,
            elapsed_seconds: 2.0,
            message: None,
            data: None,
        }
    }

    #[test]
    fn plain_line_shows_bytes_rate_and_elapsed_time() {
        assert_eq!(
            plain_line(&running()),
            "Backup b1: Running, 100.00 MiB, 50.00 MiB/s (2.0s)"
        );
    }

    #[test]
    fn an_expected_total_gives_an_eta_rounded_up() {
        let s = running().with_expected_total(Some(201 * 1024 * 1024));
        assert_eq!(s.bytes_total, Some(201 * 1024 * 1024));
        assert_eq!(s.eta_seconds, Some(3));
        assert_eq!(
            plain_line(&s),
            "Backup b1: Running, 100.00 MiB / 201.00 MiB, 50.00 MiB/s, ETA 3.0s (2.0s)"
        );
    }

    #[test]
    fn the_objects_own_total_and_eta_win_over_an_expected_total() {
        let mut s = running();
        s.bytes_total = Some(400 * 1024 * 1024);
        s.eta_seconds = Some(9);
        let s = s.with_expected_total(Some(1));
        assert_eq!(s.bytes_total, Some(400 * 1024 * 1024));
        assert_eq!(s.eta_seconds, Some(9));
    }

    #[test]
    fn no_eta_without_a_rate() {
        let mut s = running();
        s.bytes_per_second = Some(0);
        let s = s.with_expected_total(Some(1 << 30));
        assert_eq!(s.eta_seconds, None);
        assert!(!plain_line(&s).contains("/s"));
    }

    #[test]
    fn a_phase_only_snapshot_prints_the_phase_and_message() {
        let mut s = Snapshot::phase("Restore", "r1", "Running");
        s.message = Some("prepareData-0 Processing".into());
        s.elapsed_seconds = 75.0;
        assert_eq!(
            plain_line(&s),
            "Restore r1: Running (1m15s) prepareData-0 Processing"
        );
    }

    #[test]
    fn durations_are_compact() {
        assert_eq!(format_duration(0.42), "0.4s");
        assert_eq!(format_duration(59.94), "59.9s");
        assert_eq!(format_duration(125.0), "2m05s");
        assert_eq!(format_duration(3720.0), "1h02m");
        assert_eq!(format_duration(-3.0), "0.0s");
        assert_eq!(format_duration(f64::NAN), "0.0s");
    }

    /// A `Write` into a shared buffer, to read what a reporter printed.
    #[derive(Clone, Default)]
    struct Buffer(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("lock").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Buffer {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().expect("lock").clone()).expect("utf8")
        }
    }

    #[test]
    fn plain_mode_prints_a_line_only_when_something_but_time_changed() {
        let buffer = Buffer::default();
        let mut reporter = Reporter::new(Mode::Plain, Box::new(buffer.clone()));
        let mut s = running();
        reporter.update(&s).expect("update");
        s.elapsed_seconds = 2.5;
        reporter.update(&s).expect("update");
        s.bytes_done = Some(200 * 1024 * 1024);
        reporter.update(&s).expect("update");
        s.phase = "Completed".into();
        reporter.finish(&s).expect("finish");
        let text = buffer.text();
        assert_eq!(text.lines().count(), 3, "{text}");
        assert!(text.lines().last().expect("line").contains("Completed"));
    }

    #[test]
    fn json_mode_prints_one_typed_object_per_change() {
        let buffer = Buffer::default();
        let mut reporter = Reporter::new(Mode::Json, Box::new(buffer.clone()));
        let s = running();
        reporter.update(&s).expect("update");
        reporter.update(&s).expect("update");
        let text = buffer.text();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("json"))
            .collect();
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0]["type"], "progress");
        assert_eq!(lines[0]["kind"], "Backup");
        assert_eq!(lines[0]["bytesDone"], 100 * 1024 * 1024);
        assert_eq!(lines[0]["bytesPerSecond"], 50 * 1024 * 1024);
        assert!(lines[0].get("bytesTotal").is_none());
    }

    #[test]
    fn the_rate_meter_averages_over_its_window() {
        let mut meter = RateMeter::new(2.0);
        assert_eq!(meter.observe(0.0, 0), None);
        assert_eq!(meter.observe(0.05, 10), None);
        assert_eq!(meter.observe(1.0, 100), Some(100));
        assert_eq!(meter.observe(2.0, 300), Some(150));
        // The sample at 0.0 falls out of the window: (700 - 100) / (3.0 - 1.0).
        assert_eq!(meter.observe(3.0, 700), Some(300));
        // A count that goes back (a re-created volume) gives zero, not a panic.
        assert_eq!(meter.observe(4.0, 0), Some(0));
    }
}
