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
use super::repository::Repository;
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
}

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
            .map_err(|e| format!("{e:#}"));
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
    progress.set_phase("keys and indexes");
    if let Err(e) = repo.list_keys().await {
        report.errors.push(display_error(&e));
    }
    // Indexes, one by one so each damaged one is named.
    let mut committed: HashMap<Id, u32> = HashMap::new();
    let mut superseded = HashSet::new();
    let mut files = Vec::new();
    for info in repo.store().list_all("index").await? {
        match repo
            .store()
            .get(&info.key)
            .await
            .and_then(|b| sealed::open::<IndexFile>(repo.keys(), Kind::Index, &info.key, &b))
        {
            Ok(file) => {
                superseded.extend(file.supersedes.iter().copied());
                files.push((info.key.clone(), file));
            }
            Err(e) => report
                .errors
                .push(format!("index {}: {}", info.key, display_error(&e))),
        }
    }
    for (key, file) in &files {
        let id = key
            .rsplit('/')
            .next()
            .and_then(|n| Id::parse(n).ok())
            .unwrap_or_default();
        if superseded.contains(&id) {
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
    for (pack, blobs) in &committed {
        match stored.get(pack) {
            None => report.errors.push(format!(
                "pack {} is committed by an index but missing",
                pack_key(pack)
            )),
            Some(size) => match read_header(repo, pack, *size).await {
                Ok(entries) if entries.len() as u32 == *blobs => {}
                Ok(entries) => report.errors.push(format!(
                    "pack {}: header lists {} blobs, the index says {blobs}",
                    pack_key(pack),
                    entries.len()
                )),
                Err(e) => report.errors.push(display_error(&e)),
            },
        }
    }
    for pack in stored.keys().filter(|p| !committed.contains_key(*p)) {
        report.warnings.push(format!(
            "pack {} is not committed by any index (garbage for prune, or a backup in progress)",
            pack_key(pack)
        ));
    }
    // Open and dead sessions, staging files of interrupted uploads (session.rs).
    report.warnings.extend(
        super::session::leftover_warnings(repo.store(), repo.options().session_timeout).await?,
    );

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
            Err(e) => {
                report.errors.push(format!(
                    "snapshot {}: {}",
                    Snapshot::key(&id),
                    display_error(&e)
                ));
                continue;
            }
        };
        report.snapshots += 1;
        let mut nodes: Vec<(String, Node)> = vec![(String::from("/"), snapshot.root.clone())];
        while let Some((path, node)) = nodes.pop() {
            let ctx = |what: &str| format!("snapshot {} {path}: {what}", snapshot.id.short());
            for list in &node.content {
                if let Some(problem) = verify_ref(
                    repo,
                    &mut headers,
                    &committed,
                    &stored,
                    list,
                    BlobType::Content,
                )
                .await
                {
                    report.errors.push(ctx(&problem));
                    continue;
                }
                if !seen_lists.insert(list.id) {
                    continue;
                }
                match repo.read_content_list(list).await {
                    Ok(refs) => {
                        for r in refs.iter().filter(|r| !r.is_zero_run()) {
                            if let Some(problem) = verify_ref(
                                repo,
                                &mut headers,
                                &committed,
                                &stored,
                                r,
                                BlobType::Data,
                            )
                            .await
                            {
                                report.errors.push(ctx(&problem));
                            }
                        }
                    }
                    Err(e) => report.errors.push(ctx(&display_error(&e))),
                }
            }
            if let Some(tree_ref) = node.subtree {
                if let Some(problem) = verify_ref(
                    repo,
                    &mut headers,
                    &committed,
                    &stored,
                    &tree_ref,
                    BlobType::Tree,
                )
                .await
                {
                    report.errors.push(ctx(&problem));
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
                    Err(e) => report.errors.push(ctx(&display_error(&e))),
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
        let results: Vec<(Vec<String>, u64)> = futures::stream::iter(chosen)
            .map(|(pack, size)| {
                let progress = progress.clone();
                async move {
                    let out = read_pack_data(repo, &pack, size).await;
                    progress.add(size);
                    Ok::<_, Error>(out)
                }
            })
            .buffer_unordered(4)
            .try_collect()
            .await?;
        for (errors, blobs) in results {
            report.packs_read += 1;
            report.blobs_read += blobs;
            report.errors.extend(errors);
        }
    }
    Ok(report)
}

/// Verifies a ref against the pack listing and header; `Some(problem)` if it is wrong.
async fn verify_ref(
    repo: &Repository,
    headers: &mut Headers,
    committed: &HashMap<Id, u32>,
    stored: &HashMap<Id, u64>,
    r: &BlobRef,
    kind: BlobType,
) -> Option<String> {
    let key = pack_key(&r.pack);
    let Some(size) = stored.get(&r.pack) else {
        return Some(format!("pack {key} is missing (blob {})", r.id.short()));
    };
    if !committed.contains_key(&r.pack) {
        return Some(format!(
            "pack {key} is referenced but not committed by any index"
        ));
    }
    if r.end() > *size {
        return Some(format!(
            "blob {} lies beyond the end of pack {key} ({size} bytes): truncated",
            r.id.short()
        ));
    }
    let entries = match headers.get(repo, &r.pack, *size).await {
        Ok(entries) => entries,
        Err(e) => return Some(e),
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
        Some(_) => Some(format!(
            "blob {} does not match entry {} of pack {key}",
            r.id.short(),
            r.index
        )),
        None => Some(format!(
            "pack {key} has no blob {} (index {})",
            r.id.short(),
            r.index
        )),
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
