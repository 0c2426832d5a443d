//! `bench-repo`: Cairn's repository engine against restic, rustic and borg on a generated
//! database-like dataset (bench/README.md "## repository").
//!
//! `bench-repo gen` writes the dataset deterministically, `bench-repo mutate` applies the
//! second-day change (5% of 8 KiB pages rewritten in place at random, ~1% appended), and
//! `bench-repo run` does everything: dataset, tool checks, every tool on local disk and on a
//! local S3 server, first backup / second backup / restore from a cold page cache, N
//! repetitions, medians, and one table with ratios against the fastest peer.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use cairn_bench::repo_limits::{self, BackupFloor, Limits};
use clap::{Parser, Subcommand};
use serde::{Deserialize, Serialize};

mod scale;

const PAGE: usize = 8192;

#[derive(Debug, Parser)]
#[command(
    name = "bench-repo",
    about = "Cairn's repository engine against restic, rustic and borg"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Write the dataset (60% 8 KiB-page tables, 30% random, 10% small files).
    Gen {
        /// Target directory (created; must be empty).
        #[arg(long)]
        dir: PathBuf,
        /// Total size, e.g. 2GiB, 512MiB, 10GiB.
        #[arg(long, default_value = "2GiB")]
        size: String,
        /// Seed of the generator.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Rewrite 5% of the pages in place at random and append ~1% to the tables.
    Mutate {
        /// The dataset directory.
        #[arg(long)]
        dir: PathBuf,
        /// Seed of the mutation.
        #[arg(long, default_value_t = 2)]
        seed: u64,
    },
    /// Run the whole benchmark and print the table.
    Run(RunArgs),
    /// Cairn's tree restore and streamed pull at growing dataset sizes in one run (memory and
    /// rate against size).
    Scale(scale::ScaleArgs),
    /// Print the tables of an earlier run again from its `results.json`.
    Table {
        /// The run's `<work>/results.json`.
        results: PathBuf,
    },
    /// Start the benchmark's S3 server (SeaweedFS on loopback) with its data under `dir`,
    /// print its endpoint and keys, and serve until killed (for profiling by hand).
    S3 {
        /// Where the server keeps its data (created).
        #[arg(long, default_value = "/var/tmp/cairn-bench/s3")]
        dir: PathBuf,
    },
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// Working directory (dataset, repositories, restores).
    #[arg(long, default_value = "/var/tmp/cairn-bench")]
    work: PathBuf,
    /// Dataset size.
    #[arg(long, default_value = "2GiB")]
    size: String,
    /// Repetitions (the median is reported).
    #[arg(long, default_value_t = 3)]
    reps: usize,
    /// Tools to run (cairn, restic, rustic, borg, tar).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "cairn,restic,rustic,borg,tar"
    )]
    tools: Vec<String>,
    /// Targets (local, s3).
    #[arg(long, value_delimiter = ',', default_value = "local,s3")]
    targets: Vec<String>,
    /// The cairnctl binary (default: next to this binary).
    #[arg(long)]
    cairnctl: Option<PathBuf>,
    /// The datasafed binary (default: next to this binary).
    #[arg(long)]
    datasafed: Option<PathBuf>,
    /// The rustic binary (default: on PATH, or /work/.bench-tools/bin/rustic).
    #[arg(long)]
    rustic: Option<PathBuf>,
    /// Install missing peers (apt-get for restic and borg, cargo install for rustic).
    #[arg(long)]
    install: bool,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Cmd::Gen { dir, size, seed } => {
            let bytes = parse_size(&size)?;
            let made = generate(&dir, bytes, seed)?;
            println!("wrote {made} bytes to {}", dir.display());
        }
        Cmd::Table { results } => {
            let text = fs::read_to_string(&results)
                .with_context(|| format!("reading {}", results.display()))?;
            let results: Results = serde_json::from_str(&text)
                .with_context(|| format!("parsing {}", results.display()))?;
            results.print();
        }
        Cmd::Mutate { dir, seed } => {
            let (pages, appended) = mutate(&dir, seed)?;
            println!("rewrote {pages} pages, appended {appended} bytes");
        }
        Cmd::S3 { dir } => {
            let identity = cairn_repo::testing::S3Identity {
                access_key: cairn_repo::testing::ACCESS_KEY.into(),
                secret_key: cairn_repo::testing::SECRET_KEY.into(),
                bucket: cairn_repo::testing::BUCKET.into(),
            };
            let (endpoint, _stop) =
                cairn_repo::testing::launch(&dir, &identity).map_err(anyhow::Error::msg)?;
            println!(
                "s3://{}/PREFIX?endpoint={endpoint}&region=us-east-1&access_key_id={}&secret_access_key={}",
                identity.bucket, identity.access_key, identity.secret_key
            );
            let _ = std::io::stdout().flush();
            loop {
                std::thread::sleep(std::time::Duration::from_secs(3600));
            }
        }
        Cmd::Run(args) => {
            if let Some(code) = own_cpu_group()? {
                std::process::exit(code);
            }
            let outcome = run(args);
            // The S3 server's data (several times the dataset) goes with this run; the server
            // itself dies with this process.
            if let Some(server) = cairn_repo::testing::SeaweedFs::started() {
                let _ = std::fs::remove_dir_all(&server.dir);
            }
            outcome?
        }
        Cmd::Scale(args) => {
            if let Some(code) = own_cpu_group()? {
                std::process::exit(code);
            }
            let outcome = scale::run(args);
            // The S3 server's data (several times the dataset) goes with this run; the server
            // itself dies with this process.
            if let Some(server) = cairn_repo::testing::SeaweedFs::started() {
                let _ = std::fs::remove_dir_all(&server.dir);
            }
            outcome?
        }
    }
    Ok(())
}

/// Environment variable marking the copy of `bench-repo run` that was started in its own
/// session (so it does not start itself again).
const OWN_SESSION: &str = "CAIRN_BENCH_OWN_SESSION";

/// Gives the timed runs the CPU over other sessions' work (bench/README.md "repository").
///
/// With the kernel's autogroup scheduling (`/proc/sys/kernel/sched_autogroup_enabled` = 1),
/// CPU time is shared fairly between *sessions* first and by nice value only inside a session:
/// a `nice -n 19` build started from another terminal or agent takes as much CPU as the
/// benchmark. On 2026-12-07 the in-memory decode of the limits table got a quarter of the
/// machine that way. So, as root on such a kernel, `run` starts itself again in a new session
/// (`setsid -w`, a new autogroup) and gives that group nice -20; every tool, the S3 server and
/// the measurements it starts inherit it. Returns the exit code of that copy when it ran it.
fn own_cpu_group() -> Result<Option<i32>> {
    let enabled = fs::read_to_string("/proc/sys/kernel/sched_autogroup_enabled")
        .map(|s| s.trim() == "1")
        .unwrap_or(false);
    if !enabled || !nix::unistd::geteuid().is_root() {
        return Ok(None);
    }
    let pid = nix::unistd::getpid();
    if nix::unistd::getsid(None).ok() != Some(pid) && std::env::var_os(OWN_SESSION).is_none() {
        let exe = std::env::current_exe().context("finding bench-repo's own binary")?;
        let status = Command::new("setsid")
            .arg("-w")
            .arg(exe)
            .args(std::env::args_os().skip(1))
            .env(OWN_SESSION, "1")
            .status()
            .context("starting bench-repo in its own session with setsid")?;
        return Ok(Some(status.code().unwrap_or(1)));
    }
    match fs::write("/proc/self/autogroup", "-20") {
        Ok(()) => eprintln!(
            "bench-repo: timed runs in their own scheduling group (autogroup nice -20), so other sessions' builds do not take their CPU"
        ),
        Err(e) => eprintln!(
            "bench-repo: could not raise the scheduling group's priority ({e}); other sessions' work shares the CPU equally"
        ),
    }
    Ok(None)
}

fn parse_size(text: &str) -> Result<u64> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (n, unit) = t.split_at(split);
    let n: u64 = n
        .parse()
        .with_context(|| format!("{text:?} is not a size"))?;
    let shift = match unit
        .trim()
        .to_ascii_lowercase()
        .trim_end_matches('b')
        .trim_end_matches('i')
    {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        other => bail!("unit {other:?} in {text:?}"),
    };
    Ok(n << shift)
}

/// xorshift64*: deterministic and fast; not for cryptography.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn fill(&mut self, out: &mut [u8]) {
        for chunk in out.chunks_mut(8) {
            let v = self.next().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

const WORDS: &[&str] = &[
    "alpha",
    "bravo",
    "charlie",
    "delta",
    "echo",
    "foxtrot",
    "golf",
    "hotel",
    "india",
    "juliet",
    "kilo",
    "lima",
    "mike",
    "november",
    "oscar",
    "papa",
    "quebec",
    "romeo",
    "sierra",
    "tango",
    "uniform",
    "victor",
    "whiskey",
    "xray",
    "yankee",
    "zulu",
    "order",
    "customer",
    "invoice",
    "shipped",
    "pending",
    "cancelled",
    "berlin",
    "paris",
    "tokyo",
    "lagos",
    "lima",
    "oslo",
    "premium",
    "standard",
    "basic",
    "refund",
    "credit",
    "debit",
    "warehouse",
    "north",
    "south",
    "east",
    "west",
    "green",
    "blue",
    "red",
];

/// One heap page: a 24-byte header with an LSN, line pointers, free space, tuples of
/// text and numbers from the end (compresses ~3.5x with zstd -1, like real tables).
fn table_page(rng: &mut Rng, lsn: u64) -> Vec<u8> {
    let mut page = vec![0u8; PAGE];
    page[..8].copy_from_slice(&lsn.to_le_bytes());
    let mut tuples: Vec<Vec<u8>> = Vec::new();
    let mut used = 24usize;
    let fill_to = PAGE - 200 - rng.below(1200) as usize;
    loop {
        let mut t = Vec::with_capacity(160);
        t.extend_from_slice(&(rng.next() as u32).to_le_bytes());
        t.extend_from_slice(&[0, 0, 0, 0, 1, 0, 2, 0, 0x18, 0x09]);
        let id = lsn.wrapping_mul(64) + tuples.len() as u64;
        let w = |rng: &mut Rng| WORDS[rng.below(16) as usize];
        let text = format!(
            "{id}|{} {} customer account|{}.{:02}|2024-01-{:02} {:02}:{:02}:{:02}|status {}|{}",
            WORDS[rng.below(WORDS.len() as u64) as usize],
            w(rng),
            rng.below(100_000),
            rng.below(100),
            1 + rng.below(28),
            rng.below(24),
            rng.below(60),
            rng.below(60),
            w(rng),
            w(rng),
        );
        t.extend_from_slice(text.as_bytes());
        if used + 4 + t.len() > fill_to {
            break;
        }
        used += 4 + t.len();
        tuples.push(t);
    }
    let mut upper = PAGE;
    for (i, t) in tuples.iter().enumerate() {
        upper -= t.len();
        page[upper..upper + t.len()].copy_from_slice(t);
        let lp = 24 + i * 4;
        page[lp..lp + 4]
            .copy_from_slice(&((upper as u32) | ((t.len() as u32) << 17)).to_le_bytes());
    }
    page[12..14].copy_from_slice(&((24 + tuples.len() * 4) as u16).to_le_bytes());
    page[14..16].copy_from_slice(&(upper as u16).to_le_bytes());
    page[18..20].copy_from_slice(&0x2004u16.to_le_bytes());
    page
}

fn random_page(rng: &mut Rng) -> Vec<u8> {
    let mut page = vec![0u8; PAGE];
    rng.fill(&mut page);
    page
}

/// Writes the dataset; returns the bytes written.
fn generate(dir: &Path, size: u64, seed: u64) -> Result<u64> {
    fs::create_dir_all(dir.join("base/16384"))?;
    fs::create_dir_all(dir.join("pg_wal"))?;
    fs::create_dir_all(dir.join("global"))?;
    let mut rng = Rng::new(seed);
    let tables = size * 6 / 10;
    let random = size * 3 / 10;
    let small = size - tables - random;
    let mut written = 0u64;
    // Tables: segments of 8..128 MiB.
    let mut remaining = tables;
    let mut n = 0;
    while remaining >= PAGE as u64 {
        let seg = (((8 + rng.below(120)) << 20).min(remaining) / PAGE as u64) * PAGE as u64;
        let path = dir.join(format!("base/16384/{}", 16400 + n));
        let mut out = BufWriter::with_capacity(1 << 20, File::create(&path)?);
        for p in 0..seg / PAGE as u64 {
            out.write_all(&table_page(&mut rng, 0x1_0000_0000 + p))?;
        }
        out.flush()?;
        written += seg;
        remaining -= seg;
        n += 1;
    }
    // Random data (TOAST of compressed values, blobs): files of 16..64 MiB.
    let mut remaining = random;
    let mut n = 0;
    while remaining >= PAGE as u64 {
        let len = (((16 + rng.below(48)) << 20).min(remaining) / PAGE as u64) * PAGE as u64;
        let path = dir.join(format!("base/16384/{}", 30000 + n));
        let mut out = BufWriter::with_capacity(1 << 20, File::create(&path)?);
        for _ in 0..len / PAGE as u64 {
            out.write_all(&random_page(&mut rng))?;
        }
        out.flush()?;
        written += len;
        remaining -= len;
        n += 1;
    }
    // Small files: 1..64 KiB, half text, half random, in a few directories.
    let mut remaining = small;
    let mut n = 0u64;
    while remaining > 0 {
        let len = (1024 + rng.below(63 * 1024)).min(remaining) as usize;
        let sub = dir.join(format!("global/d{}", n % 16));
        fs::create_dir_all(&sub)?;
        let mut data = if n.is_multiple_of(2) {
            let mut t = Vec::with_capacity(len);
            while t.len() < len {
                t.extend_from_slice(WORDS[rng.below(WORDS.len() as u64) as usize].as_bytes());
                t.push(b' ');
            }
            t
        } else {
            let mut r = vec![0u8; len];
            rng.fill(&mut r);
            r
        };
        data.truncate(len);
        fs::write(sub.join(format!("f{n}")), &data)?;
        written += len as u64;
        remaining -= len as u64;
        n += 1;
    }
    fs::write(dir.join("PG_VERSION"), "16\n")?;
    Ok(written)
}

/// The page files (tables and random data), sorted.
fn page_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir.join("base/16384"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    files.sort();
    Ok(files)
}

/// Rewrites 5% of pages in place (same kind of content) and appends ~1% of new pages to the
/// tables; returns (pages rewritten, bytes appended).
fn mutate(dir: &Path, seed: u64) -> Result<(u64, u64)> {
    let mut rng = Rng::new(seed);
    let files = page_files(dir)?;
    let sizes: Vec<u64> = files
        .iter()
        .map(|f| fs::metadata(f).map(|m| m.len()))
        .collect::<Result<_, _>>()?;
    let total_pages: u64 = sizes.iter().map(|s| s / PAGE as u64).sum();
    let rewrites = total_pages / 20;
    let handles: Vec<File> = files
        .iter()
        .map(|f| OpenOptions::new().write(true).open(f))
        .collect::<Result<_, _>>()?;
    for _ in 0..rewrites {
        let mut page = rng.below(total_pages);
        let mut i = 0;
        while page >= sizes[i] / PAGE as u64 {
            page -= sizes[i] / PAGE as u64;
            i += 1;
        }
        let table = files[i]
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.parse::<u32>().ok())
            .is_some_and(|n| n < 30000);
        let data = if table {
            table_page(&mut rng, 0x2_0000_0000 + page)
        } else {
            random_page(&mut rng)
        };
        handles[i].write_all_at(&data, page * PAGE as u64)?;
    }
    let mut appended = 0u64;
    let target = total_pages * PAGE as u64 / 100;
    while appended < target {
        let i = rng.below(files.len() as u64) as usize;
        let table = files[i]
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.parse::<u32>().ok())
            .is_some_and(|n| n < 30000);
        if !table {
            continue;
        }
        let mut f = OpenOptions::new().append(true).open(&files[i])?;
        for p in 0..16 {
            f.write_all(&table_page(&mut rng, 0x3_0000_0000 + p))?;
        }
        appended += 16 * PAGE as u64;
    }
    Ok((rewrites, appended))
}

// ----------------------------------------------------------------------------------------
// Running tools and measuring them.

/// Time, peak RSS and CPU of one command, measured with GNU time.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
struct Measure {
    seconds: f64,
    rss_kib: u64,
    /// User + system CPU seconds of the command.
    cpu_s: f64,
    /// CPU seconds the benchmark's S3 server spent meanwhile (0 when it is not running).
    server_cpu_s: f64,
}

/// CPU seconds the benchmark's S3 server (every process whose command line names its data
/// directory) has used so far; 0 when it is not running.
fn server_cpu_s() -> f64 {
    let Some(server) = cairn_repo::testing::SeaweedFs::started() else {
        return 0.0;
    };
    let dir = server.dir.display().to_string();
    let Ok(procs) = fs::read_dir("/proc") else {
        return 0.0;
    };
    procs
        .flatten()
        .filter(|p| {
            p.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter(|p| {
            fs::read(p.path().join("cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(&dir))
        })
        .map(|p| {
            cairn_bench::repo_limits::process_cpu_s(
                &fs::read_to_string(p.path().join("stat")).unwrap_or_default(),
            )
        })
        .sum()
}

fn drop_caches() {
    let _ = Command::new("sync").status();
    if fs::write("/proc/sys/vm/drop_caches", "3\n").is_err() {
        eprintln!("warning: cannot drop the page cache (not root?); restores are measured warm");
    }
}

/// Runs `script` with bash under /usr/bin/time; fails with its output if it fails.
fn measure(script: &str, env: &BTreeMap<String, String>) -> Result<Measure> {
    let stats = tempfile_path("time");
    let server_before = server_cpu_s();
    let out = Command::new("/usr/bin/time")
        .arg("-f")
        .arg("%e %M %U %S")
        .arg("-o")
        .arg(&stats)
        .arg("bash")
        .arg("-c")
        .arg(format!("set -e -o pipefail; {script}"))
        .envs(env)
        .stdin(Stdio::null())
        .output()
        .context("running /usr/bin/time")?;
    if !out.status.success() {
        bail!(
            "`{script}` failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let text = fs::read_to_string(&stats)?;
    let _ = fs::remove_file(&stats);
    let last = text.lines().last().unwrap_or("");
    let mut parts = last.split_whitespace();
    let seconds: f64 = parts.next().unwrap_or("0").parse().unwrap_or(0.0);
    let rss_kib: u64 = parts.next().unwrap_or("0").parse().unwrap_or(0);
    let cpu_s: f64 = parts.map(|p| p.parse::<f64>().unwrap_or(0.0)).sum();
    Ok(Measure {
        seconds,
        rss_kib,
        cpu_s,
        server_cpu_s: server_cpu_s() - server_before,
    })
}

fn tempfile_path(tag: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "bench-repo-{tag}-{}-{}",
        std::process::id(),
        Instant::now().elapsed().as_nanos()
    ))
}

fn sh(script: &str) -> Result<String> {
    let out = Command::new("bash").arg("-c").arg(script).output()?;
    if !out.status.success() {
        bail!(
            "`{script}` failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).to_string())
}

fn du(path: &Path) -> Result<u64> {
    let out = sh(&format!("du -sb '{}' | cut -f1", path.display()))?;
    Ok(out.trim().parse().unwrap_or(0))
}

fn which(tool: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
}

/// One tool on one target: how it inits, backs up, restores, and measures its size.
struct Runner {
    tool: String,
    repo: String,
    env: BTreeMap<String, String>,
    local_dir: Option<PathBuf>,
    s3_prefix: Option<String>,
    bins: Bins,
}

#[derive(Clone)]
struct Bins {
    cairnctl: PathBuf,
    datasafed: PathBuf,
    rustic: PathBuf,
}

impl Runner {
    fn init(&self) -> Result<()> {
        let script = match self.tool.as_str() {
            "cairn" => format!(
                "'{}' repo --repo '{}' init",
                self.bins.cairnctl.display(),
                self.repo
            ),
            "restic" => "restic init".to_string(),
            "rustic" => format!(
                "'{}' {} --no-progress init",
                self.bins.rustic.display(),
                self.repo
            ),
            "borg" => "borg init --encryption=repokey-blake2 \"$BORG_REPO\"".to_string(),
            "tar" => format!("mkdir -p '{}'", self.repo),
            other => bail!("unknown tool {other}"),
        };
        measure(&script, &self.env).map(|_| ())
    }

    fn backup(&self, data: &Path, n: usize) -> Result<Measure> {
        let d = data.display();
        let script = match self.tool.as_str() {
            "cairn" => format!(
                "'{}' repo --repo '{}' backup '{d}' > /dev/null",
                self.bins.cairnctl.display(),
                self.repo
            ),
            "restic" => format!("restic backup --quiet '{d}'"),
            "rustic" => format!(
                "'{}' {} --no-progress backup '{d}' > /dev/null 2>&1",
                self.bins.rustic.display(),
                self.repo
            ),
            "borg" => format!("borg create --compression lz4 \"$BORG_REPO::b{n}\" '{d}'"),
            "tar" => format!(
                "tar -cf - -C '{d}' . | zstd -1 -T0 -q -o '{}/b{n}.tar.zst'",
                self.repo
            ),
            other => bail!("unknown tool {other}"),
        };
        measure(&script, &self.env)
    }

    fn restore(&self, target: &Path, data: &Path, n: usize) -> Result<Measure> {
        let t = target.display();
        let script = match self.tool.as_str() {
            "cairn" => format!(
                "'{}' repo --repo '{}' restore latest --target '{t}' --no-owners > /dev/null",
                self.bins.cairnctl.display(),
                self.repo
            ),
            "restic" => format!("restic restore --quiet latest --target '{t}'"),
            "rustic" => format!(
                "'{}' {} --no-progress restore latest '{t}' > /dev/null 2>&1",
                self.bins.rustic.display(),
                self.repo
            ),
            "borg" => format!("cd '{t}' && borg extract \"$BORG_REPO::b{n}\""),
            "tar" => format!(
                "zstd -d -c -q '{}/b{n}.tar.zst' | tar -xf - -C '{t}'",
                self.repo
            ),
            other => bail!("unknown tool {other}"),
        };
        let _ = data;
        measure(&script, &self.env)
    }

    fn size(&self) -> Result<u64> {
        if let Some(dir) = &self.local_dir {
            return du(dir);
        }
        let prefix = self.s3_prefix.clone().unwrap_or_default();
        s3_size(&prefix)
    }
}

fn s3_size(prefix: &str) -> Result<u64> {
    let server = cairn_repo::testing::SeaweedFs::shared();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let mut config = server.fresh_storage("size");
        if let cairn_repo::config::BackendConfig::S3(s3) = &mut config.backend {
            s3.prefix = prefix.to_string();
        }
        let store = cairn_repo::Store::open(&config)?;
        let all = store.list_all("").await?;
        Ok::<u64, anyhow::Error>(all.iter().map(|o| o.size).sum())
    })
}

/// The restored tree is somewhere below the target (tools keep the absolute source path).
fn verify_restore(source: &Path, target: &Path) -> Result<()> {
    let source_size = du(source)?;
    let found = sh(&format!(
        "find '{}' -name PG_VERSION -path '*' | head -1",
        target.display()
    ))?;
    let root = Path::new(found.trim())
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let restored = du(&root)?;
    let ok = sh(&format!(
        "diff -rq '{}' '{}' > /dev/null && echo same || echo differ",
        source.display(),
        root.display()
    ))?;
    if ok.trim() != "same" {
        bail!(
            "restore of {} differs from the source (sizes {source_size} vs {restored})",
            target.display()
        );
    }
    Ok(())
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Rep {
    first: Measure,
    second: Measure,
    restore: Measure,
    /// The `sync` right after the restore: the disk writing what the restore left in the
    /// page cache (a restore returns once its files are written, not once they are on disk).
    #[serde(default)]
    restore_sync: Option<Measure>,
    size_after_first: u64,
    size_after_second: u64,
    /// Cairn only: what the hardware allows a restore of the same repository.
    #[serde(default)]
    limits: Option<Limits>,
    /// Cairn on the local target only: the same first backup into memory.
    #[serde(default)]
    backup_floor: Option<BackupFloor>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Row {
    tool: String,
    target: String,
    reps: Vec<Rep>,
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    if values.is_empty() {
        0.0
    } else {
        values[values.len() / 2]
    }
}

fn run(args: RunArgs) -> Result<()> {
    let exe_dir = std::env::current_exe()?
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let bins = Bins {
        cairnctl: args
            .cairnctl
            .clone()
            .unwrap_or_else(|| exe_dir.join("cairnctl")),
        datasafed: args
            .datasafed
            .clone()
            .unwrap_or_else(|| exe_dir.join("datasafed")),
        rustic: args
            .rustic
            .clone()
            .or_else(|| which("rustic"))
            .unwrap_or_else(|| PathBuf::from("/work/.bench-tools/bin/rustic")),
    };
    ensure_tools(&args, &bins)?;
    let size = parse_size(&args.size)?;
    fs::create_dir_all(&args.work)?;
    let pristine = args.work.join("pristine");
    if !pristine.join("PG_VERSION").exists() || du(&pristine)? < size * 9 / 10 {
        let _ = fs::remove_dir_all(&pristine);
        eprintln!("generating {} of data in {}", args.size, pristine.display());
        generate(&pristine, size, 1)?;
    }
    let data = args.work.join("data");
    let dataset = du(&pristine)?;
    let mut rows: Vec<Row> = Vec::new();
    for target in &args.targets {
        for tool in &args.tools {
            if target == "s3" && (tool == "borg" || tool == "tar") {
                continue;
            }
            let mut row = Row {
                tool: tool.clone(),
                target: target.clone(),
                reps: Vec::new(),
            };
            for rep in 0..args.reps {
                eprintln!("== {tool} on {target}, repetition {}", rep + 1);
                match one_rep(&args, &bins, tool, target, rep, &pristine, &data) {
                    Ok(r) => {
                        eprintln!("   {r:?}");
                        row.reps.push(r);
                    }
                    Err(e) => {
                        eprintln!("   {tool} on {target} failed: {e:#}");
                        break;
                    }
                }
            }
            rows.push(row);
        }
    }
    // The disk's own write rate for the restored tree (local target): `cp -a` from a warm
    // page cache, synced, so the restore can be set against what the disk takes.
    let disk = if args.targets.iter().any(|t| t == "local") {
        match disk_write(&args, &pristine, &data) {
            Ok(d) => Some(d),
            Err(e) => {
                eprintln!("   measuring the disk's write rate failed: {e:#}");
                None
            }
        }
    } else {
        None
    };
    let mut streams = Vec::new();
    if args.tools.iter().any(|t| t == "cairn") {
        for target in &args.targets {
            match stream_pull(&args, &bins, &pristine, target) {
                Ok(s) => streams.push(s),
                Err(e) => eprintln!("   streamed pull on {target} failed: {e:#}"),
            }
        }
    }
    let results = Results {
        dataset_bytes: dataset,
        rows,
        disk_write: disk,
        stream_pull: streams,
    };
    fs::write(
        args.work.join("results.json"),
        serde_json::to_string_pretty(&results)?,
    )?;
    results.print();
    Ok(())
}

/// What `run` measured, as `<work>/results.json` holds it.
#[derive(Debug, Serialize, Deserialize)]
struct Results {
    dataset_bytes: u64,
    rows: Vec<Row>,
    disk_write: Option<DiskWrite>,
    #[serde(default)]
    stream_pull: Vec<StreamPull>,
}

impl Results {
    fn print(&self) {
        print_table(
            self.dataset_bytes,
            &self.rows,
            self.disk_write.as_ref(),
            &self.stream_pull,
        );
    }
}

/// `cp -a` of the benchmark's (mutated) tree from a warm page cache, then `sync`: what the
/// disk takes to write the tree a restore writes.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct DiskWrite {
    bytes: u64,
    seconds: Vec<f64>,
    /// CPU seconds (user + system) of `cp -a` and `sync` in each repetition.
    #[serde(default)]
    cpu_s: Vec<f64>,
}

fn disk_write(args: &RunArgs, pristine: &Path, data: &Path) -> Result<DiskWrite> {
    if !data.join("PG_VERSION").exists() {
        let _ = fs::remove_dir_all(data);
        sh(&format!(
            "cp -a '{}' '{}'",
            pristine.display(),
            data.display()
        ))?;
        mutate(data, 2)?;
    }
    let bytes = du(data)?;
    let copy = args.work.join("disk-copy");
    let mut seconds = Vec::new();
    let mut cpu_s = Vec::new();
    for rep in 0..args.reps {
        eprintln!(
            "== disk: cp -a of the tree and sync, repetition {}",
            rep + 1
        );
        let _ = fs::remove_dir_all(&copy);
        sh("sync")?;
        // Warm: every file's content in the page cache, so only the writes are timed.
        sh(&format!(
            "find '{}' -type f -exec cat {{}} + > /dev/null",
            data.display()
        ))?;
        let m = measure(
            &format!("cp -a '{}' '{}' && sync", data.display(), copy.display()),
            &BTreeMap::new(),
        )?;
        eprintln!("   {m:?}");
        seconds.push(m.seconds);
        cpu_s.push(m.cpu_s);
    }
    let _ = fs::remove_dir_all(&copy);
    Ok(DiskWrite {
        bytes,
        seconds,
        cpu_s,
    })
}

fn one_rep(
    args: &RunArgs,
    bins: &Bins,
    tool: &str,
    target: &str,
    rep: usize,
    pristine: &Path,
    data: &Path,
) -> Result<Rep> {
    let _ = fs::remove_dir_all(data);
    sh(&format!(
        "cp -a '{}' '{}'",
        pristine.display(),
        data.display()
    ))?;
    let backup_floor = if tool == "cairn" && target == "local" {
        eprintln!("   measuring the first backup into memory");
        match repo_limits::backup_floor(data, "bench-password", &drop_caches) {
            Ok(f) => {
                eprintln!("   {f:?}");
                Some(f)
            }
            Err(e) => {
                eprintln!("   measuring the backup into memory failed: {e:#}");
                None
            }
        }
    } else {
        None
    };
    let runner = make_runner(args, bins, tool, target, rep)?;
    runner.init()?;
    drop_caches();
    let first = runner.backup(data, 1)?;
    let size_after_first = runner.size()?;
    mutate(data, 2)?;
    drop_caches();
    let second = runner.backup(data, 2)?;
    let size_after_second = runner.size()?;
    let restore_dir = args.work.join("restore");
    let _ = fs::remove_dir_all(&restore_dir);
    fs::create_dir_all(&restore_dir)?;
    drop_caches();
    let restore = runner.restore(&restore_dir, data, 2)?;
    let restore_sync = measure("sync", &BTreeMap::new())?;
    verify_restore(data, &restore_dir)?;
    let _ = fs::remove_dir_all(&restore_dir);
    let limits = if tool == "cairn" {
        eprintln!("   measuring what the hardware allows on {target}");
        match repo_limits::measure(&runner.repo, "bench-password", &server_cpu_s, &drop_caches) {
            Ok(l) => Some(l),
            Err(e) => {
                eprintln!("   measuring the limits failed: {e:#}");
                None
            }
        }
    } else {
        None
    };
    if let Some(dir) = &runner.local_dir {
        let _ = fs::remove_dir_all(dir);
    }
    Ok(Rep {
        first,
        second,
        restore,
        restore_sync: Some(restore_sync),
        size_after_first,
        size_after_second,
        limits,
        backup_floor,
    })
}

fn make_runner(
    args: &RunArgs,
    bins: &Bins,
    tool: &str,
    target: &str,
    rep: usize,
) -> Result<Runner> {
    let mut env = BTreeMap::new();
    env.insert(
        "CAIRN_REPO_PASSWORD".to_string(),
        "bench-password".to_string(),
    );
    env.insert("RESTIC_PASSWORD".to_string(), "bench-password".to_string());
    env.insert("BORG_PASSPHRASE".to_string(), "bench-password".to_string());
    env.insert("RUSTIC_PASSWORD".to_string(), "bench-password".to_string());
    env.insert(
        "BORG_RELOCATED_REPO_ACCESS_IS_OK".to_string(),
        "yes".to_string(),
    );
    let name = format!("{tool}-{rep}-{}", std::process::id());
    if target == "local" {
        let dir = args.work.join("repos").join(&name);
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.parent().unwrap_or(Path::new("/")))?;
        let repo = match tool {
            "cairn" => {
                fs::create_dir_all(&dir)?;
                format!("file://{}", dir.display())
            }
            "rustic" => {
                let profile = args.work.join(format!("{name}-rustic"));
                fs::write(
                    profile.with_extension("toml"),
                    format!(
                        "[repository]\nrepository = \"{}\"\npassword = \"bench-password\"\n",
                        dir.display()
                    ),
                )?;
                format!("-P '{}'", profile.display())
            }
            _ => dir.display().to_string(),
        };
        env.insert("RESTIC_REPOSITORY".to_string(), dir.display().to_string());
        env.insert("BORG_REPO".to_string(), dir.display().to_string());
        return Ok(Runner {
            tool: tool.into(),
            repo,
            env,
            local_dir: Some(dir),
            s3_prefix: None,
            bins: bins.clone(),
        });
    }
    let server = cairn_repo::testing::SeaweedFs::shared();
    let (key, secret, bucket) = (
        cairn_repo::testing::ACCESS_KEY,
        cairn_repo::testing::SECRET_KEY,
        cairn_repo::testing::BUCKET,
    );
    env.insert("AWS_ACCESS_KEY_ID".to_string(), key.to_string());
    env.insert("AWS_SECRET_ACCESS_KEY".to_string(), secret.to_string());
    let repo = match tool {
        "cairn" => cairn_s3_url(&name),
        "restic" => {
            env.insert(
                "RESTIC_REPOSITORY".to_string(),
                format!("s3:{}/{bucket}/{name}", server.endpoint),
            );
            String::new()
        }
        "rustic" => {
            let profile = args.work.join(format!("{name}-rustic"));
            fs::write(
                profile.with_extension("toml"),
                format!(
                    "[repository]\nrepository = \"opendal:s3\"\npassword = \"bench-password\"\n[repository.options]\nbucket = \"{bucket}\"\nroot = \"/{name}\"\nendpoint = \"{}\"\nregion = \"us-east-1\"\naccess_key_id = \"{key}\"\nsecret_access_key = \"{secret}\"\n",
                    server.endpoint
                ),
            )?;
            format!("-P '{}'", profile.display())
        }
        other => bail!("{other} has no S3 target"),
    };
    Ok(Runner {
        tool: tool.into(),
        repo,
        env,
        local_dir: None,
        s3_prefix: Some(name),
        bins: bins.clone(),
    })
}

/// Cairn's repository URL for `prefix` on the benchmark's S3 server.
fn cairn_s3_url(prefix: &str) -> String {
    format!(
        "s3://{}/{prefix}?endpoint={}&region=us-east-1&access_key_id={}&secret_access_key={}",
        cairn_repo::testing::BUCKET,
        cairn_repo::testing::SeaweedFs::shared().endpoint,
        cairn_repo::testing::ACCESS_KEY,
        cairn_repo::testing::SECRET_KEY
    )
}

/// What `datasafed` needs to keep its files in a deduplicating repository (KubeBlocks'
/// kopia variables).
fn datasafed_dedup_env() -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            "DATASAFED_KOPIA_REPO_ROOT".to_string(),
            "/kopia".to_string(),
        ),
        (
            "DATASAFED_KOPIA_PASSWORD".to_string(),
            "bench-password".to_string(),
        ),
    ])
}

/// The streamed pull of one large file (a tar of the dataset) on one target: Cairn's
/// `datasafed pull` from a deduplicating repository against restic's restore of the same file
/// (backed up from stdin), each from a cold page cache.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StreamPull {
    target: String,
    bytes: u64,
    /// `datasafed pull b1.tar - > /dev/null`.
    pull_null: Vec<Measure>,
    /// `datasafed pull b1.tar FILE` (written to disk).
    pull_file: Vec<Measure>,
    /// `restic restore latest --target DIR` (the file written to disk).
    restic_restore: Vec<Measure>,
    /// `restic dump latest /b1.tar > /dev/null`.
    restic_dump: Vec<Measure>,
}

fn stream_pull(args: &RunArgs, bins: &Bins, pristine: &Path, target: &str) -> Result<StreamPull> {
    let tar = args.work.join("b1.tar");
    if !tar.exists() {
        sh(&format!(
            "tar -cf '{}' -C '{}' .",
            tar.display(),
            pristine.display()
        ))?;
    }
    let bytes = fs::metadata(&tar)?.len();
    let name = format!("stream-{}", std::process::id());
    let mut env = datasafed_dedup_env();
    env.insert("RESTIC_PASSWORD".to_string(), "bench-password".to_string());
    let ds = bins.datasafed.display();
    let mut ds_args = String::new();
    let local = args.work.join("repos").join(&name);
    if target == "local" {
        let _ = fs::remove_dir_all(&local);
        fs::create_dir_all(local.join("cairn"))?;
        env.insert(
            "DATASAFED_LOCAL_BACKEND_PATH".to_string(),
            local.join("cairn").display().to_string(),
        );
        env.insert(
            "RESTIC_REPOSITORY".to_string(),
            local.join("restic").display().to_string(),
        );
    } else {
        let server = cairn_repo::testing::SeaweedFs::shared();
        let conf = args.work.join(format!("{name}.conf"));
        fs::write(&conf, server.fresh_datasafed_config("stream-cairn"))?;
        ds_args = format!("-c '{}'", conf.display());
        env.insert(
            "AWS_ACCESS_KEY_ID".to_string(),
            cairn_repo::testing::ACCESS_KEY.to_string(),
        );
        env.insert(
            "AWS_SECRET_ACCESS_KEY".to_string(),
            cairn_repo::testing::SECRET_KEY.to_string(),
        );
        env.insert(
            "RESTIC_REPOSITORY".to_string(),
            format!(
                "s3:{}/{}/{name}-restic",
                server.endpoint,
                cairn_repo::testing::BUCKET
            ),
        );
    }
    measure(
        &format!("'{ds}' {ds_args} push '{}' /b1.tar", tar.display()),
        &env,
    )?;
    measure("restic init", &env)?;
    measure(
        &format!(
            "restic backup --quiet --stdin --stdin-filename b1.tar < '{}'",
            tar.display()
        ),
        &env,
    )?;
    let out_dir = args.work.join("stream-out");
    let mut result = StreamPull {
        target: target.to_string(),
        bytes,
        pull_null: Vec::new(),
        pull_file: Vec::new(),
        restic_restore: Vec::new(),
        restic_dump: Vec::new(),
    };
    for rep in 0..args.reps {
        eprintln!("== streamed pull on {target}, repetition {}", rep + 1);
        let _ = fs::remove_dir_all(&out_dir);
        fs::create_dir_all(&out_dir)?;
        drop_caches();
        result.pull_null.push(measure(
            &format!("'{ds}' {ds_args} pull b1.tar - > /dev/null"),
            &env,
        )?);
        drop_caches();
        result.pull_file.push(measure(
            &format!(
                "'{ds}' {ds_args} pull b1.tar '{}/cairn.tar'",
                out_dir.display()
            ),
            &env,
        )?);
        drop_caches();
        result.restic_restore.push(measure(
            &format!(
                "restic restore --quiet latest --target '{}/restic'",
                out_dir.display()
            ),
            &env,
        )?);
        drop_caches();
        result.restic_dump.push(measure(
            "restic dump --quiet latest /b1.tar > /dev/null",
            &env,
        )?);
        if fs::metadata(out_dir.join("cairn.tar"))?.len() != bytes
            || fs::metadata(out_dir.join("restic/b1.tar"))?.len() != bytes
        {
            bail!("a pulled file has the wrong size");
        }
        sh(&format!(
            "cmp '{}' '{}/cairn.tar'",
            tar.display(),
            out_dir.display()
        ))?;
        eprintln!(
            "   pull to /dev/null {:?}, to a file {:?}, restic restore {:?}, restic dump {:?}",
            result.pull_null.last(),
            result.pull_file.last(),
            result.restic_restore.last(),
            result.restic_dump.last()
        );
    }
    let _ = fs::remove_dir_all(&out_dir);
    let _ = fs::remove_dir_all(&local);
    Ok(result)
}

fn ensure_tools(args: &RunArgs, bins: &Bins) -> Result<()> {
    let mut missing = Vec::new();
    for tool in &args.tools {
        let present = match tool.as_str() {
            "cairn" => bins.cairnctl.is_file(),
            "restic" => which("restic").is_some(),
            "borg" => which("borg").is_some(),
            "rustic" => bins.rustic.is_file(),
            "tar" => which("zstd").is_some(),
            _ => true,
        };
        if !present {
            missing.push(tool.clone());
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    if !args.install {
        bail!(
            "missing tools: {} (rerun with --install, or see bench/README.md)",
            missing.join(", ")
        );
    }
    for tool in missing {
        match tool.as_str() {
            "restic" | "borg" | "tar" => {
                sh("DEBIAN_FRONTEND=noninteractive apt-get install -y restic borgbackup zstd")?;
            }
            "rustic" => {
                eprintln!("installing rustic (about 40 minutes on 2 cores)");
                sh("cargo install rustic-rs --locked --root /work/.bench-tools")?;
            }
            "cairn" => {
                bail!("build cairnctl first: cargo build --release -p cairn-cli")
            }
            _ => {}
        }
    }
    Ok(())
}

/// Each restore with the `sync` after it, beside the disk's own `cp -a` + `sync` rate: a
/// restore returns before the disk has written what it left in the page cache (all of it when
/// the tree fits under the kernel's dirty limit), while `cp -a` + `sync` counts the writing.
fn print_synced_restores(mb: f64, disk_rate: f64, rows: &[Row]) {
    let synced: Vec<(&Row, f64, f64)> = rows
        .iter()
        .filter_map(|r| {
            let syncs: Vec<f64> = r
                .reps
                .iter()
                .filter_map(|x| x.restore_sync.map(|s| s.seconds))
                .collect();
            (!syncs.is_empty() && syncs.len() == r.reps.len()).then(|| {
                let both = r
                    .reps
                    .iter()
                    .map(|x| x.restore.seconds + x.restore_sync.map_or(0.0, |s| s.seconds))
                    .collect();
                (r, median(syncs), median(both))
            })
        })
        .collect();
    if synced.is_empty() {
        return;
    }
    println!(
        "\nrestores with the `sync` after them (medians): the restore, then the disk writing what it left in the page cache; of the disk = restore + sync MB/s against `cp -a` + `sync`\n"
    );
    println!(
        "| tool | target | restore s | sync after s | restore + sync s | MB/s | of the disk |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (r, sync_s, both) in synced {
        let rate = mb / both.max(0.001);
        println!(
            "| {} | {} | {:.2} | {sync_s:.2} | {both:.2} | {rate:.0} | {:.0} % |",
            r.tool,
            r.target,
            median(r.reps.iter().map(|x| x.restore.seconds).collect()),
            100.0 * rate / disk_rate.max(0.001),
        );
    }
}

/// Where the restores' time goes (their CPU and the S3 server's) and, for Cairn, the least
/// time the hardware allows a restore of the same repository (`repo_limits`).
fn print_limits(
    mb: f64,
    rows: &[Row],
    restores: &[(String, String, f64)],
    disk: Option<&DiskWrite>,
) {
    let med = |r: &Row, f: &dyn Fn(&Rep) -> f64| median(r.reps.iter().map(f).collect());
    println!(
        "\nrestore CPU (medians): the tool's own and the S3 server's during the restore; cores busy = their sum ÷ the restore's time\n"
    );
    println!("| tool | target | restore s | tool CPU s | S3 server CPU s | cores busy |");
    println!("|---|---|---|---|---|---|");
    for r in rows.iter().filter(|r| !r.reps.is_empty()) {
        let secs = med(r, &|x| x.restore.seconds);
        let cpu = med(r, &|x| x.restore.cpu_s);
        let server = med(r, &|x| x.restore.server_cpu_s);
        println!(
            "| {} | {} | {secs:.2} | {cpu:.2} | {server:.2} | {:.2} |",
            r.tool,
            r.target,
            (cpu + server) / secs.max(0.001)
        );
    }
    let with_limits: Vec<&Row> = rows
        .iter()
        .filter(|r| r.reps.iter().any(|x| x.limits.is_some()))
        .collect();
    if with_limits.is_empty() {
        return;
    }
    // The CPU of writing the tree: `cp -a` from a warm page cache (its reads of the cache
    // are cheaper than a restore's decoding, which the decode column counts).
    let write_cpu = disk.map_or(0.0, |d| median(d.cpu_s.clone()));
    println!(
        "\nwhat the hardware allows a restore of Cairn's repository (same run, medians): every pack read to nothing 16 at a time from a cold cache (on S3: the same GETs from the same server, with the client's and the server's CPU), and every blob decrypted and decompressed from memory on all cores; CPU floor = (read CPU of client and server + decode CPU) ÷ cores, before any file is written; + write = the same plus the CPU of writing the tree (`cp -a` and `sync` of it, {write_cpu:.2} CPU s); CPU share = decode CPU ÷ (decode s × cores), the part of the machine the benchmark got while it had work for every core (below ~90 %: other work took the CPU)\n"
    );
    println!(
        "| target | packs MB | read s | read MB/s | read CPU s client + server | decode s | decode CPU s | cores | CPU share | CPU floor s | + write s | at most MB/s | Cairn restore MB/s | 2× fastest peer MB/s |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    let mut verdicts = Vec::new();
    for r in with_limits {
        let l = |f: &dyn Fn(&Limits) -> f64| {
            median(
                r.reps
                    .iter()
                    .filter_map(|x| x.limits.as_ref())
                    .map(f)
                    .collect(),
            )
        };
        let floor = l(&|x| x.cpu_floor_s());
        let pack_mb = l(&|x| x.pack_bytes as f64) / 1e6;
        let read_s = l(&|x| x.read_s);
        let best_peer = restores
            .iter()
            .filter(|(tool, target, _)| {
                *target == r.target && ["restic", "rustic", "borg"].contains(&tool.as_str())
            })
            .map(|(_, _, secs)| *secs)
            .fold(f64::INFINITY, f64::min);
        let cairn = restores
            .iter()
            .find(|(tool, target, _)| tool == "cairn" && *target == r.target)
            .map_or(0.0, |(_, _, secs)| mb / secs.max(0.001));
        let cores = l(&|x| x.cores as f64).max(1.0);
        let with_writes = floor + write_cpu / cores;
        println!(
            "| {} | {pack_mb:.0} | {read_s:.2} | {:.0} | {:.2} + {:.2} | {:.2} | {:.2} | {cores:.0} | {:.0} % | {floor:.2} | {with_writes:.2} | {:.0} | {cairn:.0} | {} |",
            r.target,
            pack_mb / read_s.max(0.001),
            l(&|x| x.read_client_cpu_s),
            l(&|x| x.read_server_cpu_s),
            l(&|x| x.decode_s),
            l(&|x| x.decode_cpu_s),
            100.0 * l(&|x| x.cpu_share()),
            mb / with_writes.max(0.001),
            if best_peer.is_finite() {
                format!("{:.0}", 2.0 * mb / best_peer.max(0.001))
            } else {
                "-".into()
            }
        );
        if best_peer.is_finite() && cairn > 0.0 {
            verdicts.push(verdict(
                &format!("restore from {}", r.target),
                mb / cairn,
                best_peer / 2.0,
                &[
                    ("the store's reads alone", read_s),
                    ("the CPU of reading, decoding and writing", with_writes),
                ],
                &[],
            ));
        }
    }
    if !verdicts.is_empty() {
        println!();
    }
    for v in verdicts {
        println!("* {v}");
    }
}

/// Whether a time target is met and, if not, which measured limit (if any) stops it. `hardware`
/// are what the machine allows whatever the tool (reads, the CPU of the format's decoding);
/// `own` are Cairn's own costs (its backup's CPU without a store): above the target they
/// explain a miss, but do not make the target impossible, since Cairn can still cut them.
fn verdict(
    what: &str,
    secs: f64,
    target: f64,
    hardware: &[(&str, f64)],
    own: &[(&str, f64)],
) -> String {
    let head = format!("{what}: {secs:.2} s against ≤ {target:.2} s (2× the fastest peer)");
    if secs <= target {
        return format!("{head}: met");
    }
    fn highest<'a>(limits: &[(&'a str, f64)], target: f64) -> Option<(&'a str, f64)> {
        limits
            .iter()
            .filter(|(_, floor)| *floor > target)
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .copied()
    }
    if let Some((name, floor)) = highest(hardware, target) {
        return format!(
            "{head}: impossible on this machine: {name}: {floor:.2} s (measured in this run)"
        );
    }
    if let Some((name, floor)) = highest(own, target) {
        return format!(
            "{head}: missed: {name}: {floor:.2} s, is above the target (Cairn's own cost, not the hardware's limit)"
        );
    }
    let (name, floor) = hardware
        .iter()
        .chain(own)
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .copied()
        .unwrap_or(("nothing", 0.0));
    format!(
        "{head}: missed, not by the hardware (the highest limit measured, {name}: {floor:.2} s, is under the target)"
    )
}

/// The first backups' CPU beside the CPU floor of Cairn's backup (the same backup into an
/// in-memory repository).
fn print_backup_limits(mb: f64, rows: &[Row]) {
    let med = |r: &Row, f: &dyn Fn(&Rep) -> f64| median(r.reps.iter().map(f).collect());
    println!(
        "\nfirst backup CPU (medians): the tool's own and the S3 server's; cores busy = their sum ÷ the backup's time\n"
    );
    println!("| tool | target | 1st backup s | tool CPU s | S3 server CPU s | cores busy |");
    println!("|---|---|---|---|---|---|");
    for r in rows.iter().filter(|r| !r.reps.is_empty()) {
        let secs = med(r, &|x| x.first.seconds);
        let cpu = med(r, &|x| x.first.cpu_s);
        let server = med(r, &|x| x.first.server_cpu_s);
        println!(
            "| {} | {} | {secs:.2} | {cpu:.2} | {server:.2} | {:.2} |",
            r.tool,
            r.target,
            (cpu + server) / secs.max(0.001)
        );
    }
    let floors: Vec<BackupFloor> = rows
        .iter()
        .flat_map(|r| r.reps.iter().filter_map(|x| x.backup_floor))
        .collect();
    if floors.is_empty() {
        return;
    }
    let secs = median(floors.iter().map(|f| f.seconds).collect());
    let cpu = median(floors.iter().map(|f| f.cpu_s).collect());
    let floor = median(floors.iter().map(|f| f.cpu_floor_s()).collect());
    let read_s = median(floors.iter().map(|f| f.read_s).collect());
    let read_cpu = median(floors.iter().map(|f| f.read_cpu_s).collect());
    println!(
        "\nreading the tree alone (every file to nothing, 4 at a time, cold cache): {read_s:.2} s, {read_cpu:.2} CPU s. Cairn's first backup into memory (`memory://`: walk, read from a cold cache, chunk, hash, compress, encrypt, pack; no store): {secs:.2} s, {cpu:.2} CPU s; its CPU floor = CPU ÷ cores = {floor:.2} s = at most {:.0} MB/s\n",
        mb / floor.max(0.001)
    );
    for target in ["local", "s3"] {
        let of = |tool: &str| {
            rows.iter()
                .find(|r| r.tool == tool && r.target == target && !r.reps.is_empty())
                .map(|r| med(r, &|x| x.first.seconds))
        };
        let best_peer = ["restic", "rustic", "borg"]
            .iter()
            .filter_map(|t| of(t))
            .fold(f64::INFINITY, f64::min);
        if let (Some(cairn), true) = (of("cairn"), best_peer.is_finite()) {
            // On S3 the server runs on the same cores: the CPU it spent storing Cairn's
            // packs comes on top of the backup's own.
            let server = rows
                .iter()
                .find(|r| r.tool == "cairn" && r.target == target && !r.reps.is_empty())
                .map_or(0.0, |r| med(r, &|x| x.first.server_cpu_s));
            let cores = floors.first().map_or(1, |f| f.cores.max(1)) as f64;
            let mut hardware = vec![("reading the tree", read_s)];
            let mut own = vec![("the CPU of Cairn's backup without a store", floor)];
            if server > 0.0 {
                hardware.push((
                    "the CPU of the S3 server storing Cairn's packs",
                    server / cores,
                ));
                own.push((
                    "the CPU of Cairn's backup without a store and of the S3 server storing its packs",
                    floor + server / cores,
                ));
            }
            println!(
                "* {}",
                verdict(
                    &format!("first backup to {target}"),
                    cairn,
                    best_peer / 2.0,
                    &hardware,
                    &own,
                )
            );
        }
    }
}

fn print_table(dataset: u64, rows: &[Row], disk: Option<&DiskWrite>, streams: &[StreamPull]) {
    let mb = dataset as f64 / 1e6;
    struct Summary {
        tool: String,
        target: String,
        first_s: f64,
        second_s: f64,
        added: f64,
        restore_s: f64,
        size: f64,
        rss: f64,
        restore_rss: f64,
    }
    let sums: Vec<Summary> = rows
        .iter()
        .filter(|r| !r.reps.is_empty())
        .map(|r| Summary {
            tool: r.tool.clone(),
            target: r.target.clone(),
            first_s: median(r.reps.iter().map(|x| x.first.seconds).collect()),
            second_s: median(r.reps.iter().map(|x| x.second.seconds).collect()),
            added: median(
                r.reps
                    .iter()
                    .map(|x| x.size_after_second.saturating_sub(x.size_after_first) as f64)
                    .collect(),
            ),
            restore_s: median(r.reps.iter().map(|x| x.restore.seconds).collect()),
            size: median(r.reps.iter().map(|x| x.size_after_second as f64).collect()),
            rss: median(
                r.reps
                    .iter()
                    .map(|x| x.first.rss_kib.max(x.second.rss_kib).max(x.restore.rss_kib) as f64)
                    .collect(),
            ),
            restore_rss: median(r.reps.iter().map(|x| x.restore.rss_kib as f64).collect()),
        })
        .collect();
    println!(
        "dataset: {mb:.0} MB; medians of the repetitions; ratios against the fastest peer (restic, rustic, borg) on the same target\n"
    );
    println!(
        "| tool | target | 1st backup s | MB/s | ×peer | 2nd backup s | added MB | ×restic | restore s | MB/s | ×peer | restore s (3 runs) | restore RSS MiB | repo MB | peak RSS MiB |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for s in &sums {
        let peers: Vec<&Summary> = sums
            .iter()
            .filter(|p| {
                p.target == s.target && ["restic", "rustic", "borg"].contains(&p.tool.as_str())
            })
            .collect();
        let best_first = peers
            .iter()
            .map(|p| p.first_s)
            .fold(f64::INFINITY, f64::min);
        let best_restore = peers
            .iter()
            .map(|p| p.restore_s)
            .fold(f64::INFINITY, f64::min);
        let restic_added = peers.iter().find(|p| p.tool == "restic").map(|p| p.added);
        let ratio = |a: f64, b: f64| {
            if a.is_finite() && b > 0.0 && a > 0.0 {
                format!("{:.2}", a / b)
            } else {
                "-".into()
            }
        };
        let runs = rows
            .iter()
            .find(|r| r.tool == s.tool && r.target == s.target)
            .map(|r| {
                r.reps
                    .iter()
                    .map(|x| format!("{:.2}", x.restore.seconds))
                    .collect::<Vec<_>>()
                    .join(" / ")
            })
            .unwrap_or_default();
        println!(
            "| {} | {} | {:.1} | {:.0} | {} | {:.1} | {:.0} | {} | {:.2} | {:.0} | {} | {runs} | {:.0} | {:.0} | {:.0} |",
            s.tool,
            s.target,
            s.first_s,
            mb / s.first_s.max(0.001),
            ratio(best_first, s.first_s),
            s.second_s,
            s.added / 1e6,
            restic_added
                .map(|r| ratio(s.added, r))
                .unwrap_or_else(|| "-".into()),
            s.restore_s,
            mb / s.restore_s.max(0.001),
            ratio(best_restore, s.restore_s),
            s.restore_rss / 1024.0,
            s.size / 1e6,
            s.rss / 1024.0
        );
    }
    if let Some(disk) = disk {
        let secs = median(disk.seconds.clone());
        let rate = disk.bytes as f64 / 1e6 / secs.max(0.001);
        let cairn = sums
            .iter()
            .find(|s| s.tool == "cairn" && s.target == "local")
            .map(|s| mb / s.restore_s.max(0.001));
        println!(
            "\nthe disk's own write rate (`cp -a` of the restored tree from a warm page cache, then `sync`): {secs:.2} s = {rate:.0} MB/s (runs {}){}",
            disk.seconds
                .iter()
                .map(|s| format!("{s:.2}"))
                .collect::<Vec<_>>()
                .join(" / "),
            cairn
                .map(|c| format!("; Cairn's local restore = {:.0} % of it", 100.0 * c / rate))
                .unwrap_or_default()
        );
        print_synced_restores(mb, rate, rows);
    }
    print_limits(
        mb,
        rows,
        &sums
            .iter()
            .map(|s| (s.tool.clone(), s.target.clone(), s.restore_s))
            .collect::<Vec<_>>(),
        disk,
    );
    print_backup_limits(mb, rows);
    if !streams.is_empty() {
        println!(
            "\nstreamed restore of one file (a tar of the dataset), cold page cache, medians; ×restic = rate ÷ restic restore's rate of the same file\n"
        );
        println!(
            "| target | file MB | command | s | MB/s | ×restic restore | peak RSS MiB | runs s |"
        );
        println!("|---|---|---|---|---|---|---|---|");
    }
    for st in streams {
        let mb = st.bytes as f64 / 1e6;
        let restic = median(st.restic_restore.iter().map(|m| m.seconds).collect());
        for (what, runs) in [
            ("cairn `datasafed pull` to /dev/null", &st.pull_null),
            ("cairn `datasafed pull` to a file", &st.pull_file),
            ("restic restore (a file)", &st.restic_restore),
            ("restic dump to /dev/null", &st.restic_dump),
        ] {
            let secs = median(runs.iter().map(|m| m.seconds).collect());
            let rss = median(runs.iter().map(|m| m.rss_kib as f64).collect());
            println!(
                "| {} | {mb:.0} | {what} | {secs:.2} | {:.0} | {:.2} | {:.0} | {} |",
                st.target,
                mb / secs.max(0.001),
                restic / secs.max(0.001),
                rss / 1024.0,
                runs.iter()
                    .map(|m| format!("{:.2}", m.seconds))
                    .collect::<Vec<_>>()
                    .join(" / ")
            );
        }
    }
    let _ = std::io::stdout().flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_verdict_says_met_impossible_or_missed_and_names_the_limit() {
        let limits = [("the store's reads", 0.4), ("the CPU", 0.9)];
        assert!(verdict("restore", 0.5, 0.6, &limits, &[]).ends_with(": met"));
        let impossible = verdict("restore", 1.2, 0.67, &limits, &[]);
        assert!(
            impossible.contains("impossible on this machine: the CPU: 0.90 s"),
            "{impossible}"
        );
        let missed = verdict("restore", 1.2, 1.0, &limits, &[]);
        assert!(
            missed.contains("missed, not by the hardware") && missed.contains("the CPU: 0.90 s"),
            "{missed}"
        );
    }

    #[test]
    fn cairns_own_cost_above_the_target_is_a_miss_not_an_impossibility() {
        let hardware = [("reading the tree", 1.4)];
        let own = [("the CPU of Cairn's backup without a store", 4.75)];
        let missed = verdict("first backup to local", 5.53, 4.42, &hardware, &own);
        assert!(
            missed.contains("missed: the CPU of Cairn's backup without a store: 4.75 s")
                && !missed.contains("impossible"),
            "{missed}"
        );
        let impossible = verdict(
            "first backup to s3",
            10.1,
            7.5,
            &[("the server", 8.0)],
            &own,
        );
        assert!(impossible.contains("impossible on this machine: the server: 8.00 s"));
    }

    #[test]
    fn results_written_before_the_backup_floor_existed_still_print() {
        let measure = r#"{"seconds": 1.0, "rss_kib": 1024, "cpu_s": 1.5, "server_cpu_s": 0.0}"#;
        let rep = format!(
            r#"{{"first": {measure}, "second": {measure}, "restore": {measure},
                "size_after_first": 10, "size_after_second": 12, "limits": null}}"#
        );
        let text = format!(
            r#"{{"dataset_bytes": 1000000,
                "rows": [{{"tool": "cairn", "target": "local", "reps": [{rep}]}}],
                "disk_write": {{"bytes": 1000000, "seconds": [0.5]}},
                "stream_pull": []}}"#
        );
        let results: Results = serde_json::from_str(&text).expect("an older results.json parses");
        assert!(results.rows[0].reps[0].backup_floor.is_none());
        assert!(
            results
                .disk_write
                .as_ref()
                .is_some_and(|d| d.cpu_s.is_empty())
        );
    }
}
