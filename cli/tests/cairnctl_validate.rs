//! `cairnctl validate` and `cairnctl crds`, run as a user runs them, on the API crate's manifest corpus.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn corpus(sub: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../crates/api/tests/corpus")
        .join(sub)
}

fn cairnctl(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_cairnctl"))
        .args(args)
        .current_dir(corpus(""))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cairnctl starts");
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(text.as_bytes())
            .expect("stdin written");
    }
    drop(child.stdin.take());
    child.wait_with_output().expect("cairnctl finishes")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn the_valid_corpus_passes_with_exit_code_zero() {
    let out = cairnctl(&["validate", "-f", "valid"], None);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout(&out), "18 objects, 0 errors, 0 warnings\n");
}

#[test]
fn every_invalid_file_fails_with_its_expected_lines() {
    for entry in std::fs::read_dir(corpus("invalid")).expect("corpus") {
        let path = entry.expect("entry").path();
        let file = format!(
            "invalid/{}",
            path.file_name().expect("name").to_string_lossy()
        );
        let text = std::fs::read_to_string(&path).expect("readable");
        let out = cairnctl(&["validate", "-f", &file], None);
        assert_eq!(out.status.code(), Some(1), "{file}: {}", stdout(&out));
        let lines = stdout(&out);
        for want in text.lines().filter_map(|l| l.strip_prefix("# expect: ")) {
            let found = lines.lines().any(|l| {
                l.strip_prefix(&format!("{file}: "))
                    .and_then(|rest| rest.split_once(": "))
                    .is_some_and(|(object, problem)| {
                        object.contains('/') && problem.starts_with(want)
                    })
            });
            assert!(found, "{file}: no line for {want:?} in:\n{lines}");
        }
        let summary = lines.lines().last().unwrap_or_default();
        assert!(
            summary.ends_with(" warnings") && summary.contains(" errors, "),
            "{file}: summary {summary:?}"
        );
    }
}

#[test]
fn the_documented_example_line_is_printed_exactly() {
    let out = cairnctl(
        &["validate", "-f", "invalid/backup-retention-unit.yaml"],
        None,
    );
    assert_eq!(
        stdout(&out),
        "invalid/backup-retention-unit.yaml: Backup/b1: spec.retentionPeriod: invalid retention period \"10x\": unknown unit \"x\"\n1 objects, 1 errors, 0 warnings\n"
    );
}

#[test]
fn json_output_lists_problems_and_the_summary() {
    let out = cairnctl(
        &["validate", "-f", "invalid/policy-targets.yaml", "--json"],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(report["summary"]["objects"], 1);
    assert_eq!(report["summary"]["errors"], 4);
    assert_eq!(report["summary"]["warnings"], 0);
    let first = &report["problems"][0];
    assert_eq!(first["file"], "invalid/policy-targets.yaml");
    assert_eq!(first["kind"], "BackupPolicy");
    assert_eq!(first["name"], "p-targets");
    assert_eq!(first["path"], "spec.targets");
    assert_eq!(first["severity"], "error");
    assert!(
        first["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("either spec.target or spec.targets"))
    );
}

#[test]
fn stdin_is_read_with_a_dash_and_unknown_fields_can_be_downgraded() {
    let doc = "apiVersion: dataprotection.kubeblocks.io/v1alpha1\nkind: BackupRepo\nmetadata:\n  name: r\nspec:\n  storageProviderRef: s3\n  pvReclaimPolicy: Retain\n  colour: blue\n";
    let strict = cairnctl(&["validate", "-f", "-"], Some(doc));
    assert_eq!(strict.status.code(), Some(1));
    assert_eq!(
        stdout(&strict),
        "<stdin>: BackupRepo/r: spec.colour: unknown field \"spec.colour\"\n1 objects, 1 errors, 0 warnings\n"
    );
    let lenient = cairnctl(
        &["validate", "-f", "-", "--allow-unknown-fields"],
        Some(doc),
    );
    assert_eq!(lenient.status.code(), Some(0));
    assert_eq!(
        stdout(&lenient),
        "<stdin>: BackupRepo/r: spec.colour: warning: unknown field \"spec.colour\"\n1 objects, 0 errors, 1 warnings\n"
    );
}

#[test]
fn other_kinds_are_skipped_and_syntax_errors_name_the_line() {
    let other = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n";
    let out = cairnctl(&["validate", "-f", "-"], Some(other));
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        stdout(&out),
        "<stdin>: ConfigMap/settings: skipped: not a kind of this API (v1)\n0 objects, 0 errors, 0 warnings\n"
    );
    let broken = "apiVersion: v1\nkind: ConfigMap\nmetadata: [\n  name: x\n";
    let out = cairnctl(&["validate", "-f", "-"], Some(broken));
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(text.starts_with("<stdin>: syntax error at line "), "{text}");
}

#[test]
fn timestamps_stay_strings_and_redefined_anchors_take_the_last_definition() {
    let doc = "apiVersion: dataprotection.kubeblocks.io/v1alpha1\nkind: Restore\nmetadata:\n  name: r\nspec:\n  backup:\n    name: &n first\n    namespace: &n default\n  restoreTime: 2024-05-01T18:03:00Z\n  serviceAccountName: *n\n";
    let out = cairnctl(&["validate", "-f", "-"], Some(doc));
    assert_eq!(stdout(&out), "1 objects, 0 errors, 0 warnings\n");
}

#[test]
fn crds_prints_every_crd_and_writes_the_committed_files() {
    let out = cairnctl(&["crds"], None);
    assert_eq!(out.status.code(), Some(0));
    let text = stdout(&out);
    assert_eq!(text.matches("kind: CustomResourceDefinition").count(), 10);
    let dir = std::env::temp_dir().join(format!("cairn-crds-{}", std::process::id()));
    let out = cairnctl(&["crds", "--dir", dir.to_str().expect("utf-8")], None);
    assert_eq!(out.status.code(), Some(0));
    let committed = Path::new(env!("CARGO_MANIFEST_DIR")).join("../charts/cairn/crds");
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).expect("written") {
        let path = entry.expect("entry").path();
        let name = path.file_name().expect("name");
        assert_eq!(
            std::fs::read_to_string(&path).ok(),
            std::fs::read_to_string(committed.join(name)).ok(),
            "{name:?}"
        );
        count += 1;
    }
    assert_eq!(count, 10);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A temporary file with `text`, named `name`, removed when dropped.
struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str, text: &str) -> TempFile {
        let dir = std::env::temp_dir().join(format!(
            "cairn-validate-{}-{}",
            std::process::id(),
            name.replace('.', "-")
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join(name);
        std::fs::write(&path, text).expect("written");
        TempFile(path)
    }

    fn arg(&self) -> &str {
        self.0.to_str().expect("utf-8")
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(dir) = self.0.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn repo(name: &str) -> String {
    format!(
        "apiVersion: dataprotection.kubeblocks.io/v1alpha1\nkind: BackupRepo\nmetadata:\n  name: {name}\nspec:\n  storageProviderRef: s3\n  pvReclaimPolicy: Retain\n"
    )
}

#[test]
fn files_of_many_documents_and_large_documents_the_api_server_accepts_are_read() {
    // 1,500 documents in one file: kubectl apply -f has no document limit.
    let many: Vec<String> = (0..1500).map(|i| repo(&format!("r{i}"))).collect();
    let out = cairnctl(&["validate", "-f", "-"], Some(&many.join("---\n")));
    assert_eq!(
        (out.status.code(), stdout(&out).as_str()),
        (Some(0), "1500 objects, 0 errors, 0 warnings\n")
    );
    // One ConfigMap of 250,000 keys (2.6 MB, 500,000 nodes): under the API server's 3 MiB.
    let mut big = String::from("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: big\ndata:\n");
    for i in 0..250_000 {
        big.push_str(&format!(" k{i}: v\n"));
    }
    assert!(big.len() < 3 * 1024 * 1024);
    let out = cairnctl(&["validate", "-f", "-"], Some(&big));
    assert_eq!(
        (out.status.code(), stdout(&out).as_str()),
        (
            Some(0),
            "<stdin>: ConfigMap/big: skipped: not a kind of this API (v1)\n0 objects, 0 errors, 0 warnings\n"
        )
    );
}

#[test]
fn a_document_past_a_reading_limit_names_the_limit() {
    // 100 levels: deeper than any manifest, within the limit.
    let nested = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: nested\ndata:\n  x: {}1{}\n",
        "[".repeat(100),
        "]".repeat(100)
    );
    let out = cairnctl(&["validate", "-f", "-"], Some(&nested));
    assert_eq!(
        (out.status.code(), stdout(&out).as_str()),
        (
            Some(0),
            "<stdin>: ConfigMap/nested: skipped: not a kind of this API (v1)\n0 objects, 0 errors, 0 warnings\n"
        )
    );
    let deep = format!(
        "{}apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: deep\ndata:\n  x: {}1{}\n",
        repo("first") + "---\n",
        "[".repeat(200),
        "]".repeat(200)
    );
    let out = cairnctl(&["validate", "-f", "-"], Some(&deep));
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(
        text.starts_with("<stdin>: too large at line 14 column ")
            && text.contains(": a document nests lists and maps more than 128 levels deep\n"),
        "{text}"
    );
}

#[test]
fn duplicate_json_keys_are_refused_like_duplicate_yaml_keys() {
    let json = TempFile::new(
        "dup.json",
        "{\"apiVersion\": \"v1\", \"kind\": \"ConfigMap\",\n \"metadata\": {\"name\": \"a\", \"name\": \"b\"}}\n",
    );
    let out = cairnctl(&["validate", "-f", json.arg()], None);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stdout(&out),
        format!(
            "{}: syntax error at line 2 column 33: duplicate key \"name\"\n0 objects, 1 errors, 0 warnings\n",
            json.arg()
        )
    );
    let yaml = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  name: b\n";
    let out = cairnctl(&["validate", "-f", "-"], Some(yaml));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).starts_with("<stdin>: syntax error at line 5"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn a_list_whose_items_are_not_a_list_of_objects_is_an_error() {
    let json = TempFile::new(
        "list.json",
        r#"{"apiVersion": "v1", "kind": "List", "items": "notalist"}"#,
    );
    let out = cairnctl(&["validate", "-f", json.arg()], None);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stdout(&out),
        format!(
            "{}: invalid List: List: items is a string, not a list of objects\n0 objects, 1 errors, 0 warnings\n",
            json.arg()
        )
    );
    let json = TempFile::new(
        "scalars.json",
        r#"{"apiVersion": "v1", "kind": "List", "items": [1]}"#,
    );
    let out = cairnctl(&["validate", "-f", json.arg()], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains(": invalid List: List: items[0] is a number, not an object\n"),
        "{}",
        stdout(&out)
    );
    // A YAML List is read as kubectl reads it: its items are the objects.
    let yaml = format!(
        "apiVersion: v1\nkind: List\nitems:\n- {}",
        repo("in-a-list").replace('\n', "\n  ")
    );
    let out = cairnctl(&["validate", "-f", "-"], Some(yaml.trim_end()));
    assert_eq!(
        (out.status.code(), stdout(&out).as_str()),
        (Some(0), "1 objects, 0 errors, 0 warnings\n")
    );
}
