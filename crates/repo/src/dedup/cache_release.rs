//! Restored files leave the page cache once the disk has them.
//!
//! A tree restore writes every byte once and reads none back. Left to the kernel, a restore
//! larger than the free memory fills the page cache with its own finished files, and every
//! further page it writes (and every pack page an S3 server on the same node reads) first
//! costs a reclaim of one of them: at 10 GiB from S3 that doubled the system CPU per byte of
//! both processes (bench/README.md, "Restores by dataset size"). It also evicts the pages of
//! whatever else runs on the node, such as the databases next to the one being restored.
//!
//! So each finished file is handed to one thread that starts the disk on it at once
//! (`sync_file_range(SYNC_FILE_RANGE_WRITE)`, which does not wait) and, once more than the
//! window (`RepoOptions::restore_page_cache`, 1 GiB) of finished files are held, waits for
//! the oldest to be written and drops its pages (`POSIX_FADV_DONTNEED`). The writers never
//! wait for it; the kernel's own dirty limit still paces them. The restore does not wait for
//! it either: it goes on with what was handed over, and the last window of files stays to the
//! kernel. None of this is about durability: nothing is flushed to stable storage.

use std::collections::VecDeque;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::mpsc;

use nix::libc;

/// Finished files held open at most (each is a descriptor; an agent runs several restores).
const HELD_FILES: usize = 64;
/// Finished files waiting for the thread at most: past it (the disk far behind a restore of
/// many small files) a file is left to the kernel, so the queue's memory stays bounded.
const QUEUED_FILES: usize = 4096;

/// The hand-off of finished files to the releasing thread (clones share it; the thread ends
/// once the last clone is dropped and the files handed over are reached).
#[derive(Clone)]
pub(crate) struct CacheRelease {
    tx: Option<mpsc::SyncSender<PathBuf>>,
}

impl CacheRelease {
    /// Starts the releasing thread for a restore that leaves `window` bytes of finished files
    /// in the page cache (`u64::MAX`, or no thread to be had: nothing is released).
    pub(crate) fn start(window: u64) -> CacheRelease {
        if window == u64::MAX {
            return CacheRelease { tx: None };
        }
        let (tx, rx) = mpsc::sync_channel::<PathBuf>(QUEUED_FILES);
        let started = std::thread::Builder::new()
            .name("cairn-cache-release".into())
            .spawn(move || release(rx, window));
        CacheRelease {
            tx: started.is_ok().then_some(tx),
        }
    }

    /// A file whose every byte is written (never waits: with the queue full it is left to
    /// the kernel).
    pub(crate) fn finished(&self, path: PathBuf) {
        if let Some(tx) = &self.tx {
            let _ = tx.try_send(path);
        }
    }
}

/// Runs until the restore drops every [`CacheRelease`] and every file handed over is reached;
/// the last `window` bytes stay to the kernel. Files are handed over only when not empty.
fn release(rx: mpsc::Receiver<PathBuf>, window: u64) {
    let mut held: VecDeque<(File, u64)> = VecDeque::new();
    let mut bytes = 0u64;
    while let Ok(path) = rx.recv() {
        let Ok(file) = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
        else {
            continue;
        };
        let len = file.metadata().map_or(0, |m| m.len());
        sync_range(&file, libc::SYNC_FILE_RANGE_WRITE);
        held.push_back((file, len));
        bytes += len;
        while bytes > window || held.len() > HELD_FILES {
            let Some((file, len)) = held.pop_front() else {
                break;
            };
            sync_range(
                &file,
                libc::SYNC_FILE_RANGE_WAIT_BEFORE
                    | libc::SYNC_FILE_RANGE_WRITE
                    | libc::SYNC_FILE_RANGE_WAIT_AFTER,
            );
            let _ = nix::fcntl::posix_fadvise(
                &file,
                0,
                0,
                nix::fcntl::PosixFadviseAdvice::POSIX_FADV_DONTNEED,
            );
            bytes -= len;
        }
    }
}

/// `sync_file_range` over the whole file; a file system that refuses it only keeps its pages.
fn sync_range(file: &File, flags: libc::c_uint) {
    // SAFETY: a plain system call on a descriptor `file` keeps open for its duration.
    let _ = unsafe { libc::sync_file_range(file.as_raw_fd(), 0, 0, flags) };
}
