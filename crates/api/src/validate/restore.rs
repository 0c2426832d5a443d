//! Semantic checks of a Restore: restore time, ready config (KubeBlocks' CEL rule), selectors, the
//! restore policy for strategy `All`, and status formats.

use crate::parse;
use crate::restore::DataRestorePolicy;
use crate::restore::{PrepareDataConfig, Restore};
use crate::validate::problem::{Problem, child, index};

/// Checks a Restore.
pub fn restore(r: &Restore) -> Vec<Problem> {
    let mut out = Vec::new();
    let spec = &r.spec;
    if let Some(t) = &spec.restore_time
        && let Err(e) = parse::restore_time::parse(t)
    {
        out.push(Problem::error("spec.restoreTime", e.to_string()));
    }
    if let Some(ready) = &spec.ready_config {
        if ready.job_action.is_none() && ready.exec_action.is_none() {
            out.push(Problem::error(
                "spec.readyConfig",
                "at least one exists for jobAction and execAction.",
            ));
        }
        if let Some(job) = &ready.job_action {
            let path = "spec.readyConfig.jobAction.target.podSelector";
            out.extend(parse::selector::validate(
                &job.target.pod_selector.label_selector,
                path,
            ));
            if let Some(policy) = &job.required_policy_for_all_pod_selection
                && policy.data_restore_policy == DataRestorePolicy::OneToMany
                && policy.source_of_one_to_many.is_none()
            {
                out.push(Problem::error(
                    "spec.readyConfig.jobAction.requiredPolicyForAllPodSelection.sourceOfOneToMany",
                    "sourceOfOneToMany is required when dataRestorePolicy is OneToMany",
                ));
            }
        }
        if let Some(target) = ready.exec_action.as_ref().and_then(|e| e.target.as_ref()) {
            out.extend(parse::selector::validate(
                &target.pod_selector,
                "spec.readyConfig.execAction.target.podSelector",
            ));
        }
    }
    if let Some(prepare) = &spec.prepare_data_config {
        out.extend(prepare_data(prepare, "spec.prepareDataConfig"));
    }
    for (i, inc) in spec
        .resources
        .iter()
        .flat_map(|r| r.included.iter().flatten())
        .enumerate()
    {
        if let Some(sel) = &inc.label_selector {
            out.extend(parse::selector::validate(
                sel,
                &child(&index("spec.resources.included", i), "labelSelector"),
            ));
        }
    }
    if let Some(d) = r.status.as_ref().and_then(|s| s.duration.as_deref())
        && let Err(e) = parse::duration::parse(d)
    {
        out.push(Problem::error("status.duration", e.to_string()));
    }
    out
}

fn prepare_data(p: &PrepareDataConfig, path: &str) -> Vec<Problem> {
    let mut out = Vec::new();
    if let Some(src) = &p.data_source_ref
        && src.volume_source.as_deref().unwrap_or_default().is_empty()
        && src.mount_path.as_deref().unwrap_or_default().is_empty()
    {
        out.push(Problem::error(
            child(path, "dataSourceRef"),
            "at least one exists for volumeSource and mountPath.",
        ));
    }
    let claims = p
        .volume_claims
        .iter()
        .flatten()
        .enumerate()
        .map(|(i, c)| (index(&child(path, "volumeClaims"), i), c));
    let templates = p
        .volume_claims_template
        .iter()
        .flat_map(|t| t.templates.iter().enumerate())
        .map(|(i, c)| {
            (
                index(&child(&child(path, "volumeClaimsTemplate"), "templates"), i),
                c,
            )
        });
    for (claim_path, claim) in claims.chain(templates) {
        let vc = &claim.volume_config;
        if vc.volume_source.as_deref().unwrap_or_default().is_empty()
            && vc.mount_path.as_deref().unwrap_or_default().is_empty()
        {
            out.push(Problem::error(
                claim_path,
                "at least one exists for volumeSource and mountPath.",
            ));
        }
    }
    if let Some(policy) = &p.required_policy_for_all_pod_selection
        && policy.data_restore_policy == DataRestorePolicy::OneToMany
        && policy.source_of_one_to_many.is_none()
    {
        out.push(Problem::error(
            child(
                &child(path, "requiredPolicyForAllPodSelection"),
                "sourceOfOneToMany",
            ),
            "sourceOfOneToMany is required when dataRestorePolicy is OneToMany",
        ));
    }
    out
}
