//! What the hardware allows a restore of one Cairn repository, measured on that repository
//! in the same run as the restores (bench/README.md "## repository"): how fast its packs
//! come from the store alone (N parallel whole-pack reads to nothing, with the CPU the
//! client and the S3 server spend on them), and what decrypting and decompressing every
//! blob costs alone (from memory, on every core). A restore can be no faster than the CPU
//! these take, divided by the cores, whatever it does with the rest.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use anyhow::{Context, Result};
use cairn_repo::config::{Secret, parse_storage_url};
use cairn_repo::dedup::pack::open_pack;
use cairn_repo::dedup::{BackupOptions, Id, InitOptions, Repository, backup_tree};
use cairn_repo::progress::no_progress;
use futures::StreamExt;
use serde::{Deserialize, Serialize};

/// Whole-pack reads in flight (a tree restore's `restore_fetches`).
const PARALLEL_READS: usize = 16;
/// Packs held in memory at once for the decode measurement.
const DECODE_BATCH: u64 = 512 << 20;

/// The measurements of one repository.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Limits {
    /// Packs in the repository and their bytes.
    pub packs: u64,
    pub pack_bytes: u64,
    /// Reading every pack to nothing, `PARALLEL_READS` at a time, from a cold page cache.
    pub read_s: f64,
    /// CPU seconds this process spent on those reads.
    pub read_client_cpu_s: f64,
    /// CPU seconds the S3 server spent on them (0 for a local directory).
    pub read_server_cpu_s: f64,
    /// Plaintext bytes of every blob.
    pub raw_bytes: u64,
    /// Decrypting and decompressing every blob from memory on `cores` threads.
    pub decode_s: f64,
    pub decode_cpu_s: f64,
    pub cores: usize,
}

impl Limits {
    /// The least time a restore that reads and decodes these packs can take on this
    /// machine: the CPU of the reads (client and server) and of the decode, spread over
    /// every core (writing the files comes on top).
    pub fn cpu_floor_s(&self) -> f64 {
        (self.read_client_cpu_s + self.read_server_cpu_s + self.decode_cpu_s) / self.cores as f64
    }

    /// The part of the machine the decode got while it had work for every core: near 1 on
    /// an otherwise idle machine, lower when other work took the CPU.
    pub fn cpu_share(&self) -> f64 {
        self.decode_cpu_s / (self.decode_s * self.cores as f64).max(1e-9)
    }
}

/// Measures the Cairn repository at `url`; `server_cpu` reads the S3 server's CPU seconds
/// so far; `drop_caches` empties the page cache before the reads.
pub fn measure(
    url: &str,
    password: &str,
    server_cpu: &dyn Fn() -> f64,
    drop_caches: &dyn Fn(),
) -> Result<Limits> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let config = parse_storage_url(url)?;
        let store = cairn_repo::Store::open(&config)?;
        let repo = Repository::open(store, &Secret::new(password))
            .await
            .context("opening the repository")?;
        let packs: Vec<(Id, String, u64)> = repo
            .store()
            .list_all("data")
            .await?
            .into_iter()
            .filter_map(|o| {
                let name = Path::new(&o.key).file_name()?.to_str()?;
                Some((Id::parse(name).ok()?, o.key.clone(), o.size))
            })
            .collect();
        let mut limits = Limits {
            packs: packs.len() as u64,
            pack_bytes: packs.iter().map(|p| p.2).sum(),
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            ..Limits::default()
        };

        drop_caches();
        let (cpu, server) = (own_cpu_s(), server_cpu());
        let started = Instant::now();
        // As a restore reads them: on a local directory past the page cache.
        let store = repo.store();
        let mut reads = futures::stream::iter(&packs)
            .map(|(_, key, size)| async move {
                if store.is_local() {
                    store.get_range_once(key, 0..*size).await
                } else {
                    store.get(key).await
                }
            })
            .buffer_unordered(PARALLEL_READS);
        while let Some(read) = reads.next().await {
            read?;
        }
        limits.read_s = started.elapsed().as_secs_f64();
        limits.read_client_cpu_s = own_cpu_s() - cpu;
        limits.read_server_cpu_s = server_cpu() - server;

        let mut rest = packs.as_slice();
        while !rest.is_empty() {
            let mut bytes = 0;
            let count = rest
                .iter()
                .take_while(|p| {
                    bytes += p.2;
                    bytes <= DECODE_BATCH
                })
                .count()
                .max(1);
            let (batch, later) = rest.split_at(count);
            rest = later;
            let store = repo.store();
            let loaded: Vec<(Id, _)> = futures::stream::iter(batch)
                .map(|(id, key, _)| async move {
                    Ok::<_, cairn_repo::Error>((*id, store.get(key).await?))
                })
                .buffered(PARALLEL_READS)
                .collect::<Vec<_>>()
                .await
                .into_iter()
                .collect::<std::result::Result<_, _>>()?;
            let cpu = own_cpu_s();
            let started = Instant::now();
            limits.raw_bytes += decode_all(repo.keys(), &loaded, limits.cores)?;
            limits.decode_s += started.elapsed().as_secs_f64();
            limits.decode_cpu_s += own_cpu_s() - cpu;
        }
        Ok(limits)
    })
}

/// What a first backup of a tree costs without a store: Cairn's whole backup (walk, read,
/// chunk, hash, compress, encrypt, pack) into an in-memory repository, from a cold page
/// cache. Its CPU ÷ the cores is the least time any backup of the tree by this engine can
/// take on this machine, whatever the store.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct BackupFloor {
    /// Reading every file of the tree to nothing from a cold page cache, 4 files at a time
    /// (as many as a backup reads at once): wall time and CPU seconds.
    pub read_s: f64,
    pub read_cpu_s: f64,
    /// Wall time of the in-memory backup.
    pub seconds: f64,
    /// CPU seconds (user + system) it took.
    pub cpu_s: f64,
    pub cores: usize,
}

impl BackupFloor {
    /// CPU seconds spread over every core.
    pub fn cpu_floor_s(&self) -> f64 {
        self.cpu_s / self.cores.max(1) as f64
    }
}

/// Backs `data` up into a fresh in-memory repository (`memory://`) from a cold page cache.
pub fn backup_floor(data: &Path, password: &str, drop_caches: &dyn Fn()) -> Result<BackupFloor> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let store = cairn_repo::Store::open(&parse_storage_url("memory://")?)?;
        let repo = Repository::init(store, &Secret::new(password), InitOptions::default())
            .await
            .context("creating the in-memory repository")?;
        drop_caches();
        let cpu = own_cpu_s();
        let started = Instant::now();
        read_tree(data)?;
        let read_s = started.elapsed().as_secs_f64();
        let read_cpu_s = own_cpu_s() - cpu;
        drop_caches();
        let cpu = own_cpu_s();
        let started = Instant::now();
        backup_tree(&repo, data, &BackupOptions::default(), no_progress())
            .await
            .context("backing up into memory")?;
        Ok(BackupFloor {
            read_s,
            read_cpu_s,
            seconds: started.elapsed().as_secs_f64(),
            cpu_s: own_cpu_s() - cpu,
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        })
    })
}

/// Reads every regular file under `dir` to nothing, 4 at a time.
fn read_tree(dir: &Path) -> Result<()> {
    let mut files = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for entry in std::fs::read_dir(&d).with_context(|| format!("listing {}", d.display()))? {
            let entry = entry?;
            let kind = entry.file_type()?;
            if kind.is_dir() {
                dirs.push(entry.path());
            } else if kind.is_file() {
                files.push(entry.path());
            }
        }
    }
    let next = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        let readers: Vec<_> = (0..4)
            .map(|_| {
                scope.spawn(|| {
                    let mut buf = vec![0u8; 4 << 20];
                    while let Some(path) = files.get(next.fetch_add(1, Ordering::Relaxed)) {
                        let mut file = std::fs::File::open(path)
                            .with_context(|| format!("opening {}", path.display()))?;
                        while std::io::Read::read(&mut file, &mut buf)
                            .with_context(|| format!("reading {}", path.display()))?
                            > 0
                        {}
                    }
                    Ok::<(), anyhow::Error>(())
                })
            })
            .collect();
        for reader in readers {
            reader
                .join()
                .map_err(|_| anyhow::anyhow!("a reading thread panicked"))??;
        }
        Ok(())
    })
}

/// Opens every blob of `packs` on `threads` threads; returns the plaintext bytes.
fn decode_all<B: AsRef<[u8]> + Sync>(
    keys: &cairn_repo::dedup::keys::MasterKeys,
    packs: &[(Id, B)],
    threads: usize,
) -> Result<u64> {
    let next = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut raw = 0u64;
                    while let Some((id, bytes)) = packs.get(next.fetch_add(1, Ordering::Relaxed)) {
                        raw += open_pack(keys, id, bytes.as_ref())?;
                    }
                    Ok::<u64, cairn_repo::Error>(raw)
                })
            })
            .collect();
        let mut raw = 0;
        for worker in workers {
            raw += worker
                .join()
                .map_err(|_| anyhow::anyhow!("a decode thread panicked"))??;
        }
        Ok(raw)
    })
}

/// CPU seconds (user + system) this process has used.
pub fn own_cpu_s() -> f64 {
    process_cpu_s(&std::fs::read_to_string("/proc/self/stat").unwrap_or_default())
}

/// CPU seconds (user + system) of a process, from the text of its `/proc/PID/stat`.
pub fn process_cpu_s(stat: &str) -> f64 {
    // The command name (field 2) may hold spaces; the fields after it are plain.
    let Some((_, after)) = stat.rsplit_once(')') else {
        return 0.0;
    };
    let fields: Vec<&str> = after.split_whitespace().collect();
    // utime and stime, fields 14 and 15 of the line, are the 12th and 13th after the name.
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|i| fields.get(*i)?.parse::<u64>().ok())
        .sum();
    ticks as f64 / CLOCK_TICKS
}

/// `sysconf(_SC_CLK_TCK)`: 100 on every Linux this runs on.
const CLOCK_TICKS: f64 = 100.0;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_seconds_are_read_after_a_name_with_spaces() {
        let stat =
            "4242 (weed server x) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 12 0 1 2 3";
        assert!((process_cpu_s(stat) - 3.25).abs() < 1e-9);
        assert_eq!(process_cpu_s("garbage"), 0.0);
    }
}
