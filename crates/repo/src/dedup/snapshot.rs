//! Snapshots, trees and nodes (docs/FORMAT.md §5.6-5.7).

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::blobref::BlobRef;
use super::id::Id;

/// What a node is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeType {
    /// A directory (has `subtree`).
    Dir,
    /// A regular file (has `content`).
    File,
    /// A symbolic link (has `target`).
    Symlink,
    /// A further name of a file stored earlier in the snapshot (has `link`).
    Hardlink,
    /// A named pipe.
    Fifo,
    /// A character device (has `rdev`).
    Chardev,
    /// A block device (has `rdev`).
    Blockdev,
}

/// One entry of a tree (or the root of a stream snapshot).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    /// File name (or stream path for a stream root).
    pub name: String,
    /// Kind.
    #[serde(rename = "type")]
    pub kind: NodeType,
    /// Permission and type bits (`st_mode`).
    #[serde(default)]
    pub mode: u32,
    /// Owner.
    #[serde(default)]
    pub uid: u32,
    /// Group.
    #[serde(default)]
    pub gid: u32,
    /// Modification time, ns since the epoch.
    #[serde(default)]
    pub mtime_ns: i128,
    /// Change time, ns since the epoch (for change detection).
    #[serde(default)]
    pub ctime_ns: i128,
    /// Inode (for change detection).
    #[serde(default)]
    pub inode: u64,
    /// Device (for change detection).
    #[serde(default)]
    pub dev: u64,
    /// Size in bytes (files).
    #[serde(default)]
    pub size: u64,
    /// Content lists (files and streams).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub content: Vec<BlobRef>,
    /// The child tree (directories).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subtree: Option<BlobRef>,
    /// Symlink target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Hard link: path (from the snapshot root) of the first name of the file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    /// Device number (devices).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub rdev: u64,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

impl Node {
    /// A bare node of a kind.
    pub fn new(name: impl Into<String>, kind: NodeType) -> Node {
        Node {
            name: name.into(),
            kind,
            mode: 0,
            uid: 0,
            gid: 0,
            mtime_ns: 0,
            ctime_ns: 0,
            inode: 0,
            dev: 0,
            size: 0,
            content: Vec::new(),
            subtree: None,
            target: None,
            link: None,
            rdev: 0,
        }
    }
}

/// A directory: its nodes sorted by name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tree {
    /// The entries.
    pub nodes: Vec<Node>,
}

/// Whether a snapshot holds a directory tree or one stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SnapshotKind {
    /// A directory tree (root is a dir node).
    Tree,
    /// A byte stream (root is a file node).
    Stream,
}

/// Counts of one backup.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// Files (or 1 for a stream).
    pub files: u64,
    /// Directories.
    pub dirs: u64,
    /// Bytes read from the source.
    pub bytes: u64,
    /// Chunks stored by this backup.
    pub new_chunks: u64,
    /// Bytes of the chunks stored (after compression, before encryption).
    pub new_bytes_stored: u64,
    /// Raw bytes of the chunks stored.
    pub new_bytes_raw: u64,
    /// Chunks found already in the repository.
    pub reused_chunks: u64,
    /// Files not read because the parent snapshot had them unchanged.
    pub unchanged_files: u64,
    /// Bytes of all objects this backup uploaded (packs, index, snapshot).
    pub uploaded_bytes: u64,
}

/// A snapshot manifest (`snapshots/<id>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Format version (1).
    pub version: u32,
    /// Snapshot id (also the object name).
    pub id: Id,
    /// When the backup started.
    pub time: Timestamp,
    /// When it finished.
    pub end_time: Timestamp,
    /// Host that made it.
    pub host: String,
    /// Tree or stream.
    pub kind: SnapshotKind,
    /// Source paths (a directory, or a stream's remote path).
    pub paths: Vec<String>,
    /// Tags: backup name, namespace, policy, time range, anything else.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// The root node.
    pub root: Node,
    /// The parent snapshot used for change detection, if any.
    #[serde(default)]
    pub parent: Option<Id>,
    /// The writer session.
    pub session: Id,
    /// Counts.
    pub summary: Summary,
    /// `datasafed push -z ALGO` name, re-applied by a `pull` without `-d`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_compression: Option<String>,
}

impl Snapshot {
    /// The object key.
    pub fn key(id: &Id) -> String {
        format!("snapshots/{id}")
    }

    /// The group a retention policy applies to: host and paths.
    pub fn group_key(&self) -> (String, Vec<String>) {
        (self.host.clone(), self.paths.clone())
    }
}
