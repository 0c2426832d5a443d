//! The ordered actions a backup runs for one target pod, and the Jobs and env they get
//! (ARCHITECTURE.md §K2.2, §K2.3, §K3.1). The agent adds only what is node-specific.

use std::collections::BTreeMap;

use cairn_api::action::{ActionErrorMode, ActionSpec, JobActionSpec};
use cairn_api::actionset::ActionSet;
use cairn_api::backup::Backup;
use cairn_api::backup_policy::{BackupMethod, BackupPolicy};
use cairn_api::well_known;
use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    Container, EmptyDirVolumeSource, EnvVar, EnvVarSource, Pod, PodSpec, PodTemplateSpec,
    SecretKeySelector, SecurityContext, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use super::path;
use super::targets::ResolvedTarget;
use crate::plan::action::Workload;
use crate::plan::env::{expand, merge, var};
use crate::plan::names::backup_job_name;

/// Directory of the backup info file shared with the agent (emptyDir `manager-shared-volume`).
pub const MANAGER_VOLUME: &str = "manager-shared-volume";
pub const MANAGER_MOUNT: &str = "/dp-manager";
pub const INFO_FILE: &str = "backup.info";

/// Everything the action builders read.
#[derive(Debug, Clone, Copy)]
pub struct BackupContext<'a> {
    pub backup: &'a Backup,
    pub policy: &'a BackupPolicy,
    pub method: &'a BackupMethod,
    /// `None` only for a snapshot method without an ActionSet.
    pub actionset: Option<&'a ActionSet>,
    /// The backup's `status.path`.
    pub backup_path: &'a str,
    /// The directory shared by the policy's backups (`DP_BACKUP_ROOT_PATH`).
    pub root_path: &'a str,
    /// The labels the Backup carries once its metadata is patched.
    pub labels: &'a BTreeMap<String, String>,
    /// The parent and base of an Incremental or Differential backup.
    pub chain: Option<ChainEnv<'a>>,
    /// `Some(mount path)` for Mount repositories: the repository PVC is mounted there.
    pub mount_repo: Option<(&'a str, &'a str)>,
    /// The deduplicating repository of a `useKopia` backup (`DATASAFED_KOPIA_REPO_ROOT`).
    pub kopia_repo_path: Option<&'a str>,
}

/// The links of a chain a backup action is told about (§3.1 item 6).
#[derive(Debug, Clone, Copy)]
pub struct ChainEnv<'a> {
    pub parent: &'a str,
    pub base: &'a str,
}

/// One action of a pod's list.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedAction {
    pub name: String,
    pub work: Workload,
    /// The backupData action: the agent reads its backup info file.
    pub backup_data: bool,
    pub on_error: ActionErrorMode,
    /// Runs on the target pod's node: exec actions, volume snapshots, Jobs with
    /// `runOnTargetPodNode: true` (they mount the target's volumes) and Jobs that mount a Mount
    /// repository's claim. Other Jobs may run on any node with a connected agent, preferably
    /// the target's (ARCHITECTURE.md §K2.12).
    pub pinned: bool,
}

/// Why the action list could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActionError {
    #[error("action {0} has no exec or job")]
    Neither(String),
    #[error("action {0} should have only one of exec or job")]
    Both(String),
    #[error("the actionSet {0} has no backup.backupData")]
    NoBackupData(String),
    #[error("action {action}: invalid timeout {value:?}: {reason}")]
    Timeout {
        action: String,
        value: String,
        reason: String,
    },
}

/// `T` in the action names: `<target name>-`, or empty.
pub fn target_prefix(target: &ResolvedTarget) -> String {
    match target.name() {
        "" => String::new(),
        name => format!("{name}-"),
    }
}

/// The ordered actions for the `pod_index`th pod of `target`: preBackup, backupData, postBackup.
pub fn pod_actions(
    ctx: &BackupContext<'_>,
    target: &ResolvedTarget,
    pod: &Pod,
    pod_index: usize,
) -> Result<Vec<PlannedAction>, ActionError> {
    let actionset_name = ctx
        .actionset
        .and_then(|a| a.metadata.name.clone())
        .unwrap_or_default();
    let backup_spec = ctx
        .actionset
        .and_then(|a| a.spec.backup.as_ref())
        .ok_or(ActionError::NoBackupData(actionset_name))?;
    let t = target_prefix(target);
    let name = format!("dp-backup-{t}{pod_index}");
    let data = &backup_spec.backup_data.job;
    // `onError: Continue` lets the pod's later actions (postBackup) and the backup go on after a
    // failed backupData (§K8 S2); a continuous backup's archiver failing always fails it.
    let continuous = ctx
        .actionset
        .is_some_and(|a| a.spec.backup_type == cairn_api::actionset::BackupType::Continuous);
    let on_error = match data.on_error {
        Some(mode) if !continuous => mode,
        _ => ActionErrorMode::Fail,
    };
    let main = PlannedAction {
        work: Workload::Job(Box::new(build_job(
            ctx,
            target,
            pod,
            &name,
            "backupdata",
            data,
        ))),
        backup_data: true,
        on_error,
        pinned: job_pinned(ctx, data),
        name,
    };
    with_hooks(ctx, target, pod, pod_index, main)
}

/// `main` between the ActionSet's preBackup and postBackup actions for the pod (none without
/// an ActionSet: a snapshot method may have none).
pub fn with_hooks(
    ctx: &BackupContext<'_>,
    target: &ResolvedTarget,
    pod: &Pod,
    pod_index: usize,
    main: PlannedAction,
) -> Result<Vec<PlannedAction>, ActionError> {
    let backup_spec = ctx.actionset.and_then(|a| a.spec.backup.as_ref());
    let t = target_prefix(target);
    let mut list = Vec::new();
    for (j, spec) in backup_spec
        .and_then(|b| b.pre_backup.as_ref())
        .into_iter()
        .flatten()
        .enumerate()
    {
        let name = format!("dp-prebackup-{t}{j}-{pod_index}");
        list.push(hook_action(ctx, target, pod, name, spec)?);
    }
    list.push(main);
    for (j, spec) in backup_spec
        .and_then(|b| b.post_backup.as_ref())
        .into_iter()
        .flatten()
        .enumerate()
    {
        let name = format!("dp-postbackup-{t}{j}-{pod_index}");
        list.push(hook_action(ctx, target, pod, name, spec)?);
    }
    Ok(list)
}

fn hook_action(
    ctx: &BackupContext<'_>,
    target: &ResolvedTarget,
    pod: &Pod,
    name: String,
    spec: &ActionSpec,
) -> Result<PlannedAction, ActionError> {
    match (&spec.exec, &spec.job) {
        (Some(exec), None) => {
            let timeout_seconds = match exec.timeout.as_deref().filter(|t| !t.is_empty()) {
                None => 0,
                Some(text) => crate::plan::time::go_duration(text)
                    .map(|d| d.as_secs().clamp(1, u64::from(u32::MAX)) as u32)
                    .map_err(|reason| ActionError::Timeout {
                        action: name.clone(),
                        value: text.into(),
                        reason,
                    })?,
            };
            Ok(PlannedAction {
                work: Workload::Exec {
                    container: exec.container.clone().unwrap_or_default(),
                    command: exec.command.clone(),
                    timeout_seconds,
                },
                backup_data: false,
                on_error: exec.on_error.unwrap_or(ActionErrorMode::Fail),
                pinned: true,
                name,
            })
        }
        (None, Some(job)) => Ok(PlannedAction {
            work: Workload::Job(Box::new(build_job(ctx, target, pod, &name, &name, job))),
            backup_data: false,
            on_error: job.on_error.unwrap_or(ActionErrorMode::Fail),
            pinned: job_pinned(ctx, job),
            name,
        }),
        (None, None) => Err(ActionError::Neither(name)),
        (Some(_), Some(_)) => Err(ActionError::Both(name)),
    }
}

/// Whether a Job action must run on its target pod's node: it mounts the target's volumes
/// (`runOnTargetPodNode: true`), or a Mount repository's claim, which may attach to one node only.
fn job_pinned(ctx: &BackupContext<'_>, spec: &JobActionSpec) -> bool {
    spec.run_on_target_pod_node.unwrap_or(false) || ctx.mount_repo.is_some()
}

/// `DP_BACKUP_BASE_PATH` for a pod of a target.
pub fn base_path(ctx: &BackupContext<'_>, target: &ResolvedTarget, pod: &Pod) -> String {
    let relative = relative_path(target, pod);
    path::join(&[ctx.backup_path, &relative])
}

fn relative_path(target: &ResolvedTarget, pod: &Pod) -> String {
    path::target_relative_path(
        target.name(),
        target.strategy(),
        pod.metadata.name.as_deref().unwrap_or_default(),
    )
}

/// The env of a backup job container, in KubeBlocks' order (§3.1).
pub fn backup_env(ctx: &BackupContext<'_>, target: &ResolvedTarget, pod: &Pod) -> Vec<EnvVar> {
    let backup = ctx.backup;
    let mut env: Vec<EnvVar> = first_container(pod)
        .and_then(|c| c.env.clone())
        .unwrap_or_default();
    let pod_name = pod.metadata.name.clone().unwrap_or_default();
    let role = pod
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(well_known::label::ROLE))
        .cloned()
        .unwrap_or_default();
    env.extend([
        var(
            "DP_BACKUP_NAME",
            backup.metadata.name.clone().unwrap_or_default(),
        ),
        var("DP_TARGET_POD_NAME", pod_name),
        var("DP_TARGET_POD_ROLE", role),
        var("DP_BACKUP_BASE_PATH", base_path(ctx, target, pod)),
        var(
            "DP_BACKUP_INFO_FILE",
            format!("{MANAGER_MOUNT}/{INFO_FILE}"),
        ),
        var(
            "DP_TTL",
            backup.spec.retention_period.clone().unwrap_or_default(),
        ),
    ]);
    let paths = [
        var("DP_TARGET_RELATIVE_PATH", relative_path(target, pod)),
        var("DP_BACKUP_ROOT_PATH", ctx.root_path.to_string()),
    ];
    if ctx.chain.is_none() {
        // Cairn gives every backup its paths; KubeBlocks only incrementals (item 6 below).
        env.extend(paths.clone());
    }
    env.extend(connection_env(target, pod));
    env.extend(
        ctx.actionset
            .and_then(|a| a.spec.env.clone())
            .unwrap_or_default(),
    );
    for parameter in backup.spec.parameters.iter().flatten() {
        env.push(var(&parameter.name, parameter.value.clone()));
    }
    for (label, name) in [
        (well_known::label::CLUSTER_UID, "KB_CLUSTER_UID"),
        (well_known::label::INSTANCE, "KB_CLUSTER_NAME"),
        (well_known::label::COMPONENT_NAME, "KB_COMP_NAME"),
    ] {
        if let Some(value) = ctx.labels.get(label) {
            env.push(var(name, value.clone()));
        }
    }
    env.push(var(
        "KB_NAMESPACE",
        backup.metadata.namespace.clone().unwrap_or_default(),
    ));
    if let Some(chain) = ctx.chain {
        env.push(var("DP_PARENT_BACKUP_NAME", chain.parent));
        env.push(var("DP_BASE_BACKUP_NAME", chain.base));
        env.extend(paths);
    }
    merge(&mut env, ctx.method.env.clone().unwrap_or_default());
    if let Some((_, mount_path)) = ctx.mount_repo {
        merge(&mut env, [var("DATASAFED_LOCAL_BACKEND_PATH", mount_path)]);
    }
    if let Some(root) = ctx.kopia_repo_path {
        merge(&mut env, [var("DATASAFED_KOPIA_REPO_ROOT", root)]);
    }
    env
}

/// `DP_DB_HOST`, `DP_DB_PORT`, `DP_DB_USER`, `DP_DB_PASSWORD` from the target's credential (§3.1).
fn connection_env(target: &ResolvedTarget, pod: &Pod) -> Vec<EnvVar> {
    let credential = target.target.connection_credential.as_ref();
    let secret_ref = |key: &str| -> Option<EnvVar> {
        let credential = credential?;
        Some(EnvVar {
            name: String::new(),
            value: None,
            value_from: Some(EnvVarSource {
                secret_key_ref: Some(SecretKeySelector {
                    name: credential.secret_name.clone(),
                    key: key.into(),
                    optional: None,
                }),
                ..Default::default()
            }),
        })
    };
    let named = |name: &str, mut v: EnvVar| {
        v.name = name.into();
        v
    };
    let mut env = Vec::new();
    match credential
        .and_then(|c| c.host_key.as_deref())
        .filter(|k| !k.is_empty())
    {
        Some(key) => env.extend(secret_ref(key).map(|v| named("DP_DB_HOST", v))),
        None => env.push(var("DP_DB_HOST", pod_host(pod))),
    }
    let Some(credential) = credential else {
        return env;
    };
    let user_key = credential.username_key.as_deref().unwrap_or("username");
    let password_key = credential.password_key.as_deref().unwrap_or("password");
    if !user_key.is_empty() {
        env.extend(secret_ref(user_key).map(|v| named("DP_DB_USER", v)));
    }
    if !password_key.is_empty() {
        env.extend(secret_ref(password_key).map(|v| named("DP_DB_PASSWORD", v)));
    }
    match credential.port_key.as_deref().filter(|k| !k.is_empty()) {
        Some(key) => env.extend(secret_ref(key).map(|v| named("DP_DB_PORT", v))),
        None => env.push(var("DP_DB_PORT", first_container_port(pod))),
    }
    env
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

fn first_container(pod: &Pod) -> Option<&Container> {
    pod.spec.as_ref().and_then(|s| s.containers.first())
}

fn first_container_port(pod: &Pod) -> String {
    first_container(pod)
        .and_then(|c| c.ports.as_ref())
        .and_then(|ports| ports.first())
        .map(|p| p.container_port.to_string())
        .unwrap_or_else(|| "0".into())
}

/// The Job for a job action (§2.3).
pub fn build_job(
    ctx: &BackupContext<'_>,
    target: &ResolvedTarget,
    pod: &Pod,
    action_name: &str,
    container_name: &str,
    spec: &JobActionSpec,
) -> Job {
    let backup = ctx.backup;
    let backup_name = backup.metadata.name.clone().unwrap_or_default();
    let env = backup_env(ctx, target, pod);
    let image = expand(&spec.base.image, &env);
    let run_on_target = spec.run_on_target_pod_node.unwrap_or(false);
    let mut volumes = vec![Volume {
        name: MANAGER_VOLUME.into(),
        empty_dir: Some(EmptyDirVolumeSource::default()),
        ..Default::default()
    }];
    let mut mounts = vec![VolumeMount {
        name: MANAGER_VOLUME.into(),
        mount_path: MANAGER_MOUNT.into(),
        ..Default::default()
    }];
    if run_on_target {
        let (target_volumes, target_mounts) = target_volumes(ctx.method, pod);
        volumes.extend(target_volumes);
        mounts.extend(target_mounts);
    }
    if let Some((claim, mount_path)) = ctx.mount_repo {
        volumes.push(Volume {
            name: "dp-backup-data".into(),
            persistent_volume_claim: Some(
                k8s_openapi::api::core::v1::PersistentVolumeClaimVolumeSource {
                    claim_name: claim.into(),
                    read_only: None,
                },
            ),
            ..Default::default()
        });
        mounts.push(VolumeMount {
            name: "dp-backup-data".into(),
            mount_path: mount_path.into(),
            ..Default::default()
        });
    }
    let mut env_from = first_container(pod)
        .and_then(|c| c.env_from.clone())
        .unwrap_or_default();
    env_from.extend(
        ctx.actionset
            .and_then(|a| a.spec.env_from.clone())
            .unwrap_or_default(),
    );
    let container = Container {
        name: container_name.into(),
        image: Some(image),
        image_pull_policy: Some("IfNotPresent".into()),
        command: Some(spec.base.command.clone()),
        env: Some(env),
        env_from: (!env_from.is_empty()).then_some(env_from),
        resources: ctx
            .method
            .runtime_settings
            .as_ref()
            .and_then(|s| s.resources.clone()),
        security_context: Some(SecurityContext {
            run_as_user: Some(0),
            allow_privilege_escalation: Some(false),
            ..Default::default()
        }),
        volume_mounts: Some(mounts),
        ..Default::default()
    };
    let tolerations = if run_on_target {
        pod.spec.as_ref().and_then(|s| s.tolerations.clone())
    } else {
        None
    };
    let labels = workload_labels(ctx.labels, backup);
    Job {
        metadata: ObjectMeta {
            name: Some(backup_job_name(
                action_name,
                &backup_name,
                backup.metadata.uid.as_deref().unwrap_or_default(),
            )),
            namespace: backup.metadata.namespace.clone(),
            labels: Some(labels.clone()),
            owner_references: Some(vec![owner_reference(backup)]),
            ..Default::default()
        },
        spec: Some(JobSpec {
            backoff_limit: Some(ctx.policy.spec.backoff_limit.unwrap_or(2)),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    restart_policy: Some("Never".into()),
                    service_account_name: target.target.service_account_name.clone(),
                    containers: vec![container],
                    volumes: Some(volumes),
                    tolerations,
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        status: None,
    }
}

/// The labels of what a Backup creates (Jobs, VolumeSnapshots): the Backup's own minus the
/// component name, plus `backup-name` (§2.3).
pub fn workload_labels(
    backup_labels: &BTreeMap<String, String>,
    backup: &Backup,
) -> BTreeMap<String, String> {
    let mut labels: BTreeMap<String, String> = backup_labels
        .iter()
        .filter(|(k, _)| k.as_str() != well_known::label::COMPONENT_NAME)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    labels.insert(
        well_known::label::BACKUP_NAME.into(),
        backup.metadata.name.clone().unwrap_or_default(),
    );
    labels
}

/// The target pod's volumes and mounts that `targetVolumes` names (§2.3).
fn target_volumes(method: &BackupMethod, pod: &Pod) -> (Vec<Volume>, Vec<VolumeMount>) {
    let Some(info) = &method.target_volumes else {
        return (Vec::new(), Vec::new());
    };
    let pod_volumes = pod
        .spec
        .as_ref()
        .and_then(|s| s.volumes.clone())
        .unwrap_or_default();
    let mut wanted: Vec<String> = info.volumes.clone().unwrap_or_default();
    if wanted.is_empty() {
        wanted = info
            .volume_mounts
            .iter()
            .flatten()
            .map(|m| m.name.clone())
            .collect();
    }
    let volumes: Vec<Volume> = pod_volumes
        .into_iter()
        .filter(|v| wanted.contains(&v.name))
        .collect();
    let mounts = info
        .volume_mounts
        .iter()
        .flatten()
        .filter(|m| volumes.iter().any(|v| v.name == m.name))
        .cloned()
        .collect();
    (volumes, mounts)
}

/// The Backup as the controller owner of what it creates.
pub fn owner_reference(backup: &Backup) -> OwnerReference {
    OwnerReference {
        api_version: "dataprotection.kubeblocks.io/v1alpha1".into(),
        kind: "Backup".into(),
        name: backup.metadata.name.clone().unwrap_or_default(),
        uid: backup.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}
