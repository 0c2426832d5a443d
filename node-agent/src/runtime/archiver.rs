//! Archiver actions (continuous backups, PROTOCOL.md §2.4 `ArchiverAction`, ARCHITECTURE.md
//! §K2.9): create the StatefulSet the control plane built, with what this node adds to every
//! action pod, and supervise it until the action is cancelled: re-create it if it is deleted,
//! read its backup info file as it changes, and notice when its container restarts.
//! A restarted agent adopts its StatefulSet through the `cairn.io/action-id` label.

use std::path::Path;

use cairn_api::well_known;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, LogParams, PostParams};

use super::job::{ActionInjection, NodeInjection, mark_workload, read_backup_info};

/// The most of a log tail reported with a restart.
const LOG_TAIL_BYTES: i64 = 512;
const LOG_TAIL_LINES: i64 = 10;

/// Why an archiver could not be carried out.
#[derive(Debug, thiserror::Error)]
pub enum ArchiverError {
    /// `statefulset_json` is not an apps/v1 StatefulSet.
    #[error("archiver action carries an invalid apps/v1 StatefulSet")]
    Invalid(#[source] serde_json::Error),
    /// The StatefulSet has no name or namespace.
    #[error("archiver action's StatefulSet has no {0}")]
    MissingField(&'static str),
    /// A StatefulSet with the same name exists but belongs to another action.
    #[error("statefulset {namespace}/{name} already exists and belongs to action {other:?}")]
    NameTaken {
        namespace: String,
        name: String,
        other: Option<String>,
    },
    /// An API call failed.
    #[error("{step} statefulset {namespace}/{name}")]
    Api {
        step: &'static str,
        namespace: String,
        name: String,
        #[source]
        source: Box<kube::Error>,
    },
}

/// Parses the StatefulSet the control plane built and adds this node's part to its pods.
pub fn prepare(
    json: &str,
    node: &NodeInjection,
    action: &ActionInjection<'_>,
) -> Result<StatefulSet, ArchiverError> {
    let mut set: StatefulSet = serde_json::from_str(json).map_err(ArchiverError::Invalid)?;
    let spec = set.spec.get_or_insert_with(Default::default);
    mark_workload(&mut set.metadata, &mut spec.template, node, action)
        .map_err(ArchiverError::MissingField)?;
    Ok(set)
}

/// Creates the StatefulSet, or adopts it when this action created it before (agent restart,
/// or a look after it was found missing).
pub async fn ensure(
    client: kube::Client,
    set: &StatefulSet,
    action_id: &str,
) -> Result<(), ArchiverError> {
    let namespace = set.metadata.namespace.clone().unwrap_or_default();
    let name = set.metadata.name.clone().unwrap_or_default();
    let api: Api<StatefulSet> = Api::namespaced(client, &namespace);
    let api_error = |step, source| ArchiverError::Api {
        step,
        namespace: namespace.clone(),
        name: name.clone(),
        source: Box::new(source),
    };
    match api.create(&PostParams::default(), set).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 409 => {
            let existing = api
                .get(&name)
                .await
                .map_err(|source| api_error("reading", source))?;
            let owner = existing
                .metadata
                .labels
                .as_ref()
                .and_then(|labels| labels.get(well_known::label::ACTION_ID))
                .cloned();
            if owner.as_deref() == Some(action_id) {
                Ok(())
            } else {
                Err(ArchiverError::NameTaken {
                    namespace: namespace.clone(),
                    name: name.clone(),
                    other: owner,
                })
            }
        }
        Err(source) => Err(api_error("creating", source)),
    }
}

/// The spec digest the control plane put on a StatefulSet (PROTOCOL.md §2.4).
pub fn spec_digest(set: &StatefulSet) -> Option<&str> {
    set.metadata
        .annotations
        .as_ref()?
        .get(well_known::annotation::ARCHIVER_SPEC_DIGEST)
        .map(String::as_str)
}

/// Whether the live StatefulSet runs another spec than `planned`: their digests differ.
/// A planned set without a digest (an older control plane) never replaces a live one.
pub fn needs_update(live: &StatefulSet, planned: &StatefulSet) -> bool {
    spec_digest(planned).is_some_and(|wanted| spec_digest(live) != Some(wanted))
}

/// What [`revise`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revision {
    /// The live StatefulSet has the planned digest already.
    Unchanged,
    /// Its spec was replaced: the StatefulSet controller replaces its pod (one at a time).
    Updated,
    /// It did not exist and was created.
    Created,
}

/// Brings the live StatefulSet of action `action_id` to `planned` when their spec digests
/// differ: its spec (pod template, replicas), labels and annotations are replaced in place,
/// as KubeBlocks overwrites the archiver's template at every reconcile. The StatefulSet
/// controller then replaces the pod, never running the old and the new one at once.
pub async fn revise(
    client: kube::Client,
    planned: &StatefulSet,
    action_id: &str,
) -> Result<Revision, ArchiverError> {
    let namespace = planned.metadata.namespace.clone().unwrap_or_default();
    let name = planned.metadata.name.clone().unwrap_or_default();
    let api: Api<StatefulSet> = Api::namespaced(client.clone(), &namespace);
    let api_error = |step, source| ArchiverError::Api {
        step,
        namespace: namespace.clone(),
        name: name.clone(),
        source: Box::new(source),
    };
    let Some(mut live) = api
        .get_opt(&name)
        .await
        .map_err(|source| api_error("reading", source))?
    else {
        ensure(client, planned, action_id).await?;
        return Ok(Revision::Created);
    };
    let owner = live
        .metadata
        .labels
        .as_ref()
        .and_then(|labels| labels.get(well_known::label::ACTION_ID))
        .cloned();
    if owner.as_deref() != Some(action_id) {
        return Err(ArchiverError::NameTaken {
            namespace: namespace.clone(),
            name: name.clone(),
            other: owner,
        });
    }
    if !needs_update(&live, planned) {
        return Ok(Revision::Unchanged);
    }
    live.spec.clone_from(&planned.spec);
    live.metadata.labels.clone_from(&planned.metadata.labels);
    live.metadata
        .annotations
        .clone_from(&planned.metadata.annotations);
    live.status = None;
    api.replace(&name, &PostParams::default(), &live)
        .await
        .map_err(|source| api_error("updating", source))?;
    Ok(Revision::Updated)
}

/// Whether the StatefulSet exists (and is not being deleted).
pub async fn exists(
    client: kube::Client,
    namespace: &str,
    name: &str,
) -> Result<bool, ArchiverError> {
    let api: Api<StatefulSet> = Api::namespaced(client, namespace);
    match api.get_opt(name).await {
        Ok(found) => Ok(found.is_some_and(|s| s.metadata.deletion_timestamp.is_none())),
        Err(source) => Err(ArchiverError::Api {
            step: "reading",
            namespace: namespace.into(),
            name: name.into(),
            source: Box::new(source),
        }),
    }
}

/// Deletes the StatefulSet and its pod (cancellation).
pub async fn delete(
    client: kube::Client,
    namespace: &str,
    name: &str,
) -> Result<(), ArchiverError> {
    let api: Api<StatefulSet> = Api::namespaced(client, namespace);
    super::job::delete_with_pods(&api, name)
        .await
        .map_err(|source| ArchiverError::Api {
            step: "deleting",
            namespace: namespace.into(),
            name: name.into(),
            source: Box::new(source),
        })
}

/// What one look at the archiver's pod found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Look {
    /// The backup info file, when the pod has written one.
    pub info: Option<String>,
    /// How often the pod's first container has restarted.
    pub restarts: u32,
    /// Why the container last terminated (`<reason> (exit code <n>)`), when it has.
    pub last_termination: Option<String>,
    /// The pod's uid (a new pod has a new one).
    pub pod_uid: Option<String>,
}

/// What the supervisor remembers between looks, to report what changed.
#[derive(Debug, Clone, Default)]
pub struct Supervision {
    /// The newest info file content seen (kept when a new pod has not written one yet).
    pub info: Option<String>,
    /// Restarts over every pod of this run (a replaced pod starts again at 0).
    pub restarts: u32,
    /// Why it last restarted, with the last lines of its log.
    pub last_failure: Option<String>,
    pod_uid: Option<String>,
    pod_restarts: u32,
    replacement_expected: bool,
}

impl Supervision {
    /// The StatefulSet's spec was revised: the next new pod replaces the current one for the
    /// new spec, which is no restart.
    pub fn expect_replacement(&mut self) {
        self.replacement_expected = true;
    }

    /// Takes in one look; returns whether the container restarted (or its pod was replaced
    /// after a failure) since the last look, so that its log is worth reading.
    pub fn update(&mut self, look: Look) -> bool {
        if look.info.is_some() {
            self.info = look.info;
        }
        let Some(uid) = look.pod_uid else {
            return false;
        };
        let restarted = if self.pod_uid.as_ref() == Some(&uid) {
            let more = look.restarts.saturating_sub(self.pod_restarts);
            self.restarts += more;
            more > 0
        } else {
            // A new pod: the old one was replaced (it failed, or was deleted, unless a revised
            // spec replaced it), and a new pod may already have restarted.
            let replaced = u32::from(self.pod_uid.is_some() && !self.replacement_expected);
            self.replacement_expected = false;
            self.restarts += look.restarts + replaced;
            look.restarts + replaced > 0
        };
        self.pod_uid = Some(uid);
        self.pod_restarts = look.restarts;
        if restarted && let Some(reason) = look.last_termination {
            self.last_failure = Some(reason);
        }
        restarted
    }
}

/// Looks at the archiver's pod `<set>-0`: its restarts and the backup info file in its
/// `info_volume` under the kubelet's directory on this node.
pub async fn look(
    client: kube::Client,
    namespace: &str,
    set_name: &str,
    kubelet_dir: &Path,
    info_volume: &str,
    info_file: &str,
) -> Look {
    let pods: Api<Pod> = Api::namespaced(client, namespace);
    let Ok(Some(pod)) = pods.get_opt(&format!("{set_name}-0")).await else {
        return Look::default();
    };
    let uid = pod.metadata.uid.clone();
    let status = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|c| c.first());
    let restarts = status
        .map(|c| u32::try_from(c.restart_count).unwrap_or(0))
        .unwrap_or(0);
    let last_termination = status
        .and_then(|c| c.last_state.as_ref())
        .and_then(|s| s.terminated.as_ref())
        .map(|t| {
            format!(
                "{} (exit code {})",
                t.reason.as_deref().unwrap_or("Error"),
                t.exit_code
            )
        });
    let mut info = None;
    if let Some(uid) = &uid {
        let dir = kubelet_dir
            .join("pods")
            .join(uid)
            .join("volumes/kubernetes.io~empty-dir")
            .join(info_volume);
        let file = info_file.to_string();
        info = tokio::task::spawn_blocking(move || read_backup_info(&dir, &file).1)
            .await
            .unwrap_or(None);
    }
    Look {
        info,
        restarts,
        last_termination,
        pod_uid: uid,
    }
}

/// The last lines of the archiver container's log: of its previous run when it restarted in
/// place, else of the current one.
pub async fn log_tail(client: kube::Client, namespace: &str, set_name: &str) -> Option<String> {
    let pods: Api<Pod> = Api::namespaced(client, namespace);
    let pod = format!("{set_name}-0");
    let mut params = LogParams {
        tail_lines: Some(LOG_TAIL_LINES),
        limit_bytes: Some(LOG_TAIL_BYTES),
        previous: true,
        ..Default::default()
    };
    let log = match pods.logs(&pod, &params).await {
        Ok(log) if !log.trim().is_empty() => log,
        _ => {
            params.previous = false;
            pods.logs(&pod, &params).await.ok()?
        }
    };
    Some(log.trim().to_string()).filter(|l| !l.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn look(uid: &str, restarts: u32, info: Option<&str>) -> Look {
        Look {
            info: info.map(str::to_string),
            restarts,
            last_termination: Some(format!("Error (exit code {restarts})")),
            pod_uid: Some(uid.into()),
        }
    }

    #[test]
    fn restarts_are_counted_across_restarts_in_place_and_replaced_pods() {
        let mut s = Supervision::default();
        assert!(!s.update(look("p1", 0, None)));
        assert_eq!((s.restarts, s.last_failure.clone()), (0, None));
        assert!(s.update(look("p1", 2, Some("{\"a\":1}"))));
        assert_eq!(s.restarts, 2);
        assert_eq!(s.last_failure.as_deref(), Some("Error (exit code 2)"));
        assert!(!s.update(look("p1", 2, None)));
        assert_eq!(s.restarts, 2);
        // The info seen stays while the pod has not written a new one.
        assert_eq!(s.info.as_deref(), Some("{\"a\":1}"));
        // The pod was replaced (it failed, or someone deleted it): one more.
        assert!(s.update(look("p2", 0, None)));
        assert_eq!(s.restarts, 3);
        // A look that found no pod changes nothing.
        assert!(!s.update(Look::default()));
        assert_eq!(s.restarts, 3);
        assert!(!s.update(look("p2", 0, Some("{\"a\":2}"))));
        assert_eq!(s.info.as_deref(), Some("{\"a\":2}"));
        // A pod replaced for a revised spec is no restart; a later replacement is again.
        s.expect_replacement();
        assert!(!s.update(look("p2", 0, None)));
        assert!(!s.update(look("p3", 0, None)));
        assert_eq!(s.restarts, 3);
        assert!(s.update(look("p4", 0, None)));
        assert_eq!(s.restarts, 4);
    }

    fn with_digest(digest: Option<&str>) -> StatefulSet {
        let mut set = StatefulSet::default();
        if let Some(digest) = digest {
            set.metadata.annotations = Some(
                [(
                    well_known::annotation::ARCHIVER_SPEC_DIGEST.to_string(),
                    digest.to_string(),
                )]
                .into(),
            );
        }
        set
    }

    #[test]
    fn only_another_planned_digest_replaces_a_live_archiver() {
        let live = with_digest(Some("d1"));
        assert!(!needs_update(&live, &with_digest(Some("d1"))));
        assert!(needs_update(&live, &with_digest(Some("d2"))));
        // A live set from before digests gets the planned one.
        assert!(needs_update(&with_digest(None), &with_digest(Some("d1"))));
        // A control plane that sends none never restarts an archiver.
        assert!(!needs_update(&live, &with_digest(None)));
    }

    #[test]
    fn the_statefulset_gets_the_action_label_and_this_nodes_part() {
        let json = serde_json::json!({
            "metadata": {"name": "b1", "namespace": "default", "labels": {"a": "b"}},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"a": "b"}}, "serviceName": "",
                     "template": {"metadata": {"labels": {"a": "b"}},
                                  "spec": {"restartPolicy": "Always",
                                           "containers": [{"name": "backupdata", "image": "x"}]}}}
        })
        .to_string();
        let node = NodeInjection {
            node_name: "node-a".into(),
            install_image: "cairn-agent:test".into(),
            install_command: vec![
                "/usr/local/bin/cairn-agent".into(),
                "install-datasafed".into(),
            ],
            storage_endpoint: "https://10.0.0.7:9444".into(),
            storage_cert_pem: "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
                .into(),
        };
        let set = prepare(
            &json,
            &node,
            &ActionInjection {
                action_id: "id-1",
                storage_token: Some("tok"),
            },
        )
        .expect("valid");
        let spec = set.spec.expect("spec");
        let template_labels = spec
            .template
            .metadata
            .expect("meta")
            .labels
            .expect("labels");
        assert_eq!(template_labels[well_known::label::ACTION_ID], "id-1");
        assert_eq!(
            set.metadata.labels.expect("labels")[well_known::label::ACTION_ID],
            "id-1"
        );
        let pod = spec.template.spec.expect("pod");
        assert_eq!(
            pod.node_selector.expect("selector")["kubernetes.io/hostname"],
            "node-a"
        );
        let env = pod.containers[0].env.clone().expect("env");
        assert!(env.iter().any(|e| e.name == "CAIRN_STORAGE_TOKEN"));
        // datasafed reaches the agent with no hostPath, as from any action pod.
        assert!(env.iter().any(|e| e.name == "CAIRN_STORAGE_ENDPOINT"));
        assert!(pod.volumes.iter().flatten().all(|v| v.host_path.is_none()));
        assert!(matches!(
            prepare(
                "{}",
                &node,
                &ActionInjection {
                    action_id: "x",
                    storage_token: None
                }
            ),
            Err(ArchiverError::MissingField("metadata.name"))
        ));
    }
}
