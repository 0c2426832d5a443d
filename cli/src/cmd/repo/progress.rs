//! Progress bars (bytes, rate, ETA) for a terminal; nothing otherwise.

use std::io::IsTerminal;
use std::sync::Arc;

use cairn_repo::progress::{Progress, SharedProgress};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// An indicatif bar behind the engine's `Progress` trait.
struct Bar(ProgressBar);

impl Progress for Bar {
    fn set_total(&self, bytes: u64) {
        self.0.set_length(bytes);
    }

    fn add(&self, bytes: u64) {
        self.0.inc(bytes);
    }

    fn set_phase(&self, phase: &str) {
        self.0.set_message(phase.to_string());
    }

    fn warn(&self, message: &str) {
        self.0.suspend(|| eprintln!("warning: {message}"));
    }
}

/// No bar, but warnings still reach the user (on stderr, so `--json` output stays clean).
struct Quiet;

impl Progress for Quiet {
    fn add(&self, _bytes: u64) {}

    fn warn(&self, message: &str) {
        eprintln!("warning: {message}");
    }
}

/// A handle that draws a bar when stderr is a terminal and JSON was not asked for.
pub fn bar(json: bool, phase: &str) -> (SharedProgress, Option<ProgressBar>) {
    if json || !std::io::stderr().is_terminal() {
        return (Arc::new(Quiet), None);
    }
    let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
    let style = ProgressStyle::with_template(
        "{spinner} {msg:12} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ");
    bar.set_style(style);
    bar.set_message(phase.to_string());
    (Arc::new(Bar(bar.clone())), Some(bar))
}
