//! Cairn's control plane: reconcilers split into pure planners (`plan/`) and a thin IO shell.

pub mod ca_cmd;
pub mod grpc;
pub mod plan;
pub mod repo;
pub mod tls;
