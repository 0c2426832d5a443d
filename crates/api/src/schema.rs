//! Schema fragments for the generated CRDs that derive cannot express: patterns, quantities, free-form objects.

use schemars::{Schema, SchemaGenerator, json_schema};

/// A DNS-like object name (`backupPolicyName`, `backupRepoName`, method names, secret names).
pub const NAME_PATTERN: &str = r"^[a-z0-9]([a-z0-9\.\-]*[a-z0-9])?$";

/// `Restore.spec.restoreTime`: `YYYY-MM-DDTHH:MM:SSZ`.
pub const RESTORE_TIME_PATTERN: &str = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$";

/// `timeRange.timeZone`: a UTC offset `±HH:MM` (KubeBlocks' pattern, which accepts ±00:00..±13:59).
pub const TIME_ZONE_PATTERN: &str = r"^(\+|\-)(0[0-9]|1[0-3]):([0-5][0-9])$";

/// `BackupRepo.spec.pathPrefix`: slash-separated words.
pub const PATH_PREFIX_PATTERN: &str = r"^([a-zA-Z0-9-_]+/?)*$";

/// A Kubernetes resource quantity as `controller-gen` writes it.
pub const QUANTITY_PATTERN: &str = r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$";

/// A free-form object kept as is by the API server (`x-kubernetes-preserve-unknown-fields`).
pub fn preserve_unknown_object(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
    })
}

/// A resource quantity (`100Gi`, `1024`): integer or string, with the quantity pattern.
pub fn quantity(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "anyOf": [{"type": "integer"}, {"type": "string"}],
        "pattern": QUANTITY_PATTERN,
        "x-kubernetes-int-or-string": true,
    })
}

/// A list of maps of strings (`Backup.status.extras`).
pub fn list_of_string_maps(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "array",
        "items": {"type": "object", "additionalProperties": {"type": "string"}},
    })
}

/// Removes an enum type's own description from its schema, so that a field of that type keeps
/// the field's description in the CRD (kube's `Option<Enum>` rewrite would otherwise replace it).
pub fn drop_description(schema: &mut schemars::Schema) {
    schema.remove("description");
}
