//! Jobs, CronJobs, StatefulSets, Deployments, DaemonSets and ReplicaSets: defaults, the
//! generated Job selector and labels, template validation and immutability.

use super::pod::{default_pod_spec, validate_pod_spec};
use super::{default_at, invalid};
use crate::error::{ApiError, FieldError};
use crate::resource::{Builtin, ResourceType};
use crate::rest::meta::meta_str;
use crate::selector::LabelSelector;
use serde_json::{Value, json};

pub const CONTROLLER_UID_LABEL: &str = "batch.kubernetes.io/controller-uid";
pub const JOB_NAME_LABEL: &str = "batch.kubernetes.io/job-name";

fn template_spec_defaults(object: &mut Value, path: &str) {
    if let Some(spec) = object.pointer_mut(path) {
        default_pod_spec(spec);
    }
}

fn ensure_labels<'a>(
    object: &'a mut Value,
    pointer: &str,
) -> Option<&'a mut serde_json::Map<String, Value>> {
    let target = object.pointer_mut(pointer)?;
    if !target.get("labels").is_some_and(Value::is_object) {
        target["labels"] = json!({});
    }
    target.get_mut("labels").and_then(Value::as_object_mut)
}

fn job_defaults(job: &mut Value) {
    let completions = job
        .pointer("/spec/completions")
        .filter(|v| !v.is_null())
        .is_some();
    let parallelism = job
        .pointer("/spec/parallelism")
        .filter(|v| !v.is_null())
        .is_some();
    if !completions && !parallelism {
        default_at(job, &["spec", "completions"], json!(1));
    }
    default_at(job, &["spec", "parallelism"], json!(1));
    default_at(job, &["spec", "backoffLimit"], json!(6));
    default_at(job, &["spec", "completionMode"], json!("NonIndexed"));
    default_at(job, &["spec", "suspend"], json!(false));
    default_at(
        job,
        &["spec", "podReplacementPolicy"],
        json!("TerminatingOrFailed"),
    );
    default_at(job, &["spec", "manualSelector"], Value::Null);
    template_spec_defaults(job, "/spec/template/spec");
}

fn validate_template(rt: &ResourceType, object: &Value, restart: &[&str]) -> Result<(), ApiError> {
    let mut errors = Vec::new();
    match object.pointer("/spec/template/spec") {
        Some(spec) => {
            errors.extend(validate_pod_spec(spec, "spec.template.spec"));
            if let Some(p) = spec.get("restartPolicy").and_then(Value::as_str)
                && !restart.contains(&p)
            {
                errors.push(FieldError::not_supported(
                    "spec.template.spec.restartPolicy",
                    json!(p),
                    restart,
                ));
            }
        }
        None => errors.push(FieldError::required("spec.template", "")),
    }
    invalid(rt, object, errors)
}

pub fn job_on_create(rt: &ResourceType, job: &mut Value) -> Result<(), ApiError> {
    job_defaults(job);
    let uid = meta_str(job, "uid").to_string();
    let name = meta_str(job, "name").to_string();
    let manual = job.pointer("/spec/manualSelector").and_then(Value::as_bool) == Some(true);
    if !manual {
        if job.pointer("/spec/selector").is_some_and(|s| !s.is_null()) {
            return invalid(
                rt,
                job,
                vec![FieldError::invalid(
                    "spec.selector",
                    job.pointer("/spec/selector").cloned().unwrap_or_default(),
                    "`selector` will be auto-generated",
                )],
            );
        }
        job["spec"]["selector"] = json!({"matchLabels": {CONTROLLER_UID_LABEL: uid}});
        if job
            .pointer("/spec/template/metadata")
            .is_none_or(|m| !m.is_object())
        {
            job["spec"]["template"]["metadata"] = json!({});
        }
        if let Some(labels) = ensure_labels(job, "/spec/template/metadata") {
            labels.insert(CONTROLLER_UID_LABEL.into(), json!(uid));
            labels.insert(JOB_NAME_LABEL.into(), json!(name));
            labels.insert("controller-uid".into(), json!(uid));
            labels.insert("job-name".into(), json!(name));
        }
    }
    validate_template(rt, job, &["OnFailure", "Never"])?;
    validate_selector_matches(rt, job)
}

pub fn job_on_update(rt: &ResourceType, new: &mut Value, old: &Value) -> Result<(), ApiError> {
    job_defaults(new);
    let mut errors = Vec::new();
    for (field, pointer) in [
        ("spec.selector", "/spec/selector"),
        ("spec.template", "/spec/template"),
        ("spec.completions", "/spec/completions"),
        ("spec.completionMode", "/spec/completionMode"),
    ] {
        if new.pointer(pointer) != old.pointer(pointer) {
            errors.push(FieldError::invalid(
                field,
                new.pointer(pointer).cloned().unwrap_or(Value::Null),
                "field is immutable",
            ));
        }
    }
    invalid(rt, new, errors)
}

fn validate_selector_matches(rt: &ResourceType, object: &Value) -> Result<(), ApiError> {
    let selector = object.pointer("/spec/selector");
    let Some(sel) = selector.filter(|s| !s.is_null()) else {
        return invalid(rt, object, vec![FieldError::required("spec.selector", "")]);
    };
    let parsed = LabelSelector::from_label_selector(Some(sel)).map_err(ApiError::bad_request)?;
    if parsed.requirements.is_empty() {
        return invalid(
            rt,
            object,
            vec![FieldError::invalid(
                "spec.selector",
                sel.clone(),
                "empty selector is invalid for deployment",
            )],
        );
    }
    let template = object
        .pointer("/spec/template")
        .cloned()
        .unwrap_or(Value::Null);
    if !parsed.matches_object(&template) {
        return invalid(
            rt,
            object,
            vec![FieldError::invalid(
                "spec.template.metadata.labels",
                template
                    .pointer("/metadata/labels")
                    .cloned()
                    .unwrap_or(Value::Null),
                "`selector` does not match template `labels`",
            )],
        );
    }
    Ok(())
}

pub fn cronjob_defaults(cj: &mut Value) {
    default_at(cj, &["spec", "concurrencyPolicy"], json!("Allow"));
    default_at(cj, &["spec", "suspend"], json!(false));
    default_at(cj, &["spec", "successfulJobsHistoryLimit"], json!(3));
    default_at(cj, &["spec", "failedJobsHistoryLimit"], json!(1));
    template_spec_defaults(cj, "/spec/jobTemplate/spec/template/spec");
}

/// Defaults and validation of the replicated workload controllers.
pub fn controller_defaults(
    b: Builtin,
    rt: &ResourceType,
    object: &mut Value,
) -> Result<(), ApiError> {
    match b {
        Builtin::StatefulSet => {
            default_at(object, &["spec", "replicas"], json!(1));
            default_at(
                object,
                &["spec", "podManagementPolicy"],
                json!("OrderedReady"),
            );
            default_at(
                object,
                &["spec", "updateStrategy"],
                json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}),
            );
            default_at(object, &["spec", "revisionHistoryLimit"], json!(10));
            default_at(
                object,
                &["spec", "persistentVolumeClaimRetentionPolicy"],
                json!({"whenDeleted": "Retain", "whenScaled": "Retain"}),
            );
        }
        Builtin::Deployment => {
            default_at(object, &["spec", "replicas"], json!(1));
            default_at(
                object,
                &["spec", "strategy"],
                json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}}),
            );
            default_at(object, &["spec", "revisionHistoryLimit"], json!(10));
            default_at(object, &["spec", "progressDeadlineSeconds"], json!(600));
        }
        Builtin::DaemonSet => {
            default_at(
                object,
                &["spec", "updateStrategy"],
                json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}),
            );
            default_at(object, &["spec", "revisionHistoryLimit"], json!(10));
        }
        _ => {
            default_at(object, &["spec", "replicas"], json!(1));
        }
    }
    template_spec_defaults(object, "/spec/template/spec");
    validate_template(rt, object, &["Always"])?;
    validate_selector_matches(rt, object)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::Registry;

    #[test]
    fn jobs_get_a_generated_selector_and_template_labels() {
        let rt = Registry::new(&[]).lookup("batch", "v1", "jobs").unwrap();
        let mut job = json!({"metadata": {"name": "j", "uid": "u1"}, "spec": {"template": {"spec": {
            "restartPolicy": "Never", "containers": [{"name": "c", "image": "i"}]}}}});
        job_on_create(&rt, &mut job).unwrap();
        assert_eq!(
            job["spec"]["selector"]["matchLabels"][CONTROLLER_UID_LABEL],
            "u1"
        );
        assert_eq!(
            job["spec"]["template"]["metadata"]["labels"]["job-name"],
            "j"
        );
        assert_eq!(job["spec"]["backoffLimit"], 6);
        assert_eq!(job["spec"]["completions"], 1);
    }

    #[test]
    fn jobs_may_not_restart_always() {
        let rt = Registry::new(&[]).lookup("batch", "v1", "jobs").unwrap();
        let mut job = json!({"metadata": {"name": "j", "uid": "u1"}, "spec": {"template": {"spec": {
            "containers": [{"name": "c", "image": "i"}]}}}});
        let e = job_on_create(&rt, &mut job).unwrap_err();
        assert!(
            e.message
                .contains("spec.template.spec.restartPolicy: Unsupported value: \"Always\""),
            "{}",
            e.message
        );
    }

    #[test]
    fn statefulset_selectors_must_match_their_template() {
        let rt = Registry::new(&[])
            .lookup("apps", "v1", "statefulsets")
            .unwrap();
        let mut sts = json!({"metadata": {"name": "s"}, "spec": {
            "selector": {"matchLabels": {"app": "x"}},
            "template": {"metadata": {"labels": {"app": "y"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}});
        assert!(controller_defaults(Builtin::StatefulSet, &rt, &mut sts).is_err());
        sts["spec"]["template"]["metadata"]["labels"]["app"] = json!("x");
        controller_defaults(Builtin::StatefulSet, &rt, &mut sts).unwrap();
        assert_eq!(sts["spec"]["replicas"], 1);
    }
}
