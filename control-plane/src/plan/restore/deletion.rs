//! What happens when a Restore is deleted, or fails while actions run: running actions are
//! cancelled; a deleted Restore keeps its finalizer until they ended (or their agent is lost),
//! then lets go. Claims it created stay (ARCHITECTURE.md §K1.5 "Deletion").

use cairn_api::restore::{RestoreActionStatus, RestoreStage, RestoreStatus};
use cairn_api::well_known::conditions::restore::CONDITION_READINESS_PROBE;
use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::placement::Placements;
use super::work::{entries_mut, status_entry_id};
use super::{Observed, conditions, has_finalizer, probe};
use crate::plan::action::{Step, ended, step};
use crate::plan::intent::{Intent, Plan};

/// Plans one reconcile of a Restore that is being deleted.
pub fn plan(o: &Observed, now: Timestamp) -> Plan<RestoreStatus> {
    if !has_finalizer(&o.restore) {
        return Plan::nothing();
    }
    let mut status = o.restore.status.clone().unwrap_or_default();
    let placements = Placements::read(o.restore.metadata.annotations.as_ref());
    let (mut intents, still_running) = stop(
        o,
        &mut status,
        &placements,
        now,
        "the restore is being deleted",
        true,
    );
    if still_running {
        return Plan {
            status: Some(status),
            intents,
            requeue: Some(o.settings.wait_requeue),
        };
    }
    intents.push(Intent::RemoveFinalizer);
    Plan {
        status: Some(status),
        intents,
        requeue: None,
    }
}

/// Cancels what still runs and returns the cancellations (action id, node) of a failing Restore;
/// its entries are marked Failed at once.
pub fn cancel_running(
    o: &Observed,
    status: &mut RestoreStatus,
    placements: &Placements,
    now: Timestamp,
    why: &str,
) -> Vec<Intent> {
    stop(o, status, placements, now, why, false).0
}

/// Stops every Processing action. With `wait`, an action whose agent is still there stays
/// Processing until the agent reports its end; returns whether any does.
fn stop(
    o: &Observed,
    status: &mut RestoreStatus,
    placements: &Placements,
    now: Timestamp,
    why: &str,
    wait: bool,
) -> (Vec<Intent>, bool) {
    let mut intents = Vec::new();
    let mut still_running = false;
    for stage in [RestoreStage::PrepareData, RestoreStage::PostReady] {
        for entry in entries_mut(status, stage).iter_mut() {
            if entry.status != Some(RestoreActionStatus::Processing) {
                continue;
            }
            let id = status_entry_id(&o.restore, entry);
            let node = placements.recorded(&entry.object_key).map(str::to_string);
            let state = step(&o.agents, &id, node.as_deref(), now);
            let ended = state.ended();
            // Without a recorded node there is no agent to ask.
            let reachable = node.is_some() && !matches!(state, Step::NodeLost { .. });
            if ended {
                intents.push(Intent::Acknowledge {
                    action_id: id.clone(),
                });
            } else if let (Some(node), true) = (node, reachable) {
                intents.push(Intent::Cancel {
                    node,
                    action_id: id,
                    reason: why.into(),
                });
                if wait {
                    still_running = true;
                    continue;
                }
            }
            entry.status = Some(RestoreActionStatus::Failed);
            entry.message = Some(format!("\"{}\" was cancelled: {why}", entry.object_key));
            entry.end_time = Some(Time(now));
        }
    }
    // A probe attempt is not a status entry: cancel it, best effort, without waiting.
    if o.restore
        .spec
        .ready_config
        .as_ref()
        .is_some_and(|r| r.readiness_probe.is_some())
        && !conditions::is_true(status, CONDITION_READINESS_PROBE)
        && let Some(node) = placements.recorded(probe::NODE_KEY)
    {
        let id = probe::action_id(&o.restore, probe::attempt(&o.restore));
        if ended(&o.agents, &id) {
            intents.push(Intent::Acknowledge { action_id: id });
        } else {
            intents.push(Intent::Cancel {
                node: node.to_string(),
                action_id: id,
                reason: why.into(),
            });
        }
    }
    (intents, still_running)
}
