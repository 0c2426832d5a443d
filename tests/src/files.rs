//! Directory trees as a test compares them: every file's bytes, every symlink's target and every
//! directory, by relative path; and a readable list of differences.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context as _;

/// One entry of a tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    Dir,
    File(Vec<u8>),
    Symlink(PathBuf),
}

/// Every entry under `root` (not `root` itself), by path relative to it.
pub fn tree(root: &Path) -> anyhow::Result<BTreeMap<String, Entry>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries =
            std::fs::read_dir(&dir).with_context(|| format!("listing {}", dir.display()))?;
        for entry in entries {
            let path = entry?.path();
            let relative = path
                .strip_prefix(root)
                .with_context(|| format!("{} is outside {}", path.display(), root.display()))?
                .to_string_lossy()
                .into_owned();
            let meta = std::fs::symlink_metadata(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            let entry = if meta.file_type().is_symlink() {
                Entry::Symlink(std::fs::read_link(&path)?)
            } else if meta.is_dir() {
                stack.push(path.clone());
                Entry::Dir
            } else {
                Entry::File(
                    std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?,
                )
            };
            out.insert(relative, entry);
        }
    }
    Ok(out)
}

/// The differences between two trees, one line each (empty when they are equal).
pub fn differences(
    expected: &BTreeMap<String, Entry>,
    actual: &BTreeMap<String, Entry>,
) -> Vec<String> {
    let mut out = Vec::new();
    for (path, want) in expected {
        match actual.get(path) {
            None => out.push(format!("{path}: missing")),
            Some(got) if got != want => out.push(format!(
                "{path}: expected {}, found {}",
                describe(want),
                describe(got)
            )),
            Some(_) => {}
        }
    }
    for (path, got) in actual {
        if !expected.contains_key(path) {
            out.push(format!("{path}: unexpected {}", describe(got)));
        }
    }
    out
}

/// Total bytes of the files of a tree.
pub fn file_bytes(tree: &BTreeMap<String, Entry>) -> usize {
    tree.values()
        .map(|e| match e {
            Entry::File(bytes) => bytes.len(),
            _ => 0,
        })
        .sum()
}

fn describe(entry: &Entry) -> String {
    match entry {
        Entry::Dir => "a directory".into(),
        Entry::File(bytes) => format!(
            "a file of {} bytes (checksum {:08x})",
            bytes.len(),
            checksum(bytes)
        ),
        Entry::Symlink(target) => format!("a symlink to {}", target.display()),
    }
}

/// FNV-1a, only to tell two differing files apart in a message.
fn checksum(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5u32, |hash, b| {
        (hash ^ u32::from(*b)).wrapping_mul(0x0100_0193)
    })
}

/// Every file under `root` whose bytes contain `needle`, as paths.
pub fn files_containing(root: &Path, needle: &[u8]) -> anyhow::Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    for (relative, entry) in tree(root)? {
        if let Entry::File(bytes) = entry
            && contains(&bytes, needle)
        {
            found.push(root.join(relative));
        }
    }
    Ok(found)
}

/// Whether `haystack` contains `needle`.
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_trees_have_no_differences_and_changes_are_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("a/b")).expect("mkdir");
        std::fs::write(dir.path().join("a/b/f"), b"one").expect("write");
        std::os::unix::fs::symlink("b/f", dir.path().join("a/link")).expect("symlink");
        let before = tree(dir.path()).expect("tree");
        assert!(differences(&before, &before).is_empty());
        std::fs::write(dir.path().join("a/b/f"), b"two").expect("write");
        std::fs::write(dir.path().join("new"), b"").expect("write");
        let after = tree(dir.path()).expect("tree");
        let diff = differences(&before, &after);
        assert_eq!(diff.len(), 2, "{diff:?}");
        assert!(
            diff[0].starts_with("a/b/f: expected a file of 3 bytes"),
            "{diff:?}"
        );
        assert!(
            diff[1].starts_with("new: unexpected a file of 0 bytes"),
            "{diff:?}"
        );
        assert_eq!(before.get("a/link"), Some(&Entry::Symlink("b/f".into())));
    }

    #[test]
    fn contains_finds_a_needle_anywhere_and_never_an_empty_one() {
        assert!(contains(b"xxsecretxx", b"secret"));
        assert!(!contains(b"xxsecrexx", b"secret"));
        assert!(!contains(b"abc", b""));
    }
}
