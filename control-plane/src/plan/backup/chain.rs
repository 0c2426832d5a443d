//! Backup chains: what kind of backup an object is, when it ends, and whether a parent may be
//! linked to its child (kubeblocks-semantics §2.9, §4.1 "Incremental"). Shared by the backup
//! planner (an explicit or recorded parent) and the restore planner (the chain replayed).
//!
//! A backup's type is its `dataprotection.kubeblocks.io/backup-type` label, which Cairn (like
//! KubeBlocks) writes from the ActionSet's `backupType` when the backup starts.

use std::collections::BTreeSet;

use cairn_api::backup::{Backup, BackupPhase};
use jiff::Timestamp;

use cairn_api::well_known::label::{
    BACKUP_POLICY as LABEL_BACKUP_POLICY, BACKUP_REPO as LABEL_BACKUP_REPO,
    BACKUP_TYPE as LABEL_BACKUP_TYPE,
};

/// The `backup-type` label values of a chain.
pub const FULL: &str = "Full";
pub const INCREMENTAL: &str = "Incremental";
pub const DIFFERENTIAL: &str = "Differential";

/// A chain never has more links than this (a guard against a corrupted status; far above any
/// real chain: a daily incremental for ten years).
pub const MAX_LINKS: usize = 4096;

pub fn name(backup: &Backup) -> &str {
    backup.metadata.name.as_deref().unwrap_or_default()
}

fn label<'b>(backup: &'b Backup, key: &str) -> &'b str {
    backup
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(key))
        .map(String::as_str)
        .unwrap_or_default()
}

/// The backup's type (`Full`, `Incremental`...), empty when not labelled yet.
pub fn backup_type(backup: &Backup) -> &str {
    label(backup, LABEL_BACKUP_TYPE)
}

/// The policy the backup belongs to (its label, else its spec).
pub fn policy(backup: &Backup) -> &str {
    match label(backup, LABEL_BACKUP_POLICY) {
        "" => &backup.spec.backup_policy_name,
        policy => policy,
    }
}

/// The repository holding the backup (its status, else its label).
pub fn repo(backup: &Backup) -> &str {
    backup
        .status
        .as_ref()
        .and_then(|s| s.backup_repo_name.as_deref())
        .filter(|r| !r.is_empty())
        .unwrap_or_else(|| label(backup, LABEL_BACKUP_REPO))
}

/// The method the backup ran (its status copy, else its spec).
pub fn method(backup: &Backup) -> &str {
    backup
        .status
        .as_ref()
        .and_then(|s| s.backup_method.as_ref())
        .map(|m| m.name.as_str())
        .unwrap_or(&backup.spec.backup_method)
}

/// The full method an incremental backup's method is compatible with.
pub fn compatible_method(backup: &Backup) -> &str {
    backup
        .status
        .as_ref()
        .and_then(|s| s.backup_method.as_ref())
        .and_then(|m| m.compatible_method.as_deref())
        .unwrap_or_default()
}

pub fn phase(backup: &Backup) -> Option<BackupPhase> {
    backup.status.as_ref().and_then(|s| s.phase)
}

pub fn parent_name(backup: &Backup) -> &str {
    backup
        .status
        .as_ref()
        .and_then(|s| s.parent_backup_name.as_deref())
        .unwrap_or_default()
}

pub fn base_name(backup: &Backup) -> &str {
    backup
        .status
        .as_ref()
        .and_then(|s| s.base_backup_name.as_deref())
        .unwrap_or_default()
}

/// KubeBlocks' `GetEndTime`: the end of the time range, else the completion time.
pub fn end_time(backup: &Backup) -> Option<Timestamp> {
    let status = backup.status.as_ref()?;
    status
        .time_range
        .as_ref()
        .and_then(|r| r.end.as_ref())
        .or(status.completion_timestamp.as_ref())
        .map(|t| t.0)
}

/// KubeBlocks' `GetStartTime`: the start of the time range, else the start time.
pub fn start_time(backup: &Backup) -> Option<Timestamp> {
    let status = backup.status.as_ref()?;
    status
        .time_range
        .as_ref()
        .and_then(|r| r.start.as_ref())
        .or(status.start_timestamp.as_ref())
        .map(|t| t.0)
}

/// The order of "newer": end time, then name.
pub fn sort_key(backup: &Backup) -> (Option<Timestamp>, &str) {
    (end_time(backup), name(backup))
}

fn phase_text(backup: &Backup) -> String {
    match phase(backup) {
        Some(phase) => format!("{phase:?}"),
        None => "New".into(),
    }
}

/// Why `parent` cannot be the parent of `child` (§4.1): `None` when the link holds. The child's
/// method, compatible method and base are read from its status.
pub fn link_problem(child: &Backup, parent: &Backup) -> Option<String> {
    let (c, p) = (name(child), name(parent));
    let link = format!("backup {c} -> parent {p}");
    if phase(parent) != Some(BackupPhase::Completed) {
        return Some(format!(
            "{link}: the parent is {}, not Completed",
            phase_text(parent)
        ));
    }
    if policy(parent) != policy(child) {
        return Some(format!(
            "{link}: the parent belongs to backup policy {:?}, the child to {:?}",
            policy(parent),
            policy(child)
        ));
    }
    if repo(parent) != repo(child) {
        return Some(format!(
            "{link}: the parent is in backup repository {:?}, the child in {:?}",
            repo(parent),
            repo(child)
        ));
    }
    match backup_type(parent) {
        INCREMENTAL => {
            if method(parent) != method(child) {
                return Some(format!(
                    "{link}: the incremental parent used method {:?}, the child {:?}",
                    method(parent),
                    method(child)
                ));
            }
            if base_name(parent) != base_name(child) {
                return Some(format!(
                    "{link}: the parent's base is {:?}, the child's {:?}",
                    base_name(parent),
                    base_name(child)
                ));
            }
        }
        FULL => {
            if method(parent) != compatible_method(child) {
                return Some(format!(
                    "{link}: the full parent used method {:?}, but the child's compatibleMethod is {:?}",
                    method(parent),
                    compatible_method(child)
                ));
            }
            if p != base_name(child) {
                return Some(format!(
                    "{link}: the full parent is not the child's base {:?}",
                    base_name(child)
                ));
            }
        }
        other => {
            return Some(format!(
                "{link}: parent backup type is {other}, but only full and incremental backup are supported"
            ));
        }
    }
    if end_time(parent).is_none() {
        return Some(format!("{link}: the parent has no end time"));
    }
    if sort_key(parent) >= sort_key(child) && end_time(child).is_some() {
        return Some(format!("{link}: the parent does not end before the child"));
    }
    None
}

/// The links of a chain, oldest first: the base full, the intermediate incrementals, and the
/// backup itself.
#[derive(Debug, Clone, PartialEq)]
pub struct Links<'a> {
    /// The base full backup.
    pub base: &'a Backup,
    /// Incrementals between the base and the backup, oldest first.
    pub ancestors: Vec<&'a Backup>,
}

/// Walks `status.parentBackupName` from `backup` down to its base full, validating every link
/// (§4.1) and refusing a cycle or a missing link, with a message naming the broken link.
pub fn walk<'a>(backup: &'a Backup, backups: &'a [Backup]) -> Result<Links<'a>, String> {
    let mut seen = BTreeSet::from([name(backup)]);
    let mut child = backup;
    let mut ancestors = Vec::new();
    loop {
        let parent_name = parent_name(child);
        if parent_name.is_empty() {
            return Err(format!(
                "backup {} of the chain of {} has no status.parentBackupName",
                name(child),
                name(backup)
            ));
        }
        if !seen.insert(parent_name) {
            return Err(format!(
                "backup {} -> parent {parent_name}: the chain of {} is a cycle",
                name(child),
                name(backup)
            ));
        }
        if seen.len() > MAX_LINKS {
            return Err(format!(
                "the chain of {} has more than {MAX_LINKS} links",
                name(backup)
            ));
        }
        let parent = backups
            .iter()
            .find(|b| name(b) == parent_name)
            .ok_or_else(|| {
                format!(
                    "backup {} -> parent {parent_name}: the parent backup is not found",
                    name(child)
                )
            })?;
        if let Some(problem) = link_problem(child, parent) {
            return Err(problem);
        }
        if backup_type(parent) == FULL {
            ancestors.reverse();
            return Ok(Links {
                base: parent,
                ancestors,
            });
        }
        ancestors.push(parent);
        child = parent;
    }
}

/// Backups of a chain for the planners' tests.
#[cfg(test)]
pub mod testing {
    use cairn_api::backup::Backup;
    use serde_json::json;

    /// A Completed backup of policy `pg-policy` in `repo1`, of `kind` and `method` (an
    /// incremental's compatible method is `compatible`), ending at minute `end` of 09:00 (None:
    /// no end time), stored at `path`.
    pub fn completed(
        name: &str,
        kind: &str,
        method: &str,
        compatible: &str,
        end: Option<u32>,
        path: &str,
    ) -> Backup {
        let compatible = if kind == "Incremental" {
            compatible
        } else {
            ""
        };
        let mut status = json!({
            "phase": "Completed", "backupRepoName": "repo1", "path": path,
            "backupMethod": {"name": method, "compatibleMethod": compatible}
        });
        if let Some(end) = end {
            status["completionTimestamp"] = json!(format!("2026-11-22T09:{end:02}:00Z"));
        }
        serde_json::from_value(json!({
            "apiVersion": "dataprotection.kubeblocks.io/v1alpha1", "kind": "Backup",
            "metadata": {"name": name, "namespace": "default", "labels": {
                "dataprotection.kubeblocks.io/backup-type": kind,
                "dataprotection.kubeblocks.io/backup-policy": "pg-policy",
                "dataprotection.kubeblocks.io/backup-repo-name": "repo1"}},
            "spec": {"backupPolicyName": "pg-policy", "backupMethod": method},
            "status": status
        }))
        .unwrap()
    }

    /// `backup` with `extra` merged into it (JSON merge patch).
    pub fn with(backup: Backup, extra: serde_json::Value) -> Backup {
        let mut value = serde_json::to_value(&backup).unwrap();
        json_patch::merge(&mut value, &extra);
        serde_json::from_value(value).unwrap()
    }
}
