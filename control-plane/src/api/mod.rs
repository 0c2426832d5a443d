//! The public gRPC API for orchestrators (`cairn.api.v1`, docs/API.md): a view over the
//! data-protection CRs, authenticated by TokenReview or client certificate and authorised per
//! call by SubjectAccessReview.
//!
//! One concept per file: [`server`] wires TLS ([`tls`]), the services ([`backups`],
//! [`restores`], [`schedules`], [`repositories`]), health and reflection; [`authn`] and
//! [`authz`] decide who calls and what they may do; [`status`] builds the `google.rpc` error
//! details; the `*_view` modules convert CRs to messages; [`watch`] follows one object;
//! [`paging`] reads list requests; [`objects`] holds the get/list/delete every kind shares, and
//! [`kind`] the one authorise → call → show path of every call on a namespaced kind.

pub mod authn;
pub mod authz;
pub mod backup_view;
pub mod backups;
pub mod caller;
pub mod kind;
pub mod meta;
pub mod objects;
pub mod paging;
pub mod repositories;
pub mod repository_view;
pub mod restore_view;
pub mod restores;
pub mod schedule_view;
pub mod schedules;
pub mod server;
pub mod state;
pub mod status;
pub mod tls;
pub mod watch;

pub use server::serve;
pub use state::ApiState;
