//! Retention garbage collection (ARCHITECTURE.md §K1.2c, §K6.4, §K7.1): a finished Backup whose
//! `status.expiration` has passed is deleted; the Backup planner then removes its files
//! according to its `deletionPolicy`.
//!
//! # Departures from KubeBlocks
//! - KubeBlocks 0.9 deletes any expired Backup whatever its phase, so a long backup can be
//!   deleted while it runs (ARCHITECTURE.md §K8 S14). Cairn deletes only `Completed` and `Failed` Backups, as
//!   KubeBlocks 1.x does; a Running backup's expiration is recomputed from its completion when it
//!   finishes.
//! - KubeBlocks expires the base or parent of an incremental chain on its own date, and the
//!   cascade (ARCHITECTURE.md §K1.2 Deleting step 1) then takes every backup built on it, however young. Cairn
//!   never strands a chain: a backup that others depend on (as `parentBackupName` or
//!   `baseBackupName`) is held until the latest of them expires (forever while one has no
//!   expiration); the hold is written into its `status.expiration`, and the event says why.
//! - Cairn keeps the base a point-in-time restore needs (ARCHITECTURE.md §K4.5): an expired
//!   Full or Incremental that is the earliest base ending inside an archived part of a Running
//!   or Completed continuous backup's time range is held as long as that continuous backup
//!   (forever while it runs), since the recoverability window would otherwise shrink to the
//!   next base. Once the continuous backup's archive is trimmed past it (retention moves
//!   `timeRange.start`), it is no longer the window's start and goes.

use cairn_api::backup::{Backup, BackupPhase};
use cairn_api::window;
use jiff::Timestamp;

use super::backup::chain;
use super::intent::Intent;

/// What the collector should do now, and when to look again.
#[derive(Debug, Clone, PartialEq)]
pub struct GcPlan {
    /// One `Intent::Delete` per expired Backup.
    pub intents: Vec<Intent>,
    /// The earliest expiration still ahead (of any Backup not being deleted), if any.
    pub next_wake: Option<Timestamp>,
    /// Expired Backups kept because younger backups depend on them.
    pub holds: Vec<Hold>,
}

/// An expired Backup kept for the backups built on it.
#[derive(Debug, Clone, PartialEq)]
pub struct Hold {
    pub namespace: String,
    pub name: String,
    /// Its new expiration: that of the latest dependent; `None`: a dependent never expires.
    pub until: Option<Timestamp>,
    /// Why, for its event: which backup needs it.
    pub reason: String,
}

fn key(backup: &Backup) -> (&str, &str) {
    (
        backup.metadata.namespace.as_deref().unwrap_or_default(),
        chain::name(backup),
    )
}

/// An expiration as an order where "never" (`None`) is the latest.
fn order(expiration: Option<Timestamp>) -> (bool, Option<Timestamp>) {
    (expiration.is_none(), expiration)
}

/// The expiration a backup really has: its own, pushed to the latest of the backups that
/// depend on it, directly or through others (`None`: never). Returns the backup whose
/// expiration that is, when one holds it past its own.
fn effective<'b>(
    backup: &'b Backup,
    backups: &'b [Backup],
    depth: usize,
) -> (Option<Timestamp>, Option<&'b Backup>) {
    let own = backup
        .status
        .as_ref()
        .and_then(|s| s.expiration.as_ref())
        .map(|t| t.0);
    let mut result = (own, None);
    if depth > chain::MAX_LINKS {
        return result;
    }
    let (namespace, name) = key(backup);
    let dependents = backups.iter().filter(|b| {
        key(b).0 == namespace
            && chain::name(b) != name
            && b.metadata.deletion_timestamp.is_none()
            && chain::policy(b) == chain::policy(backup)
            && (chain::parent_name(b) == name || chain::base_name(b) == name)
    });
    for dependent in dependents.chain(windows_started_by(backup, backups)) {
        let (until, holder) = effective(dependent, backups, depth + 1);
        if order(until) > order(result.0) {
            result = (until, Some(holder.unwrap_or(dependent)));
        }
    }
    result
}

/// The continuous backups whose recoverability window starts at `backup` (ARCHITECTURE.md
/// §K4.5): `backup` is a base of theirs that ends inside one of the archived parts of their time
/// range and is the earliest such base of that part, so the window would shrink without it.
fn windows_started_by<'b>(backup: &Backup, backups: &'b [Backup]) -> Vec<&'b Backup> {
    let Some(end) = window::end_time(backup) else {
        return Vec::new();
    };
    backups
        .iter()
        .filter(|c| window::backup_type(c) == "Continuous")
        .filter(|c| c.metadata.deletion_timestamp.is_none())
        .filter(|c| {
            matches!(
                c.status.as_ref().and_then(|s| s.phase),
                Some(BackupPhase::Running | BackupPhase::Completed)
            )
        })
        .filter(|c| {
            let selector = window::base_selector(c);
            if !window::is_base_candidate(c, &selector, backup) {
                return false;
            }
            let (Some(start), Some(last)) = (window::start_time(c), window::end_time(c)) else {
                return false;
            };
            window::parts(c, start, last)
                .into_iter()
                .filter(|(from, to)| *from <= end && end <= *to)
                .any(|(from, _)| {
                    !backups.iter().any(|other| {
                        key(other) != key(backup)
                            && window::is_base_candidate(c, &selector, other)
                            && window::end_time(other).is_some_and(|e| from <= e && e < end)
                    })
                })
        })
        .collect()
}

/// Plans one pass over `backups` (all namespaces) at `now`.
pub fn plan(backups: &[Backup], now: Timestamp) -> GcPlan {
    let mut intents = Vec::new();
    let mut holds = Vec::new();
    let mut next_wake: Option<Timestamp> = None;
    for backup in backups {
        if backup.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let status = backup.status.as_ref();
        let Some(expiration) = status.and_then(|s| s.expiration.as_ref()).map(|t| t.0) else {
            continue;
        };
        if expiration > now {
            next_wake = Some(next_wake.map_or(expiration, |w| w.min(expiration)));
            continue;
        }
        if let (until, Some(dependent)) = effective(backup, backups, 0)
            && until.is_none_or(|u| u > now)
        {
            let (namespace, name) = key(backup);
            let needed = chain::name(dependent);
            let why = if window::backup_type(dependent) == "Continuous" {
                format!(
                    "the recoverability window of continuous backup {needed} starts at this backup (its earliest base)"
                )
            } else {
                format!("backup {needed} depends on this one")
            };
            holds.push(Hold {
                namespace: namespace.into(),
                name: name.into(),
                until,
                reason: match until {
                    Some(until) => {
                        format!("expiration moved to {until}: {why} and expires then")
                    }
                    None => format!("kept past its expiration: {why} and has no expiration"),
                },
            });
            continue;
        }
        let finished = matches!(
            status.and_then(|s| s.phase),
            Some(BackupPhase::Completed | BackupPhase::Failed)
        );
        if finished {
            intents.push(Intent::Delete {
                api_version: cairn_api::API_VERSION.into(),
                kind: "Backup".into(),
                namespace: backup.metadata.namespace.clone(),
                name: backup.metadata.name.clone().unwrap_or_default(),
            });
        }
    }
    GcPlan {
        intents,
        next_wake,
        holds,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    fn backup(name: &str, phase: &str, expiration: Option<&str>) -> Backup {
        serde_json::from_value(json!({
            "apiVersion": cairn_api::API_VERSION,
            "kind": "Backup",
            "metadata": {"name": name, "namespace": "ns1"},
            "spec": {"backupPolicyName": "p", "backupMethod": "m"},
            "status": {"phase": phase, "expiration": expiration}
        }))
        .unwrap()
    }

    fn deleted(plan: &GcPlan) -> Vec<String> {
        plan.intents
            .iter()
            .map(|i| match i {
                Intent::Delete {
                    name, namespace, ..
                } => format!("{}/{name}", namespace.as_deref().unwrap_or_default()),
                other => panic!("unexpected intent {other:?}"),
            })
            .collect()
    }

    const NOW: &str = "2026-11-22T10:00:00Z";

    #[test]
    fn expired_completed_and_failed_backups_are_deleted() {
        let plan = plan(
            &[
                backup("done", "Completed", Some("2026-11-22T09:00:00Z")),
                backup("broken", "Failed", Some(NOW)),
            ],
            at(NOW),
        );
        assert_eq!(deleted(&plan), ["ns1/done", "ns1/broken"]);
        let Intent::Delete {
            api_version, kind, ..
        } = &plan.intents[0]
        else {
            unreachable!()
        };
        assert_eq!(
            (api_version.as_str(), kind.as_str()),
            (cairn_api::API_VERSION, "Backup")
        );
    }

    #[test]
    fn running_and_new_backups_are_never_deleted_even_when_expired() {
        let plan = plan(
            &[
                backup("running", "Running", Some("2026-11-22T09:00:00Z")),
                backup("new", "New", Some("2026-11-22T09:00:00Z")),
                backup("deleting", "Deleting", Some("2026-11-22T09:00:00Z")),
            ],
            at(NOW),
        );
        assert!(plan.intents.is_empty());
    }

    #[test]
    fn backups_without_expiration_are_kept_forever() {
        let plan = plan(&[backup("forever", "Completed", None)], at(NOW));
        assert_eq!(
            plan,
            GcPlan {
                intents: Vec::new(),
                next_wake: None,
                holds: Vec::new(),
            }
        );
    }

    #[test]
    fn backups_already_being_deleted_are_left_alone() {
        let mut b = backup("gone", "Completed", Some("2026-11-22T09:00:00Z"));
        b.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            at(NOW),
        ));
        assert!(plan(&[b], at(NOW)).intents.is_empty());
    }

    #[test]
    fn the_next_wake_is_the_earliest_expiration_still_ahead() {
        let plan = plan(
            &[
                backup("later", "Completed", Some("2026-11-23T00:00:00Z")),
                backup("sooner", "Running", Some("2026-11-22T12:00:00Z")),
                backup("past", "Completed", Some("2026-11-22T09:00:00Z")),
            ],
            at(NOW),
        );
        assert_eq!(deleted(&plan), ["ns1/past"]);
        assert_eq!(plan.next_wake, Some(at("2026-11-22T12:00:00Z")));
    }

    /// A backup of chain policy `p` in ns1, Completed, expiring at `expiration`, with `parent`
    /// and `base` ("" for none).
    fn linked(name: &str, expiration: Option<&str>, parent: &str, base: &str) -> Backup {
        let mut b = backup(name, "Completed", expiration);
        let status = b.status.get_or_insert_with(Default::default);
        status.parent_backup_name = Some(parent.to_string()).filter(|p| !p.is_empty());
        status.base_backup_name = Some(base.to_string()).filter(|b| !b.is_empty());
        b
    }

    const PAST: &str = "2026-11-22T09:00:00Z";

    #[test]
    fn an_expired_base_is_held_until_the_latest_backup_of_its_chain_expires() {
        let plan = plan(
            &[
                linked("full", Some(PAST), "", ""),
                linked("inc-1", Some(PAST), "full", "full"),
                linked("inc-2", Some("2026-11-25T00:00:00Z"), "inc-1", "full"),
                linked("inc-3", Some("2026-11-24T00:00:00Z"), "inc-2", "full"),
            ],
            at(NOW),
        );
        assert!(deleted(&plan).is_empty(), "nothing of the chain goes");
        let held: Vec<(&str, Option<Timestamp>)> = plan
            .holds
            .iter()
            .map(|h| (h.name.as_str(), h.until))
            .collect();
        assert_eq!(
            held,
            [
                ("full", Some(at("2026-11-25T00:00:00Z"))),
                ("inc-1", Some(at("2026-11-25T00:00:00Z")))
            ]
        );
        assert_eq!(
            plan.holds[0].reason,
            "expiration moved to 2026-11-25T00:00:00Z: backup inc-2 depends on this one and expires then"
        );
    }

    #[test]
    fn a_dependent_without_expiration_keeps_its_base_forever() {
        let plan = plan(
            &[
                linked("full", Some(PAST), "", ""),
                linked("inc-1", None, "full", "full"),
            ],
            at(NOW),
        );
        assert!(deleted(&plan).is_empty());
        assert_eq!(plan.holds[0].until, None);
        assert_eq!(
            plan.holds[0].reason,
            "kept past its expiration: backup inc-1 depends on this one and has no expiration"
        );
    }

    fn full(name: &str, end: &str) -> Backup {
        serde_json::from_value(json!({
            "apiVersion": cairn_api::API_VERSION, "kind": "Backup",
            "metadata": {"name": name, "namespace": "ns1", "labels": {
                "dataprotection.kubeblocks.io/backup-type": "Full",
                "app.kubernetes.io/instance": "pg"}},
            "spec": {"backupPolicyName": "p", "backupMethod": "m"},
            "status": {"phase": "Completed", "expiration": PAST,
                       "completionTimestamp": end}
        }))
        .unwrap()
    }

    fn continuous(start: &str, end: &str, phase: &str) -> Backup {
        serde_json::from_value(json!({
            "apiVersion": cairn_api::API_VERSION, "kind": "Backup",
            "metadata": {"name": "wal", "namespace": "ns1", "labels": {
                "dataprotection.kubeblocks.io/backup-type": "Continuous",
                "app.kubernetes.io/instance": "pg"}},
            "spec": {"backupPolicyName": "p", "backupMethod": "archive"},
            "status": {"phase": phase, "timeRange": {"start": start, "end": end}}
        }))
        .unwrap()
    }

    #[test]
    fn the_earliest_base_of_a_continuous_backups_window_is_kept_past_its_expiration() {
        let backups = [
            full("before", "2026-11-22T07:50:00Z"),
            full("first", "2026-11-22T08:30:00Z"),
            full("second", "2026-11-22T09:00:00Z"),
            continuous("2026-11-22T08:00:00Z", NOW, "Running"),
        ];
        let plan = plan(&backups, at(NOW));
        // The one before the archive's start is no base; a later one is not the window's start.
        assert_eq!(deleted(&plan), ["ns1/before", "ns1/second"]);
        assert_eq!(plan.holds.len(), 1);
        assert_eq!(plan.holds[0].name, "first");
        assert_eq!(plan.holds[0].until, None);
        assert_eq!(
            plan.holds[0].reason,
            "kept past its expiration: the recoverability window of continuous backup wal starts at this backup (its earliest base) and has no expiration"
        );
        // Retention trimmed the archive past it: it is no longer needed, the next one is.
        let trimmed = [
            full("first", "2026-11-22T08:30:00Z"),
            full("second", "2026-11-22T09:00:00Z"),
            continuous("2026-11-22T08:40:00Z", NOW, "Running"),
        ];
        let plan = plan_of(&trimmed);
        assert_eq!(deleted(&plan), ["ns1/first"]);
        assert_eq!(plan.holds[0].name, "second");
        // Another cluster's continuous backup holds nothing.
        let mut other = continuous("2026-11-22T08:00:00Z", NOW, "Running");
        other
            .metadata
            .labels
            .as_mut()
            .unwrap()
            .insert("app.kubernetes.io/instance".into(), "other".into());
        let plan = plan_of(&[full("first", "2026-11-22T08:30:00Z"), other]);
        assert_eq!(deleted(&plan), ["ns1/first"]);
    }

    #[test]
    fn a_gap_makes_the_earliest_base_after_it_a_window_start_too() {
        let mut wal = continuous("2026-11-22T08:00:00Z", NOW, "Running");
        wal.status.as_mut().unwrap().gaps = Some(vec![cairn_api::backup::ArchiveGap {
            start: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(at("2026-11-22T08:40:00Z")),
            end: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(at("2026-11-22T08:50:00Z")),
        }]);
        let plan = plan_of(&[
            full("first", "2026-11-22T08:30:00Z"),
            full("after-gap", "2026-11-22T09:00:00Z"),
            full("later", "2026-11-22T09:30:00Z"),
            wal,
        ]);
        assert_eq!(deleted(&plan), ["ns1/later"]);
        let held: Vec<&str> = plan.holds.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(held, ["first", "after-gap"]);
    }

    fn plan_of(backups: &[Backup]) -> GcPlan {
        plan(backups, at(NOW))
    }

    #[test]
    fn a_chain_whose_every_link_expired_goes_and_other_chains_do_not_hold_it() {
        let mut other_policy = linked("elsewhere", Some("2026-11-30T00:00:00Z"), "full", "full");
        other_policy.spec.backup_policy_name = "q".into();
        let plan = plan(
            &[
                linked("full", Some(PAST), "", ""),
                linked("inc-1", Some(PAST), "full", "full"),
                other_policy,
            ],
            at(NOW),
        );
        assert_eq!(deleted(&plan), ["ns1/full", "ns1/inc-1"]);
        assert!(plan.holds.is_empty());
    }
}
