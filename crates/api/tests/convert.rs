//! Old-API objects (KubeBlocks ≤ 0.6) converted to the new API, with a warning per field that has no equivalent.

use std::path::Path;

use cairn_api::actionset::BackupType;
use cairn_api::backup::BackupPhase;
use cairn_api::legacy::convert::{self, Conversion};
use cairn_api::object::ApiObject;
use cairn_api::validate::manifest::{Checker, UnknownFields};
use cairn_api::validate::{self, Severity};
use serde_json::Value;

fn convert_file(name: &str) -> Conversion {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/corpus/legacy")
        .join(name);
    let text = std::fs::read_to_string(&path).expect("legacy corpus file");
    let docs: Vec<Value> = serde_saphyr::from_multiple(&text).expect("YAML");
    let objects: Vec<ApiObject> = docs
        .into_iter()
        .filter(|d| !d.is_null())
        .map(|d| ApiObject::from_value(d).expect("old objects read"))
        .collect();
    convert::convert(&objects)
}

fn warnings(c: &Conversion) -> Vec<String> {
    c.warnings.iter().map(ToString::to_string).collect()
}

fn has_warning(c: &Conversion, prefix: &str) -> bool {
    warnings(c).iter().any(|w| w.starts_with(prefix))
}

#[test]
fn a_backup_tool_becomes_an_actionset_of_the_same_name() {
    let c = convert_file("mysql-0.6.yaml");
    let ApiObject::ActionSet(full) = &c.objects[0] else {
        panic!("first object is an ActionSet: {:?}", c.objects[0])
    };
    assert_eq!(
        full.metadata.name.as_deref(),
        Some("xtrabackup-for-apecloud-mysql")
    );
    assert_eq!(full.spec.backup_type, BackupType::Full);
    let data = &full.spec.backup.as_ref().expect("backup").backup_data.job;
    assert_eq!(
        data.base.image,
        "registry.cn-hangzhou.aliyuncs.com/apecloud/percona-xtrabackup"
    );
    assert_eq!(data.base.command[0], "sh");
    assert_eq!(data.run_on_target_pod_node, Some(true));
    let env = full.spec.env.as_ref().expect("env");
    let value = |n: &str| {
        env.iter()
            .find(|e| e.name == n)
            .and_then(|e| e.value.clone())
    };
    assert_eq!(value("DATA_DIR").as_deref(), Some("/data/mysql/data"));
    assert_eq!(value("BACKUP_NAME").as_deref(), Some("$(DP_BACKUP_NAME)"));
    assert_eq!(value("DB_HOST").as_deref(), Some("$(DP_DB_HOST)"));
    assert!(
        full.spec
            .restore
            .as_ref()
            .and_then(|r| r.prepare_data.as_ref())
            .is_some()
    );
    assert!(has_warning(
        &c,
        "BackupTool xtrabackup-for-apecloud-mysql: spec.resources: no equivalent in ActionSet"
    ));

    let ApiObject::ActionSet(pitr) = &c.objects[1] else {
        panic!("second object is an ActionSet")
    };
    assert_eq!(pitr.spec.backup_type, BackupType::Continuous);
    assert_eq!(
        pitr.spec
            .restore
            .as_ref()
            .and_then(|r| r.post_ready.as_ref())
            .map(Vec::len),
        Some(1)
    );
    assert!(has_warning(
        &c,
        "BackupTool apecloud-mysql-pitr: spec.logical.podScope: no equivalent"
    ));
}

#[test]
fn an_old_policy_becomes_a_policy_and_a_schedule() {
    let c = convert_file("mysql-0.6.yaml");
    let ApiObject::BackupPolicy(p) = &c.objects[2] else {
        panic!("a BackupPolicy: {:?}", c.objects[2])
    };
    let methods: Vec<_> = p
        .spec
        .backup_methods
        .iter()
        .map(|m| (m.name.as_str(), m.action_set_name.as_deref()))
        .collect();
    assert_eq!(
        methods,
        [
            ("datafile", Some("xtrabackup-for-apecloud-mysql")),
            ("logfile", Some("apecloud-mysql-pitr"))
        ]
    );
    assert_eq!(p.spec.backup_repo_name.as_deref(), Some("s3-repo"));
    assert_eq!(p.spec.path_prefix.as_deref(), Some("/mycluster/mysql"));
    assert_eq!(p.spec.backoff_limit, Some(3));
    let target = p.spec.target.as_ref().expect("target");
    assert_eq!(
        target
            .connection_credential
            .as_ref()
            .map(|c| c.secret_name.as_str()),
        Some("mycluster-conn-credential")
    );
    let labels = target
        .pod_selector
        .as_ref()
        .and_then(|s| s.label_selector.match_labels.clone())
        .expect("labels");
    assert_eq!(
        labels.get("kubeblocks.io/role").map(String::as_str),
        Some("leader")
    );

    let ApiObject::BackupSchedule(s) = &c.objects[3] else {
        panic!("a BackupSchedule: {:?}", c.objects[3])
    };
    assert_eq!(
        s.metadata.name.as_deref(),
        Some("mycluster-mysql-backup-schedule")
    );
    assert_eq!(s.spec.backup_policy_name, "mycluster-mysql-backup-policy");
    assert_eq!(s.spec.starting_deadline_minutes, Some(120));
    let schedules: Vec<_> = s
        .spec
        .schedules
        .iter()
        .map(|x| {
            (
                x.backup_method.as_str(),
                x.cron_expression.as_str(),
                x.enabled,
                x.retention_period.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        schedules,
        [
            ("datafile", "0 18 * * *", Some(true), Some("7d")),
            ("logfile", "*/5 * * * *", Some(false), Some("7d"))
        ]
    );
    for expected in [
        "BackupPolicy default/mycluster-mysql-backup-policy: spec.datafile.backupsHistoryLimit: no equivalent (7)",
        "BackupPolicy default/mycluster-mysql-backup-policy: spec.datafile.backupStatusUpdates: no equivalent",
        "BackupPolicy default/mycluster-mysql-backup-policy: spec.datafile.persistentVolumeClaim: no equivalent",
        "BackupPolicy default/mycluster-mysql-backup-policy: status: not converted",
    ] {
        assert!(
            has_warning(&c, expected),
            "missing {expected:?} in {:#?}",
            warnings(&c)
        );
    }
}

#[test]
fn an_old_backup_keeps_its_status_in_the_new_shape() {
    let c = convert_file("mysql-0.6.yaml");
    let ApiObject::Backup(b) = &c.objects[4] else {
        panic!("a Backup: {:?}", c.objects[4])
    };
    assert_eq!(b.spec.backup_method, "datafile");
    let s = b.status.as_ref().expect("status");
    assert_eq!(s.phase, Some(BackupPhase::Completed));
    assert_eq!(
        s.path.as_deref(),
        Some("/default/mycluster/mysql/backup-default-mycluster-20230501180000")
    );
    assert_eq!(
        s.time_range
            .as_ref()
            .and_then(|t| t.end.as_ref())
            .map(|t| t.0.to_string())
            .as_deref(),
        Some("2023-05-01T18:03:59Z")
    );
    assert_eq!(
        s.backup_method
            .as_ref()
            .and_then(|m| m.action_set_name.as_deref()),
        Some("xtrabackup-for-apecloud-mysql")
    );
    let extras = &s.extras.as_ref().expect("extras")[0];
    assert_eq!(
        extras.get("checksum").map(String::as_str),
        Some("9e107d9d372bb6826bd81d3542a419d6")
    );
    assert_eq!(
        extras.get("engine").map(String::as_str),
        Some("apecloud-mysql")
    );
    assert!(has_warning(
        &c,
        "Backup default/backup-default-mycluster-20230501180000: status.sourceCluster: no equivalent"
    ));

    let ApiObject::Backup(logs) = &c.objects[5] else {
        panic!("a Backup")
    };
    assert_eq!(logs.spec.backup_method, "logfile");
    assert_eq!(
        logs.status.as_ref().and_then(|s| s.phase),
        Some(BackupPhase::Running),
        "InProgress becomes Running"
    );
}

#[test]
fn a_restore_job_becomes_a_restore_into_its_claims() {
    let c = convert_file("mysql-0.6.yaml");
    let ApiObject::Restore(r) = &c.objects[6] else {
        panic!("a Restore: {:?}", c.objects[6])
    };
    assert_eq!(
        (
            r.spec.backup.name.as_str(),
            r.spec.backup.namespace.as_str()
        ),
        ("backup-default-mycluster-20230501180000", "default")
    );
    let claims = r
        .spec
        .prepare_data_config
        .as_ref()
        .and_then(|p| p.volume_claims.as_ref())
        .expect("claims");
    assert_eq!(claims.len(), 1);
    assert_eq!(
        claims[0].metadata.name.as_deref(),
        Some("data-mycluster-mysql-0")
    );
    assert_eq!(
        claims[0].volume_config.mount_path.as_deref(),
        Some("/data/mysql")
    );
    assert_eq!(r.spec.backoff_limit, Some(10));
    assert!(has_warning(
        &c,
        "RestoreJob default/restore-mycluster: spec.targetVolumes[1]: volume scratch is not a PersistentVolumeClaim"
    ));
    assert!(has_warning(
        &c,
        "RestoreJob default/restore-mycluster: spec.onFailAttempted: 12 is outside"
    ));
}

#[test]
fn objects_converted_together_validate_clean() {
    let c = convert_file("mysql-0.6.yaml");
    assert_eq!(c.objects.len(), 7);
    let checker = Checker::new().expect("schemas");
    let mut typed = Vec::new();
    for object in &c.objects {
        let value = object.to_value().expect("serializes");
        let checked = checker.check(&value, UnknownFields::Error);
        let problems: Vec<String> = checked
            .problems
            .iter()
            .filter(|p| p.severity == Severity::Error)
            .map(ToString::to_string)
            .collect();
        assert!(problems.is_empty(), "{}: {problems:#?}", value["kind"]);
        typed.extend(checked.object);
    }
    assert!(validate::related(&typed).is_empty());
}

#[test]
fn snapshot_policies_warn_about_what_must_be_filled_in() {
    let c = convert_file("snapshot-0.6.yaml");
    let ApiObject::BackupPolicy(p) = &c.objects[0] else {
        panic!("a BackupPolicy")
    };
    assert_eq!(p.spec.backup_methods[0].name, "volume-snapshot");
    assert_eq!(p.spec.backup_methods[0].snapshot_volumes, Some(true));
    let ApiObject::BackupSchedule(s) = &c.objects[1] else {
        panic!("a BackupSchedule")
    };
    assert_eq!(s.metadata.name.as_deref(), Some("snap-backup-schedule"));
    assert_eq!(s.spec.schedules[0].retention_period, None);
    let ApiObject::Backup(b) = &c.objects[2] else {
        panic!("a Backup")
    };
    assert_eq!(b.spec.backup_method, "volume-snapshot");
    let snaps = b
        .status
        .as_ref()
        .and_then(|s| s.volume_snapshots.as_ref())
        .expect("snapshots");
    assert_eq!(snaps[0].name.as_deref(), Some("snap-1-data"));
    for expected in [
        "BackupPolicy prod/snap-backup-policy: spec.snapshot.hooks: no equivalent",
        "BackupPolicy prod/snap-backup-policy: spec.snapshot: the new volume-snapshot method needs targetVolumes",
        "BackupPolicy prod/snap-backup-policy: spec.snapshot.backupsHistoryLimit: no equivalent (3)",
    ] {
        assert!(
            has_warning(&c, expected),
            "missing {expected:?} in {:#?}",
            warnings(&c)
        );
    }
}

#[test]
fn old_objects_are_recognised_by_validation_and_pointed_to_convert() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/legacy/mysql-0.6.yaml");
    let docs: Vec<Value> =
        serde_saphyr::from_multiple(&std::fs::read_to_string(path).expect("file")).expect("YAML");
    let checker = Checker::new().expect("schemas");
    for doc in docs.iter().filter(|d| !d.is_null()) {
        let checked = checker.check(doc, UnknownFields::Error);
        let errors: Vec<String> = checked
            .problems
            .iter()
            .filter(|p| p.severity == Severity::Error)
            .map(ToString::to_string)
            .collect();
        assert!(errors.is_empty(), "{}: {errors:#?}", doc["kind"]);
        let kind = doc["kind"].as_str().unwrap_or_default();
        let warned = checked
            .problems
            .iter()
            .any(|p| p.message.contains("cairnctl convert"));
        assert_eq!(warned, kind == "BackupPolicy" || kind == "Backup", "{kind}");
    }
}
