//! One registered agent session: applies its messages to the hub, heartbeats, drops it when silent.

use std::time::Duration;

use cairn_proto::agent::v1::AgentMessage;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use tonic::Streaming;

use super::hub::{AgentHub, SessionEnd};
use super::status::{liveness_status, session_end_status};

/// Runs the session until the agent leaves, breaks the protocol, falls silent for
/// [`super::hub::HubConfig::liveness_timeout`], or a newer session replaces it.
pub(crate) async fn run_session(
    hub: AgentHub,
    node: String,
    session_id: String,
    mut inbound: Streaming<AgentMessage>,
    replaced: CancellationToken,
) {
    let heartbeat_interval = hub
        .config()
        .heartbeat_interval
        .max(Duration::from_millis(10));
    let liveness_timeout = hub.config().liveness_timeout();
    let mut ticker =
        tokio::time::interval_at(Instant::now() + heartbeat_interval, heartbeat_interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut last_heard = Instant::now();
    let reason = loop {
        tokio::select! {
            // The hub ended the session (a newer one replaced it, or shutdown) and logged why.
            () = replaced.cancelled() => return,
            _ = ticker.tick() => {
                let silent = last_heard.elapsed();
                if silent > liveness_timeout {
                    tracing::warn!(
                        silent_ms = silent.as_millis() as u64,
                        "agent session dropped: no message for {} heartbeat intervals",
                        hub.config().missed_heartbeats,
                    );
                    hub.end_session(&node, &session_id, liveness_status(silent.as_secs()));
                    break "heartbeat timeout".to_owned();
                }
                hub.heartbeat(&node, &session_id);
            }
            message = inbound.message() => match message {
                Ok(Some(AgentMessage { msg: Some(msg) })) => {
                    last_heard = Instant::now();
                    match hub.handle_message(&node, &session_id, msg) {
                        Ok(()) => {}
                        Err(SessionEnd::Replaced) => return,
                        Err(end @ SessionEnd::Protocol(_)) => {
                            let status = session_end_status(&end);
                            tracing::warn!("agent session ended: protocol violation: {}", status.message());
                            hub.end_session(&node, &session_id, status.clone());
                            break format!("protocol violation: {}", status.message());
                        }
                    }
                }
                // A message kind this version does not know (a newer agent): it still shows
                // the agent is alive.
                Ok(Some(AgentMessage { msg: None })) => last_heard = Instant::now(),
                Ok(None) => break "the agent closed the stream".to_owned(),
                Err(status) => break format!("stream error: {}", status.message()),
            }
        }
    };
    tracing::info!("agent disconnected: {reason}");
    hub.close_session(&node, &session_id, &reason);
}
