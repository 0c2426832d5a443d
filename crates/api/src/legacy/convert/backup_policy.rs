//! Old BackupPolicy → BackupPolicy (methods and target) + BackupSchedule (schedules and retention),
//! as KubeBlocks' 0.7 upgrade transformer did (semantics §8.3).

use crate::well_known;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::backup_policy::{BackupMethod, BackupPolicy, BackupPolicySpec};
use crate::backup_schedule::{BackupSchedule, BackupScheduleSpec, SchedulePolicy};
use crate::common::ConnectionCredential;
use crate::legacy::backup_policy::{self as old, BasePolicy};
use crate::legacy::convert::{
    DATAFILE_METHOD, LOGFILE_METHOD, SNAPSHOT_METHOD, Warning, Warnings, carry_metadata,
};
use crate::legacy::target::TargetCluster;
use crate::target::{BackupTarget, PodSelector};

/// The name of the BackupSchedule made from a policy: `…-backup-policy` becomes `…-backup-schedule`.
pub fn schedule_name(policy: &str) -> String {
    match policy.strip_suffix("-backup-policy") {
        Some(base) => format!("{base}-backup-schedule"),
        None => format!("{policy}-schedule"),
    }
}

/// Converts an old BackupPolicy; the schedule is `None` when the old policy had no schedule.
pub fn convert(p: &old::BackupPolicy) -> (BackupPolicy, Option<BackupSchedule>, Vec<Warning>) {
    let mut w = Warnings::new("BackupPolicy", &p.metadata);
    let spec = &p.spec;
    let mut methods = Vec::new();
    let mut target: Option<(String, TargetCluster)> = None;
    let mut backoff: Option<i32> = None;
    let mut repo: Option<String> = None;
    let mut note_base = |section: &str, base: &BasePolicy, w: &mut Warnings| {
        match &target {
            None => target = Some((section.to_string(), base.target.clone())),
            Some((first, t)) if *t != base.target => w.add(
                &format!("spec.{section}.target"),
                format!("differs from spec.{first}.target; the new policy has one target, spec.{first}.target was kept"),
            ),
            _ => {}
        }
        if let Some(limit) = base.backups_history_limit {
            w.add(
                &format!("spec.{section}.backupsHistoryLimit"),
                format!(
                    "no equivalent ({limit}); backups expire by the schedule's retentionPeriod"
                ),
            );
        }
        if let Some(attempts) = base.on_fail_attempted {
            backoff = Some(backoff.map_or(attempts, |b| b.max(attempts)));
        }
        if base
            .backup_status_updates
            .as_ref()
            .is_some_and(|u| !u.is_empty())
        {
            w.add(
                &format!("spec.{section}.backupStatusUpdates"),
                "no equivalent; the backup action writes its status through the backup info file",
            );
        }
    };
    if let Some(snapshot) = &spec.snapshot {
        note_base("snapshot", &snapshot.base, &mut w);
        if snapshot.hooks.is_some() {
            w.add("spec.snapshot.hooks", "no equivalent in the policy; put the commands in an ActionSet's preBackup/postBackup exec actions");
        }
        w.add("spec.snapshot", "the new volume-snapshot method needs targetVolumes (the volumes to snapshot), which the old policy does not name; fill it in");
        methods.push(BackupMethod {
            name: SNAPSHOT_METHOD.to_string(),
            snapshot_volumes: Some(true),
            ..BackupMethod::default()
        });
    }
    for (section, common, method) in [
        ("datafile", &spec.datafile, DATAFILE_METHOD),
        ("logfile", &spec.logfile, LOGFILE_METHOD),
    ] {
        let Some(common) = common else { continue };
        note_base(section, &common.base, &mut w);
        if let Some(pvc) = &common.persistent_volume_claim {
            let name = pvc.name.as_deref().unwrap_or("<unnamed>");
            w.add(
                &format!("spec.{section}.persistentVolumeClaim"),
                format!("no equivalent; backup data goes to a BackupRepo now (e.g. one of StorageProvider pvc for PVC {name})"),
            );
        }
        match (&repo, &common.backup_repo_name) {
            (None, Some(r)) => repo = Some(r.clone()),
            (Some(a), Some(b)) if a != b => w.add(
                &format!("spec.{section}.backupRepoName"),
                format!("differs from {a}, which was kept"),
            ),
            _ => {}
        }
        let tool = common.backup_tool_name.clone();
        if tool.is_none() {
            w.add(&format!("spec.{section}.backupToolName"), "missing: the converted method has no actionSetName; set it to the converted ActionSet");
        }
        methods.push(BackupMethod {
            name: method.to_string(),
            action_set_name: tool,
            ..BackupMethod::default()
        });
    }
    if let Some(b) = backoff.filter(|b| !(0..=10).contains(b)) {
        w.add(
            "spec.*.onFailAttempted",
            format!("{b} is outside backoffLimit's 0..10 and was clamped"),
        );
    }
    let path_prefix = p
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(well_known::annotation::PATH_PREFIX))
        .cloned();
    if p.status.is_some() {
        w.add(
            "status",
            "not converted; the controller recomputes the status of the new policy",
        );
    }
    let policy = BackupPolicy {
        metadata: carry_metadata(&p.metadata),
        spec: BackupPolicySpec {
            backup_repo_name: repo,
            path_prefix,
            backoff_limit: backoff.map(|b| b.clamp(0, 10)),
            target: target.map(|(_, t)| convert_target(&t)),
            targets: None,
            backup_methods: methods,
            use_kopia: None,
            encryption_config: None,
        },
        status: None,
    };
    let schedule = convert_schedule(p, &mut w);
    (policy, schedule, w.into_vec())
}

/// labelsSelector + secret → podSelector + connectionCredential.
pub fn convert_target(t: &TargetCluster) -> BackupTarget {
    BackupTarget {
        pod_selector: Some(PodSelector {
            label_selector: t.labels_selector.clone(),
            ..PodSelector::default()
        }),
        connection_credential: t.secret.as_ref().map(|s| ConnectionCredential {
            secret_name: s.name.clone(),
            username_key: s.username_key.clone(),
            password_key: s.password_key.clone(),
            host_key: None,
            port_key: None,
        }),
        ..BackupTarget::default()
    }
}

/// The old TTL (`<n>d`/`<n>h`, any case) as a retention period.
fn retention_from_ttl(ttl: &str) -> Option<String> {
    let lower = ttl.trim().to_ascii_lowercase();
    let number = lower
        .strip_suffix('d')
        .or_else(|| lower.strip_suffix('h'))?;
    number.parse::<u32>().ok()?;
    Some(lower)
}

fn convert_schedule(p: &old::BackupPolicy, w: &mut Warnings) -> Option<BackupSchedule> {
    let schedule = p.spec.schedule.as_ref()?;
    let ttl = p.spec.retention.as_ref().and_then(|r| r.ttl.as_deref());
    let retention = ttl.and_then(|t| {
        let r = retention_from_ttl(t);
        if r.is_none() {
            w.add("spec.retention.ttl", format!("{t:?} is not <n>d or <n>h (KubeBlocks read it as 0); the schedules keep backups for the default 7d"));
        }
        r
    });
    let mut schedules = Vec::new();
    for (method, policy, section) in [
        (
            SNAPSHOT_METHOD,
            &schedule.snapshot,
            &p.spec.snapshot.is_some(),
        ),
        (
            DATAFILE_METHOD,
            &schedule.datafile,
            &p.spec.datafile.is_some(),
        ),
        (LOGFILE_METHOD, &schedule.logfile, &p.spec.logfile.is_some()),
    ] {
        let Some(policy) = policy else { continue };
        if !section {
            w.add(
                &format!("spec.schedule.{}", method_section(method)),
                "schedules a backup type the policy does not configure; dropped",
            );
            continue;
        }
        schedules.push(SchedulePolicy {
            enabled: Some(policy.enable),
            name: Some(method.to_string()),
            backup_method: method.to_string(),
            cron_expression: policy.cron_expression.clone(),
            retention_period: retention.clone(),
            parameters: None,
        });
    }
    if schedules.is_empty() {
        return None;
    }
    let policy_name = p.metadata.name.clone().unwrap_or_default();
    Some(BackupSchedule {
        metadata: ObjectMeta {
            name: Some(schedule_name(&policy_name)),
            namespace: p.metadata.namespace.clone(),
            labels: p.metadata.labels.clone(),
            ..ObjectMeta::default()
        },
        spec: BackupScheduleSpec {
            backup_policy_name: policy_name,
            starting_deadline_minutes: schedule.starting_deadline_minutes,
            schedules,
        },
        status: None,
    })
}

fn method_section(method: &str) -> &'static str {
    match method {
        SNAPSHOT_METHOD => "snapshot",
        DATAFILE_METHOD => "datafile",
        _ => "logfile",
    }
}
