//! Semantic checks beyond the CRD schema, as pure functions the control plane reuses.

pub mod problem;

pub use problem::{Problem, Severity};
