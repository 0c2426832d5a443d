//! Any object of the API, recognised by `apiVersion` and `kind`, for tools that read mixed manifests.

use serde::Serialize;
use serde_json::Value;

use crate::legacy;
use crate::{
    API_VERSION, ActionSet, Backup, BackupPolicy, BackupRepo, BackupSchedule,
    LEGACY_STORAGE_API_VERSION, LegacyStorageProvider, Restore, StorageProvider,
};

/// The kinds this crate knows, by `apiVersion` and `kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `dataprotection.kubeblocks.io/v1alpha1` ActionSet.
    ActionSet,
    /// `dataprotection.kubeblocks.io/v1alpha1` Backup (the new API; the old shape is [`legacy::backup`]).
    Backup,
    /// `dataprotection.kubeblocks.io/v1alpha1` BackupPolicy (the new API).
    BackupPolicy,
    /// `dataprotection.kubeblocks.io/v1alpha1` BackupRepo.
    BackupRepo,
    /// `dataprotection.kubeblocks.io/v1alpha1` BackupSchedule.
    BackupSchedule,
    /// `dataprotection.kubeblocks.io/v1alpha1` Restore.
    Restore,
    /// `dataprotection.kubeblocks.io/v1alpha1` StorageProvider.
    StorageProvider,
    /// `storage.kubeblocks.io/v1alpha1` StorageProvider (deprecated).
    LegacyStorageProvider,
    /// `dataprotection.kubeblocks.io/v1alpha1` BackupTool (old API).
    BackupTool,
    /// `dataprotection.kubeblocks.io/v1alpha1` RestoreJob (old API).
    RestoreJob,
    /// `dataprotection.kubeblocks.io/v1alpha1` BackupPolicy in the old (≤ 0.6) shape.
    OldBackupPolicy,
    /// `dataprotection.kubeblocks.io/v1alpha1` Backup in the old (≤ 0.6) shape.
    OldBackup,
}

impl Kind {
    /// The kind of an object with this `apiVersion` and `kind`, if it is one of ours.
    pub fn of(api_version: &str, kind: &str) -> Option<Kind> {
        match (api_version, kind) {
            (API_VERSION, "ActionSet") => Some(Kind::ActionSet),
            (API_VERSION, "Backup") => Some(Kind::Backup),
            (API_VERSION, "BackupPolicy") => Some(Kind::BackupPolicy),
            (API_VERSION, "BackupRepo") => Some(Kind::BackupRepo),
            (API_VERSION, "BackupSchedule") => Some(Kind::BackupSchedule),
            (API_VERSION, "Restore") => Some(Kind::Restore),
            (API_VERSION, "StorageProvider") => Some(Kind::StorageProvider),
            (LEGACY_STORAGE_API_VERSION, "StorageProvider") => Some(Kind::LegacyStorageProvider),
            (API_VERSION, "BackupTool") => Some(Kind::BackupTool),
            (API_VERSION, "RestoreJob") => Some(Kind::RestoreJob),
            _ => None,
        }
    }

    /// The kind of a JSON object, from its `apiVersion` and `kind` fields, telling the old shapes of
    /// BackupPolicy and Backup from the new ones ([`legacy::is_old_backup_policy`], [`legacy::is_old_backup`]).
    pub fn of_value(object: &Value) -> Option<Kind> {
        let api_version = object.get("apiVersion")?.as_str()?;
        let kind = object.get("kind")?.as_str()?;
        match Kind::of(api_version, kind)? {
            Kind::BackupPolicy if legacy::is_old_backup_policy(object) => {
                Some(Kind::OldBackupPolicy)
            }
            Kind::Backup if legacy::is_old_backup(object) => Some(Kind::OldBackup),
            other => Some(other),
        }
    }

    /// The `kind` field value.
    pub fn name(self) -> &'static str {
        match self {
            Kind::ActionSet => "ActionSet",
            Kind::Backup | Kind::OldBackup => "Backup",
            Kind::BackupPolicy | Kind::OldBackupPolicy => "BackupPolicy",
            Kind::BackupRepo => "BackupRepo",
            Kind::BackupSchedule => "BackupSchedule",
            Kind::Restore => "Restore",
            Kind::StorageProvider | Kind::LegacyStorageProvider => "StorageProvider",
            Kind::BackupTool => "BackupTool",
            Kind::RestoreJob => "RestoreJob",
        }
    }

    /// The name of the CRD that defines this kind (`<plural>.<group>`); none for the old shapes
    /// of BackupPolicy and Backup, which exist only to be converted.
    pub fn crd_name(self) -> Option<&'static str> {
        Some(match self {
            Kind::ActionSet => "actionsets.dataprotection.kubeblocks.io",
            Kind::Backup => "backups.dataprotection.kubeblocks.io",
            Kind::BackupPolicy => "backuppolicies.dataprotection.kubeblocks.io",
            Kind::BackupRepo => "backuprepos.dataprotection.kubeblocks.io",
            Kind::BackupSchedule => "backupschedules.dataprotection.kubeblocks.io",
            Kind::Restore => "restores.dataprotection.kubeblocks.io",
            Kind::StorageProvider => "storageproviders.dataprotection.kubeblocks.io",
            Kind::LegacyStorageProvider => "storageproviders.storage.kubeblocks.io",
            Kind::BackupTool => "backuptools.dataprotection.kubeblocks.io",
            Kind::RestoreJob => "restorejobs.dataprotection.kubeblocks.io",
            Kind::OldBackupPolicy | Kind::OldBackup => return None,
        })
    }
}

/// A typed object of one of the known kinds.
#[derive(Debug, Clone, PartialEq)]
#[allow(clippy::large_enum_variant)]
pub enum ApiObject {
    /// An ActionSet.
    ActionSet(ActionSet),
    /// A Backup.
    Backup(Backup),
    /// A BackupPolicy.
    BackupPolicy(BackupPolicy),
    /// A BackupRepo.
    BackupRepo(BackupRepo),
    /// A BackupSchedule.
    BackupSchedule(BackupSchedule),
    /// A Restore.
    Restore(Restore),
    /// A StorageProvider.
    StorageProvider(StorageProvider),
    /// A deprecated `storage.kubeblocks.io` StorageProvider.
    LegacyStorageProvider(LegacyStorageProvider),
    /// An old-API BackupTool.
    BackupTool(legacy::BackupTool),
    /// An old-API RestoreJob.
    RestoreJob(legacy::RestoreJob),
    /// A BackupPolicy in the old shape.
    OldBackupPolicy(legacy::BackupPolicy),
    /// A Backup in the old shape.
    OldBackup(legacy::Backup),
}

/// Why a JSON object could not be read as a typed object.
#[derive(Debug, thiserror::Error)]
pub enum ObjectError {
    /// The object is not a kind of this API (the caller may skip it).
    #[error("unknown kind {kind:?} of apiVersion {api_version:?}")]
    UnknownKind {
        /// The object's `apiVersion`.
        api_version: String,
        /// The object's `kind`.
        kind: String,
    },
    /// The object does not match the type (a missing field, a wrong type, an unknown enum value).
    #[error("reading {kind}")]
    Decode {
        /// The kind being read.
        kind: &'static str,
        /// What serde reported.
        #[source]
        source: serde_json::Error,
    },
}

impl ApiObject {
    /// Reads a JSON object as the type its `apiVersion` and `kind` name.
    pub fn from_value(object: Value) -> Result<ApiObject, ObjectError> {
        let Some(kind) = Kind::of_value(&object) else {
            let field = |f: &str| {
                object
                    .get(f)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string()
            };
            return Err(ObjectError::UnknownKind {
                api_version: field("apiVersion"),
                kind: field("kind"),
            });
        };
        fn decode<T: serde::de::DeserializeOwned>(
            kind: &'static str,
            object: Value,
        ) -> Result<T, ObjectError> {
            serde_json::from_value(object).map_err(|source| ObjectError::Decode { kind, source })
        }
        Ok(match kind {
            Kind::ActionSet => ApiObject::ActionSet(decode("ActionSet", object)?),
            Kind::Backup => ApiObject::Backup(decode("Backup", object)?),
            Kind::BackupPolicy => ApiObject::BackupPolicy(decode("BackupPolicy", object)?),
            Kind::BackupRepo => ApiObject::BackupRepo(decode("BackupRepo", object)?),
            Kind::BackupSchedule => ApiObject::BackupSchedule(decode("BackupSchedule", object)?),
            Kind::Restore => ApiObject::Restore(decode("Restore", object)?),
            Kind::StorageProvider => ApiObject::StorageProvider(decode("StorageProvider", object)?),
            Kind::LegacyStorageProvider => {
                ApiObject::LegacyStorageProvider(decode("StorageProvider", object)?)
            }
            Kind::BackupTool => ApiObject::BackupTool(decode("BackupTool", object)?),
            Kind::RestoreJob => ApiObject::RestoreJob(decode("RestoreJob", object)?),
            Kind::OldBackupPolicy => ApiObject::OldBackupPolicy(decode("BackupPolicy", object)?),
            Kind::OldBackup => ApiObject::OldBackup(decode("Backup", object)?),
        })
    }

    /// The object as JSON, as it would be sent to the API server.
    pub fn to_value(&self) -> Result<Value, serde_json::Error> {
        fn to<T: Serialize>(t: &T) -> Result<Value, serde_json::Error> {
            serde_json::to_value(t)
        }
        match self {
            ApiObject::ActionSet(o) => to(o),
            ApiObject::Backup(o) => to(o),
            ApiObject::BackupPolicy(o) => to(o),
            ApiObject::BackupRepo(o) => to(o),
            ApiObject::BackupSchedule(o) => to(o),
            ApiObject::Restore(o) => to(o),
            ApiObject::StorageProvider(o) => to(o),
            ApiObject::LegacyStorageProvider(o) => to(o),
            ApiObject::BackupTool(o) => to(o),
            ApiObject::RestoreJob(o) => to(o),
            ApiObject::OldBackupPolicy(o) => to(o),
            ApiObject::OldBackup(o) => to(o),
        }
    }
}

/// Removes `null` members of objects, recursively: the API server drops them, so they carry no
/// information (`annotations:` with no value in YAML is such a null).
pub fn without_nulls(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), without_nulls(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(without_nulls).collect()),
        other => other.clone(),
    }
}
