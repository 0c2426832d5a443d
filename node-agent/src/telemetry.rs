//! The agent's part of a Backup's or Restore's trace (README, "Observability"): an action's span
//! continues the control plane's (`Action.traceparent`, PROTOCOL.md §2.4), and the storage
//! socket's calls, which arrive from the action's pod with nothing but a token, continue the
//! span of the action the token belongs to.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex, PoisonError};

/// At most this many actions' trace contexts are kept (the oldest goes first); an action's
/// entry is removed when it ends.
const MAX_ACTIONS: usize = 4096;

#[derive(Default)]
struct Contexts {
    by_action: HashMap<String, (u64, String)>,
    next: u64,
}

static CONTEXTS: LazyLock<Mutex<Contexts>> = LazyLock::new(Mutex::default);

/// Makes `span` (the action's, not yet entered) continue `traceparent`, and remembers it for
/// the socket calls of `action_id`.
pub fn start_action(span: &tracing::Span, action_id: &str, traceparent: &str) {
    cairn_telemetry::join(span, traceparent);
    let own = cairn_telemetry::traceparent_of(span);
    if own.is_empty() {
        return;
    }
    let mut contexts = CONTEXTS.lock().unwrap_or_else(PoisonError::into_inner);
    if contexts.by_action.len() >= MAX_ACTIONS
        && !contexts.by_action.contains_key(action_id)
        && let Some(oldest) = contexts
            .by_action
            .iter()
            .min_by_key(|(_, (order, _))| *order)
            .map(|(id, _)| id.clone())
    {
        contexts.by_action.remove(&oldest);
    }
    contexts.next += 1;
    let order = contexts.next;
    contexts
        .by_action
        .insert(action_id.to_owned(), (order, own));
}

/// Makes `span` (a socket call's, not yet entered) continue the span of `action_id`.
pub fn join_action(span: &tracing::Span, action_id: &str) {
    let parent = CONTEXTS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .by_action
        .get(action_id)
        .map(|(_, traceparent)| traceparent.clone());
    if let Some(parent) = parent {
        cairn_telemetry::join(span, &parent);
    }
}

/// Forgets the trace context of an action that ended.
pub fn end_action(action_id: &str) {
    CONTEXTS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .by_action
        .remove(action_id);
}
