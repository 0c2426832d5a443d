//! Reads and writes of the local store that bypass the page cache (`O_DIRECT`).
//!
//! A restore reads each pack once and a backup writes each pack once: caching them only costs
//! the kernel a page-cache insertion and a copy per page, and evicts what the machine had
//! cached (a database's own pages). Both fall back to ordinary I/O where the file system
//! refuses direct I/O (tmpfs, some FUSE and network file systems).

use std::fs::File;
use std::io;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::sync::{Mutex, PoisonError};

use bytes::Bytes;
use nix::errno::Errno;
use nix::fcntl::{FcntlArg, OFlag, fcntl};

/// Alignment of a direct read's or write's offset, length and buffer: a multiple of every
/// logical block size Linux file systems use.
pub(crate) const DIRECT_ALIGN: usize = 4096;

/// Objects from this size on are written past the page cache (packs; not the small index,
/// snapshot and marker objects, which are read again soon).
pub(crate) const DIRECT_WRITE_MIN: usize = 1 << 20;

/// Bytes per direct write, through an aligned buffer.
const BOUNCE_LEN: usize = 4 << 20;

/// Aligned buffers of finished writes, for the next ones: a pool rather than one per thread,
/// since any of the runtime's many blocking threads may write a pack. It keeps about the
/// writes in flight at once.
static BOUNCE_POOL: BufferPool = BufferPool::new(4);

/// Buffers of finished direct I/O kept for the next: reusing one spares the allocator and the
/// kernel a fresh mapping (and its page faults) per read or write.
pub(crate) struct BufferPool {
    buffers: Mutex<Vec<Vec<u8>>>,
    keep: usize,
}

impl BufferPool {
    /// A pool that keeps at most `keep` buffers.
    pub(crate) const fn new(keep: usize) -> BufferPool {
        BufferPool {
            buffers: Mutex::new(Vec::new()),
            keep,
        }
    }

    /// A kept buffer of at least `len` bytes (what it holds is left over), or a new one.
    pub(crate) fn take(&self, len: usize) -> Vec<u8> {
        let found = {
            let mut buffers = self.buffers.lock().unwrap_or_else(PoisonError::into_inner);
            let at = buffers.iter().position(|b| b.len() >= len);
            at.map(|at| buffers.swap_remove(at))
        };
        found.unwrap_or_else(|| vec![0u8; len])
    }

    /// Keeps `buffer` for a later [`BufferPool::take`], unless the pool is full.
    pub(crate) fn give(&self, buffer: Vec<u8>) {
        let mut buffers = self.buffers.lock().unwrap_or_else(PoisonError::into_inner);
        if buffers.len() < self.keep {
            buffers.push(buffer);
        }
    }
}

/// Turns `O_DIRECT` on or off; false if the file system refuses it.
pub(crate) fn set_direct(file: &File, on: bool) -> bool {
    let Ok(flags) = fcntl(file, FcntlArg::F_GETFL) else {
        return false;
    };
    let flags = OFlag::from_bits_truncate(flags);
    let flags = if on {
        flags | OFlag::O_DIRECT
    } else {
        flags - OFlag::O_DIRECT
    };
    fcntl(file, FcntlArg::F_SETFL(flags)).is_ok()
}

/// Writes `chunks`, one after the other, from offset 0 of `file` (a new, empty file opened
/// for writing). From [`DIRECT_WRITE_MIN`] bytes on, every whole block is written with
/// `O_DIRECT` through an aligned buffer and only the unaligned tail through the page cache.
pub(crate) fn write_all(file: &File, chunks: &[Bytes]) -> io::Result<()> {
    let total: usize = chunks.iter().map(Bytes::len).sum();
    if total < DIRECT_WRITE_MIN || !set_direct(file, true) {
        return write_buffered(file, chunks, 0);
    }
    let mut bounce = BOUNCE_POOL.take(BOUNCE_LEN + DIRECT_ALIGN);
    let written = write_direct(file, chunks, &mut bounce);
    BOUNCE_POOL.give(bounce);
    match written {
        Ok(()) => Ok(()),
        // Refused for this file or this buffer: start again through the page cache.
        Err(e) if e.raw_os_error() == Some(Errno::EINVAL as i32) => {
            set_direct(file, false);
            file.set_len(0)?;
            write_buffered(file, chunks, 0)
        }
        Err(e) => Err(e),
    }
}

fn write_buffered(file: &File, chunks: &[Bytes], mut offset: u64) -> io::Result<()> {
    for chunk in chunks {
        file.write_all_at(chunk, offset)?;
        offset += chunk.len() as u64;
    }
    Ok(())
}

fn write_direct(file: &File, chunks: &[Bytes], bounce: &mut [u8]) -> io::Result<()> {
    let pad = bounce.as_ptr().align_offset(DIRECT_ALIGN);
    let buf = &mut bounce[pad..pad + BOUNCE_LEN];
    let mut filled = 0usize;
    let mut offset = 0u64;
    for chunk in chunks {
        let mut rest = &chunk[..];
        while !rest.is_empty() {
            let n = rest.len().min(BOUNCE_LEN - filled);
            buf[filled..filled + n].copy_from_slice(&rest[..n]);
            filled += n;
            rest = &rest[n..];
            if filled == BOUNCE_LEN {
                file.write_all_at(buf, offset)?;
                offset += BOUNCE_LEN as u64;
                filled = 0;
            }
        }
    }
    let whole = filled - filled % DIRECT_ALIGN;
    if whole > 0 {
        file.write_all_at(&buf[..whole], offset)?;
        offset += whole as u64;
    }
    if whole < filled {
        // The tail is shorter than a block: through the page cache.
        if !set_direct(file, false) {
            return Err(io::Error::other("cannot turn direct I/O off for the tail"));
        }
        file.write_all_at(&buf[whole..filled], offset)?;
    }
    Ok(())
}

/// Reads `range` (within the file) with `O_DIRECT`, through the page cache where the file
/// system refuses a direct read; `None` if it refuses `O_DIRECT` on the descriptor.
pub(crate) fn read_direct(file: &File, range: &Range<u64>) -> io::Result<Option<Bytes>> {
    let align = DIRECT_ALIGN as u64;
    if !set_direct(file, true) {
        return Ok(None);
    }
    let start = range.start - range.start % align;
    let end = range.end.div_ceil(align) * align;
    let len = (end - start) as usize;
    // One spare block to start the read at an aligned address inside the buffer.
    let mut buf = vec![0u8; len + DIRECT_ALIGN];
    let pad = buf.as_ptr().align_offset(DIRECT_ALIGN);
    let mut direct = true;
    let done = read_full_at(file, &mut direct, start, &mut buf[pad..pad + len])?;
    let wanted = (range.end - start) as usize;
    if done < wanted {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!(
                "the file ended {} bytes before {}",
                wanted - done,
                range.end
            ),
        ));
    }
    let at = pad + (range.start - start) as usize;
    Ok(Some(
        Bytes::from(buf).slice(at..at + (range.end - range.start) as usize),
    ))
}

/// Reads from `offset` into `buf` (both aligned to [`DIRECT_ALIGN`], `buf` a multiple of it
/// long) until `buf` is full or the file ends, with `O_DIRECT` if `direct`; on `EINVAL` (the
/// file system refuses direct reads) turns it off, clears `direct` and goes on through the
/// page cache. Returns the bytes read (short only at the end of the file).
pub(crate) fn read_full_at(
    file: &File,
    direct: &mut bool,
    offset: u64,
    buf: &mut [u8],
) -> io::Result<usize> {
    let mut done = 0usize;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], offset + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if *direct && e.raw_os_error() == Some(Errno::EINVAL as i32) => {
                set_direct(file, false);
                *direct = false;
            }
            Err(e) => return Err(e),
        }
        // A direct read ends short only at the end of the file; what follows an unaligned
        // end cannot be read directly.
        if *direct && !done.is_multiple_of(DIRECT_ALIGN) {
            break;
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(len: usize, seed: u32) -> Bytes {
        (0..len)
            .map(|i| ((i as u32).wrapping_mul(2654435761).wrapping_add(seed) >> 11) as u8)
            .collect::<Vec<u8>>()
            .into()
    }

    fn written(chunks: &[Bytes]) -> Vec<u8> {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("object");
        let file = File::create_new(&path).expect("create");
        write_all(&file, chunks).expect("write");
        drop(file);
        std::fs::read(&path).expect("read back")
    }

    #[test]
    fn every_byte_lands_whatever_the_sizes_and_alignment_of_the_pieces() {
        let cases: Vec<Vec<usize>> = vec![
            vec![],
            vec![1],
            vec![DIRECT_WRITE_MIN - 1],
            vec![DIRECT_WRITE_MIN],
            vec![BOUNCE_LEN],
            vec![BOUNCE_LEN + 1],
            vec![3 << 20, 17, 4093, (5 << 20) + 3],
            vec![DIRECT_ALIGN - 1; 700],
            vec![2 * BOUNCE_LEN + DIRECT_ALIGN],
        ];
        for (n, sizes) in cases.into_iter().enumerate() {
            let chunks: Vec<Bytes> = sizes
                .iter()
                .enumerate()
                .map(|(i, &len)| pattern(len, (n * 100 + i) as u32))
                .collect();
            let expected: Vec<u8> = chunks.iter().flat_map(|c| c.iter().copied()).collect();
            let got = written(&chunks);
            assert_eq!(got.len(), expected.len(), "case {n}: {sizes:?}");
            assert!(got == expected, "case {n}: {sizes:?}: the content differs");
        }
    }

    #[test]
    fn a_refused_direct_read_goes_on_through_the_page_cache() {
        let dir = tempfile::tempdir_in("/var/tmp").expect("tempdir");
        let path = dir.path().join("source");
        let data = pattern((1 << 20) + 77, 3);
        std::fs::write(&path, &data).expect("write");
        let file = File::open(&path).expect("open");
        let mut direct = set_direct(&file, true);
        // An unaligned buffer: a file system that takes O_DIRECT refuses this read (EINVAL).
        let mut buf = vec![0u8; (2 << 20) + 1];
        let read = read_full_at(&file, &mut direct, 0, &mut buf[1..]).expect("read");
        assert_eq!(read, data.len());
        assert!(buf[1..1 + read] == data[..]);
        assert!(!direct, "the read did not fall back to the page cache");
    }

    #[test]
    fn a_file_system_without_direct_io_gets_the_same_bytes() {
        // tmpfs refuses O_DIRECT on older kernels and takes it on newer ones: either way the
        // object is whole.
        let Ok(dir) = tempfile::tempdir_in("/dev/shm") else {
            return;
        };
        let path = dir.path().join("object");
        let chunks = vec![pattern((6 << 20) + 5, 7)];
        let file = File::create_new(&path).expect("create");
        write_all(&file, &chunks).expect("write");
        drop(file);
        assert!(std::fs::read(&path).expect("read back") == chunks[0]);
    }
}
