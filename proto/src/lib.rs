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

    /// How an action container reaches its node agent's storage service (docs/PROTOCOL.md §3):
    /// the environment the agent gives a job action and the name its certificate carries.
    pub mod transport {
        /// `https://HOST:PORT` of the node agent's storage endpoint (TCP, TLS).
        pub const ENV_ENDPOINT: &str = "CAIRN_STORAGE_ENDPOINT";
        /// The PEM certificate the storage endpoint must present: the client trusts that one
        /// certificate and nothing else.
        pub const ENV_CERT: &str = "CAIRN_STORAGE_CERT";
        /// The action's bearer token.
        pub const ENV_TOKEN: &str = "CAIRN_STORAGE_TOKEN";
        /// A unix socket of the agent (on the agent's own host: tools and tests).
        pub const ENV_SOCKET: &str = "CAIRN_STORAGE_SOCKET";
        /// The DNS name in the storage endpoint's certificate, checked by the client (it
        /// dials an IP address, so the name is fixed rather than the address).
        pub const SERVER_NAME: &str = "cairn-agent-storage";
        /// Response header of a `Get` the agent answered with the stored bytes still
        /// compressed (the request's `client_decompresses`): the compression's name, which the
        /// client decompresses itself.
        pub const CONTENT_COMPRESSION: &str = "cairn-content-compression";
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
