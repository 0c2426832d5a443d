//! The generated CRDs: structural schemas, names, scopes and printer columns, and the committed YAML.

use std::collections::BTreeMap;
use std::path::PathBuf;

use cairn_api::crds;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde_json::Value;

fn by_name() -> BTreeMap<String, CustomResourceDefinition> {
    crds::all()
        .into_iter()
        .map(|c| (c.metadata.name.clone().unwrap_or_default(), c))
        .collect()
}

fn schema_of(crd: &CustomResourceDefinition) -> Value {
    let schema = crd.spec.versions[0]
        .schema
        .as_ref()
        .and_then(|s| s.open_api_v3_schema.as_ref());
    serde_json::to_value(schema.expect("every CRD has a schema")).expect("schema serializes")
}

#[test]
fn every_crd_schema_is_structural() {
    for (name, crd) in by_name() {
        let schema = schema_of(&crd);
        let errors = cairn_schema::structural_errors(&schema);
        assert!(
            errors.is_empty(),
            "{name} is not structural:\n{}",
            errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        );
        cairn_schema::Schema::new(&schema).unwrap_or_else(|e| panic!("{name}: {e}"));
        let text = schema.to_string();
        assert!(!text.contains("\"$ref\""), "{name} has a $ref");
        assert!(!text.contains("\"nullable\""), "{name} has nullable");
    }
}

#[test]
fn scopes_short_names_and_categories_follow_kubeblocks() {
    let crds = by_name();
    let expect = [
        (
            "actionsets.dataprotection.kubeblocks.io",
            "Cluster",
            Some("as"),
        ),
        (
            "backuppolicies.dataprotection.kubeblocks.io",
            "Namespaced",
            Some("bp"),
        ),
        ("backuprepos.dataprotection.kubeblocks.io", "Cluster", None),
        ("backups.dataprotection.kubeblocks.io", "Namespaced", None),
        (
            "backupschedules.dataprotection.kubeblocks.io",
            "Namespaced",
            Some("bs"),
        ),
        ("restores.dataprotection.kubeblocks.io", "Namespaced", None),
        (
            "storageproviders.dataprotection.kubeblocks.io",
            "Cluster",
            None,
        ),
        ("storageproviders.storage.kubeblocks.io", "Cluster", None),
        ("backuptools.dataprotection.kubeblocks.io", "Cluster", None),
        (
            "restorejobs.dataprotection.kubeblocks.io",
            "Namespaced",
            None,
        ),
    ];
    for (name, scope, short) in expect {
        let crd = crds
            .get(name)
            .unwrap_or_else(|| panic!("missing CRD {name}"));
        assert_eq!(crd.spec.scope, scope, "{name}");
        let shorts = crd.spec.names.short_names.clone().unwrap_or_default();
        assert_eq!(shorts.first().map(String::as_str), short, "{name}");
        let categories = crd.spec.names.categories.clone().unwrap_or_default();
        assert!(
            categories.contains(&"kubeblocks".to_string()),
            "{name}: {categories:?}"
        );
        let version = &crd.spec.versions[0];
        assert_eq!(version.name, "v1alpha1");
        assert!(version.served && version.storage, "{name}");
        assert!(
            version
                .subresources
                .as_ref()
                .and_then(|s| s.status.as_ref())
                .is_some(),
            "{name} has no status subresource"
        );
    }
    let legacy = &crds["storageproviders.storage.kubeblocks.io"].spec.versions[0];
    assert_eq!(legacy.deprecated, Some(true));
}

fn columns(crd: &CustomResourceDefinition) -> Vec<(String, String)> {
    crd.spec.versions[0]
        .additional_printer_columns
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|c| (c.name, c.json_path))
        .collect()
}

#[test]
fn printer_columns_show_what_kubectl_get_needs() {
    let crds = by_name();
    let names = |crd: &str| {
        columns(&crds[crd])
            .into_iter()
            .map(|c| c.0)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        names("backups.dataprotection.kubeblocks.io"),
        [
            "POLICY",
            "METHOD",
            "REPO",
            "STATUS",
            "TOTAL-SIZE",
            "DURATION",
            "CREATION-TIME",
            "COMPLETION-TIME",
            "EXPIRATION-TIME",
            "PROGRESS",
            "TOTAL-BYTES",
            "ETA-SECONDS"
        ]
    );
    assert!(
        columns(&crds["backups.dataprotection.kubeblocks.io"])
            .contains(&("PROGRESS".into(), ".status.progress.bytesDone".into()))
    );
    assert_eq!(
        names("restores.dataprotection.kubeblocks.io"),
        [
            "BACKUP",
            "RESTORE-TIME",
            "STATUS",
            "DURATION",
            "CREATION-TIME",
            "COMPLETION-TIME"
        ]
    );
    assert_eq!(
        names("backuprepos.dataprotection.kubeblocks.io"),
        [
            "STATUS",
            "STORAGEPROVIDER",
            "ACCESSMETHOD",
            "DEFAULT",
            "AGE"
        ]
    );
    assert_eq!(
        names("actionsets.dataprotection.kubeblocks.io"),
        ["BACKUP-TYPE", "STATUS", "AGE"]
    );
    assert_eq!(
        names("backuppolicies.dataprotection.kubeblocks.io"),
        ["BACKUP-REPO", "STATUS", "AGE"]
    );
    assert_eq!(
        names("backupschedules.dataprotection.kubeblocks.io"),
        ["POLICY", "STATUS", "AGE"]
    );
    assert_eq!(
        names("storageproviders.dataprotection.kubeblocks.io"),
        ["STATUS", "CSIDRIVER", "AGE"]
    );
}

#[test]
fn schemas_carry_kubeblocks_validation_rules() {
    let crds = by_name();
    let bp = schema_of(&crds["backuppolicies.dataprotection.kubeblocks.io"]);
    let backoff = &bp["properties"]["spec"]["properties"]["backoffLimit"];
    assert_eq!(
        (
            backoff["minimum"].as_f64(),
            backoff["maximum"].as_f64(),
            &backoff["default"]
        ),
        (Some(0.0), Some(10.0), &Value::from(2))
    );
    let bs = schema_of(&crds["backupschedules.dataprotection.kubeblocks.io"]);
    let deadline = &bs["properties"]["spec"]["properties"]["startingDeadlineMinutes"];
    assert_eq!(
        (deadline["minimum"].as_f64(), deadline["maximum"].as_f64()),
        (Some(0.0), Some(1440.0))
    );
    assert_eq!(
        bs["properties"]["spec"]["properties"]["schedules"]["minItems"],
        1
    );
    assert_eq!(
        bs["properties"]["spec"]["properties"]["schedules"]["items"]["properties"]["retentionPeriod"]
            ["default"],
        "7d"
    );
    let restore = schema_of(&crds["restores.dataprotection.kubeblocks.io"]);
    assert_eq!(
        restore["properties"]["spec"]["properties"]["restoreTime"]["pattern"],
        cairn_api::schema::RESTORE_TIME_PATTERN
    );
    let backup = schema_of(&crds["backups.dataprotection.kubeblocks.io"]);
    assert_eq!(
        backup["properties"]["spec"]["properties"]["backupPolicyName"]["pattern"],
        cairn_api::schema::NAME_PATTERN
    );
    assert_eq!(
        backup["properties"]["spec"]["properties"]["deletionPolicy"]["enum"],
        serde_json::json!(["Delete", "Retain"])
    );
    assert_eq!(
        backup["properties"]["status"]["properties"]["timeRange"]["properties"]["timeZone"]["pattern"],
        cairn_api::schema::TIME_ZONE_PATTERN
    );
    let repo = schema_of(&crds["backuprepos.dataprotection.kubeblocks.io"]);
    let capacity = &repo["properties"]["spec"]["properties"]["volumeCapacity"];
    assert_eq!(capacity["x-kubernetes-int-or-string"], true);
    assert_eq!(
        capacity["anyOf"],
        serde_json::json!([{"type": "integer"}, {"type": "string"}])
    );
    let actionset = schema_of(&crds["actionsets.dataprotection.kubeblocks.io"]);
    let free = &actionset["properties"]["spec"]["properties"]["parametersSchema"]["properties"]["openAPIV3Schema"];
    assert_eq!(free["x-kubernetes-preserve-unknown-fields"], true);
}

#[test]
fn committed_crd_yaml_matches_the_types() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../charts/cairn/crds");
    let fix = "run `cargo run -p cairn-cli --bin cairnctl -- crds --dir charts/cairn/crds`";
    let mut expected_files = Vec::new();
    for crd in crds::all() {
        let file = crds::file_name(&crd);
        let want = crds::to_yaml(&crd).expect("CRD serializes to YAML");
        let have = std::fs::read_to_string(dir.join(&file))
            .unwrap_or_else(|e| panic!("reading {file}: {e}; {fix}"));
        assert!(
            have == want,
            "charts/cairn/crds/{file} differs from what the types generate; {fix}"
        );
        expected_files.push(file);
    }
    let mut present: Vec<String> = std::fs::read_dir(&dir)
        .expect("charts/cairn/crds exists")
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .filter(|n| n.ends_with(".yaml"))
        .collect();
    present.sort();
    expected_files.sort();
    assert_eq!(
        present, expected_files,
        "stale CRD files in charts/cairn/crds; {fix}"
    );
}
