//! Every CustomResourceDefinition of the API, generated from the types, ready to install or to print.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;
use serde_json::Value;

use crate::schema::QUANTITY_PATTERN;
use crate::{
    ActionSet, Backup, BackupPolicy, BackupRepo, BackupSchedule, LegacyStorageProvider, Restore,
    StorageProvider, legacy,
};

/// All CRDs, sorted by name: the seven data-protection kinds, the deprecated `storage.kubeblocks.io`
/// StorageProvider, and the legacy BackupTool and RestoreJob.
///
/// The schemas are post-processed so that they match what `controller-gen` writes for KubeBlocks:
/// `nullable: true` (added by schemars for every `Option`) is removed, so the API server prunes
/// nulls instead of storing them; every `x-kubernetes-int-or-string` node gets
/// `anyOf: [{type: integer}, {type: string}]` (kube's structural rewriter empties those branches),
/// and resource quantities get the quantity `pattern`.
pub fn all() -> Vec<CustomResourceDefinition> {
    let mut crds = vec![
        ActionSet::crd(),
        Backup::crd(),
        BackupPolicy::crd(),
        BackupRepo::crd(),
        BackupSchedule::crd(),
        Restore::crd(),
        StorageProvider::crd(),
        LegacyStorageProvider::crd(),
        legacy::BackupTool::crd(),
        legacy::RestoreJob::crd(),
    ];
    for crd in &mut crds {
        for version in &mut crd.spec.versions {
            if let Some(schema) = version
                .schema
                .as_mut()
                .and_then(|s| s.open_api_v3_schema.as_mut())
            {
                *schema = normalize(schema);
            }
        }
    }
    crds.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    crds
}

/// The YAML text of one CRD, exactly as committed in `charts/cairn/crds/`.
pub fn to_yaml(crd: &CustomResourceDefinition) -> Result<String, serde_saphyr::SerializeError> {
    serde_saphyr::to_string(crd)
}

/// The file name of a CRD in `charts/cairn/crds/`: `<group>_<plural>.yaml`.
pub fn file_name(crd: &CustomResourceDefinition) -> String {
    format!("{}_{}.yaml", crd.spec.group, crd.spec.names.plural)
}

fn normalize<T: serde::Serialize + serde::de::DeserializeOwned + Clone>(schema: &T) -> T {
    let Ok(mut value) = serde_json::to_value(schema) else {
        return schema.clone();
    };
    strip_nullable(&mut value);
    fix_int_or_string(&mut value);
    serde_json::from_value(value).unwrap_or_else(|_| schema.clone())
}

fn strip_nullable(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if map.get("nullable") == Some(&Value::Bool(true)) {
                map.remove("nullable");
            }
            for v in map.values_mut() {
                strip_nullable(v);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(strip_nullable),
        _ => {}
    }
}

/// The first words of k8s-openapi's description of `resource.Quantity`, which has no other marker.
const QUANTITY_DESCRIPTION: &str = "Quantity is a fixed-point representation of a number";

fn fix_int_or_string(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if map.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true)) {
                map.insert(
                    "anyOf".to_string(),
                    serde_json::json!([{"type": "integer"}, {"type": "string"}]),
                );
                let is_quantity = map
                    .get("description")
                    .and_then(Value::as_str)
                    .is_some_and(|d| d.starts_with(QUANTITY_DESCRIPTION));
                if is_quantity && !map.contains_key("pattern") {
                    map.insert(
                        "pattern".to_string(),
                        Value::String(QUANTITY_PATTERN.to_string()),
                    );
                }
            }
            for v in map.values_mut() {
                fix_int_or_string(v);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(fix_int_or_string),
        _ => {}
    }
}
