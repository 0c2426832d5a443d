//! Cairn's node agent: the action runtime, the data mover and the datasafed socket.

pub mod args;
pub mod health;
pub mod install;
pub mod journal;
pub mod metrics;
pub mod run;
pub mod runtime;
pub mod session;
pub mod socket;
pub mod telemetry;
pub mod tls;
