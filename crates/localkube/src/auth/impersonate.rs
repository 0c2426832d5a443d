//! User impersonation (`kubectl --as USER --as-group GROUP --as-uid UID`): the
//! `Impersonate-User`, `Impersonate-Group`, `Impersonate-Uid` and `Impersonate-Extra-<key>`
//! headers, each allowed by RBAC's `impersonate` verb for the authenticated user, as the
//! Kubernetes API server's impersonation filter does it. The request then runs as the
//! impersonated user.

use axum::http::HeaderMap;

use super::rbac::Attributes;
use super::review::require;
use super::{AUTHENTICATED, Identity};
use crate::error::ApiError;
use crate::rest::Api;

const USER: &str = "impersonate-user";
const GROUP: &str = "impersonate-group";
const UID: &str = "impersonate-uid";
const EXTRA_PREFIX: &str = "impersonate-extra-";
const SERVICE_ACCOUNT_PREFIX: &str = "system:serviceaccount:";
const ANONYMOUS: &str = "system:anonymous";
const UNAUTHENTICATED: &str = "system:unauthenticated";

/// The identity a request acts as: `who` itself without impersonation headers, else the
/// impersonated user once RBAC allowed `who` to impersonate each part of it (403 naming the
/// part otherwise; 400 for groups, uid or extras without a user).
pub fn impersonate(api: &Api, who: &Identity, headers: &HeaderMap) -> Result<Identity, ApiError> {
    let values = |name: &str| -> Result<Vec<String>, ApiError> {
        headers
            .get_all(name)
            .iter()
            .map(|v| {
                v.to_str().map(str::to_owned).map_err(|_| {
                    ApiError::bad_request(format!("the {name} header is not valid text"))
                })
            })
            .collect()
    };
    let users = values(USER)?;
    let groups = values(GROUP)?;
    let uids = values(UID)?;
    let mut extras = Vec::new();
    for name in headers.keys() {
        if let Some(key) = name.as_str().strip_prefix(EXTRA_PREFIX) {
            for value in values(name.as_str())? {
                extras.push((key.to_owned(), value));
            }
        }
    }
    let Some(user) = users.first() else {
        if groups.is_empty() && uids.is_empty() && extras.is_empty() {
            return Ok(who.clone());
        }
        return Err(ApiError::bad_request(
            "requested impersonation of groups, a uid or extras without impersonating a user (Impersonate-User)",
        ));
    };
    if users.len() > 1 || uids.len() > 1 {
        return Err(ApiError::bad_request(
            "at most one Impersonate-User and one Impersonate-Uid header may be sent",
        ));
    }
    let allow = |verb_on: Attributes| require(api, who, &verb_on);
    let mut impersonated = match user.strip_prefix(SERVICE_ACCOUNT_PREFIX) {
        Some(account) => {
            let (namespace, name) = account.split_once(':').ok_or_else(|| {
                ApiError::bad_request(format!(
                    "Impersonate-User {user:?} is not system:serviceaccount:NAMESPACE:NAME"
                ))
            })?;
            allow(impersonate_attrs(
                "",
                "serviceaccounts",
                "",
                namespace,
                name,
            ))?;
            Identity::service_account(namespace, name, "")
        }
        None => {
            allow(impersonate_attrs("", "users", "", "", user))?;
            Identity {
                user: user.clone(),
                uid: String::new(),
                groups: Vec::new(),
            }
        }
    };
    if !groups.is_empty() {
        for group in &groups {
            allow(impersonate_attrs("", "groups", "", "", group))?;
        }
        impersonated.groups = groups;
    }
    if let Some(uid) = uids.first() {
        allow(impersonate_attrs(
            "authentication.k8s.io",
            "uids",
            "",
            "",
            uid,
        ))?;
        impersonated.uid = uid.clone();
    }
    // localkube's RBAC does not read extras, but impersonating them is still authorised.
    for (key, value) in &extras {
        allow(impersonate_attrs(
            "authentication.k8s.io",
            "userextras",
            key,
            "",
            value,
        ))?;
    }
    // Every impersonated user but the anonymous one is authenticated (as in Kubernetes).
    let keep_groups = impersonated.user == ANONYMOUS
        || impersonated
            .groups
            .iter()
            .any(|g| g == UNAUTHENTICATED || g == AUTHENTICATED);
    if !keep_groups {
        impersonated.groups.push(AUTHENTICATED.into());
    }
    Ok(impersonated)
}

fn impersonate_attrs(
    group: &str,
    resource: &str,
    subresource: &str,
    namespace: &str,
    name: &str,
) -> Attributes {
    Attributes {
        verb: "impersonate".into(),
        group: group.into(),
        resource: resource.into(),
        subresource: subresource.into(),
        namespace: namespace.into(),
        name: name.into(),
    }
}
