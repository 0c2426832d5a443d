//! Cairn's node agent: the action runtime, the data mover and the datasafed socket.

pub mod runtime;
pub mod journal;
pub mod session;
pub mod socket;
pub mod tls;
