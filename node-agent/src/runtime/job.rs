//! Job actions: create the Job the control plane built, pinned to this node, with the
//! `datasafed` client and the address of the agent's storage endpoint; wait for it; collect the
//! backup info file, the `.exit` marker and, on failure, the last lines of the pod's log
//! (ARCHITECTURE.md §K2.3, §K2.6). A restarted agent re-adopts its Job through the
//! `cairn.io/action-id` label.
//!
//! Nothing the agent adds needs a hostPath volume or any field the `baseline` Pod Security
//! Standard forbids, and its own init container meets `restricted` (ARCHITECTURE.md §K2.3a):
//! `datasafed` is copied by an init container running the agent's image into an emptyDir, as
//! KubeBlocks does, and pods reach the agent over the network (docs/PROTOCOL.md §3.1).

use std::collections::BTreeMap;
use std::path::Path;

use cairn_api::well_known;
use cairn_proto::datasafed::transport;
use cairn_repo::backend::local::{entry_exists_confined, read_confined};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{
    Capabilities, Container, EmptyDirVolumeSource, EnvVar, Event, Pod, PodSpec, PodTemplateSpec,
    SeccompProfile, SecurityContext, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, ListParams, LogParams, PostParams, PropagationPolicy};
use kube::runtime::wait::{Condition, await_condition};

/// Where the `datasafed` binary appears in action containers (KubeBlocks' `DP_DATASAFED_BIN_PATH`).
pub const DATASAFED_BIN_MOUNT: &str = "/bin/datasafed";
/// File name of the storage socket inside its directory (the agent's local socket).
pub const SOCKET_FILE: &str = "storage.sock";
/// The init container that copies `datasafed` into the Job's pod.
pub const INSTALL_CONTAINER: &str = "cairn-install-datasafed";
/// Where the init container sees the emptyDir it copies `datasafed` into.
const INSTALL_MOUNT: &str = "/cairn-datasafed";
/// The user the init container runs as (the agent image's non-root user).
const INSTALL_USER: i64 = 65532;

const BIN_VOLUME: &str = "cairn-datasafed-bin";
/// Volumes and mounts of older agents (hostPath), removed from a Job if present.
const OLD_SOCKET_VOLUME: &str = "cairn-storage-socket";
const OLD_SOCKET_MOUNT: &str = "/var/run/cairn";
/// The most of a backup info file the agent reads (it goes into the Backup's status, which
/// the API server limits to about this size anyway).
const MAX_INFO_FILE: u64 = 1 << 20;

/// What this node adds to every Job it runs.
#[derive(Debug, Clone)]
pub struct NodeInjection {
    /// This node's name (`kubernetes.io/hostname`).
    pub node_name: String,
    /// The image of the init container that installs `datasafed`: the agent's own image.
    pub install_image: String,
    /// The init container's command, to which the target directory is appended: the agent
    /// binary as the image holds it, `install-datasafed`, `--from` the image's `datasafed`.
    pub install_command: Vec<String>,
    /// `https://HOST:PORT` of this agent's storage endpoint.
    pub storage_endpoint: String,
    /// The certificate (PEM) the endpoint presents; action pods trust only this one.
    pub storage_cert_pem: String,
}

/// Per-action values injected into the Job.
#[derive(Debug, Clone)]
pub struct ActionInjection<'a> {
    pub action_id: &'a str,
    /// Storage token for the endpoint; `None` when the action has no storage grant.
    pub storage_token: Option<&'a str>,
}

/// Why a Job action could not be carried out (as opposed to the Job failing, which is an outcome).
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// `job_json` is not a batch/v1 Job.
    #[error("job action carries an invalid batch/v1 Job")]
    InvalidJob(#[source] serde_json::Error),
    /// The Job has no name or namespace.
    #[error("job action's Job has no {0}")]
    MissingField(&'static str),
    /// A Job with the same name exists but belongs to another action.
    #[error("job {namespace}/{name} already exists and belongs to action {other:?}")]
    NameTaken {
        namespace: String,
        name: String,
        other: Option<String>,
    },
    /// An API call failed.
    #[error("{step} job {namespace}/{name}")]
    Api {
        step: &'static str,
        namespace: String,
        name: String,
        #[source]
        source: Box<kube::Error>,
    },
    /// The Job was deleted before it finished.
    #[error("job {namespace}/{name} was deleted before it finished")]
    Deleted { namespace: String, name: String },
    /// Waiting for the Job failed.
    #[error("waiting for job {namespace}/{name}")]
    Wait {
        namespace: String,
        name: String,
        #[source]
        source: Box<kube::runtime::wait::Error>,
    },
}

/// How a Job ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobOutcome {
    pub job_name: String,
    pub succeeded: bool,
    /// KubeBlocks' form `<reason>:<message>` plus the log tail, when the Job failed.
    pub failure_reason: String,
    /// The JSON the action wrote to `DP_BACKUP_INFO_FILE`, when asked for and present.
    pub backup_info: Option<String>,
    /// Whether the action created `${DP_BACKUP_INFO_FILE}.exit` (it declared failure).
    pub exit_marker: bool,
}

/// Parses the Job the control plane built and adds this node's part to it.
pub fn prepare(
    job_json: &str,
    node: &NodeInjection,
    action: &ActionInjection<'_>,
) -> Result<Job, JobError> {
    let mut job: Job = serde_json::from_str(job_json).map_err(JobError::InvalidJob)?;
    let spec = job.spec.get_or_insert_with(Default::default);
    mark_workload(&mut job.metadata, &mut spec.template, node, action)
        .map_err(JobError::MissingField)?;
    Ok(job)
}

/// Checks a workload (a Job, an archiver's StatefulSet) has a name and namespace, labels it and
/// its pods with the action id, and adds this node's part to its pods; `Err(field)` names a
/// missing field.
pub(super) fn mark_workload(
    meta: &mut ObjectMeta,
    template: &mut PodTemplateSpec,
    node: &NodeInjection,
    action: &ActionInjection<'_>,
) -> Result<(), &'static str> {
    if meta.name.as_deref().unwrap_or_default().is_empty() {
        return Err("metadata.name");
    }
    if meta.namespace.as_deref().unwrap_or_default().is_empty() {
        return Err("metadata.namespace");
    }
    meta.labels
        .get_or_insert_with(BTreeMap::new)
        .insert(well_known::label::ACTION_ID.into(), action.action_id.into());
    template
        .metadata
        .get_or_insert_with(Default::default)
        .labels
        .get_or_insert_with(BTreeMap::new)
        .insert(well_known::label::ACTION_ID.into(), action.action_id.into());
    let pod = template.spec.get_or_insert_with(PodSpec::default);
    inject_into_pod(pod, node, action);
    Ok(())
}

fn inject_into_pod(pod: &mut PodSpec, node: &NodeInjection, action: &ActionInjection<'_>) {
    pod.node_selector
        .get_or_insert_with(BTreeMap::new)
        .insert("kubernetes.io/hostname".into(), node.node_name.clone());
    let volumes = pod.volumes.get_or_insert_with(Vec::new);
    volumes.retain(|v| v.name != BIN_VOLUME && v.name != OLD_SOCKET_VOLUME);
    volumes.push(Volume {
        name: BIN_VOLUME.into(),
        empty_dir: Some(EmptyDirVolumeSource {
            size_limit: None,
            medium: None,
        }),
        ..Default::default()
    });
    let init = pod.init_containers.get_or_insert_with(Vec::new);
    init.retain(|c| c.name != INSTALL_CONTAINER);
    let containers = init.iter_mut().chain(pod.containers.iter_mut());
    for container in containers {
        let mounts = container.volume_mounts.get_or_insert_with(Vec::new);
        mounts.retain(|m| m.mount_path != DATASAFED_BIN_MOUNT && m.mount_path != OLD_SOCKET_MOUNT);
        mounts.push(VolumeMount {
            name: BIN_VOLUME.into(),
            mount_path: DATASAFED_BIN_MOUNT.into(),
            read_only: Some(true),
            ..Default::default()
        });
        let env = container.env.get_or_insert_with(Vec::new);
        env.retain(|e| e.name != transport::ENV_SOCKET);
        set_env_if_absent(env, "DP_DATASAFED_BIN_PATH", DATASAFED_BIN_MOUNT);
        if let Some(token) = action.storage_token {
            set_env(env, transport::ENV_ENDPOINT, &node.storage_endpoint);
            set_env(env, transport::ENV_CERT, &node.storage_cert_pem);
            set_env(env, transport::ENV_TOKEN, token);
        }
    }
    init.insert(0, install_container(node));
}

/// The init container that copies `datasafed` from the agent's image into the emptyDir, meeting
/// the `restricted` Pod Security Standard whatever the Job's own containers do.
fn install_container(node: &NodeInjection) -> Container {
    let mut command = node.install_command.clone();
    command.push(INSTALL_MOUNT.into());
    Container {
        name: INSTALL_CONTAINER.into(),
        image: Some(node.install_image.clone()),
        image_pull_policy: Some("IfNotPresent".into()),
        command: Some(command),
        volume_mounts: Some(vec![VolumeMount {
            name: BIN_VOLUME.into(),
            mount_path: INSTALL_MOUNT.into(),
            ..Default::default()
        }]),
        security_context: Some(SecurityContext {
            run_as_non_root: Some(true),
            run_as_user: Some(INSTALL_USER),
            run_as_group: Some(INSTALL_USER),
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".into()]),
                add: None,
            }),
            seccomp_profile: Some(SeccompProfile {
                type_: "RuntimeDefault".into(),
                localhost_profile: None,
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn set_env(env: &mut Vec<EnvVar>, name: &str, value: &str) {
    env.retain(|e| e.name != name);
    env.push(EnvVar {
        name: name.into(),
        value: Some(value.into()),
        value_from: None,
    });
}

fn set_env_if_absent(env: &mut Vec<EnvVar>, name: &str, value: &str) {
    if !env.iter().any(|e| e.name == name) {
        set_env(env, name, value);
    }
}

/// Creates the Job, or adopts it when this action created it before (agent restart).
pub async fn create_or_adopt(
    client: kube::Client,
    job: &Job,
    action_id: &str,
) -> Result<String, JobError> {
    let namespace = job.metadata.namespace.clone().unwrap_or_default();
    let name = job.metadata.name.clone().unwrap_or_default();
    let jobs: Api<Job> = Api::namespaced(client, &namespace);
    match jobs.create(&PostParams::default(), job).await {
        Ok(_) => Ok(name),
        Err(kube::Error::Api(status)) if status.code == 409 => {
            let existing = jobs.get(&name).await.map_err(|source| JobError::Api {
                step: "reading",
                namespace: namespace.clone(),
                name: name.clone(),
                source: Box::new(source),
            })?;
            let owner = existing
                .metadata
                .labels
                .as_ref()
                .and_then(|labels| labels.get(well_known::label::ACTION_ID))
                .cloned();
            if owner.as_deref() == Some(action_id) {
                Ok(name)
            } else {
                Err(JobError::NameTaken {
                    namespace,
                    name,
                    other: owner,
                })
            }
        }
        Err(source) => Err(JobError::Api {
            step: "creating",
            namespace,
            name,
            source: Box::new(source),
        }),
    }
}

/// Waits until the Job is Complete or Failed and returns it.
pub async fn wait_finished(
    client: kube::Client,
    namespace: &str,
    name: &str,
) -> Result<Job, JobError> {
    let jobs: Api<Job> = Api::namespaced(client, namespace);
    let finished = await_condition(jobs, name, is_finished())
        .await
        .map_err(|source| JobError::Wait {
            namespace: namespace.into(),
            name: name.into(),
            source: Box::new(source),
        })?;
    finished.ok_or_else(|| JobError::Deleted {
        namespace: namespace.into(),
        name: name.into(),
    })
}

fn is_finished() -> impl Condition<Job> {
    |job: Option<&Job>| job.is_some_and(|job| finished_condition(job).is_some())
}

/// `Some((succeeded, reason, message))` once the Job has a true Complete or Failed condition.
pub fn finished_condition(job: &Job) -> Option<(bool, String, String)> {
    let conditions = job.status.as_ref()?.conditions.as_ref()?;
    conditions
        .iter()
        .filter(|c| c.status == "True")
        .find_map(|c| match c.type_.as_str() {
            "Complete" => Some((
                true,
                c.reason.clone().unwrap_or_default(),
                c.message.clone().unwrap_or_default(),
            )),
            "Failed" => Some((
                false,
                c.reason.clone().unwrap_or_default(),
                c.message.clone().unwrap_or_default(),
            )),
            _ => None,
        })
}

/// How long a Job may have no pod while the Job controller reports `FailedCreate` before its
/// action fails: long enough for a retry to succeed after a moment's refusal, short enough that
/// a Pod Security or quota refusal does not wait for the action's timeout.
pub const FAILED_CREATE_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// Why the Job's pods are not being created: `Some("FailedCreate: <event message>")` when the
/// Job has never had a pod, is older than [`FAILED_CREATE_GRACE`], and the Job controller
/// recorded a `FailedCreate` event on it (its newest, by uid, so an earlier Job of the same
/// name does not count).
pub async fn creation_refused(
    client: kube::Client,
    namespace: &str,
    name: &str,
) -> Result<Option<String>, JobError> {
    let api_error = |step: &'static str| {
        move |source| JobError::Api {
            step,
            namespace: namespace.into(),
            name: name.into(),
            source: Box::new(source),
        }
    };
    let jobs: Api<Job> = Api::namespaced(client.clone(), namespace);
    let Some(job) = jobs.get_opt(name).await.map_err(api_error("reading"))? else {
        return Ok(None);
    };
    let had_pods = job.status.as_ref().is_some_and(|s| {
        s.active.unwrap_or(0) + s.succeeded.unwrap_or(0) + s.failed.unwrap_or(0) > 0
    });
    let young = job.metadata.creation_timestamp.as_ref().is_none_or(|t| {
        jiff::Timestamp::now().duration_since(t.0)
            < jiff::SignedDuration::from_secs(FAILED_CREATE_GRACE.as_secs() as i64)
    });
    let Some(uid) = job.metadata.uid.as_deref() else {
        return Ok(None);
    };
    if had_pods || young {
        return Ok(None);
    }
    let events: Api<Event> = Api::namespaced(client, namespace);
    let selector = format!(
        "involvedObject.kind=Job,involvedObject.name={name},involvedObject.uid={uid},reason=FailedCreate"
    );
    let listed = events
        .list(&ListParams::default().fields(&selector))
        .await
        .map_err(api_error("listing the events of"))?;
    Ok(newest_message(listed.items).map(|message| format!("FailedCreate: {message}")))
}

/// The message of the newest event (by last time, first time, then creation).
fn newest_message(mut events: Vec<Event>) -> Option<String> {
    let when = |e: &Event| {
        e.last_timestamp
            .as_ref()
            .or(e.first_timestamp.as_ref())
            .map(|t| t.0)
            .or_else(|| e.event_time.as_ref().map(|t| t.0))
            .or_else(|| e.metadata.creation_timestamp.as_ref().map(|t| t.0))
    };
    events.sort_by_key(when);
    events
        .pop()
        .map(|e| e.message.unwrap_or_default())
        .filter(|m| !m.trim().is_empty())
}

/// Where the agent finds a Job's backup info file on this node.
#[derive(Debug, Clone)]
pub struct InfoFile<'a> {
    /// The kubelet's root directory on this node (`/var/lib/kubelet`, or localkube's).
    pub kubelet_dir: &'a Path,
    /// emptyDir volume holding the file (`manager-shared-volume`).
    pub volume: &'a str,
    /// File name (`backup.info`).
    pub file: &'a str,
}

/// The `.exit` marker and the backup info file in a pod's volume directory. The pod writes
/// that directory and the agent runs as root, so nothing is read through a link the pod may
/// have planted (a link named like the info file is refused), and at most
/// [`MAX_INFO_FILE`] bytes of it. The marker counts whatever it is (the pod declares failure).
pub(super) fn read_backup_info(dir: &Path, file: &str) -> (bool, Option<String>) {
    let exit_marker = entry_exists_confined(dir, &format!("{file}.exit"));
    let info = match read_confined(dir, file, MAX_INFO_FILE) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            Some(text.trim().to_string()).filter(|t| !t.is_empty())
        }
        Err(err) => {
            tracing::debug!(error = %err, "no backup info file");
            None
        }
    };
    (exit_marker, info)
}

/// Turns a finished Job into its outcome: reads the info file and `.exit` marker from the
/// newest pod's volume and, on failure, the last lines of that pod's log.
pub async fn outcome(
    client: kube::Client,
    job: &Job,
    info: Option<&InfoFile<'_>>,
) -> Result<JobOutcome, JobError> {
    let namespace = job.metadata.namespace.clone().unwrap_or_default();
    let name = job.metadata.name.clone().unwrap_or_default();
    let (mut succeeded, reason, message) = finished_condition(job).unwrap_or((
        false,
        "Unknown".into(),
        "job has no finished condition".into(),
    ));
    let pods: Api<Pod> = Api::namespaced(client, &namespace);
    let listed = pods
        .list(&ListParams::default().labels(&format!("batch.kubernetes.io/job-name={name}")))
        .await
        .map_err(|source| JobError::Api {
            step: "listing pods of",
            namespace: namespace.clone(),
            name: name.clone(),
            source: Box::new(source),
        })?;
    let newest = newest_pod(listed.items, succeeded);
    let mut backup_info = None;
    let mut exit_marker = false;
    if let (Some(pod), Some(info)) = (&newest, info)
        && let Some(uid) = pod.metadata.uid.as_deref()
    {
        let dir = info
            .kubelet_dir
            .join("pods")
            .join(uid)
            .join("volumes/kubernetes.io~empty-dir")
            .join(info.volume);
        let file = info.file.to_string();
        (exit_marker, backup_info) =
            tokio::task::spawn_blocking(move || read_backup_info(&dir, &file))
                .await
                .unwrap_or((false, None));
    }
    if succeeded && exit_marker {
        succeeded = false;
    }
    let mut failure_reason = String::new();
    if !succeeded {
        failure_reason = if exit_marker && reason.is_empty() {
            "the action created the .exit marker".to_string()
        } else {
            format!("{reason}:{message}")
        };
        if let Some(pod) = &newest
            && let Some(pod_name) = pod.metadata.name.as_deref()
        {
            let params = LogParams {
                tail_lines: Some(10),
                limit_bytes: Some(512),
                ..Default::default()
            };
            if let Ok(log) = pods.logs(pod_name, &params).await
                && !log.trim().is_empty()
            {
                failure_reason.push_str("; last log lines: ");
                failure_reason.push_str(log.trim());
            }
        }
    }
    Ok(JobOutcome {
        job_name: name,
        succeeded,
        failure_reason,
        backup_info,
        exit_marker,
    })
}

fn newest_pod(mut pods: Vec<Pod>, succeeded: bool) -> Option<Pod> {
    let wanted = if succeeded { "Succeeded" } else { "Failed" };
    pods.sort_by(|a, b| {
        a.metadata
            .creation_timestamp
            .cmp(&b.metadata.creation_timestamp)
    });
    let matching = pods
        .iter()
        .rposition(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some(wanted));
    match matching {
        Some(index) => Some(pods.swap_remove(index)),
        None => pods.pop(),
    }
}

/// Deletes the Job and its pods (cancellation).
pub async fn delete(client: kube::Client, namespace: &str, name: &str) -> Result<(), JobError> {
    let jobs: Api<Job> = Api::namespaced(client, namespace);
    delete_with_pods(&jobs, name)
        .await
        .map_err(|source| JobError::Api {
            step: "deleting",
            namespace: namespace.into(),
            name: name.into(),
            source: Box::new(source),
        })
}

/// Deletes a workload (Job, StatefulSet) and, in the background, its pods; one already gone is
/// deleted.
pub(super) async fn delete_with_pods<K>(api: &Api<K>, name: &str) -> Result<(), kube::Error>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let params = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Background),
        ..Default::default()
    };
    match api.delete(name, &params).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(source) => Err(source),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backup_info_file_is_never_read_through_a_link_the_pod_planted() {
        let outside = tempfile::tempdir().expect("tempdir");
        std::fs::write(outside.path().join("shadow"), b"root:secret-hash:").expect("write");
        let volume = tempfile::tempdir().expect("tempdir");
        std::os::unix::fs::symlink(
            outside.path().join("shadow"),
            volume.path().join("backup.info"),
        )
        .expect("symlink");
        assert_eq!(
            read_backup_info(volume.path(), "backup.info"),
            (false, None),
            "a link's target must not become the Backup's status"
        );

        std::fs::remove_file(volume.path().join("backup.info")).expect("rm");
        std::fs::write(
            volume.path().join("backup.info"),
            b" {\"totalSize\":\"3\"}\n",
        )
        .expect("write");
        std::os::unix::fs::symlink("/nonexistent", volume.path().join("backup.info.exit"))
            .expect("symlink");
        assert_eq!(
            read_backup_info(volume.path(), "backup.info"),
            (true, Some("{\"totalSize\":\"3\"}".to_string()))
        );
    }

    fn node() -> NodeInjection {
        NodeInjection {
            node_name: "node-a".into(),
            install_image: "cairn-agent:test".into(),
            install_command: vec![
                "/usr/local/bin/cairn-agent".into(),
                "install-datasafed".into(),
                "--from".into(),
                "/usr/local/bin/datasafed".into(),
            ],
            storage_endpoint: "https://10.0.0.7:9444".into(),
            storage_cert_pem: "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
                .into(),
        }
    }

    const JOB: &str = r#"{
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": "dp-backup-0-b1-1234abcd", "namespace": "default"},
        "spec": {"backoffLimit": 2, "template": {"spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "backupdata", "image": "postgres:14",
                            "env": [{"name": "DP_DATASAFED_BIN_PATH", "value": "/custom"}]}]}}}
    }"#;

    #[test]
    fn prepared_job_is_pinned_to_this_node_and_labelled_with_the_action() {
        let job = prepare(
            JOB,
            &node(),
            &ActionInjection {
                action_id: "abc",
                storage_token: None,
            },
        )
        .unwrap();
        let labels = job.metadata.labels.as_ref().unwrap();
        assert_eq!(labels[well_known::label::ACTION_ID], "abc");
        let pod = job.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
        assert_eq!(
            pod.node_selector.as_ref().unwrap()["kubernetes.io/hostname"],
            "node-a"
        );
    }

    #[test]
    fn storage_token_reaches_containers_only_with_a_grant() {
        let without = prepare(
            JOB,
            &node(),
            &ActionInjection {
                action_id: "a",
                storage_token: None,
            },
        )
        .unwrap();
        let text = serde_json::to_string(&without).unwrap();
        assert!(!text.contains("CAIRN_STORAGE_TOKEN"));
        let with = prepare(
            JOB,
            &node(),
            &ActionInjection {
                action_id: "a",
                storage_token: Some("t0k"),
            },
        )
        .unwrap();
        let container = &with
            .spec
            .as_ref()
            .unwrap()
            .template
            .spec
            .as_ref()
            .unwrap()
            .containers[0];
        let env = container.env.as_ref().unwrap();
        assert!(
            env.iter()
                .any(|e| e.name == "CAIRN_STORAGE_TOKEN" && e.value.as_deref() == Some("t0k"))
        );
        assert!(env.iter().any(|e| e.name == "CAIRN_STORAGE_ENDPOINT"
            && e.value.as_deref() == Some("https://10.0.0.7:9444")));
        assert!(
            env.iter()
                .any(|e| e.name == "CAIRN_STORAGE_CERT" && e.value == Some(node().storage_cert_pem))
        );
    }

    #[test]
    fn datasafed_comes_from_an_init_container_into_an_emptydir_and_no_volume_is_a_host_path() {
        // A Job planned before this agent version carried hostPath volumes of its own making.
        let planned = r#"{
            "apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": "j", "namespace": "default"},
            "spec": {"template": {"spec": {
                "restartPolicy": "Never",
                "initContainers": [{"name": "prepare", "image": "busybox"}],
                "containers": [{"name": "backupdata", "image": "postgres:14"}]}}}
        }"#;
        let job = prepare(
            planned,
            &node(),
            &ActionInjection {
                action_id: "a",
                storage_token: Some("t0k"),
            },
        )
        .unwrap();
        let pod = job.spec.unwrap().template.spec.unwrap();
        let volumes = pod.volumes.unwrap_or_default();
        assert!(
            volumes.iter().all(|v| v.host_path.is_none()),
            "no hostPath volume: {volumes:?}"
        );
        let bin = volumes.iter().find(|v| v.name == BIN_VOLUME).unwrap();
        assert!(bin.empty_dir.is_some());
        let init = pod.init_containers.unwrap();
        assert_eq!(
            init.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
            [INSTALL_CONTAINER, "prepare"],
            "datasafed is installed before any other container runs"
        );
        assert_eq!(init[0].image.as_deref(), Some("cairn-agent:test"));
        assert_eq!(
            init[0].command.as_ref().unwrap().last().map(String::as_str),
            Some(INSTALL_MOUNT)
        );
        let security = init[0].security_context.as_ref().unwrap();
        assert_eq!(security.run_as_non_root, Some(true));
        assert_eq!(security.allow_privilege_escalation, Some(false));
        for container in init.iter().skip(1).chain(pod.containers.iter()) {
            let mounts = container.volume_mounts.as_ref().unwrap();
            assert!(mounts.iter().any(|m| m.name == BIN_VOLUME
                && m.mount_path == DATASAFED_BIN_MOUNT
                && m.read_only == Some(true)));
            let env = container.env.as_ref().unwrap();
            assert!(!env.iter().any(|e| e.name == "CAIRN_STORAGE_SOCKET"));
        }
    }

    #[test]
    fn an_existing_datasafed_bin_path_is_kept() {
        let job = prepare(
            JOB,
            &node(),
            &ActionInjection {
                action_id: "a",
                storage_token: None,
            },
        )
        .unwrap();
        let container = &job
            .spec
            .as_ref()
            .unwrap()
            .template
            .spec
            .as_ref()
            .unwrap()
            .containers[0];
        let values: Vec<_> = container
            .env
            .as_ref()
            .unwrap()
            .iter()
            .filter(|e| e.name == "DP_DATASAFED_BIN_PATH")
            .collect();
        assert_eq!(values.len(), 1);
        assert_eq!(values[0].value.as_deref(), Some("/custom"));
    }

    #[test]
    fn a_job_without_a_namespace_is_rejected() {
        let err = prepare(
            r#"{"metadata": {"name": "x"}, "spec": {"template": {}}}"#,
            &node(),
            &ActionInjection {
                action_id: "a",
                storage_token: None,
            },
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "job action's Job has no metadata.namespace"
        );
    }

    #[test]
    fn finished_condition_reads_complete_and_failed() {
        let mut job: Job = serde_json::from_str(JOB).unwrap();
        assert_eq!(finished_condition(&job), None);
        job.status = Some(serde_json::from_value(serde_json::json!({
            "conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
                            "message": "Job has reached the specified backoff limit"}]
        })).unwrap());
        assert_eq!(
            finished_condition(&job),
            Some((
                false,
                "BackoffLimitExceeded".into(),
                "Job has reached the specified backoff limit".into()
            ))
        );
    }
}
