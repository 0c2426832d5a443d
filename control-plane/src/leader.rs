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

/// Runs the election until the receiver side is dropped; publishes whether we lead.
pub async fn run(client: kube::Client, config: LeaseConfig, leading: watch::Sender<bool>) {
    let api: Api<Lease> = Api::namespaced(client, &config.namespace);
    let mut last_success: Option<tokio::time::Instant> = None;
    loop {
        let now = Timestamp::now();
        let result = attempt(&api, &config, now).await;
        match result {
            Ok(true) => last_success = Some(tokio::time::Instant::now()),
            Ok(false) => last_success = None,
            Err(err) => tracing::debug!(error = %err, "lease attempt failed"),
        }
        let lead = last_success.is_some_and(|t| t.elapsed() < config.renew_deadline);
        if *leading.borrow() != lead {
            tracing::info!(identity = %config.identity, leading = lead, "leadership changed");
        }
        if leading.send(lead).is_err() {
            return;
        }
        tokio::time::sleep(config.retry_period).await;
    }
}

/// One read-decide-write round; `Ok(true)` when the Lease now names us.
async fn attempt(
    api: &Api<Lease>,
    config: &LeaseConfig,
    now: Timestamp,
) -> Result<bool, kube::Error> {
    let current = api.get_opt(&config.name).await?;
    let decision = decide(current.as_ref(), &config.identity, now);
    let micro = MicroTime(now);
    let duration = i32::try_from(config.lease_duration.as_secs()).unwrap_or(15);
    match decision {
        Decision::Follow { .. } => Ok(false),
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
                .map(|_| true)
        }
        Decision::Renew | Decision::TakeOver => {
            let Some(mut lease) = current else {
                return Ok(false);
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
                .map(|_| true)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
