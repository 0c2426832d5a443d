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

/// Every `x-kubernetes-validations` rule of a schema, as `(path, rule, message)`.
fn rules_of(schema: &Value, path: &str, out: &mut Vec<(String, String, String)>) {
    let Some(map) = schema.as_object() else {
        return;
    };
    for rule in map
        .get("x-kubernetes-validations")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let text = |k: &str| rule[k].as_str().unwrap_or_default().to_string();
        out.push((path.to_string(), text("rule"), text("message")));
    }
    if let Some(props) = map.get("properties").and_then(Value::as_object) {
        for (name, prop) in props {
            let child = if path.is_empty() {
                name.clone()
            } else {
                format!("{path}.{name}")
            };
            rules_of(prop, &child, out);
        }
    }
    if let Some(items) = map.get("items") {
        rules_of(items, &format!("{path}[]"), out);
    }
}

/// The immutability KubeBlocks' CRDs declare (config/crd/bases/dataprotection.kubeblocks.io_*.yaml:
/// `self == oldSelf` transition rules, and `has(oldSelf.parameters) == has(self.parameters)` on the
/// spec), with KubeBlocks' messages, and nothing else.
#[test]
fn crds_carry_kubeblocks_immutability_rules() {
    let same = "self == oldSelf";
    let params = "has(oldSelf.parameters) == has(self.parameters)";
    let expected: Vec<(&str, &str, &str, &str)> = vec![
        (
            "backuprepos.dataprotection.kubeblocks.io",
            "spec.storageProviderRef",
            same,
            "StorageProviderRef is immutable",
        ),
        (
            "backups.dataprotection.kubeblocks.io",
            "spec",
            params,
            "forbidden to update spec.parameters",
        ),
        (
            "backups.dataprotection.kubeblocks.io",
            "spec.backupMethod",
            same,
            "forbidden to update spec.backupMethod",
        ),
        (
            "backups.dataprotection.kubeblocks.io",
            "spec.backupPolicyName",
            same,
            "forbidden to update spec.backupPolicyName",
        ),
        (
            "backups.dataprotection.kubeblocks.io",
            "spec.parameters",
            same,
            "forbidden to update spec.parameters",
        ),
        (
            "backups.dataprotection.kubeblocks.io",
            "spec.parentBackupName",
            same,
            "forbidden to update spec.parentBackupName",
        ),
        (
            "restores.dataprotection.kubeblocks.io",
            "spec",
            params,
            "forbidden to update spec.parameters",
        ),
        (
            "restores.dataprotection.kubeblocks.io",
            "spec.backup",
            same,
            "forbidden to update spec.backupName",
        ),
        (
            "restores.dataprotection.kubeblocks.io",
            "spec.parameters",
            same,
            "forbidden to update spec.parameters",
        ),
        (
            "restores.dataprotection.kubeblocks.io",
            "spec.prepareDataConfig.dataSourceRef",
            same,
            "forbidden to update spec.prepareDataConfig.dataSourceRef",
        ),
        (
            "restores.dataprotection.kubeblocks.io",
            "spec.prepareDataConfig.schedulingSpec",
            same,
            "forbidden to update spec.prepareDataConfig.schedulingSpec",
        ),
        (
            "restores.dataprotection.kubeblocks.io",
            "spec.prepareDataConfig.volumeClaims",
            same,
            "forbidden to update spec.prepareDataConfig.volumeClaims",
        ),
        (
            "restores.dataprotection.kubeblocks.io",
            "spec.prepareDataConfig.volumeClaimsTemplate",
            same,
            "forbidden to update spec.prepareDataConfig.volumeClaimsTemplate",
        ),
        (
            "restores.dataprotection.kubeblocks.io",
            "spec.resources",
            same,
            "forbidden to update spec.resources",
        ),
        (
            "restores.dataprotection.kubeblocks.io",
            "spec.restoreTime",
            same,
            "forbidden to update spec.restoreTime",
        ),
    ];
    let mut found = Vec::new();
    for (name, crd) in by_name() {
        let mut rules = Vec::new();
        rules_of(&schema_of(&crd), "", &mut rules);
        found.extend(rules.into_iter().map(|(p, r, m)| (name.clone(), p, r, m)));
    }
    found.sort();
    let mut expected: Vec<(String, String, String, String)> = expected
        .into_iter()
        .map(|(a, b, c, d)| (a.into(), b.into(), c.into(), d.into()))
        .collect();
    expected.sort();
    assert_eq!(found, expected);
}

/// The generated Backup CRD, through cairn-schema, refuses what the API server refuses.
#[test]
fn the_generated_backup_crd_refuses_changing_an_immutable_field() {
    let crds = by_name();
    let schema =
        cairn_schema::Schema::new(&schema_of(&crds["backups.dataprotection.kubeblocks.io"]))
            .expect("the Backup schema compiles");
    let old = serde_json::json!({
        "apiVersion": "dataprotection.kubeblocks.io/v1alpha1", "kind": "Backup",
        "metadata": {"name": "b1", "namespace": "default"},
        "spec": {"backupPolicyName": "p", "backupMethod": "full", "deletionPolicy": "Delete"},
    });
    assert!(schema.validate(&old).is_empty());
    let mut changed = old.clone();
    changed["spec"]["backupMethod"] = "xtrabackup".into();
    changed["spec"]["parameters"] = serde_json::json!([{"name": "a", "value": "1"}]);
    let errors: Vec<String> = schema
        .validate_update(&changed, &old)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        errors,
        vec![
            r#"spec: Invalid value: "object": forbidden to update spec.parameters"#,
            r#"spec.backupMethod: Invalid value: "string": forbidden to update spec.backupMethod"#,
        ]
    );
    let mut retention = old.clone();
    retention["spec"]["retentionPeriod"] = "7d".into();
    assert!(schema.validate_update(&retention, &old).is_empty());
}
