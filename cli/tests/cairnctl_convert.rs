//! `cairnctl convert` on old-API manifests: new objects on stdout, warnings on stderr.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

#[test]
fn old_objects_come_out_as_new_multi_document_yaml_with_warnings_on_stderr() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../crates/api/tests/corpus/legacy/mysql-0.6.yaml");
    let out = Command::new(env!("CARGO_BIN_EXE_cairnctl"))
        .args(["convert", "-f"])
        .arg(&file)
        .output()
        .expect("runs");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let docs: Vec<Value> = serde_saphyr::from_multiple(&stdout).expect("multi-document YAML");
    let kinds: Vec<&str> = docs.iter().filter_map(|d| d["kind"].as_str()).collect();
    assert_eq!(
        kinds,
        [
            "ActionSet",
            "ActionSet",
            "BackupPolicy",
            "BackupSchedule",
            "Backup",
            "Backup",
            "Restore"
        ]
    );
    assert!(
        docs.iter()
            .all(|d| d["apiVersion"] == "dataprotection.kubeblocks.io/v1alpha1")
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.lines().all(|l| l.starts_with("warning: ")),
        "{stderr}"
    );
    assert!(stderr.contains("warning: BackupPolicy default/mycluster-mysql-backup-policy: spec.datafile.backupsHistoryLimit: no equivalent"), "{stderr}");
    assert!(
        stderr.contains("warning: RestoreJob default/restore-mycluster: spec.targetVolumes[1]: "),
        "{stderr}"
    );
}

#[test]
fn converted_output_validates_clean() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../crates/api/tests/corpus/legacy/mysql-0.6.yaml");
    let converted = Command::new(env!("CARGO_BIN_EXE_cairnctl"))
        .args(["convert", "-f"])
        .arg(&file)
        .output()
        .expect("runs");
    let dir = std::env::temp_dir().join(format!("cairn-convert-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let out_file = dir.join("converted.yaml");
    std::fs::write(&out_file, &converted.stdout).expect("written");
    let out = Command::new(env!("CARGO_BIN_EXE_cairnctl"))
        .args(["validate", "-f"])
        .arg(&out_file)
        .output()
        .expect("runs");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "7 objects, 0 errors, 0 warnings\n"
    );
    assert_eq!(out.status.code(), Some(0));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn other_kinds_pass_through_and_stdin_works() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_cairnctl"))
        .args(["convert", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("runs");
    use std::io::Write;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: keep-me\ndata:\n  a: b\n")
        .expect("written");
    let out = child.wait_with_output().expect("finishes");
    assert_eq!(out.status.code(), Some(0));
    let docs: Vec<Value> =
        serde_saphyr::from_multiple(&String::from_utf8_lossy(&out.stdout)).expect("YAML");
    assert_eq!(docs.len(), 1);
    assert_eq!(docs[0]["metadata"]["name"], "keep-me");
    assert_eq!(docs[0]["data"]["a"], "b");
}
