//! Retention garbage collection (ARCHITECTURE.md §K1.2c, §K6.4, §K7.1): a finished Backup whose
//! `status.expiration` has passed is deleted; the Backup planner then removes its files
//! according to its `deletionPolicy`.
//!
//! # Departure from KubeBlocks
//! KubeBlocks 0.9 deletes any expired Backup whatever its phase, so a long backup can be deleted
//! while it runs (ARCHITECTURE.md §K8 S14). Cairn deletes only `Completed` and `Failed` Backups, as KubeBlocks
//! 1.x does; a Running backup's expiration is recomputed from its completion when it finishes.

use cairn_api::backup::{Backup, BackupPhase};
use jiff::Timestamp;

use super::intent::Intent;

/// What the collector should do now, and when to look again.
#[derive(Debug, Clone, PartialEq)]
pub struct GcPlan {
    /// One `Intent::Delete` per expired Backup.
    pub intents: Vec<Intent>,
    /// The earliest expiration still ahead (of any Backup not being deleted), if any.
    pub next_wake: Option<Timestamp>,
}

/// Plans one pass over `backups` (all namespaces) at `now`.
pub fn plan(backups: &[Backup], now: Timestamp) -> GcPlan {
    let mut intents = Vec::new();
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
    GcPlan { intents, next_wake }
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
                next_wake: None
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
}
