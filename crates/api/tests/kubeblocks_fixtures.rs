//! Real KubeBlocks manifests (from `$CAIRN_KUBEBLOCKS_FIXTURES`) read into the types and written back unchanged.

use std::path::{Path, PathBuf};

use cairn_api::object::{ApiObject, Kind, without_nulls};
use serde_json::Value;

/// The fixture directory, or `None` (with one line on stderr) when the variable is unset. A relative
/// path is taken from the workspace root, where CI sets it (`../shared/kubeblocks`).
fn fixtures() -> Option<PathBuf> {
    let Some(dir) = std::env::var_os("CAIRN_KUBEBLOCKS_FIXTURES") else {
        eprintln!("skipped: CAIRN_KUBEBLOCKS_FIXTURES is not set");
        return None;
    };
    let dir = PathBuf::from(dir);
    if dir.is_absolute() || dir.exists() {
        return Some(dir);
    }
    Some(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .join(dir),
    )
}

fn documents(dir: &Path) -> Vec<(String, Value)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file)
            .unwrap_or_else(|e| panic!("reading {}: {e}", file.display()));
        let docs: Vec<Value> = serde_saphyr::from_multiple(&text)
            .unwrap_or_else(|e| panic!("parsing {}: {e}", file.display()));
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        out.extend(
            docs.into_iter()
                .filter(|d| !d.is_null())
                .map(|d| (name.clone(), d)),
        );
    }
    out
}

/// The path of the first place where `a` and `b` differ, with both values.
fn first_difference(a: &Value, b: &Value, path: String) -> Option<String> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for key in x.keys().chain(y.keys()) {
                let (va, vb) = (
                    x.get(key).unwrap_or(&Value::Null),
                    y.get(key).unwrap_or(&Value::Null),
                );
                if let Some(d) = first_difference(va, vb, format!("{path}.{key}")) {
                    return Some(d);
                }
            }
            None
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .find_map(|(i, (va, vb))| first_difference(va, vb, format!("{path}[{i}]"))),
        _ if a == b => None,
        _ => Some(format!("{path}: read {a}, wrote {b}")),
    }
}

#[test]
fn real_kubeblocks_objects_round_trip_without_loss() {
    let Some(dir) = fixtures() else { return };
    let docs = documents(&dir);
    assert!(
        docs.len() >= 10,
        "expected the KubeBlocks fixtures in {}, found {} objects",
        dir.display(),
        docs.len()
    );
    for (file, doc) in docs {
        let kind = Kind::of_value(&doc).unwrap_or_else(|| panic!("{file}: not a kind of the API"));
        let typed = ApiObject::from_value(doc.clone())
            .unwrap_or_else(|e| panic!("{file}: {e}: {:?}", std::error::Error::source(&e)));
        let back = typed.to_value().expect("serializes");
        let difference =
            first_difference(&without_nulls(&doc), &without_nulls(&back), String::new());
        assert_eq!(
            difference, None,
            "{file} ({kind:?}) changed in a round trip"
        );
    }
}

#[test]
fn real_kubeblocks_objects_pass_the_generated_crd_schemas() {
    let Some(dir) = fixtures() else { return };
    let crds = cairn_api::crds::all();
    for (file, doc) in documents(&dir) {
        let kind = Kind::of_value(&doc).unwrap_or_else(|| panic!("{file}: not a kind of the API"));
        let crd_name = kind
            .crd_name()
            .unwrap_or_else(|| panic!("{file}: {kind:?} has no CRD"));
        let crd = crds
            .iter()
            .find(|c| c.metadata.name.as_deref() == Some(crd_name))
            .expect("CRD exists");
        let schema = serde_json::to_value(
            crd.spec.versions[0]
                .schema
                .as_ref()
                .and_then(|s| s.open_api_v3_schema.as_ref()),
        )
        .expect("schema serializes");
        let schema = cairn_schema::Schema::new(&schema).expect("schema compiles");
        let mut object = doc.clone();
        assert_eq!(
            schema.prune(&mut object),
            Vec::<String>::new(),
            "{file}: unknown fields"
        );
        schema.apply_defaults(&mut object);
        let errors: Vec<String> = schema
            .validate(&object)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert!(errors.is_empty(), "{file}: {errors:#?}");
    }
}
