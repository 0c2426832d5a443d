//! Reading captured container output for `pods/log`: tailLines, sinceSeconds/sinceTime,
//! timestamps, limitBytes, previous, and follow until the container exits.

use super::process::done_path;
use crate::time::parse;
use bytes::Bytes;
use jiff::Timestamp;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::sync::mpsc;

/// `PodLogOptions`.
#[derive(Debug, Clone, Default)]
pub struct LogOptions {
    pub follow: bool,
    pub previous: bool,
    pub timestamps: bool,
    pub tail_lines: Option<usize>,
    pub since: Option<Timestamp>,
    pub limit_bytes: Option<usize>,
}

/// The runs of a container's log, oldest first.
pub fn runs(dir: &Path) -> Vec<(i64, PathBuf)> {
    let mut out: Vec<(i64, PathBuf)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let p = e.path();
            let n: i64 = p.file_stem()?.to_str()?.parse().ok()?;
            (p.extension()? == "log").then_some((n, p))
        })
        .collect();
    out.sort();
    out
}

/// One stored line: `<RFC3339Nano> <stream> <content>`; returns the time and the content.
fn split(line: &str) -> Option<(Timestamp, &str)> {
    let (ts, rest) = line.split_once(' ')?;
    let (_stream, content) = rest.split_once(' ')?;
    Some((parse(ts)?, content))
}

fn render(line: &str, opts: &LogOptions) -> Option<String> {
    let (ts, content) = split(line)?;
    if opts.since.is_some_and(|s| ts < s) {
        return None;
    }
    Some(if opts.timestamps {
        format!("{} {content}\n", line.split(' ').next().unwrap_or_default())
    } else {
        format!("{content}\n")
    })
}

/// Streams the log at `path` into a channel of chunks.
pub fn stream(path: PathBuf, opts: LogOptions) -> mpsc::Receiver<Bytes> {
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(async move {
        let Ok(mut file) = tokio::fs::File::open(&path).await else {
            return;
        };
        let mut buf = String::new();
        if file.read_to_string(&mut buf).await.is_err() {
            return;
        }
        let mut offset = buf.len() as u64;
        // Keep an unterminated last line for later.
        let mut pending = String::new();
        if !buf.ends_with('\n') {
            let cut = buf.rfind('\n').map(|i| i + 1).unwrap_or(0);
            pending = buf[cut..].to_string();
            buf.truncate(cut);
        }
        let mut lines: Vec<String> = buf.lines().filter_map(|l| render(l, &opts)).collect();
        if let Some(n) = opts.tail_lines {
            let skip = lines.len().saturating_sub(n);
            lines.drain(..skip);
        }
        let mut budget = opts.limit_bytes.unwrap_or(usize::MAX);
        let send = async |text: String, budget: &mut usize| -> bool {
            if *budget == 0 {
                return false;
            }
            let bytes = text.into_bytes();
            let take = bytes.len().min(*budget);
            *budget -= take;
            tx.send(Bytes::from(bytes[..take].to_vec())).await.is_ok() && *budget > 0
        };
        for l in lines {
            if !send(l, &mut budget).await {
                return;
            }
        }
        if !opts.follow {
            return;
        }
        let done = done_path(&path);
        loop {
            let finished = done.exists();
            let mut chunk = String::new();
            if file.seek(std::io::SeekFrom::Start(offset)).await.is_err()
                || file.read_to_string(&mut chunk).await.is_err()
            {
                return;
            }
            offset += chunk.len() as u64;
            pending.push_str(&chunk);
            let cut = pending.rfind('\n').map(|i| i + 1).unwrap_or(0);
            let complete: String = pending.drain(..cut).collect();
            for l in complete.lines() {
                if let Some(r) = render(l, &opts)
                    && !send(r, &mut budget).await
                {
                    return;
                }
            }
            if finished && chunk.is_empty() {
                return;
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                _ = tx.closed() => return,
            }
        }
    });
    rx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_render_with_or_without_timestamps_and_since_filters() {
        let line = "2026-11-22T01:05:36.123456789Z stdout hello world";
        let plain = LogOptions::default();
        assert_eq!(render(line, &plain).unwrap(), "hello world\n");
        let ts = LogOptions {
            timestamps: true,
            ..Default::default()
        };
        assert_eq!(
            render(line, &ts).unwrap(),
            "2026-11-22T01:05:36.123456789Z hello world\n"
        );
        let since = LogOptions {
            since: parse("2026-11-22T01:06:00Z"),
            ..Default::default()
        };
        assert!(render(line, &since).is_none());
    }
}
