//! The identity a request authenticated as (docs/API.md §3.1).

use std::collections::BTreeMap;

use x509_parser::prelude::{FromDer as _, X509Certificate};

/// A Kubernetes user: what a TokenReview returns, or what a client certificate names.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Caller {
    /// The user name, e.g. `system:serviceaccount:team-a:orchestrator`.
    pub user: String,
    /// The user's uid (empty for certificate users).
    pub uid: String,
    /// The user's groups.
    pub groups: Vec<String>,
    /// Extra attributes from the TokenReview (e.g. the pod a bound token belongs to).
    pub extra: BTreeMap<String, Vec<String>>,
}

/// A client certificate that names no user.
#[derive(Debug, thiserror::Error)]
pub enum CertificateUserError {
    /// The DER could not be parsed.
    #[error("the client certificate cannot be read: {0}")]
    Unreadable(String),
    /// The subject has no common name.
    #[error("the client certificate's subject has no common name (the user name)")]
    NoCommonName,
}

impl Caller {
    /// The user of a client certificate, as the Kubernetes API server reads it: the subject's
    /// common name is the user, its organisations are the groups.
    pub fn from_certificate(der: &[u8]) -> Result<Caller, CertificateUserError> {
        let (_, cert) = X509Certificate::from_der(der)
            .map_err(|e| CertificateUserError::Unreadable(e.to_string()))?;
        let subject = cert.subject();
        let user = subject
            .iter_common_name()
            .find_map(|cn| cn.as_str().ok())
            .map(str::to_owned)
            .ok_or(CertificateUserError::NoCommonName)?;
        let groups = subject
            .iter_organization()
            .filter_map(|o| o.as_str().ok())
            .map(str::to_owned)
            .collect();
        Ok(Caller {
            user,
            uid: String::new(),
            groups,
            extra: BTreeMap::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_certificate_names_its_user_and_groups() {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "orchestrator");
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "platform");
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let caller = Caller::from_certificate(cert.der()).unwrap();
        assert_eq!(caller.user, "orchestrator");
        assert_eq!(caller.groups, ["platform"]);
    }
}
