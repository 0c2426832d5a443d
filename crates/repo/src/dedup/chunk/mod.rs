//! Content-defined chunking: page mode for files, tar mode for tar streams, byte mode for
//! anything else (docs/FORMAT.md §5.5, with the reasoning behind the sizes).

mod page;
mod reader;
mod tar;

use fastcdc::v2020::{Normalization, cut_gear, get_gear_with_seed, select_masks};
use serde::{Deserialize, Serialize};

pub use page::PageChunker;
pub use reader::{Chunk, ChunkReader};
pub use tar::TarChunker;

/// Chunker parameters, fixed at `init` and stored in the repository config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkerParams {
    /// Page size of page mode (8 KiB: PostgreSQL).
    pub page_size: u32,
    /// Page mode: minimum chunk in pages.
    pub min_pages: u32,
    /// Page mode: pages after which cutting gets likely.
    pub normal_pages: u32,
    /// Page mode: maximum chunk in pages.
    pub max_pages: u32,
    /// Byte mode: minimum, average and maximum chunk size.
    pub byte_min: u32,
    /// Byte mode average.
    pub byte_avg: u32,
    /// Byte mode maximum.
    pub byte_max: u32,
}

impl Default for ChunkerParams {
    fn default() -> Self {
        ChunkerParams {
            page_size: 8192,
            min_pages: 1,
            normal_pages: 2,
            max_pages: 16,
            byte_min: 4096,
            byte_avg: 16384,
            byte_max: 131072,
        }
    }
}

impl ChunkerParams {
    /// The largest chunk any mode produces.
    pub fn max_chunk(&self) -> usize {
        (self.page_size as usize * self.max_pages as usize).max(self.byte_max as usize)
    }

    /// Refuses parameters the chunkers cannot work with (from a damaged config).
    pub fn check(&self) -> crate::Result<()> {
        let ok = self.page_size >= 512
            && self.page_size.is_power_of_two()
            && self.min_pages >= 1
            && self.min_pages <= self.normal_pages
            && self.normal_pages <= self.max_pages
            && self.max_pages as u64 * self.page_size as u64 <= 16 << 20
            && self.byte_min >= fastcdc::v2020::MINIMUM_MIN as u32
            && self.byte_min < self.byte_avg
            && self.byte_avg < self.byte_max
            && self.byte_max as usize <= fastcdc::v2020::MAXIMUM_MAX;
        if ok {
            Ok(())
        } else {
            Err(crate::Error::corrupt(format!(
                "chunker parameters {self:?} are invalid"
            )))
        }
    }
}

/// Byte-mode (FastCDC) cutting with a keyed gear table.
#[derive(Debug, Clone)]
pub struct ByteChunker {
    gear: Box<[u64; 256]>,
    gear_ls: Box<[u64; 256]>,
    mask_s: u64,
    mask_l: u64,
    min: usize,
    avg: usize,
    max: usize,
}

impl ByteChunker {
    /// A byte chunker whose gear table is derived from the chunker key.
    pub fn new(params: &ChunkerParams, key: &[u8; 32]) -> ByteChunker {
        let seed = u64::from_le_bytes(
            blake3::keyed_hash(key, b"byte mode gear seed").as_bytes()[..8]
                .try_into()
                .unwrap_or([0; 8]),
        );
        let (gear, gear_ls) = get_gear_with_seed(seed);
        let mut g = Box::new([0u64; 256]);
        let mut gl = Box::new([0u64; 256]);
        g.copy_from_slice(&gear);
        gl.copy_from_slice(&gear_ls);
        let (mask_s, mask_l) = select_masks(params.byte_avg as usize, Normalization::Level2);
        ByteChunker {
            gear: g,
            gear_ls: gl,
            mask_s,
            mask_l,
            min: params.byte_min as usize,
            avg: params.byte_avg as usize,
            max: params.byte_max as usize,
        }
    }

    /// The largest chunk.
    pub fn max_len(&self) -> usize {
        self.max
    }

    /// Length of the next chunk of `data`, or `None` if more data is needed. `end` means
    /// `data` ends at a hard boundary (end of input or of a region).
    pub fn next_cut(&self, data: &[u8], end: bool) -> Option<usize> {
        if data.is_empty() {
            return None;
        }
        if data.len() < self.max && !end {
            return None;
        }
        if data.len() <= self.min {
            return Some(data.len());
        }
        let window = &data[..data.len().min(self.max)];
        let (_, cut) = cut_gear(
            window,
            self.min,
            self.avg,
            self.max,
            self.mask_s,
            self.mask_l,
            self.mask_s << 1,
            self.mask_l << 1,
            &self.gear[..],
            &self.gear_ls[..],
        );
        Some(cut.max(1))
    }
}

/// Which chunker an input gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Files of a directory tree.
    Page,
    /// Streams: tar mode if they start with a tar header, byte mode otherwise.
    Stream,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_params_are_valid_and_bad_ones_are_refused() {
        ChunkerParams::default().check().expect("valid");
        let bad = ChunkerParams {
            page_size: 1000,
            ..Default::default()
        };
        assert!(bad.check().is_err());
    }

    #[test]
    fn byte_mode_cuts_within_bounds_and_is_shift_resistant() {
        let params = ChunkerParams::default();
        let chunker = ByteChunker::new(&params, &[9u8; 32]);
        let mut state = 1u64;
        let data: Vec<u8> = (0..1 << 20)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (state >> 33) as u8
            })
            .collect();
        let cuts = |data: &[u8]| {
            let mut out = Vec::new();
            let mut pos = 0;
            while let Some(len) = chunker.next_cut(&data[pos..], true) {
                assert!(len <= params.byte_max as usize);
                pos += len;
                out.push(pos);
            }
            out
        };
        let a = cuts(&data);
        assert_eq!(a.last().copied(), Some(data.len()));
        let mut shifted = vec![1u8, 2, 3];
        shifted.extend_from_slice(&data);
        let b: Vec<usize> = cuts(&shifted).into_iter().map(|c| c - 3).collect();
        let common = a.iter().filter(|c| b.contains(c)).count();
        assert!(
            common * 10 > a.len() * 9,
            "most boundaries survive an insertion: {common}/{}",
            a.len()
        );
    }
}
