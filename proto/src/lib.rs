//! Cairn's gRPC protocols, generated from `proto/cairn/**.proto`; specified in docs/PROTOCOL.md
//! (agent, storage socket) and docs/API.md (the public API).

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

/// The public API for orchestrators, authorised by Kubernetes RBAC (docs/API.md).
pub mod api {
    /// Version 1.
    pub mod v1 {
        tonic::include_proto!("cairn.api.v1");
    }
}

/// The encoded `FileDescriptorSet` of every protocol, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("cairn_descriptor");

pub mod redact;
