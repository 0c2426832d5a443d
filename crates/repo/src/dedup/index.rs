//! Index objects (what one writer session committed) and the in-memory view every client
//! loads: committed packs, segment chains and the sampled hook map (docs/FORMAT.md §5.8, §6.4).

use std::collections::{HashMap, HashSet};

use futures::{StreamExt, TryStreamExt};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::blobref::BlobRef;
use super::id::Id;
use super::keys::MasterKeys;
use super::pack::PackSummary;
use super::repository::list_ids;
use super::sealed::{self, Kind};
use crate::backend::Store;
use crate::{Error, ErrorKind, Result};

/// A pack committed by an index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackRecord {
    /// Pack id.
    pub id: Id,
    /// Totals.
    #[serde(flatten)]
    pub summary: PackSummary,
}

/// A content list written by a session, with the ordinal of the next one of the same
/// file or stream (or -1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentRecord {
    /// The content list.
    #[serde(rename = "ref")]
    pub r: BlobRef,
    /// Next segment ordinal in this index, -1 if none.
    pub next: i64,
}

/// An index object (`index/<id>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexFile {
    /// Format version (1).
    pub version: u32,
    /// Writer session.
    pub session: Id,
    /// When written.
    pub created: Timestamp,
    /// Indexes this one replaces (written by prune).
    #[serde(default)]
    pub supersedes: Vec<Id>,
    /// Packs committed.
    pub packs: Vec<PackRecord>,
    /// Content lists written.
    #[serde(default)]
    pub segments: Vec<SegmentRecord>,
    /// hex of (u64 LE hook, u32 LE segment ordinal) pairs.
    #[serde(default)]
    pub hooks: String,
}

/// The object key of an index.
pub fn index_key(id: &Id) -> String {
    format!("index/{id}")
}

/// Encodes hook pairs for [`IndexFile::hooks`].
pub fn encode_hooks(hooks: &[(u64, u32)]) -> String {
    let mut bytes = Vec::with_capacity(hooks.len() * 12);
    for (hook, segment) in hooks {
        bytes.extend_from_slice(&hook.to_le_bytes());
        bytes.extend_from_slice(&segment.to_le_bytes());
    }
    hex::encode(bytes)
}

/// Decodes [`IndexFile::hooks`].
pub fn decode_hooks(text: &str, name: &str) -> Result<Vec<(u64, u32)>> {
    let bytes =
        hex::decode(text).map_err(|_| Error::corrupt(format!("{name}: hooks are not hex")))?;
    if bytes.len() % 12 != 0 {
        return Err(Error::corrupt(format!(
            "{name}: hooks have a partial entry"
        )));
    }
    Ok(bytes
        .chunks_exact(12)
        .map(|c| {
            let mut h = [0u8; 8];
            h.copy_from_slice(&c[..8]);
            let mut s = [0u8; 4];
            s.copy_from_slice(&c[8..]);
            (u64::from_le_bytes(h), u32::from_le_bytes(s))
        })
        .collect())
}

/// A segment in the loaded view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ViewSegment {
    /// The content list.
    pub r: BlobRef,
    /// Ordinal of the next segment in the view, or `u32::MAX`.
    pub next: u32,
}

/// Everything a writer needs from all live indexes, and nothing per chunk.
#[derive(Debug, Default)]
pub struct IndexView {
    /// Committed packs.
    pub packs: HashMap<Id, PackSummary>,
    /// Which index committed each pack.
    pub pack_index: HashMap<Id, Id>,
    /// Segments of all indexes, ordinals global.
    pub segments: Vec<ViewSegment>,
    /// Sorted (hook, segment ordinal).
    pub hooks: Vec<(u64, u32)>,
    /// Live (not superseded) index ids.
    pub indexes: Vec<Id>,
    /// Packs listed in condemned lists (gc/*).
    pub condemned: HashSet<Id>,
    /// Index objects that did not open, one message each naming the object; their packs are
    /// not in `packs`, so nothing is reused from them.
    pub unreadable: Vec<String>,
}

impl IndexView {
    /// Loads every index object (16 at a time) and merges them; superseded ones are skipped.
    ///
    /// An index that does not open (damaged, truncated, written with another key) is skipped
    /// and named in [`IndexView::unreadable`]: its packs are then unknown, so nothing is
    /// reused from them and a backup stores their chunks again (a miss only makes a backup
    /// bigger, never wrong). Because a skipped index may have superseded older ones that name
    /// packs prune has since deleted, a view with unreadable indexes also drops every pack that
    /// is not in `data/` (one listing). `cairnctl repo repair index` rebuilds what was skipped.
    pub async fn load(store: &Store, keys: &MasterKeys) -> Result<IndexView> {
        let names = list_ids(store, "index").await?.ids;
        let results: Vec<Result<Option<(Id, IndexFile)>>> = futures::stream::iter(names)
            .map(|(id, info)| async move {
                let key = info.key;
                // An index replaced by a concurrent prune may vanish between list and get.
                let bytes = match store.get(&key).await {
                    Ok(b) => b,
                    Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
                    Err(e) => return Err(e),
                };
                let file: IndexFile = sealed::open(keys, Kind::Index, &key, &bytes)?;
                Ok(Some((id, file)))
            })
            .buffer_unordered(16)
            .collect()
            .await;
        let mut files = Vec::new();
        let mut unreadable = Vec::new();
        for result in results {
            match result {
                Ok(Some(file)) => files.push(file),
                Ok(None) => {}
                Err(e) if matches!(e.kind(), ErrorKind::Corrupt | ErrorKind::Crypto) => {
                    unreadable.push(e.to_string());
                }
                Err(e) => return Err(e),
            }
        }
        let mut view = IndexView::default();
        let superseded: HashSet<Id> = files
            .iter()
            .flat_map(|(_, f)| f.supersedes.iter().copied())
            .collect();
        for (id, file) in files {
            if superseded.contains(&id) {
                continue;
            }
            if let Err(e) = view.add(id, &file) {
                unreadable.push(e.to_string());
            }
        }
        if !unreadable.is_empty() {
            let stored: HashSet<Id> = list_pack_ids(store).await?;
            view.packs.retain(|id, _| stored.contains(id));
            view.pack_index.retain(|id, _| stored.contains(id));
            unreadable.sort();
            for problem in &unreadable {
                tracing::warn!(%problem, "skipping an unreadable index; its packs count as unknown");
            }
        }
        view.unreadable = unreadable;
        view.hooks.sort_unstable();
        Ok(view)
    }

    /// Merges one index file (nothing of it when its hooks do not decode).
    pub fn add(&mut self, id: Id, file: &IndexFile) -> Result<()> {
        let name = index_key(&id);
        let decoded = decode_hooks(&file.hooks, &name)?;
        for pack in &file.packs {
            self.packs.insert(pack.id, pack.summary);
            self.pack_index.insert(pack.id, id);
        }
        let base = self.segments.len() as u32;
        let count = file.segments.len() as i64;
        for s in &file.segments {
            let next = if s.next >= 0 && s.next < count {
                base + s.next as u32
            } else {
                u32::MAX
            };
            self.segments.push(ViewSegment { r: s.r, next });
        }
        for (hook, segment) in decoded {
            if (segment as usize) < file.segments.len() {
                self.hooks.push((hook, base + segment));
            }
        }
        self.indexes.push(id);
        Ok(())
    }

    /// The newest segment containing a hook with this prefix.
    pub fn hook(&self, prefix: u64) -> Option<u32> {
        let start = self.hooks.partition_point(|(h, _)| *h < prefix);
        self.hooks[start..]
            .iter()
            .take_while(|(h, _)| *h == prefix)
            .map(|(_, s)| *s)
            .max()
    }

    /// A message for the user when indexes were skipped, `None` when all opened.
    pub fn unreadable_warning(&self) -> Option<String> {
        if self.unreadable.is_empty() {
            return None;
        }
        Some(format!(
            "skipped {} unreadable index object{} ({}); the packs {} committed count as unknown, \
             so their chunks are stored again; `cairnctl repo repair index` rebuilds the index",
            self.unreadable.len(),
            if self.unreadable.len() == 1 { "" } else { "s" },
            self.unreadable.join("; "),
            if self.unreadable.len() == 1 {
                "it"
            } else {
                "they"
            },
        ))
    }

    /// Whether refs to this pack may be reused (committed and not condemned).
    pub fn usable(&self, pack: &Id) -> bool {
        self.packs.contains_key(pack) && !self.condemned.contains(pack)
    }
}

/// Ids of the pack objects under `data/`.
pub(crate) async fn list_pack_ids(store: &Store) -> Result<HashSet<Id>> {
    store
        .list_stream("data")
        .try_filter_map(|info| async move {
            Ok(info
                .key
                .rsplit('/')
                .next()
                .and_then(|name| Id::parse(name).ok().filter(|id| id.to_hex() == name)))
        })
        .try_collect()
        .await
        .or_else(|e| {
            if e.kind() == ErrorKind::NotFound {
                Ok(HashSet::new())
            } else {
                Err(e)
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hooks_round_trip_and_lookup_prefers_the_newest_segment() {
        let pairs = vec![(5u64, 0u32), (5, 2), (9, 1)];
        let text = encode_hooks(&pairs);
        assert_eq!(decode_hooks(&text, "x").expect("decode"), pairs);
        let mut view = IndexView {
            hooks: pairs,
            ..Default::default()
        };
        view.hooks.sort_unstable();
        assert_eq!(view.hook(5), Some(2));
        assert_eq!(view.hook(9), Some(1));
        assert_eq!(view.hook(7), None);
        assert!(decode_hooks("abc", "x").is_err());
    }
}
