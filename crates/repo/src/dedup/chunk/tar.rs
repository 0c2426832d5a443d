//! Tar mode: a stream that starts with a tar header is walked header by header as it passes,
//! and the data of each member of at least 64 KiB is chunked in page mode from its own first
//! byte, with forced cuts at its start and end (docs/FORMAT.md §5.5). Everything else (headers,
//! small members, padding, what follows the archive) is chunked in byte mode.

use super::{ByteChunker, PageChunker};

/// Members at least this large are chunked in page mode.
pub const PAGE_MEMBER_MIN: u64 = 64 * 1024;
const BLOCK: usize = 512;

/// Parses a 512-byte ustar/GNU/pax header: `Some((size, is_regular_file))`, or `None` for
/// a zero block or anything that is not a valid header.
pub fn parse_header(block: &[u8]) -> Option<(u64, bool)> {
    if block.len() < BLOCK || block.iter().all(|&b| b == 0) {
        return None;
    }
    let stored = parse_octal(&block[148..156])?;
    let computed: u64 = block
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if (148..156).contains(&i) {
                b' ' as u64
            } else {
                b as u64
            }
        })
        .sum();
    if stored != computed {
        return None;
    }
    let size = if block[124] & 0x80 != 0 {
        block[125..136].iter().fold(0u64, |acc, &b| {
            acc.saturating_mul(256).saturating_add(b as u64)
        })
    } else {
        parse_octal(&block[124..136])?
    };
    let regular = matches!(block[156], b'0' | 0 | b'7');
    Some((size, regular))
}

fn parse_octal(field: &[u8]) -> Option<u64> {
    let text = field
        .iter()
        .skip_while(|&&b| b == b' ')
        .take_while(|&&b| (b'0'..=b'7').contains(&b))
        .try_fold(0u64, |acc, &b| {
            acc.checked_mul(8).map(|a| a + (b - b'0') as u64)
        });
    let rest_ok = field
        .iter()
        .skip_while(|&&b| b == b' ')
        .skip_while(|&&b| (b'0'..=b'7').contains(&b))
        .all(|&b| b == 0 || b == b' ');
    if rest_ok { text } else { None }
}

#[derive(Debug, Clone, Copy)]
enum State {
    /// The first block has not been seen yet.
    Unknown,
    /// Walking a tar archive.
    Tar {
        /// Absolute position of the next header not parsed yet (`None` after the end).
        next_header: Option<u64>,
        /// The data of a large member found ahead: `[start, end)`.
        page_region: Option<(u64, u64)>,
    },
    /// Not a tar stream.
    Bytes,
}

/// The stream chunker: tar mode or byte mode, decided by the first 512 bytes.
#[derive(Debug, Clone)]
pub struct TarChunker {
    page: PageChunker,
    bytes: ByteChunker,
    pos: u64,
    state: State,
}

impl TarChunker {
    /// A stream chunker.
    pub fn new(page: PageChunker, bytes: ByteChunker) -> TarChunker {
        TarChunker {
            page,
            bytes,
            pos: 0,
            state: State::Unknown,
        }
    }

    /// Length of the next chunk at the start of `data` (which begins at the current stream
    /// position), or `None` if more data is needed. Call [`TarChunker::advance`] with the
    /// length taken.
    pub fn next_cut(&mut self, data: &[u8], eof: bool) -> Option<usize> {
        if data.is_empty() {
            return None;
        }
        if let State::Unknown = self.state {
            if data.len() < BLOCK && !eof {
                return None;
            }
            self.state = if self.pos == 0 && parse_header(&data[..data.len().min(BLOCK)]).is_some()
            {
                State::Tar {
                    next_header: Some(0),
                    page_region: None,
                }
            } else {
                State::Bytes
            };
        }
        let State::Tar {
            next_header,
            page_region,
        } = &mut self.state
        else {
            return self.bytes.next_cut(data, eof);
        };
        // Inside a large member's data: page mode up to its end.
        if let Some((start, end)) = *page_region
            && self.pos >= start
        {
            let remaining = (end - self.pos) as usize;
            let slice = &data[..data.len().min(remaining)];
            return self.page.next_cut(slice, remaining <= data.len() || eof);
        }
        // Parse the headers that are in the buffer until a large member shows up.
        while page_region.is_none() {
            let Some(header) = *next_header else { break };
            let at = (header - self.pos) as usize;
            if at + BLOCK > data.len() {
                break;
            }
            match parse_header(&data[at..at + BLOCK]) {
                None => *next_header = None,
                Some((size, regular)) => {
                    let data_start = header + BLOCK as u64;
                    *next_header = Some(data_start + size.div_ceil(BLOCK as u64) * BLOCK as u64);
                    if regular && size >= PAGE_MEMBER_MIN {
                        *page_region = Some((data_start, data_start + size));
                    }
                }
            }
        }
        match (*page_region, *next_header) {
            // A large member's data starts at `start`: byte chunks stop there.
            (Some((start, _)), _) => {
                let room = (start - self.pos) as usize;
                if room <= data.len() {
                    self.bytes.next_cut(&data[..room], true)
                } else {
                    self.bytes.next_cut(data, eof)
                }
            }
            // The next header is not in the buffer yet; a large member's data could start
            // right after it, so a byte chunk may not reach past that point.
            (None, Some(header)) => {
                let room = (header + BLOCK as u64 - self.pos) as usize;
                if room >= self.bytes.max_len() || eof {
                    self.bytes.next_cut(data, eof)
                } else {
                    None
                }
            }
            (None, None) => self.bytes.next_cut(data, eof),
        }
    }

    /// Moves past a chunk of `len` bytes.
    pub fn advance(&mut self, len: usize) {
        self.pos += len as u64;
        if let State::Tar { page_region, .. } = &mut self.state
            && let Some((_, end)) = *page_region
            && self.pos >= end
        {
            *page_region = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::ChunkerParams;
    use super::*;

    fn header(name: &str, size: u64) -> Vec<u8> {
        let mut h = vec![0u8; BLOCK];
        h[..name.len()].copy_from_slice(name.as_bytes());
        h[100..107].copy_from_slice(b"0000644");
        h[124..135].copy_from_slice(format!("{size:011o}").as_bytes());
        h[136..147].copy_from_slice(b"00000000000");
        h[156] = b'0';
        h[257..262].copy_from_slice(b"ustar");
        h[148..156].copy_from_slice(b"        ");
        let sum: u64 = h.iter().map(|&b| b as u64).sum();
        h[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
        h
    }

    fn noise(len: usize, seed: u64) -> Vec<u8> {
        let mut state = seed | 1;
        (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect()
    }

    fn tar(members: &[(&str, Vec<u8>)]) -> Vec<u8> {
        let mut out = Vec::new();
        for (name, data) in members {
            out.extend(header(name, data.len() as u64));
            out.extend_from_slice(data);
            out.resize(out.len().div_ceil(BLOCK) * BLOCK, 0);
        }
        out.extend(vec![0u8; 2 * BLOCK]);
        out
    }

    fn chunker() -> TarChunker {
        let params = ChunkerParams::default();
        TarChunker::new(
            PageChunker::new(&params, &[3; 32]),
            ByteChunker::new(&params, &[3; 32]),
        )
    }

    /// Chunks `data` feeding it in pieces of `step` bytes, as a reader would.
    fn chunk_all(data: &[u8], step: usize) -> Vec<(usize, usize)> {
        let mut c = chunker();
        let mut out = Vec::new();
        let mut start = 0;
        let mut available = step.min(data.len());
        loop {
            let eof = available == data.len();
            match c.next_cut(&data[start..available], eof) {
                Some(len) => {
                    assert!(len > 0);
                    out.push((start, start + len));
                    c.advance(len);
                    start += len;
                    if start == data.len() {
                        return out;
                    }
                }
                None => {
                    assert!(!eof, "no cut at eof");
                    available = (available + step).min(data.len());
                }
            }
        }
    }

    #[test]
    fn headers_parse_and_garbage_does_not() {
        assert_eq!(parse_header(&header("a", 70000)), Some((70000, true)));
        assert_eq!(parse_header(&[0u8; 512]), None);
        let mut bad = header("a", 1);
        bad[0] ^= 1;
        assert_eq!(parse_header(&bad), None);
    }

    #[test]
    fn large_members_are_chunked_like_files_wherever_they_sit() {
        let table = noise(40 * 8192, 5);
        let page = PageChunker::new(&ChunkerParams::default(), &[3; 32]);
        let mut file_chunks = Vec::new();
        let mut pos = 0;
        while let Some(len) = page.next_cut(&table[pos..], true) {
            file_chunks.push(table[pos..pos + len].to_vec());
            pos += len;
        }
        for prefix_len in [10usize, 3000] {
            let archive = tar(&[
                ("small", noise(prefix_len, 1)),
                ("base/1/1259", table.clone()),
                ("tail", noise(100, 2)),
            ]);
            for step in [4096usize, 100_000, archive.len()] {
                let chunks: Vec<Vec<u8>> = chunk_all(&archive, step)
                    .into_iter()
                    .map(|(a, b)| archive[a..b].to_vec())
                    .collect();
                for fc in &file_chunks {
                    assert!(
                        chunks.contains(fc),
                        "a file chunk is missing (prefix {prefix_len}, step {step})"
                    );
                }
            }
        }
    }

    #[test]
    fn non_tar_streams_use_byte_mode_and_cover_everything() {
        let data = noise(300_000, 8);
        let chunks = chunk_all(&data, 50_000);
        assert_eq!(chunks.first().map(|c| c.0), Some(0));
        assert_eq!(chunks.last().map(|c| c.1), Some(data.len()));
        assert!(chunks.windows(2).all(|w| w[0].1 == w[1].0));
    }
}
