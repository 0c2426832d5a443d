//! How `list` and `stat` print: `short` (one path per line, directories end with `/`),
//! `long` (type, size, mtime, path), `json`; stat text lines parsed by scripts.

use anyhow::bail;
use cairn_repo::plain::{Entry, StatSummary};
use jiff::Timestamp;

/// The `-o` format of `list`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListFormat {
    /// Paths only.
    Short,
    /// `d|-  size  mtime  path`.
    Long,
    /// A JSON array.
    Json,
}

impl ListFormat {
    /// Parses `short`, `long` or `json`.
    pub fn parse(text: &str) -> anyhow::Result<ListFormat> {
        match text {
            "short" | "" => Ok(ListFormat::Short),
            "long" => Ok(ListFormat::Long),
            "json" => Ok(ListFormat::Json),
            other => bail!("output format {other:?} is not known (expected short, long or json)"),
        }
    }
}

/// Renders a listing.
pub fn render_list(entries: &[Entry], format: ListFormat) -> anyhow::Result<String> {
    Ok(match format {
        ListFormat::Short => entries
            .iter()
            .map(|e| {
                if e.is_dir {
                    format!("{}/\n", e.path)
                } else {
                    format!("{}\n", e.path)
                }
            })
            .collect(),
        ListFormat::Long => entries
            .iter()
            .map(|e| {
                let kind = if e.is_dir { 'd' } else { '-' };
                let time = e
                    .modified
                    .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
                    .unwrap_or_else(|| "-".repeat(20));
                let suffix = if e.is_dir { "/" } else { "" };
                format!("{kind} {:>14} {time} {}{suffix}\n", e.size, e.path)
            })
            .collect(),
        ListFormat::Json => format!("{}\n", serde_json::to_string(entries)?),
    })
}

/// Renders `stat`.
pub fn render_stat(summary: &StatSummary, json: bool) -> anyhow::Result<String> {
    if json {
        Ok(format!("{}\n", serde_json::to_string(summary)?))
    } else {
        Ok(summary.to_text())
    }
}

/// Parses `--newer-than`/`--older-than`: RFC 3339, or unix seconds.
pub fn parse_time(flag: &str, text: &str) -> anyhow::Result<Timestamp> {
    if let Ok(seconds) = text.trim().parse::<i64>() {
        return Ok(Timestamp::from_second(seconds)?);
    }
    text.trim().parse::<Timestamp>().map_err(|e| {
        anyhow::anyhow!("{flag} {text:?} is not a time (expected RFC 3339 like 2024-01-02T03:04:05Z, or unix seconds): {e}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries() -> Vec<Entry> {
        vec![
            Entry {
                path: "b1/data.tar.zst".into(),
                name: "data.tar.zst".into(),
                is_dir: false,
                size: 1234,
                modified: Timestamp::from_second(1_700_000_000).ok(),
            },
            Entry {
                path: "b1/sub".into(),
                name: "sub".into(),
                is_dir: true,
                size: 0,
                modified: None,
            },
        ]
    }

    #[test]
    fn short_format_marks_directories_with_a_slash() {
        assert_eq!(
            render_list(&entries(), ListFormat::Short).expect("render"),
            "b1/data.tar.zst\nb1/sub/\n"
        );
    }

    #[test]
    fn long_format_has_type_size_time_and_path() {
        let text = render_list(&entries(), ListFormat::Long).expect("render");
        let first = text.lines().next().unwrap_or_default();
        assert_eq!(
            first,
            "-           1234 2023-11-14T22:13:20Z b1/data.tar.zst"
        );
    }

    #[test]
    fn json_format_is_an_array_of_objects() {
        let text = render_list(&entries(), ListFormat::Json).expect("render");
        let value: serde_json::Value = serde_json::from_str(&text).expect("json");
        assert_eq!(value[0]["size"], 1234);
        assert_eq!(value[1]["isDir"], true);
    }

    #[test]
    fn stat_json_and_time_parsing() {
        let summary = StatSummary {
            total_size: 5,
            entries: 2,
            dirs: 1,
            files: 1,
        };
        assert_eq!(
            render_stat(&summary, true).expect("json"),
            "{\"totalSize\":5,\"entries\":2,\"dirs\":1,\"files\":1}\n"
        );
        assert_eq!(
            parse_time("--newer-than", "60").expect("secs").as_second(),
            60
        );
        assert!(parse_time("--newer-than", "2024-01-02T03:04:05Z").is_ok());
        let err = parse_time("--older-than", "yesterday").expect_err("bad");
        assert!(
            err.to_string().contains("--older-than \"yesterday\""),
            "{err}"
        );
    }
}
