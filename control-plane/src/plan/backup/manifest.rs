//! The end of a Backup: once every pod is done, an agent writes `kubeblocks-backup.json` (the
//! Backup as completed) beside the data, and only then is the Backup `Completed`
//! (ARCHITECTURE.md §K2.6).

use std::time::Duration;

use cairn_api::backup::{BackupPhase, BackupProgress, BackupStatus};
use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::pods::grant;
use super::request::Request;
use super::{MANIFEST_ACTION, MANIFEST_FILE, Observed, elapsed, expiration, fail, owner, path};
use crate::plan::action::{ActionKind, Step, lost_message, step, to_wire};
use crate::plan::ids::action_id;
use crate::plan::intent::{Intent, Plan};

/// Every pod is done: write `kubeblocks-backup.json`, then complete the Backup.
pub(super) fn finish(
    o: &Observed,
    request: &Request<'_>,
    mut status: BackupStatus,
    now: Timestamp,
    mut intents: Vec<Intent>,
) -> Plan<BackupStatus> {
    for action in status.actions.clone().iter().flatten() {
        if status.total_size.is_none() {
            status.total_size = action.total_size.clone();
        }
        if status.time_range.is_none() {
            status.time_range = action.time_range.clone();
        }
    }
    let mut completed = status.clone();
    completed.phase = Some(BackupPhase::Completed);
    completed.completion_timestamp = Some(Time(now));
    if let Some(start) = &completed.start_timestamp {
        completed.duration = Some(crate::plan::time::go_duration_text(elapsed(start.0, now)));
    }
    completed.expiration = expiration(&o.backup, &completed);
    let done_bytes = completed.progress.as_ref().map(|p| p.bytes_done);
    completed.progress = done_bytes.map(|bytes| BackupProgress {
        bytes_done: bytes,
        bytes_total: Some(bytes),
        bytes_per_second: None,
        eta_seconds: Some(0),
        update_time: Some(Time(now)),
    });
    let uid = o.backup.metadata.uid.clone().unwrap_or_default();
    let id = action_id(&uid, MANIFEST_ACTION, "");
    // The manifest is written by the agent of the first target pod's node.
    let node = request
        .targets
        .iter()
        .flat_map(|t| t.pods.iter())
        .find_map(|p| p.spec.as_ref().and_then(|s| s.node_name.clone()))
        .unwrap_or_default();
    // A snapshot backup has no repository, so no manifest to write (§K2.5).
    if request.access.is_none() {
        return complete(o, completed, intents);
    }
    match step(&o.agents, &id, Some(&node), now) {
        Step::Succeeded(_) => {
            intents.push(Intent::Acknowledge { action_id: id });
            complete(o, completed, intents)
        }
        Step::Failed(report) => {
            let reason = format!(
                "writing {MANIFEST_FILE} into the repository failed: {}",
                report.failure_reason
            );
            intents.push(Intent::Acknowledge { action_id: id });
            fail(o, status, reason, now, intents)
        }
        Step::NodeLost { lost_for } => {
            let reason = format!(
                "{} while writing {MANIFEST_FILE}",
                lost_message(&node, lost_for)
            );
            fail(o, status, reason, now, intents)
        }
        Step::NotDispatched | Step::Running(_) => {
            let mut manifest = o.backup.clone();
            manifest.status = Some(completed);
            manifest.metadata.managed_fields = None;
            let content = serde_json::to_vec_pretty(&manifest).unwrap_or_default();
            let action = to_wire(
                &id,
                MANIFEST_ACTION,
                owner(&o.backup),
                None,
                ActionKind::PutObject {
                    storage: grant(request, &o.backup, false),
                    path: path::join(&[&request.backup_path, MANIFEST_FILE]),
                    content,
                },
            );
            intents.push(Intent::Dispatch {
                node,
                action: Box::new(action),
            });
            Plan {
                status: Some(status),
                intents,
                requeue: Some(o.settings.wait_requeue.max(Duration::from_secs(5))),
            }
        }
    }
}

/// The Backup is Completed: its Jobs (and their pods) go, as KubeBlocks does.
fn complete(o: &Observed, completed: BackupStatus, mut intents: Vec<Intent>) -> Plan<BackupStatus> {
    for job in completed
        .actions
        .iter()
        .flatten()
        .filter_map(|a| a.object_ref.as_ref())
        .filter(|r| r.kind.as_deref() == Some("Job"))
    {
        intents.push(Intent::Delete {
            api_version: "batch/v1".into(),
            kind: "Job".into(),
            namespace: job.namespace.clone(),
            name: job.name.clone().unwrap_or_default(),
        });
    }
    intents.push(Intent::normal(
        "CreatedBackup",
        format!(
            "Created backup {}, total size {}",
            o.backup.metadata.name.as_deref().unwrap_or_default(),
            completed.total_size.as_deref().unwrap_or("unknown")
        ),
    ));
    Plan {
        status: Some(completed),
        intents,
        requeue: None,
    }
}
