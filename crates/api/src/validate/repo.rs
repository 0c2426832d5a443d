//! Semantic checks of a BackupRepo (capacity) and a StorageProvider (templates and parameters schema).

use crate::backup_repo::BackupRepo;
use crate::parse;
use crate::storage_provider::StorageProviderSpec;
use crate::validate::problem::Problem;

/// Checks a BackupRepo.
pub fn backup_repo(r: &BackupRepo) -> Vec<Problem> {
    let mut out = Vec::new();
    if let Some(q) = &r.spec.volume_capacity
        && let Err(e) = parse::quantity::parse_bytes(&q.0)
    {
        out.push(Problem::error("spec.volumeCapacity", e.to_string()));
    }
    out
}

/// Checks a StorageProvider spec (either group).
pub fn storage_provider(spec: &StorageProviderSpec) -> Vec<Problem> {
    let mut out = Vec::new();
    let has_template = [
        &spec.datasafed_config_template,
        &spec.persistent_volume_claim_template,
        &spec.storage_class_template,
    ]
    .iter()
    .any(|t| t.as_deref().is_some_and(|t| !t.trim().is_empty()));
    if !has_template {
        out.push(Problem::warning(
            "spec",
            "no datasafedConfigTemplate, storageClassTemplate or persistentVolumeClaimTemplate: no BackupRepo can use this provider",
        ));
    }
    if let Some(schema) = spec
        .parameters_schema
        .as_ref()
        .and_then(|p| p.open_api_v3_schema.as_ref())
        && let Err(e) = cairn_schema::Schema::new(schema)
    {
        out.push(Problem::error(
            "spec.parametersSchema.openAPIV3Schema",
            format!("invalid parameters schema: {e}"),
        ));
    }
    out
}
