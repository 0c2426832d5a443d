//! Semantic checks of a BackupPolicy: targets (KubeBlocks' messages, semantics §1.3), methods,
//! selectors.

use std::collections::HashSet;

use crate::backup_policy::{BackupMethod, BackupPolicy};
use crate::parse;
use crate::target::BackupTarget;
use crate::validate::problem::{Problem, child, index};

/// Checks a BackupPolicy.
pub fn backup_policy(p: &BackupPolicy) -> Vec<Problem> {
    let mut out = Vec::new();
    let spec = &p.spec;
    out.extend(target_or_targets(
        spec.target.as_ref(),
        spec.targets.as_deref(),
        "spec",
        true,
    ));
    let mut names = HashSet::new();
    for (i, method) in spec.backup_methods.iter().enumerate() {
        let path = index("spec.backupMethods", i);
        if !names.insert(method.name.as_str()) {
            out.push(Problem::error(
                child(&path, "name"),
                format!("backup method name {} is duplicated", method.name),
            ));
        }
        out.extend(backup_method(method, &path));
    }
    out
}

/// Checks one backup method.
pub fn backup_method(m: &BackupMethod, path: &str) -> Vec<Problem> {
    let mut out = Vec::new();
    let snapshot = m.snapshot_volumes.unwrap_or(false);
    let action_set = m.action_set_name.as_deref().unwrap_or_default();
    if !snapshot && action_set.is_empty() {
        out.push(Problem::error(
            path,
            format!(
                "backup method {} should specify snapshotVolumes or actionSetName",
                m.name
            ),
        ));
    }
    if snapshot && m.target_volumes.is_none() {
        out.push(Problem::error(
            child(path, "targetVolumes"),
            "targetVolumes is required for snapshotVolumes",
        ));
    }
    if m.target.is_some() || m.targets.is_some() {
        out.extend(target_or_targets(
            m.target.as_ref(),
            m.targets.as_deref(),
            path,
            false,
        ));
    }
    out
}

/// `target` and `targets` are exclusive (required: one of them must be set); names in `targets`
/// must be set and unique; selectors must be valid.
fn target_or_targets(
    target: Option<&BackupTarget>,
    targets: Option<&[BackupTarget]>,
    path: &str,
    required: bool,
) -> Vec<Problem> {
    let mut out = Vec::new();
    match (target, targets) {
        (Some(_), Some(_)) => out.push(Problem::error(
            child(path, "targets"),
            "either spec.target or spec.targets: both are set",
        )),
        (None, None) if required => out.push(Problem::error(
            path,
            "either spec.target or spec.targets: neither is set",
        )),
        _ => {}
    }
    if let Some(t) = target {
        out.extend(target_selectors(t, &child(path, "target")));
    }
    let mut seen = HashSet::new();
    for (i, t) in targets.into_iter().flatten().enumerate() {
        let tpath = index(&child(path, "targets"), i);
        match t.name.as_deref().unwrap_or_default() {
            "" => out.push(Problem::error(
                child(&tpath, "name"),
                "target name can not be empty when using \"targets\" field",
            )),
            name if !seen.insert(name) => out.push(Problem::error(
                child(&tpath, "name"),
                "the target name can not be duplicated when using \"targets\" field",
            )),
            _ => {}
        }
        out.extend(target_selectors(t, &tpath));
    }
    out
}

/// Validates the label selectors of a target.
pub fn target_selectors(t: &BackupTarget, path: &str) -> Vec<Problem> {
    let mut out = Vec::new();
    if let Some(ps) = &t.pod_selector {
        let ps_path = child(path, "podSelector");
        out.extend(parse::selector::validate(&ps.label_selector, &ps_path));
        if let Some(fallback) = &ps.fallback_label_selector {
            out.extend(parse::selector::validate(
                fallback,
                &child(&ps_path, "fallbackLabelSelector"),
            ));
        }
    }
    if let Some(sel) = t.resources.as_ref().and_then(|r| r.selector.as_ref()) {
        out.extend(parse::selector::validate(
            sel,
            &child(&child(path, "resources"), "selector"),
        ));
    }
    out
}
