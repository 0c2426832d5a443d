//! The deduplicating repository (docs/FORMAT.md §4-§7): chunking, packs, located blob refs,
//! indexes with sampled hooks, snapshots, lock-free writers, restore, garbage collection.

pub mod backup;
pub mod blobref;
pub(crate) mod cache_release;
pub mod check;
pub mod chunk;
pub mod config;
pub mod files;
pub mod gc;
pub mod id;
pub mod index;
pub mod keys;
pub mod pack;
pub(crate) mod packer;
pub mod repair;
pub mod repository;
pub mod restore;
pub mod sealed;
pub mod session;
pub mod snapshot;
pub(crate) mod window;
pub mod writer;

pub use backup::{BackupOptions, ParentChoice, backup_stream, backup_tree};
pub use check::{CheckOptions, CheckReport, Repair, check};
pub use config::{InitOptions, RepoConfig, RepoOptions};
pub use files::DedupFiles;
pub use id::Id;
pub use repair::{RepairIndexOptions, RepairIndexReport, repair_index};
pub use repository::Repository;
pub use restore::{
    Damaged, RestoreOptions, RestoreOutcome, RestoreSummary, restore_stream, restore_tree,
    restore_tree_outcome,
};
pub use snapshot::{Node, NodeType, Snapshot, SnapshotKind, Summary, Tree};
