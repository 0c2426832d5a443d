//! `cairnctl restore create --to-time T`: T is checked against the recoverability window before
//! anything is created (`cairn_api::window`); outside it, the error says the nearest times that
//! can be restored and which continuous backup restores a time another one cannot.

use std::collections::BTreeSet;

use anyhow::bail;
use cairn_api::backup::Backup;
use cairn_api::parse::restore_time::format;
use cairn_api::window::{self, Reach, Window};
use jiff::Timestamp;

fn same_window(w: &Window, backup: &Backup) -> bool {
    let labels = backup.metadata.labels.clone().unwrap_or_default();
    let policy = labels
        .get(cairn_api::well_known::label::BACKUP_POLICY)
        .filter(|p| !p.is_empty())
        .cloned()
        .unwrap_or_else(|| backup.spec.backup_policy_name.clone());
    w.namespace == backup.metadata.namespace.clone().unwrap_or_default()
        && w.policy == policy
        && w.cluster == labels.get(cairn_api::well_known::label::INSTANCE).cloned()
}

fn spans_text(w: &Window) -> String {
    if w.spans.is_empty() {
        return "nothing".into();
    }
    w.spans
        .iter()
        .map(|s| format!("{} .. {}", format(s.start), format(s.end)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Ok when `backup` (a Continuous backup) can be restored to `at`; otherwise why not, with the
/// nearest restorable times. `backups` are the Backups of its namespace.
pub fn check(
    backup: &Backup,
    backups: &[Backup],
    no_base: &BTreeSet<String>,
    at: Timestamp,
) -> anyhow::Result<()> {
    let name = backup.metadata.name.clone().unwrap_or_default();
    let kind = window::backup_type(backup);
    if kind != "Continuous" {
        bail!(
            "Backup {name} is a {} backup: --to-time restores a Continuous backup to a point in time",
            if kind.is_empty() {
                "not yet typed"
            } else {
                &kind
            }
        );
    }
    // The span this backup alone reaches (the other continuous backups left out).
    let alone: Vec<Backup> = backups
        .iter()
        .filter(|b| {
            window::backup_type(b) != "Continuous" || b.metadata.name.as_deref() == Some(&name)
        })
        .cloned()
        .chain(std::iter::once(backup.clone()).filter(|_| {
            !backups
                .iter()
                .any(|b| b.metadata.name == backup.metadata.name)
        }))
        .collect();
    let own = window::windows(&alone, no_base)
        .into_iter()
        .find(|w| same_window(w, backup));
    if let Some(own) = &own
        && matches!(own.reach(at), Reach::Restorable { .. })
    {
        return Ok(());
    }
    let all = window::windows(backups, no_base);
    let policy = all.iter().find(|w| same_window(w, backup));
    let t = format(at);
    if let Some(policy) = policy {
        match policy.reach(at) {
            Reach::Restorable { continuous } => {
                let others: Vec<&String> = continuous.iter().filter(|c| **c != name).collect();
                bail!(
                    "{t} cannot be restored from continuous backup {name} (it reaches {}), but it can from {}: use --backup {}",
                    own.as_ref()
                        .map(spans_text)
                        .unwrap_or_else(|| "nothing".into()),
                    others
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                    others.first().map(|s| s.as_str()).unwrap_or_default()
                );
            }
            Reach::Outside { before, after } => {
                let nearest = match (before, after) {
                    (Some(b), Some(a)) => {
                        format!(
                            "the nearest restorable times are {} and {}",
                            format(b),
                            format(a)
                        )
                    }
                    (Some(b), None) => format!("the latest restorable time is {}", format(b)),
                    (None, Some(a)) => format!("the earliest restorable time is {}", format(a)),
                    (None, None) => "nothing can be restored yet".into(),
                };
                let mut message = format!(
                    "{t} is outside the recoverability window of backup policy {}: {nearest} (window: {})",
                    policy.policy,
                    spans_text(policy)
                );
                for why in &policy.unusable {
                    message.push_str(&format!("; {why}"));
                }
                bail!(message);
            }
        }
    }
    bail!("{t} cannot be restored: continuous backup {name} reaches nothing")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::backup::windows::tests::backups;

    fn at(hhmm: &str) -> Timestamp {
        format!("2026-11-22T{hhmm}:00Z").parse().expect("time")
    }

    fn check_of(name: &str, hhmm: &str) -> Result<(), String> {
        let all = backups();
        let backup = all
            .iter()
            .find(|b| b.metadata.name.as_deref() == Some(name))
            .expect("backup");
        check(backup, &all, &BTreeSet::new(), at(hhmm)).map_err(|e| e.to_string())
    }

    #[test]
    fn a_time_in_the_backups_span_passes() {
        assert_eq!(check_of("c1", "08:45"), Ok(()));
        assert_eq!(check_of("c1", "08:30"), Ok(()));
        assert_eq!(check_of("c2", "11:00"), Ok(()));
    }

    #[test]
    fn a_time_in_a_gap_says_the_nearest_restorable_times() {
        assert_eq!(
            check_of("c1", "09:15"),
            Err("2026-11-22T09:15:00Z is outside the recoverability window of backup policy pg-policy: the nearest restorable times are 2026-11-22T09:00:00Z and 2026-11-22T10:00:00Z (window: 2026-11-22T08:30:00Z .. 2026-11-22T09:00:00Z, 2026-11-22T10:00:00Z .. 2026-11-22T11:00:00Z)".into())
        );
        assert!(
            !check_of("c1", "08:10")
                .unwrap_err()
                .contains("the nearest restorable times are")
        );
        assert!(
            check_of("c1", "08:10")
                .unwrap_err()
                .contains("the earliest restorable time is 2026-11-22T08:30:00Z")
        );
        assert!(
            check_of("c2", "12:00")
                .unwrap_err()
                .contains("the latest restorable time is 2026-11-22T11:00:00Z")
        );
    }

    #[test]
    fn a_time_another_continuous_backup_reaches_names_it() {
        assert_eq!(
            check_of("c1", "10:30"),
            Err("2026-11-22T10:30:00Z cannot be restored from continuous backup c1 (it reaches 2026-11-22T08:30:00Z .. 2026-11-22T09:00:00Z), but it can from c2: use --backup c2".into())
        );
    }

    #[test]
    fn only_continuous_backups_take_a_time() {
        assert_eq!(
            check_of("f1", "08:45"),
            Err("Backup f1 is a Full backup: --to-time restores a Continuous backup to a point in time".into())
        );
    }
}
