//! Drives a chunker over a `Read`: big reads into one buffer, chunks handed out as
//! zero-copy `Bytes` slices of it.

use std::io::{self, Read};

use bytes::Bytes;

use super::{ByteChunker, ChunkerParams, Mode, PageChunker, TarChunker};

/// One chunk of an input.
#[derive(Debug, Clone)]
pub struct Chunk {
    /// Offset in the input.
    pub offset: u64,
    /// The bytes.
    pub data: Bytes,
}

enum Cutter {
    Page(PageChunker),
    Stream(Box<TarChunker>),
}

/// Splits what a reader yields into chunks.
pub struct ChunkReader<R: Read> {
    reader: R,
    buf: Bytes,
    eof: bool,
    cutter: Cutter,
    offset: u64,
    read_size: usize,
}

impl<R: Read> ChunkReader<R> {
    /// A chunk reader for a file (`Mode::Page`) or a stream (`Mode::Stream`).
    pub fn new(reader: R, mode: Mode, params: &ChunkerParams, key: &[u8; 32]) -> ChunkReader<R> {
        let page = PageChunker::new(params, key);
        let cutter = match mode {
            Mode::Page => Cutter::Page(page),
            Mode::Stream => Cutter::Stream(Box::new(TarChunker::new(
                page,
                ByteChunker::new(params, key),
            ))),
        };
        let read_size = (4 << 20).max(params.max_chunk() * 2);
        ChunkReader {
            reader,
            buf: Bytes::new(),
            eof: false,
            cutter,
            offset: 0,
            read_size,
        }
    }

    /// Bytes consumed so far.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The next chunk, or `None` at the end of the input.
    pub fn next_chunk(&mut self) -> io::Result<Option<Chunk>> {
        loop {
            let cut = match &mut self.cutter {
                Cutter::Page(p) => p.next_cut(&self.buf, self.eof),
                Cutter::Stream(t) => t.next_cut(&self.buf, self.eof),
            };
            if let Some(len) = cut {
                let len = len.min(self.buf.len());
                if let Cutter::Stream(t) = &mut self.cutter {
                    t.advance(len);
                }
                let data = self.buf.split_to(len);
                let chunk = Chunk {
                    offset: self.offset,
                    data,
                };
                self.offset += len as u64;
                return Ok(Some(chunk));
            }
            if self.eof {
                return Ok(None);
            }
            self.fill()?;
        }
    }

    /// Reads up to `read_size` more bytes after what is left, into a new vector's spare
    /// capacity (`read_to_end` does not zero it first); chunks handed out keep the old buffer
    /// alive.
    fn fill(&mut self) -> io::Result<()> {
        let mut next = Vec::with_capacity(self.buf.len() + self.read_size);
        next.extend_from_slice(&self.buf);
        let want = self.read_size as u64;
        let read = (&mut self.reader).take(want).read_to_end(&mut next)?;
        if (read as u64) < want {
            self.eof = true;
        }
        self.buf = Bytes::from(next);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that returns at most `step` bytes per call.
    struct Trickle<'a>(&'a [u8], usize);
    impl Read for Trickle<'_> {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            let n = self.0.len().min(self.1).min(out.len());
            out[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn chunks_cover_the_input_exactly_whatever_the_read_sizes() {
        let data: Vec<u8> = (0..3_000_000u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        for mode in [Mode::Page, Mode::Stream] {
            for step in [1000usize, 65536, 10 << 20] {
                let mut reader = ChunkReader::new(
                    Trickle(&data, step),
                    mode,
                    &ChunkerParams::default(),
                    &[5; 32],
                );
                let mut joined = Vec::new();
                while let Some(chunk) = reader.next_chunk().expect("read") {
                    assert_eq!(chunk.offset as usize, joined.len());
                    joined.extend_from_slice(&chunk.data);
                }
                assert!(joined == data, "{mode:?} step {step}");
            }
        }
    }

    #[test]
    fn empty_input_has_no_chunks() {
        let mut reader =
            ChunkReader::new(&b""[..], Mode::Stream, &ChunkerParams::default(), &[5; 32]);
        assert!(reader.next_chunk().expect("read").is_none());
    }
}
