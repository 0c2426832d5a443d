//! Two-phase prune (docs/FORMAT.md §7.2-7.3): mark unreferenced packs in a condemned list
//! together with the sessions alive at that moment; sweep a list only after those sessions
//! ended, recomputing references first so a pack a late snapshot uses is resurrected.

use std::collections::{HashMap, HashSet};

use futures::{StreamExt, TryStreamExt};
use jiff::Timestamp;
use serde::Serialize;

use super::super::blobref::BlobRef;
use super::super::id::Id;
use super::super::index::{
    IndexFile, IndexView, SegmentRecord, decode_hooks, encode_hooks, index_key,
};
use super::super::pack::pack_key;
use super::super::repository::Repository;
use super::super::sealed::{self, Kind};
use super::super::session::{is_stale, list_sessions, session_key};
use super::super::snapshot::Node;
use super::list::{GcList, gc_key, load_gc_lists};
use crate::progress::SharedProgress;
use crate::{Error, ErrorKind, Result};

/// Options of `prune`.
#[derive(Debug, Clone, Default)]
pub struct PruneOptions {
    /// Compute and report, change nothing.
    pub dry_run: bool,
}

/// What `prune` found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PruneReport {
    /// Snapshots read.
    pub snapshots: usize,
    /// Pack objects in the store.
    pub packs: usize,
    /// Packs some snapshot references.
    pub referenced_packs: usize,
    /// Packs condemned by this run (phase 1).
    pub condemned: usize,
    /// Bytes of those packs.
    pub condemned_bytes: u64,
    /// The condemned list written by this run.
    pub list: Option<Id>,
    /// Condemned lists swept.
    pub swept_lists: usize,
    /// Packs deleted.
    pub deleted_packs: usize,
    /// Bytes freed.
    pub deleted_bytes: u64,
    /// Condemned packs kept because a later snapshot references them.
    pub resurrected: usize,
    /// Lists waiting for sessions to end.
    pub waiting_lists: usize,
    /// Sessions those lists wait for.
    pub blocking_sessions: Vec<Id>,
    /// Lists kept as tombstones because the store rejected the index rewrite.
    pub tombstones: usize,
    /// Why phase 1 could not write its condemned list (the store rejected the write).
    pub mark_error: Option<String>,
    /// Markers of dead sessions removed (stale: not refreshed for the session timeout, so
    /// their writers can no longer commit, W2); with `dry_run`, the ones that would be.
    pub dead_sessions: Vec<Id>,
    /// Staging files of interrupted uploads removed (older than the session timeout; local
    /// stores only); with `dry_run`, the ones that would be.
    pub staging_files: usize,
    /// Bytes of those staging files.
    pub staging_bytes: u64,
}

/// Every pack some snapshot references (trees, content lists, chunks).
pub async fn referenced_packs(repo: &Repository) -> Result<(HashSet<Id>, usize)> {
    let snapshots = repo.list_snapshots().await?;
    let count = snapshots.len();
    let mut packs = HashSet::new();
    let mut lists: HashMap<Id, BlobRef> = HashMap::new();
    let mut seen_trees = HashSet::new();
    let mut trees: Vec<BlobRef> = Vec::new();
    let mut visit = |node: &Node,
                     packs: &mut HashSet<Id>,
                     trees: &mut Vec<BlobRef>,
                     lists: &mut HashMap<Id, BlobRef>| {
        for c in &node.content {
            packs.insert(c.pack);
            lists.entry(c.id).or_insert(*c);
        }
        if let Some(t) = node.subtree {
            packs.insert(t.pack);
            if seen_trees.insert(t.id) {
                trees.push(t);
            }
        }
    };
    for s in &snapshots {
        visit(&s.root, &mut packs, &mut trees, &mut lists);
    }
    while !trees.is_empty() {
        let batch = std::mem::take(&mut trees);
        let loaded: Vec<_> = futures::stream::iter(batch)
            .map(|t| async move { repo.read_tree(&t).await })
            .buffer_unordered(16)
            .try_collect()
            .await?;
        for tree in loaded {
            for node in &tree.nodes {
                visit(node, &mut packs, &mut trees, &mut lists);
            }
        }
    }
    let chunk_packs: Vec<HashSet<Id>> = futures::stream::iter(lists.into_values())
        .map(|c| async move {
            let refs = repo.read_content_list(&c).await?;
            Ok::<_, Error>(
                refs.into_iter()
                    .filter(|r| !r.is_zero_run())
                    .map(|r| r.pack)
                    .collect(),
            )
        })
        .buffer_unordered(16)
        .try_collect()
        .await?;
    for set in chunk_packs {
        packs.extend(set);
    }
    Ok((packs, count))
}

/// Pack objects in the store with their sizes.
async fn stored_packs(repo: &Repository) -> Result<HashMap<Id, u64>> {
    let mut out = HashMap::new();
    for info in repo.store().list_all("data").await? {
        if let Ok(id) = Id::parse(info.key.rsplit('/').next().unwrap_or("")) {
            out.insert(id, info.size);
        }
    }
    Ok(out)
}

/// Runs phase 2 on ready lists, then phase 1; sweeps the new list at once when no session
/// blocks it.
pub async fn prune(
    repo: &Repository,
    options: &PruneOptions,
    progress: SharedProgress,
) -> Result<PruneReport> {
    let mut report = PruneReport::default();
    let timeout = repo.options().session_timeout;
    progress.set_phase("removing what dead writers left");
    sweep_leftovers(repo, timeout, options.dry_run, &mut report).await?;
    progress.set_phase("reading condemned lists");
    let lists = load_gc_lists(repo).await?;
    let live = live_sessions(repo, timeout).await?;
    let (ready, waiting): (Vec<GcList>, Vec<GcList>) = lists.into_iter().partition(|l| {
        l.blocking
            .as_ref()
            .is_some_and(|b| b.iter().all(|s| !live.contains(s)))
    });
    report.waiting_lists = waiting.len();
    let mut blocking: HashSet<Id> = waiting
        .iter()
        .flat_map(|l| l.blocking.clone().unwrap_or_default())
        .filter(|s| live.contains(s))
        .collect();
    if !ready.is_empty() && !options.dry_run {
        progress.set_phase("sweeping");
        sweep(repo, ready, &mut report).await?;
    }

    progress.set_phase("marking");
    let (referenced, snapshots) = referenced_packs(repo).await?;
    report.snapshots = snapshots;
    report.referenced_packs = referenced.len();
    let stored = stored_packs(repo).await?;
    report.packs = stored.len();
    let pending: HashSet<Id> = load_gc_lists(repo)
        .await?
        .into_iter()
        .flat_map(|l| l.packs)
        .collect();
    let mut candidates: Vec<Id> = stored
        .keys()
        .filter(|p| !referenced.contains(*p) && !pending.contains(*p))
        .copied()
        .collect();
    candidates.sort();
    report.condemned = candidates.len();
    report.condemned_bytes = candidates
        .iter()
        .map(|p| stored.get(p).copied().unwrap_or(0))
        .sum();
    if options.dry_run || candidates.is_empty() {
        report.blocking_sessions = blocking.into_iter().collect();
        return Ok(report);
    }
    let id = Id::random();
    let key = gc_key(&id);
    let mut list = GcList {
        version: 1,
        id,
        created: Timestamp::now(),
        packs: candidates,
        blocking: None,
    };
    if let Err(e) = put_sealed(repo, &key, &list).await {
        if e.kind() == ErrorKind::Backend && !e.is_transient() {
            // Deletes already done stand; marking needs one small write.
            report.mark_error = Some(format!(
                "cannot mark {} unreferenced packs: writing {key} was rejected ({e})",
                list.packs.len()
            ));
            report.blocking_sessions = blocking.into_iter().collect();
            return Ok(report);
        }
        return Err(e);
    }
    let now_live: Vec<Id> = live_sessions(repo, timeout).await?.into_iter().collect();
    list.blocking = Some(now_live.clone());
    put_sealed(repo, &key, &list).await?;
    report.list = Some(id);
    if now_live.is_empty() {
        progress.set_phase("sweeping");
        sweep(repo, vec![list], &mut report).await?;
    } else {
        report.waiting_lists += 1;
        blocking.extend(now_live);
    }
    report.blocking_sessions = blocking.into_iter().collect();
    report.blocking_sessions.sort();
    Ok(report)
}

/// Removes what killed or failed writers left behind: markers of sessions that are provably
/// dead (stale), and staging files of interrupted uploads older than the session timeout (an
/// upload in progress keeps writing its staging file).
async fn sweep_leftovers(
    repo: &Repository,
    timeout: std::time::Duration,
    dry_run: bool,
    report: &mut PruneReport,
) -> Result<()> {
    let now = Timestamp::now();
    for session in list_sessions(repo.store()).await? {
        if is_stale(session.modified, now, timeout) {
            if !dry_run {
                repo.store().delete(&session_key(&session.id)).await?;
            }
            report.dead_sessions.push(session.id);
        }
    }
    report.dead_sessions.sort();
    let staging = if dry_run {
        let cutoff = |m| crate::backend::staging_is_older(m, now, timeout);
        repo.store()
            .list_staging("")
            .await?
            .into_iter()
            .filter(|s| cutoff(s.modified))
            .collect()
    } else {
        repo.store().sweep_staging("", timeout).await?
    };
    report.staging_files = staging.len();
    report.staging_bytes = staging.iter().map(|s| s.size).sum();
    Ok(())
}

async fn put_sealed(repo: &Repository, key: &str, list: &GcList) -> Result<()> {
    let bytes = sealed::seal(repo.keys(), Kind::GcList, key, list)?;
    repo.store().put(key, bytes.into()).await
}

/// Sessions whose markers were refreshed within `timeout` (store clock vs. local clock).
async fn live_sessions(repo: &Repository, timeout: std::time::Duration) -> Result<HashSet<Id>> {
    let now = Timestamp::now();
    let timeout = jiff::SignedDuration::try_from(timeout).unwrap_or(jiff::SignedDuration::MAX);
    Ok(list_sessions(repo.store())
        .await?
        .into_iter()
        .filter(|s| now.duration_since(s.modified) < timeout)
        .map(|s| s.id)
        .collect())
}

/// Phase 2 for lists whose blocking sessions ended.
async fn sweep(repo: &Repository, lists: Vec<GcList>, report: &mut PruneReport) -> Result<()> {
    let (referenced, _) = referenced_packs(repo).await?;
    let condemned: HashSet<Id> = lists.iter().flat_map(|l| l.packs.iter().copied()).collect();
    let doomed: HashSet<Id> = condemned
        .iter()
        .filter(|p| !referenced.contains(*p))
        .copied()
        .collect();
    report.resurrected += condemned.len() - doomed.len();
    let indexes_ok = match rewrite_indexes(repo, &doomed).await {
        Ok(()) => true,
        Err(e) if e.kind() == ErrorKind::Backend && !e.is_transient() => {
            tracing::warn!(error = %e, "the store rejected the index rewrite; keeping condemned lists as tombstones");
            report.tombstones += lists.len();
            false
        }
        Err(e) => return Err(e),
    };
    let sizes = stored_packs(repo).await?;
    let store = repo.store().clone();
    futures::stream::iter(doomed.iter().copied())
        .map(|p| {
            let store = store.clone();
            async move { store.delete(&pack_key(&p)).await }
        })
        .buffer_unordered(16)
        .try_collect::<Vec<()>>()
        .await?;
    report.deleted_packs += doomed.iter().filter(|p| sizes.contains_key(*p)).count();
    report.deleted_bytes += doomed.iter().filter_map(|p| sizes.get(p)).sum::<u64>();
    if indexes_ok {
        for list in &lists {
            store.delete(&gc_key(&list.id)).await?;
        }
        report.swept_lists += lists.len();
    }
    Ok(())
}

/// Writes one index replacing every index that commits a doomed pack, without those packs
/// or the segments stored in them; then deletes the replaced indexes.
async fn rewrite_indexes(repo: &Repository, doomed: &HashSet<Id>) -> Result<()> {
    if doomed.is_empty() {
        return Ok(());
    }
    let view = IndexView::load(repo.store(), repo.keys()).await?;
    let affected: HashSet<Id> = doomed
        .iter()
        .filter_map(|p| view.pack_index.get(p).copied())
        .collect();
    if affected.is_empty() {
        return Ok(());
    }
    let mut merged = IndexFile {
        version: 1,
        session: Id::ZERO,
        created: Timestamp::now(),
        supersedes: affected.iter().copied().collect(),
        packs: Vec::new(),
        segments: Vec::new(),
        hooks: String::new(),
    };
    merged.supersedes.sort();
    let mut hooks = Vec::new();
    for index_id in &merged.supersedes.clone() {
        let key = index_key(index_id);
        let bytes = match repo.store().get(&key).await {
            Ok(b) => b,
            Err(e) if e.kind() == ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        let file: IndexFile = sealed::open(repo.keys(), Kind::Index, &key, &bytes)?;
        merged.packs.extend(
            file.packs
                .iter()
                .filter(|p| !doomed.contains(&p.id))
                .copied(),
        );
        // Keep segments not stored in doomed packs; renumber and re-link the chains.
        let mut new_ordinal: Vec<Option<u32>> = Vec::with_capacity(file.segments.len());
        for s in &file.segments {
            if doomed.contains(&s.r.pack) {
                new_ordinal.push(None);
            } else {
                new_ordinal.push(Some(
                    (merged.segments.len() + new_ordinal.iter().flatten().count()) as u32,
                ));
            }
        }
        let base_kept: Vec<SegmentRecord> = file
            .segments
            .iter()
            .enumerate()
            .filter(|(i, _)| new_ordinal[*i].is_some())
            .map(|(_, s)| SegmentRecord {
                r: s.r,
                next: if s.next >= 0 {
                    new_ordinal
                        .get(s.next as usize)
                        .copied()
                        .flatten()
                        .map_or(-1, |n| n as i64)
                } else {
                    -1
                },
            })
            .collect();
        merged.segments.extend(base_kept);
        for (hook, segment) in decode_hooks(&file.hooks, &key)? {
            if let Some(Some(n)) = new_ordinal.get(segment as usize) {
                hooks.push((hook, *n));
            }
        }
    }
    hooks.sort_unstable();
    merged.hooks = encode_hooks(&hooks);
    let id = Id::random();
    let key = index_key(&id);
    let bytes = sealed::seal(repo.keys(), Kind::Index, &key, &merged)?;
    repo.store().put(&key, bytes.into()).await?;
    for old in &merged.supersedes {
        repo.store().delete(&index_key(old)).await?;
    }
    Ok(())
}
