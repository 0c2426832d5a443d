//! Authorisation: one SubjectAccessReview per call for its verb, resource and namespace, with a
//! short bounded cache of decisions (docs/API.md §3.2, §3.3).

use std::time::Duration;

use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::api::{Api, PostParams};
use moka::future::Cache;
use tonic::Status;

use super::caller::Caller;
use super::status::denied;

/// How long a decision is reused.
pub const DECISION_CACHE_TTL: Duration = Duration::from_secs(10);
/// At most this many decisions are kept.
pub const DECISION_CACHE_CAPACITY: u64 = 10_000;

/// What a call touches: a verb on a data-protection resource in a namespace (empty: cluster).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Access {
    /// `create`, `get`, `list`, `watch`, `update` or `delete`.
    pub verb: &'static str,
    /// `backups`, `restores`, `backupschedules` or `backuprepos`.
    pub resource: &'static str,
    /// The namespace; empty for cluster-scoped resources.
    pub namespace: String,
}

impl Access {
    /// `verb` on `resource` in `namespace`.
    pub fn new(verb: &'static str, resource: &'static str, namespace: &str) -> Access {
        Access {
            verb,
            resource,
            namespace: namespace.to_owned(),
        }
    }
}

/// A decision: allowed, or denied with the reason.
#[derive(Debug, Clone)]
enum Decision {
    Allowed,
    Denied(String),
}

/// Asks the API server whether callers may do what they ask.
#[derive(Clone)]
pub struct Authorizer {
    client: kube::Client,
    decisions: Cache<(Caller, Access), Decision>,
}

impl Authorizer {
    /// An authoriser asking the API server of `client`.
    pub fn new(client: kube::Client) -> Authorizer {
        Authorizer {
            client,
            decisions: Cache::builder()
                .max_capacity(DECISION_CACHE_CAPACITY)
                .time_to_live(DECISION_CACHE_TTL)
                .build(),
        }
    }

    /// Ok when `caller` may do `access`; PERMISSION_DENIED with the reason otherwise.
    pub async fn check(&self, caller: &Caller, access: &Access) -> Result<(), Status> {
        let key = (caller.clone(), access.clone());
        let decision = match self.decisions.get(&key).await {
            Some(decision) => decision,
            None => {
                let decision = self.ask(caller, access).await?;
                self.decisions.insert(key, decision.clone()).await;
                decision
            }
        };
        match decision {
            Decision::Allowed => Ok(()),
            Decision::Denied(reason) => {
                let place = if access.namespace.is_empty() {
                    "at the cluster scope".to_owned()
                } else {
                    format!("in namespace {:?}", access.namespace)
                };
                let reason = if reason.is_empty() {
                    "no RBAC rule allows it".to_owned()
                } else {
                    reason
                };
                Err(denied(
                    format!(
                        "user {:?} cannot {} {}.{} {place}: {reason}",
                        caller.user,
                        access.verb,
                        access.resource,
                        cairn_api::GROUP
                    ),
                    access.verb,
                    access.resource,
                    &access.namespace,
                ))
            }
        }
    }

    async fn ask(&self, caller: &Caller, access: &Access) -> Result<Decision, Status> {
        let review = SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: Some(caller.user.clone()),
                uid: (!caller.uid.is_empty()).then(|| caller.uid.clone()),
                groups: Some(caller.groups.clone()),
                extra: (!caller.extra.is_empty())
                    .then(|| caller.extra.clone().into_iter().collect()),
                resource_attributes: Some(ResourceAttributes {
                    group: Some(cairn_api::GROUP.to_owned()),
                    resource: Some(access.resource.to_owned()),
                    verb: Some(access.verb.to_owned()),
                    namespace: (!access.namespace.is_empty()).then(|| access.namespace.clone()),
                    ..Default::default()
                }),
                ..Default::default()
            },
            ..Default::default()
        };
        let api: Api<SubjectAccessReview> = Api::all(self.client.clone());
        let answer = api
            .create(&PostParams::default(), &review)
            .await
            .map_err(|e| Status::unavailable(format!("the access review failed: {e}")))?;
        let status = answer.status.unwrap_or_default();
        if status.allowed && status.denied != Some(true) {
            Ok(Decision::Allowed)
        } else {
            let reason = [status.reason, status.evaluation_error]
                .into_iter()
                .flatten()
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join("; ");
            Ok(Decision::Denied(reason))
        }
    }
}
