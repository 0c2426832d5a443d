//! The dedup window: a bounded map from chunk id to ref, filled from content lists likely to
//! contain what is being backed up: the parent file's, those that hooks point at, and their
//! successors (docs/FORMAT.md §6.2). Nothing here grows with the repository.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use tokio::task::JoinSet;

use super::blobref::BlobRef;
use super::id::Id;
use super::index::IndexView;
use super::repository::Repository;
use crate::Result;

/// Chain 0 is the index's segment chains (positions are view ordinals); parent chains of
/// files get 1, 2, …; session refs use `SESSION`.
const INDEX_CHAIN: u32 = 0;
const SESSION: u32 = u32::MAX;

type SegKey = (u32, u32);

#[derive(Debug, Clone, Copy)]
struct Entry {
    r: BlobRef,
    chain: u32,
    pos: u32,
}

/// Whether a chunk id is a hook (its top `bits` bits are zero).
pub fn is_hook(id: &Id, bits: u8) -> bool {
    let top = u16::from_be_bytes([id.0[0], id.0[1]]);
    top >> (16 - bits as u32) == 0
}

/// A per-file/stream lookup window.
pub(crate) struct Window {
    repo: Repository,
    view: Arc<IndexView>,
    map: HashMap<Id, Entry>,
    segments: VecDeque<(SegKey, Vec<Id>)>,
    session: VecDeque<Id>,
    requested: HashSet<SegKey>,
    chains: Vec<Arc<Vec<BlobRef>>>,
    pending: JoinSet<(SegKey, Result<Vec<BlobRef>>)>,
    cap_segments: usize,
    cap_session: usize,
}

impl Window {
    pub(crate) fn new(repo: Repository, view: Arc<IndexView>) -> Window {
        let cap_segments = repo.options().window_segments.max(2);
        let cap_session = cap_segments * repo.config().segment_refs as usize;
        Window {
            repo,
            view,
            map: HashMap::new(),
            segments: VecDeque::new(),
            session: VecDeque::new(),
            requested: HashSet::new(),
            chains: vec![Arc::new(Vec::new())],
            pending: JoinSet::new(),
            cap_segments,
            cap_session,
        }
    }

    /// Starts from a parent file's content lists: loads the first two and waits for them.
    pub(crate) async fn start_from_parent(&mut self, content: Vec<BlobRef>) {
        if content.is_empty() {
            return;
        }
        let chain = self.chains.len() as u32;
        self.chains.push(Arc::new(content));
        self.request((chain, 0));
        self.request((chain, 1));
        while let Some(done) = self.pending.join_next().await {
            if let Ok((key, result)) = done {
                self.install(key, result);
            }
        }
    }

    /// Looks a chunk up; a hit from a chain prefetches the next two segments of that chain.
    pub(crate) fn lookup(&mut self, id: &Id) -> Option<BlobRef> {
        self.drain_loaded();
        let entry = *self.map.get(id)?;
        if entry.chain != SESSION {
            for step in 1..=2 {
                if let Some(next) = self.successor(entry.chain, entry.pos, step) {
                    self.request((entry.chain, next));
                }
            }
        }
        Some(entry.r)
    }

    /// A miss in the map: first waits for the content lists already being prefetched (the
    /// chunk is most likely in one of them, and whether it dedups must not depend on how fast
    /// the store answers), then, if the chunk is a hook, loads the segment it points at and
    /// starts loading its successor. Returns the ref if the chunk turned out to be known.
    pub(crate) async fn on_miss(&mut self, id: &Id) -> Option<BlobRef> {
        while let Some(done) = self.pending.join_next().await {
            if let Ok((key, result)) = done {
                self.install(key, result);
            }
        }
        if let Some(r) = self.lookup(id) {
            return Some(r);
        }
        if !is_hook(id, self.repo.config().hook_bits) {
            return None;
        }
        let ordinal = self.view.hook(id.prefix_u64())?;
        let key = (INDEX_CHAIN, ordinal);
        if self.requested.insert(key)
            && let Some(r) = self.segment_ref(key)
            && self.view.usable(&r.pack)
        {
            let result = self.repo.read_content_list(&r).await;
            self.install(key, result);
        }
        if let Some(next) = self.successor(INDEX_CHAIN, ordinal, 1) {
            self.request((INDEX_CHAIN, next));
        }
        self.lookup(id)
    }

    /// Remembers a ref written by this session (bounded, oldest forgotten first).
    pub(crate) fn remember(&mut self, r: BlobRef) {
        if r.is_zero_run() {
            return;
        }
        self.map.insert(
            r.id,
            Entry {
                r,
                chain: SESSION,
                pos: 0,
            },
        );
        self.session.push_back(r.id);
        while self.session.len() > self.cap_session {
            if let Some(old) = self.session.pop_front()
                && self.map.get(&old).is_some_and(|e| e.chain == SESSION)
            {
                self.map.remove(&old);
            }
        }
    }

    fn successor(&self, chain: u32, pos: u32, step: u32) -> Option<u32> {
        if chain == INDEX_CHAIN {
            let mut p = pos;
            for _ in 0..step {
                p = self.view.segments.get(p as usize)?.next;
                if p == u32::MAX {
                    return None;
                }
            }
            Some(p)
        } else {
            let next = pos.checked_add(step)?;
            ((next as usize) < self.chains.get(chain as usize)?.len()).then_some(next)
        }
    }

    fn segment_ref(&self, key: SegKey) -> Option<BlobRef> {
        if key.0 == INDEX_CHAIN {
            self.view.segments.get(key.1 as usize).map(|s| s.r)
        } else {
            self.chains
                .get(key.0 as usize)?
                .get(key.1 as usize)
                .copied()
        }
    }

    fn request(&mut self, key: SegKey) {
        if !self.requested.insert(key) {
            return;
        }
        let Some(r) = self.segment_ref(key) else {
            return;
        };
        if !self.view.usable(&r.pack) {
            return;
        }
        let repo = self.repo.clone();
        self.pending
            .spawn(async move { (key, repo.read_content_list(&r).await) });
    }

    fn drain_loaded(&mut self) {
        while let Some(done) = self.pending.try_join_next() {
            if let Ok((key, result)) = done {
                self.install(key, result);
            }
        }
    }

    fn install(&mut self, key: SegKey, result: Result<Vec<BlobRef>>) {
        let refs = match result {
            Ok(refs) => refs,
            Err(e) => {
                tracing::debug!(error = %e, "loading a content list for dedup failed; continuing without it");
                return;
            }
        };
        let mut ids = Vec::with_capacity(refs.len());
        for r in refs {
            if r.is_zero_run() || !self.view.usable(&r.pack) {
                continue;
            }
            self.map.insert(
                r.id,
                Entry {
                    r,
                    chain: key.0,
                    pos: key.1,
                },
            );
            ids.push(r.id);
        }
        self.segments.push_back((key, ids));
        while self.segments.len() > self.cap_segments {
            if let Some((old, ids)) = self.segments.pop_front() {
                for id in ids {
                    if self.map.get(&id).is_some_and(|e| (e.chain, e.pos) == old) {
                        self.map.remove(&id);
                    }
                }
                // Allow it to be loaded again if the data comes back around.
                self.requested.remove(&old);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hooks_are_one_in_two_to_the_bits() {
        let mut hooks = 0;
        for i in 0..65536u32 {
            let id = Id(*blake3::hash(&i.to_le_bytes()).as_bytes());
            if is_hook(&id, 7) {
                hooks += 1;
            }
        }
        assert!((400..650).contains(&hooks), "{hooks} hooks in 65536");
    }
}
