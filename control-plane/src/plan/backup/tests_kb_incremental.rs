//! KubeBlocks' own incremental ActionSets (kubeblocks-addons: mysql xtrabackup-inc, postgresql
//! wal-g, clickhouse incremental) get, in their backup Job, every variable their scripts read,
//! in an order where each `$(VAR)` sees what it names, and the paths their scripts build lead to
//! the parent's files (§K3.1, §K2.7).

use serde_json::json;

use super::*;
use crate::plan::backup::chain::testing::completed as stored;
use crate::plan::testing_kb_addons::{self as addons, Addon, value};

/// Backup b1 of the addon's incremental method `inc`, whose parent is the Full f1 of method
/// `full` stored beside it, on a pod whose first container has the addon's pod env.
fn observed_for(addon: &Addon) -> Observed {
    let mut o = observed();
    o.policy = Some(policy(json!({"spec": {"backupMethods": [
        {"name": "full", "actionSetName": "full-as"},
        {"name": "inc", "actionSetName": addon.name, "compatibleMethod": "full",
         "targetVolumes": {"volumeMounts": [{"name": "data", "mountPath": "/var/lib/data"}]}}
    ]}})));
    o.backup = backup(json!({"spec": {"backupMethod": "inc"}}));
    o.actionset = Some(actionset(addon.actionset()));
    o.backups = vec![stored(
        "f1",
        "Full",
        "full",
        "",
        Some(10),
        "/prod/default/mycluster/postgresql/f1",
    )];
    addon.add_pod_env(&mut o.pods);
    o
}

/// The env and image of the backupData Job of `addon`.
fn backup_job(addon: &Addon) -> (Vec<(String, String)>, String) {
    let mut o = observed_for(addon);
    let plan = step(&mut o, now());
    let status = plan.status.clone().unwrap();
    assert_eq!(
        status.phase,
        Some(BackupPhase::Running),
        "{}: {:?}",
        addon.name,
        status.failure_reason
    );
    let runs = dispatched(&plan.intents);
    assert_eq!(runs.len(), 1, "{}: one backupData Job", addon.name);
    let job = job_of(runs[0].1);
    let image = container_of(&job).image.clone().unwrap_or_default();
    (env_of(&job), image)
}

#[test]
fn kubeblocks_incremental_backup_scripts_get_every_variable_they_read() {
    for addon in addons::all() {
        let (env, _) = backup_job(&addon);
        assert_eq!(
            Addon::missing(addon.backup_reads, &env),
            Vec::<&str>::new(),
            "{} ({}) reads variables its backup Job does not set",
            addon.name,
            addon.source
        );
        assert_eq!(value(&env, "DP_PARENT_BACKUP_NAME"), "f1", "{}", addon.name);
        assert_eq!(value(&env, "DP_BASE_BACKUP_NAME"), "f1", "{}", addon.name);
        assert_eq!(value(&env, "DP_BACKUP_NAME"), "b1", "{}", addon.name);
        // The pod's own env reaches the Job (clickhouse's admin account).
        for (name, expected) in addon.pod_env {
            assert_eq!(value(&env, name), *expected, "{}", addon.name);
        }
    }
}

#[test]
fn kubeblocks_incremental_backup_env_resolves_every_reference_in_order() {
    for addon in addons::all() {
        let (env, image) = backup_job(&addon);
        addon.assert_expanded(&env, &image);
        // §K3.1: the ActionSet env, then KB_NAMESPACE, then the chain (item 6).
        let names: Vec<&str> = env.iter().map(|(n, _)| n.as_str()).collect();
        let at = |name: &str| {
            names
                .iter()
                .rposition(|n| *n == name)
                .unwrap_or_else(|| panic!("{}: {name} is not set", addon.name))
        };
        let chain = [
            "DP_PARENT_BACKUP_NAME",
            "DP_BASE_BACKUP_NAME",
            "DP_TARGET_RELATIVE_PATH",
            "DP_BACKUP_ROOT_PATH",
        ];
        let positions: Vec<usize> = chain.iter().map(|n| at(n)).collect();
        assert!(
            positions.windows(2).all(|w| w[0] < w[1]) && at("KB_NAMESPACE") < positions[0],
            "{}: the chain variables follow KB_NAMESPACE in KubeBlocks' order: {names:?}",
            addon.name
        );
        for entry in addon.env.as_array().unwrap() {
            let name = entry["name"].as_str().unwrap();
            assert!(
                at(name) < at("KB_NAMESPACE"),
                "{}: the ActionSet env ({name}) comes before KB_NAMESPACE",
                addon.name
            );
        }
    }
}

#[test]
fn kubeblocks_incremental_backup_scripts_find_their_parent_where_it_is() {
    for addon in addons::all() {
        let (env, _) = backup_job(&addon);
        let root = value(&env, "DP_BACKUP_ROOT_PATH");
        let relative = value(&env, "DP_TARGET_RELATIVE_PATH");
        let parent = value(&env, "DP_PARENT_BACKUP_NAME");
        // xtrabackup-inc and clickhouse: ${DP_BACKUP_ROOT_PATH}/${DP_PARENT_BACKUP_NAME}/${DP_TARGET_RELATIVE_PATH}
        let from_root = format!("{root}/{parent}/{relative}");
        assert_eq!(
            from_root.trim_end_matches('/'),
            "/prod/default/mycluster/postgresql/f1",
            "{}",
            addon.name
        );
        // wal-g: $(dirname ${DP_BACKUP_BASE_PATH})/${DP_PARENT_BACKUP_NAME}
        let base = value(&env, "DP_BACKUP_BASE_PATH");
        let dirname = base.rsplit_once('/').map(|(d, _)| d).unwrap_or_default();
        assert_eq!(
            format!("{dirname}/{parent}"),
            "/prod/default/mycluster/postgresql/f1",
            "{}",
            addon.name
        );
    }
}

#[test]
fn the_job_may_read_the_parent_it_is_told_about() {
    let addon = addons::mysql_xtrabackup_inc();
    let mut o = observed_for(&addon);
    let plan = step(&mut o, now());
    let grant = grant_of(dispatched(&plan.intents)[0].1);
    assert!(
        grant
            .read_only_prefixes
            .iter()
            .any(|p| p == "/prod/default/mycluster/postgresql/f1"),
        "{:?}",
        grant.read_only_prefixes
    );
}
