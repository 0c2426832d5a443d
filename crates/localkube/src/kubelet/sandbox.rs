//! A container's filesystem view: its own mount namespace (inside an unprivileged user
//! namespace when localkube is not root) whose root is a tmpfs holding the host's top-level
//! entries, with each volume bind-mounted at its `mountPath`.
//!
//! Like a container's own root filesystem, what the process writes outside its volumes is
//! private and goes away with it: `/tmp` is an empty directory of its own (mode 1777), and
//! every other top-level directory is an overlay whose lower layer is the host's directory
//! and whose upper layer is the container's scratch directory (on disk, in the pod's
//! directory, or in memory when the scratch directory lies below that very host directory,
//! which overlayfs refuses). Mounts below such a directory (`/etc/hosts`, a separate
//! filesystem) are bind-mounted on top, shared as a container runtime's would be.
//! `/proc`, `/sys`, `/dev` and other kernel filesystems are bind mounts of the host's; a
//! directory that cannot be overlaid (an overlay refused by the kernel) is bind-mounted too.
//!
//! A mount point missing on the host is created without touching the host: directly in the
//! tmpfs root for top-level paths (`/dp-manager`), in the private `/tmp`, or in an overlay
//! over the nearest existing directory (`/usr/bin/datasafed` overlays `/usr/bin`). Paths are
//! resolved through the container's own symlinks (`/bin` -> `usr/bin`). The plan is computed
//! in the parent; the child only performs prepared system calls (nothing allocates after
//! `fork`). `exec` and exec probes join the running container's namespaces ([`Joiner`]).

use nix::mount::{MsFlags, mount};
use nix::sched::{CloneFlags, unshare};
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

/// One volume mount of a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeMount {
    /// The absolute path inside the container.
    pub container_path: PathBuf,
    /// The host file or directory to mount there.
    pub host_path: PathBuf,
    pub read_only: bool,
}

/// A step the child performs.
#[derive(Debug)]
enum Op {
    Mkdir(CString),
    Touch(CString),
    Symlink {
        target: CString,
        link: CString,
    },
    Bind {
        src: CString,
        dst: CString,
        read_only: bool,
    },
    Tmpfs(CString),
    Overlay {
        dst: CString,
        options: CString,
    },
    /// An overlay that falls back to a bind mount of `fallback` if the kernel refuses it.
    OverlayOrBind {
        dst: CString,
        options: CString,
        fallback: CString,
    },
    /// A recursive bind mount whose failure (a mount point hidden from the overlay) is ignored.
    BindIfPossible {
        src: CString,
        dst: CString,
    },
}

/// Kernel filesystems that are bind-mounted from the host, never overlaid.
const KERNEL_FILESYSTEMS: &[&str] = &[
    "proc",
    "sysfs",
    "devtmpfs",
    "devpts",
    "cgroup",
    "cgroup2",
    "securityfs",
    "debugfs",
    "tracefs",
    "bpf",
    "mqueue",
    "hugetlbfs",
    "fusectl",
    "configfs",
    "pstore",
    "binfmt_misc",
    "autofs",
    "nsfs",
    "efivarfs",
];

/// One line of `/proc/self/mountinfo`: the mount point and its filesystem type.
#[derive(Debug, Clone, PartialEq, Eq)]
struct MountPoint {
    path: PathBuf,
    fstype: String,
}

/// Undoes mountinfo's octal escapes (`\040` for a space).
fn unescape_mountinfo(field: &str) -> PathBuf {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && let Ok(v) = u8::from_str_radix(&field[i + 1..i + 4], 8)
        {
            out.push(v);
            i += 4;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    PathBuf::from(std::ffi::OsString::from(
        <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(&out),
    ))
}

fn parse_mountinfo(text: &str) -> Vec<MountPoint> {
    text.lines()
        .filter_map(|line| {
            let (pre, post) = line.split_once(" - ")?;
            let path = unescape_mountinfo(pre.split(' ').nth(4)?);
            let fstype = post.split(' ').next()?.to_string();
            Some(MountPoint { path, fstype })
        })
        .collect()
}

/// The container's private scratch directory: `/tmp` and the overlays' upper layers.
#[derive(Debug, Clone)]
pub struct Scratch {
    dir: PathBuf,
    /// Top-level directories overlaid with an upper layer on disk.
    overlaid: Vec<String>,
}

impl Scratch {
    /// `<dir>/tmp`, the container's `/tmp`.
    pub fn tmp(&self) -> PathBuf {
        self.dir.join("tmp")
    }

    /// Empties the scratch directory and lays out `/tmp` and the upper layers: a container
    /// (re)starts with a fresh writable layer, as a new container would.
    pub fn reset(&self) -> std::io::Result<()> {
        remove_tree(&self.dir)?;
        std::fs::create_dir_all(self.tmp())?;
        std::fs::set_permissions(
            self.tmp(),
            std::os::unix::fs::PermissionsExt::from_mode(0o1777),
        )?;
        for name in &self.overlaid {
            std::fs::create_dir_all(self.dir.join("upper").join(name))?;
            std::fs::create_dir_all(self.dir.join("work").join(name))?;
        }
        Ok(())
    }
}

/// Removes a directory tree written by a container, including overlayfs work directories
/// (mode 000 when not root).
pub fn remove_tree(dir: &Path) -> std::io::Result<()> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(first) => {
            // Make every directory writable and searchable, then try again.
            fn open_up(p: &Path) {
                use std::os::unix::fs::PermissionsExt;
                if let Ok(meta) = std::fs::symlink_metadata(p)
                    && meta.is_dir()
                {
                    let _ = std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o700));
                    if let Ok(entries) = std::fs::read_dir(p) {
                        for e in entries.flatten() {
                            open_up(&e.path());
                        }
                    }
                }
            }
            open_up(dir);
            std::fs::remove_dir_all(dir).map_err(|_| first)
        }
    }
}

/// Everything the child needs, prepared before `fork`.
#[derive(Debug)]
pub struct Sandbox {
    scratch: Scratch,
    root: CString,
    ops: Vec<Op>,
    workdir: CString,
    user_namespace: Option<(CString, CString)>,
    run_as: Option<(u32, u32)>,
    proc_setgroups: CString,
    proc_uid_map: CString,
    proc_gid_map: CString,
    slash: CString,
}

/// Why a sandbox could not be planned.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("mountPath {0} is not absolute")]
    RelativeMountPath(String),
    #[error("reading the host root directory")]
    ReadRoot(#[source] std::io::Error),
    #[error("creating the sandbox root {path}")]
    CreateRoot {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("a path contains a NUL byte: {0}")]
    Nul(String),
    #[error("volume source {0} does not exist")]
    MissingSource(PathBuf),
}

fn cstr(p: &Path) -> Result<CString, SandboxError> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| SandboxError::Nul(p.display().to_string()))
}

/// The container's view while planning: which container paths map to which host paths.
struct View {
    /// (container prefix, host path) mounts, later ones shadowing earlier ones.
    mounts: Vec<(PathBuf, PathBuf)>,
    /// Container paths that exist only in the tmpfs root or an overlay.
    created: Vec<PathBuf>,
}

impl View {
    /// The host path that backs container path `p`, if any.
    fn host(&self, p: &Path) -> Option<PathBuf> {
        self.mounts
            .iter()
            .rev()
            .filter(|(prefix, _)| p.starts_with(prefix))
            .max_by_key(|(prefix, _)| prefix.components().count())
            .map(|(prefix, host)| {
                let rest = p.strip_prefix(prefix).unwrap_or(Path::new(""));
                if rest.as_os_str().is_empty() {
                    host.clone()
                } else {
                    host.join(rest)
                }
            })
    }

    fn exists(&self, p: &Path) -> bool {
        p == Path::new("/")
            || self.created.iter().any(|c| c == p)
            || self.host(p).is_some_and(|h| h.symlink_metadata().is_ok())
    }

    /// Resolves symlinks in `p` as the container would see them.
    fn resolve(&self, p: &Path) -> PathBuf {
        let mut out = PathBuf::from("/");
        let mut pending: Vec<PathBuf> = p
            .components()
            .filter_map(|c| match c {
                Component::Normal(s) => Some(PathBuf::from(s)),
                Component::ParentDir => Some(PathBuf::from("..")),
                _ => None,
            })
            .rev()
            .collect();
        let mut hops = 0;
        while let Some(part) = pending.pop() {
            if part == Path::new("..") {
                out.pop();
                continue;
            }
            let candidate = out.join(&part);
            let link = if self.created.contains(&candidate) {
                None
            } else {
                self.host(&candidate)
                    .and_then(|h| std::fs::read_link(h).ok())
            };
            match link {
                Some(target) if hops < 40 => {
                    hops += 1;
                    if target.is_absolute() {
                        out = PathBuf::from("/");
                    }
                    for c in target.components().rev() {
                        match c {
                            Component::Normal(s) => pending.push(PathBuf::from(s)),
                            Component::ParentDir => pending.push(PathBuf::from("..")),
                            _ => {}
                        }
                    }
                }
                _ => out = candidate,
            }
        }
        out
    }
}

impl Sandbox {
    /// Plans a sandbox rooted at `root_dir` (an empty directory the caller owns) with
    /// `mounts`, working directory `workdir`, an optional `runAsUser`/`runAsGroup`, and
    /// `scratch_dir` for the container's private writes (see [`Scratch::reset`]).
    pub fn plan(
        root_dir: &Path,
        scratch_dir: &Path,
        mounts: &[VolumeMount],
        workdir: &Path,
        run_as: Option<(u32, u32)>,
    ) -> Result<Sandbox, SandboxError> {
        std::fs::create_dir_all(root_dir).map_err(|source| SandboxError::CreateRoot {
            path: root_dir.to_path_buf(),
            source,
        })?;
        std::fs::create_dir_all(scratch_dir).map_err(|source| SandboxError::CreateRoot {
            path: scratch_dir.to_path_buf(),
            source,
        })?;
        let scratch_real =
            std::fs::canonicalize(scratch_dir).unwrap_or_else(|_| scratch_dir.to_path_buf());
        let host_mounts = std::fs::read_to_string("/proc/self/mountinfo")
            .map(|t| parse_mountinfo(&t))
            .unwrap_or_default();
        let mut ops = vec![Op::Tmpfs(cstr(root_dir)?)];
        let mut view = View {
            mounts: Vec::new(),
            created: Vec::new(),
        };
        let mut scratch = Scratch {
            dir: scratch_dir.to_path_buf(),
            overlaid: Vec::new(),
        };
        // Container paths below which missing mount points may be created directly.
        let mut private: Vec<PathBuf> = Vec::new();
        let in_root = |p: &Path| -> PathBuf { root_dir.join(p.strip_prefix("/").unwrap_or(p)) };
        let entries = std::fs::read_dir("/").map_err(SandboxError::ReadRoot)?;
        let mut names: Vec<_> = entries.filter_map(|e| e.ok()).collect();
        names.sort_by_key(|e| e.file_name());
        for entry in names {
            let host = PathBuf::from("/").join(entry.file_name());
            let inside = in_root(&host);
            let Ok(meta) = std::fs::symlink_metadata(&host) else {
                continue;
            };
            let name = entry.file_name().to_string_lossy().into_owned();
            if meta.file_type().is_symlink() {
                if let Ok(target) = std::fs::read_link(&host) {
                    ops.push(Op::Symlink {
                        target: cstr(&target)?,
                        link: cstr(&inside)?,
                    });
                }
                view.mounts.push((host.clone(), host));
                continue;
            }
            if !meta.is_dir() {
                ops.push(Op::Touch(cstr(&inside)?));
                ops.push(Op::Bind {
                    src: cstr(&host)?,
                    dst: cstr(&inside)?,
                    read_only: false,
                });
                view.mounts.push((host.clone(), host));
                continue;
            }
            ops.push(Op::Mkdir(cstr(&inside)?));
            if name == "tmp" {
                // A private, initially empty /tmp.
                ops.push(Op::Bind {
                    src: cstr(&scratch.tmp())?,
                    dst: cstr(&inside)?,
                    read_only: false,
                });
                view.mounts.push((host.clone(), scratch.tmp()));
                private.push(host);
                continue;
            }
            let kernel_fs = host_mounts
                .iter()
                .rev()
                .find(|m| m.path == host)
                .is_some_and(|m| KERNEL_FILESYSTEMS.contains(&m.fstype.as_str()));
            let plain_name = !name.contains([',', ':', '\\', ' ']);
            if kernel_fs || matches!(name.as_str(), "proc" | "sys" | "dev") || !plain_name {
                ops.push(Op::Bind {
                    src: cstr(&host)?,
                    dst: cstr(&inside)?,
                    read_only: false,
                });
                view.mounts.push((host.clone(), host));
                continue;
            }
            // overlayfs refuses an upper layer below its lower one: then keep it in memory.
            let (upper, work) = if scratch_real.starts_with(&host) {
                let mem = in_root(Path::new("/.localkube/rootfs")).join(&name);
                for d in [
                    in_root(Path::new("/.localkube")),
                    in_root(Path::new("/.localkube/rootfs")),
                    mem.clone(),
                    mem.join("upper"),
                    mem.join("work"),
                ] {
                    ops.push(Op::Mkdir(cstr(&d)?));
                }
                (mem.join("upper"), mem.join("work"))
            } else {
                scratch.overlaid.push(name.clone());
                (
                    scratch_dir.join("upper").join(&name),
                    scratch_dir.join("work").join(&name),
                )
            };
            let options = format!(
                "lowerdir={},upperdir={},workdir={}",
                host.display(),
                upper.display(),
                work.display()
            );
            ops.push(Op::OverlayOrBind {
                dst: cstr(&inside)?,
                options: CString::new(options).map_err(|_| SandboxError::Nul(name.clone()))?,
                fallback: cstr(&host)?,
            });
            // What is mounted below it on the host shows through, as bind mounts.
            let mut bound: Vec<&Path> = Vec::new();
            for m in &host_mounts {
                if m.path == host
                    || !m.path.starts_with(&host)
                    || bound.iter().any(|b| m.path.starts_with(b))
                {
                    continue;
                }
                ops.push(Op::BindIfPossible {
                    src: cstr(&m.path)?,
                    dst: cstr(&in_root(&m.path))?,
                });
                bound.push(&m.path);
            }
            view.mounts.push((host.clone(), host));
        }
        let mut sorted: Vec<&VolumeMount> = mounts.iter().collect();
        sorted.sort_by_key(|m| m.container_path.components().count());
        let mut overlays = 0usize;
        let mut overlaid: Vec<PathBuf> = Vec::new();
        for m in sorted {
            if !m.container_path.is_absolute() {
                return Err(SandboxError::RelativeMountPath(
                    m.container_path.display().to_string(),
                ));
            }
            let source_meta = std::fs::metadata(&m.host_path)
                .map_err(|_| SandboxError::MissingSource(m.host_path.clone()))?;
            let target = view.resolve(&m.container_path);
            if !view.exists(&target) {
                // Create the missing components below the deepest existing ancestor.
                let mut missing = Vec::new();
                let mut cur = target.clone();
                while !view.exists(&cur) {
                    missing.push(cur.clone());
                    if !cur.pop() {
                        break;
                    }
                }
                let anchor = cur;
                if anchor != Path::new("/")
                    && !private.iter().any(|o| anchor.starts_with(o))
                    && !overlaid.iter().any(|o| anchor.starts_with(o))
                    && let Some(lower) = view.host(&anchor)
                {
                    {
                        let scratch = in_root(Path::new("/.localkube")).join(overlays.to_string());
                        overlays += 1;
                        let upper = scratch.join("upper");
                        let work = scratch.join("work");
                        for d in [
                            in_root(Path::new("/.localkube")),
                            scratch.clone(),
                            upper.clone(),
                            work.clone(),
                        ] {
                            ops.push(Op::Mkdir(cstr(&d)?));
                        }
                        let options = format!(
                            "lowerdir={},upperdir={},workdir={}",
                            lower.display(),
                            upper.display(),
                            work.display()
                        );
                        ops.push(Op::Overlay {
                            dst: cstr(&in_root(&anchor))?,
                            options: CString::new(options)
                                .map_err(|_| SandboxError::Nul(anchor.display().to_string()))?,
                        });
                        overlaid.push(anchor.clone());
                    }
                }
                for (i, p) in missing.iter().rev().enumerate() {
                    let last = i + 1 == missing.len();
                    if last && !source_meta.is_dir() {
                        ops.push(Op::Touch(cstr(&in_root(p))?));
                    } else {
                        ops.push(Op::Mkdir(cstr(&in_root(p))?));
                    }
                    view.created.push(p.clone());
                }
            }
            ops.push(Op::Bind {
                src: cstr(&m.host_path)?,
                dst: cstr(&in_root(&target))?,
                read_only: m.read_only,
            });
            view.mounts.push((target, m.host_path.clone()));
        }
        let user_namespace = if nix::unistd::geteuid().is_root() {
            None
        } else {
            let uid = nix::unistd::geteuid().as_raw();
            let gid = nix::unistd::getegid().as_raw();
            Some((
                CString::new(format!("0 {uid} 1"))
                    .map_err(|_| SandboxError::Nul("uid map".into()))?,
                CString::new(format!("0 {gid} 1"))
                    .map_err(|_| SandboxError::Nul("gid map".into()))?,
            ))
        };
        let c = |s: &str| CString::new(s).map_err(|_| SandboxError::Nul(s.to_string()));
        scratch.reset().map_err(|source| SandboxError::CreateRoot {
            path: scratch_dir.to_path_buf(),
            source,
        })?;
        Ok(Sandbox {
            scratch,
            root: cstr(root_dir)?,
            ops,
            workdir: cstr(workdir)?,
            run_as: if user_namespace.is_some() {
                None
            } else {
                run_as
            },
            user_namespace,
            proc_setgroups: c("/proc/self/setgroups")?,
            proc_uid_map: c("/proc/self/uid_map")?,
            proc_gid_map: c("/proc/self/gid_map")?,
            slash: c("/")?,
        })
    }

    /// The container's private scratch directory.
    pub fn scratch(&self) -> &Scratch {
        &self.scratch
    }

    /// How to run another process inside the running container whose main process is
    /// `pid`: its namespaces, root and working directory.
    pub fn joiner(&self, pid: u32) -> Result<Joiner, SandboxError> {
        let c = |s: String| CString::new(s.clone()).map_err(|_| SandboxError::Nul(s));
        Ok(Joiner {
            user_ns: match self.user_namespace {
                Some(_) => Some(c(format!("/proc/{pid}/ns/user"))?),
                None => None,
            },
            mnt_ns: c(format!("/proc/{pid}/ns/mnt"))?,
            root: self.root.clone(),
            workdir: self.workdir.clone(),
            slash: self.slash.clone(),
            run_as: self.run_as,
        })
    }

    /// Performs the plan in a freshly forked child. Only prepared data and system calls.
    pub fn enter(&self) -> std::io::Result<()> {
        let err = |e: nix::errno::Errno| std::io::Error::from_raw_os_error(e as i32);
        // Die with the kubelet rather than linger unsupervised.
        nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL).map_err(err)?;
        match &self.user_namespace {
            Some((uid_map, gid_map)) => {
                unshare(CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNS).map_err(err)?;
                write_file(&self.proc_setgroups, b"deny")?;
                write_file(&self.proc_uid_map, uid_map.as_bytes())?;
                write_file(&self.proc_gid_map, gid_map.as_bytes())?;
            }
            None => unshare(CloneFlags::CLONE_NEWNS).map_err(err)?,
        }
        let none: Option<&std::ffi::CStr> = None;
        mount(
            none,
            self.slash.as_c_str(),
            none,
            MsFlags::MS_REC | MsFlags::MS_PRIVATE,
            none,
        )
        .map_err(err)?;
        for op in &self.ops {
            match op {
                Op::Mkdir(p) => match nix::unistd::mkdir(
                    p.as_c_str(),
                    nix::sys::stat::Mode::from_bits_truncate(0o755),
                ) {
                    Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
                    Err(e) => return Err(err(e)),
                },
                Op::Touch(p) => {
                    let fd = nix::fcntl::open(
                        p.as_c_str(),
                        nix::fcntl::OFlag::O_CREAT
                            | nix::fcntl::OFlag::O_WRONLY
                            | nix::fcntl::OFlag::O_CLOEXEC,
                        nix::sys::stat::Mode::from_bits_truncate(0o644),
                    )
                    .map_err(err)?;
                    drop(fd);
                }
                Op::Symlink { target, link } => {
                    match nix::unistd::symlinkat(
                        target.as_c_str(),
                        nix::fcntl::AT_FDCWD,
                        link.as_c_str(),
                    ) {
                        Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
                        Err(e) => return Err(err(e)),
                    }
                }
                Op::Tmpfs(p) => {
                    mount(
                        Some(c"tmpfs"),
                        p.as_c_str(),
                        Some(c"tmpfs"),
                        MsFlags::empty(),
                        Some(c"mode=755"),
                    )
                    .map_err(err)?;
                }
                Op::Bind {
                    src,
                    dst,
                    read_only,
                } => {
                    mount(
                        Some(src.as_c_str()),
                        dst.as_c_str(),
                        none,
                        MsFlags::MS_BIND | MsFlags::MS_REC,
                        none,
                    )
                    .map_err(err)?;
                    if *read_only {
                        mount(
                            none,
                            dst.as_c_str(),
                            none,
                            MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
                            none,
                        )
                        .map_err(err)?;
                    }
                }
                Op::OverlayOrBind {
                    dst,
                    options,
                    fallback,
                } => {
                    let overlay = mount(
                        Some(c"overlay"),
                        dst.as_c_str(),
                        Some(c"overlay"),
                        MsFlags::empty(),
                        Some(options.as_c_str()),
                    );
                    if overlay.is_err() {
                        mount(
                            Some(fallback.as_c_str()),
                            dst.as_c_str(),
                            none,
                            MsFlags::MS_BIND | MsFlags::MS_REC,
                            none,
                        )
                        .map_err(err)?;
                    }
                }
                Op::BindIfPossible { src, dst } => {
                    let _ = mount(
                        Some(src.as_c_str()),
                        dst.as_c_str(),
                        none,
                        MsFlags::MS_BIND | MsFlags::MS_REC,
                        none,
                    );
                }
                Op::Overlay { dst, options } => {
                    mount(
                        Some(c"overlay"),
                        dst.as_c_str(),
                        Some(c"overlay"),
                        MsFlags::empty(),
                        Some(options.as_c_str()),
                    )
                    .map_err(err)?;
                }
            }
        }
        nix::unistd::chroot(self.root.as_c_str()).map_err(err)?;
        if nix::unistd::chdir(self.workdir.as_c_str()).is_err() {
            nix::unistd::chdir(self.slash.as_c_str()).map_err(err)?;
        }
        if let Some((uid, gid)) = self.run_as {
            nix::unistd::setgroups(&[]).map_err(err)?;
            nix::unistd::setgid(nix::unistd::Gid::from_raw(gid)).map_err(err)?;
            nix::unistd::setuid(nix::unistd::Uid::from_raw(uid)).map_err(err)?;
        }
        Ok(())
    }
}

/// Entering a running container's namespaces (for `exec` and exec probes), prepared before
/// `fork`.
#[derive(Debug)]
pub struct Joiner {
    user_ns: Option<CString>,
    mnt_ns: CString,
    root: CString,
    workdir: CString,
    slash: CString,
    run_as: Option<(u32, u32)>,
}

impl Joiner {
    /// Joins the namespaces in a freshly forked child. Only prepared data and system calls.
    pub fn enter(&self) -> std::io::Result<()> {
        let err = |e: nix::errno::Errno| std::io::Error::from_raw_os_error(e as i32);
        let open = |p: &CString| {
            nix::fcntl::open(
                p.as_c_str(),
                nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_CLOEXEC,
                nix::sys::stat::Mode::empty(),
            )
            .map_err(err)
        };
        // Die with the kubelet rather than linger unsupervised.
        nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL).map_err(err)?;
        // Open both first: after joining the user namespace /proc may no longer be ours.
        let user = self.user_ns.as_ref().map(open).transpose()?;
        let mnt = open(&self.mnt_ns)?;
        if let Some(fd) = &user {
            nix::sched::setns(fd, CloneFlags::CLONE_NEWUSER).map_err(err)?;
        }
        nix::sched::setns(&mnt, CloneFlags::CLONE_NEWNS).map_err(err)?;
        nix::unistd::chroot(self.root.as_c_str()).map_err(err)?;
        if nix::unistd::chdir(self.workdir.as_c_str()).is_err() {
            nix::unistd::chdir(self.slash.as_c_str()).map_err(err)?;
        }
        if let Some((uid, gid)) = self.run_as {
            nix::unistd::setgroups(&[]).map_err(err)?;
            nix::unistd::setgid(nix::unistd::Gid::from_raw(gid)).map_err(err)?;
            nix::unistd::setuid(nix::unistd::Uid::from_raw(uid)).map_err(err)?;
        }
        Ok(())
    }
}

fn write_file(path: &std::ffi::CStr, data: &[u8]) -> std::io::Result<()> {
    let err = |e: nix::errno::Errno| std::io::Error::from_raw_os_error(e as i32);
    let fd = nix::fcntl::open(
        path,
        nix::fcntl::OFlag::O_WRONLY,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(err)?;
    nix::unistd::write(&fd, data).map_err(err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_symlinks_are_followed_when_resolving_mount_points() {
        let view = View {
            mounts: vec![
                (PathBuf::from("/bin"), PathBuf::from("/bin")),
                (PathBuf::from("/usr"), PathBuf::from("/usr")),
            ],
            created: Vec::new(),
        };
        // On Debian 12 /bin is a symlink to usr/bin.
        if std::fs::read_link("/bin").is_ok() {
            assert_eq!(
                view.resolve(Path::new("/bin/datasafed")),
                PathBuf::from("/usr/bin/datasafed")
            );
        }
        assert_eq!(
            view.resolve(Path::new("/usr/./lib/../bin")),
            PathBuf::from("/usr/bin")
        );
    }

    #[test]
    fn missing_mount_points_are_planned_without_touching_the_host() {
        let dir = tempfile::tempdir().unwrap();
        let vol = dir.path().join("vol");
        std::fs::create_dir(&vol).unwrap();
        let plan = Sandbox::plan(
            &dir.path().join("root"),
            &dir.path().join("scratch"),
            &[
                VolumeMount {
                    container_path: "/dp-manager".into(),
                    host_path: vol.clone(),
                    read_only: false,
                },
                VolumeMount {
                    container_path: "/usr/share/localkube-test/data".into(),
                    host_path: vol.clone(),
                    read_only: true,
                },
            ],
            Path::new("/"),
            None,
        )
        .unwrap();
        let text = format!("{:?}", plan.ops);
        assert!(text.contains("dp-manager"));
        assert!(text.contains("Overlay"), "{text}");
        assert!(!Path::new("/dp-manager").exists());
        assert!(!Path::new("/usr/share/localkube-test").exists());
    }
}
