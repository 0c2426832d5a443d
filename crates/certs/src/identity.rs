//! The node identity an agent certificate carries (docs/PROTOCOL.md §2.1), and node-name rules.

use super::cert_info::{CertInfo, CertInfoError};

/// The URI SAN prefix of agent certificates: `cairn:agent:node:<NAME>`.
pub const AGENT_URI_PREFIX: &str = "cairn:agent:node:";

/// Why a peer certificate does not identify an agent.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// The certificate could not be parsed.
    #[error("reading the peer certificate")]
    Unreadable(#[source] CertInfoError),
    /// No `cairn:agent:node:` URI SAN: an operator or server certificate, not an agent's.
    #[error("certificate is not an agent certificate (no {AGENT_URI_PREFIX}<NAME> URI SAN)")]
    NotAnAgentCertificate,
    /// Two different node URIs: ambiguous, so refused.
    #[error("certificate names more than one node: {nodes:?}")]
    SeveralNodes {
        /// The node names found.
        nodes: Vec<String>,
    },
    /// The subject common name and the URI SAN disagree.
    #[error("certificate common name {common_name:?} differs from its node URI {node:?}")]
    CommonNameMismatch {
        /// The subject CN.
        common_name: String,
        /// The node from the URI SAN.
        node: String,
    },
    /// The node name in the certificate is not a valid Kubernetes node name.
    #[error("certificate node name is invalid")]
    InvalidNodeName(#[source] InvalidNodeName),
}

/// A node name that Kubernetes would not accept (a DNS-1123 subdomain).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("node name {name:?} is invalid: {reason}")]
pub struct InvalidNodeName {
    /// The rejected name.
    pub name: String,
    /// What rule it breaks.
    pub reason: &'static str,
}

/// The agent a client certificate belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentIdentity {
    /// The node name from the `cairn:agent:node:` URI SAN (equal to the subject CN).
    pub node: String,
}

impl AgentIdentity {
    /// Derives the agent identity from a DER peer certificate.
    pub fn from_der(der: &[u8]) -> Result<AgentIdentity, IdentityError> {
        let info = CertInfo::from_der(der).map_err(IdentityError::Unreadable)?;
        AgentIdentity::from_info(&info)
    }

    /// Derives the agent identity from parsed certificate fields.
    pub fn from_info(info: &CertInfo) -> Result<AgentIdentity, IdentityError> {
        let mut nodes: Vec<String> = info
            .uris
            .iter()
            .filter_map(|uri| uri.strip_prefix(AGENT_URI_PREFIX))
            .map(str::to_owned)
            .collect();
        nodes.dedup();
        let node = match nodes.as_slice() {
            [] => return Err(IdentityError::NotAnAgentCertificate),
            [node] => node.clone(),
            _ => return Err(IdentityError::SeveralNodes { nodes }),
        };
        validate_node_name(&node).map_err(IdentityError::InvalidNodeName)?;
        if let Some(common_name) = info.common_names.iter().find(|cn| **cn != node) {
            return Err(IdentityError::CommonNameMismatch {
                common_name: common_name.clone(),
                node,
            });
        }
        Ok(AgentIdentity { node })
    }
}

/// Checks that `name` is a DNS-1123 subdomain, the form of a Kubernetes node name.
pub fn validate_node_name(name: &str) -> Result<(), InvalidNodeName> {
    let fail = |reason| {
        Err(InvalidNodeName {
            name: name.to_owned(),
            reason,
        })
    };
    if name.is_empty() {
        return fail("it is empty");
    }
    if name.len() > 253 {
        return fail("it is longer than 253 characters");
    }
    for label in name.split('.') {
        if label.is_empty() {
            return fail("it has an empty dot-separated part");
        }
        if label.len() > 63 {
            return fail("a dot-separated part is longer than 63 characters");
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return fail("only lowercase letters, digits, '-' and '.' are allowed");
        }
        if label.starts_with('-') || label.ends_with('-') {
            return fail("a dot-separated part starts or ends with '-'");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::Timestamp;

    fn info(common_names: &[&str], uris: &[&str]) -> CertInfo {
        CertInfo {
            common_names: common_names.iter().map(|s| s.to_string()).collect(),
            dns_names: vec![],
            ip_addrs: vec![],
            uris: uris.iter().map(|s| s.to_string()).collect(),
            not_before: Timestamp::UNIX_EPOCH,
            not_after: Timestamp::MAX,
        }
    }

    #[test]
    fn node_comes_from_the_uri_san() {
        let id = AgentIdentity::from_info(&info(&["node-a"], &["cairn:agent:node:node-a"]));
        assert_eq!(id.unwrap().node, "node-a");
    }

    #[test]
    fn certificate_without_node_uri_is_not_an_agent() {
        let err = AgentIdentity::from_info(&info(&["operator"], &[])).unwrap_err();
        assert!(matches!(err, IdentityError::NotAnAgentCertificate), "{err}");
        let err = AgentIdentity::from_info(&info(&["x"], &["spiffe://x"])).unwrap_err();
        assert!(matches!(err, IdentityError::NotAnAgentCertificate), "{err}");
    }

    #[test]
    fn common_name_disagreeing_with_uri_is_refused() {
        let err =
            AgentIdentity::from_info(&info(&["node-b"], &["cairn:agent:node:node-a"])).unwrap_err();
        assert!(
            err.to_string().contains("\"node-b\"") && err.to_string().contains("\"node-a\""),
            "{err}"
        );
    }

    #[test]
    fn two_node_uris_are_ambiguous() {
        let err =
            AgentIdentity::from_info(&info(&[], &["cairn:agent:node:a", "cairn:agent:node:b"]))
                .unwrap_err();
        assert!(matches!(err, IdentityError::SeveralNodes { .. }), "{err}");
    }

    #[test]
    fn node_names_follow_dns_1123_subdomain_rules() {
        for good in ["a", "node-1", "ip-10-0-0-1.ec2.internal", &"a".repeat(63)] {
            assert_eq!(validate_node_name(good), Ok(()), "{good}");
        }
        for bad in [
            "",
            "Node",
            "-a",
            "a-",
            "a..b",
            "a_b",
            "a b",
            &"a".repeat(64),
            &format!("{}.b", "a.".repeat(130)),
        ] {
            let err = validate_node_name(bad).unwrap_err();
            assert!(err.to_string().contains(&format!("{bad:?}")), "{err}");
        }
    }
}
