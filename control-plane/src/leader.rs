//! Leader election on a `coordination.k8s.io/v1` Lease with create/replace and resourceVersion
//! preconditions, so two replicas never reconcile at once.
//!
//! Written here rather than taken from a crate: `kube-lease-manager` updates the Lease with
//! server-side apply, which Cairn's clients avoid (ARCHITECTURE.md: merge and JSON patch,
//! create/replace only), and `kube-leader-election` depends on an older kube.
//!
//! # Guarantees
//! - A replica considers itself leader only after a write of the Lease naming it succeeded, and
//!   stops considering itself leader when a renewal has not succeeded for `renew_deadline`
//!   (shorter than the lease duration), so a partitioned leader steps down before anyone else
//!   may take over.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, PostParams};
use tokio::sync::watch;

/// Lease settings.
#[derive(Debug, Clone)]
pub struct LeaseConfig {
    pub namespace: String,
    pub name: String,
    pub identity: String,
    /// How long a lease is valid after its last renewal.
    pub lease_duration: Duration,
    /// A leader that could not renew for this long steps down.
    pub renew_deadline: Duration,
    /// Time between attempts.
    pub retry_period: Duration,
}

/// What the elector should do with the Lease it read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// No Lease yet: create one naming us.
    Create,
    /// We hold it: renew.
    Renew,
    /// Another holder's lease expired: take it over.
    TakeOver,
    /// Another holder is valid: wait.
    Follow { holder: String },
}

/// Decides what to do with `lease` at `now` (pure).
pub fn decide(lease: Option<&Lease>, identity: &str, now: Timestamp) -> Decision {
    let Some(lease) = lease else {
        return Decision::Create;
    };
    let spec = lease.spec.clone().unwrap_or_default();
    let holder = spec.holder_identity.unwrap_or_default();
    if holder == identity {
        return Decision::Renew;
    }
    let duration = i64::from(spec.lease_duration_seconds.unwrap_or(15).max(1));
    let expired = match spec.renew_time.or(spec.acquire_time) {
        Some(MicroTime(renewed)) => renewed
            .checked_add(jiff::SignedDuration::from_secs(duration))
            .map(|until| until <= now)
            .unwrap_or(true),
        None => true,
    };
    if holder.is_empty() || expired {
        Decision::TakeOver
    } else {
        Decision::Follow { holder }
    }
}

/// Whether this replica leads, shared by everything that must act only on the leader.
///
/// Leadership is a deadline, not a flag: a replica leads until `renew_deadline` after the start
/// of its last successful renewal. [`Leadership::is_leading`] compares that deadline with the
/// monotonic clock at the moment of asking, so a process that was paused (SIGSTOP, a long GC
/// pause of the node, a frozen VM) past its deadline knows it no longer leads the instant it
/// resumes, before the election loop has run again. [`Leadership::subscribe`] publishes the
/// changes for the tasks that start and stop with leadership (reconcilers, the agent hub).
#[derive(Clone, Debug)]
pub struct Leadership {
    inner: std::sync::Arc<LeadershipInner>,
}

#[derive(Debug)]
struct LeadershipInner {
    state: std::sync::Mutex<Term>,
    changes: watch::Sender<bool>,
}

#[derive(Debug, Clone)]
struct Term {
    /// `None`: no election, this replica always leads.
    until: Option<Option<tokio::time::Instant>>,
    /// The holder of the Lease as last read (for refusals: who leads instead).
    holder: Option<String>,
}

impl Leadership {
    /// A replica that always leads (no election: one replica).
    pub fn always() -> Leadership {
        Leadership::with(None)
    }

    /// A replica that does not lead until [`run`] wins the Lease.
    pub fn elected() -> Leadership {
        Leadership::with(Some(None))
    }

    fn with(until: Option<Option<tokio::time::Instant>>) -> Leadership {
        let leading = until.is_none();
        let (changes, _) = watch::channel(leading);
        Leadership {
            inner: std::sync::Arc::new(LeadershipInner {
                state: std::sync::Mutex::new(Term {
                    until,
                    holder: None,
                }),
                changes,
            }),
        }
    }

    fn term(&self) -> std::sync::MutexGuard<'_, Term> {
        self.inner
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether this replica leads now (checked against the deadline at every call).
    pub fn is_leading(&self) -> bool {
        match self.term().until {
            None => true,
            Some(until) => until.is_some_and(|t| tokio::time::Instant::now() < t),
        }
    }

    /// The identity holding the Lease as last read (`None` before the first read or without
    /// election).
    pub fn holder(&self) -> Option<String> {
        self.term().holder.clone()
    }

    /// Leadership changes (`true` while leading). The value is published by the election loop
    /// and by [`Leadership::watchdog`]; [`Leadership::is_leading`] is always exact.
    pub fn subscribe(&self) -> watch::Receiver<bool> {
        self.inner.changes.subscribe()
    }

    /// Records the outcome of one election round and publishes a change.
    pub(crate) fn record(&self, until: Option<tokio::time::Instant>, holder: Option<String>) {
        {
            let mut term = self.term();
            if term.until.is_none() {
                return;
            }
            term.until = Some(until);
            if holder.is_some() {
                term.holder = holder;
            }
        }
        self.publish();
    }

    fn publish(&self) {
        let lead = self.is_leading();
        self.inner.changes.send_if_modified(|current| {
            if *current == lead {
                return false;
            }
            tracing::info!(leading = lead, "leadership changed");
            *current = lead;
            true
        });
    }

    /// The instant this replica's term ends, if it leads under election.
    fn deadline(&self) -> Option<tokio::time::Instant> {
        self.term().until.flatten()
    }

    /// Publishes `false` the moment the deadline passes without a renewal, even when the
    /// election loop is stuck in an API call. Runs until the receivers are all dropped.
    pub async fn watchdog(self) {
        loop {
            match self.deadline() {
                Some(deadline) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep_until(deadline).await;
                }
                _ => {
                    let mut changes = self.subscribe();
                    self.publish();
                    if changes.changed().await.is_err() {
                        return;
                    }
                    continue;
                }
            }
            self.publish();
        }
    }
}

/// Runs the election forever; records every round in `leadership`.
///
/// A round that wins (creates, renews or takes over the Lease) extends the term to
/// `renew_deadline` after the round *started* (the Lease records that start as its renew
/// time, so the term ends `lease_duration - renew_deadline` before any other replica may take
/// over). A round that finds another valid holder ends the term at once; a round that fails
/// (API unreachable, conflict) leaves the term as it was, to run out by itself.
pub async fn run(client: kube::Client, config: LeaseConfig, leadership: Leadership) {
    let api: Api<Lease> = Api::namespaced(client, &config.namespace);
    tokio::spawn(leadership.clone().watchdog());
    loop {
        let started = tokio::time::Instant::now();
        let now = Timestamp::now();
        let round = tokio::time::timeout(config.renew_deadline, attempt(&api, &config, now)).await;
        match round {
            Ok(Ok(Round::Leading)) => leadership.record(
                Some(started + config.renew_deadline),
                Some(config.identity.clone()),
            ),
            Ok(Ok(Round::Following { holder })) => leadership.record(None, Some(holder)),
            Ok(Err(err)) => {
                tracing::debug!(error = %err, "lease attempt failed");
                leadership.record(leadership.deadline(), None);
            }
            Err(_) => {
                tracing::debug!("lease attempt timed out");
                leadership.record(leadership.deadline(), None);
            }
        }
        tokio::time::sleep(config.retry_period).await;
    }
}

/// What one round found.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Round {
    /// The Lease names us now.
    Leading,
    /// Another replica holds a valid Lease.
    Following { holder: String },
}

/// One read-decide-write round.
async fn attempt(
    api: &Api<Lease>,
    config: &LeaseConfig,
    now: Timestamp,
) -> Result<Round, kube::Error> {
    let current = api.get_opt(&config.name).await?;
    let decision = decide(current.as_ref(), &config.identity, now);
    let micro = MicroTime(now);
    let duration = i32::try_from(config.lease_duration.as_secs()).unwrap_or(15);
    match decision {
        Decision::Follow { holder } => Ok(Round::Following { holder }),
        Decision::Create => {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(config.name.clone()),
                    namespace: Some(config.namespace.clone()),
                    ..Default::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(config.identity.clone()),
                    lease_duration_seconds: Some(duration),
                    acquire_time: Some(micro.clone()),
                    renew_time: Some(micro),
                    lease_transitions: Some(0),
                    ..Default::default()
                }),
            };
            api.create(&PostParams::default(), &lease)
                .await
                .map(|_| Round::Leading)
        }
        Decision::Renew | Decision::TakeOver => {
            let Some(mut lease) = current else {
                return Ok(Round::Following {
                    holder: String::new(),
                });
            };
            let spec = lease.spec.get_or_insert_with(Default::default);
            if decision == Decision::TakeOver {
                spec.holder_identity = Some(config.identity.clone());
                spec.acquire_time = Some(micro.clone());
                spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
            }
            spec.lease_duration_seconds = Some(duration);
            spec.renew_time = Some(micro);
            // replace() sends the resourceVersion we read: a concurrent writer makes this fail.
            api.replace(&config.name, &PostParams::default(), &lease)
                .await
                .map(|_| Round::Leading)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_term_that_ran_out_is_not_leadership_even_before_the_election_loop_runs_again() {
        // A leader frozen (SIGSTOP) past its deadline resumes with nothing having updated the
        // leadership; it must not consider itself leader.
        let leadership = Leadership::elected();
        assert!(!leadership.is_leading());
        let now = tokio::time::Instant::now();
        leadership.record(Some(now + Duration::from_secs(60)), Some("me".into()));
        assert!(leadership.is_leading());
        assert!(*leadership.subscribe().borrow());
        leadership.record(Some(now - Duration::from_millis(1)), None);
        assert!(!leadership.is_leading());
        assert_eq!(leadership.holder().as_deref(), Some("me"));
    }

    #[tokio::test]
    async fn the_watchdog_publishes_the_end_of_a_term_without_a_renewal() {
        let leadership = Leadership::elected();
        leadership.record(
            Some(tokio::time::Instant::now() + Duration::from_millis(200)),
            Some("me".into()),
        );
        let mut changes = leadership.subscribe();
        assert!(*changes.borrow_and_update());
        tokio::spawn(leadership.clone().watchdog());
        tokio::time::timeout(Duration::from_secs(5), changes.changed())
            .await
            .expect("the end of the term was published")
            .expect("the sender lives");
        assert!(!*changes.borrow());
    }

    #[test]
    fn without_election_a_replica_always_leads() {
        let leadership = Leadership::always();
        leadership.record(None, Some("other".into()));
        assert!(leadership.is_leading());
    }

    fn lease(holder: &str, renewed: &str, seconds: i32) -> Lease {
        Lease {
            metadata: ObjectMeta::default(),
            spec: Some(LeaseSpec {
                holder_identity: Some(holder.into()),
                renew_time: Some(MicroTime(renewed.parse().unwrap())),
                lease_duration_seconds: Some(seconds),
                ..Default::default()
            }),
        }
    }

    fn at(t: &str) -> Timestamp {
        t.parse().unwrap()
    }

    #[test]
    fn missing_lease_is_created() {
        assert_eq!(
            decide(None, "me", at("2026-01-01T00:00:00Z")),
            Decision::Create
        );
    }

    #[test]
    fn own_lease_is_renewed() {
        let l = lease("me", "2026-01-01T00:00:00Z", 15);
        assert_eq!(
            decide(Some(&l), "me", at("2026-01-01T00:00:05Z")),
            Decision::Renew
        );
    }

    #[test]
    fn valid_lease_of_another_replica_is_followed() {
        let l = lease("other", "2026-01-01T00:00:00Z", 15);
        assert_eq!(
            decide(Some(&l), "me", at("2026-01-01T00:00:14Z")),
            Decision::Follow {
                holder: "other".into()
            }
        );
    }

    #[test]
    fn expired_lease_of_another_replica_is_taken_over() {
        let l = lease("other", "2026-01-01T00:00:00Z", 15);
        assert_eq!(
            decide(Some(&l), "me", at("2026-01-01T00:00:15Z")),
            Decision::TakeOver
        );
    }

    #[test]
    fn lease_without_holder_is_taken_over() {
        let l = lease("", "2026-01-01T00:00:00Z", 15);
        assert_eq!(
            decide(Some(&l), "me", at("2026-01-01T00:00:01Z")),
            Decision::TakeOver
        );
    }
}
