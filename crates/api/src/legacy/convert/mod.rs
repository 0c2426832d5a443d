//! Pure conversion of old-API objects to the new API (semantics §8.3), with a warning for every
//! field that has no equivalent.
//!
//! - BackupTool → ActionSet ([`backup_tool`]),
//! - old BackupPolicy → BackupPolicy + BackupSchedule ([`backup_policy`]),
//! - old Backup → Backup ([`backup`]),
//! - RestoreJob → Restore ([`restore_job`]).
//!
//! The method names the converted policy declares (`volume-snapshot`, `datafile`, `logfile`) are
//! the ones converted Backups and schedules refer to, and a BackupTool becomes an ActionSet of the
//! same name, so objects converted together stay consistent.

pub mod backup;
pub mod backup_policy;
pub mod backup_tool;
pub mod restore_job;

use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::object::ApiObject;

/// Method name of old snapshot backups.
pub const SNAPSHOT_METHOD: &str = "volume-snapshot";
/// Method name of old datafile backups.
pub const DATAFILE_METHOD: &str = "datafile";
/// Method name of old logfile backups.
pub const LOGFILE_METHOD: &str = "logfile";

/// A field of a source object that the new API cannot represent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// The source object, e.g. `BackupPolicy default/mycluster-backup-policy`.
    pub source: String,
    /// The field path in the source object, e.g. `spec.datafile.backupsHistoryLimit`.
    pub path: String,
    /// What happened to it.
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.source, self.path, self.message)
    }
}

/// The result of a conversion: new objects and the warnings.
#[derive(Debug, Clone, Default)]
pub struct Conversion {
    /// The new-API objects, in input order.
    pub objects: Vec<ApiObject>,
    /// One warning per field without an equivalent.
    pub warnings: Vec<Warning>,
}

/// Converts objects; objects that are already of the new API are passed through unchanged.
pub fn convert(objects: &[ApiObject]) -> Conversion {
    let mut out = Conversion::default();
    for object in objects {
        let one = convert_one(object);
        out.objects.extend(one.objects);
        out.warnings.extend(one.warnings);
    }
    out
}

/// Converts one object into the new objects it becomes (an old BackupPolicy becomes a policy and,
/// if it had schedules, a BackupSchedule); new-API objects are returned unchanged.
pub fn convert_one(object: &ApiObject) -> Conversion {
    let mut out = Conversion::default();
    match object {
        ApiObject::BackupTool(t) => {
            let (a, w) = backup_tool::convert(t);
            out.objects.push(ApiObject::ActionSet(a));
            out.warnings = w;
        }
        ApiObject::OldBackupPolicy(p) => {
            let (policy, schedule, w) = backup_policy::convert(p);
            out.objects.push(ApiObject::BackupPolicy(policy));
            out.objects.extend(schedule.map(ApiObject::BackupSchedule));
            out.warnings = w;
        }
        ApiObject::OldBackup(b) => {
            let (backup, w) = backup::convert(b);
            out.objects.push(ApiObject::Backup(backup));
            out.warnings = w;
        }
        ApiObject::RestoreJob(r) => {
            let (restore, w) = restore_job::convert(r);
            out.objects.push(ApiObject::Restore(restore));
            out.warnings = w;
        }
        other => out.objects.push(other.clone()),
    }
    out
}

/// `Kind namespace/name` (or `Kind name` for cluster-scoped objects) naming a source object.
pub(crate) fn source_name(kind: &str, meta: &ObjectMeta) -> String {
    let name = meta.name.as_deref().unwrap_or("<unnamed>");
    match meta.namespace.as_deref() {
        Some(ns) => format!("{kind} {ns}/{name}"),
        None => format!("{kind} {name}"),
    }
}

/// Collects warnings for one source object.
pub(crate) struct Warnings {
    source: String,
    list: Vec<Warning>,
}

impl Warnings {
    pub(crate) fn new(kind: &str, meta: &ObjectMeta) -> Warnings {
        Warnings {
            source: source_name(kind, meta),
            list: Vec::new(),
        }
    }

    pub(crate) fn add(&mut self, path: &str, message: impl Into<String>) {
        self.list.push(Warning {
            source: self.source.clone(),
            path: path.to_string(),
            message: message.into(),
        });
    }

    pub(crate) fn into_vec(self) -> Vec<Warning> {
        self.list
    }
}

/// The metadata of a converted object: name, namespace, labels and annotations of the source;
/// server-set fields (uid, resourceVersion, generation, timestamps, managedFields) are dropped.
pub(crate) fn carry_metadata(meta: &ObjectMeta) -> ObjectMeta {
    ObjectMeta {
        name: meta.name.clone(),
        namespace: meta.namespace.clone(),
        labels: meta.labels.clone(),
        annotations: meta.annotations.clone(),
        ..ObjectMeta::default()
    }
}
