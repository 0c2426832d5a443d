//! KubeBlocks' own incremental ActionSets (kubeblocks-addons: mysql xtrabackup-inc, postgresql
//! wal-g, clickhouse incremental) restoring an Incremental backup: their restore Job (prepareData,
//! or clickhouse's postReady Job) gets every variable their scripts read, in an order where each
//! `$(VAR)` sees what it names, and the paths the scripts build from `DP_BACKUP_ROOT_PATH`, the
//! base and the ancestors lead to each backup's files (§K3.2, §K4.1).

use cairn_api::backup::Backup;
use serde_json::json;

use super::*;
use crate::plan::backup::chain::testing::{completed, with};
use crate::plan::testing_kb_addons::{self as addons, Addon, RestoreStage, value};

const ROOT: &str = "/prod/default/mycluster/pg";

/// The restore of b1 (Incremental on i1, itself on the Full f1, all three under `ROOT`) with
/// the addon's ActionSet, into new volumes (prepareData) or next to the running database
/// (postReady Job), the pods carrying the addon's pod env.
fn observed_for(addon: &Addon) -> Observed {
    let mut o = observed();
    let link = |name: &str, end: u32, parent: &str| {
        with(
            completed(
                name,
                "Incremental",
                "inc",
                "full",
                Some(end),
                &format!("{ROOT}/{name}"),
            ),
            json!({"status": {"parentBackupName": parent, "baseBackupName": "f1"}}),
        )
    };
    let f1 = with(
        completed("f1", "Full", "full", "", Some(10), &format!("{ROOT}/f1")),
        json!({"status": {"startTimestamp": "2026-11-22T09:05:00Z"}}),
    );
    let b1: Backup = with(
        backup(json!({})),
        json!({"metadata": {"labels": {
            "dataprotection.kubeblocks.io/backup-type": "Incremental",
            "dataprotection.kubeblocks.io/backup-policy": "pg-policy"}},
            "status": {"parentBackupName": "i1", "baseBackupName": "f1", "timeRange": null,
                       "completionTimestamp": "2026-11-22T09:40:00Z",
                       "backupMethod": {"name": "inc", "compatibleMethod": "full",
                                        "actionSetName": addon.name}}}),
    );
    o.backup = Some(b1.clone());
    o.backups = vec![f1, link("i1", 20, "f1"), b1];
    o.actionset = Some(actionset(addon.actionset()));
    if addon.restore_stage == RestoreStage::PostReadyJob {
        let mut r = restore(json!({"spec": {"readyConfig": {
            "jobAction": {"target": {"podSelector": {"matchLabels": {"app": "pg"}}}},
            "connectionCredential": {"secretName": "ch-account"}}}}));
        r.spec.prepare_data_config = None;
        o.restore = r;
    }
    addon.add_pod_env(&mut o.pods);
    o
}

/// The env and image of the first restore Job of `addon`.
fn restore_job(addon: &Addon) -> (Vec<(String, String)>, String) {
    let mut o = observed_for(addon);
    let plan = step(&mut o, now());
    let runs = dispatched(&plan.intents);
    assert!(
        !runs.is_empty(),
        "{}: a restore Job is dispatched: {:?}",
        addon.name,
        plan.status.and_then(|s| s.conditions)
    );
    let job = job_of(runs[0].1);
    let image = container_of(&job).image.clone().unwrap_or_default();
    (env_of(&job), image)
}

#[test]
fn kubeblocks_incremental_restore_scripts_get_every_variable_they_read() {
    for addon in addons::all() {
        let (env, _) = restore_job(&addon);
        assert_eq!(
            Addon::missing(addon.restore_reads, &env),
            Vec::<&str>::new(),
            "{} ({}) reads variables its restore Job does not set",
            addon.name,
            addon.source
        );
        assert_eq!(value(&env, "DP_BACKUP_NAME"), "b1", "{}", addon.name);
        assert_eq!(value(&env, "DP_BASE_BACKUP_NAME"), "f1", "{}", addon.name);
        assert_eq!(
            value(&env, "DP_ANCESTOR_INCREMENTAL_BACKUP_NAMES"),
            "i1",
            "{}",
            addon.name
        );
        for (name, expected) in addon.pod_env.iter().filter(|_| {
            // Only a postReady Job runs with the database pod's env (§K3.2).
            addon.restore_stage == RestoreStage::PostReadyJob
        }) {
            assert_eq!(value(&env, name), *expected, "{}", addon.name);
        }
    }
}

#[test]
fn kubeblocks_incremental_restore_env_resolves_every_reference_in_order() {
    for addon in addons::all() {
        let (env, image) = restore_job(&addon);
        addon.assert_expanded(&env, &image);
        // §K3.2: the paths and the chain first, the ActionSet env after them.
        let names: Vec<&str> = env.iter().map(|(n, _)| n.as_str()).collect();
        let at = |name: &str| names.iter().rposition(|n| *n == name).unwrap();
        for entry in addon.env.as_array().unwrap() {
            let name = entry["name"].as_str().unwrap();
            assert!(
                at("DP_ANCESTOR_INCREMENTAL_BACKUP_NAMES") < at(name),
                "{}: {name} of the ActionSet comes after the chain: {names:?}",
                addon.name
            );
        }
    }
}

#[test]
fn kubeblocks_incremental_restore_scripts_find_every_link_of_the_chain() {
    for addon in addons::all() {
        let (env, _) = restore_job(&addon);
        let root = value(&env, "DP_BACKUP_ROOT_PATH");
        let relative = value(&env, "DP_TARGET_RELATIVE_PATH");
        let mut chain = vec![value(&env, "DP_BASE_BACKUP_NAME")];
        chain.extend(
            value(&env, "DP_ANCESTOR_INCREMENTAL_BACKUP_NAMES")
                .split(',')
                .map(str::to_string),
        );
        chain.push(value(&env, "DP_BACKUP_NAME"));
        // ${DP_BACKUP_ROOT_PATH}/${name}/${DP_TARGET_RELATIVE_PATH}, oldest first.
        let paths: Vec<String> = chain
            .iter()
            .map(|name| {
                format!("{root}/{name}/{relative}")
                    .trim_end_matches('/')
                    .to_string()
            })
            .collect();
        assert_eq!(
            paths,
            [
                format!("{ROOT}/f1"),
                format!("{ROOT}/i1"),
                format!("{ROOT}/b1")
            ],
            "{}",
            addon.name
        );
        // wal-g reads the restored backup's own path.
        assert_eq!(
            value(&env, "DP_BACKUP_BASE_PATH").trim_end_matches('/'),
            format!("{ROOT}/b1"),
            "{}",
            addon.name
        );
    }
}
