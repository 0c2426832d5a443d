//! The storage socket (docs/PROTOCOL.md §3): job actions' `datasafed` sends every operation
//! here with a per-action token, and the agent does the storage I/O with the action's grant.
//!
//! - [`grants`]: tokens bound to `StorageGrant`s, with per-action byte counters (progress).
//! - [`access`]: the path rules of a grant (pure).
//! - [`repository`]: how a grant becomes a repository (config, store, encryption).
//! - [`server`]: the tonic `Storage` service on `<dir>/storage.sock` and on the TLS endpoint
//!   action pods dial ([`endpoint`]: its identity and address).
//!
//! Credentials and encryption keys never leave the agent: the client sends raw bytes and
//! paths; compression, encryption and the store's credentials stay on this side.

pub mod access;
pub mod endpoint;
pub mod grants;
pub mod repository;
pub mod server;
mod status;
mod wire;

pub use access::{Access, AccessError, Operation};
pub use endpoint::StorageIdentity;
pub use grants::{Grant, Grants, Token, Transferred};
pub use repository::OpenError;
pub use server::{CHUNK_SIZE, EndpointServer, ServeError, SocketServer, serve};
