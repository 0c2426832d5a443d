//! mTLS for the agent port: the accept loop that logs refused peers. Certificates, the CA, the
//! agent identity and the rustls server configuration are in the `cairn-certs` crate.

pub mod acceptor;
pub mod refusal;
