//! The authentication and authorisation APIs: TokenRequest
//! (`POST /api/v1/namespaces/{ns}/serviceaccounts/{name}/token`), TokenReview,
//! SubjectAccessReview, SelfSubjectAccessReview and LocalSubjectAccessReview; and the
//! authentication of every request.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::http::{HeaderMap, header};
use serde_json::{Value, json};

use super::Identity;
use super::rbac::{Attributes, authorize};
use super::token::{Claims, Signer};
use crate::error::ApiError;
use crate::http::ResourcePath;
use crate::resource::Builtin;
use crate::rest::Api;

/// Default and bounds of a TokenRequest's `expirationSeconds` (as the API server's).
const DEFAULT_EXPIRATION: i64 = 3600;
const MIN_EXPIRATION: i64 = 600;
const MAX_EXPIRATION: i64 = 48 * 3600;

/// One of the review endpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Review {
    TokenRequest { namespace: String, name: String },
    Token,
    Subject,
    SelfSubject,
    LocalSubject { namespace: String },
}

/// The review a POST to `path` addresses, if any.
pub fn review_of(path: &ResourcePath) -> Option<Review> {
    match (
        path.group.as_str(),
        path.resource.as_str(),
        path.subresource.as_deref(),
    ) {
        ("", "serviceaccounts", Some("token")) => Some(Review::TokenRequest {
            namespace: path.namespace.clone()?,
            name: path.name.clone()?,
        }),
        ("authentication.k8s.io", "tokenreviews", None) => Some(Review::Token),
        ("authorization.k8s.io", "subjectaccessreviews", None) => Some(Review::Subject),
        ("authorization.k8s.io", "selfsubjectaccessreviews", None) => Some(Review::SelfSubject),
        ("authorization.k8s.io", "localsubjectaccessreviews", None) => Some(Review::LocalSubject {
            namespace: path.namespace.clone()?,
        }),
        _ => None,
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

/// The user of a bearer token: the admin, or a ServiceAccount whose account still exists with
/// the uid the token names.
pub fn identify(api: &Api, admin_token: &str, token: &str) -> Result<Identity, String> {
    if token == admin_token {
        return Ok(Identity::admin());
    }
    let claims = Signer::new(admin_token)
        .verify(token, now())
        .map_err(|e| e.to_string())?;
    let rt = api.builtin(Builtin::ServiceAccount);
    let account = api
        .store()
        .get(&rt.storage, &claims.namespace, &claims.name)
        .map(|o| o.value());
    let uid = account
        .as_ref()
        .and_then(|a| a["metadata"]["uid"].as_str())
        .unwrap_or_default();
    if account.is_none() || uid != claims.uid {
        return Err(format!(
            "the service account {}/{} of the token no longer exists",
            claims.namespace, claims.name
        ));
    }
    Ok(Identity::service_account(
        &claims.namespace,
        &claims.name,
        &claims.uid,
    ))
}

/// The bearer token of a request.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
}

/// The RBAC attributes of a resource request.
pub fn attributes(verb: &str, path: &ResourcePath) -> Attributes {
    Attributes {
        verb: verb.to_owned(),
        group: path.group.clone(),
        resource: path.resource.clone(),
        subresource: path.subresource.clone().unwrap_or_default(),
        namespace: path.namespace.clone().unwrap_or_default(),
        name: path.name.clone().unwrap_or_default(),
    }
}

/// Refuses `who` unless RBAC allows `attrs` (403 with Kubernetes' message).
pub fn require(api: &Api, who: &Identity, attrs: &Attributes) -> Result<(), ApiError> {
    if authorize(api, who, attrs).allowed {
        return Ok(());
    }
    let resource = if attrs.subresource.is_empty() {
        attrs.resource.clone()
    } else {
        format!("{}/{}", attrs.resource, attrs.subresource)
    };
    let place = if attrs.namespace.is_empty() {
        "at the cluster scope".to_owned()
    } else {
        format!("in the namespace {:?}", attrs.namespace)
    };
    let object = if attrs.name.is_empty() {
        attrs.resource.clone()
    } else {
        format!("{} {:?}", attrs.resource, attrs.name)
    };
    Err(ApiError::forbidden(format!(
        "{object} is forbidden: User {:?} cannot {} resource {resource:?} in API group {:?} {place}",
        who.user, attrs.verb, attrs.group
    )))
}

/// Answers a review `body` for the caller `who`.
pub fn serve(
    api: &Api,
    admin_token: &str,
    who: &Identity,
    review: &Review,
    body: Value,
) -> Result<Value, ApiError> {
    match review {
        Review::TokenRequest { namespace, name } => {
            require(
                api,
                who,
                &Attributes {
                    verb: "create".into(),
                    resource: "serviceaccounts".into(),
                    subresource: "token".into(),
                    namespace: namespace.clone(),
                    name: name.clone(),
                    ..Default::default()
                },
            )?;
            token_request(api, admin_token, namespace, name, body)
        }
        Review::Token => {
            require(
                api,
                who,
                &cluster("create", "authentication.k8s.io", "tokenreviews"),
            )?;
            let token = body["spec"]["token"].as_str().unwrap_or_default();
            let status = match identify(api, admin_token, token) {
                Ok(user) => json!({
                    "authenticated": true,
                    "user": {"username": user.user, "uid": user.uid, "groups": user.groups},
                    "audiences": body["spec"]["audiences"].as_array().cloned().unwrap_or_default(),
                }),
                Err(error) => json!({"authenticated": false, "error": error}),
            };
            Ok(answer(body, status))
        }
        Review::Subject | Review::LocalSubject { .. } => {
            let (verb, resource) = ("create", "subjectaccessreviews");
            match review {
                Review::LocalSubject { namespace } => require(
                    api,
                    who,
                    &Attributes {
                        verb: verb.into(),
                        group: "authorization.k8s.io".into(),
                        resource: "localsubjectaccessreviews".into(),
                        namespace: namespace.clone(),
                        ..Default::default()
                    },
                )?,
                _ => require(api, who, &cluster(verb, "authorization.k8s.io", resource))?,
            }
            let spec = &body["spec"];
            let subject = Identity {
                user: spec["user"].as_str().unwrap_or_default().to_owned(),
                uid: spec["uid"].as_str().unwrap_or_default().to_owned(),
                groups: strings(&spec["groups"]),
            };
            let mut attrs = resource_attributes(&spec["resourceAttributes"]);
            if let Review::LocalSubject { namespace } = review {
                attrs.namespace = namespace.clone();
            }
            Ok(answer(body.clone(), decide(api, &subject, &attrs)))
        }
        // Every authenticated user may ask about itself (system:basic-user).
        Review::SelfSubject => {
            let attrs = resource_attributes(&body["spec"]["resourceAttributes"]);
            Ok(answer(body.clone(), decide(api, who, &attrs)))
        }
    }
}

fn cluster(verb: &str, group: &str, resource: &str) -> Attributes {
    Attributes {
        verb: verb.into(),
        group: group.into(),
        resource: resource.into(),
        ..Default::default()
    }
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(str::to_owned))
        .collect()
}

fn resource_attributes(ra: &Value) -> Attributes {
    let text = |k: &str| ra[k].as_str().unwrap_or_default().to_owned();
    Attributes {
        verb: text("verb"),
        group: text("group"),
        resource: text("resource"),
        subresource: text("subresource"),
        namespace: text("namespace"),
        name: text("name"),
    }
}

fn decide(api: &Api, who: &Identity, attrs: &Attributes) -> Value {
    let decision = authorize(api, who, attrs);
    let mut status = json!({"allowed": decision.allowed});
    if !decision.reason.is_empty() {
        status["reason"] = json!(decision.reason);
    }
    status
}

fn answer(mut body: Value, status: Value) -> Value {
    if !body.is_object() {
        body = json!({});
    }
    body["status"] = status;
    if body.get("metadata").is_none() {
        body["metadata"] = json!({});
    }
    body
}

fn token_request(
    api: &Api,
    admin_token: &str,
    namespace: &str,
    name: &str,
    body: Value,
) -> Result<Value, ApiError> {
    let rt = api.builtin(Builtin::ServiceAccount);
    let account = api
        .store()
        .get(&rt.storage, namespace, name)
        .map(|o| o.value())
        .ok_or_else(|| ApiError::not_found("", "serviceaccounts", name))?;
    let uid = account["metadata"]["uid"].as_str().unwrap_or_default();
    let seconds = body["spec"]["expirationSeconds"]
        .as_i64()
        .unwrap_or(DEFAULT_EXPIRATION);
    if seconds < MIN_EXPIRATION {
        return Err(ApiError::bad_request(format!(
            "spec.expirationSeconds: Invalid value: {seconds}: may not specify a duration less than 10 minutes"
        )));
    }
    let seconds = seconds.min(MAX_EXPIRATION);
    let expires = now() + seconds;
    let token = Signer::new(admin_token).issue(&Claims {
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        uid: uid.to_owned(),
        expires,
    });
    let expiration = jiff::Timestamp::from_second(expires)
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default();
    let mut out = json!({
        "kind": "TokenRequest",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"expirationSeconds": seconds, "audiences": body["spec"]["audiences"].as_array().cloned().unwrap_or_default()},
        "status": {"token": token, "expirationTimestamp": expiration},
    });
    if let Some(created) = account["metadata"]["creationTimestamp"].as_str() {
        out["metadata"]["creationTimestamp"] = json!(created);
    }
    Ok(out)
}
