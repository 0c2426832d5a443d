//! The agent protocol's control-plane side: the `AgentService` server and the `AgentHub`
//! registry the reconcilers use (docs/PROTOCOL.md §2).

pub mod hub;
pub mod redact;
pub mod server;
pub mod service;
mod session;
pub mod status;
pub mod version;

pub use hub::{AgentHub, HubConfig, HubError, HubEvent, NodeState};
pub use redact::Redacted;
pub use server::serve;
pub use service::AgentGrpc;
