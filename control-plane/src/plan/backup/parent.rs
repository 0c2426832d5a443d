//! The parent and base of an Incremental or Differential backup (kubeblocks-semantics §2.9).
//!
//! # Incremental
//! 1. An explicit `spec.parentBackupName` (refused on a Backup created by a schedule), else the
//!    `status.parentBackupName` recorded when the backup started, else the automatic search.
//! 2. The automatic search considers the policy's backups in the same repository: incrementals
//!    of the same method and fulls of the method's `compatibleMethod`, Completed, with an end time
//!    and a usable encryption secret. The newest of each (end time, then name) is taken; the
//!    newest incremental wins when it is not older than the newest full and its base is that
//!    full, else the newest full does. Only incrementals: `illegal incremental backup`. Nothing:
//!    `failed to find a valid parent backup for backup <ns>/<name>`.
//! 3. Base: a full parent is its own base; an incremental parent's base is its `baseBackupName`.
//!
//! # Differential
//! The parent is the explicit or recorded one (it must be a full), else the newest full of the
//! `compatibleMethod`; the base is that full.
//!
//! Every failure names the backups that were considered and why each was left out.

use cairn_api::actionset::BackupType;
use cairn_api::backup::{Backup, BackupPhase};
use cairn_api::backup_policy::BackupMethod;
use cairn_api::common::EncryptionConfig;

use super::chain::{self, FULL, INCREMENTAL};
use cairn_api::well_known::label::BACKUP_SCHEDULE as SCHEDULE_LABEL;

/// What the search reads.
pub struct Query<'a, 'q> {
    /// The backup whose parent is wanted.
    pub backup: &'q Backup,
    pub backup_type: BackupType,
    /// Its method (name and `compatibleMethod`).
    pub method: &'q BackupMethod,
    pub policy: &'q str,
    pub repo: &'q str,
    /// The Backups of its namespace.
    pub backups: &'a [Backup],
    /// Whether the passphrase of a backup's encryption can be read.
    pub encryption_usable: &'q dyn Fn(&EncryptionConfig) -> bool,
}

/// The resolved links of a new backup.
#[derive(Debug, Clone, PartialEq)]
pub struct Parent<'a> {
    pub parent: &'a Backup,
    /// The base full backup's name.
    pub base: String,
    /// The parent, its incremental ancestors and the base, newest first: the paths an
    /// incremental action may read.
    pub lineage: Vec<&'a Backup>,
}

impl<'a> Parent<'a> {
    pub fn parent_name(&self) -> &'a str {
        chain::name(self.parent)
    }

    /// The encryption the child inherits (§1.2 New step 10).
    pub fn encryption(&self) -> Option<&'a EncryptionConfig> {
        self.parent
            .status
            .as_ref()
            .and_then(|s| s.encryption_config.as_ref())
    }

    /// The deduplicating repository the child inherits with the chain (its `kopiaRepoPath`).
    pub fn kopia_repo_path(&self) -> Option<&'a str> {
        self.parent
            .status
            .as_ref()
            .and_then(|s| s.kopia_repo_path.as_deref())
    }

    /// The `status.path` of every backup of the lineage.
    pub fn paths(&self) -> Vec<String> {
        self.lineage
            .iter()
            .filter_map(|b| b.status.as_ref().and_then(|s| s.path.clone()))
            .filter(|p| !p.is_empty())
            .collect()
    }
}

/// Finds the parent and base of an Incremental or Differential backup; `Ok(None)` for other
/// types.
pub fn resolve<'a>(q: &Query<'a, '_>) -> Result<Option<Parent<'a>>, String> {
    let differential = match q.backup_type {
        BackupType::Incremental => false,
        BackupType::Differential => true,
        _ => return Ok(None),
    };
    let explicit = q
        .backup
        .spec
        .parent_backup_name
        .as_deref()
        .filter(|p| !p.is_empty());
    if explicit.is_some() && from_schedule(q.backup) {
        return Err("schedule backup cannot specify parent backup".into());
    }
    let recorded = chain::parent_name(q.backup);
    let named = explicit.or(Some(recorded).filter(|r| !r.is_empty()));
    let parent = match named {
        Some(name) => named_parent(q, name, differential)?,
        None if differential => search_full(q)?,
        None => search(q)?,
    };
    let (base, lineage) = lineage(q, parent)?;
    Ok(Some(Parent {
        parent,
        base,
        lineage,
    }))
}

fn from_schedule(backup: &Backup) -> bool {
    backup
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(SCHEDULE_LABEL))
        .is_some_and(|v| !v.is_empty())
}

fn namespaced(q: &Query<'_, '_>) -> String {
    format!(
        "{}/{}",
        q.backup.metadata.namespace.as_deref().unwrap_or_default(),
        chain::name(q.backup)
    )
}

/// Why `candidate` cannot be a parent of `q.backup`, for a candidate of the wanted type.
fn unusable(q: &Query<'_, '_>, candidate: &Backup) -> Option<String> {
    if chain::name(candidate) == chain::name(q.backup) {
        return Some("it is the backup itself".into());
    }
    if chain::phase(candidate) != Some(BackupPhase::Completed) {
        let phase = chain::phase(candidate).map_or("New".into(), |p| format!("{p:?}"));
        return Some(format!("phase {phase}, not Completed"));
    }
    if chain::policy(candidate) != q.policy {
        return Some(format!("backup policy {}", chain::policy(candidate)));
    }
    if chain::repo(candidate) != q.repo {
        return Some(format!("backup repository {}", chain::repo(candidate)));
    }
    let wanted = match chain::backup_type(candidate) {
        INCREMENTAL => q.method.name.as_str(),
        FULL => q.method.compatible_method.as_deref().unwrap_or_default(),
        other => {
            let other = if other.is_empty() { "unknown" } else { other };
            return Some(format!(
                "type {other}; only full and incremental backups can be parents"
            ));
        }
    };
    if chain::method(candidate) != wanted {
        return Some(if wanted.is_empty() {
            format!(
                "method {}; method {} has no compatibleMethod",
                chain::method(candidate),
                q.method.name
            )
        } else {
            format!("method {}, not {wanted}", chain::method(candidate))
        });
    }
    if chain::end_time(candidate).is_none() {
        return Some("no end time".into());
    }
    if let Some(config) = candidate
        .status
        .as_ref()
        .and_then(|s| s.encryption_config.as_ref())
        && !(q.encryption_usable)(config)
    {
        return Some(format!(
            "its encryption secret {}/{} cannot be read",
            config.pass_phrase_secret_key_ref.name, config.pass_phrase_secret_key_ref.key
        ));
    }
    None
}

/// The backups the search looked at and why each was left out, for a failure message.
fn considered(rejected: &[(&Backup, String)]) -> String {
    if rejected.is_empty() {
        return "; no backup of the policy was considered".into();
    }
    let list: Vec<String> = rejected
        .iter()
        .map(|(b, why)| format!("{} ({why})", chain::name(b)))
        .collect();
    format!("; considered: {}", list.join(", "))
}

/// Splits the namespace's backups of the policy into usable fulls and incrementals, keeping why
/// the others were left out.
fn candidates<'a>(
    q: &Query<'a, '_>,
) -> (Vec<&'a Backup>, Vec<&'a Backup>, Vec<(&'a Backup, String)>) {
    let (mut fulls, mut incrementals, mut rejected) = (Vec::new(), Vec::new(), Vec::new());
    for candidate in q.backups {
        if chain::name(candidate) == chain::name(q.backup) || chain::policy(candidate) != q.policy {
            continue;
        }
        match unusable(q, candidate) {
            Some(why) => rejected.push((candidate, why)),
            None if chain::backup_type(candidate) == FULL => fulls.push(candidate),
            None => incrementals.push(candidate),
        }
    }
    (fulls, incrementals, rejected)
}

fn newest<'a>(list: &[&'a Backup]) -> Option<&'a Backup> {
    list.iter()
        .copied()
        .max_by(|a, b| chain::sort_key(a).cmp(&chain::sort_key(b)))
}

/// The automatic search of an Incremental backup's parent (§2.9).
fn search<'a>(q: &Query<'a, '_>) -> Result<&'a Backup, String> {
    let (fulls, incrementals, rejected) = candidates(q);
    match (newest(&fulls), newest(&incrementals)) {
        (Some(full), Some(incremental)) => {
            if chain::sort_key(incremental) >= chain::sort_key(full)
                && chain::base_name(incremental) == chain::name(full)
            {
                Ok(incremental)
            } else {
                Ok(full)
            }
        }
        (Some(full), None) => Ok(full),
        (None, Some(_)) => {
            let mut all = rejected;
            all.extend(incrementals.iter().map(|b| {
                (
                    *b,
                    "incremental, but no full backup to base it on".to_string(),
                )
            }));
            Err(format!("illegal incremental backup{}", considered(&all)))
        }
        (None, None) => Err(format!(
            "failed to find a valid parent backup for backup {}{}",
            namespaced(q),
            considered(&rejected)
        )),
    }
}

/// The automatic parent of a Differential backup: the newest full of the compatible method.
fn search_full<'a>(q: &Query<'a, '_>) -> Result<&'a Backup, String> {
    let (fulls, incrementals, mut rejected) = candidates(q);
    rejected.extend(incrementals.iter().map(|b| {
        (
            *b,
            "incremental; a differential's parent is a full".to_string(),
        )
    }));
    newest(&fulls).ok_or_else(|| {
        format!(
            "failed to find a valid parent backup for backup {}{}",
            namespaced(q),
            considered(&rejected)
        )
    })
}

/// A parent named by the spec or the status: it must exist and be usable.
fn named_parent<'a>(
    q: &Query<'a, '_>,
    name: &str,
    differential: bool,
) -> Result<&'a Backup, String> {
    let parent = q
        .backups
        .iter()
        .find(|b| chain::name(b) == name)
        .ok_or_else(|| {
            format!(
                "failed to get parent backup {}/{name} of backup {}: not found",
                q.backup.metadata.namespace.as_deref().unwrap_or_default(),
                namespaced(q)
            )
        })?;
    if let Some(why) = unusable(q, parent) {
        return Err(format!(
            "parent backup {name} of backup {} cannot be used: {why}",
            namespaced(q)
        ));
    }
    if differential && chain::backup_type(parent) != FULL {
        return Err(format!(
            "parent backup {name} of differential backup {} is {}, but a differential's parent must be a full backup",
            namespaced(q),
            chain::backup_type(parent)
        ));
    }
    Ok(parent)
}

/// The base of `parent` and the backups from the parent down to it (newest first).
fn lineage<'a>(q: &Query<'a, '_>, parent: &'a Backup) -> Result<(String, Vec<&'a Backup>), String> {
    match chain::backup_type(parent) {
        FULL => Ok((chain::name(parent).to_string(), vec![parent])),
        INCREMENTAL => {
            let base = chain::base_name(parent);
            if base.is_empty() {
                return Err(format!(
                    "parent backup {} of backup {} has no status.baseBackupName",
                    chain::name(parent),
                    namespaced(q)
                ));
            }
            let links = chain::walk(parent, q.backups)?;
            let mut lineage = vec![parent];
            lineage.extend(links.ancestors.iter().rev().copied());
            lineage.push(links.base);
            Ok((base.to_string(), lineage))
        }
        other => Err(format!(
            "parent backup type is {other}, but only full and incremental backup are supported"
        )),
    }
}

#[cfg(test)]
#[path = "parent_tests.rs"]
mod tests;
