//! The quickstart's fallback workload data: a deterministic, realistic mix of files (CSV order
//! exports, application logs, small JSON documents, incompressible media blobs) of a chosen
//! total size, plus the checksums that prove a restore reproduced it and the damage that the
//! quickstart does to it before restoring.
//!
//! Content comes from a BLAKE3 extendable output keyed by the seed and the file's path, so
//! the same seed always gives the same bytes, and each kind compresses like its real
//! counterpart (CSV and logs several times, media not at all).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use crate::progress::Written;

/// The file the writer creates last; its presence means the data set is complete.
pub const MANIFEST: &str = "manifest.json";

/// What a file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `orders/orders-0001.csv`: order rows.
    Csv,
    /// `logs/app-0001.log`: application log lines.
    Log,
    /// `customers/customer-00001.json`: small documents.
    Json,
    /// `media/blob-0001.bin`: incompressible bytes (images, archives).
    Binary,
}

/// One file of the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedFile {
    pub path: String,
    pub kind: Kind,
    pub size: u64,
}

const MIB: u64 = 1 << 20;

/// The files for `total` bytes: half CSV in 8 MiB parts, a quarter media in 2 MiB blobs, a
/// fifth logs in 1 MiB files and the rest 4 KiB JSON documents. Sizes add up to `total`
/// exactly (the last file of a kind takes the remainder).
pub fn plan(total: u64) -> Vec<PlannedFile> {
    let csv = total / 2;
    let binary = total / 4;
    let logs = total / 5;
    let json = total - csv - binary - logs;
    let mut files = Vec::new();
    let mut split = |kind: Kind, bytes: u64, part: u64, name: &dyn Fn(u64) -> String| {
        let mut left = bytes;
        let mut index = 1;
        while left > 0 {
            let size = left.min(part);
            files.push(PlannedFile {
                path: name(index),
                kind,
                size,
            });
            left -= size;
            index += 1;
        }
    };
    split(Kind::Csv, csv, 8 * MIB, &|i| {
        format!("orders/orders-{i:04}.csv")
    });
    split(Kind::Binary, binary, 2 * MIB, &|i| {
        format!("media/blob-{i:04}.bin")
    });
    split(Kind::Log, logs, MIB, &|i| format!("logs/app-{i:04}.log"));
    split(Kind::Json, json, 4096, &|i| {
        format!("customers/customer-{i:05}.json")
    });
    files
}

/// A deterministic byte source for one file.
fn source(seed: u64, path: &str) -> blake3::OutputReader {
    let mut hasher = blake3::Hasher::new_derive_key("cairn quickstart dataset v1");
    hasher.update(&seed.to_le_bytes());
    hasher.update(path.as_bytes());
    hasher.finalize_xof()
}

/// Draws small numbers from a byte source.
struct Dice {
    reader: blake3::OutputReader,
    buffer: [u8; 64],
    used: usize,
}

impl Dice {
    fn new(reader: blake3::OutputReader) -> Dice {
        Dice {
            reader,
            buffer: [0; 64],
            used: 64,
        }
    }

    fn next(&mut self, below: u64) -> u64 {
        if self.used + 8 > self.buffer.len() {
            self.reader.fill(&mut self.buffer);
            self.used = 0;
        }
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(&self.buffer[self.used..self.used + 8]);
        self.used += 8;
        u64::from_le_bytes(bytes) % below.max(1)
    }
}

const SKUS: &[&str] = &[
    "coffee-beans-1kg",
    "espresso-cup",
    "grinder-pro",
    "kettle-gooseneck",
    "filter-papers-100",
    "milk-frother",
    "tea-sampler",
    "travel-mug",
];
const STATES: &[&str] = &["created", "paid", "shipped", "delivered", "returned"];
const LEVELS: &[&str] = &["INFO", "INFO", "INFO", "DEBUG", "WARN", "ERROR"];
const CITIES: &[&str] = &[
    "Lisbon", "Oslo", "Nairobi", "Osaka", "Lima", "Tallinn", "Perth", "Quebec",
];

/// Text content (CSV, log or JSON) of exactly `size` bytes.
fn text(kind: Kind, seed: u64, path: &str, size: u64) -> Vec<u8> {
    let mut dice = Dice::new(source(seed, path));
    let mut out = String::with_capacity(usize::try_from(size).unwrap_or(0) + 256);
    let mut row = 0u64;
    if kind == Kind::Csv {
        out.push_str("order_id,customer,sku,quantity,unit_price,created_at,status\n");
    }
    while (out.len() as u64) < size {
        row += 1;
        let second = 1_735_689_600 + row * 7 + dice.next(7);
        let time = jiff::Timestamp::from_second(second as i64)
            .map(|t| t.to_string())
            .unwrap_or_default();
        match kind {
            Kind::Csv => {
                let _ = writeln!(
                    out,
                    "{},customer-{},{},{},{}.{:02},{},{}",
                    row + dice.next(1000) * 1_000_000,
                    dice.next(50_000),
                    SKUS[dice.next(SKUS.len() as u64) as usize],
                    1 + dice.next(5),
                    2 + dice.next(300),
                    dice.next(100),
                    time,
                    STATES[dice.next(STATES.len() as u64) as usize],
                );
            }
            Kind::Log => {
                let _ = writeln!(
                    out,
                    "{time} {} orders: order {} for customer-{} moved to {} in {}ms",
                    LEVELS[dice.next(LEVELS.len() as u64) as usize],
                    dice.next(10_000_000),
                    dice.next(50_000),
                    STATES[dice.next(STATES.len() as u64) as usize],
                    dice.next(900),
                );
            }
            Kind::Json => {
                let _ = writeln!(
                    out,
                    "{{\"id\":{},\"name\":\"customer-{}\",\"city\":\"{}\",\"since\":\"{time}\",\"orders\":{},\"lifetime_value\":{}.{:02}}}",
                    dice.next(50_000),
                    dice.next(50_000),
                    CITIES[dice.next(CITIES.len() as u64) as usize],
                    dice.next(400),
                    dice.next(20_000),
                    dice.next(100),
                );
            }
            Kind::Binary => break,
        }
    }
    let mut bytes = out.into_bytes();
    bytes.truncate(usize::try_from(size).unwrap_or(usize::MAX));
    bytes
}

/// What the writer wrote, saved as [`MANIFEST`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub seed: u64,
    pub files: u64,
    pub bytes: u64,
    /// BLAKE3 of each file, by relative path.
    pub checksums: BTreeMap<String, String>,
}

/// Writes the planned files under `dir`, then [`MANIFEST`]; `written` is told the bytes
/// written so far after each file.
pub fn write(
    dir: &Path,
    total: u64,
    seed: u64,
    written: &mut dyn FnMut(u64),
) -> anyhow::Result<Manifest> {
    let mut manifest = Manifest {
        seed,
        files: 0,
        bytes: 0,
        checksums: BTreeMap::new(),
    };
    for file in plan(total) {
        let path = dir.join(&file.path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        let content = match file.kind {
            Kind::Binary => {
                let mut bytes = vec![0u8; usize::try_from(file.size)?];
                source(seed, &file.path).fill(&mut bytes);
                bytes
            }
            kind => text(kind, seed, &file.path, file.size),
        };
        let mut out =
            std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
        out.write_all(&content)
            .with_context(|| format!("writing {}", path.display()))?;
        manifest.checksums.insert(
            file.path.clone(),
            blake3::hash(&content).to_hex().to_string(),
        );
        manifest.files += 1;
        manifest.bytes += file.size;
        written(manifest.bytes);
    }
    let text = serde_json::to_vec_pretty(&manifest)?;
    let temporary = dir.join(format!("{MANIFEST}.tmp"));
    std::fs::write(&temporary, text).with_context(|| format!("writing {}", temporary.display()))?;
    std::fs::rename(&temporary, dir.join(MANIFEST))
        .with_context(|| format!("writing {}", dir.join(MANIFEST).display()))?;
    Ok(manifest)
}

/// Size and BLAKE3 of one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSum {
    pub size: u64,
    pub blake3: String,
}

/// Every regular file under `dir` (relative path -> size and checksum).
pub fn checksum_tree(dir: &Path) -> anyhow::Result<BTreeMap<String, FileSum>> {
    let mut out = BTreeMap::new();
    let mut stack: Vec<PathBuf> = vec![dir.to_path_buf()];
    while let Some(current) = stack.pop() {
        let entries = std::fs::read_dir(&current)
            .with_context(|| format!("listing {}", current.display()))?;
        for entry in entries {
            let entry = entry.with_context(|| format!("listing {}", current.display()))?;
            let kind = entry.file_type()?;
            let path = entry.path();
            if kind.is_dir() {
                stack.push(path);
            } else if kind.is_file() {
                let mut file = std::fs::File::open(&path)
                    .with_context(|| format!("opening {}", path.display()))?;
                let mut hasher = blake3::Hasher::new();
                let mut buffer = vec![0u8; 1 << 20];
                let mut size = 0u64;
                loop {
                    let n = file
                        .read(&mut buffer)
                        .with_context(|| format!("reading {}", path.display()))?;
                    if n == 0 {
                        break;
                    }
                    hasher.update(&buffer[..n]);
                    size += n as u64;
                }
                let relative = path
                    .strip_prefix(dir)
                    .unwrap_or(&path)
                    .to_string_lossy()
                    .into_owned();
                out.insert(
                    relative,
                    FileSum {
                        size,
                        blake3: hasher.finalize().to_hex().to_string(),
                    },
                );
            }
        }
    }
    Ok(out)
}

/// Bytes of the regular files under `dir` (0 while it does not exist).
pub fn tree_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(current) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&current) else {
            continue;
        };
        for entry in entries.flatten() {
            match entry.file_type() {
                Ok(kind) if kind.is_dir() => stack.push(entry.path()),
                Ok(kind) if kind.is_file() => {
                    total += entry.metadata().map(|m| m.len()).unwrap_or(0);
                }
                _ => {}
            }
        }
    }
    total
}

/// What has been written under `dir` (nothing while it does not exist): the bytes of its
/// regular files, the earliest creation of one of them (its change time where the file system
/// records no creation) and the latest change of any entry below `dir`. An extracting `tar`
/// creates a file when its first byte arrives and changes it (times, mode) after its last one,
/// so these bound the time the data took, whatever the observer's sampling.
pub fn tree_written(dir: &Path) -> Written {
    use std::os::unix::fs::MetadataExt as _;
    let mut written = Written::default();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(current) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&current) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else {
                continue;
            };
            let changed = jiff::Timestamp::new(meta.ctime(), meta.ctime_nsec() as i32).ok();
            written.last = written.last.max(changed);
            if meta.is_dir() {
                stack.push(entry.path());
            } else if meta.is_file() {
                written.bytes += meta.len();
                let created = meta
                    .created()
                    .ok()
                    .and_then(|t| jiff::Timestamp::try_from(t).ok())
                    .or(changed);
                written.first = match (written.first, created) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
            }
        }
    }
    written
}

/// How a tree compares with the original.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Comparison {
    /// Files with the same size and checksum.
    pub identical: usize,
    /// Bytes in the identical files.
    pub identical_bytes: u64,
    pub missing: Vec<String>,
    pub changed: Vec<String>,
    pub extra: Vec<String>,
}

impl Comparison {
    /// Whether the tree equals the original, file for file.
    pub fn is_identical(&self) -> bool {
        self.missing.is_empty() && self.changed.is_empty() && self.extra.is_empty()
    }

    /// `3 missing (a, b, c), 1 changed (d)`: the first few names of each difference.
    pub fn differences(&self) -> String {
        let list = |label: &str, names: &[String]| {
            let shown: Vec<&str> = names.iter().take(3).map(String::as_str).collect();
            let more = if names.len() > 3 { ", ..." } else { "" };
            format!("{} {label} ({}{more})", names.len(), shown.join(", "))
        };
        let mut parts = Vec::new();
        if !self.missing.is_empty() {
            parts.push(list("missing", &self.missing));
        }
        if !self.changed.is_empty() {
            parts.push(list("changed", &self.changed));
        }
        if !self.extra.is_empty() {
            parts.push(list("unexpected", &self.extra));
        }
        parts.join(", ")
    }
}

/// Compares a tree's checksums with the original's.
pub fn compare(
    original: &BTreeMap<String, FileSum>,
    now: &BTreeMap<String, FileSum>,
) -> Comparison {
    let mut result = Comparison::default();
    for (path, sum) in original {
        match now.get(path) {
            None => result.missing.push(path.clone()),
            Some(found) if found != sum => result.changed.push(path.clone()),
            Some(_) => {
                result.identical += 1;
                result.identical_bytes += sum.size;
            }
        }
    }
    result.extra = now
        .keys()
        .filter(|path| !original.contains_key(*path))
        .cloned()
        .collect();
    result
}

/// What [`damage`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Damage {
    pub removed: usize,
    pub corrupted: usize,
}

/// An accident: every third file (by path) deleted, and 4 KiB in the middle of every fifth
/// remaining one overwritten with zeros.
pub fn damage(dir: &Path) -> anyhow::Result<Damage> {
    let files = checksum_tree(dir)?;
    let mut done = Damage::default();
    for (index, (path, sum)) in files.iter().enumerate() {
        let full = dir.join(path);
        if index % 3 == 0 {
            std::fs::remove_file(&full).with_context(|| format!("removing {}", full.display()))?;
            done.removed += 1;
        } else if index % 5 == 1 && sum.size > 0 {
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .open(&full)
                .with_context(|| format!("opening {}", full.display()))?;
            let offset = sum.size / 2;
            let length = (sum.size - offset).min(4096);
            use std::io::Seek as _;
            file.seek(std::io::SeekFrom::Start(offset))?;
            file.write_all(&vec![0u8; usize::try_from(length)?])
                .with_context(|| format!("overwriting {}", full.display()))?;
            done.corrupted += 1;
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plan_adds_up_to_the_requested_size_in_four_kinds() {
        for total in [0, 1, 4095, 10 * MIB + 17, 300 * MIB] {
            let files = plan(total);
            assert_eq!(files.iter().map(|f| f.size).sum::<u64>(), total, "{total}");
            assert!(files.iter().all(|f| f.size > 0));
        }
        let files = plan(300 * MIB);
        let bytes = |kind| {
            files
                .iter()
                .filter(|f| f.kind == kind)
                .map(|f| f.size)
                .sum::<u64>()
        };
        assert_eq!(bytes(Kind::Csv), 150 * MIB);
        assert_eq!(bytes(Kind::Binary), 75 * MIB);
        assert_eq!(bytes(Kind::Log), 60 * MIB);
        assert!(files.iter().filter(|f| f.kind == Kind::Json).count() > 3000);
        let mut paths: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
        paths.sort_unstable();
        paths.dedup();
        assert_eq!(paths.len(), files.len(), "paths are unique");
    }

    #[test]
    fn the_same_seed_writes_the_same_bytes_and_another_seed_does_not() {
        let a = tempfile::tempdir().expect("tempdir");
        let b = tempfile::tempdir().expect("tempdir");
        let c = tempfile::tempdir().expect("tempdir");
        let mut last = 0;
        let manifest = write(a.path(), 3 * MIB, 7, &mut |n| last = n).expect("write");
        assert_eq!(last, 3 * MIB);
        assert_eq!(manifest.bytes, 3 * MIB);
        write(b.path(), 3 * MIB, 7, &mut |_| {}).expect("write");
        write(c.path(), 3 * MIB, 8, &mut |_| {}).expect("write");
        let sums_a = checksum_tree(a.path()).expect("sums");
        assert!(compare(&sums_a, &checksum_tree(b.path()).expect("sums")).is_identical());
        let other = compare(&sums_a, &checksum_tree(c.path()).expect("sums"));
        assert!(!other.is_identical());
        // The manifest lists every data file with the checksum the tree has.
        for (path, sum) in &manifest.checksums {
            assert_eq!(&sums_a[path].blake3, sum, "{path}");
        }
        assert_eq!(
            sums_a.len() as u64,
            manifest.files + 1,
            "data files plus the manifest"
        );
        assert_eq!(tree_bytes(a.path()), 3 * MIB + sums_a[MANIFEST].size);
    }

    #[test]
    fn what_was_written_spans_from_the_first_file_created_to_the_last_change() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(tree_written(&dir.path().join("absent")), Written::default());
        let before = jiff::Timestamp::now();
        std::fs::create_dir(dir.path().join("base")).expect("mkdir");
        std::fs::write(dir.path().join("base/first"), vec![1u8; 4096]).expect("write");
        // File systems keep times at a few milliseconds' granularity at worst.
        std::thread::sleep(std::time::Duration::from_millis(50));
        std::fs::write(dir.path().join("base/second"), vec![2u8; 1000]).expect("write");
        let after = jiff::Timestamp::now();
        let written = tree_written(dir.path());
        assert_eq!(written.bytes, 5096);
        let (first, last) = (written.first.expect("first"), written.last.expect("last"));
        // A coarse file-system clock may stamp a little before `before`.
        let slack = jiff::SignedDuration::from_millis(20);
        assert!(
            first >= before - slack && first <= after,
            "{first} not in {before}..{after}"
        );
        assert!(last <= after + slack, "{last} after {after}");
        assert!(
            last.duration_since(first) >= jiff::SignedDuration::from_millis(40),
            "the second file came 50 ms after the first: {first} .. {last}"
        );
    }

    #[test]
    fn text_files_look_like_their_kind_and_compress_while_media_does_not() {
        let csv = text(Kind::Csv, 1, "orders/orders-0001.csv", 64 * 1024);
        let csv = String::from_utf8(csv).expect("utf8");
        assert!(csv.starts_with("order_id,customer,sku,quantity,unit_price,created_at,status\n"));
        assert_eq!(csv.lines().nth(1).expect("row").split(',').count(), 7);
        let log = String::from_utf8(text(Kind::Log, 1, "logs/app-0001.log", 4096)).expect("utf8");
        assert!(log.contains(" orders: order "));
        let json = String::from_utf8(text(Kind::Json, 1, "c.json", 4096)).expect("utf8");
        let first: serde_json::Value =
            serde_json::from_str(json.lines().next().expect("line")).expect("a JSON document");
        assert!(first["city"].is_string());
        let compressed = zstd_ratio(csv.as_bytes());
        assert!(compressed > 2.0, "csv compresses {compressed}x");
        let mut media = vec![0u8; 64 * 1024];
        source(1, "media/blob-0001.bin").fill(&mut media);
        assert!(zstd_ratio(&media) < 1.05);
    }

    fn zstd_ratio(bytes: &[u8]) -> f64 {
        let out = zstd::encode_all(bytes, 1).expect("compress");
        bytes.len() as f64 / out.len() as f64
    }

    #[test]
    fn damage_removes_and_corrupts_files_that_compare_then_reports() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(dir.path(), 2 * MIB, 1, &mut |_| {}).expect("write");
        let before = checksum_tree(dir.path()).expect("sums");
        let done = damage(dir.path()).expect("damage");
        assert!(done.removed > 0 && done.corrupted > 0, "{done:?}");
        let after = compare(&before, &checksum_tree(dir.path()).expect("sums"));
        assert_eq!(after.missing.len(), done.removed);
        assert_eq!(after.changed.len(), done.corrupted);
        assert!(after.extra.is_empty());
        assert!(after.differences().contains("missing"));
        std::fs::write(dir.path().join("new.txt"), "x").expect("write");
        let with_extra = compare(&before, &checksum_tree(dir.path()).expect("sums"));
        assert_eq!(with_extra.extra, ["new.txt"]);
    }
}
