//! Page mode: cut points only at page boundaries, decided by a keyed hash of the 64 bytes
//! before the boundary, with strong normalisation around two pages (docs/FORMAT.md §5.5).

use super::ChunkerParams;

/// Cuts at page boundaries of the data it is given (positions relative to where the
/// caller started, which must be page-aligned in the file).
#[derive(Debug, Clone)]
pub struct PageChunker {
    key: [u8; 32],
    page: usize,
    min: usize,
    normal: usize,
    max: usize,
}

/// Cut probability before `normal` pages: 1/8.
const BEFORE_NORMAL: u64 = u64::MAX / 8;
/// Cut probability from `normal` pages on: 3/4.
const AFTER_NORMAL: u64 = u64::MAX / 4 * 3;

impl PageChunker {
    /// A page chunker with the repository's parameters and chunker key.
    pub fn new(params: &ChunkerParams, key: &[u8; 32]) -> PageChunker {
        PageChunker {
            key: *blake3::keyed_hash(key, b"page mode").as_bytes(),
            page: params.page_size as usize,
            min: params.min_pages as usize,
            normal: params.normal_pages as usize,
            max: params.max_pages as usize,
        }
    }

    /// The page size.
    pub fn page_size(&self) -> usize {
        self.page
    }

    /// The largest chunk.
    pub fn max_len(&self) -> usize {
        self.page * self.max
    }

    fn cut_here(&self, before: &[u8], pages: usize) -> bool {
        if pages < self.min {
            return false;
        }
        if pages >= self.max {
            return true;
        }
        let hash = blake3::keyed_hash(&self.key, before);
        let value = u64::from_le_bytes(hash.as_bytes()[..8].try_into().unwrap_or([0; 8]));
        value
            < if pages < self.normal {
                BEFORE_NORMAL
            } else {
                AFTER_NORMAL
            }
    }

    /// Length of the next chunk at the start of `data`, or `None` if more data is needed.
    /// `end` means `data` ends at a hard boundary (end of file or of a tar member).
    pub fn next_cut(&self, data: &[u8], end: bool) -> Option<usize> {
        if data.is_empty() {
            return None;
        }
        let mut pages = 1;
        loop {
            let pos = pages * self.page;
            if pos >= data.len() {
                return if end || pos == data.len() && pages >= self.max {
                    Some(data.len())
                } else if pos == data.len() && self.cut_here(&data[pos - 64..pos], pages) {
                    Some(pos)
                } else {
                    None
                };
            }
            if self.cut_here(&data[pos - 64..pos], pages) {
                return Some(pos);
            }
            pages += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pages(n: usize, seed: u64) -> Vec<u8> {
        let mut state = seed | 1;
        (0..n * 8192)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect()
    }

    fn cut_all(chunker: &PageChunker, data: &[u8]) -> Vec<usize> {
        let mut out = Vec::new();
        let mut pos = 0;
        while let Some(len) = chunker.next_cut(&data[pos..], true) {
            pos += len;
            out.push(pos);
        }
        out
    }

    #[test]
    fn cuts_are_page_aligned_bounded_and_average_about_two_pages() {
        let chunker = PageChunker::new(&ChunkerParams::default(), &[1; 32]);
        let data = pages(4096, 7);
        let cuts = cut_all(&chunker, &data);
        let mut prev = 0;
        for &c in &cuts {
            assert_eq!(c % 8192, 0);
            assert!(c - prev <= 16 * 8192 && c > prev);
            prev = c;
        }
        let mean = data.len() as f64 / cuts.len() as f64 / 8192.0;
        assert!((1.8..2.6).contains(&mean), "mean {mean} pages");
    }

    #[test]
    fn rewriting_five_percent_of_pages_dirties_about_twelve_percent_of_bytes() {
        let chunker = PageChunker::new(&ChunkerParams::default(), &[1; 32]);
        let n = 8192;
        let before = pages(n, 11);
        let mut after = before.clone();
        let mut state = 99u64;
        for _ in 0..n / 20 {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1);
            let page = (state >> 33) as usize % n;
            after[page * 8192..(page + 1) * 8192].copy_from_slice(&pages(1, state)[..]);
        }
        let chunks = |data: &[u8]| {
            let mut set = std::collections::HashSet::new();
            let mut pos = 0;
            for end in cut_all(&chunker, data) {
                set.insert(blake3::hash(&data[pos..end]));
                pos = end;
            }
            set
        };
        let old = chunks(&before);
        let mut dirty = 0usize;
        let mut pos = 0;
        for end in cut_all(&chunker, &after) {
            if !old.contains(&blake3::hash(&after[pos..end])) {
                dirty += end - pos;
            }
            pos = end;
        }
        let fraction = dirty as f64 / after.len() as f64;
        assert!(fraction < 0.16, "dirty fraction {fraction}");
        assert!(fraction > 0.05, "dirty fraction {fraction}");
    }

    #[test]
    fn needs_more_data_unless_at_the_end() {
        let chunker = PageChunker::new(&ChunkerParams::default(), &[1; 32]);
        let data = pages(1, 3);
        assert_eq!(chunker.next_cut(&data[..100], true), Some(100));
        assert_eq!(chunker.next_cut(&data[..100], false), None);
    }
}
