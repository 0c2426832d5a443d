//! Authentication and authorisation: who a request is (the admin token or a ServiceAccount
//! token from a TokenRequest) and what RBAC lets it do; the review APIs (TokenReview,
//! SubjectAccessReview, SelfSubjectAccessReview, LocalSubjectAccessReview) and TokenRequest
//! (`kubectl create token`); impersonation (`kubectl --as`).

pub mod impersonate;
pub mod rbac;
pub mod review;
pub mod token;

/// An authenticated user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub user: String,
    pub uid: String,
    pub groups: Vec<String>,
}

/// The group whose members may do anything (as in Kubernetes).
pub const MASTERS: &str = "system:masters";
/// Every authenticated user's group.
pub const AUTHENTICATED: &str = "system:authenticated";

impl Identity {
    /// The holder of the admin bearer token.
    pub fn admin() -> Identity {
        Identity {
            user: "localkube-admin".into(),
            uid: String::new(),
            groups: vec![MASTERS.into(), AUTHENTICATED.into()],
        }
    }

    /// A ServiceAccount's user, as the Kubernetes API server names it.
    pub fn service_account(namespace: &str, name: &str, uid: &str) -> Identity {
        Identity {
            user: format!("system:serviceaccount:{namespace}:{name}"),
            uid: uid.to_owned(),
            groups: vec![
                "system:serviceaccounts".into(),
                format!("system:serviceaccounts:{namespace}"),
                AUTHENTICATED.into(),
            ],
        }
    }

    /// Whether RBAC is skipped for this user.
    pub fn is_master(&self) -> bool {
        self.groups.iter().any(|g| g == MASTERS)
    }
}
