//! Retention: which snapshots `forget --keep-*` keeps, as a pure plan (docs/FORMAT.md §7.5).

use std::collections::{BTreeMap, BTreeSet};

use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use serde::Serialize;

use super::super::id::Id;
use super::super::snapshot::Snapshot;
use crate::{Error, Result};

/// What to keep. A snapshot kept by any rule is kept.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeepPolicy {
    /// The newest N.
    pub last: Option<usize>,
    /// The newest of each of the newest N hours that have snapshots.
    pub hourly: Option<usize>,
    /// Per day.
    pub daily: Option<usize>,
    /// Per ISO week.
    pub weekly: Option<usize>,
    /// Per month.
    pub monthly: Option<usize>,
    /// Per year.
    pub yearly: Option<usize>,
    /// Everything within this duration of the newest snapshot of the group.
    pub within: Option<SignedDuration>,
    /// Snapshots carrying one of these tags (`key` or `key=value`).
    pub tags: Vec<String>,
}

impl KeepPolicy {
    /// Whether no rule is set (then nothing is removed).
    pub fn is_empty(&self) -> bool {
        self == &KeepPolicy::default()
    }
}

/// How snapshots are grouped before the policy applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupBy {
    /// By host.
    pub host: bool,
    /// By paths.
    pub paths: bool,
    /// By tags.
    pub tags: bool,
}

impl Default for GroupBy {
    fn default() -> Self {
        GroupBy {
            host: true,
            paths: true,
            tags: false,
        }
    }
}

impl GroupBy {
    /// Parses `host,paths,tags` (any subset; empty = one group).
    pub fn parse(text: &str) -> Result<GroupBy> {
        let mut g = GroupBy {
            host: false,
            paths: false,
            tags: false,
        };
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part {
                "host" => g.host = true,
                "paths" | "path" => g.paths = true,
                "tags" | "tag" => g.tags = true,
                other => {
                    return Err(Error::invalid(format!(
                        "--group-by {other:?} is not known (expected host, paths, tags)"
                    )));
                }
            }
        }
        Ok(g)
    }

    fn key(&self, s: &Snapshot) -> String {
        let mut parts = Vec::new();
        if self.host {
            parts.push(format!("host={}", s.host));
        }
        if self.paths {
            parts.push(format!("paths={}", s.paths.join(",")));
        }
        if self.tags {
            let tags: Vec<String> = s.tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
            parts.push(format!("tags={}", tags.join(",")));
        }
        parts.join(" ")
    }
}

/// The decision for one snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    /// Snapshot id.
    pub id: Id,
    /// Snapshot time.
    pub time: Timestamp,
    /// Why it is kept (empty: removed).
    pub reasons: Vec<String>,
}

/// One group's plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupPlan {
    /// The group.
    pub group: String,
    /// Kept snapshots, newest first.
    pub keep: Vec<Decision>,
    /// Removed snapshots, newest first.
    pub remove: Vec<Decision>,
}

/// What `forget` will do.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ForgetPlan {
    /// Per group.
    pub groups: Vec<GroupPlan>,
}

impl ForgetPlan {
    /// Every snapshot to remove.
    pub fn removals(&self) -> Vec<Id> {
        self.groups
            .iter()
            .flat_map(|g| g.remove.iter().map(|d| d.id))
            .collect()
    }
}

fn bucket(time: Timestamp, rule: &str) -> String {
    let t = time.to_zoned(TimeZone::UTC);
    match rule {
        "hourly" => t.strftime("%Y-%m-%d %H").to_string(),
        "daily" => t.strftime("%Y-%m-%d").to_string(),
        "weekly" => {
            let week = t.date().iso_week_date();
            format!("{}-W{:02}", week.year(), week.week())
        }
        "monthly" => t.strftime("%Y-%m").to_string(),
        _ => t.strftime("%Y").to_string(),
    }
}

/// Plans `forget` by policy. Pure: same snapshots and policy, same plan.
pub fn plan_forget(snapshots: &[Snapshot], policy: &KeepPolicy, group_by: GroupBy) -> ForgetPlan {
    let mut groups: BTreeMap<String, Vec<&Snapshot>> = BTreeMap::new();
    for s in snapshots {
        groups.entry(group_by.key(s)).or_default().push(s);
    }
    let mut plan = ForgetPlan::default();
    for (group, mut members) in groups {
        members.sort_by(|a, b| b.time.cmp(&a.time).then(b.id.cmp(&a.id)));
        let mut reasons: Vec<Vec<String>> = vec![Vec::new(); members.len()];
        if policy.is_empty() {
            for r in reasons.iter_mut() {
                r.push("no policy".into());
            }
        }
        if let Some(n) = policy.last {
            for r in reasons.iter_mut().take(n) {
                r.push("last".into());
            }
        }
        for (rule, count) in [
            ("hourly", policy.hourly),
            ("daily", policy.daily),
            ("weekly", policy.weekly),
            ("monthly", policy.monthly),
            ("yearly", policy.yearly),
        ] {
            let Some(count) = count else { continue };
            let mut seen = BTreeSet::new();
            for (i, s) in members.iter().enumerate() {
                if seen.len() >= count {
                    break;
                }
                if seen.insert(bucket(s.time, rule)) {
                    reasons[i].push(rule.to_string());
                }
            }
        }
        if let (Some(within), Some(newest)) = (policy.within, members.first()) {
            let cutoff = newest.time.checked_sub(within).unwrap_or(Timestamp::MIN);
            for (i, s) in members.iter().enumerate() {
                if s.time >= cutoff {
                    reasons[i].push("within".into());
                }
            }
        }
        for (i, s) in members.iter().enumerate() {
            for tag in &policy.tags {
                let has = match tag.split_once('=') {
                    Some((k, v)) => s.tags.get(k).is_some_and(|x| x == v),
                    None => s.tags.contains_key(tag),
                };
                if has {
                    reasons[i].push(format!("tag {tag}"));
                }
            }
        }
        let mut group_plan = GroupPlan {
            group,
            keep: Vec::new(),
            remove: Vec::new(),
        };
        for (s, why) in members.iter().zip(reasons) {
            let decision = Decision {
                id: s.id,
                time: s.time,
                reasons: why,
            };
            if decision.reasons.is_empty() {
                group_plan.remove.push(decision);
            } else {
                group_plan.keep.push(decision);
            }
        }
        plan.groups.push(group_plan);
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dedup::snapshot::{Node, NodeType, SnapshotKind, Summary};

    fn snap(n: u8, time: &str, tags: &[(&str, &str)]) -> Snapshot {
        Snapshot {
            version: 1,
            id: Id([n; 32]),
            time: time.parse().expect("time"),
            end_time: time.parse().expect("time"),
            host: "h".into(),
            kind: SnapshotKind::Tree,
            paths: vec!["/data".into()],
            tags: tags
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            root: Node::new("", NodeType::Dir),
            parent: None,
            session: Id::ZERO,
            summary: Summary::default(),
            stream_compression: None,
        }
    }

    fn sample() -> Vec<Snapshot> {
        vec![
            snap(1, "2026-01-01T10:00:00Z", &[]),
            snap(2, "2026-01-01T11:00:00Z", &[]),
            snap(3, "2026-01-02T10:00:00Z", &[("keep", "yes")]),
            snap(4, "2026-01-03T09:00:00Z", &[]),
            snap(5, "2026-01-03T10:00:00Z", &[]),
            snap(6, "2026-02-15T10:00:00Z", &[]),
        ]
    }

    fn kept(plan: &ForgetPlan) -> Vec<u8> {
        let mut ids: Vec<u8> = plan
            .groups
            .iter()
            .flat_map(|g| g.keep.iter().map(|d| d.id.0[0]))
            .collect();
        ids.sort();
        ids
    }

    #[test]
    fn keep_last_keeps_the_newest() {
        let plan = plan_forget(
            &sample(),
            &KeepPolicy {
                last: Some(2),
                ..Default::default()
            },
            GroupBy::default(),
        );
        assert_eq!(kept(&plan), [5, 6]);
        assert_eq!(plan.removals().len(), 4);
    }

    #[test]
    fn keep_daily_keeps_the_newest_of_each_day() {
        let plan = plan_forget(
            &sample(),
            &KeepPolicy {
                daily: Some(3),
                ..Default::default()
            },
            GroupBy::default(),
        );
        assert_eq!(kept(&plan), [3, 5, 6]);
        let plan = plan_forget(
            &sample(),
            &KeepPolicy {
                monthly: Some(5),
                ..Default::default()
            },
            GroupBy::default(),
        );
        assert_eq!(kept(&plan), [5, 6]);
    }

    #[test]
    fn keep_within_and_tags_and_union_of_rules() {
        let policy = KeepPolicy {
            within: Some(SignedDuration::from_hours(24 * 43)),
            tags: vec!["keep=yes".into()],
            ..Default::default()
        };
        assert_eq!(
            kept(&plan_forget(&sample(), &policy, GroupBy::default())),
            [3, 5, 6]
        );
    }

    #[test]
    fn no_policy_removes_nothing() {
        let plan = plan_forget(&sample(), &KeepPolicy::default(), GroupBy::default());
        assert!(plan.removals().is_empty());
    }

    #[test]
    fn groups_are_planned_separately() {
        let mut all = sample();
        let mut other = snap(9, "2026-01-01T00:00:00Z", &[]);
        other.paths = vec!["/other".into()];
        all.push(other);
        let plan = plan_forget(
            &all,
            &KeepPolicy {
                last: Some(1),
                ..Default::default()
            },
            GroupBy::default(),
        );
        assert_eq!(kept(&plan), [6, 9]);
        let plan = plan_forget(
            &all,
            &KeepPolicy {
                last: Some(1),
                ..Default::default()
            },
            GroupBy::parse("").expect("one group"),
        );
        assert_eq!(kept(&plan), [6]);
        assert!(GroupBy::parse("color").is_err());
    }
}
