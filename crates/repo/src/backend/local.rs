//! A local directory as an object store that never leaves its root (docs/FORMAT.md §2.3).
//!
//! `object_store`'s `LocalFileSystem` follows symbolic links, so a link planted in a shared
//! directory (a Mount repository's claim, which action pods also mount) would let a read, a
//! write or a recursive delete reach files outside the repository. This store resolves every
//! key one component at a time from a descriptor of the root: each directory is opened with
//! `O_NOFOLLOW | O_DIRECTORY` relative to its parent's descriptor, the object itself with
//! `O_NOFOLLOW`, and creations, renames and deletions use the `*at` calls on the parent's
//! descriptor, which never follow a link in their last component. Keys are validated by
//! `object_store::path::Path` (no empty, `.` or `..` segments, no `/` or control characters
//! in a segment), so a component is always a plain name inside its parent.
//!
//! What it does with what it finds:
//! - a symbolic link on the way to a key, or at the key itself, is refused with
//!   [`LocalError::Symlink`], naming the link;
//! - listings skip symbolic links and anything that is neither a regular file nor a directory
//!   (FIFOs, sockets, devices) with a warning naming them, and never descend into a link;
//! - only regular files are opened (a FIFO would block a reader forever, a device node made by
//!   a pod could expose a host device), checked before and after the open;
//! - uploads go to a staging file `<name>#<n>` next to the object and are renamed into place,
//!   as `LocalFileSystem` does (so an interrupted upload never leaves a partial object); such
//!   names are skipped by listings and refused as keys.
//!
//! The root itself is the configured directory and may be reached through links (it is
//! chosen by whoever configures the store, not by what is stored in it).

use std::ffi::{CStr, OsStr};
use std::fs::File;
use std::io::{self, Read};
use std::ops::Range;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::{Path as FsPath, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{FutureExt, StreamExt};
use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{FileStat, Mode, SFlag};
use nix::unistd::UnlinkatFlags;
use object_store::path::Path;
use object_store::{
    CopyMode, CopyOptions, GetOptions, GetResult, GetResultPayload, ListResult, MultipartUpload,
    ObjectMeta, ObjectStore, PutMode, PutMultipartOptions, PutOptions, PutPayload, PutResult,
    UploadPart,
};

use super::direct_io;

/// The name this store gives `object_store` errors (see `map_store_error`).
pub(crate) const STORE_NAME: &str = "local";

/// Entries a listing reads per blocking batch.
const LIST_BATCH: usize = 1024;

/// Why a local store refused or failed an access.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    /// A symbolic link on the way to a key, or at the key.
    #[error(
        "{} is a symbolic link, which a local repository never follows (remove it or replace it with the real directory or file)",
        path.display()
    )]
    Symlink {
        /// The link.
        path: PathBuf,
    },
    /// Something that is neither a regular file nor a directory where one was expected.
    #[error("{} is a {kind}, not a regular file or directory", path.display())]
    Special {
        /// The entry.
        path: PathBuf,
        /// What it is (`FIFO`, `socket`, `device`).
        kind: &'static str,
    },
    /// A directory that cannot be removed because it holds entries a listing does not show.
    #[error(
        "{} is not empty: it holds {entries}, which a local repository does not list (symbolic links, FIFOs, sockets, devices, unfinished uploads)",
        path.display()
    )]
    NotEmpty {
        /// The directory.
        path: PathBuf,
        /// Some of its entries (names, comma-separated).
        entries: String,
    },
    /// A key whose last segment is a staging name.
    #[error("{key:?} ends in \"#<digits>\", which a local repository keeps for unfinished uploads")]
    StagingName {
        /// The key.
        key: String,
    },
    /// An I/O call failed.
    #[error("{what} {}", path.display())]
    Io {
        /// What was being done (`opening`, `creating directory`, ...).
        what: &'static str,
        /// On what.
        path: PathBuf,
        /// The system's error.
        #[source]
        source: io::Error,
    },
}

impl LocalError {
    fn io(what: &'static str, path: PathBuf, errno: Errno) -> LocalError {
        LocalError::Io {
            what,
            path,
            source: io::Error::from(errno),
        }
    }

    /// Whether the error names a request the store refuses (a link, a special file, a
    /// reserved name) rather than a failure of the file system.
    pub(crate) fn is_refusal(&self) -> bool {
        !matches!(self, LocalError::Io { .. })
    }

    /// Whether retrying may help (interrupted or would-block I/O only).
    pub(crate) fn is_transient(&self) -> bool {
        match self {
            LocalError::Io { source, .. } => matches!(
                source.kind(),
                io::ErrorKind::Interrupted | io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ),
            _ => false,
        }
    }

    fn into_store(self) -> object_store::Error {
        // Nothing can exist below a file either.
        if let LocalError::Io { path, source, .. } = &self
            && matches!(
                source.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
            )
        {
            return object_store::Error::NotFound {
                path: path.display().to_string(),
                source: Box::new(self),
            };
        }
        object_store::Error::Generic {
            store: STORE_NAME,
            source: Box::new(self),
        }
    }
}

type LocalResult<T> = std::result::Result<T, LocalError>;

fn not_found(path: PathBuf) -> LocalError {
    LocalError::io("opening", path, Errno::ENOENT)
}

/// The kind of a file-system entry, from `stat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    File,
    Dir,
    Symlink,
    Other(&'static str),
}

fn kind_of(stat: &FileStat) -> Kind {
    let fmt = SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT;
    if fmt == SFlag::S_IFREG {
        Kind::File
    } else if fmt == SFlag::S_IFDIR {
        Kind::Dir
    } else if fmt == SFlag::S_IFLNK {
        Kind::Symlink
    } else if fmt == SFlag::S_IFIFO {
        Kind::Other("FIFO")
    } else if fmt == SFlag::S_IFSOCK {
        Kind::Other("socket")
    } else {
        Kind::Other("device")
    }
}

fn modified(stat: &FileStat) -> SystemTime {
    let (secs, nanos) = (stat.st_mtime, stat.st_mtime_nsec);
    if secs >= 0 {
        SystemTime::UNIX_EPOCH + Duration::new(secs as u64, nanos as u32)
    } else {
        SystemTime::UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs())
    }
}

fn e_tag(stat: &FileStat) -> String {
    format!(
        "{:x}-{:x}.{:x}-{:x}",
        stat.st_ino, stat.st_mtime, stat.st_mtime_nsec, stat.st_size
    )
}

/// `name#123`: the staging name of an unfinished upload.
fn is_staging_name(name: &str) -> bool {
    match name.rsplit_once('#') {
        Some((_, suffix)) => !suffix.is_empty() && suffix.bytes().all(|b| b.is_ascii_digit()),
        None => false,
    }
}

const DIR_FLAGS: OFlag = OFlag::O_RDONLY
    .union(OFlag::O_DIRECTORY)
    .union(OFlag::O_NOFOLLOW)
    .union(OFlag::O_CLOEXEC);

/// The confined root: every access starts from a descriptor of this directory.
#[derive(Debug)]
pub(crate) struct LocalRoot {
    root: PathBuf,
}

impl LocalRoot {
    /// A store rooted at `root` (which must be a directory; checked by the caller).
    pub(crate) fn new(root: PathBuf) -> LocalRoot {
        LocalRoot { root }
    }

    /// The root directory.
    pub(crate) fn path(&self) -> &FsPath {
        &self.root
    }

    /// The file-system path of `parts` under the root (for messages).
    fn display_path(&self, parts: &[&str]) -> PathBuf {
        let mut path = self.root.clone();
        path.extend(parts);
        path
    }

    fn open_root(&self) -> LocalResult<OwnedFd> {
        nix::fcntl::open(
            &self.root,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| LocalError::io("opening the local repository", self.root.clone(), e))
    }

    /// Why `name` in `dir` could not be opened as asked: a link, a special file, or `errno`.
    fn classify(&self, dir: &OwnedFd, name: &str, path: PathBuf, errno: Errno) -> LocalError {
        if matches!(errno, Errno::ELOOP | Errno::ENOTDIR | Errno::ENXIO)
            && let Ok(stat) = nix::sys::stat::fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW)
        {
            match kind_of(&stat) {
                Kind::Symlink => return LocalError::Symlink { path },
                Kind::Other(kind) => return LocalError::Special { path, kind },
                Kind::File | Kind::Dir => {}
            }
        }
        LocalError::io("opening", path, errno)
    }

    /// Opens the directory `parts` (each a plain name) without following any link;
    /// with `create`, missing directories are made.
    fn open_dir(&self, parts: &[&str], create: bool) -> LocalResult<OwnedFd> {
        let mut dir = self.open_root()?;
        for (depth, name) in parts.iter().enumerate() {
            let path = || self.display_path(&parts[..=depth]);
            check_component(name, path)?;
            let next = match nix::fcntl::openat(&dir, *name, DIR_FLAGS, Mode::empty()) {
                Ok(fd) => fd,
                Err(Errno::ENOENT) if create => {
                    match nix::sys::stat::mkdirat(&dir, *name, Mode::from_bits_truncate(0o777)) {
                        Ok(()) | Err(Errno::EEXIST) => {}
                        Err(e) => return Err(LocalError::io("creating directory", path(), e)),
                    }
                    nix::fcntl::openat(&dir, *name, DIR_FLAGS, Mode::empty())
                        .map_err(|e| self.classify(&dir, name, path(), e))?
                }
                Err(e) => return Err(self.classify(&dir, name, path(), e)),
            };
            dir = next;
        }
        Ok(dir)
    }

    /// The parent directory of `location` (opened as [`LocalRoot::open_dir`] does) and the
    /// object's name in it.
    fn open_parent<'a>(
        &self,
        parts: &'a [&'a str],
        create: bool,
    ) -> LocalResult<(OwnedFd, &'a str)> {
        let Some((name, dirs)) = parts.split_last() else {
            return Err(LocalError::io("opening", self.root.clone(), Errno::EISDIR));
        };
        check_component(name, || self.display_path(parts))?;
        let dir = self.open_dir(dirs, create)?;
        Ok((dir, name))
    }

    /// What `name` in `dir` is, without following it (`None` if it does not exist).
    fn lstat(&self, dir: &OwnedFd, name: &str, path: &FsPath) -> LocalResult<Option<FileStat>> {
        match nix::sys::stat::fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(stat) => Ok(Some(stat)),
            Err(Errno::ENOENT) => Ok(None),
            Err(e) => Err(LocalError::io("looking up", path.to_path_buf(), e)),
        }
    }

    /// Opens the regular file at `parts` for reading. A directory is not found (it is not an
    /// object); a link or a special file is refused.
    fn open_file(&self, parts: &[&str]) -> LocalResult<(File, FileStat)> {
        let path = self.display_path(parts);
        let (dir, name) = self.open_parent(parts, false)?;
        // Look before opening: opening a FIFO blocks and opening a device can have effects.
        match self.lstat(&dir, name, &path)?.as_ref().map(kind_of) {
            None | Some(Kind::Dir) => return Err(not_found(path)),
            Some(Kind::Symlink) => return Err(LocalError::Symlink { path }),
            Some(Kind::Other(kind)) => return Err(LocalError::Special { path, kind }),
            Some(Kind::File) => {}
        }
        let flags = OFlag::O_RDONLY
            | OFlag::O_NOFOLLOW
            | OFlag::O_NONBLOCK
            | OFlag::O_NOCTTY
            | OFlag::O_CLOEXEC;
        let fd = nix::fcntl::openat(&dir, name, flags, Mode::empty()).map_err(|e| match e {
            Errno::ENOENT => not_found(path.clone()),
            e => self.classify(&dir, name, path.clone(), e),
        })?;
        // ...and after: the entry may have been swapped in between.
        let stat = nix::sys::stat::fstat(&fd)
            .map_err(|e| LocalError::io("looking up", path.clone(), e))?;
        match kind_of(&stat) {
            Kind::File => Ok((File::from(fd), stat)),
            Kind::Dir => Err(not_found(path)),
            Kind::Symlink => Err(LocalError::Symlink { path }),
            Kind::Other(kind) => Err(LocalError::Special { path, kind }),
        }
    }

    /// Reads `range` of a file without going through the page cache when the file system
    /// allows it (`O_DIRECT`, aligned to [`direct_io::DIRECT_ALIGN`]): a restore reads each pack once, so
    /// caching it only costs the kernel a copy and a page-cache insertion per page, and
    /// evicts what the machine had cached. Falls back to an ordinary read where direct I/O is
    /// refused. The range must lie within the file.
    pub(crate) fn read_range_uncached(
        &self,
        parts: &[&str],
        range: &Range<u64>,
    ) -> LocalResult<Bytes> {
        let path = self.display_path(parts);
        let (file, stat) = self.open_file(parts)?;
        let size = stat.st_size.max(0) as u64;
        if range.start > range.end || range.end > size {
            return Err(LocalError::Io {
                what: "reading",
                path: path.clone(),
                source: io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "bytes {}..{} are out of range of a file of {size} bytes",
                        range.start, range.end
                    ),
                ),
            });
        }
        if range.start == range.end {
            return Ok(Bytes::new());
        }
        match direct_io::read_direct(&file, range) {
            Ok(Some(bytes)) => return Ok(bytes),
            Ok(None) => {}
            Err(source) => {
                return Err(LocalError::Io {
                    what: "reading",
                    path,
                    source,
                });
            }
        }
        let mut buf = vec![0u8; (range.end - range.start) as usize];
        file.read_exact_at(&mut buf, range.start)
            .map_err(|source| LocalError::Io {
                what: "reading",
                path,
                source,
            })?;
        Ok(buf.into())
    }

    /// Creates a new staging file next to `name` in `dir`: `<name>#<n>`.
    fn create_staging(&self, dir: &OwnedFd, parts: &[&str]) -> LocalResult<(File, String)> {
        let name = parts.last().copied().unwrap_or_default();
        let flags =
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        for n in 1u32.. {
            let staging = format!("{name}#{n}");
            match nix::fcntl::openat(
                dir,
                staging.as_str(),
                flags,
                Mode::from_bits_truncate(0o666),
            ) {
                Ok(fd) => return Ok((File::from(fd), staging)),
                Err(Errno::EEXIST) => continue,
                Err(e) => {
                    let mut path = self.display_path(parts);
                    path.set_file_name(&staging);
                    return Err(LocalError::io("creating", path, e));
                }
            }
        }
        Err(LocalError::io(
            "creating",
            self.display_path(parts),
            Errno::EEXIST,
        ))
    }

    /// Refuses to replace a link or a special file at `name` (a rename would not follow it,
    /// but the user is better told than the link silently replaced).
    fn check_target(&self, dir: &OwnedFd, name: &str, path: &FsPath) -> LocalResult<()> {
        match self.lstat(dir, name, path)?.as_ref().map(kind_of) {
            Some(Kind::Symlink) => Err(LocalError::Symlink {
                path: path.to_path_buf(),
            }),
            Some(Kind::Other(kind)) => Err(LocalError::Special {
                path: path.to_path_buf(),
                kind,
            }),
            _ => Ok(()),
        }
    }

    /// Moves the finished staging file into place: `rename` (overwrite) or `link` (create
    /// only; `AlreadyExists` if the object exists).
    fn publish(
        &self,
        dir: &OwnedFd,
        staging: &str,
        name: &str,
        path: &FsPath,
        mode: &PutMode,
    ) -> object_store::Result<()> {
        let result = match mode {
            PutMode::Create => {
                let linked = nix::unistd::linkat(dir, staging, dir, name, AtFlags::empty());
                let _ = nix::unistd::unlinkat(dir, staging, UnlinkatFlags::NoRemoveDir);
                match linked {
                    Err(Errno::EEXIST) => {
                        return Err(object_store::Error::AlreadyExists {
                            path: path.display().to_string(),
                            source: Box::new(io::Error::from(Errno::EEXIST)),
                        });
                    }
                    other => other,
                }
            }
            _ => nix::fcntl::renameat(dir, staging, dir, name),
        };
        result.map_err(|e| {
            let _ = nix::unistd::unlinkat(dir, staging, UnlinkatFlags::NoRemoveDir);
            LocalError::io(
                "moving the finished upload into place at",
                path.to_path_buf(),
                e,
            )
            .into_store()
        })
    }

    /// Creates the directory `parts` and its parents.
    pub(crate) fn mkdir(&self, parts: &[&str]) -> LocalResult<()> {
        self.open_dir(parts, true).map(drop)
    }

    /// Removes the empty directory `parts`; `Ok(false)` if it does not exist.
    pub(crate) fn rmdir(&self, parts: &[&str]) -> LocalResult<bool> {
        let path = self.display_path(parts);
        let (dir, name) = match self.open_parent(parts, false) {
            Ok(found) => found,
            Err(LocalError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                return Ok(false);
            }
            Err(e) => return Err(e),
        };
        match self.lstat(&dir, name, &path)?.as_ref().map(kind_of) {
            None => return Ok(false),
            Some(Kind::Symlink) => return Err(LocalError::Symlink { path }),
            _ => {}
        }
        match nix::unistd::unlinkat(&dir, name, UnlinkatFlags::RemoveDir) {
            Ok(()) => Ok(true),
            Err(Errno::ENOENT) => Ok(false),
            Err(Errno::ENOTEMPTY) => Err(self.not_empty(parts, path)),
            Err(e) => Err(LocalError::io("removing directory", path, e)),
        }
    }

    /// Why the directory `parts` is not empty: the first few of its entries, by name.
    fn not_empty(&self, parts: &[&str], path: PathBuf) -> LocalError {
        const SHOWN: usize = 5;
        let names = self.open_dir(parts, false).ok().and_then(|fd| {
            let mut reader = nix::dir::Dir::from_fd(fd).ok()?;
            let mut names: Vec<String> = reader
                .iter()
                .filter_map(|entry| entry.ok())
                .map(|entry| entry.file_name().to_string_lossy().into_owned())
                .filter(|name| name != "." && name != "..")
                .collect();
            names.sort();
            Some(names)
        });
        match names {
            Some(names) if !names.is_empty() => {
                let mut entries = names
                    .iter()
                    .take(SHOWN)
                    .map(|n| format!("{n:?}"))
                    .collect::<Vec<_>>()
                    .join(", ");
                if names.len() > SHOWN {
                    entries.push_str(&format!(" and {} more", names.len() - SHOWN));
                }
                LocalError::NotEmpty { path, entries }
            }
            _ => LocalError::io("removing directory", path, Errno::ENOTEMPTY),
        }
    }

    fn delete(&self, parts: &[&str]) -> LocalResult<()> {
        let path = self.display_path(parts);
        let (dir, name) = self.open_parent(parts, false)?;
        match self.lstat(&dir, name, &path)?.as_ref().map(kind_of) {
            None => return Err(not_found(path)),
            Some(Kind::Symlink) => return Err(LocalError::Symlink { path }),
            _ => {}
        }
        nix::unistd::unlinkat(&dir, name, UnlinkatFlags::NoRemoveDir)
            .map_err(|e| LocalError::io("deleting", path, e))
    }

    /// The staging files of unfinished uploads (`<name>#<n>`) under the directory `parts`
    /// (recursively), or beside the object `parts` when that is not a directory; never
    /// through a link. Locations are relative to the root.
    pub(crate) fn staging_files(&self, parts: &[&str]) -> LocalResult<Vec<ObjectMeta>> {
        let mut out = Vec::new();
        let (start, start_key, sibling_prefix) = match self.open_listed(parts)? {
            Some(fd) => (fd, parts.join("/"), None),
            None => {
                let Some((name, dirs)) = parts.split_last() else {
                    return Ok(out);
                };
                match self.open_listed(dirs)? {
                    Some(fd) => (fd, dirs.join("/"), Some(format!("{name}#"))),
                    None => return Ok(out),
                }
            }
        };
        let mut stack = vec![(start, start_key)];
        while let Some((dir, key)) = stack.pop() {
            let (_, entries) = read_dir(self, dir, &key, true)?;
            for entry in entries {
                match entry {
                    Listed::File(meta) => {
                        let name = meta.location.filename().unwrap_or_default();
                        if sibling_prefix
                            .as_deref()
                            .is_none_or(|prefix| name.starts_with(prefix))
                        {
                            out.push(meta);
                        }
                    }
                    Listed::Dir(child, _) if sibling_prefix.is_none() => {
                        let child_parts: Vec<&str> =
                            child.split('/').filter(|s| !s.is_empty()).collect();
                        if let Some(fd) = self.open_listed(&child_parts)? {
                            stack.push((fd, child.clone()));
                        }
                    }
                    Listed::Dir(..) => {}
                }
            }
        }
        Ok(out)
    }

    /// Deletes the staging file at `parts` (its name checked by the caller), never through a
    /// link; a missing file is not an error.
    pub(crate) fn delete_staging(&self, parts: &[&str]) -> LocalResult<()> {
        match self.delete(parts) {
            Err(LocalError::Io { source, .. })
                if source.raw_os_error().map(Errno::from_raw) == Some(Errno::ENOENT) =>
            {
                Ok(())
            }
            other => other,
        }
    }

    /// Opens the directory a listing starts from: `None` if it does not exist or is a file.
    fn open_listed(&self, parts: &[&str]) -> LocalResult<Option<OwnedFd>> {
        match self.open_dir(parts, false) {
            Ok(fd) => Ok(Some(fd)),
            Err(LocalError::Io { source, .. })
                if matches!(
                    source.raw_os_error().map(Errno::from_raw),
                    Some(Errno::ENOENT | Errno::ENOTDIR)
                ) =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }
}

/// A key segment must be a plain name (`object_store::path::Path` already guarantees it;
/// checked again because everything here relies on it).
fn check_component(name: &str, path: impl FnOnce() -> PathBuf) -> LocalResult<()> {
    if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\0']) {
        return Err(LocalError::io("opening", path(), Errno::EINVAL));
    }
    Ok(())
}

fn parts_of(location: &Path) -> Vec<&str> {
    let raw: &str = location.as_ref();
    raw.split('/').filter(|s| !s.is_empty()).collect()
}

/// One directory entry of a listing: the entry's name and what it is.
enum Listed {
    File(ObjectMeta),
    Dir(String, Path),
}

/// Reads the entries of one directory (sorted by name), without following links: regular
/// files and directories are returned, everything else is skipped with a warning.
/// With `staging`, the files returned are the staging files of unfinished uploads instead of
/// the objects.
fn read_dir(
    root: &LocalRoot,
    dir: OwnedFd,
    key: &str,
    staging: bool,
) -> LocalResult<(OwnedFd, Vec<Listed>)> {
    let key_parts: Vec<&str> = key.split('/').filter(|s| !s.is_empty()).collect();
    let dir_path = root.display_path(&key_parts);
    let listing_fd = dir.try_clone().map_err(|source| LocalError::Io {
        what: "listing",
        path: dir_path.clone(),
        source,
    })?;
    let mut reader = nix::dir::Dir::from_fd(listing_fd)
        .map_err(|e| LocalError::io("listing", dir_path.clone(), e))?;
    let mut names: Vec<Vec<u8>> = Vec::new();
    for entry in reader.iter() {
        let entry = entry.map_err(|e| LocalError::io("listing", dir_path.clone(), e))?;
        let name: &CStr = entry.file_name();
        let bytes = name.to_bytes();
        if bytes != b"." && bytes != b".." {
            names.push(bytes.to_vec());
        }
    }
    drop(reader);
    names.sort();
    let mut out = Vec::with_capacity(names.len());
    for bytes in names {
        let entry_path = dir_path.join(OsStr::from_bytes(&bytes));
        let Ok(name) = std::str::from_utf8(&bytes) else {
            tracing::warn!(path = %entry_path.display(), "skipping a file whose name is not UTF-8");
            continue;
        };
        let child_key = if key.is_empty() {
            name.to_string()
        } else {
            format!("{key}/{name}")
        };
        let Ok(location) = Path::parse(&child_key) else {
            tracing::warn!(path = %entry_path.display(), "skipping a file whose name cannot be an object key");
            continue;
        };
        let stat = match nix::sys::stat::fstatat(&dir, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(stat) => stat,
            // Deleted since the directory was read.
            Err(Errno::ENOENT) => continue,
            Err(e) => return Err(LocalError::io("looking up", entry_path, e)),
        };
        match kind_of(&stat) {
            Kind::Dir => out.push(Listed::Dir(child_key, location)),
            Kind::File if is_staging_name(name) != staging => {}
            Kind::File => out.push(Listed::File(ObjectMeta {
                location,
                last_modified: modified(&stat).into(),
                size: stat.st_size.max(0) as u64,
                e_tag: Some(e_tag(&stat)),
                version: None,
            })),
            Kind::Symlink => {
                tracing::warn!(
                    path = %entry_path.display(),
                    "skipping a symbolic link in a local repository (links are never followed)"
                );
            }
            Kind::Other(kind) => {
                tracing::warn!(
                    path = %entry_path.display(),
                    kind,
                    "skipping an entry of a local repository that is not a regular file or directory"
                );
            }
        }
    }
    Ok((dir, out))
}

/// A depth-first walk over every regular file under a directory, never through a link.
struct Walk {
    root: Arc<LocalRoot>,
    /// Directories being walked: descriptor and the entries left (reversed, next at the end).
    stack: Vec<(OwnedFd, Vec<Listed>)>,
}

impl Walk {
    fn next_batch(&mut self, max: usize) -> LocalResult<Vec<ObjectMeta>> {
        let mut out = Vec::new();
        while out.len() < max {
            let Some((dir, entries)) = self.stack.last_mut() else {
                break;
            };
            let Some(entry) = entries.pop() else {
                self.stack.pop();
                continue;
            };
            match entry {
                Listed::File(meta) => out.push(meta),
                Listed::Dir(key, _) => {
                    let name = key.rsplit('/').next().unwrap_or(&key);
                    let path = || {
                        let parts: Vec<&str> = key.split('/').collect();
                        self.root.display_path(&parts)
                    };
                    let child = match nix::fcntl::openat(&*dir, name, DIR_FLAGS, Mode::empty()) {
                        Ok(fd) => fd,
                        // Removed, or replaced by something else since it was read: a listing
                        // is not a snapshot.
                        Err(Errno::ENOENT) => continue,
                        Err(e) => match self.root.classify(dir, name, path(), e) {
                            LocalError::Symlink { path } => {
                                tracing::warn!(
                                    path = %path.display(),
                                    "skipping a symbolic link in a local repository (links are never followed)"
                                );
                                continue;
                            }
                            LocalError::Special { .. } => continue,
                            other => return Err(other),
                        },
                    };
                    let (child, mut entries) = read_dir(&self.root, child, &key, false)?;
                    entries.reverse();
                    self.stack.push((child, entries));
                }
            }
        }
        Ok(out)
    }
}

/// The object store over a [`LocalRoot`].
#[derive(Debug, Clone)]
pub(crate) struct ConfinedLocal {
    root: Arc<LocalRoot>,
}

impl std::fmt::Display for ConfinedLocal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "local {}", self.root.root.display())
    }
}

impl ConfinedLocal {
    pub(crate) fn new(root: Arc<LocalRoot>) -> ConfinedLocal {
        ConfinedLocal { root }
    }

    /// Runs blocking file-system work off the async threads.
    async fn blocking<T, F>(&self, work: F) -> object_store::Result<T>
    where
        F: FnOnce(&Arc<LocalRoot>) -> object_store::Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let root = Arc::clone(&self.root);
        tokio::task::spawn_blocking(move || work(&root)).await?
    }
}

fn owned_parts(location: &Path) -> object_store::Result<Vec<String>> {
    let parts: Vec<String> = parts_of(location).into_iter().map(String::from).collect();
    if let Some(last) = parts.last()
        && is_staging_name(last)
    {
        return Err(LocalError::StagingName {
            key: location.to_string(),
        }
        .into_store());
    }
    Ok(parts)
}

fn as_strs(parts: &[String]) -> Vec<&str> {
    parts.iter().map(String::as_str).collect()
}

fn meta_of(location: Path, stat: &FileStat) -> ObjectMeta {
    ObjectMeta {
        location,
        last_modified: modified(stat).into(),
        size: stat.st_size.max(0) as u64,
        e_tag: Some(e_tag(stat)),
        version: None,
    }
}

fn unsupported(operation: &str) -> object_store::Error {
    object_store::Error::NotImplemented {
        operation: operation.into(),
        implementer: "the local repository store".into(),
    }
}

#[async_trait]
impl ObjectStore for ConfinedLocal {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        if matches!(opts.mode, PutMode::Update(_)) {
            return Err(unsupported("put with PutMode::Update"));
        }
        if !opts.attributes.is_empty() {
            return Err(unsupported("put with attributes"));
        }
        let parts = owned_parts(location)?;
        self.blocking(move |root| {
            let parts = as_strs(&parts);
            let path = root.display_path(&parts);
            let (dir, name) = root
                .open_parent(&parts, true)
                .map_err(LocalError::into_store)?;
            root.check_target(&dir, name, &path)
                .map_err(LocalError::into_store)?;
            let (file, staging) = root
                .create_staging(&dir, &parts)
                .map_err(LocalError::into_store)?;
            if let Err(source) = direct_io::write_all(&file, payload.as_ref()) {
                let _ = nix::unistd::unlinkat(&dir, staging.as_str(), UnlinkatFlags::NoRemoveDir);
                return Err(LocalError::Io {
                    what: "writing",
                    path,
                    source,
                }
                .into_store());
            }
            let stat = nix::sys::stat::fstat(&file)
                .map_err(|e| LocalError::io("looking up", path.clone(), e).into_store())?;
            drop(file);
            root.publish(&dir, &staging, name, &path, &opts.mode)?;
            Ok(PutResult {
                e_tag: Some(e_tag(&stat)),
                version: None,
                extensions: Default::default(),
            })
        })
        .await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        if !opts.attributes.is_empty() {
            return Err(unsupported("multipart upload with attributes"));
        }
        let parts = owned_parts(location)?;
        let upload = self
            .blocking(move |root| {
                let strs = as_strs(&parts);
                let path = root.display_path(&strs);
                let (dir, name) = root
                    .open_parent(&strs, true)
                    .map_err(LocalError::into_store)?;
                root.check_target(&dir, name, &path)
                    .map_err(LocalError::into_store)?;
                let (file, staging) = root
                    .create_staging(&dir, &strs)
                    .map_err(LocalError::into_store)?;
                let name = name.to_string();
                Ok(Upload {
                    state: Arc::new(UploadState {
                        root: Arc::clone(root),
                        dir,
                        staging,
                        name,
                        path,
                        file: Mutex::new(Some(Arc::new(file))),
                    }),
                    offset: 0,
                    done: false,
                })
            })
            .await?;
        Ok(Box::new(upload))
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        let parts = owned_parts(location)?;
        let location = location.clone();
        self.blocking(move |root| {
            let strs = as_strs(&parts);
            let path = root.display_path(&strs);
            let (file, stat) = root.open_file(&strs).map_err(LocalError::into_store)?;
            let meta = meta_of(location, &stat);
            options.check_preconditions(&meta)?;
            let range = match &options.range {
                Some(range) => {
                    range
                        .as_range(meta.size)
                        .map_err(|e| object_store::Error::Generic {
                            store: STORE_NAME,
                            source: Box::new(e),
                        })?
                }
                None => 0..meta.size,
            };
            Ok(GetResult {
                payload: GetResultPayload::File(file, path),
                meta,
                range,
                attributes: Default::default(),
                extensions: Default::default(),
            })
        })
        .await
    }

    async fn get_ranges(
        &self,
        location: &Path,
        ranges: &[Range<u64>],
    ) -> object_store::Result<Vec<Bytes>> {
        let parts = owned_parts(location)?;
        let ranges = ranges.to_vec();
        self.blocking(move |root| {
            let strs = as_strs(&parts);
            let path = root.display_path(&strs);
            let (file, stat) = root.open_file(&strs).map_err(LocalError::into_store)?;
            let size = stat.st_size.max(0) as u64;
            ranges
                .iter()
                .map(|range| read_range(&file, &path, range, size))
                .collect()
        })
        .await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        let this = self.clone();
        locations
            .map(move |location| {
                let this = this.clone();
                async move {
                    let location = location?;
                    let parts = owned_parts(&location)?;
                    this.blocking(move |root| {
                        root.delete(&as_strs(&parts))
                            .map_err(LocalError::into_store)
                    })
                    .await?;
                    Ok(location)
                }
            })
            .buffered(10)
            .boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        let root = Arc::clone(&self.root);
        let key = prefix.map(|p| p.as_ref().to_string()).unwrap_or_default();
        let start = async move {
            let walk =
                tokio::task::spawn_blocking(move || -> object_store::Result<Option<Walk>> {
                    let parts: Vec<&str> = key.split('/').filter(|s| !s.is_empty()).collect();
                    let Some(dir) = root.open_listed(&parts).map_err(LocalError::into_store)?
                    else {
                        return Ok(None);
                    };
                    let (dir, mut entries) =
                        read_dir(&root, dir, &key, false).map_err(LocalError::into_store)?;
                    entries.reverse();
                    Ok(Some(Walk {
                        root: Arc::clone(&root),
                        stack: vec![(dir, entries)],
                    }))
                })
                .await??;
            Ok::<_, object_store::Error>(walk)
        };
        start
            .map(|walk| match walk {
                Err(e) => futures::stream::once(async move { Err(e) }).boxed(),
                Ok(None) => futures::stream::empty().boxed(),
                Ok(Some(walk)) => walk_stream(walk),
            })
            .flatten_stream()
            .boxed()
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        let key = prefix.map(|p| p.as_ref().to_string()).unwrap_or_default();
        self.blocking(move |root| {
            let parts: Vec<&str> = key.split('/').filter(|s| !s.is_empty()).collect();
            let mut result = ListResult {
                common_prefixes: Vec::new(),
                objects: Vec::new(),
                extensions: Default::default(),
            };
            let Some(dir) = root.open_listed(&parts).map_err(LocalError::into_store)? else {
                return Ok(result);
            };
            let (_, entries) = read_dir(root, dir, &key, false).map_err(LocalError::into_store)?;
            for entry in entries {
                match entry {
                    Listed::File(meta) => result.objects.push(meta),
                    Listed::Dir(_, location) => result.common_prefixes.push(location),
                }
            }
            Ok(result)
        })
        .await
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        let from_parts = owned_parts(from)?;
        let to_parts = owned_parts(to)?;
        self.blocking(move |root| {
            let (from_strs, to_strs) = (as_strs(&from_parts), as_strs(&to_parts));
            let (mut source, _) = root.open_file(&from_strs).map_err(LocalError::into_store)?;
            let path = root.display_path(&to_strs);
            let (dir, name) = root
                .open_parent(&to_strs, true)
                .map_err(LocalError::into_store)?;
            root.check_target(&dir, name, &path)
                .map_err(LocalError::into_store)?;
            let (mut target, staging) = root
                .create_staging(&dir, &to_strs)
                .map_err(LocalError::into_store)?;
            if let Err(source) = io::copy(&mut source, &mut target) {
                let _ = nix::unistd::unlinkat(&dir, staging.as_str(), UnlinkatFlags::NoRemoveDir);
                return Err(LocalError::Io {
                    what: "copying into",
                    path,
                    source,
                }
                .into_store());
            }
            drop(target);
            let mode = match options.mode {
                CopyMode::Create => PutMode::Create,
                CopyMode::Overwrite => PutMode::Overwrite,
            };
            root.publish(&dir, &staging, name, &path, &mode)
        })
        .await
    }
}

fn walk_stream(walk: Walk) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
    futures::stream::try_unfold(
        (Some(walk), Vec::<ObjectMeta>::new()),
        |(walk, mut buffer)| async move {
            let mut walk = walk;
            if buffer.is_empty() {
                let Some(mut current) = walk.take() else {
                    return Ok(None);
                };
                let (current, batch) = tokio::task::spawn_blocking(move || {
                    let batch = current.next_batch(LIST_BATCH);
                    (current, batch)
                })
                .await?;
                let mut batch = batch.map_err(LocalError::into_store)?;
                if batch.is_empty() {
                    return Ok(None);
                }
                batch.reverse();
                buffer = batch;
                walk = Some(current);
            }
            match buffer.pop() {
                Some(meta) => Ok(Some((meta, (walk, buffer)))),
                None => Ok(None),
            }
        },
    )
    .boxed()
}

fn read_range(
    file: &File,
    path: &FsPath,
    range: &Range<u64>,
    size: u64,
) -> object_store::Result<Bytes> {
    if range.start > range.end || range.start > size {
        return Err(object_store::Error::Generic {
            store: STORE_NAME,
            source: format!(
                "bytes {}..{} are out of range of {} ({size} bytes)",
                range.start,
                range.end,
                path.display()
            )
            .into(),
        });
    }
    let end = range.end.min(size);
    let mut buf = vec![0u8; (end - range.start) as usize];
    file.read_exact_at(&mut buf, range.start)
        .map_err(|source| {
            LocalError::Io {
                what: "reading",
                path: path.to_path_buf(),
                source,
            }
            .into_store()
        })?;
    Ok(buf.into())
}

/// An upload in progress: a staging file in a directory held open, so the upload lands in
/// the directory that was checked even if a parent is swapped for a link meanwhile.
#[derive(Debug)]
struct UploadState {
    root: Arc<LocalRoot>,
    dir: OwnedFd,
    staging: String,
    name: String,
    path: PathBuf,
    file: Mutex<Option<Arc<File>>>,
}

impl UploadState {
    fn file(&self) -> object_store::Result<Arc<File>> {
        self.file
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .ok_or_else(|| LocalError::io("writing", self.path.clone(), Errno::EBADF).into_store())
    }

    fn discard(&self) {
        self.file
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let _ = nix::unistd::unlinkat(&self.dir, self.staging.as_str(), UnlinkatFlags::NoRemoveDir);
    }
}

#[derive(Debug)]
struct Upload {
    state: Arc<UploadState>,
    offset: u64,
    done: bool,
}

#[async_trait]
impl MultipartUpload for Upload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        let offset = self.offset;
        self.offset += data.content_length() as u64;
        let state = Arc::clone(&self.state);
        async move {
            tokio::task::spawn_blocking(move || {
                let file = state.file()?;
                let mut at = offset;
                for chunk in data.iter() {
                    file.write_all_at(chunk, at).map_err(|source| {
                        LocalError::Io {
                            what: "writing",
                            path: state.path.clone(),
                            source,
                        }
                        .into_store()
                    })?;
                    at += chunk.len() as u64;
                }
                Ok(())
            })
            .await?
        }
        .boxed()
    }

    async fn complete(&mut self) -> object_store::Result<PutResult> {
        self.done = true;
        let state = Arc::clone(&self.state);
        tokio::task::spawn_blocking(move || {
            let file = state
                .file
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take()
                .ok_or_else(|| {
                    LocalError::io("completing", state.path.clone(), Errno::EBADF).into_store()
                })?;
            let stat = nix::sys::stat::fstat(&*file)
                .map_err(|e| LocalError::io("looking up", state.path.clone(), e).into_store())?;
            drop(file);
            state
                .root
                .check_target(&state.dir, &state.name, &state.path)
                .map_err(|e| {
                    state.discard();
                    e.into_store()
                })?;
            state.root.publish(
                &state.dir,
                &state.staging,
                &state.name,
                &state.path,
                &PutMode::Overwrite,
            )?;
            Ok(PutResult {
                e_tag: Some(e_tag(&stat)),
                version: None,
                extensions: Default::default(),
            })
        })
        .await?
    }

    async fn abort(&mut self) -> object_store::Result<()> {
        self.done = true;
        let state = Arc::clone(&self.state);
        tokio::task::spawn_blocking(move || state.discard()).await?;
        Ok(())
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        if !self.done {
            self.state.discard();
        }
    }
}

/// Reads a whole regular file at `rel` under `dir` without following any link on the way
/// (for the agent's reads from directories a pod controls), at most `limit` bytes.
pub fn read_confined(dir: &FsPath, rel: &str, limit: u64) -> Result<Vec<u8>, LocalError> {
    let root = LocalRoot::new(dir.to_path_buf());
    let parts: Vec<&str> = rel.split('/').filter(|s| !s.is_empty()).collect();
    let (file, _) = root.open_file(&parts)?;
    let mut out = Vec::new();
    let mut reader = file.take(limit);
    reader
        .read_to_end(&mut out)
        .map_err(|source| LocalError::Io {
            what: "reading",
            path: root.display_path(&parts),
            source,
        })?;
    Ok(out)
}

/// Whether anything (a file, a directory, even a link) is at `rel` under `dir`, looked up
/// without following a link on the way or at `rel` itself.
pub fn entry_exists_confined(dir: &FsPath, rel: &str) -> bool {
    let root = LocalRoot::new(dir.to_path_buf());
    let parts: Vec<&str> = rel.split('/').filter(|s| !s.is_empty()).collect();
    let Ok((dir_fd, name)) = root.open_parent(&parts, false) else {
        return false;
    };
    let path = root.display_path(&parts);
    matches!(root.lstat(&dir_fd, name, &path), Ok(Some(_)))
}

/// Sets the permission bits of `path` without following a link at `path` (a link there is an
/// error, `EOPNOTSUPP`): for the agent's own files in directories pods can write.
pub fn set_mode_no_follow(path: &FsPath, mode: u32) -> io::Result<()> {
    nix::sys::stat::fchmodat(
        nix::fcntl::AT_FDCWD,
        path,
        Mode::from_bits_truncate(mode),
        nix::sys::stat::FchmodatFlags::NoFollowSymlink,
    )
    .map_err(io::Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staging_files_are_found_and_deleted_only_inside_the_root() {
        let outside = tempfile::tempdir().expect("tempdir");
        std::fs::write(outside.path().join("y#1"), b"outside").expect("write");
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("a/b")).expect("mkdir");
        std::fs::write(dir.path().join("a/b/x#1"), b"left by a kill").expect("write");
        std::fs::write(dir.path().join("a/b/x"), b"an object").expect("write");
        std::os::unix::fs::symlink(outside.path(), dir.path().join("a/link")).expect("symlink");
        let root = LocalRoot::new(dir.path().to_path_buf());

        let found: Vec<String> = root
            .staging_files(&[])
            .expect("walk")
            .into_iter()
            .map(|m| m.location.to_string())
            .collect();
        assert_eq!(found, ["a/b/x#1"], "the linked directory is not walked");
        let beside: Vec<String> = root
            .staging_files(&["a", "b", "x"])
            .expect("beside an object")
            .into_iter()
            .map(|m| m.location.to_string())
            .collect();
        assert_eq!(beside, ["a/b/x#1"]);
        let err = root.staging_files(&["a", "link"]).expect_err("a link");
        assert!(matches!(err, LocalError::Symlink { .. }), "{err}");

        let err = root
            .delete_staging(&["a", "link", "y#1"])
            .expect_err("through a link");
        assert!(matches!(err, LocalError::Symlink { .. }), "{err}");
        assert!(
            outside.path().join("y#1").exists(),
            "nothing outside is deleted"
        );
        root.delete_staging(&["a", "b", "x#1"]).expect("delete");
        root.delete_staging(&["a", "b", "x#1"])
            .expect("a missing file is no error");
        assert!(dir.path().join("a/b/x").exists(), "the object stays");
    }

    #[test]
    fn confined_reads_refuse_links_and_stop_at_the_limit() {
        let outside = tempfile::tempdir().expect("tempdir");
        std::fs::write(outside.path().join("secret"), b"outside").expect("write");
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("info"), b"0123456789").expect("write");
        std::os::unix::fs::symlink(outside.path().join("secret"), dir.path().join("file-link"))
            .expect("symlink");
        std::os::unix::fs::symlink(outside.path(), dir.path().join("dir-link")).expect("symlink");

        assert_eq!(read_confined(dir.path(), "info", 4).expect("read"), b"0123");
        for rel in ["file-link", "dir-link/secret"] {
            let err = read_confined(dir.path(), rel, 100).expect_err(rel);
            assert!(matches!(err, LocalError::Symlink { .. }), "{rel}: {err}");
        }
        assert!(entry_exists_confined(dir.path(), "info"));
        assert!(
            entry_exists_confined(dir.path(), "file-link"),
            "the link itself"
        );
        assert!(!entry_exists_confined(dir.path(), "dir-link/secret"));
        assert!(!entry_exists_confined(dir.path(), "missing"));
    }
}
