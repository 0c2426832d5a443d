//! mTLS for the agent port: the Cairn CA, certificate issuance, the server configuration, the
//! accept loop that logs refused peers, and the agent identity in client certificates.

pub mod acceptor;
pub mod ca;
pub mod cert_info;
pub mod ensure;
pub mod identity;
pub mod pem_files;
pub mod refusal;
pub mod server_config;

pub use ca::{Ca, CaError, IssuedCert, Validity};
pub use ensure::{ensure_agent_cert, ensure_ca, ensure_server_cert};
pub use identity::AgentIdentity;
pub use pem_files::CertFiles;
pub use server_config::{server_config, server_config_from_files};
