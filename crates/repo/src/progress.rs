//! Progress reporting as a trait object, so the engine never sees a terminal.
//!
//! `cairnctl` implements [`Progress`] with indicatif bars, the node agent with a counter it
//! sends to the control plane once a second, tests with [`NoProgress`] or [`Counter`].

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Receives byte counts while an operation runs. Implementations must be cheap: `add` is
/// called for every buffer (every few KiB to MiB) from several threads.
pub trait Progress: Send + Sync {
    /// The total number of bytes expected, when known.
    fn set_total(&self, _bytes: u64) {}
    /// `bytes` more were processed.
    fn add(&self, bytes: u64);
    /// A new phase started ("scanning", "uploading", "restoring").
    fn set_phase(&self, _phase: &str) {}
    /// Something the user should know that does not stop the operation (an unreadable index
    /// a backup skipped). The default logs it; `cairnctl` prints it.
    fn warn(&self, message: &str) {
        tracing::warn!(message, "repository warning");
    }
}

/// A progress sink that ignores everything.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn add(&self, _bytes: u64) {}
}

/// A progress sink that counts bytes; cheap to clone and read from another task.
#[derive(Debug, Default, Clone)]
pub struct Counter {
    done: Arc<AtomicU64>,
    total: Arc<AtomicU64>,
}

impl Counter {
    /// Bytes processed so far.
    pub fn done(&self) -> u64 {
        self.done.load(Ordering::Relaxed)
    }

    /// The total announced with `set_total` (0 when unknown).
    pub fn total(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }
}

impl Progress for Counter {
    fn set_total(&self, bytes: u64) {
        self.total.store(bytes, Ordering::Relaxed);
    }

    fn add(&self, bytes: u64) {
        self.done.fetch_add(bytes, Ordering::Relaxed);
    }
}

/// A shared progress handle.
pub type SharedProgress = Arc<dyn Progress>;

/// A handle that reports nothing.
pub fn no_progress() -> SharedProgress {
    Arc::new(NoProgress)
}
