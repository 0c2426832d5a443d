//! Cairn's repository engine (docs/FORMAT.md).
//!
//! - [`config`]: where a repository lives ([`StorageConfig`] from datasafed configs or URLs).
//! - [`backend`]: the [`Store`], every byte's way to `object_store`, with retries, bounded
//!   parallelism, multipart uploads and ranged downloads.
//! - [`plain`]: plain, KubeBlocks-compatible repositories ([`PlainRepo`]).
//! - [`codec`], [`crypto`]: compression names, the segmented AEAD stream, ciphers, Argon2id.

pub mod backend;
pub mod codec;
pub mod config;
pub mod crypto;
pub mod dedup;
mod error;
pub mod files;
pub mod memory;
pub mod plain;
pub mod progress;
#[cfg(any(test, feature = "test-support"))]
pub mod testing;

pub use backend::Store;
pub use codec::compression::Compression;
pub use codec::sealed_stream::StreamKey;
pub use config::{
    StorageConfig, datasafed_config_value, parse_datasafed_config, parse_storage_url,
};
pub use crypto::{CipherKind, KdfParams};
pub use error::{Error, ErrorKind, Result};
pub use files::RepoFiles;
pub use plain::PlainRepo;
pub use progress::{NoProgress, Progress, SharedProgress};
