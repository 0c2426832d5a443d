//! Cairn's control plane: reconcilers split into pure planners (`plan/`) and a thin IO shell.

pub mod allocator;
pub mod api;
pub mod args;
pub mod ca_cmd;
pub mod coexist;
pub mod dispatch;
pub mod grpc;
pub mod health;
pub mod leader;
pub mod metrics;
pub mod plan;
pub mod reconcile;
pub mod repo;
pub mod run;
pub mod shell;
pub mod tls;
