//! Shared code of the `cairnctl` and `datasafed` binaries: one module per `cairnctl` command
//! under `cmd/`, each owning its clap `Args` and a `run` function.

pub mod app;
pub mod cmd;
pub mod datasafed;
pub mod exit;
pub mod output;
pub mod progress;
pub mod standalone;
