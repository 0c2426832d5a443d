//! The agent protocol's control-plane side: the `AgentService` server and the `AgentHub`
//! registry the reconcilers use (docs/PROTOCOL.md §2).

pub mod hub;
pub mod server;
pub mod service;
mod session;
pub mod status;
pub mod version;

pub use crate::dispatch::{DispatchError, HubEvent, NodeState};
pub use cairn_proto::redact::Redacted;
pub use hub::{AgentHub, HubConfig};
pub use server::serve;
pub use service::AgentGrpc;
