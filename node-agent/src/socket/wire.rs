//! Storage-socket messages to and from the repository engine's types: list options, entries,
//! stat totals and compression names.
//!
//! `Entry.path` is the entry's absolute repository path (normalised, no leading `/`), like the
//! request paths; the client turns it back into the path as its user typed it.

use cairn_proto::datasafed::v1 as pb;
use cairn_repo::Compression;
use cairn_repo::plain::{Entry, ListOptions, SortBy, StatSummary};
use jiff::Timestamp;

use super::status::CallError;

/// The engine's list options for a `ListRequest`; `max_depth` 0 means unlimited.
pub fn list_options(request: &pb::ListRequest) -> Result<ListOptions, CallError> {
    Ok(ListOptions {
        dirs_only: request.dirs_only,
        files_only: request.files_only,
        recursive: request.recursive,
        max_depth: (request.max_depth > 0).then_some(request.max_depth as usize),
        sort_by: SortBy::parse(&request.sort_by)?,
        reverse: request.reverse,
        newer_than: time("newer_than", &request.newer_than)?,
        older_than: time("older_than", &request.older_than)?,
        name_glob: (!request.name_glob.is_empty()).then(|| request.name_glob.clone()),
    })
}

fn time(field: &'static str, text: &str) -> Result<Option<Timestamp>, CallError> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    text.trim()
        .parse::<Timestamp>()
        .map(Some)
        .map_err(|_| CallError::InvalidField {
            field,
            value: text.to_string(),
            reason: "expected an RFC 3339 time like 2024-01-02T03:04:05Z",
        })
}

/// A listed entry on the wire.
pub fn entry(entry: Entry) -> pb::Entry {
    pb::Entry {
        path: entry.path,
        is_dir: entry.is_dir,
        size: entry.size,
        modified: entry.modified.map(|t| t.to_string()).unwrap_or_default(),
    }
}

/// `stat` totals on the wire.
pub fn stat(summary: StatSummary) -> pb::StatResponse {
    pb::StatResponse {
        total_size: summary.total_size,
        entries: summary.entries,
        dirs: summary.dirs,
        files: summary.files,
    }
}

/// A datasafed compression name; empty means none.
pub fn compression(name: &str) -> Result<Option<Compression>, CallError> {
    if name.trim().is_empty() {
        return Ok(None);
    }
    Ok(Some(Compression::parse(name)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Code;

    #[test]
    fn an_empty_list_request_lists_one_level_sorted_by_path() {
        let options = list_options(&pb::ListRequest::default()).expect("options");
        assert_eq!(options.depth(), 1);
        assert_eq!(options.sort_by, SortBy::Path);
        assert!(options.newer_than.is_none() && options.name_glob.is_none());
    }

    #[test]
    fn every_list_field_reaches_the_engine() {
        let options = list_options(&pb::ListRequest {
            path: "ns/b1".into(),
            recursive: true,
            dirs_only: false,
            files_only: true,
            max_depth: 3,
            sort_by: "size".into(),
            reverse: true,
            newer_than: "2024-01-02T03:04:05Z".into(),
            older_than: "2025-01-02T03:04:05.5Z".into(),
            name_glob: "*.zst".into(),
        })
        .expect("options");
        assert!(options.recursive && options.files_only && options.reverse);
        assert_eq!(options.max_depth, Some(3));
        assert_eq!(options.sort_by, SortBy::Size);
        assert_eq!(
            options.newer_than.map(|t| t.as_second()),
            Some(1_704_164_645)
        );
        assert!(options.older_than.is_some());
        assert_eq!(options.name_glob.as_deref(), Some("*.zst"));
    }

    #[test]
    fn bad_times_and_sort_keys_are_invalid_arguments_naming_the_value() {
        let err = list_options(&pb::ListRequest {
            newer_than: "yesterday".into(),
            ..Default::default()
        })
        .expect_err("bad time");
        assert_eq!(err.code(), Code::InvalidArgument);
        assert!(
            err.to_string().contains("newer_than \"yesterday\""),
            "{err}"
        );
        let err = list_options(&pb::ListRequest {
            sort_by: "colour".into(),
            ..Default::default()
        })
        .expect_err("bad sort");
        assert_eq!(err.code(), Code::InvalidArgument);
        assert!(err.to_string().contains("\"colour\""), "{err}");
    }

    #[test]
    fn entry_times_round_trip_through_rfc_3339() {
        let modified = Timestamp::from_second(1_700_000_000)
            .ok()
            .and_then(|t| t.checked_add(jiff::SignedDuration::from_nanos(123)).ok());
        let wire = entry(Entry {
            path: "ns/b1/x".into(),
            name: "x".into(),
            is_dir: false,
            size: 9,
            modified,
        });
        assert_eq!(wire.modified.parse::<Timestamp>().ok(), modified);
        let dir = entry(Entry {
            path: "ns/b1/d".into(),
            name: "d".into(),
            is_dir: true,
            size: 0,
            modified: None,
        });
        assert_eq!(dir.modified, "");
    }

    #[test]
    fn compression_names_are_parsed_by_the_engine() {
        assert_eq!(compression("").expect("none"), None);
        assert_eq!(
            compression("zstd-fastest").expect("zstd"),
            Some(Compression::Zstd { level: 1 })
        );
        let err = compression("snappy").expect_err("unknown");
        assert_eq!(err.code(), Code::InvalidArgument);
        assert!(err.to_string().contains("\"snappy\""), "{err}");
    }
}
