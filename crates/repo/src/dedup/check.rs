//! `check`: structure and index consistency, and with `--read-data` every blob
//! authenticated and re-hashed (docs/FORMAT.md §7.6). Problems are collected as messages
//! naming the object; nothing panics and nothing is repaired.

use std::collections::{HashMap, HashSet, VecDeque};

use futures::{StreamExt, TryStreamExt};
use serde::Serialize;

use super::blobref::BlobRef;
use super::id::Id;
use super::index::IndexFile;
use super::pack::{
    BlobType, HeaderEntry, TRAILER_LEN, locate_header, open_blob, pack_key, parse_header,
};
use super::repository::{Repository, list_ids};
use super::sealed::{self, Kind};
use super::snapshot::{Node, Snapshot};
use crate::progress::SharedProgress;
use crate::{Error, Result};

/// What to verify.
#[derive(Debug, Clone, Default)]
pub struct CheckOptions {
    /// Read every pack and authenticate every blob.
    pub read_data: bool,
    /// Read only this fraction (0..=1) of the packs, chosen at random.
    pub read_data_subset: Option<f64>,
}

/// What `check` found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CheckReport {
    /// Errors: damage or inconsistency, each naming the object.
    pub errors: Vec<String>,
    /// Warnings: garbage that prune will remove, sessions still open.
    pub warnings: Vec<String>,
    /// Snapshots checked.
    pub snapshots: usize,
    /// Packs in the store.
    pub packs: usize,
    /// Packs whose data was read.
    pub packs_read: usize,
    /// Blobs authenticated by reading data.
    pub blobs_read: u64,
    /// Which command repairs (or what to do about) what was found, one entry per command.
    pub repairs: Vec<Repair>,
}

/// A command that repairs findings of `check`, and what it does about them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Repair {
    /// The command to run (or the action to take).
    pub command: String,
    /// What it repairs.
    pub fixes: String,
}

/// Findings grouped by object, and the repairs they call for.
#[derive(Default)]
struct Findings {
    /// (object, problem) → the refs that found it: count, snapshots and a first path.
    refs: std::collections::BTreeMap<(String, String), RefsAffected>,
    /// Snapshots some finding damages (to forget).
    damaged_snapshots: std::collections::BTreeSet<Id>,
    /// command → what it fixes (merged).
    repairs: std::collections::BTreeMap<String, std::collections::BTreeSet<String>>,
}

#[derive(Default)]
struct RefsAffected {
    count: u64,
    snapshots: std::collections::BTreeSet<String>,
    first: String,
}

impl Findings {
    fn repair(&mut self, command: &str, fixes: &str) {
        self.repairs
            .entry(command.to_string())
            .or_default()
            .insert(fixes.to_string());
    }

    /// A problem with `object` that a ref of `snapshot` at `path` ran into.
    fn by_ref(&mut self, object: String, problem: String, snapshot: &Id, path: &str) {
        let entry = self.refs.entry((object, problem)).or_default();
        entry.count += 1;
        entry.snapshots.insert(snapshot.short());
        if entry.first.is_empty() {
            entry.first = format!("{} {path}", snapshot.short());
        }
        self.damaged_snapshots.insert(*snapshot);
    }

    /// One error line per (object, problem), however many refs ran into it.
    fn finish(mut self, report: &mut CheckReport) {
        for ((object, problem), affected) in std::mem::take(&mut self.refs) {
            let sep = if problem.starts_with("is ") {
                " "
            } else {
                ": "
            };
            if affected.count == 0 {
                report.errors.push(format!("{object}{sep}{problem}"));
                continue;
            }
            let refs = if affected.count == 1 {
                format!("needed by snapshot {}", affected.first)
            } else {
                format!(
                    "{} refs from {} snapshot{} ({}) need it, first {}",
                    affected.count,
                    affected.snapshots.len(),
                    if affected.snapshots.len() == 1 {
                        ""
                    } else {
                        "s"
                    },
                    affected
                        .snapshots
                        .iter()
                        .take(8)
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", "),
                    affected.first
                )
            };
            report
                .errors
                .push(format!("{object}{sep}{problem} ({refs})"));
        }
        if !self.damaged_snapshots.is_empty() {
            let ids: Vec<String> = self.damaged_snapshots.iter().map(Id::to_hex).collect();
            self.repair(
                &format!(
                    "cairnctl repo forget {} && cairnctl repo prune",
                    ids.join(" ")
                ),
                "snapshots that need damaged or missing data cannot be restored whole: restore \
                 what is intact, forget them, and let prune delete what only they used, so the \
                 next backup stores that data again",
            );
        }
        report.repairs = self
            .repairs
            .into_iter()
            .map(|(command, fixes)| Repair {
                command,
                fixes: fixes.into_iter().collect::<Vec<_>>().join("; "),
            })
            .collect();
    }
}

const REPAIR_INDEX: &str = "cairnctl repo repair index";

impl CheckReport {
    /// Whether no error was found.
    pub fn is_ok(&self) -> bool {
        self.errors.is_empty()
    }
}

/// A bounded cache of parsed pack headers.
struct Headers {
    map: HashMap<Id, Result<Vec<HeaderEntry>, String>>,
    order: VecDeque<Id>,
    cap: usize,
}

impl Headers {
    async fn get(
        &mut self,
        repo: &Repository,
        pack: &Id,
        size: u64,
    ) -> Result<Vec<HeaderEntry>, String> {
        if let Some(found) = self.map.get(pack) {
            return found.clone();
        }
        let loaded = read_header(repo, pack, size)
            .await
            .map_err(|e| display_error(&e));
        self.map.insert(*pack, loaded.clone());
        self.order.push_back(*pack);
        while self.order.len() > self.cap {
            if let Some(old) = self.order.pop_front() {
                self.map.remove(&old);
            }
        }
        loaded
    }
}

/// Reads and parses a pack's header.
pub async fn read_header(repo: &Repository, pack: &Id, size: u64) -> Result<Vec<HeaderEntry>> {
    let key = pack_key(pack);
    if size < TRAILER_LEN as u64 {
        return Err(Error::corrupt(format!(
            "pack {key} is truncated ({size} bytes)"
        )));
    }
    let tail_len = size.min(256 << 10);
    let (tail, actual) = repo.store().get_suffix(&key, tail_len).await?;
    let (start, len) = locate_header(&tail, actual, &key)?;
    let sealed = if start >= actual - tail.len() as u64 {
        let at = (start - (actual - tail.len() as u64)) as usize;
        tail.slice(at..at + len as usize)
    } else {
        repo.store().get_range(&key, start..start + len).await?
    };
    parse_header(repo.keys(), pack, &sealed, &key)
}

fn display_error(e: &Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Checks the repository.
pub async fn check(
    repo: &Repository,
    options: &CheckOptions,
    progress: SharedProgress,
) -> Result<CheckReport> {
    let mut report = CheckReport::default();
    let mut found = Findings::default();
    progress.set_phase("keys and indexes");
    for problem in repo.key_problems().await? {
        report.errors.push(problem);
        found.repair(
            "cairnctl repo key remove ID",
            "a damaged key file (opening skips it; remove it so it cannot be mistaken for a key)",
        );
    }
    for stray in repo.stray_objects().await? {
        report.warnings.push(format!(
            "{stray} is not a repository object (not named by an id); every command ignores it"
        ));
        found.repair(
            "move the stray objects out of the repository",
            "files that Cairn did not write (they are ignored, but may be someone's data)",
        );
    }
    if let Err(e) = super::gc::load_gc_lists(repo).await {
        report.errors.push(display_error(&e));
        found.repair(
            REPAIR_INDEX,
            "a condemned list that does not open (backups and prune stop until it is removed; \
             removing it only delays reclaiming the space it would have freed)",
        );
    }
    // Indexes, one by one so each damaged one is named.
    let mut committed: HashMap<Id, u32> = HashMap::new();
    let mut superseded = HashSet::new();
    let mut files = Vec::new();
    for (id, info) in list_ids(repo.store(), "index").await?.ids {
        match repo
            .store()
            .get(&info.key)
            .await
            .and_then(|b| sealed::open::<IndexFile>(repo.keys(), Kind::Index, &info.key, &b))
        {
            Ok(file) => {
                superseded.extend(file.supersedes.iter().copied());
                files.push((id, file));
            }
            Err(e) if e.kind() == crate::ErrorKind::NotFound => {}
            Err(e) => {
                let text = display_error(&e);
                report.errors.push(if text.contains(&info.key) {
                    text
                } else {
                    format!("index {}: {text}", info.key)
                });
                found.repair(
                    REPAIR_INDEX,
                    "index objects that do not open (backups skip them and store their data again)",
                );
            }
        }
    }
    for (id, file) in &files {
        if superseded.contains(id) {
            continue;
        }
        for p in &file.packs {
            committed.insert(p.id, p.summary.blobs);
        }
    }
    let stored: HashMap<Id, u64> = repo
        .store()
        .list_all("data")
        .await?
        .into_iter()
        .filter_map(|i| {
            Id::parse(i.key.rsplit('/').next().unwrap_or(""))
                .ok()
                .map(|id| (id, i.size))
        })
        .collect();
    report.packs = stored.len();
    let mut committed_sorted: Vec<(&Id, &u32)> = committed.iter().collect();
    committed_sorted.sort();
    for (pack, blobs) in committed_sorted {
        match stored.get(pack) {
            None => {
                report.errors.push(format!(
                    "pack {} is committed by an index but missing",
                    pack_key(pack)
                ));
                found.repair(
                    REPAIR_INDEX,
                    "packs an index commits but the store lacks (dropped from the index, so no \
                     backup reuses them)",
                );
            }
            Some(size) => match read_header(repo, pack, *size).await {
                Ok(entries) if entries.len() as u32 == *blobs => {}
                Ok(entries) => {
                    report.errors.push(format!(
                        "pack {}: header lists {} blobs, the index says {blobs}",
                        pack_key(pack),
                        entries.len()
                    ));
                    found.repair(
                        REPAIR_INDEX,
                        "index records that disagree with the pack header",
                    );
                }
                Err(e) => {
                    // One line with the refs that need the pack, if any (below).
                    let (object, problem) = split_pack_error(pack, &display_error(&e));
                    found.refs.entry((object, problem)).or_default();
                    found.repair(
                        "no command rebuilds a pack header",
                        "a pack whose header is damaged or truncated: its blobs may still restore \
                         (refs locate them), but nothing can verify them; back the data up again \
                         and forget the snapshots that need the pack",
                    );
                }
            },
        }
    }
    let mut uncommitted: Vec<&Id> = stored
        .keys()
        .filter(|p| !committed.contains_key(*p))
        .collect();
    uncommitted.sort();
    for pack in uncommitted {
        report.warnings.push(format!(
            "pack {} is not committed by any index (garbage for prune, or a backup in progress)",
            pack_key(pack)
        ));
    }
    // Open and dead sessions, staging files of interrupted uploads (session.rs).
    report.warnings.extend(
        super::session::leftover_warnings(repo.store(), repo.options().session_timeout).await?,
    );
    // Prune goes by a marker's age, not its content; a damaged one is still worth naming.
    for session in super::session::list_sessions(repo.store()).await? {
        let key = super::session::session_key(&session.id);
        if let Err(e) = repo.store().get(&key).await.and_then(|b| {
            sealed::open::<super::session::SessionMarker>(repo.keys(), Kind::Session, &key, &b)
        }) && e.kind() != crate::ErrorKind::NotFound
        {
            report.warnings.push(format!(
                "session marker {key} does not open ({}); its writer rewrites it at the next \
                 heartbeat, and once it is older than the session timeout it is stale",
                display_error(&e)
            ));
        }
    }

    progress.set_phase("snapshots");
    let ids = repo.snapshot_ids().await?;
    let mut headers = Headers {
        map: HashMap::new(),
        order: VecDeque::new(),
        cap: 256,
    };
    let mut seen_trees = HashSet::new();
    let mut seen_lists = HashSet::new();
    for id in ids {
        let snapshot = match repo.load_snapshot(&id).await {
            Ok(s) => s,
            Err(e) if e.kind() == crate::ErrorKind::NotFound => continue,
            Err(e) => {
                report.errors.push(format!(
                    "snapshot {}: {}",
                    Snapshot::key(&id),
                    display_error(&e)
                ));
                found.damaged_snapshots.insert(id);
                continue;
            }
        };
        report.snapshots += 1;
        let sid = snapshot.id;
        let mut nodes: Vec<(String, Node)> = vec![(String::from("/"), snapshot.root.clone())];
        while let Some((path, node)) = nodes.pop() {
            for list in &node.content {
                if let Some((object, problem)) = verify_ref(
                    repo,
                    &mut headers,
                    &committed,
                    &stored,
                    list,
                    BlobType::Content,
                )
                .await
                {
                    note_ref_problem(&mut found, object, problem, &sid, &path);
                    continue;
                }
                if !seen_lists.insert(list.id) {
                    continue;
                }
                match repo.read_content_list(list).await {
                    Ok(refs) => {
                        for r in refs.iter().filter(|r| !r.is_zero_run()) {
                            if let Some((object, problem)) = verify_ref(
                                repo,
                                &mut headers,
                                &committed,
                                &stored,
                                r,
                                BlobType::Data,
                            )
                            .await
                            {
                                note_ref_problem(&mut found, object, problem, &sid, &path);
                            }
                        }
                    }
                    Err(e) => found.by_ref(
                        format!("pack {}", pack_key(&list.pack)),
                        display_error(&e),
                        &sid,
                        &path,
                    ),
                }
            }
            if let Some(tree_ref) = node.subtree {
                if let Some((object, problem)) = verify_ref(
                    repo,
                    &mut headers,
                    &committed,
                    &stored,
                    &tree_ref,
                    BlobType::Tree,
                )
                .await
                {
                    note_ref_problem(&mut found, object, problem, &sid, &path);
                    continue;
                }
                if !seen_trees.insert(tree_ref.id) {
                    continue;
                }
                match repo.read_tree(&tree_ref).await {
                    Ok(tree) => {
                        for child in tree.nodes {
                            let child_path = format!(
                                "{}{}{}",
                                path,
                                if path.ends_with('/') { "" } else { "/" },
                                child.name
                            );
                            nodes.push((child_path, child));
                        }
                    }
                    Err(e) => found.by_ref(
                        format!("pack {}", pack_key(&tree_ref.pack)),
                        display_error(&e),
                        &sid,
                        &path,
                    ),
                }
            }
        }
    }

    if options.read_data || options.read_data_subset.is_some() {
        progress.set_phase("reading data");
        let fraction = options.read_data_subset.unwrap_or(1.0).clamp(0.0, 1.0);
        let mut packs: Vec<(Id, u64)> = stored.iter().map(|(k, v)| (*k, *v)).collect();
        packs.sort();
        let chosen: Vec<(Id, u64)> = packs
            .into_iter()
            .filter(|_| fraction >= 1.0 || rand::random::<f64>() < fraction)
            .collect();
        progress.set_total(chosen.iter().map(|(_, s)| s).sum());
        let results: Vec<(Id, Vec<String>, u64)> = futures::stream::iter(chosen)
            .map(|(pack, size)| {
                let progress = progress.clone();
                async move {
                    let (errors, blobs) = read_pack_data(repo, &pack, size).await;
                    progress.add(size);
                    Ok::<_, Error>((pack, errors, blobs))
                }
            })
            .buffer_unordered(4)
            .try_collect()
            .await?;
        for (pack, mut errors, blobs) in results {
            report.packs_read += 1;
            report.blobs_read += blobs;
            // A header problem the structure pass reported already is not repeated.
            errors.retain(|e| !found.refs.contains_key(&split_pack_error(&pack, e)));
            // One line per pack, however many of its blobs are damaged.
            if errors.len() > 1 {
                let more = errors.len() - 1;
                errors.truncate(1);
                errors[0].push_str(&format!(
                    " (and {more} more damaged blob{} in this pack)",
                    if more == 1 { "" } else { "s" }
                ));
            }
            if !errors.is_empty() {
                found.repair(
                    "cairnctl repo forget ID && cairnctl repo prune",
                    "packs with damaged blobs: forget the snapshots whose restore reports them, \
                     so prune deletes the pack and the next backup stores that data again",
                );
            }
            report.errors.extend(errors);
        }
    }
    found.finish(&mut report);
    Ok(report)
}

/// `("pack <key>", problem)` from an error message that may start with the pack's name.
fn split_pack_error(pack: &Id, text: &str) -> (String, String) {
    let object = format!("pack {}", pack_key(pack));
    let problem = text
        .strip_prefix(&format!("{object}: "))
        .or_else(|| text.strip_prefix(&format!("{object} ")))
        .unwrap_or(text)
        .to_string();
    (object, problem)
}

/// Records a ref's problem, and the repair it calls for.
fn note_ref_problem(found: &mut Findings, object: String, problem: String, sid: &Id, path: &str) {
    if problem.contains("not committed by any index") {
        found.repair(
            REPAIR_INDEX,
            "packs snapshots use that no index commits (committed from their headers)",
        );
    } else if problem.contains("header") || problem.contains("trailer") {
        found.repair(
            "no command rebuilds a pack header",
            "a pack whose header is damaged or truncated: its blobs may still restore \
             (refs locate them), but nothing can verify them; back the data up again \
             and forget the snapshots that need the pack",
        );
    }
    found.by_ref(object, problem, sid, path);
}

/// Verifies a ref against the pack listing and header; `Some((object, problem))` if it is
/// wrong, the object being the pack (so the findings of many refs group by pack).
async fn verify_ref(
    repo: &Repository,
    headers: &mut Headers,
    committed: &HashMap<Id, u32>,
    stored: &HashMap<Id, u64>,
    r: &BlobRef,
    kind: BlobType,
) -> Option<(String, String)> {
    let key = pack_key(&r.pack);
    let object = format!("pack {key}");
    let Some(size) = stored.get(&r.pack) else {
        return Some((object, "is missing".to_string()));
    };
    let uncommitted = !committed.contains_key(&r.pack);
    if r.end() > *size {
        return Some((
            object,
            format!("blobs lie beyond its end ({size} bytes): truncated"),
        ));
    }
    let entries = match headers.get(repo, &r.pack, *size).await {
        // A sound header: `repair index` can commit the pack.
        Ok(_) if uncommitted => {
            return Some((
                object,
                "is referenced but not committed by any index".to_string(),
            ));
        }
        Ok(entries) => entries,
        Err(e) => return Some(split_pack_error(&r.pack, &e)),
    };
    match entries.get(r.index as usize) {
        Some(e)
            if e.id == r.id
                && e.offset == r.offset
                && e.stored_len == r.stored_len
                && e.raw_len == r.raw_len
                && e.kind == kind =>
        {
            None
        }
        Some(_) => Some((
            object,
            "blobs do not match the entries of its header".to_string(),
        )),
        None => Some((object, format!("its header has no entry {}", r.index))),
    }
}

/// Downloads a pack and authenticates every blob, re-hashing plaintexts against their ids.
async fn read_pack_data(repo: &Repository, pack: &Id, size: u64) -> (Vec<String>, u64) {
    let key = pack_key(pack);
    let bytes = match repo.store().get_range(&key, 0..size).await {
        Ok(b) => b,
        Err(e) => return (vec![display_error(&e)], 0),
    };
    let entries = match locate_header(&bytes, size, &key).and_then(|(start, len)| {
        parse_header(
            repo.keys(),
            pack,
            &bytes[start as usize..(start + len) as usize],
            &key,
        )
    }) {
        Ok(e) => e,
        Err(e) => return (vec![display_error(&e)], 0),
    };
    let keys = repo.keys().clone();
    let pack = *pack;
    tokio::task::spawn_blocking(move || {
        let aead = keys.pack_aead(&pack);
        let mut errors = Vec::new();
        for (index, e) in entries.iter().enumerate() {
            let r = BlobRef {
                id: e.id,
                pack,
                index: index as u32,
                offset: e.offset,
                stored_len: e.stored_len,
                raw_len: e.raw_len,
            };
            if r.end() > size {
                errors.push(format!(
                    "pack {key}: blob {index} lies beyond the end of the pack"
                ));
                continue;
            }
            match open_blob(
                &aead,
                e.kind,
                &r,
                &bytes[r.offset as usize..r.end() as usize],
            ) {
                Ok(plain) if keys.chunk_id(&plain) == e.id => {}
                Ok(_) => errors.push(format!(
                    "pack {key}: blob {index} does not hash to its id {}",
                    e.id.short()
                )),
                Err(err) => {
                    errors.push(format!("pack {key}: blob {index}: {}", display_error(&err)))
                }
            }
        }
        (errors, entries.len() as u64)
    })
    .await
    .unwrap_or_else(|e| {
        (
            vec![format!("pack {}: checking failed: {e}", pack_key(&pack))],
            0,
        )
    })
}
