//! Process-wide memory settings for the binaries that move repository data.

/// Keeps glibc's malloc to one arena. glibc gives every thread that allocates concurrently its
/// own arena (up to 8 per core) and rarely returns their memory; the backup pipeline hands
/// multi-megabyte buffers between tokio's blocking threads, so each arena ends up holding
/// its own high-water mark. Measured on the 2 GiB benchmark tree: peak RSS 604 MiB with the
/// default, 263 MiB with one arena, and the backup was faster (6.4 s against 8.3 s).
/// Call it first thing in `main`, before any thread starts. A no-op off glibc.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only changes allocator parameters; it is called before other
        // threads exist, and M_ARENA_MAX is a valid parameter on every glibc that has mallopt.
        unsafe {
            nix::libc::mallopt(nix::libc::M_ARENA_MAX, 1);
        }
    }
}

/// For a process that restores, or runs for long (the node agent): the process starts itself
/// again once with [`ALLOCATOR_TUNABLES`] added to `GLIBC_TUNABLES` (glibc reads them only at
/// start-up), unless they are there already or the user set those tunables; if that exec
/// fails the process goes on as it is. Call it before any thread starts, after
/// [`tune_allocator`]. A no-op off glibc.
///
/// Not for backups: their pack buffers would be mapped and faulted in again for every pack
/// (a 2 GiB first backup to a local directory: 4.7–5.1 s → 5.8–6.6 s, 2.5× the page faults;
/// bench/README.md, "First backup and the allocator").
pub fn tune_allocator_for_restores() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    restart_with_tunables();
}

/// glibc tunables of restores (bench/README.md, "Restores by dataset size"): buffers of 4 MiB
/// and more (a restore's pack reads from object stores, up to 32 MiB) are mapped on their own
/// and returned to the kernel when freed, instead of staying in the arena after glibc's
/// dynamic threshold grew (peak RSS of a 2 GiB S3 restore 213–224 MiB → 178–181 MiB), in
/// transparent huge pages so that mapping them costs no more system time.
pub const ALLOCATOR_TUNABLES: &str = "glibc.malloc.mmap_threshold=4194304:glibc.malloc.hugetlb=1";

/// Marks a process started again by [`tune_allocator_for_restores`] (so it never loops).
const RESTARTED: &str = "CAIRN_ALLOCATOR_TUNED";

/// The `GLIBC_TUNABLES` to start again with, or `None` when `current` (the variable now)
/// already has them or sets either tunable itself (the user's choice wins).
pub fn tunables_to_add(current: Option<&str>) -> Option<String> {
    let current = current.unwrap_or("");
    let ours = ["glibc.malloc.mmap_threshold", "glibc.malloc.hugetlb"];
    if current
        .split(':')
        .filter_map(|kv| kv.split('=').next())
        .any(|name| ours.contains(&name))
    {
        return None;
    }
    Some(if current.is_empty() {
        ALLOCATOR_TUNABLES.to_string()
    } else {
        format!("{current}:{ALLOCATOR_TUNABLES}")
    })
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn restart_with_tunables() {
    use std::os::unix::process::CommandExt;

    if std::env::var_os(RESTARTED).is_some() {
        return;
    }
    let current = std::env::var("GLIBC_TUNABLES").ok();
    let Some(tunables) = tunables_to_add(current.as_deref()) else {
        return;
    };
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let mut args = std::env::args_os();
    let Some(arg0) = args.next() else {
        return;
    };
    // Only returns if the exec failed: go on with the allocator as it is.
    let _ = std::process::Command::new(exe)
        .arg0(arg0)
        .args(args)
        .env("GLIBC_TUNABLES", tunables)
        .env(RESTARTED, "1")
        .exec();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tunables_are_added_to_what_is_set_unless_the_user_chose_them() {
        assert_eq!(tunables_to_add(None).as_deref(), Some(ALLOCATOR_TUNABLES));
        assert_eq!(
            tunables_to_add(Some("")).as_deref(),
            Some(ALLOCATOR_TUNABLES)
        );
        assert_eq!(
            tunables_to_add(Some("glibc.malloc.tcache_count=0")),
            Some(format!("glibc.malloc.tcache_count=0:{ALLOCATOR_TUNABLES}"))
        );
        assert_eq!(tunables_to_add(Some(ALLOCATOR_TUNABLES)), None);
        assert_eq!(
            tunables_to_add(Some("glibc.malloc.mmap_threshold=65536")),
            None
        );
        assert_eq!(
            tunables_to_add(Some("glibc.malloc.arena_max=2:glibc.malloc.hugetlb=0")),
            None
        );
    }
}
