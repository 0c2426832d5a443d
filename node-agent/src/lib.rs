//! Cairn's node agent: the action runtime, the data mover and the datasafed socket.

pub mod runtime;
