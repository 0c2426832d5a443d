//! `cairnctl restore create`: restores a Completed Backup into new PersistentVolumeClaims (the
//! Restore's `prepareDataConfig.volumeClaims`), guessing the volume and a size from the backup
//! when not given, and with `--wait` follows it to the end.

use std::process::ExitCode;

use anyhow::{Context as _, bail};
use cairn_api::backup::{Backup, BackupPhase};
use cairn_api::restore::Restore;
use jiff::Timestamp;
use kube::api::{Api, PostParams};
use serde_json::json;

use crate::cmd::backup::Scope;
use crate::cmd::backup::create::{default_name, parse_pair, result_line};
use crate::progress::{Mode, Reporter};

use super::wait::{WaitOptions, completed_line, until_done};

const GIB: u64 = 1 << 30;

/// Arguments of `cairnctl restore create`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Name of the Restore (default: `<backup>-restore-<UTC time>`).
    pub name: Option<String>,
    /// The Backup to restore.
    #[arg(long)]
    pub backup: String,
    /// Namespace of the Backup (default: the Restore's).
    #[arg(long)]
    pub backup_namespace: Option<String>,
    /// The new PersistentVolumeClaim to restore into (repeatable: one per volume).
    #[arg(long = "pvc", required = true)]
    pub pvcs: Vec<String>,
    /// The backed-up volume each claim receives (default: the backup method's only target
    /// volume).
    #[arg(long)]
    pub volume_source: Option<String>,
    /// Where the restore job mounts the claim (default: the backed-up volume's mountPath).
    #[arg(long)]
    pub mount_path: Option<String>,
    /// Size of each new claim (default: four times the backup's stored size, at least 1Gi).
    #[arg(long)]
    pub size: Option<String>,
    /// StorageClass of the new claims (default: the cluster's default class).
    #[arg(long)]
    pub storage_class: Option<String>,
    /// A restore parameter of the backup's ActionSet, NAME=VALUE (repeatable).
    #[arg(long = "param", value_parser = parse_pair)]
    pub params: Vec<(String, String)>,
    /// An environment variable for the restore jobs, NAME=VALUE (repeatable).
    #[arg(long = "env", value_parser = parse_pair)]
    pub env: Vec<(String, String)>,
    /// Restore a Continuous backup to this point in time (`YYYY-MM-DDTHH:MM:SSZ`): checked
    /// against the recoverability window (`cairnctl backup windows`) before anything is created.
    #[arg(long, value_parser = parse_to_time)]
    pub to_time: Option<Timestamp>,
    /// Follow the Restore until it is Completed (exit 0) or Failed (exit 1).
    #[arg(long)]
    pub wait: bool,
    /// With --wait: give up after this long (exit code 3): a duration such as 90s, 10m or
    /// 1h, or seconds.
    #[arg(long, default_value = "3600", value_parser = crate::exit::parse_timeout)]
    pub timeout: std::time::Duration,
}

fn parse_to_time(text: &str) -> Result<Timestamp, String> {
    cairn_api::parse::restore_time::parse(text).map_err(|e| e.to_string())
}

/// The claim size: `--size`, else four times the stored size rounded up to whole GiB (data
/// is usually compressed in the repository), at least 1Gi.
pub fn claim_size(explicit: Option<&str>, backup: &Backup) -> anyhow::Result<String> {
    if let Some(size) = explicit {
        cairn_api::parse::quantity::parse_bytes(size)
            .with_context(|| format!("--size {size:?}"))?;
        return Ok(size.to_string());
    }
    let stored = backup
        .status
        .as_ref()
        .and_then(|s| s.total_size.as_deref())
        .and_then(|s| cairn_api::parse::quantity::parse_bytes(s).ok())
        .unwrap_or(0);
    let gib = stored.saturating_mul(4).div_ceil(GIB).max(1);
    Ok(format!("{gib}Gi"))
}

/// The volume the claims receive and where the job mounts it.
pub fn volume_config(
    backup: &Backup,
    volume_source: Option<&str>,
    mount_path: Option<&str>,
) -> anyhow::Result<serde_json::Value> {
    let mounts = backup
        .status
        .as_ref()
        .and_then(|s| s.backup_method.as_ref())
        .and_then(|m| m.target_volumes.as_ref())
        .and_then(|t| t.volume_mounts.clone())
        .unwrap_or_default();
    let backup_name = backup.metadata.name.clone().unwrap_or_default();
    let names = || {
        mounts
            .iter()
            .map(|m| m.name.clone())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let source = match (volume_source, mounts.as_slice()) {
        (Some(source), _) => Some(source.to_string()),
        (None, [only]) => Some(only.name.clone()),
        (None, []) => None,
        (None, _) => bail!(
            "Backup {backup_name} has several volumes ({}): choose one with --volume-source",
            names()
        ),
    };
    let path = match (mount_path, &source) {
        (Some(path), _) => path.to_string(),
        (None, Some(source)) => mounts
            .iter()
            .find(|m| &m.name == source)
            .map(|m| m.mount_path.clone())
            .with_context(|| {
                format!(
                    "Backup {backup_name} has no volume {source:?} in its method's targetVolumes ({}): give --mount-path",
                    names()
                )
            })?,
        (None, None) => bail!(
            "Backup {backup_name} records no target volume: give --volume-source and --mount-path"
        ),
    };
    let mut config = json!({"mountPath": path});
    if let Some(source) = source {
        config["volumeSource"] = json!(source);
    }
    Ok(config)
}

/// What restoring `backup` replays, oldest first, as `cairnctl restore create` says it before
/// creating anything: `None` for a backup that stands alone (no parent); for an Incremental or
/// Differential one, its base, its ancestors and itself, followed through
/// `status.parentBackupName` among `others` (the Backups of its namespace), with each one's phase
/// and size. A chain with a missing link or a cycle cannot be restored: that is an error naming
/// the link.
pub fn replay_plan(backup: &Backup, others: &[Backup]) -> anyhow::Result<Option<String>> {
    let has_parent = backup
        .status
        .as_ref()
        .and_then(|s| s.parent_backup_name.as_deref())
        .is_some_and(|p| !p.is_empty());
    if !has_parent {
        return Ok(None);
    }
    let name = backup.metadata.name.clone().unwrap_or_default();
    let links = crate::cmd::backup::describe::chain(backup, others);
    for link in &links {
        let broken = if let Some(missing) = link.strip_suffix(" (missing)") {
            format!("its link {missing} does not exist")
        } else if let Some(again) = link.strip_suffix(" (cycle)") {
            format!("its links loop back to {again}")
        } else {
            continue;
        };
        bail!(
            "the chain of Backup {name} cannot be restored, {broken}: {}; nothing was created",
            links.join(" -> ")
        );
    }
    Ok(Some(format!(
        "restoring {name} replays {} backups, oldest first: {}",
        links.len(),
        links.join(" -> ")
    )))
}

/// The Restore object to create.
pub fn build(name: &str, namespace: &str, backup: &Backup, args: &Args) -> anyhow::Result<Restore> {
    let backup_name = backup.metadata.name.clone().unwrap_or_default();
    let phase = backup.status.as_ref().and_then(|s| s.phase);
    // A continuous backup is restored to a time while it still archives.
    let continuous_running = args.to_time.is_some() && phase == Some(BackupPhase::Running);
    if phase != Some(BackupPhase::Completed) && !continuous_running {
        bail!(
            "Backup {backup_name} is {}, not Completed: only a completed backup can be restored",
            phase
                .map(|p| format!("{p:?}"))
                .unwrap_or_else(|| "New".into())
        );
    }
    let size = claim_size(args.size.as_deref(), backup)?;
    let volume = volume_config(
        backup,
        args.volume_source.as_deref(),
        args.mount_path.as_deref(),
    )?;
    let claims: Vec<serde_json::Value> = args
        .pvcs
        .iter()
        .map(|pvc| {
            let mut spec = json!({
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": size}},
            });
            if let Some(class) = &args.storage_class {
                spec["storageClassName"] = json!(class);
            }
            // The API embeds the volume config's fields in the claim.
            let mut claim = json!({"metadata": {"name": pvc}, "volumeClaimSpec": spec});
            if let (Some(claim), Some(volume)) = (claim.as_object_mut(), volume.as_object()) {
                claim.extend(volume.clone());
            }
            claim
        })
        .collect();
    let mut spec = json!({
        "backup": {
            "name": backup_name,
            "namespace": backup.metadata.namespace.clone().unwrap_or_else(|| namespace.to_string()),
        },
        "prepareDataConfig": {
            "volumeClaimRestorePolicy": "Parallel",
            "volumeClaims": claims,
        },
    });
    if let Some(at) = args.to_time {
        spec["restoreTime"] = json!(cairn_api::parse::restore_time::format(at));
    }
    if !args.params.is_empty() {
        spec["parameters"] = args
            .params
            .iter()
            .map(|(name, value)| json!({"name": name, "value": value}))
            .collect();
    }
    if !args.env.is_empty() {
        spec["env"] = args
            .env
            .iter()
            .map(|(name, value)| json!({"name": name, "value": value}))
            .collect();
    }
    serde_json::from_value(json!({
        "apiVersion": cairn_api::API_VERSION,
        "kind": "Restore",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }))
    .context("building the Restore")
}

/// Runs `cairnctl restore create`.
pub async fn run(scope: &Scope, args: Args) -> anyhow::Result<ExitCode> {
    let backup_namespace = args
        .backup_namespace
        .clone()
        .unwrap_or_else(|| scope.namespace.clone());
    let backups: Api<Backup> = Api::namespaced(scope.client.clone(), &backup_namespace);
    let backup = backups
        .get_opt(&args.backup)
        .await
        .with_context(|| format!("reading Backup {backup_namespace}/{}", args.backup))?
        .with_context(|| {
            format!(
                "there is no Backup {} in namespace {backup_namespace}",
                args.backup
            )
        })?;
    if let Some(at) = args.to_time {
        let (all, no_base) =
            crate::cmd::backup::windows::read(&scope.client, Some(&backup_namespace), None).await?;
        super::to_time::check(&backup, &all, &no_base, at)?;
    }
    let name = args
        .name
        .clone()
        .unwrap_or_else(|| default_name(&format!("{}-restore", args.backup), Timestamp::now()));
    let restore = build(&name, &scope.namespace, &backup, &args)?;
    let chained = backup
        .status
        .as_ref()
        .is_some_and(|s| s.parent_backup_name.is_some());
    if chained {
        let others = backups
            .list(&Default::default())
            .await
            .with_context(|| format!("listing the Backups of {backup_namespace}"))?
            .items;
        if let Some(plan) = replay_plan(&backup, &others)? {
            // Said before anything is created; on stderr with --json, whose stdout is JSON.
            if scope.json {
                eprintln!("{plan}");
            } else {
                println!("{plan}");
            }
        }
    }
    let api: Api<Restore> = Api::namespaced(scope.client.clone(), &scope.namespace);
    let created = api
        .create(&PostParams::default(), &restore)
        .await
        .with_context(|| format!("creating Restore {}/{name}", scope.namespace))?;
    if !args.wait {
        if scope.json {
            println!("{}", result_line(&created)?);
        } else {
            println!(
                "restore.dataprotection.kubeblocks.io/{name} created (backup {}, into PVC {})",
                args.backup,
                args.pvcs.join(", ")
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    let mode = Mode::detect(scope.json);
    let out: Box<dyn std::io::Write + Send> = match mode {
        Mode::Json => Box::new(std::io::stdout()),
        _ => Box::new(std::io::stderr()),
    };
    let mut reporter = Reporter::new(mode, out);
    let options = WaitOptions {
        timeout: args.timeout,
        ..WaitOptions::default()
    };
    let (done, seconds) = until_done(
        &api,
        &name,
        &mut reporter,
        &options,
        jiff::Timestamp::now(),
        None,
    )
    .await?;
    if scope.json {
        println!("{}", result_line(&done)?);
    } else {
        println!("{}", completed_line(&done, Some(seconds), None));
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backup(phase: &str, total: Option<&str>, mounts: serde_json::Value) -> Backup {
        let mut status = json!({
            "phase": phase,
            "backupMethod": {"name": "tar", "actionSetName": "a", "targetVolumes": {"volumeMounts": mounts}}
        });
        if let Some(total) = total {
            status["totalSize"] = json!(total);
        }
        serde_json::from_value(json!({
            "apiVersion": cairn_api::API_VERSION,
            "kind": "Backup",
            "metadata": {"name": "b1", "namespace": "src"},
            "spec": {"backupPolicyName": "p", "backupMethod": "tar"},
            "status": status,
        }))
        .expect("backup")
    }

    fn args() -> Args {
        Args {
            name: None,
            backup: "b1".into(),
            backup_namespace: None,
            pvcs: vec!["data-restored".into()],
            volume_source: None,
            mount_path: None,
            size: None,
            storage_class: None,
            params: vec![],
            env: vec![("DATA_DIR".into(), "/data".into())],
            to_time: None,
            wait: false,
            timeout: std::time::Duration::from_secs(1),
        }
    }

    #[test]
    fn to_time_sets_the_restore_time_and_lets_a_running_continuous_backup_be_restored() {
        let b = backup(
            "Running",
            None,
            json!([{"name": "data", "mountPath": "/data"}]),
        );
        let mut a = args();
        assert!(
            build("r1", "dst", &b, &a).is_err(),
            "a running backup alone"
        );
        a.to_time = Some("2026-11-22T09:00:00Z".parse().expect("time"));
        let restore = build("r1", "dst", &b, &a).expect("restore");
        assert_eq!(
            restore.spec.restore_time.as_deref(),
            Some("2026-11-22T09:00:00Z")
        );
    }

    #[test]
    fn the_only_target_volume_gives_source_and_mount_path() {
        let b = backup(
            "Completed",
            Some("300Mi"),
            json!([{"name": "data", "mountPath": "/data"}]),
        );
        let r = build("r1", "dst", &b, &args()).expect("restore");
        let v = serde_json::to_value(&r).expect("json");
        assert_eq!(
            v["spec"]["backup"],
            json!({"name": "b1", "namespace": "src"})
        );
        let claim = &v["spec"]["prepareDataConfig"]["volumeClaims"][0];
        assert_eq!(claim["metadata"]["name"], "data-restored");
        assert_eq!(claim["volumeSource"], "data");
        assert_eq!(claim["mountPath"], "/data");
        assert_eq!(
            claim["volumeClaimSpec"]["resources"]["requests"]["storage"],
            "2Gi"
        );
        assert_eq!(
            v["spec"]["env"][0],
            json!({"name": "DATA_DIR", "value": "/data"})
        );
        assert_eq!(v["metadata"]["namespace"], "dst");
    }

    #[test]
    fn several_target_volumes_need_a_choice() {
        let b = backup(
            "Completed",
            None,
            json!([{"name": "data", "mountPath": "/data"}, {"name": "log", "mountPath": "/log"}]),
        );
        let err = build("r1", "ns", &b, &args()).expect_err("ambiguous");
        assert!(err.to_string().contains("data, log"), "{err}");
        let chosen = Args {
            volume_source: Some("log".into()),
            ..args()
        };
        let v =
            serde_json::to_value(build("r1", "ns", &b, &chosen).expect("restore")).expect("json");
        assert_eq!(
            v["spec"]["prepareDataConfig"]["volumeClaims"][0]["mountPath"],
            "/log"
        );
    }

    #[test]
    fn only_completed_backups_are_restored() {
        let b = backup(
            "Running",
            None,
            json!([{"name": "data", "mountPath": "/data"}]),
        );
        let err = build("r1", "ns", &b, &args()).expect_err("running");
        assert!(
            err.to_string().contains("is Running, not Completed"),
            "{err}"
        );
    }

    #[test]
    fn claim_sizes_default_to_four_times_the_stored_size_and_at_least_one_gib() {
        let small = backup("Completed", Some("1000"), json!([]));
        assert_eq!(claim_size(None, &small).expect("size"), "1Gi");
        let big = backup("Completed", Some("3Gi"), json!([]));
        assert_eq!(claim_size(None, &big).expect("size"), "12Gi");
        assert_eq!(claim_size(Some("5Gi"), &big).expect("size"), "5Gi");
        assert!(claim_size(Some("lots"), &big).is_err());
    }

    fn linked(name: &str, kind: &str, parent: Option<&str>, size: &str) -> Backup {
        serde_json::from_value(json!({
            "apiVersion": cairn_api::API_VERSION,
            "kind": "Backup",
            "metadata": {"name": name, "namespace": "src",
                         "labels": {"dataprotection.kubeblocks.io/backup-type": kind}},
            "spec": {"backupPolicyName": "p", "backupMethod": "m"},
            "status": {"phase": "Completed", "totalSize": size,
                       "parentBackupName": parent, "baseBackupName": parent.map(|_| "full")}
        }))
        .expect("backup")
    }

    #[test]
    fn an_incremental_restore_names_the_backups_it_replays_oldest_first() {
        let all = [
            linked("full", "Full", None, "10485760"),
            linked("inc-1", "Incremental", Some("full"), "2048"),
            linked("inc-2", "Incremental", Some("inc-1"), "1024"),
            linked("other", "Full", None, "1"),
        ];
        assert_eq!(
            replay_plan(&all[2], &all).expect("plan").as_deref(),
            Some(
                "restoring inc-2 replays 3 backups, oldest first: full (Completed, 10.00 MiB) -> inc-1 (Completed, 2.00 KiB) -> inc-2 (Completed, 1.00 KiB)"
            )
        );
        // A Differential: its Full, then itself.
        let diff = linked("diff-1", "Differential", Some("full"), "4096");
        assert_eq!(
            replay_plan(&diff, &all).expect("plan").as_deref(),
            Some(
                "restoring diff-1 replays 2 backups, oldest first: full (Completed, 10.00 MiB) -> diff-1 (Completed, 4.00 KiB)"
            )
        );
        // A backup without a parent restores alone: nothing to say.
        assert_eq!(replay_plan(&all[0], &all).expect("plan"), None);
    }

    #[test]
    fn a_broken_chain_is_refused_naming_the_missing_link() {
        let all = [
            linked("inc-1", "Incremental", Some("full"), "2048"),
            linked("inc-2", "Incremental", Some("inc-1"), "1024"),
        ];
        let err = replay_plan(&all[1], &all).expect_err("broken");
        assert_eq!(
            err.to_string(),
            "the chain of Backup inc-2 cannot be restored, its link full does not exist: full (missing) -> inc-1 (Completed, 2.00 KiB) -> inc-2 (Completed, 1.00 KiB); nothing was created"
        );
    }

    #[test]
    fn without_target_volumes_a_mount_path_is_needed() {
        let b = backup("Completed", None, json!([]));
        assert!(build("r1", "ns", &b, &args()).is_err());
        let with_path = Args {
            mount_path: Some("/restore".into()),
            ..args()
        };
        let v = serde_json::to_value(build("r1", "ns", &b, &with_path).expect("restore"))
            .expect("json");
        let claim = &v["spec"]["prepareDataConfig"]["volumeClaims"][0];
        assert_eq!(claim["mountPath"], "/restore");
        assert!(claim.get("volumeSource").is_none());
    }
}
