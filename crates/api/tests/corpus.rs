//! The manifest corpus: every valid object round-trips and validates clean; every invalid file
//! reports exactly the problems its `# expect: <path>: <message>` lines announce.

use std::path::{Path, PathBuf};

use cairn_api::object::{ApiObject, without_nulls};
use cairn_api::validate::manifest::{Checker, UnknownFields};
use cairn_api::validate::{self, Severity};
use serde_json::Value;

fn corpus(dir: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/corpus")
        .join(dir);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no corpus files in {}", dir.display());
    files
}

fn documents(file: &Path) -> (String, Vec<Value>) {
    let text =
        std::fs::read_to_string(file).unwrap_or_else(|e| panic!("reading {}: {e}", file.display()));
    let docs: Vec<Value> = serde_saphyr::from_multiple(&text)
        .unwrap_or_else(|e| panic!("parsing {}: {e}", file.display()));
    (text, docs.into_iter().filter(|d| !d.is_null()).collect())
}

fn name(file: &Path) -> String {
    file.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

#[test]
fn valid_objects_round_trip_through_yaml_and_json() {
    for file in corpus("valid") {
        for doc in documents(&file).1 {
            let typed = ApiObject::from_value(doc.clone()).unwrap_or_else(|e| {
                panic!("{}: {e}: {:?}", name(&file), std::error::Error::source(&e))
            });
            let json = typed.to_value().expect("serializes");
            assert_eq!(
                without_nulls(&json),
                without_nulls(&doc),
                "{}: JSON value changed",
                name(&file)
            );
            let yaml = serde_saphyr::to_string(&json).expect("YAML serializes");
            let reread: Value = serde_saphyr::from_str(&yaml).expect("YAML parses");
            let again = ApiObject::from_value(reread).expect("re-reads");
            assert_eq!(
                again,
                typed,
                "{}: YAML round trip changed the object",
                name(&file)
            );
        }
    }
}

#[test]
fn valid_objects_validate_clean_alone_and_together() {
    let checker = Checker::new().expect("schemas compile");
    let mut typed = Vec::new();
    let mut count = 0;
    for file in corpus("valid") {
        for doc in documents(&file).1 {
            let checked = checker.check(&doc, UnknownFields::Error);
            assert!(checked.kind.is_some(), "{}: unknown kind", name(&file));
            let problems: Vec<String> = checked.problems.iter().map(ToString::to_string).collect();
            assert!(problems.is_empty(), "{}: {problems:#?}", name(&file));
            typed.push(checked.object.expect("typed"));
            count += 1;
        }
    }
    let related: Vec<String> = validate::related(&typed)
        .iter()
        .map(|(_, p)| p.to_string())
        .collect();
    assert!(related.is_empty(), "{related:#?}");
    assert!(
        count >= 18,
        "the valid corpus should cover every kind ({count} objects)"
    );
}

#[test]
fn valid_corpus_covers_every_kind() {
    let mut kinds = std::collections::BTreeSet::new();
    for file in corpus("valid") {
        for doc in documents(&file).1 {
            kinds.insert(format!(
                "{}/{}",
                doc["apiVersion"].as_str().unwrap_or(""),
                doc["kind"].as_str().unwrap_or("")
            ));
        }
    }
    for kind in [
        "ActionSet",
        "Backup",
        "BackupPolicy",
        "BackupRepo",
        "BackupSchedule",
        "Restore",
        "StorageProvider",
        "BackupTool",
        "RestoreJob",
    ] {
        assert!(
            kinds.contains(&format!("dataprotection.kubeblocks.io/v1alpha1/{kind}")),
            "no {kind} in the valid corpus"
        );
    }
    assert!(kinds.contains("storage.kubeblocks.io/v1alpha1/StorageProvider"));
}

#[test]
fn invalid_files_report_exactly_the_expected_problems() {
    let checker = Checker::new().expect("schemas compile");
    for file in corpus("invalid") {
        let (text, docs) = documents(&file);
        let expected: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# expect: "))
            .collect();
        assert!(!expected.is_empty(), "{}: no `# expect:` line", name(&file));
        let mut found = Vec::new();
        let mut typed = Vec::new();
        for doc in &docs {
            let checked = checker.check(doc, UnknownFields::Error);
            found.extend(
                checked
                    .problems
                    .into_iter()
                    .filter(|p| p.severity == Severity::Error)
                    .map(|p| p.to_string()),
            );
            typed.extend(checked.object);
        }
        found.extend(
            validate::related(&typed)
                .into_iter()
                .map(|(_, p)| p.to_string()),
        );
        for want in &expected {
            assert!(
                found.iter().any(|f| f.starts_with(want)),
                "{}: expected {want:?}, found {found:#?}",
                name(&file)
            );
        }
        for f in &found {
            assert!(
                expected.iter().any(|want| f.starts_with(want)),
                "{}: unexpected problem {f:?}",
                name(&file)
            );
        }
    }
}
