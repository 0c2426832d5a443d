//! The action runtime: one Kubernetes runtime for exec and job actions, the same against a real
//! cluster and against localkube's process kubelet.

pub mod archiver;
pub mod exec;
pub mod holder_pod;
pub mod job;
pub mod mount_claim;
pub mod mount_holder;
pub mod repo_ops;
pub mod runner;
pub mod snapshot;
pub mod tail;
pub mod volume_move;
