//! Volume snapshot actions (docs/PROTOCOL.md §2.4): create the VolumeSnapshots the planner
//! built, labelled with the action id, then wait until every one is `readyToUse`.
//!
//! - A snapshot that exists with this action's label is adopted (an agent restart, or the
//!   same action dispatched again); one without it fails the action.
//! - A `status.error` fails the action with the snapshotter's message: at once for the
//!   messages KubeBlocks treats as fatal, after [`ERROR_GRACE`] for others (snapshotters
//!   retry those, and a conflict on their own update is one).
//! - No readiness within the action's timeout fails it, naming the snapshots still waiting.

use std::collections::BTreeMap;
use std::time::Duration;

use cairn_api::well_known;
use cairn_proto::agent::v1::VolumeSnapshotAction;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, PostParams};
use serde_json::{Value, json};
use tokio::time::Instant;

/// How long a non-fatal snapshotter error may last before the action fails.
pub const ERROR_GRACE: Duration = Duration::from_secs(30);
/// How often the snapshots are read while waiting.
const POLL: Duration = Duration::from_millis(500);
/// Messages KubeBlocks fails a snapshot action on at once (§K2.5).
const FATAL: [&str; 3] = [
    "Failed to set default snapshot class with error",
    "Failed to get snapshot class with error",
    "Failed to create snapshot content with error cannot find CSI PersistentVolumeSource for volume",
];

/// Why a snapshot action failed.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("snapshot {index} of the action is not a VolumeSnapshot object: {reason}")]
    Invalid { index: usize, reason: String },
    #[error("{step} VolumeSnapshot {namespace}/{name}")]
    Api {
        step: &'static str,
        namespace: String,
        name: String,
        #[source]
        source: Box<kube::Error>,
    },
    #[error(
        "VolumeSnapshot {namespace}/{name} already exists and was not created by this action (action id {other:?})"
    )]
    NameTaken {
        namespace: String,
        name: String,
        other: Option<String>,
    },
    #[error("VolumeSnapshot {namespace}/{name} was deleted before it became ready")]
    Gone { namespace: String, name: String },
    #[error("VolumeSnapshot {namespace}/{name} failed: {message}")]
    Failed {
        namespace: String,
        name: String,
        message: String,
    },
    #[error("VolumeSnapshot(s) {waiting} not ready to use after {seconds}s")]
    Timeout { waiting: String, seconds: u64 },
}

fn resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("snapshot.storage.k8s.io", "v1", "VolumeSnapshot"),
        "volumesnapshots",
    )
}

/// One planned snapshot, parsed.
struct Planned {
    volume_name: String,
    namespace: String,
    name: String,
    object: DynamicObject,
}

/// Creates the action's snapshots, waits for them and returns the result JSON
/// (`{"volumeSnapshots": [...]}`).
pub async fn run(
    client: kube::Client,
    action_id: &str,
    spec: &VolumeSnapshotAction,
) -> Result<String, SnapshotError> {
    let mut planned = Vec::new();
    for (index, snapshot) in spec.snapshots.iter().enumerate() {
        let mut object: DynamicObject =
            serde_json::from_str(&snapshot.snapshot_json).map_err(|err| {
                SnapshotError::Invalid {
                    index,
                    reason: err.to_string(),
                }
            })?;
        object
            .metadata
            .labels
            .get_or_insert_with(BTreeMap::new)
            .insert(well_known::label::ACTION_ID.into(), action_id.into());
        let namespace = object.metadata.namespace.clone().unwrap_or_default();
        let name = object.metadata.name.clone().unwrap_or_default();
        if namespace.is_empty() || name.is_empty() {
            return Err(SnapshotError::Invalid {
                index,
                reason: "it has no name or namespace".into(),
            });
        }
        planned.push(Planned {
            volume_name: snapshot.volume_name.clone(),
            namespace,
            name,
            object,
        });
    }
    for p in &planned {
        create_or_adopt(&client, p, action_id).await?;
    }
    let timeout =
        (spec.timeout_seconds > 0).then(|| Duration::from_secs(u64::from(spec.timeout_seconds)));
    let started = Instant::now();
    let mut first_error: BTreeMap<String, Instant> = BTreeMap::new();
    loop {
        let mut ready = Vec::new();
        let mut waiting = Vec::new();
        for p in &planned {
            let api: Api<DynamicObject> =
                Api::namespaced_with(client.clone(), &p.namespace, &resource());
            let current = api
                .get_opt(&p.name)
                .await
                .map_err(|source| SnapshotError::Api {
                    step: "reading",
                    namespace: p.namespace.clone(),
                    name: p.name.clone(),
                    source: Box::new(source),
                })?
                .ok_or_else(|| SnapshotError::Gone {
                    namespace: p.namespace.clone(),
                    name: p.name.clone(),
                })?;
            let status = current.data.get("status").cloned().unwrap_or(Value::Null);
            if status.get("readyToUse").and_then(Value::as_bool) == Some(true) {
                first_error.remove(&p.name);
                ready.push(entry(p, &status));
                continue;
            }
            let message = status
                .pointer("/error/message")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if message.is_empty() {
                first_error.remove(&p.name);
            } else {
                let since = *first_error
                    .entry(p.name.clone())
                    .or_insert_with(Instant::now);
                if FATAL.iter().any(|f| message.contains(f)) || since.elapsed() >= ERROR_GRACE {
                    return Err(SnapshotError::Failed {
                        namespace: p.namespace.clone(),
                        name: p.name.clone(),
                        message: message.to_string(),
                    });
                }
            }
            waiting.push(format!("{}/{}", p.namespace, p.name));
        }
        if waiting.is_empty() {
            return Ok(json!({ "volumeSnapshots": ready }).to_string());
        }
        if let Some(limit) = timeout
            && started.elapsed() >= limit
        {
            return Err(SnapshotError::Timeout {
                waiting: waiting.join(", "),
                seconds: limit.as_secs(),
            });
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The result entry of a ready snapshot.
fn entry(p: &Planned, status: &Value) -> Value {
    let text = |key: &str| match status.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    };
    json!({
        "name": p.name,
        "contentName": text("boundVolumeSnapshotContentName"),
        "volumeName": p.volume_name,
        "size": text("restoreSize"),
        "creationTime": status.get("creationTime").cloned().unwrap_or(Value::Null),
    })
}

async fn create_or_adopt(
    client: &kube::Client,
    p: &Planned,
    action_id: &str,
) -> Result<(), SnapshotError> {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &p.namespace, &resource());
    match api.create(&PostParams::default(), &p.object).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 409 => {
            let existing = api
                .get(&p.name)
                .await
                .map_err(|source| SnapshotError::Api {
                    step: "reading",
                    namespace: p.namespace.clone(),
                    name: p.name.clone(),
                    source: Box::new(source),
                })?;
            let owner = existing
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(well_known::label::ACTION_ID))
                .cloned();
            if owner.as_deref() == Some(action_id) {
                Ok(())
            } else {
                Err(SnapshotError::NameTaken {
                    namespace: p.namespace.clone(),
                    name: p.name.clone(),
                    other: owner,
                })
            }
        }
        Err(source) => Err(SnapshotError::Api {
            step: "creating",
            namespace: p.namespace.clone(),
            name: p.name.clone(),
            source: Box::new(source),
        }),
    }
}
