//! Pure planners: everything a reconciler read goes in (`Observed`), the status to write and the
//! intents to carry out come out (`Plan`). No planner touches the network or the clock: `now`
//! and the agents' reports are inputs, so every branch is a table test away.

pub mod action;
pub mod actionset;
pub mod agent_view;
pub mod backup;
pub mod backup_policy;
pub mod backup_repo;
pub mod env;
pub mod ids;
pub mod intent;
pub mod legacy;
pub mod names;
pub mod populate;
pub mod restore;
pub mod retention;
pub mod schedule;
pub mod storage_provider;

pub use agent_view::{AgentView, NodeState, ReportedAction, ReportedPhase};
pub use intent::{EventType, Intent, Plan};
pub mod time;

#[cfg(test)]
pub mod testing;
#[cfg(test)]
pub mod testing_kb_addons;
