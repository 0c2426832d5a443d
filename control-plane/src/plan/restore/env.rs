//! The env of restore containers, in KubeBlocks' order (ARCHITECTURE.md §K3.2): backup
//! paths, the base and ancestors, times in the backup's zone (its stop time, the base's start and
//! stop, the restore time of a point-in-time restore), Restore parameters, ActionSet env, then the backup method's
//! and the Restore's env merged over them (precedence Restore > method > ActionSet).

use cairn_api::backup::Backup;
use cairn_api::common::ConnectionCredential;
use cairn_api::parse::time_zone;
use jiff::Timestamp;
use jiff::tz::{Offset, TimeZone};
use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource, Pod, SecretKeySelector};

use super::go_time;
use super::request::Request;
use crate::plan::backup::chain::{self, name};
use crate::plan::backup::path;
use crate::plan::backup::repo::MOUNT_PATH;
use crate::plan::env::{merge, var};

/// The common env of every restore container; `source_pod` is the backup pod whose data this
/// container restores (strategy All only).
pub fn common(
    req: &Request<'_>,
    restore_env: &[EnvVar],
    params: &[(String, String)],
    source_pod: Option<&str>,
) -> Vec<EnvVar> {
    let relative = req.relative_path(source_pod);
    let mut env = vec![var("DP_BACKUP_NAME", req.backup_name.clone())];
    // The paths only for a backup with files (a volume snapshot backup has none, §K3.2).
    if !req.backup_path.is_empty() {
        env.extend([
            var("DP_TARGET_RELATIVE_PATH", relative.clone()),
            var("DP_BACKUP_ROOT_PATH", req.root_path.clone()),
            var(
                "DP_BACKUP_BASE_PATH",
                path::join(&[&req.backup_path, &relative]),
            ),
        ]);
    }
    let actionset_env = req.actionset.spec.env.clone().unwrap_or_default();
    let layout = actionset_env
        .iter()
        .rev()
        .find(|e| e.name == "DP_TIME_FORMAT")
        .and_then(|e| e.value.clone())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| go_time::RFC3339.to_string());
    if let Some(chain) = &req.chain {
        env.push(var("DP_BASE_BACKUP_NAME", name(chain.base)));
        let ancestors: Vec<&str> = chain.ancestors.iter().map(|b| name(b)).collect();
        if !ancestors.is_empty() {
            env.push(var(
                "DP_ANCESTOR_INCREMENTAL_BACKUP_NAMES",
                ancestors.join(","),
            ));
        }
    }
    // Each time in the zone of the backup it belongs to (the base's own zone for its times).
    let format =
        |time: Timestamp, of: &Backup| go_time::format(&time.to_zoned(backup_zone(of)), &layout);
    if let Some(stop) = end_time(req.backup) {
        env.push(var("DP_BACKUP_STOP_TIME", format(stop, req.backup)));
    }
    if let Some(base) = req.chain.as_ref().map(|c| c.base) {
        let times = [
            (
                "DP_BASE_BACKUP_START_TIME",
                "DP_BASE_BACKUP_START_TIMESTAMP",
                start_time(base),
            ),
            (
                "DP_BASE_BACKUP_STOP_TIME",
                "DP_BASE_BACKUP_STOP_TIMESTAMP",
                end_time(base),
            ),
        ];
        for (text, unix, time) in times {
            if let Some(time) = time {
                env.push(var(text, format(time, base)));
                env.push(var(unix, time.as_second().to_string()));
            }
        }
    }
    if let Some(at) = req.restore_time.filter(|t| *t != Timestamp::UNIX_EPOCH) {
        env.push(var("DP_RESTORE_TIME", format(at, req.backup)));
        env.push(var("DP_RESTORE_TIMESTAMP", at.as_second().to_string()));
    }
    env.extend(params.iter().map(|(name, value)| var(name, value.clone())));
    env.extend(actionset_env);
    merge(&mut env, req.method.env.clone().unwrap_or_default());
    merge(&mut env, restore_env.iter().cloned());
    if req.access.is_some_and(|a| a.mount_claim.is_some()) {
        merge(&mut env, [var("DATASAFED_LOCAL_BACKEND_PATH", MOUNT_PATH)]);
    }
    if let Some(root) = req
        .backup
        .status
        .as_ref()
        .and_then(|s| s.kopia_repo_path.as_deref())
    {
        merge(&mut env, [var("DATASAFED_KOPIA_REPO_ROOT", root)]);
    }
    env
}

/// KubeBlocks' `GetEndTime`, a zero time left out.
fn end_time(backup: &Backup) -> Option<Timestamp> {
    chain::end_time(backup).filter(|t| *t != Timestamp::UNIX_EPOCH)
}

/// KubeBlocks' `GetStartTime`, a zero time left out.
fn start_time(backup: &Backup) -> Option<Timestamp> {
    chain::start_time(backup).filter(|t| *t != Timestamp::UNIX_EPOCH)
}

/// The backup's `timeRange.timeZone` as a fixed offset; UTC when absent or not `±HH:MM`.
fn backup_zone(backup: &Backup) -> TimeZone {
    backup
        .status
        .as_ref()
        .and_then(|s| s.time_range.as_ref())
        .and_then(|r| r.time_zone.as_deref())
        .and_then(|z| time_zone::parse(z).ok())
        .and_then(|offset| Offset::from_seconds(offset.0 * 60).ok())
        .map(TimeZone::fixed)
        .unwrap_or(TimeZone::UTC)
}

/// What postReady job containers add (§3.2): the target pod's env, its address, and the
/// connection credential of `readyConfig`.
pub fn post_ready_extra(pod: &Pod, credential: Option<&ConnectionCredential>) -> Vec<EnvVar> {
    let spec = pod.spec.as_ref();
    let first = spec.and_then(|s| s.containers.first());
    let mut env = first.and_then(|c| c.env.clone()).unwrap_or_default();
    let port = first
        .and_then(|c| c.ports.as_ref())
        .and_then(|p| p.first())
        .map(|p| p.container_port.to_string())
        .unwrap_or_else(|| "0".into());
    merge(
        &mut env,
        [var("DP_DB_HOST", pod_host(pod)), var("DP_DB_PORT", port)],
    );
    merge(&mut env, credential_env(credential));
    env
}

/// `DP_DB_USER`, `DP_DB_PASSWORD` and optional `DP_DB_HOST`/`DP_DB_PORT` from a credential Secret.
pub fn credential_env(credential: Option<&ConnectionCredential>) -> Vec<EnvVar> {
    let Some(credential) = credential else {
        return Vec::new();
    };
    let from_secret = |name: &str, key: &str| EnvVar {
        name: name.into(),
        value: None,
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: credential.secret_name.clone(),
                key: key.into(),
                optional: None,
            }),
            ..Default::default()
        }),
    };
    let keys = [
        (
            "DP_DB_USER",
            credential.username_key.as_deref().or(Some("username")),
        ),
        (
            "DP_DB_PASSWORD",
            credential.password_key.as_deref().or(Some("password")),
        ),
        ("DP_DB_HOST", credential.host_key.as_deref()),
        ("DP_DB_PORT", credential.port_key.as_deref()),
    ];
    keys.into_iter()
        .filter_map(|(name, key)| key.filter(|k| !k.is_empty()).map(|k| from_secret(name, k)))
        .collect()
}

/// The pod's DNS name when it has a subdomain, else its IP.
fn pod_host(pod: &Pod) -> String {
    let spec = pod.spec.as_ref();
    if let Some(subdomain) = spec
        .and_then(|s| s.subdomain.as_deref())
        .filter(|s| !s.is_empty())
    {
        let host = spec
            .and_then(|s| s.hostname.clone())
            .or_else(|| pod.metadata.name.clone())
            .unwrap_or_default();
        return format!("{host}.{subdomain}");
    }
    pod.status
        .as_ref()
        .and_then(|s| s.pod_ip.clone())
        .unwrap_or_default()
}
