//! How `list` and `stat` print, byte for byte as apecloud/datasafed prints them (scripts parse
//! these with awk, jq and perl): `short` (one path per line, directories end with `/`), `long`
//! (`mtime<TAB>size<TAB>path`), `json` (datasafed's array layout with the keys `path`, `size`,
//! `mtime`, `mtime_str`, `is_dir`); `stat` as `TotalSize: N` lines or a JSON object with the
//! keys in Go's (sorted) order.

use anyhow::bail;
use cairn_repo::plain::{Entry, StatSummary};
use jiff::Timestamp;
use serde::Serialize;

/// The `-o` format of `list`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListFormat {
    /// Paths only.
    Short,
    /// `mtime<TAB>size<TAB>path`.
    Long,
    /// A JSON array.
    Json,
}

/// The names `-o/--output-format` accepts, in datasafed's order.
pub const LIST_FORMATS: [&str; 3] = ["short", "long", "json"];

impl ListFormat {
    /// Parses `short`, `long` or `json`; the error is datasafed's.
    pub fn parse(text: &str) -> anyhow::Result<ListFormat> {
        match text {
            "short" => Ok(ListFormat::Short),
            "long" => Ok(ListFormat::Long),
            "json" => Ok(ListFormat::Json),
            other => bail!(
                "invalid argument {other:?} for \"-o, --output-format\" flag: {other} is not included in {}",
                LIST_FORMATS.join(",")
            ),
        }
    }
}

/// One entry of `list -o json`, with datasafed's keys in datasafed's order.
#[derive(Serialize)]
struct JsonEntry<'a> {
    path: &'a str,
    size: u64,
    mtime: i64,
    mtime_str: String,
    is_dir: bool,
}

/// The time shown for an entry: its own, or for a directory without one (object stores have
/// no directory times) the Unix epoch, so that two listings of the same tree print the same
/// bytes. (rclone under datasafed shows the time of the listing there; no script reads it.)
fn shown_time(entry: &Entry) -> Timestamp {
    entry.modified.unwrap_or(Timestamp::UNIX_EPOCH)
}

/// Go's `time.RFC3339` in UTC: seconds, no fraction, `Z`.
fn rfc3339(time: Timestamp) -> String {
    time.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// The path with a `/` appended to directories (short and long formats).
fn slashed(entry: &Entry) -> String {
    if entry.is_dir && !entry.path.ends_with('/') {
        format!("{}/", entry.path)
    } else {
        entry.path.clone()
    }
}

/// JSON text with Go's `encoding/json` HTML escaping (`<`, `>`, `&`, U+2028, U+2029), which
/// only ever occur inside strings.
fn go_escaped(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out
}

/// One entry as datasafed's JSON printer writes it: Go's `json.Encoder` with prefix and indent
/// of two spaces (the first line unprefixed, the closing brace indented by the prefix).
fn json_item(entry: &Entry) -> anyhow::Result<String> {
    let time = shown_time(entry);
    let item = JsonEntry {
        path: &entry.path,
        size: entry.size,
        mtime: time.as_second(),
        mtime_str: rfc3339(time),
        is_dir: entry.is_dir,
    };
    let pretty = serde_json::to_string_pretty(&item)?;
    Ok(go_escaped(&pretty).replace('\n', "\n  "))
}

/// Renders a listing.
pub fn render_list(entries: &[Entry], format: ListFormat) -> anyhow::Result<String> {
    Ok(match format {
        ListFormat::Short => entries
            .iter()
            .map(|e| format!("{}\n", slashed(e)))
            .collect(),
        ListFormat::Long => entries
            .iter()
            .map(|e| format!("{}\t{}\t{}\n", rfc3339(shown_time(e)), e.size, slashed(e)))
            .collect(),
        ListFormat::Json => {
            let mut out = String::from("[");
            for (i, entry) in entries.iter().enumerate() {
                out.push_str(if i == 0 { "\n" } else { "  ,\n" });
                out.push_str("  ");
                out.push_str(&json_item(entry)?);
                out.push('\n');
            }
            out.push_str("]\n");
            out
        }
    })
}

/// `stat --json`: what datasafed marshals from a Go map, so the keys are sorted.
#[derive(Serialize)]
struct JsonStat {
    dirs: u64,
    entries: u64,
    files: u64,
    total_size: u64,
}

/// Renders `stat`.
pub fn render_stat(summary: &StatSummary, json: bool) -> anyhow::Result<String> {
    if json {
        let stat = JsonStat {
            dirs: summary.dirs,
            entries: summary.entries,
            files: summary.files,
            total_size: summary.total_size,
        };
        Ok(format!("{}\n", serde_json::to_string(&stat)?))
    } else {
        Ok(summary.to_text())
    }
}

/// Parses `--newer-than`/`--older-than`: unix seconds (datasafed's form), or RFC 3339.
/// `None`: no filter, as datasafed reads 0 or less (its flags' default is 0), e.g. a script's
/// `--older-than $((now - DP_TTL_SECONDS))` with an unset TTL.
pub fn parse_time(flag: &str, text: &str) -> anyhow::Result<Option<Timestamp>> {
    if let Ok(seconds) = text.trim().parse::<i64>() {
        return Ok((seconds > 0)
            .then(|| Timestamp::from_second(seconds))
            .transpose()?);
    }
    text.trim().parse::<Timestamp>().map(Some).map_err(|e| {
        anyhow::anyhow!("{flag} {text:?} is not a time (expected unix seconds, or RFC 3339 like 2024-01-02T03:04:05Z): {e}")
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
    fn long_format_is_datasafeds_tab_separated_mtime_size_path() {
        let text = render_list(&entries(), ListFormat::Long).expect("render");
        let first = text.lines().next().unwrap_or_default();
        assert_eq!(first, "2023-11-14T22:13:20Z\t1234\tb1/data.tar.zst");
        // `datasafed list FILE -o long | awk '{print $2}'` is the size (datasafed's own example).
        assert_eq!(first.split_whitespace().nth(1), Some("1234"));
        let second = text.lines().nth(1).unwrap_or_default();
        assert!(second.ends_with("\t0\tb1/sub/"), "{second:?}");
    }

    #[test]
    fn json_format_is_datasafeds_layout_and_keys() {
        let text = render_list(&entries()[..1], ListFormat::Json).expect("render");
        assert_eq!(
            text,
            "[\n  {\n    \"path\": \"b1/data.tar.zst\",\n    \"size\": 1234,\n    \"mtime\": 1700000000,\n    \"mtime_str\": \"2023-11-14T22:13:20Z\",\n    \"is_dir\": false\n  }\n]\n"
        );
        let two = render_list(&entries(), ListFormat::Json).expect("render");
        assert!(two.contains("  }\n  ,\n  {\n"), "{two}");
        let value: serde_json::Value = serde_json::from_str(&two).expect("json");
        assert_eq!(value[1]["is_dir"], true);
        assert_eq!(
            value[1]["path"], "b1/sub",
            "no slash on directories in json"
        );
        // A directory without a time shows the epoch: the same bytes on every listing.
        assert_eq!(value[1]["mtime"], 0);
        assert_eq!(value[1]["mtime_str"], "1970-01-01T00:00:00Z");
        assert_eq!(render_list(&[], ListFormat::Json).expect("render"), "[]\n");
    }

    #[test]
    fn json_escapes_html_characters_like_go() {
        let mut entry = entries().remove(0);
        entry.path = "a<b>&c".into();
        let text = render_list(&[entry], ListFormat::Json).expect("render");
        assert!(text.contains("\"a\\u003cb\\u003e\\u0026c\""), "{text}");
    }

    #[test]
    fn output_format_names_are_datasafeds() {
        assert_eq!(ListFormat::parse("long").expect("long"), ListFormat::Long);
        let err = ListFormat::parse("yaml").expect_err("unknown");
        assert_eq!(
            err.to_string(),
            "invalid argument \"yaml\" for \"-o, --output-format\" flag: yaml is not included in short,long,json"
        );
    }

    #[test]
    fn stat_json_has_datasafeds_keys_in_its_order() {
        let summary = StatSummary {
            total_size: 5,
            entries: 2,
            dirs: 1,
            files: 1,
        };
        assert_eq!(
            render_stat(&summary, true).expect("json"),
            "{\"dirs\":1,\"entries\":2,\"files\":1,\"total_size\":5}\n"
        );
        assert_eq!(
            render_stat(&summary, false).expect("text"),
            "TotalSize: 5\nEntries: 2\nDirs: 1\nFiles: 1\n"
        );
    }

    #[test]
    fn time_parsing() {
        assert_eq!(
            parse_time("--newer-than", "60")
                .expect("secs")
                .map(|t| t.as_second()),
            Some(60)
        );
        // datasafed's 0 (its default) and below filter nothing.
        assert_eq!(parse_time("--older-than", "0").expect("zero"), None);
        assert_eq!(parse_time("--older-than", "-5").expect("negative"), None);
        assert!(parse_time("--newer-than", "2024-01-02T03:04:05Z").is_ok());
        let err = parse_time("--older-than", "yesterday").expect_err("bad");
        assert!(
            err.to_string().contains("--older-than \"yesterday\""),
            "{err}"
        );
    }
}
