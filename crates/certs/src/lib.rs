//! Cairn's certificates, shared by the control plane, the agent and `cairnctl`: the CA of the
//! agent protocol (docs/PROTOCOL.md §2.1), certificate issuance and checks, the standalone
//! "create on first start" helpers, the agent identity in client certificates, and the agent
//! port's rustls server configuration, reloaded when its files rotate.

pub mod ca;
pub mod cert_info;
pub mod ensure;
pub mod identity;
pub mod pem_files;
pub mod reload;
pub mod server_config;

pub use ca::{Ca, CaError, IssuedCert, Validity};
pub use ensure::{ensure_agent_cert, ensure_ca, ensure_server_cert};
pub use identity::AgentIdentity;
pub use pem_files::CertFiles;
pub use reload::{ReloadError, Reloading, ServerTls, reloading_server_config};
pub use server_config::{server_config, server_config_from_files};
