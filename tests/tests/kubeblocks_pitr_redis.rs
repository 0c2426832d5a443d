//! KubeBlocks' own Redis point-in-time recovery run unchanged, end to end, every part real: the
//! `redis-pitr-backup` Continuous ActionSet of apecloud/kubeblocks-addons release-0.9, rendered by
//! Helm when the test runs (`$CAIRN_KUBEBLOCKS_ADDONS`, `cairn_e2e::db::addons`), and the
//! `redis-physical-backup` Full ActionSet with the BackupPolicy KubeBlocks derives for
//! `default/mycluster` (methods `datafile` and `aof`) from `$CAIRN_KUBEBLOCKS_FIXTURES`, all applied
//! byte for byte. A Redis 7 server from Debian's packages in a pod, configured as
//! the addon configures it (AOF with timestamps, an ACL file), takes a Full `datafile` backup; a
//! BackupSchedule entry of the `aof` method makes the archiver that runs the addon's
//! `pitr-backup.sh` (it follows the AOF with `redis-cli`, `redis-check-rdb` and `datasafed push`,
//! and writes the backup info file that becomes the window); keys are written one by one with a
//! whole second free of writes after each, then the accident (FLUSHALL). Two Restores with
//! `restoreTime` run the addon's `pitr-restore.sh` (it pulls the AOF with `datasafed list/pull`
//! and cuts it at the first `#TS:` annotation after `DP_RESTORE_TIME`) and its postReady
//! `restore-keys.sh`; a Redis started on each restored volume holds exactly the keys written up to
//! that time: to a second in the middle, the first half; to the second before the accident,
//! every key. The ActionSet says `baseBackupRequired: false`, so each restore is the continuous
//! set alone although a Full backup exists. Real kubectl, localkube, control plane and agent,
//! each its own process.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::Context as _;
use cairn_api::backup::Backup;
use cairn_api::restore::Restore;
use cairn_api::well_known;
use cairn_e2e::db::deploy::{self, PodSpec};
use cairn_e2e::db::redis::{self, Redis};
use cairn_e2e::db::{addons, fixtures, host, round_trip};
use cairn_e2e::dp;
use cairn_e2e::stack::{self, TestStack};
use cairn_e2e::wait::{Check, until};
use jiff::{SignedDuration, Timestamp};
use kube::api::Api;
use serde_json::json;

/// The namespace, cluster, component, Secret and policy the derived BackupPolicy names.
const NS: &str = "default";
const CLUSTER: &str = "mycluster";
const COMPONENT: &str = "redis";
const SECRET: &str = "mycluster-conn-credential";
const POLICY: &str = "mycluster-redis-backup-policy";
const SCHEDULE: &str = "mycluster-redis-pitr";
const PASSWORD: &str = "redis-Pitr-9d2f";
/// KubeBlocks' manifests from `$CAIRN_KUBEBLOCKS_FIXTURES`, applied with `kubectl apply -f`.
const FIXTURES: &[&str] = &[
    "addons-0.9_redis_backupactionset_redis-physical-backup.yaml",
    "derived-addons-0.9_redis_backuppolicytemplate_redis-backup-policy-template_0_mycluster-redis-backup-policy.yaml",
];
/// Where `redis-pitr-backup` is rendered from: kubeblocks-addons release-0.9, the commit the
/// fixtures were rendered at.
const ADDONS_COMMIT: &str = "435b7240e0657a558a2877ed052e9258ca03ab18";
const PITR_TEMPLATE: &str = "redis/templates/backupactionset.yaml";
const PITR_ACTIONSET: &str = "redis-pitr-backup";
/// How long archiving, a restore or a pod may take (the machine is shared and loaded).
const WAIT: Duration = Duration::from_secs(240);
/// Keys written one by one after the Full backup.
const WRITES: usize = 6;
/// How far into its second a write starts (the AOF's `#TS:` annotations are whole seconds).
const INTO_SECOND: Duration = Duration::from_millis(250);

/// The schedule's continuous Backup, when there is one.
async fn continuous_backup(t: &TestStack) -> anyhow::Result<Option<Backup>> {
    dp::schedule_backup(&t.client, NS, SCHEDULE).await
}

/// The end of a Backup's `timeRange`.
fn window_end(backup: &Backup) -> Option<Timestamp> {
    backup
        .status
        .as_ref()
        .and_then(|s| s.time_range.as_ref())
        .and_then(|r| r.end.as_ref())
        .map(|e| e.0)
}

/// Waits until the continuous Backup is Running with a window that ends at or after `after`,
/// calling `meanwhile` between looks (to keep the AOF growing).
async fn archived_past(
    t: &TestStack,
    after: Timestamp,
    what: &str,
    meanwhile: impl AsyncFn() -> anyhow::Result<()>,
) -> anyhow::Result<Backup> {
    until(what, WAIT, async || {
        meanwhile().await?;
        let Some(backup) = continuous_backup(t).await? else {
            return Ok(Check::Pending("no continuous Backup yet".into()));
        };
        let phase = dp::backup_phase(&backup);
        if phase == "Failed" {
            anyhow::bail!(
                "the continuous Backup failed: {}",
                dp::failure_reason(&backup)
            );
        }
        Ok(match window_end(&backup) {
            Some(end) if phase == "Running" && end >= after => Check::Done(backup),
            _ => Check::Pending(format!(
                "{phase}, status {}",
                serde_json::to_string(&backup.status).unwrap_or_default()
            )),
        })
    })
    .await
}

/// Sleeps until `INTO_SECOND` past the start of the whole second `second` (unix seconds).
async fn sleep_until_second(second: i64) -> anyhow::Result<()> {
    let target = Timestamp::from_second(second)?.checked_add(INTO_SECOND)?;
    let wait = Timestamp::now().duration_until(target);
    if wait.is_positive() {
        tokio::time::sleep(Duration::try_from(wait)?).await;
    }
    Ok(())
}

/// One key written (`SET`), with the whole second after it in which nothing was written.
#[derive(Debug, Clone)]
struct Written {
    key: String,
    /// The unix second after the write's reply: no write, and no accident, falls in it.
    free_second: i64,
}

/// Waits until the Restore's prepareData stage is done (condition `PrepareData` True).
async fn prepared(t: &TestStack, name: &str) -> anyhow::Result<()> {
    let api: Api<Restore> = Api::namespaced(t.client.clone(), NS);
    until(
        &format!("Restore {name} to prepare its data"),
        WAIT,
        async || {
            let Some(restore) = api.get_opt(name).await? else {
                return Ok(Check::Pending("no Restore".into()));
            };
            let status = restore.status.clone().unwrap_or_default();
            if status.phase == Some(cairn_api::restore::RestorePhase::Failed) {
                anyhow::bail!("Restore {name} failed: {}", serde_json::to_string(&status)?);
            }
            let done = status.conditions.iter().flatten().any(|c| {
                c.type_ == well_known::conditions::restore::CONDITION_PREPARE_DATA
                    && c.status == "True"
            });
            Ok(if done {
                Check::Done(())
            } else {
                Check::Pending(serde_json::to_string(&status)?)
            })
        },
    )
    .await
}

/// Restores the continuous Backup to `at` into a new volume (the addon's prepareData), starts
/// Redis on it (the postReady job waits for it), and returns the keys it holds.
async fn restore_to(
    t: &TestStack,
    name: &str,
    continuous: &str,
    at: Timestamp,
) -> anyhow::Result<BTreeSet<String>> {
    let pvc = format!("{name}-data");
    let instance = format!("{CLUSTER}-{name}");
    let restore = json!({
        "apiVersion": "dataprotection.kubeblocks.io/v1alpha1", "kind": "Restore",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "backup": {"name": continuous, "namespace": NS},
            "restoreTime": cairn_api::parse::restore_time::format(at),
            "prepareDataConfig": {"volumeClaimRestorePolicy": "Parallel", "volumeClaims": [{
                "metadata": {"name": pvc, "namespace": NS},
                "volumeSource": "data",
                "volumeClaimSpec": {"accessModes": ["ReadWriteOnce"],
                                    "resources": {"requests": {"storage": "2Gi"}}}}]},
            "readyConfig": {"jobAction": {"target": {"podSelector": {"matchLabels": {
                "app.kubernetes.io/instance": instance}}}}}
        }
    });
    t.kubectl.create(&serde_json::to_string(&restore)?).await?;
    prepared(t, name).await?;
    let pod = format!("{instance}-0");
    let restored = deploy::pod(
        t,
        &PodSpec {
            template: "db/redis-aof-pod.yaml",
            namespace: NS,
            pod: &pod,
            pvc: &pvc,
            instance: &instance,
            component: COMPONENT,
            secret: SECRET,
            new_volume: false,
        },
    )
    .await?;
    let done = dp::restore_completed(&t.client, NS, name, WAIT).await?;
    let actions = done.status.and_then(|s| s.actions).unwrap_or_default();
    let sets: Vec<String> = actions
        .prepare_data
        .unwrap_or_default()
        .into_iter()
        .map(|a| a.backup_name)
        .collect();
    anyhow::ensure!(
        sets == [continuous.to_string()],
        "baseBackupRequired: false restores the continuous set alone, though a Full backup exists: {sets:?}"
    );
    anyhow::ensure!(
        !actions.post_ready.unwrap_or_default().is_empty(),
        "the addon's postReady job (restore-keys.sh) ran"
    );
    let copy = Redis {
        port: restored.port,
        password: PASSWORD.into(),
    };
    let keys = copy.command(&["KEYS", "*"]).await?;
    Ok(keys
        .lines()
        .filter(|k| !k.is_empty())
        .map(str::to_string)
        .collect())
}

#[tokio::test(flavor = "multi_thread")]
async fn kubeblocks_redis_pitr_backup_restores_exactly_the_keys_written_up_to_the_time()
-> anyhow::Result<()> {
    host::require(redis::TOOLS)?;
    host::require(&["redis-check-rdb"])?;
    let test = "kubeblocks_redis_pitr_backup";
    let Some(dir) = fixtures::dir(test)? else {
        return Ok(());
    };
    let Some(addons_git) = addons::git_dir(test)? else {
        return Ok(());
    };
    stack::run("kubeblocks-pitr-redis", async |t| {
        for name in FIXTURES {
            fixtures::apply(t, &dir, name).await?;
        }
        let rendered = addons::render(&addons_git, ADDONS_COMMIT, "redis", PITR_TEMPLATE, &t.scratch)?;
        let pitr = rendered
            .iter()
            .find(|doc| doc.contains(&format!("\n  name: {PITR_ACTIONSET}\n")))
            .with_context(|| format!("{PITR_TEMPLATE} at {ADDONS_COMMIT} has no {PITR_ACTIONSET}"))?;
        t.kubectl.apply(pitr).await?;
        deploy::account(t, NS, SECRET, "default", PASSWORD).await?;
        let source_pod = format!("{CLUSTER}-{COMPONENT}-0");
        let source = deploy::pod(
            t,
            &PodSpec {
                template: "db/redis-aof-pod.yaml",
                namespace: NS,
                pod: &source_pod,
                pvc: &format!("data-{source_pod}"),
                instance: CLUSTER,
                component: COMPONENT,
                secret: SECRET,
                new_volume: true,
            },
        )
        .await?;
        let db = Redis {
            port: source.port,
            password: PASSWORD.into(),
        };
        let mut expected_first: BTreeSet<String> = BTreeSet::new();
        for i in 0..20 {
            let key = format!("before:{i}");
            db.command(&["SET", &key, &format!("value {i}")]).await?;
            expected_first.insert(key);
        }

        // The addon's Full ActionSet (BGSAVE, tar | datasafed push): a base a restore could use.
        round_trip::backup(
            t,
            NS,
            "db/backup.yaml",
            &[
                ("BACKUP", "mycluster-full"),
                ("POLICY", POLICY),
                ("METHOD", "datafile"),
            ],
        )
        .await?;

        // Continuous archiving of the AOF from the schedule's `aof` entry.
        let schedule = json!({
            "apiVersion": "dataprotection.kubeblocks.io/v1alpha1", "kind": "BackupSchedule",
            "metadata": {"name": SCHEDULE, "namespace": NS},
            "spec": {"backupPolicyName": POLICY, "schedules": [{
                "name": "aof", "backupMethod": "aof", "enabled": true,
                "cronExpression": "*/5 * * * *", "retentionPeriod": "1d"}]}
        });
        t.kubectl.apply(&serde_json::to_string(&schedule)?).await?;
        let archiving = archived_past(
            t,
            Timestamp::UNIX_EPOCH,
            "AOF archiving to start",
            async || Ok(()),
        )
        .await?;
        let continuous = archiving.metadata.name.clone().unwrap_or_default();

        // Keys one by one, each followed by a whole second with no write, then the accident.
        let mut written: Vec<Written> = Vec::new();
        let mut next = Timestamp::now().as_second() + 1;
        for i in 0..WRITES {
            sleep_until_second(next).await?;
            let key = format!("write:{i}");
            db.command(&["SET", &key, &format!("written {i}")]).await?;
            let replied = Timestamp::now().as_second();
            written.push(Written {
                key,
                free_second: replied + 1,
            });
            next = replied + 2;
        }
        sleep_until_second(next).await?;
        db.command(&["FLUSHALL"]).await?;
        let accident = Timestamp::now();
        println!("written: {written:?}, the accident at {accident}");

        let middle = &written[WRITES / 2 - 1];
        let last = &written[WRITES - 1];
        let to_middle = Timestamp::from_second(middle.free_second)?;
        let before_accident = Timestamp::from_second(last.free_second)?;
        anyhow::ensure!(before_accident < accident, "the accident came after {before_accident}");
        expected_first.extend(written[..WRITES / 2].iter().map(|w| w.key.clone()));
        let mut expected_all = expected_first.clone();
        expected_all.extend(written.iter().map(|w| w.key.clone()));

        // The archive reaches past the accident: keep the AOF growing, a key a second, until the
        // window's end (the addon's backup info file) is there.
        let ticks = std::sync::atomic::AtomicU64::new(0);
        archived_past(
            t,
            accident.checked_add(SignedDuration::from_secs(3))?,
            "the window to reach past the accident",
            async || {
                let n = ticks.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if n.is_multiple_of(10) {
                    db.command(&["SET", &format!("after:{n}"), "1"]).await?;
                }
                Ok(())
            },
        )
        .await?;

        let first = restore_to(t, "pitr-middle", &continuous, to_middle).await?;
        anyhow::ensure!(
            first == expected_first,
            "restored to {to_middle}: keys {first:?}, expected exactly those written up to it {expected_first:?}"
        );
        let second = restore_to(t, "pitr-before-accident", &continuous, before_accident).await?;
        anyhow::ensure!(
            second == expected_all,
            "restored to {before_accident}: keys {second:?}, expected every key written before the accident {expected_all:?}"
        );
        Ok(())
    })
    .await
}
