//! Harness for the end-to-end tests: starts the real processes and tools they talk to.
//!
//! Every test brings up its own stack (localkube, `cairn-control-plane` and `cairn-agent` as
//! separate processes, mTLS between agent and control plane) in a fresh temporary directory with
//! [`stack::run`], applies objects with the real `kubectl` ([`kubectl::Kubectl`]) from the
//! templates in `tests/manifests` ([`manifests::render`]), and waits with kube-rs.
//!
//! The binaries come from the cargo target directory (`cargo build --workspace --bins`, which
//! `cargo test --workspace` and `./test.sh` do); `kubectl` and `weed` come from `PATH`
//! (`./test.sh` puts `.tools/venv/bin` first).

pub mod crash;
pub mod db;
pub mod dp;
pub mod files;
pub mod grpc_api;
pub mod ha;
pub mod kubectl;
pub mod manifests;
pub mod otlp;
pub mod record;
pub mod s3;
pub mod scenario;
pub mod stack;
pub mod tools;
pub mod wait;

pub use kubectl::Kubectl;
pub use stack::{TestStack, run};
