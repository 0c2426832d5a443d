//! The backup sets a Restore replays, in order (ARCHITECTURE.md §K4.1, §K4.5): a Full,
//! Selective or Incremental backup is one set; a Differential backup is its parent's set, then
//! its own; a Continuous backup restored to `spec.restoreTime` is its base's set (an Incremental
//! base expanded as its chain), then the continuous set, or the continuous set alone when its
//! ActionSet says `baseBackupRequired: false` or skips the base
//! (`skip-base-backup-restore-in-pitr`). Every set is a [`Request`]: its backup, ActionSet,
//! paths, repository and key.

use cairn_api::actionset::{ActionSet, BackupType};
use cairn_api::backup::{Backup, BackupPhase};
use cairn_api::parse::restore_time;
use cairn_api::well_known;
use cairn_api::window;
use jiff::Timestamp;

use super::Observed;
use super::request::{self, Problem, Request, parent, recorded_target};
use crate::plan::action::access::{self, AccessProblem};
use crate::plan::backup::chain::{self, INCREMENTAL, Links, name};

/// The sets of one Restore, in the order they are restored.
#[derive(Debug, Clone)]
pub struct Sets<'a> {
    /// Oldest first; the last is the Restore's own backup.
    pub all: Vec<Request<'a>>,
    /// The base a point-in-time restore leaves to the continuous ActionSet (event
    /// `SkipBaseBackupRestoreInPitr`).
    pub skipped_base: Option<String>,
}

impl<'a> Sets<'a> {
    /// The Restore's own backup.
    pub fn source(&self) -> &Request<'a> {
        // `resolve` never returns an empty list.
        &self.all[self.all.len() - 1]
    }

    /// The sets that run prepareData (their ActionSet has `restore.prepareData`, or they restore
    /// volume snapshots into the claims), in order.
    pub fn prepare_data(&self) -> impl Iterator<Item = &Request<'a>> {
        self.all
            .iter()
            .filter(|s| s.spec.prepare_data.is_some() || s.is_snapshot())
    }

    /// The sets that run postReady steps, in order.
    pub fn post_ready(&self) -> impl Iterator<Item = &Request<'a>> {
        self.all
            .iter()
            .filter(|s| s.spec.post_ready.as_ref().is_some_and(|p| !p.is_empty()))
    }

    /// `base -> continuous` or the one backup: what the restore replays, for messages.
    pub fn describe(&self) -> String {
        self.all
            .iter()
            .map(|s| s.backup_name.as_str())
            .collect::<Vec<_>>()
            .join(" -> ")
    }
}

/// Resolves the Restore's backup (as [`request::resolve`]) and the sets before it.
pub fn resolve(o: &Observed) -> Result<Sets<'_>, Problem> {
    let source = request::resolve(o)?;
    match source.actionset.spec.backup_type {
        BackupType::Continuous => continuous(o, source),
        BackupType::Differential => differential(o, source),
        _ => Ok(Sets {
            all: vec![source],
            skipped_base: None,
        }),
    }
}

/// Differential: the parent's set, then the differential's (§4.1).
fn differential<'a>(o: &'a Observed, source: Request<'a>) -> Result<Sets<'a>, Problem> {
    let backup = source.backup;
    let parent_name = [
        chain::parent_name(backup),
        backup.spec.parent_backup_name.as_deref().unwrap_or_default(),
    ]
    .into_iter()
    .find(|n| !n.is_empty())
    .ok_or_else(|| {
        Problem::invalid(format!(
            "differential backup \"{}\" names no parent backup (status.parentBackupName and spec.parentBackupName are empty)",
            source.backup_name
        ))
    })?;
    let parent = find(o, parent_name).ok_or_else(|| {
        Problem::invalid(format!(
            "backups.dataprotection.kubeblocks.io \"{parent_name}\" not found: it is the parent of differential backup \"{}\"",
            source.backup_name
        ))
    })?;
    let parent_set = set_of(
        o,
        parent,
        &source,
        None,
        &format!(
            "the parent of differential backup \"{}\"",
            source.backup_name
        ),
    )?;
    Ok(Sets {
        all: vec![parent_set, source],
        skipped_base: None,
    })
}

/// Continuous: `restoreTime` inside the backup's window, then its base (§4.1).
fn continuous<'a>(o: &'a Observed, mut source: Request<'a>) -> Result<Sets<'a>, Problem> {
    let backup = source.backup;
    let backup_name = source.backup_name.clone();
    let start = chain::start_time(backup).filter(|t| *t != Timestamp::UNIX_EPOCH);
    let end = chain::end_time(backup).filter(|t| *t != Timestamp::UNIX_EPOCH);
    let (Some(start), Some(end)) = (start, end) else {
        return Err(Problem::invalid(format!(
            "startTimeStamp or completeTimeStamp of backup \"{backup_name}\" is empty: its status.timeRange is {}",
            window_text(start, end)
        )));
    };
    let window = window_text(Some(start), Some(end));
    let Some(at) = source.restore_time else {
        return Err(Problem::invalid(format!(
            "spec.restoreTime is required to restore continuous backup \"{backup_name}\"; it can restore to a time within {window}"
        )));
    };
    if at < start || at > end {
        return Err(Problem::invalid(format!(
            "restore time out of the range for backup \"{backup_name}\": {} is not within its window {window}",
            restore_time::format(at)
        )));
    }
    // A time inside a gap of the archive cannot be reached (ARCHITECTURE.md §K2.9 "Gaps"); a
    // base must end in the archived part of the restore time (the archive does not lead from
    // an earlier part across a gap).
    if let Some((from, to)) = window::archive_gaps(backup)
        .into_iter()
        .find(|(from, to)| *from < at && at < *to)
    {
        return Err(Problem::invalid(format!(
            "restore time {} falls in a gap of the archive of backup \"{backup_name}\": nothing from {} to {} was archived; it can restore up to {} and from {} (its window {window})",
            restore_time::format(at),
            restore_time::format(from),
            restore_time::format(to),
            restore_time::format(from),
            restore_time::format(to),
        )));
    }
    let part_start = window::parts(backup, start, end)
        .into_iter()
        .filter(|(from, _)| *from <= at)
        .map(|(from, _)| from)
        .max()
        .unwrap_or(start);
    let restore_spec = &source.spec;
    if restore_spec.base_backup_required == Some(false) {
        return Ok(Sets {
            all: vec![source],
            skipped_base: None,
        });
    }
    let since = if part_start == start {
        "the continuous backup's start"
    } else {
        "the end of the gap in its archive before the restore time,"
    };
    let base = base_backup(o, backup, at, (part_start, since))?;
    let skip = source
        .actionset
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(well_known::annotation::SKIP_BASE_BACKUP_RESTORE_IN_PITR))
        .is_some_and(|v| v == "true");
    let base_name = name(base).to_string();
    let why = format!("the base of continuous backup \"{backup_name}\"");
    source.chain = Some(Links {
        base,
        ancestors: Vec::new(),
    });
    if chain::backup_type(base) == INCREMENTAL {
        if skip {
            return Err(Problem::invalid(format!(
                "unify incremental and continuous restore job is not supported: the base of continuous backup \"{backup_name}\" is incremental backup \"{base_name}\" and ActionSet {} has {}=true",
                name_of(source.actionset),
                well_known::annotation::SKIP_BASE_BACKUP_RESTORE_IN_PITR
            )));
        }
        let links = chain::walk(base, &o.backups).map_err(|problem| {
            Problem::invalid(format!(
                "the chain of incremental backup \"{base_name}\", {why}, is broken: {problem}"
            ))
        })?;
        let base_set = set_of(o, base, &source, Some(links), &why)?;
        return Ok(Sets {
            all: vec![base_set, source],
            skipped_base: None,
        });
    }
    if skip {
        return Ok(Sets {
            all: vec![source],
            skipped_base: Some(base_name),
        });
    }
    let base_set = set_of(o, base, &source, None, &why)?;
    Ok(Sets {
        all: vec![base_set, source],
        skipped_base: None,
    })
}

/// The newest Completed Full or Incremental backup of the continuous backup's cluster (its
/// `cluster-uid`, `instance` and `component-name` labels; its policy when it has none of them)
/// that ended at or before `at` and not before `start`: the continuous backup's start, or the end
/// of the last gap of its archive before `at`.
fn base_backup<'a>(
    o: &'a Observed,
    continuous: &Backup,
    at: Timestamp,
    (start, since): (Timestamp, &str),
) -> Result<&'a Backup, Problem> {
    let wanted = window::base_selector(continuous);
    let mut candidates: Vec<&Backup> = o
        .backups
        .iter()
        .filter(|b| window::is_base_candidate(continuous, &wanted, b))
        .collect();
    candidates.sort_by(|a, b| chain::sort_key(b).cmp(&chain::sort_key(a)));
    let chosen = candidates
        .iter()
        .copied()
        .find(|b| chain::end_time(b).is_some_and(|end| end <= at && end >= start));
    chosen.ok_or_else(|| {
        let considered = if candidates.is_empty() {
            "no Completed Full or Incremental backup matches".to_string()
        } else {
            let list: Vec<String> = candidates
                .iter()
                .map(|b| {
                    let end = chain::end_time(b)
                        .map(restore_time::format)
                        .unwrap_or_else(|| "no end time".into());
                    format!("{} ({}, ended {end})", name(b), chain::backup_type(b))
                })
                .collect();
            format!("considered {}", list.join(", "))
        };
        let selector: Vec<String> = wanted.iter().map(|(k, v)| format!("{k}={v}")).collect();
        Problem::invalid(format!(
            "can not found latest full or incremental backup based on backupPolicy \"{}\" and specified restoreTime \"{}\": a base must be Completed, labelled {}, and end between {since} {} and the restore time; {considered}",
            continuous.spec.backup_policy_name,
            restore_time::format(at),
            selector.join(","),
            restore_time::format(start),
        ))
    })
}

/// The set of `backup`, restored before `source` (`why` says which role it has, for messages).
fn set_of<'a>(
    o: &'a Observed,
    backup: &'a Backup,
    source: &Request<'a>,
    chain: Option<Links<'a>>,
    why: &str,
) -> Result<Request<'a>, Problem> {
    let backup_name = name(backup).to_string();
    let status = backup.status.clone().unwrap_or_default();
    if status.phase != Some(BackupPhase::Completed) {
        return Err(Problem::invalid(format!(
            "phase of backup \"{backup_name}\" ({why}) is not completed"
        )));
    }
    let method = status.backup_method.clone().ok_or_else(|| {
        Problem::invalid(format!(
            "status.backupMethod of backup \"{backup_name}\" ({why}) is empty"
        ))
    })?;
    // A volume snapshot backup (a base, say) restores from its VolumeSnapshots: no ActionSet,
    // path or repository needed.
    let snapshot = method.snapshot_volumes == Some(true);
    let actionset_name = method.action_set_name.clone().unwrap_or_default();
    let actionset = o
        .actionsets
        .iter()
        .chain(o.actionset.iter())
        .find(|a| a.metadata.name.as_deref() == Some(actionset_name.as_str()))
        .or_else(|| (snapshot && actionset_name.is_empty()).then_some(&*request::SNAPSHOT_ONLY))
        .ok_or_else(|| {
            Problem::invalid(format!(
                "actionsets.dataprotection.kubeblocks.io \"{actionset_name}\" not found: it is the ActionSet of backup \"{backup_name}\" ({why})"
            ))
        })?;
    let backup_path = match status.path.clone().filter(|p| !p.is_empty()) {
        Some(path) => path,
        None if snapshot => String::new(),
        None => {
            return Err(Problem::invalid(format!(
                "backup \"{backup_name}\" ({why}) has no status.path"
            )));
        }
    };
    let target = recorded_target(
        backup,
        &backup_name,
        o.restore.spec.backup.source_target_name.as_deref(),
    )
    .map_err(Problem::invalid)?;
    let repo_name = chain::repo(backup).to_string();
    let access = if repo_name.is_empty() && snapshot {
        None
    } else if let Some(same) = source.access.filter(|a| a.repo_name == repo_name) {
        Some(same)
    } else {
        let repo = o
            .repos
            .iter()
            .find(|r| r.metadata.name.as_deref() == Some(repo_name.as_str()))
            .ok_or_else(|| {
                Problem::repo(format!(
                    "backup repo {repo_name} not found: it holds backup \"{backup_name}\" ({why})"
                ))
            })?;
        let rendered = o.repo_accesses.iter().find(|a| a.repo_name == repo_name);
        access::resolve(repo, rendered, &o.claims)
            .map_err(|problem| match problem {
                AccessProblem::NoClaim { repo, claim } => Problem::WaitForRepoClaim { repo, claim },
                other => Problem::Wait {
                    reason: well_known::conditions::restore::REASON_WAIT_FOR_REPO,
                    message: format!("{other} (it holds backup \"{backup_name}\", {why})"),
                },
            })
            .map(Some)?
    };
    let passphrase = match &status.encryption_config {
        None => None,
        Some(config) => {
            let selector = &config.pass_phrase_secret_key_ref;
            let same = source
                .backup
                .status
                .as_ref()
                .and_then(|s| s.encryption_config.as_ref())
                .is_some_and(|c| c.pass_phrase_secret_key_ref == *selector);
            let found = if same {
                source.passphrase.clone().map(Ok)
            } else {
                o.passphrases
                    .get(&passphrase_key(&selector.name, &selector.key))
                    .cloned()
            };
            match found {
                Some(Ok(passphrase)) => Some(passphrase),
                Some(Err(reason)) => {
                    return Err(Problem::invalid(format!(
                        "failed to read the encryption key of backup \"{backup_name}\" ({why}): {reason}"
                    )));
                }
                None => {
                    return Err(Problem::invalid(format!(
                        "backup \"{backup_name}\" ({why}) is encrypted but its encryption key was not found"
                    )));
                }
            }
        }
    };
    Ok(Request {
        backup,
        backup_name,
        actionset,
        spec: actionset.spec.restore.clone().unwrap_or_default(),
        method,
        target,
        root_path: if backup_path.is_empty() {
            String::new()
        } else {
            parent(&backup_path)
        },
        backup_path,
        access,
        passphrase,
        chain,
        restore_time: source.restore_time,
    })
}

/// The key of [`Observed::passphrases`]: the Secret and its key, in the backups' namespace.
pub fn passphrase_key(secret: &str, key: &str) -> String {
    format!("{secret}/{key}")
}

fn find<'a>(o: &'a Observed, wanted: &str) -> Option<&'a Backup> {
    o.backups.iter().find(|b| name(b) == wanted)
}

fn name_of(actionset: &ActionSet) -> &str {
    actionset.metadata.name.as_deref().unwrap_or_default()
}

/// `start .. end` with absent ends said as such.
fn window_text(start: Option<Timestamp>, end: Option<Timestamp>) -> String {
    let text = |t: Option<Timestamp>, what: &str| {
        t.map(restore_time::format)
            .unwrap_or_else(|| format!("(no {what})"))
    };
    format!("{} .. {}", text(start, "start"), text(end, "end"))
}
