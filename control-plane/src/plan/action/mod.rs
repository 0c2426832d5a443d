//! The action engine: how every planner (backup, deletion, repository pre-check, restore, and
//! the kinds that follow) hands work to a node agent and reads back what became of it.
//!
//! # Expected flow
//! 1. A planner derives the actions a reconcile needs, each with a stable id
//!    ([`crate::plan::ids::action_id`]), and records them in its object's status.
//! 2. For each, [`step()`] says where it stands from the agents' reports: [`Step::NotDispatched`]
//!    (dispatch it, again if need be: dispatch is idempotent by id), [`Step::Running`],
//!    [`Step::Succeeded`], [`Step::Failed`], or [`Step::NodeLost`] (no end reported and the
//!    node's agent gone longer than the grace period).
//! 3. The planner records the outcome in its status and acknowledges an ended action, so that
//!    the agent may forget it.
//!
//! # Guarantees
//! - A reported end always wins over a lost node.
//! - An action with no node (any connected agent may run it) is never lost.
//! - The engine is pure: the reports, the node states and `now` are inputs.
//!
//! # Parts
//! - [`mod@step`]: where an action stands ([`Step`], [`ended`], [`failure_reason`], [`lost_message`]).
//! - [`wire`]: a planned action ([`ActionKind`]) as the wire `Action`, with its owner, pod and
//!   storage grant ([`grant`], limited by a [`Scope`]).
//! - [`access`]: how agents reach a repository ([`RepoAccess`]) and whether it can be used now
//!   ([`access::resolve`], [`AccessProblem`]).
//!
//! A new kind of action (an archiver, a volume snapshot, a data mover) is a new [`ActionKind`]
//! variant; its planner matches on [`step()`] like the others. `docs/ARCHITECTURE.md` ("Action
//! engine") walks through it.

pub mod access;
pub mod step;
pub mod wire;

pub use access::{AccessProblem, RepoAccess};
pub use step::{Step, ended, failure_reason, lost_message, step};
pub use wire::{
    ActionKind, Dedup, InfoFile, MovedVolume, PlannedSnapshot, Scope, VolumeMovement, Workload,
    grant, owner, pod_ref, to_wire,
};
