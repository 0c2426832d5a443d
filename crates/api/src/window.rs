//! The recoverability window: which points in time a point-in-time restore can reach, per
//! BackupPolicy (and per cluster where the backups' KubeBlocks labels name one), from the
//! Continuous backups' `status.timeRange` and the base backups a restore needs (ARCHITECTURE.md
//! §K4.5). Pure: the control plane exports it as metrics, `cairnctl backup windows` prints it and
//! `cairnctl restore create --to-time` checks a time against it.
//!
//! A time `t` is restorable from a Continuous backup (Running or Completed) whose time range
//! holds it when a base exists: a Completed Full or Incremental backup labelled like it
//! ([`base_selector`]) that ended at or before `t` and not before the continuous backup started
//! (the restore planner's rule). So one continuous backup gives the span from its earliest usable
//! base's end to its own end (from its start when its ActionSet needs no base). The spans of a
//! policy's continuous backups are merged; what lies between them is a gap.

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;

use crate::backup::{Backup, BackupPhase};
use crate::well_known::label;

/// One restorable span, from one continuous backup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    pub start: Timestamp,
    pub end: Timestamp,
    /// The continuous backups whose ranges make up the span.
    pub continuous: Vec<String>,
}

/// The window of one policy (and cluster).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    pub namespace: String,
    pub policy: String,
    /// The `app.kubernetes.io/instance` of its backups, when labelled.
    pub cluster: Option<String>,
    /// Restorable spans, oldest first, not overlapping and not touching.
    pub spans: Vec<Span>,
    /// Continuous backups that reach nothing, and why.
    pub unusable: Vec<String>,
}

/// Where a time stands against a window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reach {
    /// Restorable, from these continuous backups.
    Restorable { continuous: Vec<String> },
    /// Not restorable: the nearest restorable times before and after it.
    Outside {
        before: Option<Timestamp>,
        after: Option<Timestamp>,
    },
}

impl Window {
    /// The earliest restorable point.
    pub fn first(&self) -> Option<Timestamp> {
        self.spans.first().map(|s| s.start)
    }

    /// The latest restorable point.
    pub fn last(&self) -> Option<Timestamp> {
        self.spans.last().map(|s| s.end)
    }

    /// The gaps between spans (exclusive ends: both ends are restorable).
    pub fn gaps(&self) -> Vec<(Timestamp, Timestamp)> {
        self.spans
            .windows(2)
            .map(|pair| (pair[0].end, pair[1].start))
            .collect()
    }

    /// Whether `t` can be restored to, and otherwise the nearest times that can.
    pub fn reach(&self, t: Timestamp) -> Reach {
        if let Some(span) = self.spans.iter().find(|s| s.start <= t && t <= s.end) {
            return Reach::Restorable {
                continuous: span.continuous.clone(),
            };
        }
        Reach::Outside {
            before: self.spans.iter().rev().find(|s| s.end < t).map(|s| s.end),
            after: self.spans.iter().find(|s| s.start > t).map(|s| s.start),
        }
    }
}

fn labels(backup: &Backup) -> BTreeMap<String, String> {
    backup.metadata.labels.clone().unwrap_or_default()
}

/// The backup's `backup-type` label.
pub fn backup_type(backup: &Backup) -> String {
    labels(backup)
        .get(label::BACKUP_TYPE)
        .cloned()
        .unwrap_or_default()
}

/// KubeBlocks' `GetStartTime`: the time range's start, else the start time.
pub fn start_time(backup: &Backup) -> Option<Timestamp> {
    let status = backup.status.as_ref()?;
    status
        .time_range
        .as_ref()
        .and_then(|r| r.start.as_ref())
        .or(status.start_timestamp.as_ref())
        .map(|t| t.0)
        .filter(|t| *t != Timestamp::UNIX_EPOCH)
}

/// KubeBlocks' `GetEndTime`: the time range's end, else the completion time.
pub fn end_time(backup: &Backup) -> Option<Timestamp> {
    let status = backup.status.as_ref()?;
    status
        .time_range
        .as_ref()
        .and_then(|r| r.end.as_ref())
        .or(status.completion_timestamp.as_ref())
        .map(|t| t.0)
        .filter(|t| *t != Timestamp::UNIX_EPOCH)
}

/// The labels a base of `continuous` must carry (§4.1): its `cluster-uid`, `instance` and
/// `component-name` labels where it has them, else its policy.
pub fn base_selector(continuous: &Backup) -> Vec<(&'static str, String)> {
    let have = labels(continuous);
    let mut wanted: Vec<(&'static str, String)> =
        [label::CLUSTER_UID, label::INSTANCE, label::COMPONENT_NAME]
            .into_iter()
            .filter_map(|key| {
                have.get(key)
                    .filter(|v| !v.is_empty())
                    .map(|v| (key, v.clone()))
            })
            .collect();
    if wanted.is_empty() {
        wanted.push((
            label::BACKUP_POLICY,
            continuous.spec.backup_policy_name.clone(),
        ));
    }
    wanted
}

/// Whether `backup` may be the base of a continuous backup with `selector` (any end time):
/// Completed, Full or Incremental, in the same namespace, labelled as the selector says.
pub fn is_base_candidate(
    continuous: &Backup,
    selector: &[(&str, String)],
    backup: &Backup,
) -> bool {
    let have = labels(backup);
    matches!(backup_type(backup).as_str(), "Full" | "Incremental")
        && backup.status.as_ref().and_then(|s| s.phase) == Some(BackupPhase::Completed)
        && backup.metadata.namespace == continuous.metadata.namespace
        && selector.iter().all(|(k, v)| have.get(*k) == Some(v))
}

/// The windows of every policy (and cluster) with a Continuous backup, sorted by namespace,
/// policy and cluster. `no_base` names the ActionSets whose restore needs no base
/// (`baseBackupRequired: false`).
pub fn windows(backups: &[Backup], no_base: &BTreeSet<String>) -> Vec<Window> {
    let mut groups: BTreeMap<(String, String, Option<String>), Window> = BTreeMap::new();
    for continuous in backups.iter().filter(|b| backup_type(b) == "Continuous") {
        let phase = continuous.status.as_ref().and_then(|s| s.phase);
        if !matches!(phase, Some(BackupPhase::Running | BackupPhase::Completed)) {
            continue;
        }
        let name = continuous.metadata.name.clone().unwrap_or_default();
        let namespace = continuous.metadata.namespace.clone().unwrap_or_default();
        let policy = [
            labels(continuous).get(label::BACKUP_POLICY).cloned(),
            Some(continuous.spec.backup_policy_name.clone()),
        ]
        .into_iter()
        .flatten()
        .find(|p| !p.is_empty())
        .unwrap_or_default();
        let cluster = labels(continuous).get(label::INSTANCE).cloned();
        let window = groups
            .entry((namespace.clone(), policy.clone(), cluster.clone()))
            .or_insert_with(|| Window {
                namespace,
                policy,
                cluster,
                spans: Vec::new(),
                unusable: Vec::new(),
            });
        let (Some(start), Some(end)) = (start_time(continuous), end_time(continuous)) else {
            window
                .unusable
                .push(format!("{name}: no time range recorded yet"));
            continue;
        };
        let needs_base = !continuous
            .status
            .as_ref()
            .and_then(|s| s.backup_method.as_ref())
            .and_then(|m| m.action_set_name.as_ref())
            .is_some_and(|a| no_base.contains(a));
        let selector = base_selector(continuous);
        let split = parts(continuous, start, end);
        for (part_start, part_end) in &split {
            let from = if needs_base {
                let earliest = backups
                    .iter()
                    .filter(|b| is_base_candidate(continuous, &selector, b))
                    .filter_map(end_time)
                    .filter(|e| e >= part_start && e <= part_end)
                    .min();
                match earliest {
                    Some(from) => from,
                    None => {
                        let what = if split.len() > 1 {
                            "part of its range"
                        } else {
                            "range"
                        };
                        window.unusable.push(format!(
                            "{name}: no Completed Full or Incremental backup ends within its {what} {} .. {}",
                            crate::parse::restore_time::format(*part_start),
                            crate::parse::restore_time::format(*part_end)
                        ));
                        continue;
                    }
                }
            } else {
                *part_start
            };
            window.spans.push(Span {
                start: from,
                end: *part_end,
                continuous: vec![name.clone()],
            });
        }
    }
    groups
        .into_values()
        .map(|mut window| {
            window.spans = merge(std::mem::take(&mut window.spans));
            window
        })
        .collect()
}

/// The gaps recorded in the backup's archive (`status.gaps`) inside `start ..= end`, oldest
/// first.
pub fn archive_gaps(backup: &Backup) -> Vec<(Timestamp, Timestamp)> {
    let mut gaps: Vec<(Timestamp, Timestamp)> = backup
        .status
        .as_ref()
        .and_then(|s| s.gaps.as_ref())
        .into_iter()
        .flatten()
        .map(|g| (g.start.0, g.end.0))
        .filter(|(a, b)| a < b)
        .collect();
    gaps.sort();
    gaps
}

/// The archived parts of a continuous backup's range `start ..= end`: the range cut by its
/// archive's gaps (a restore base must end inside the part of the restore time, since the
/// archive does not lead from an earlier part across a gap).
pub fn parts(backup: &Backup, start: Timestamp, end: Timestamp) -> Vec<(Timestamp, Timestamp)> {
    let mut out = Vec::new();
    let mut from = start;
    for (gap_start, gap_end) in archive_gaps(backup) {
        if gap_end <= from || gap_start >= end {
            continue;
        }
        if gap_start > from {
            out.push((from, gap_start));
        }
        from = gap_end;
    }
    if from <= end {
        out.push((from, end));
    }
    out
}

/// Sorts spans and merges those that overlap or touch.
fn merge(mut spans: Vec<Span>) -> Vec<Span> {
    spans.sort_by_key(|s| (s.start, s.end));
    let mut out: Vec<Span> = Vec::new();
    for span in spans {
        match out.last_mut() {
            Some(last) if span.start <= last.end => {
                last.end = last.end.max(span.end);
                last.continuous.extend(span.continuous);
            }
            _ => out.push(span),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn t(hhmm: &str) -> Timestamp {
        format!("2026-11-22T{hhmm}:00Z").parse().unwrap()
    }

    fn backup(name: &str, kind: &str, phase: &str, status: serde_json::Value) -> Backup {
        let mut value = json!({
            "apiVersion": "dataprotection.kubeblocks.io/v1alpha1", "kind": "Backup",
            "metadata": {"name": name, "namespace": "default", "labels": {
                "dataprotection.kubeblocks.io/backup-type": kind,
                "dataprotection.kubeblocks.io/backup-policy": "pg-policy",
                "app.kubernetes.io/instance": "mycluster"}},
            "spec": {"backupPolicyName": "pg-policy", "backupMethod": "m"},
            "status": {"phase": phase, "backupMethod": {"name": "m", "actionSetName": "as"}}
        });
        let mut extra = json!({"status": status});
        json_patch_merge(&mut value, &mut extra);
        serde_json::from_value(value).unwrap()
    }

    fn json_patch_merge(value: &mut serde_json::Value, extra: &mut serde_json::Value) {
        if let (Some(a), Some(b)) = (value.as_object_mut(), extra.as_object_mut()) {
            for (k, v) in b.iter_mut() {
                match a.get_mut(k) {
                    Some(existing) if existing.is_object() && v.is_object() => {
                        json_patch_merge(existing, v)
                    }
                    _ => {
                        a.insert(k.clone(), v.take());
                    }
                }
            }
        }
    }

    fn continuous(name: &str, start: &str, end: &str) -> Backup {
        backup(
            name,
            "Continuous",
            "Running",
            json!({"timeRange": {"start": format!("2026-11-22T{start}:00Z"),
                                 "end": format!("2026-11-22T{end}:00Z")}}),
        )
    }

    fn full(name: &str, end: &str) -> Backup {
        backup(
            name,
            "Full",
            "Completed",
            json!({"completionTimestamp": format!("2026-11-22T{end}:00Z")}),
        )
    }

    fn spans(w: &Window) -> Vec<(Timestamp, Timestamp)> {
        w.spans.iter().map(|s| (s.start, s.end)).collect()
    }

    fn only(backups: &[Backup]) -> Window {
        let all = windows(backups, &BTreeSet::new());
        assert_eq!(all.len(), 1, "{all:?}");
        all.into_iter().next().unwrap()
    }

    #[test]
    fn a_continuous_backup_is_restorable_from_its_first_base_to_its_end() {
        let w = only(&[
            full("f0", "07:00"),
            continuous("c1", "08:00", "10:00"),
            full("f1", "08:30"),
            full("f2", "09:00"),
        ]);
        assert_eq!(spans(&w), [(t("08:30"), t("10:00"))]);
        assert_eq!((w.first(), w.last()), (Some(t("08:30")), Some(t("10:00"))));
        assert!(w.gaps().is_empty());
        assert_eq!(w.cluster.as_deref(), Some("mycluster"));
        assert_eq!(w.policy, "pg-policy");
    }

    #[test]
    fn without_a_base_inside_its_range_a_continuous_backup_reaches_nothing() {
        let w = only(&[full("f0", "07:00"), continuous("c1", "08:00", "10:00")]);
        assert!(w.spans.is_empty());
        assert_eq!(w.first(), None);
        assert_eq!(
            w.unusable,
            [
                "c1: no Completed Full or Incremental backup ends within its range 2026-11-22T08:00:00Z .. 2026-11-22T10:00:00Z"
            ]
        );
        // A base after the end does not count either; one of another cluster neither.
        let mut other = full("f9", "09:00");
        other
            .metadata
            .labels
            .as_mut()
            .unwrap()
            .insert("app.kubernetes.io/instance".into(), "other".into());
        let w = only(&[
            full("f1", "10:30"),
            other,
            continuous("c1", "08:00", "10:00"),
        ]);
        assert!(w.spans.is_empty());
    }

    #[test]
    fn a_base_exactly_at_the_start_makes_the_whole_range_restorable() {
        let w = only(&[full("f1", "08:00"), continuous("c1", "08:00", "10:00")]);
        assert_eq!(spans(&w), [(t("08:00"), t("10:00"))]);
    }

    #[test]
    fn an_actionset_needing_no_base_makes_the_whole_range_restorable() {
        let all = windows(
            &[continuous("c1", "08:00", "10:00")],
            &BTreeSet::from(["as".to_string()]),
        );
        assert_eq!(spans(&all[0]), [(t("08:00"), t("10:00"))]);
    }

    #[test]
    fn overlapping_and_touching_ranges_merge_and_separate_ones_leave_a_gap() {
        let w = only(&[
            full("f1", "08:10"),
            continuous("c1", "08:00", "09:00"),
            continuous("c2", "08:30", "09:30"),
            // c2's base must end after c2 started: f1 does not count for it.
            full("f2", "08:40"),
            full("f3", "09:30"),
            continuous("c3", "09:30", "10:00"),
            full("f4", "11:00"),
            continuous("c4", "10:30", "12:00"),
        ]);
        assert_eq!(
            spans(&w),
            [(t("08:10"), t("10:00")), (t("11:00"), t("12:00"))]
        );
        assert_eq!(w.spans[0].continuous, ["c1", "c2", "c3"]);
        assert_eq!(w.gaps(), [(t("10:00"), t("11:00"))]);
    }

    #[test]
    fn reach_says_which_backup_restores_a_time_or_the_nearest_times_that_can() {
        let w = only(&[
            full("f1", "08:10"),
            continuous("c1", "08:00", "09:00"),
            full("f3", "11:00"),
            continuous("c4", "10:30", "12:00"),
        ]);
        assert_eq!(
            w.reach(t("08:10")),
            Reach::Restorable {
                continuous: vec!["c1".into()]
            }
        );
        assert_eq!(
            w.reach(t("10:00")),
            Reach::Outside {
                before: Some(t("09:00")),
                after: Some(t("11:00"))
            }
        );
        assert_eq!(
            w.reach(t("08:05")),
            Reach::Outside {
                before: None,
                after: Some(t("08:10"))
            }
        );
        assert_eq!(
            w.reach(t("12:01")),
            Reach::Outside {
                before: Some(t("12:00")),
                after: None
            }
        );
    }

    #[test]
    fn failed_continuous_backups_and_failed_bases_do_not_count() {
        let mut c1 = continuous("c1", "08:00", "10:00");
        c1.status.as_mut().unwrap().phase = Some(BackupPhase::Failed);
        assert!(windows(&[full("f1", "08:30"), c1], &BTreeSet::new()).is_empty());
        let mut f1 = full("f1", "08:30");
        f1.status.as_mut().unwrap().phase = Some(BackupPhase::Failed);
        let w = only(&[f1, continuous("c1", "08:00", "10:00")]);
        assert!(w.spans.is_empty());
    }

    #[test]
    fn policies_and_clusters_have_their_own_windows() {
        let mut other = continuous("c2", "08:00", "09:00");
        other.spec.backup_policy_name = "mysql-policy".into();
        other
            .metadata
            .labels
            .as_mut()
            .unwrap()
            .insert(label::BACKUP_POLICY.into(), "mysql-policy".into());
        let all = windows(
            &[
                full("f1", "08:30"),
                continuous("c1", "08:00", "10:00"),
                other,
            ],
            &BTreeSet::new(),
        );
        let names: Vec<&str> = all.iter().map(|w| w.policy.as_str()).collect();
        assert_eq!(names, ["mysql-policy", "pg-policy"]);
        // The base of c2 is matched by cluster labels, so f1 serves both.
        assert_eq!(spans(&all[0]), [(t("08:30"), t("09:00"))]);
    }

    fn with_gap(mut backup: Backup, from: &str, to: &str) -> Backup {
        let status = backup.status.get_or_insert_with(Default::default);
        status
            .gaps
            .get_or_insert_with(Vec::new)
            .push(crate::backup::ArchiveGap {
                start: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(t(from)),
                end: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(t(to)),
            });
        backup
    }

    #[test]
    fn a_gap_in_the_archive_splits_the_window_and_each_part_needs_its_own_base() {
        let c1 = with_gap(continuous("c1", "08:00", "10:00"), "08:50", "09:20");
        let w = only(&[full("f1", "08:10"), full("f2", "09:30"), c1.clone()]);
        assert_eq!(
            spans(&w),
            [(t("08:10"), t("08:50")), (t("09:30"), t("10:00"))]
        );
        // What lies between cannot be restored: the gap itself, and after it until a base.
        assert_eq!(w.gaps(), [(t("08:50"), t("09:30"))]);
        assert_eq!(
            w.reach(t("09:00")),
            Reach::Outside {
                before: Some(t("08:50")),
                after: Some(t("09:30"))
            }
        );
        // A base before the gap does not lead across it.
        let w = only(&[full("f1", "08:10"), c1]);
        assert_eq!(spans(&w), [(t("08:10"), t("08:50"))]);
        assert_eq!(
            w.unusable,
            [
                "c1: no Completed Full or Incremental backup ends within its part of its range 2026-11-22T09:20:00Z .. 2026-11-22T10:00:00Z"
            ]
        );
        // Needing no base, the parts are the spans.
        let c2 = with_gap(continuous("c2", "08:00", "10:00"), "08:50", "09:20");
        let all = windows(&[c2], &BTreeSet::from(["as".to_string()]));
        assert_eq!(
            spans(&all[0]),
            [(t("08:00"), t("08:50")), (t("09:20"), t("10:00"))]
        );
    }

    #[test]
    fn a_continuous_backup_without_a_time_range_is_reported() {
        let c1 = backup("c1", "Continuous", "Running", json!({}));
        let w = only(&[c1]);
        assert_eq!(w.unusable, ["c1: no time range recorded yet"]);
    }
}
