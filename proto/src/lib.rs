//! Cairn's gRPC protocols, generated from `proto/cairn/**.proto`; specified in docs/PROTOCOL.md.

/// The agent protocol: node agent <-> control plane (docs/PROTOCOL.md §2).
pub mod agent {
    /// Version 1.
    pub mod v1 {
        tonic::include_proto!("cairn.agent.v1");
    }
}

/// The storage socket: datasafed in an action container -> its node agent (docs/PROTOCOL.md §3).
pub mod datasafed {
    /// Version 1.
    pub mod v1 {
        tonic::include_proto!("cairn.datasafed.v1");
    }
}

pub mod redact;
