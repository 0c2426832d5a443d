//! `repair index`: rebuild `index/` from the pack headers (docs/FORMAT.md §7.7), as restic's
//! `repair index` does. One new index commits every pack whose header opens (condemned packs
//! excepted) and keeps the segments and hooks of the indexes that still open; every old index
//! object, readable or not, is superseded and deleted. Condemned lists that do not open are
//! deleted too (no prune can sweep them, so removing one only delays reclaiming space).

use std::collections::{HashMap, HashSet};

use futures::StreamExt;
use jiff::Timestamp;
use serde::Serialize;

use super::blobref::BlobRef;
use super::check::read_header;
use super::gc::GcList;
use super::id::Id;
use super::index::{IndexFile, PackRecord, SegmentRecord, decode_hooks, encode_hooks, index_key};
use super::pack::{BlobType, HeaderEntry, PackSummary, pack_key};
use super::repository::{Repository, list_ids};
use super::sealed::{self, Kind};
use super::window::is_hook;
use crate::progress::SharedProgress;
use crate::{ErrorKind, Result};

/// Options of `repair index`.
#[derive(Debug, Clone, Default)]
pub struct RepairIndexOptions {
    /// Report what would change; write and delete nothing.
    pub dry_run: bool,
}

/// What `repair index` found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RepairIndexReport {
    /// Index objects found.
    pub indexes: usize,
    /// Index objects that did not open, one message each naming the object.
    pub unreadable_indexes: Vec<String>,
    /// Pack objects in the store.
    pub packs: usize,
    /// Packs the new index commits.
    pub packs_indexed: usize,
    /// Packs with a sound header that no readable index committed (now committed).
    pub packs_recovered: usize,
    /// Packs an index committed that the store lacks (no longer committed).
    pub missing_packs_dropped: usize,
    /// Packs whose header does not open, one message each. They stay committed if a readable
    /// index committed them (their blobs may still restore); otherwise they stay uncommitted.
    pub unreadable_packs: Vec<String>,
    /// Packs left out because a condemned list names them (prune is deleting them).
    pub condemned_left_out: usize,
    /// Content lists found in pack headers and added as segments.
    pub segments_recovered: usize,
    /// Condemned lists that did not open (deleted unless dry run).
    pub unreadable_gc_lists: Vec<String>,
    /// Whether the index needed rebuilding.
    pub needed: bool,
    /// The index written (none in a dry run or when nothing needed repair).
    pub new_index: Option<Id>,
    /// Index objects deleted.
    pub removed_indexes: usize,
}

/// Rebuilds the index from the pack headers when it is damaged or incomplete. Run it when no
/// `prune` runs (a prune sweeping at the same time could delete a pack this index commits);
/// backups may run.
pub async fn repair_index(
    repo: &Repository,
    options: &RepairIndexOptions,
    progress: SharedProgress,
) -> Result<RepairIndexReport> {
    let mut report = RepairIndexReport::default();
    let store = repo.store();

    progress.set_phase("reading indexes");
    let names = list_ids(store, "index").await?.ids;
    report.indexes = names.len();
    let mut all_ids: Vec<Id> = Vec::new();
    let mut readable: Vec<(Id, IndexFile)> = Vec::new();
    for (id, info) in names {
        let opened = match store.get(&info.key).await {
            Ok(bytes) => sealed::open::<IndexFile>(repo.keys(), Kind::Index, &info.key, &bytes),
            Err(e) if e.kind() == ErrorKind::NotFound => continue,
            Err(e) => Err(e),
        };
        all_ids.push(id);
        match opened {
            Ok(file) => readable.push((id, file)),
            Err(e) if matches!(e.kind(), ErrorKind::Corrupt | ErrorKind::Crypto) => {
                report.unreadable_indexes.push(e.to_string());
            }
            Err(e) => return Err(e),
        }
    }
    let superseded: HashSet<Id> = readable
        .iter()
        .flat_map(|(_, f)| f.supersedes.iter().copied())
        .collect();
    readable.retain(|(id, _)| !superseded.contains(id));
    readable.sort_by_key(|(_, f)| f.created);

    progress.set_phase("reading condemned lists");
    let mut condemned: HashSet<Id> = HashSet::new();
    let mut damaged_lists = Vec::new();
    for (id, info) in list_ids(store, "gc").await?.ids {
        let opened = match store.get(&info.key).await {
            Ok(bytes) => sealed::open::<GcList>(repo.keys(), Kind::GcList, &info.key, &bytes),
            Err(e) if e.kind() == ErrorKind::NotFound => continue,
            Err(e) => Err(e),
        };
        match opened {
            Ok(list) if list.id == id => condemned.extend(list.packs),
            Ok(list) => {
                report
                    .unreadable_gc_lists
                    .push(format!("{} holds condemned list {}", info.key, list.id));
                damaged_lists.push(info.key);
            }
            Err(e) if matches!(e.kind(), ErrorKind::Corrupt | ErrorKind::Crypto) => {
                report.unreadable_gc_lists.push(e.to_string());
                damaged_lists.push(info.key);
            }
            Err(e) => return Err(e),
        }
    }

    progress.set_phase("reading pack headers");
    let stored: Vec<(Id, u64)> = store
        .list_all("data")
        .await?
        .into_iter()
        .filter_map(|i| {
            let name = i.key.rsplit('/').next().unwrap_or("");
            Id::parse(name)
                .ok()
                .filter(|id| id.to_hex() == name && pack_key(id) == i.key)
                .map(|id| (id, i.size))
        })
        .collect();
    report.packs = stored.len();
    progress.set_total(stored.len() as u64);
    let headers: Vec<(Id, u64, Result<Vec<HeaderEntry>>)> = futures::stream::iter(stored)
        .map(|(id, size)| {
            let progress = progress.clone();
            async move {
                let header = read_header(repo, &id, size).await;
                progress.add(1);
                (id, size, header)
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    let mut sound: HashMap<Id, (u64, Vec<HeaderEntry>)> = HashMap::new();
    let mut damaged_packs: HashSet<Id> = HashSet::new();
    for (id, size, header) in headers {
        match header {
            Ok(entries) => {
                sound.insert(id, (size, entries));
            }
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) if matches!(e.kind(), ErrorKind::Corrupt | ErrorKind::Crypto) => {
                report.unreadable_packs.push(e.to_string());
                damaged_packs.insert(id);
            }
            Err(e) => return Err(e),
        }
    }
    report.unreadable_packs.sort();

    // Packs: every sound header, and the old records of committed packs whose header is damaged.
    let old_records: HashMap<Id, PackRecord> = readable
        .iter()
        .flat_map(|(_, f)| f.packs.iter().map(|p| (p.id, *p)))
        .collect();
    let mut merged = IndexFile {
        version: 1,
        session: Id::ZERO,
        created: Timestamp::now(),
        supersedes: all_ids.clone(),
        packs: Vec::new(),
        segments: Vec::new(),
        hooks: String::new(),
    };
    merged.supersedes.sort();
    let mut sound_ids: Vec<&Id> = sound.keys().collect();
    sound_ids.sort();
    for id in sound_ids {
        if condemned.contains(id) {
            report.condemned_left_out += 1;
            continue;
        }
        let (size, entries) = &sound[id];
        let summary = PackSummary {
            blobs: entries.len() as u32,
            stored: *size,
            raw: entries.iter().map(|e| e.raw_len as u64).sum(),
        };
        match old_records.get(id) {
            Some(old) if old.summary == summary => {}
            _ => report.packs_recovered += 1,
        }
        merged.packs.push(PackRecord { id: *id, summary });
    }
    let mut kept_damaged: Vec<&PackRecord> = old_records
        .values()
        .filter(|p| damaged_packs.contains(&p.id) && !condemned.contains(&p.id))
        .collect();
    kept_damaged.sort_by_key(|p| p.id);
    merged.packs.extend(kept_damaged.into_iter().copied());
    report.packs_indexed = merged.packs.len();
    report.missing_packs_dropped = old_records
        .keys()
        .filter(|p| !sound.contains_key(*p) && !damaged_packs.contains(*p))
        .count();
    let committed: HashSet<Id> = merged.packs.iter().map(|p| p.id).collect();

    // Segments of the readable indexes whose content list is still where they say.
    let entry_matches = |r: &BlobRef| {
        sound.get(&r.pack).is_some_and(|(_, entries)| {
            entries.get(r.index as usize).is_some_and(|e| {
                e.kind == BlobType::Content
                    && e.id == r.id
                    && e.offset == r.offset
                    && e.stored_len == r.stored_len
                    && e.raw_len == r.raw_len
            })
        }) && committed.contains(&r.pack)
    };
    let mut hooks: Vec<(u64, u32)> = Vec::new();
    let mut known_segments: HashSet<(Id, u32)> = HashSet::new();
    for (id, file) in &readable {
        let base = merged.segments.len();
        let mut ordinal: Vec<Option<u32>> = Vec::with_capacity(file.segments.len());
        let mut kept = 0usize;
        for s in &file.segments {
            if entry_matches(&s.r) && known_segments.insert((s.r.pack, s.r.index)) {
                ordinal.push(Some((base + kept) as u32));
                kept += 1;
            } else {
                ordinal.push(None);
            }
        }
        for (i, s) in file.segments.iter().enumerate() {
            if ordinal[i].is_none() {
                continue;
            }
            let next = usize::try_from(s.next)
                .ok()
                .and_then(|n| ordinal.get(n).copied().flatten())
                .map_or(-1, i64::from);
            merged.segments.push(SegmentRecord { r: s.r, next });
        }
        // Hooks that do not decode only cost dedup; the segments stay.
        if let Ok(pairs) = decode_hooks(&file.hooks, &index_key(id)) {
            hooks.extend(pairs.into_iter().filter_map(|(hook, segment)| {
                ordinal
                    .get(segment as usize)
                    .copied()
                    .flatten()
                    .map(|n| (hook, n))
            }));
        }
    }

    // Content lists no readable index names: segments of their own, hooks from their refs.
    let mut orphans: Vec<BlobRef> = Vec::new();
    for id in &committed {
        let Some((_, entries)) = sound.get(id) else {
            continue;
        };
        for (index, e) in entries.iter().enumerate() {
            if e.kind == BlobType::Content && !known_segments.contains(&(*id, index as u32)) {
                orphans.push(BlobRef {
                    id: e.id,
                    pack: *id,
                    index: index as u32,
                    offset: e.offset,
                    stored_len: e.stored_len,
                    raw_len: e.raw_len,
                });
            }
        }
    }
    orphans.sort_by_key(|r| (r.pack, r.index));
    progress.set_phase("reading content lists");
    let bits = repo.config().hook_bits;
    let read: Vec<(BlobRef, Result<Vec<BlobRef>>)> = futures::stream::iter(orphans)
        .map(|r| async move { (r, repo.read_content_list(&r).await) })
        .buffered(16)
        .collect()
        .await;
    for (r, refs) in read {
        // A content list that does not open is not offered to writers' dedup windows.
        let Ok(refs) = refs else { continue };
        let ordinal = merged.segments.len() as u32;
        merged.segments.push(SegmentRecord { r, next: -1 });
        report.segments_recovered += 1;
        hooks.extend(
            refs.iter()
                .filter(|c| !c.is_zero_run() && is_hook(&c.id, bits))
                .map(|c| (c.id.prefix_u64(), ordinal)),
        );
    }
    hooks.sort_unstable();
    hooks.dedup();
    merged.hooks = encode_hooks(&hooks);

    report.needed = !report.unreadable_indexes.is_empty()
        || report.packs_recovered > 0
        || report.missing_packs_dropped > 0
        || !report.unreadable_gc_lists.is_empty();
    if options.dry_run || !report.needed {
        return Ok(report);
    }

    progress.set_phase("writing the index");
    // No prune can sweep a list that does not open; the packs it named are marked again by
    // the next prune if still unreferenced.
    for key in &damaged_lists {
        store.delete(key).await?;
    }
    if report.packs_recovered > 0
        || report.missing_packs_dropped > 0
        || !report.unreadable_indexes.is_empty()
    {
        let id = Id::random();
        let key = index_key(&id);
        let bytes = sealed::seal(repo.keys(), Kind::Index, &key, &merged)?;
        store.put(&key, bytes.into()).await?;
        report.new_index = Some(id);
        for old in &merged.supersedes {
            store.delete(&index_key(old)).await?;
            report.removed_indexes += 1;
        }
    }
    Ok(report)
}
