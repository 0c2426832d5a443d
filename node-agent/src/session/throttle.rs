//! Progress throttling: at most one `Progress` per action per interval, the newest one winning.

use std::collections::HashMap;
use std::time::Duration;

use cairn_proto::agent::v1::Progress;
use tokio::time::Instant;

/// Per-action progress limiter (PROTOCOL.md §2.2: at most once a second per running action).
///
/// A report offered less than `interval` after the previous one sent is held back; a newer
/// report replaces a held one (coalescing), and the held report is released once its
/// interval has passed, so the last state before a pause is never lost.
#[derive(Debug)]
pub struct ProgressThrottle {
    interval: Duration,
    actions: HashMap<String, Slot>,
}

#[derive(Debug, Default)]
struct Slot {
    last_sent: Option<Instant>,
    held: Option<Progress>,
}

impl ProgressThrottle {
    /// A throttle letting one report per action through every `interval`.
    pub fn new(interval: Duration) -> ProgressThrottle {
        ProgressThrottle {
            interval,
            actions: HashMap::new(),
        }
    }

    /// Offers a report at `now`: returns it when it may be sent now, else holds it.
    pub fn offer(&mut self, progress: Progress, now: Instant) -> Option<Progress> {
        let slot = self.actions.entry(progress.action_id.clone()).or_default();
        match slot.last_sent {
            Some(sent) if now.duration_since(sent) < self.interval => {
                slot.held = Some(progress);
                None
            }
            _ => {
                slot.last_sent = Some(now);
                slot.held = None;
                Some(progress)
            }
        }
    }

    /// Held reports whose interval has passed at `now`, marked as sent.
    pub fn due(&mut self, now: Instant) -> Vec<Progress> {
        let mut due = Vec::new();
        for slot in self.actions.values_mut() {
            let ready = slot
                .last_sent
                .is_none_or(|sent| now.duration_since(sent) >= self.interval);
            if ready && let Some(progress) = slot.held.take() {
                slot.last_sent = Some(now);
                due.push(progress);
            }
        }
        due.sort_by(|a, b| a.action_id.cmp(&b.action_id));
        due
    }

    /// When the next held report becomes due.
    pub fn next_due(&self) -> Option<Instant> {
        self.actions
            .values()
            .filter(|slot| slot.held.is_some())
            .filter_map(|slot| slot.last_sent.map(|sent| sent + self.interval))
            .min()
    }

    /// Drops the state of a finished action (its held report is no longer worth sending).
    pub fn forget(&mut self, action_id: &str) {
        self.actions.remove(action_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(id: &str, bytes: u64) -> Progress {
        Progress {
            action_id: id.into(),
            bytes_done: bytes,
            ..Progress::default()
        }
    }

    const SEC: Duration = Duration::from_secs(1);

    #[test]
    fn first_report_goes_out_and_the_next_within_a_second_is_held() {
        let t0 = Instant::now();
        let mut throttle = ProgressThrottle::new(SEC);
        assert_eq!(throttle.offer(p("a", 1), t0), Some(p("a", 1)));
        assert_eq!(throttle.offer(p("a", 2), t0 + SEC / 2), None);
        assert_eq!(throttle.next_due(), Some(t0 + SEC));
        assert!(throttle.due(t0 + SEC / 2).is_empty());
        assert_eq!(throttle.due(t0 + SEC), vec![p("a", 2)]);
        assert_eq!(throttle.next_due(), None);
    }

    #[test]
    fn held_reports_coalesce_to_the_newest() {
        let t0 = Instant::now();
        let mut throttle = ProgressThrottle::new(SEC);
        throttle.offer(p("a", 1), t0);
        for bytes in 2..100 {
            assert_eq!(throttle.offer(p("a", bytes), t0 + SEC / 4), None);
        }
        assert_eq!(throttle.due(t0 + SEC), vec![p("a", 99)]);
    }

    #[test]
    fn a_burst_of_reports_yields_at_most_one_per_second_per_action() {
        let t0 = Instant::now();
        let mut throttle = ProgressThrottle::new(SEC);
        let mut sent: Vec<(Instant, Progress)> = Vec::new();
        for ms in (0..5_000u64).step_by(10) {
            let now = t0 + Duration::from_millis(ms);
            for id in ["a", "b"] {
                if let Some(out) = throttle.offer(p(id, ms), now) {
                    sent.push((now, out));
                }
            }
            sent.extend(throttle.due(now).into_iter().map(|out| (now, out)));
        }
        for id in ["a", "b"] {
            let times: Vec<Instant> = sent
                .iter()
                .filter(|(_, out)| out.action_id == id)
                .map(|(at, _)| *at)
                .collect();
            assert_eq!(times.len(), 5, "{id}: {times:?}");
            assert!(times.windows(2).all(|w| w[1] - w[0] >= SEC));
        }
    }

    #[test]
    fn actions_are_throttled_independently_and_forget_drops_held_reports() {
        let t0 = Instant::now();
        let mut throttle = ProgressThrottle::new(SEC);
        assert!(throttle.offer(p("a", 1), t0).is_some());
        assert!(throttle.offer(p("b", 1), t0).is_some());
        assert!(throttle.offer(p("a", 2), t0).is_none());
        throttle.forget("a");
        assert!(throttle.due(t0 + SEC).is_empty());
        assert!(throttle.offer(p("a", 3), t0 + SEC / 2).is_some());
    }
}
