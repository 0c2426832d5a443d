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
    /// File name (or stream path for a stream root). When the name is not UTF-8 this is a
    /// lossy rendering for display and `name_bytes` holds the name; use [`Node::raw_name`].
    pub name: String,
    /// The name's bytes, present only when they are not UTF-8 (docs/FORMAT.md §5.6).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "hex_bytes")]
    pub name_bytes: Option<Vec<u8>>,
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
    /// Symlink target (lossy when not UTF-8; then `target_bytes` holds it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// The symlink target's bytes, present only when they are not UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "hex_bytes")]
    pub target_bytes: Option<Vec<u8>>,
    /// Hard link: path (from the snapshot root) of the first name of the file (lossy when
    /// not UTF-8; then `link_bytes` holds it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    /// The hard link path's bytes, present only when they are not UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "hex_bytes")]
    pub link_bytes: Option<Vec<u8>>,
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
            name_bytes: None,
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
            target_bytes: None,
            link: None,
            link_bytes: None,
            rdev: 0,
        }
    }

    /// A bare node named by arbitrary bytes (a file name need not be UTF-8).
    pub fn with_raw_name(name: &[u8], kind: NodeType) -> Node {
        let (text, bytes) = split_bytes(name);
        let mut node = Node::new(text, kind);
        node.name_bytes = bytes;
        node
    }

    /// The name exactly as it was on the file system.
    pub fn raw_name(&self) -> &[u8] {
        self.name_bytes.as_deref().unwrap_or(self.name.as_bytes())
    }

    /// Sets the symlink target from its bytes.
    pub fn set_raw_target(&mut self, target: &[u8]) {
        let (text, bytes) = split_bytes(target);
        self.target = Some(text);
        self.target_bytes = bytes;
    }

    /// The symlink target exactly as it was.
    pub fn raw_target(&self) -> Option<&[u8]> {
        self.target_bytes
            .as_deref()
            .or(self.target.as_deref().map(str::as_bytes))
    }

    /// Sets the hard link path from its bytes.
    pub fn set_raw_link(&mut self, link: &[u8]) {
        let (text, bytes) = split_bytes(link);
        self.link = Some(text);
        self.link_bytes = bytes;
    }

    /// The hard link path exactly as it was.
    pub fn raw_link(&self) -> Option<&[u8]> {
        self.link_bytes
            .as_deref()
            .or(self.link.as_deref().map(str::as_bytes))
    }
}

/// UTF-8 bytes as text and no raw copy; anything else as a lossy rendering and the bytes.
fn split_bytes(bytes: &[u8]) -> (String, Option<Vec<u8>>) {
    match std::str::from_utf8(bytes) {
        Ok(text) => (text.to_string(), None),
        Err(_) => (
            String::from_utf8_lossy(bytes).into_owned(),
            Some(bytes.to_vec()),
        ),
    }
}

/// `Option<Vec<u8>>` as lower-case hex.
mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(bytes) => s.serialize_str(&hex::encode(bytes)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        let text: Option<String> = Option::deserialize(d)?;
        text.map(|t| hex::decode(t).map_err(serde::de::Error::custom))
            .transpose()
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
