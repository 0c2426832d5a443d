//! The repository config object (`config`) and the runtime options of a client.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::chunk::ChunkerParams;
use super::id::Id;
use crate::crypto::{CipherKind, KdfParams};
use crate::{Error, Result};

/// Format version written by this build.
pub const FORMAT_VERSION: u32 = 1;

/// What `config` holds (sealed; FORMAT.md §4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepoConfig {
    /// Format version.
    pub version: u32,
    /// Repository id.
    pub id: Id,
    /// When `init` ran.
    pub created: Timestamp,
    /// The AEAD cipher.
    pub cipher: CipherKind,
    /// Chunker parameters.
    pub chunker: ChunkerParams,
    /// Target pack size in bytes.
    pub pack_size: u32,
    /// Refs per content list.
    pub segment_refs: u32,
    /// A chunk is a hook when the top `hook_bits` bits of its id are zero.
    pub hook_bits: u8,
    /// zstd level for chunks.
    pub zstd_level: i32,
}

impl RepoConfig {
    /// Refuses values that a damaged or hostile config could use to exhaust memory.
    pub fn check(&self) -> Result<()> {
        if self.version != FORMAT_VERSION {
            return Err(Error::unsupported(format!(
                "repository format version {} (this build reads version {FORMAT_VERSION})",
                self.version
            )));
        }
        self.chunker.check()?;
        if !(1 << 20..=512 << 20).contains(&self.pack_size)
            || !(16..=65536).contains(&self.segment_refs)
            || !(1..=16).contains(&self.hook_bits)
            || !(-7..=22).contains(&self.zstd_level)
        {
            return Err(Error::corrupt(format!(
                "repository config values are out of range: {self:?}"
            )));
        }
        Ok(())
    }
}

/// Choices made at `init`.
#[derive(Debug, Clone)]
pub struct InitOptions {
    /// The cipher.
    pub cipher: CipherKind,
    /// Argon2id cost of the first key.
    pub kdf: KdfParams,
    /// Chunker parameters.
    pub chunker: ChunkerParams,
    /// Target pack size.
    pub pack_size: u32,
    /// zstd level of chunks.
    pub zstd_level: i32,
    /// Label of the first key.
    pub key_label: String,
}

impl Default for InitOptions {
    fn default() -> Self {
        InitOptions {
            cipher: CipherKind::Aes256Gcm,
            kdf: KdfParams::REPOSITORY,
            chunker: ChunkerParams::default(),
            pack_size: 16 << 20,
            zstd_level: 1,
            key_label: "initial".into(),
        }
    }
}

/// Runtime limits of one client (not stored): they bound memory and parallelism.
#[derive(Debug, Clone)]
pub struct RepoOptions {
    /// Compression workers (default: available cores).
    pub workers: usize,
    /// Packs uploading at once.
    pub pack_uploads: usize,
    /// Content lists a dedup window keeps loaded.
    pub window_segments: usize,
    /// Restore: ranged reads in flight.
    pub restore_fetches: usize,
    /// Restore: largest coalesced read.
    pub restore_range: u64,
    /// Restore: bytes of pack reads held at once, from before each read until its blobs are
    /// written or decoded (ranges wait for room; one larger than all of it goes alone).
    pub restore_memory: u64,
    /// Restore: refs planned together (sorted by pack and offset) before they are cut into
    /// reads; a batch also ends after `restore_batch / 32` files.
    pub restore_batch: usize,
    /// Restore: bytes of finished files a tree restore leaves in the page cache; past it the
    /// oldest are written to disk and their pages dropped (dedup/cache_release.rs).
    /// `u64::MAX` leaves them all to the kernel.
    pub restore_page_cache: u64,
    /// Writers refresh their session marker this often.
    pub heartbeat: std::time::Duration,
    /// A marker not refreshed for this long is stale.
    pub session_timeout: std::time::Duration,
}

impl Default for RepoOptions {
    fn default() -> Self {
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        RepoOptions {
            workers: cores,
            pack_uploads: 3,
            window_segments: 64,
            restore_fetches: 16,
            restore_range: 8 << 20,
            restore_memory: 64 << 20,
            restore_batch: 65_536,
            restore_page_cache: 1 << 30,
            heartbeat: std::time::Duration::from_secs(60),
            session_timeout: std::time::Duration::from_secs(15 * 60),
        }
    }
}
