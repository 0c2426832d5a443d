//! `list` and `stat` as pure functions over entries: filters, sorting, totals
//! (datasafed `list [-d|-f] [-r] [--max-depth] [-s] [--reverse] [--newer-than] [--older-than]
//! [--name]`).

use std::cmp::Ordering;

use globset::{Glob, GlobMatcher};
use jiff::Timestamp;
use serde::Serialize;

use crate::{Error, Result};

/// One file or directory of a listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    /// The path as shown to the user (the listed path as typed, joined with the entry's).
    pub path: String,
    /// The last path segment.
    pub name: String,
    /// Whether this is a directory.
    #[serde(rename = "isDir")]
    pub is_dir: bool,
    /// Size in bytes (0 for directories).
    pub size: u64,
    /// Modification time, when the store knows it (object stores have no directory times).
    #[serde(rename = "modTime", skip_serializing_if = "Option::is_none")]
    pub modified: Option<Timestamp>,
}

/// The sort key of a listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortBy {
    /// By path (byte order).
    #[default]
    Path,
    /// By size, then path.
    Size,
    /// By modification time, then path.
    Mtime,
}

impl SortBy {
    /// Parses `path`, `size` or `mtime` (empty = path).
    pub fn parse(text: &str) -> Result<SortBy> {
        match text.trim() {
            "" | "path" | "name" => Ok(SortBy::Path),
            "size" => Ok(SortBy::Size),
            "mtime" | "time" => Ok(SortBy::Mtime),
            other => Err(Error::invalid(format!(
                "sort key {other:?} is not known (expected path, size or mtime)"
            ))),
        }
    }
}

/// What to list.
#[derive(Debug, Clone, Default)]
pub struct ListOptions {
    /// Only directories.
    pub dirs_only: bool,
    /// Only files.
    pub files_only: bool,
    /// Descend into sub-directories.
    pub recursive: bool,
    /// Maximum depth (1 = the directory's own entries); `None` = unlimited when recursive.
    pub max_depth: Option<usize>,
    /// Sort key.
    pub sort_by: SortBy,
    /// Reverse the order.
    pub reverse: bool,
    /// Only entries modified after this time.
    pub newer_than: Option<Timestamp>,
    /// Only entries modified before this time.
    pub older_than: Option<Timestamp>,
    /// Only entries whose name matches this glob.
    pub name_glob: Option<String>,
}

impl ListOptions {
    /// How deep a walk must go: 1 without recursion, `max_depth` or unlimited with it.
    pub fn depth(&self) -> usize {
        match (self.recursive, self.max_depth) {
            (_, Some(depth)) => depth.max(1),
            (true, None) => usize::MAX,
            (false, None) => 1,
        }
    }

    /// Compiles the filters once.
    pub fn filter(&self) -> Result<EntryFilter> {
        let glob = match &self.name_glob {
            Some(pattern) if !pattern.is_empty() => Some(
                Glob::new(pattern)
                    .map_err(|e| {
                        Error::invalid(format!("name pattern {pattern:?} is not a valid glob"))
                            .with_source(e)
                    })?
                    .compile_matcher(),
            ),
            _ => None,
        };
        Ok(EntryFilter {
            options: self.clone(),
            glob,
        })
    }
}

/// [`ListOptions`] with the glob compiled.
#[derive(Debug, Clone)]
pub struct EntryFilter {
    options: ListOptions,
    glob: Option<GlobMatcher>,
}

impl EntryFilter {
    /// Whether an entry passes every filter.
    pub fn accepts(&self, entry: &Entry) -> bool {
        let o = &self.options;
        if (o.dirs_only && !entry.is_dir) || (o.files_only && entry.is_dir) {
            return false;
        }
        if let Some(glob) = &self.glob
            && !glob.is_match(&entry.name)
        {
            return false;
        }
        // apecloud/datasafed compares whole unix seconds (`MTime().Unix()`): a file modified
        // at 20.5 s is not newer than 20.
        if let Some(newer) = o.newer_than
            && entry
                .modified
                .is_none_or(|m| m.as_second() <= newer.as_second())
        {
            return false;
        }
        if let Some(older) = o.older_than
            && entry
                .modified
                .is_none_or(|m| m.as_second() >= older.as_second())
        {
            return false;
        }
        true
    }

    /// Filters and sorts.
    pub fn apply(&self, entries: Vec<Entry>) -> Vec<Entry> {
        let mut kept: Vec<Entry> = entries.into_iter().filter(|e| self.accepts(e)).collect();
        sort(&mut kept, self.options.sort_by, self.options.reverse);
        kept
    }
}

/// Sorts entries by a key (ties broken by path), optionally reversed.
pub fn sort(entries: &mut [Entry], by: SortBy, reverse: bool) {
    entries.sort_by(|a, b| {
        let primary = match by {
            SortBy::Path => Ordering::Equal,
            SortBy::Size => a.size.cmp(&b.size),
            SortBy::Mtime => a.modified.cmp(&b.modified),
        };
        let order = primary.then_with(|| a.path.cmp(&b.path));
        if reverse { order.reverse() } else { order }
    });
}

/// Totals of `stat`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct StatSummary {
    /// Sum of file sizes.
    #[serde(rename = "totalSize")]
    pub total_size: u64,
    /// Files plus directories.
    pub entries: u64,
    /// Directories.
    pub dirs: u64,
    /// Files.
    pub files: u64,
}

impl StatSummary {
    /// Adds one entry.
    pub fn add(&mut self, entry: &Entry) {
        self.entries += 1;
        if entry.is_dir {
            self.dirs += 1;
        } else {
            self.files += 1;
            self.total_size += entry.size;
        }
    }

    /// The text `datasafed stat` prints (scripts parse it with `grep TotalSize | awk`).
    pub fn to_text(&self) -> String {
        format!(
            "TotalSize: {}\nEntries: {}\nDirs: {}\nFiles: {}\n",
            self.total_size, self.entries, self.dirs, self.files
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str, is_dir: bool, size: u64, secs: i64) -> Entry {
        Entry {
            path: path.to_string(),
            name: path.rsplit('/').next().unwrap_or(path).to_string(),
            is_dir,
            size,
            modified: Timestamp::from_second(secs).ok(),
        }
    }

    fn sample() -> Vec<Entry> {
        vec![
            entry("b.tar.zst", false, 300, 30),
            entry("a", true, 0, 10),
            entry("a/x.log", false, 10, 20),
            entry("c.json", false, 5, 40),
        ]
    }

    fn paths(entries: &[Entry]) -> Vec<&str> {
        entries.iter().map(|e| e.path.as_str()).collect()
    }

    #[test]
    fn default_listing_is_sorted_by_path() {
        let out = ListOptions::default()
            .filter()
            .expect("filter")
            .apply(sample());
        assert_eq!(paths(&out), ["a", "a/x.log", "b.tar.zst", "c.json"]);
    }

    #[test]
    fn files_only_dirs_only_and_name_glob_filter() {
        let files = ListOptions {
            files_only: true,
            ..Default::default()
        };
        assert_eq!(
            paths(&files.filter().expect("f").apply(sample())),
            ["a/x.log", "b.tar.zst", "c.json"]
        );
        let dirs = ListOptions {
            dirs_only: true,
            ..Default::default()
        };
        assert_eq!(paths(&dirs.filter().expect("f").apply(sample())), ["a"]);
        let glob = ListOptions {
            name_glob: Some("*.zst".into()),
            ..Default::default()
        };
        assert_eq!(
            paths(&glob.filter().expect("f").apply(sample())),
            ["b.tar.zst"]
        );
    }

    #[test]
    fn sorting_by_size_and_mtime_with_reverse() {
        let by_size = ListOptions {
            sort_by: SortBy::Size,
            reverse: true,
            ..Default::default()
        };
        assert_eq!(
            paths(&by_size.filter().expect("f").apply(sample())),
            ["b.tar.zst", "a/x.log", "c.json", "a"]
        );
        let by_time = ListOptions {
            sort_by: SortBy::Mtime,
            ..Default::default()
        };
        assert_eq!(
            paths(&by_time.filter().expect("f").apply(sample())),
            ["a", "a/x.log", "b.tar.zst", "c.json"]
        );
    }

    #[test]
    fn time_filters_are_exclusive_and_drop_entries_without_time() {
        let mut entries = sample();
        entries.push(Entry {
            modified: None,
            ..entry("d", true, 0, 0)
        });
        let o = ListOptions {
            newer_than: Timestamp::from_second(20).ok(),
            older_than: Timestamp::from_second(40).ok(),
            ..Default::default()
        };
        assert_eq!(paths(&o.filter().expect("f").apply(entries)), ["b.tar.zst"]);
    }

    #[test]
    fn time_filters_compare_whole_seconds_as_datasafed_does() {
        let at = |nanos: i64| Entry {
            modified: Timestamp::from_nanosecond(i128::from(nanos)).ok(),
            ..entry("f", false, 1, 0)
        };
        let newer = ListOptions {
            newer_than: Timestamp::from_second(20).ok(),
            ..Default::default()
        }
        .filter()
        .expect("f");
        assert!(!newer.accepts(&at(20_500_000_000)));
        assert!(newer.accepts(&at(21_000_000_000)));
        let older = ListOptions {
            older_than: Timestamp::from_second(20).ok(),
            ..Default::default()
        }
        .filter()
        .expect("f");
        assert!(older.accepts(&at(19_900_000_000)));
        assert!(!older.accepts(&at(20_000_000_000)));
        assert!(!older.accepts(&at(20_500_000_000)));
    }

    #[test]
    fn depth_follows_recursion_flags() {
        assert_eq!(ListOptions::default().depth(), 1);
        assert_eq!(
            ListOptions {
                recursive: true,
                ..Default::default()
            }
            .depth(),
            usize::MAX
        );
        assert_eq!(
            ListOptions {
                max_depth: Some(2),
                ..Default::default()
            }
            .depth(),
            2
        );
    }

    #[test]
    fn bad_glob_and_sort_key_are_named() {
        let err = ListOptions {
            name_glob: Some("a[".into()),
            ..Default::default()
        }
        .filter()
        .expect_err("bad");
        assert!(err.to_string().contains("\"a[\""), "{err}");
        assert!(
            SortBy::parse("color")
                .expect_err("bad")
                .to_string()
                .contains("\"color\"")
        );
    }

    #[test]
    fn stat_text_is_what_scripts_grep() {
        let mut summary = StatSummary::default();
        for e in sample() {
            summary.add(&e);
        }
        assert_eq!(
            summary.to_text(),
            "TotalSize: 315\nEntries: 4\nDirs: 1\nFiles: 3\n"
        );
        let text = summary.to_text();
        let total: Vec<&str> = text
            .lines()
            .filter(|l| l.contains("TotalSize"))
            .flat_map(|l| l.split_whitespace().nth(1))
            .collect();
        assert_eq!(total, ["315"]);
    }
}
