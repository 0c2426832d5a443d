//! Semantic checks beyond the CRD schema, as pure functions the control plane reuses (it validates
//! ActionSets and BackupPolicies with the same functions and KubeBlocks' messages).
//!
//! Each check returns [`Problem`]s with Kubernetes field paths. Single-object checks:
//! [`actionset()`], [`backup_policy()`], [`backup_schedule()`], [`backup()`], [`restore()`],
//! [`backup_repo()`], [`storage_provider()`], dispatched by [`object()`]. Checks between objects
//! found together: [`schedule_against_policy()`], [`backup_against_policy()`], [`parameters()`]
//! (Backup, schedule and Restore parameters against the ActionSet), run by [`related()`].
//! [`manifest::Checker`] runs the schema, the types and all of these on raw JSON objects.

pub mod actionset;
pub mod backup;
pub mod backup_policy;
pub mod backup_schedule;
pub mod manifest;
pub mod metadata;
pub mod parameters;
pub mod problem;
pub mod repo;
pub mod restore;

pub use actionset::{action_spec, actionset};
pub use backup::{backup, backup_against_policy};
pub use backup_policy::{backup_method, backup_policy};
pub use backup_schedule::{backup_schedule, schedule_against_policy};
pub use parameters::parameters;
pub use problem::{Problem, Severity};
pub use repo::{backup_repo, storage_provider};
pub use restore::restore;

use crate::actionset::ActionSet;
use crate::backup_policy::BackupPolicy;
use crate::common::ParameterPair;
use crate::object::ApiObject;

/// Runs the single-object checks of any known object.
pub fn object(o: &ApiObject) -> Vec<Problem> {
    match o {
        ApiObject::ActionSet(a) => actionset(a),
        ApiObject::Backup(b) => backup(b),
        ApiObject::BackupPolicy(p) => backup_policy(p),
        ApiObject::BackupRepo(r) => backup_repo(r),
        ApiObject::BackupSchedule(s) => backup_schedule(s),
        ApiObject::Restore(r) => restore(r),
        ApiObject::StorageProvider(s) => storage_provider(&s.spec),
        ApiObject::LegacyStorageProvider(s) => storage_provider(&s.spec.0),
        ApiObject::BackupTool(_) | ApiObject::RestoreJob(_) => Vec::new(),
        ApiObject::OldBackupPolicy(_) | ApiObject::OldBackup(_) => vec![Problem::warning(
            "spec",
            "this is the old (KubeBlocks 0.6) shape, which the current API rejects; convert it with `cairnctl convert`",
        )],
    }
}

fn namespace_of(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> &str {
    meta.namespace.as_deref().unwrap_or("default")
}

/// Checks between objects given together: schedules and Backups against their BackupPolicy, and
/// Backup/schedule parameters against the method's ActionSet. Returns (object index, problem).
pub fn related(objects: &[ApiObject]) -> Vec<(usize, Problem)> {
    let policy = |ns: &str, name: &str| {
        objects.iter().find_map(|o| match o {
            ApiObject::BackupPolicy(p)
                if namespace_of(&p.metadata) == ns && p.metadata.name.as_deref() == Some(name) =>
            {
                Some(p)
            }
            _ => None,
        })
    };
    let actionset = |name: &str| {
        objects.iter().find_map(|o| match o {
            ApiObject::ActionSet(a) if a.metadata.name.as_deref() == Some(name) => Some(a),
            _ => None,
        })
    };
    // The ActionSet of `policy`'s method `method_name`, when both are given.
    let method_actionset = |policy: &BackupPolicy, method_name: &str| {
        policy
            .spec
            .backup_methods
            .iter()
            .find(|m| m.name == method_name)
            .and_then(|m| m.action_set_name.as_deref())
            .and_then(actionset)
    };
    let mut out = Vec::new();
    for (i, o) in objects.iter().enumerate() {
        match o {
            ApiObject::BackupSchedule(s) => {
                let Some(p) = policy(namespace_of(&s.metadata), &s.spec.backup_policy_name) else {
                    continue;
                };
                out.extend(schedule_against_policy(s, p).into_iter().map(|x| (i, x)));
                for (j, schedule) in s.spec.schedules.iter().enumerate() {
                    let Some(a) = method_actionset(p, &schedule.backup_method) else {
                        continue;
                    };
                    let prefix = format!(
                        "fails to validate parameters of backupMethod {}: ",
                        schedule.backup_method
                    );
                    let path = format!("spec.schedules[{j}].parameters");
                    let params = schedule.parameters.as_deref().unwrap_or_default();
                    let declared = a
                        .spec
                        .backup
                        .as_ref()
                        .and_then(|b| b.with_parameters.as_deref());
                    out.extend(
                        actionset_parameters(a, params, declared, &path, Some(&prefix))
                            .into_iter()
                            .map(|x| (i, x)),
                    );
                }
            }
            ApiObject::Backup(b) => {
                let Some(p) = policy(namespace_of(&b.metadata), &b.spec.backup_policy_name) else {
                    continue;
                };
                out.extend(backup_against_policy(b, p).into_iter().map(|x| (i, x)));
                let Some(a) = method_actionset(p, &b.spec.backup_method) else {
                    continue;
                };
                let params = b.spec.parameters.as_deref().unwrap_or_default();
                let declared = a
                    .spec
                    .backup
                    .as_ref()
                    .and_then(|b| b.with_parameters.as_deref());
                out.extend(
                    actionset_parameters(a, params, declared, "spec.parameters", None)
                        .into_iter()
                        .map(|x| (i, x)),
                );
            }
            ApiObject::Restore(r) => {
                let backup = objects.iter().find_map(|o| match o {
                    ApiObject::Backup(b)
                        if namespace_of(&b.metadata) == r.spec.backup.namespace
                            && b.metadata.name.as_deref() == Some(r.spec.backup.name.as_str()) =>
                    {
                        Some(b)
                    }
                    _ => None,
                });
                let Some(b) = backup else { continue };
                let Some(p) = policy(namespace_of(&b.metadata), &b.spec.backup_policy_name) else {
                    continue;
                };
                let Some(a) = method_actionset(p, &b.spec.backup_method) else {
                    continue;
                };
                let params = r.spec.parameters.as_deref().unwrap_or_default();
                let declared = a
                    .spec
                    .restore
                    .as_ref()
                    .and_then(|x| x.with_parameters.as_deref());
                out.extend(
                    actionset_parameters(a, params, declared, "spec.parameters", None)
                        .into_iter()
                        .map(|x| (i, x)),
                );
            }
            _ => {}
        }
    }
    out
}

/// `params` checked against the parameters `a` declares and its `parametersSchema`; problems
/// start with `prefix`, by default KubeBlocks' "fails to validate parameters with actionset
/// <name>: ".
fn actionset_parameters(
    a: &ActionSet,
    params: &[ParameterPair],
    declared: Option<&[String]>,
    path: &str,
    prefix: Option<&str>,
) -> Vec<Problem> {
    let schema = a
        .spec
        .parameters_schema
        .as_ref()
        .and_then(|s| s.open_api_v3_schema.as_ref());
    let name = a.metadata.name.as_deref().unwrap_or_default();
    let prefix = prefix.map_or_else(
        || format!("fails to validate parameters with actionset {name}: "),
        str::to_string,
    );
    parameters(
        params,
        declared.unwrap_or_default(),
        schema,
        name,
        path,
        &prefix,
    )
}
