//! A container's filesystem view: its own mount namespace (inside an unprivileged user
//! namespace when localkube is not root) whose root is a tmpfs holding bind mounts of the
//! host's top-level entries, with each volume bind-mounted at its `mountPath`.
//!
//! A mount point missing on the host is created without touching the host: directly in the
//! tmpfs root for top-level paths (`/dp-manager`), or in an overlay over the nearest
//! existing directory (`/usr/bin/datasafed` overlays `/usr/bin`). Paths are resolved through
//! the container's own symlinks (`/bin` -> `usr/bin`). The plan is computed in the parent;
//! the child only performs prepared system calls (nothing allocates after `fork`).

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
}

/// Everything the child needs, prepared before `fork`.
#[derive(Debug)]
pub struct Sandbox {
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
    /// `mounts`, working directory `workdir` and an optional `runAsUser`/`runAsGroup`.
    pub fn plan(
        root_dir: &Path,
        mounts: &[VolumeMount],
        workdir: &Path,
        run_as: Option<(u32, u32)>,
    ) -> Result<Sandbox, SandboxError> {
        std::fs::create_dir_all(root_dir).map_err(|source| SandboxError::CreateRoot {
            path: root_dir.to_path_buf(),
            source,
        })?;
        let mut ops = vec![Op::Tmpfs(cstr(root_dir)?)];
        let mut view = View {
            mounts: Vec::new(),
            created: Vec::new(),
        };
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
            if meta.file_type().is_symlink() {
                if let Ok(target) = std::fs::read_link(&host) {
                    ops.push(Op::Symlink {
                        target: cstr(&target)?,
                        link: cstr(&inside)?,
                    });
                }
            } else if meta.is_dir() {
                ops.push(Op::Mkdir(cstr(&inside)?));
                ops.push(Op::Bind {
                    src: cstr(&host)?,
                    dst: cstr(&inside)?,
                    read_only: false,
                });
            } else {
                ops.push(Op::Touch(cstr(&inside)?));
                ops.push(Op::Bind {
                    src: cstr(&host)?,
                    dst: cstr(&inside)?,
                    read_only: false,
                });
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
        Ok(Sandbox {
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
