//! `cairnctl backup logs NAME` and `cairnctl restore logs NAME`: what the actions of a Backup or
//! a Restore printed, as `kubectl logs` shows it. For an action run by a Job (or the
//! StatefulSet of a continuous backup): the logs of its pods, container by container, through
//! the API server's `pods/log` (`-f` follows them); for an action run in the target pod
//! (exec) or with no workload: the record the agent left in the object's status (its phase
//! and, for a failure, the exit code and the tail of its stderr). Each block starts with a
//! `==> ... <==` line on stderr, so stdout holds exactly what the containers wrote. Init
//! containers (the datasafed installer) are left out unless `--all-containers`, as kubectl
//! does.

use std::collections::BTreeMap;

use anyhow::Context as _;
use futures::AsyncBufReadExt as _;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, LogParams};
use tokio::io::AsyncWriteExt as _;

/// Arguments of `cairnctl backup logs` and `cairnctl restore logs`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The Backup (or Restore).
    pub name: String,
    /// Follow the logs of the pods that are still running, until they end.
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// Only this action (its name in the status, as `describe` lists them, e.g. dp-backup-0 or
    /// prepareData-0); repeatable.
    #[arg(long = "action")]
    pub actions: Vec<String>,
    /// Only the last N lines of each container (kubectl's --tail).
    #[arg(long)]
    pub tail: Option<i64>,
    /// Only one container of each pod (default: every container, each under its own header).
    #[arg(short = 'c', long)]
    pub container: Option<String>,
    /// Also the init containers (those that install datasafed), as kubectl's --all-containers.
    #[arg(long)]
    pub all_containers: bool,
}

/// Where one action's output is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The pods of a workload (`Job` or `StatefulSet`) in a namespace.
    Workload {
        action: String,
        kind: String,
        namespace: String,
        name: String,
    },
    /// What the status records of an action that ran in the target pod or has no workload.
    Record { action: String, text: String },
}

impl Source {
    fn action(&self) -> &str {
        match self {
            Source::Workload { action, .. } | Source::Record { action, .. } => action,
        }
    }
}

/// The sources of a Backup's actions, in status order.
pub fn backup_sources(backup: &cairn_api::backup::Backup) -> Vec<Source> {
    let namespace = backup.metadata.namespace.clone().unwrap_or_default();
    let actions = backup
        .status
        .as_ref()
        .and_then(|s| s.actions.clone())
        .unwrap_or_default();
    actions
        .into_iter()
        .map(|a| {
            let action = a.name.clone().unwrap_or_default();
            match &a.object_ref {
                Some(object) if object.name.is_some() => Source::Workload {
                    action,
                    kind: object.kind.clone().unwrap_or_else(|| "Job".into()),
                    namespace: object
                        .namespace
                        .clone()
                        .unwrap_or_else(|| namespace.clone()),
                    name: object.name.clone().unwrap_or_default(),
                },
                _ => {
                    let mut text = a
                        .phase
                        .map(|p| format!("{p:?}"))
                        .unwrap_or_else(|| "New".into());
                    if let Some(pod) = &a.target_pod_name {
                        text = format!("ran in pod {pod}: {text}");
                    }
                    if let Some(why) = &a.failure_reason {
                        text.push_str(&format!(": {why}"));
                    }
                    Source::Record { action, text }
                }
            }
        })
        .collect()
}

/// The sources of a Restore's actions: prepareData then postReady (`objectKey` `Job/<name>`).
pub fn restore_sources(restore: &cairn_api::restore::Restore) -> Vec<Source> {
    let namespace = restore.metadata.namespace.clone().unwrap_or_default();
    let actions = restore.status.as_ref().and_then(|s| s.actions.clone());
    let Some(actions) = actions else {
        return Vec::new();
    };
    actions
        .prepare_data
        .unwrap_or_default()
        .into_iter()
        .chain(actions.post_ready.unwrap_or_default())
        .map(|a| match a.object_key.split_once('/') {
            Some((kind, name)) if !name.is_empty() => Source::Workload {
                action: a.name,
                kind: kind.to_string(),
                namespace: namespace.clone(),
                name: name.to_string(),
            },
            _ => Source::Record {
                text: format!(
                    "{}{}",
                    a.status
                        .map(|s| format!("{s:?}"))
                        .unwrap_or_else(|| "New".into()),
                    a.message.map(|m| format!(": {m}")).unwrap_or_default()
                ),
                action: a.name,
            },
        })
        .collect()
}

/// Keeps the actions `wanted` names (all when empty); an unknown name is an error naming the
/// actions there are.
pub fn choose(
    sources: Vec<Source>,
    wanted: &[String],
    object: &str,
) -> anyhow::Result<Vec<Source>> {
    for name in wanted {
        if !sources.iter().any(|s| s.action() == name) {
            let known: Vec<&str> = sources.iter().map(Source::action).collect();
            anyhow::bail!(
                "{object} has no action {name} (actions: {})",
                if known.is_empty() {
                    "none yet".to_string()
                } else {
                    known.join(", ")
                }
            );
        }
    }
    Ok(sources
        .into_iter()
        .filter(|s| wanted.is_empty() || wanted.iter().any(|w| w == s.action()))
        .collect())
}

/// The pods of a workload, oldest first: a Job's by its `job-name` label, a StatefulSet's by
/// its selector.
async fn pods_of(
    client: &kube::Client,
    kind: &str,
    namespace: &str,
    name: &str,
) -> anyhow::Result<Vec<Pod>> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let selector = match kind {
        "StatefulSet" => {
            let sets: Api<StatefulSet> = Api::namespaced(client.clone(), namespace);
            let Some(set) = sets
                .get_opt(name)
                .await
                .with_context(|| format!("reading StatefulSet {namespace}/{name}"))?
            else {
                return Ok(Vec::new());
            };
            let labels: BTreeMap<String, String> = set
                .spec
                .and_then(|s| s.selector.match_labels)
                .unwrap_or_default();
            labels
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(",")
        }
        _ => format!("batch.kubernetes.io/job-name={name}"),
    };
    let mut found = pods
        .list(&ListParams::default().labels(&selector))
        .await
        .with_context(|| format!("listing the pods of {kind} {namespace}/{name}"))?
        .items;
    found.sort_by_key(|p| {
        (
            p.metadata.creation_timestamp.as_ref().map(|t| t.0),
            p.metadata.name.clone(),
        )
    });
    Ok(found)
}

/// Prints the logs of `sources`.
pub async fn print(client: &kube::Client, sources: &[Source], args: &Args) -> anyhow::Result<()> {
    let mut stdout = tokio::io::stdout();
    for source in sources {
        let (action, kind, namespace, name) = match source {
            Source::Record { action, text } => {
                eprintln!("==> action {action} (no pod of its own) <==");
                stdout.write_all(format!("{text}\n").as_bytes()).await?;
                stdout.flush().await?;
                continue;
            }
            Source::Workload {
                action,
                kind,
                namespace,
                name,
            } => (action, kind, namespace, name),
        };
        let pods = pods_of(client, kind, namespace, name).await?;
        if pods.is_empty() {
            eprintln!(
                "==> action {action} ({kind}/{name}): no pods (not started yet, or deleted with the {kind}) <=="
            );
            continue;
        }
        let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
        for pod in pods {
            let pod_name = pod.metadata.name.clone().unwrap_or_default();
            let containers: Vec<String> = pod
                .spec
                .iter()
                .flat_map(|s| {
                    s.init_containers
                        .iter()
                        .flatten()
                        .filter(|_| args.all_containers)
                        .chain(s.containers.iter())
                        .map(|c| c.name.clone())
                })
                .filter(|c| args.container.as_deref().is_none_or(|wanted| wanted == c))
                .collect();
            for container in containers {
                eprintln!(
                    "==> action {action} ({kind}/{name}) pod/{pod_name} container {container} <=="
                );
                let params = LogParams {
                    container: Some(container.clone()),
                    follow: args.follow,
                    tail_lines: args.tail,
                    ..LogParams::default()
                };
                match api.log_stream(&pod_name, &params).await {
                    Ok(stream) => {
                        let mut chunks = std::pin::pin!(stream);
                        loop {
                            let chunk = chunks.fill_buf().await.with_context(|| {
                                format!("reading the log of pod {namespace}/{pod_name} container {container}")
                            })?;
                            if chunk.is_empty() {
                                break;
                            }
                            stdout.write_all(chunk).await?;
                            let n = chunk.len();
                            chunks.consume_unpin(n);
                        }
                        stdout.flush().await?;
                    }
                    // A container that has not started (or never will) has no log yet: say
                    // so and go on with the others, as `kubectl logs --all-containers` does.
                    Err(kube::Error::Api(status)) if status.code == 400 => {
                        eprintln!("({})", status.message);
                    }
                    Err(err) => {
                        return Err(err).with_context(|| {
                            format!("reading the log of pod {namespace}/{pod_name} container {container}")
                        });
                    }
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_actions_point_at_their_pods_and_exec_actions_at_the_agents_record() {
        let backup: cairn_api::backup::Backup = serde_json::from_value(serde_json::json!({
            "apiVersion": "dataprotection.kubeblocks.io/v1alpha1", "kind": "Backup",
            "metadata": {"name": "b1", "namespace": "ns"},
            "spec": {"backupPolicyName": "pol", "backupMethod": "tar"},
            "status": {"actions": [
                {"name": "pre-0", "phase": "Failed", "targetPodName": "db-0",
                 "failureReason": "command in container \"main\" exited with code 3: pre-hook refuses to freeze"},
                {"name": "dp-backup-0", "phase": "Completed", "actionType": "Job",
                 "objectRef": {"kind": "Job", "name": "dp-backup-0-b1-1234"}}
            ]}
        }))
        .unwrap();
        let sources = backup_sources(&backup);
        assert_eq!(
            sources,
            [
                Source::Record {
                    action: "pre-0".into(),
                    text: "ran in pod db-0: Failed: command in container \"main\" exited with code 3: pre-hook refuses to freeze".into()
                },
                Source::Workload {
                    action: "dp-backup-0".into(),
                    kind: "Job".into(),
                    namespace: "ns".into(),
                    name: "dp-backup-0-b1-1234".into()
                }
            ]
        );
        let chosen = choose(sources.clone(), &["dp-backup-0".into()], "Backup b1").unwrap();
        assert_eq!(chosen, sources[1..]);
        let err = choose(sources, &["nope".into()], "Backup b1")
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "Backup b1 has no action nope (actions: pre-0, dp-backup-0)"
        );
    }

    #[test]
    fn restore_actions_are_found_by_their_object_key() {
        let restore: cairn_api::restore::Restore = serde_json::from_value(serde_json::json!({
            "apiVersion": "dataprotection.kubeblocks.io/v1alpha1", "kind": "Restore",
            "metadata": {"name": "r1", "namespace": "ns"},
            "spec": {"backup": {"name": "b1", "namespace": "ns"}},
            "status": {"actions": {
                "prepareData": [{"name": "prepareData-0", "backupName": "b1",
                                 "objectKey": "Job/restore-r1-0", "status": "Completed"}],
                "postReady": [{"name": "postReady-0", "backupName": "b1", "objectKey": "",
                               "status": "Failed", "message": "no pod"}]
            }}
        }))
        .unwrap();
        assert_eq!(
            restore_sources(&restore),
            [
                Source::Workload {
                    action: "prepareData-0".into(),
                    kind: "Job".into(),
                    namespace: "ns".into(),
                    name: "restore-r1-0".into()
                },
                Source::Record {
                    action: "postReady-0".into(),
                    text: "Failed: no pod".into()
                }
            ]
        );
    }
}
