//! Drives a chunker over a `Read`: big reads into one buffer, chunks handed out as
//! zero-copy `Bytes` slices of it.

use std::fs::File;
use std::io::{self, Read};

use bytes::Bytes;

use super::{ByteChunker, ChunkerParams, Mode, PageChunker, TarChunker};
use crate::backend::direct_io::{self, BufferPool, DIRECT_ALIGN};

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

/// Where the bytes come from.
enum Source<R> {
    Reader(R),
    /// A regular file read with `O_DIRECT` (while the file system allows it) into aligned
    /// buffers of a pool: the file's pages never enter the page cache.
    File {
        file: File,
        offset: u64,
        direct: bool,
    },
}

/// Splits what a reader yields into chunks.
pub struct ChunkReader<R: Read> {
    source: Source<R>,
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
            source: Source::Reader(reader),
            buf: Bytes::new(),
            eof: false,
            cutter,
            offset: 0,
            read_size,
        }
    }

    /// A chunk reader for a regular file (`Mode::Page`), read past the page cache: a backup
    /// reads each byte once, and caching it cost the kernel a page-cache insertion and a copy
    /// per page and evicted what the machine had cached (a database's own pages).
    pub fn direct(file: File, params: &ChunkerParams, key: &[u8; 32]) -> ChunkReader<R> {
        let direct = direct_io::set_direct(&file, true);
        ChunkReader {
            source: Source::File {
                file,
                offset: 0,
                direct,
            },
            buf: Bytes::new(),
            eof: false,
            cutter: Cutter::Page(PageChunker::new(params, key)),
            offset: 0,
            read_size: DIRECT_READ.max((params.max_chunk() * 2).next_multiple_of(DIRECT_ALIGN)),
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
        let (file, offset, direct) = match &mut self.source {
            Source::Reader(reader) => {
                let mut next = Vec::with_capacity(self.buf.len() + self.read_size);
                next.extend_from_slice(&self.buf);
                let want = self.read_size as u64;
                let read = reader.take(want).read_to_end(&mut next)?;
                if (read as u64) < want {
                    self.eof = true;
                }
                self.buf = Bytes::from(next);
                return Ok(());
            }
            Source::File {
                file,
                offset,
                direct,
            } => (file, offset, direct),
        };
        // What is left of the last read goes in front, ending where the aligned read starts.
        let left = self.buf.len();
        let mut pooled = Pooled::take(left + self.read_size + 2 * DIRECT_ALIGN);
        let read_at = (pooled.buf.as_ptr() as usize + left).next_multiple_of(DIRECT_ALIGN)
            - pooled.buf.as_ptr() as usize;
        pooled.buf[read_at - left..read_at].copy_from_slice(&self.buf);
        let read = direct_io::read_full_at(
            file,
            direct,
            *offset,
            &mut pooled.buf[read_at..read_at + self.read_size],
        )?;
        *offset += read as u64;
        if read < self.read_size {
            self.eof = true;
        }
        self.buf = Bytes::from_owner(pooled).slice(read_at - left..read_at + read);
        Ok(())
    }
}

/// Bytes per direct read of a file.
const DIRECT_READ: usize = 4 << 20;

/// Read buffers whose chunks are all gone, for the next reads: a few per file read at once
/// (its chunks stay alive until they are compressed and packed).
static READ_POOL: BufferPool = BufferPool::new(4);

/// A read buffer that goes back to [`READ_POOL`] when the last chunk cut from it is dropped.
struct Pooled {
    buf: Vec<u8>,
}

impl Pooled {
    fn take(len: usize) -> Pooled {
        Pooled {
            buf: READ_POOL.take(len),
        }
    }
}

impl AsRef<[u8]> for Pooled {
    fn as_ref(&self) -> &[u8] {
        &self.buf
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        READ_POOL.give(std::mem::take(&mut self.buf));
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

    fn chunks_of<R: Read>(mut reader: ChunkReader<R>) -> Vec<(u64, Bytes)> {
        let mut out = Vec::new();
        while let Some(chunk) = reader.next_chunk().expect("read") {
            out.push((chunk.offset, chunk.data));
        }
        out
    }

    /// A file read past the page cache gives the chunks a buffered read gives (the same cuts,
    /// so the same ids and deduplication), at every length around the read and block sizes,
    /// on a disk (`/var/tmp`) and on tmpfs (which refuses `O_DIRECT` on older kernels).
    #[test]
    fn a_direct_read_of_a_file_cuts_the_chunks_a_buffered_read_cuts() {
        let params = ChunkerParams::default();
        let mut dirs = vec![tempfile::tempdir_in("/var/tmp").expect("tempdir")];
        if std::path::Path::new("/dev/shm").is_dir() {
            dirs.push(tempfile::tempdir_in("/dev/shm").expect("tempdir"));
        }
        let lens = [
            0,
            1,
            DIRECT_ALIGN - 1,
            DIRECT_ALIGN,
            DIRECT_ALIGN + 1,
            DIRECT_READ - 1,
            DIRECT_READ,
            DIRECT_READ + 4097,
            3 * DIRECT_READ + 12_345,
        ];
        for dir in &dirs {
            for len in lens {
                let data: Vec<u8> = (0..len as u32)
                    .map(|i| (i.wrapping_mul(2654435761) >> ((i >> 14) % 24)) as u8)
                    .collect();
                let path = dir.path().join(format!("f{len}"));
                std::fs::write(&path, &data).expect("write");
                let open = || File::open(&path).expect("open");
                let buffered = chunks_of(ChunkReader::new(open(), Mode::Page, &params, &[5; 32]));
                let direct = chunks_of(ChunkReader::<File>::direct(open(), &params, &[5; 32]));
                assert!(
                    buffered == direct,
                    "{len} bytes in {}: the chunks differ",
                    dir.path().display()
                );
                let joined: Vec<u8> = direct.iter().flat_map(|(_, d)| d.to_vec()).collect();
                assert!(joined == data, "{len} bytes: the content differs");
            }
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
