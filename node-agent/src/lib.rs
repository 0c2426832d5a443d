//! Cairn's node agent: the action runtime, the data mover and the datasafed socket.

pub mod args;
pub mod install;
pub mod journal;
pub mod run;
pub mod runtime;
pub mod session;
pub mod socket;
pub mod tls;
