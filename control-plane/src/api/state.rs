//! What every service of the API shares: the Kubernetes client, authentication, authorisation
//! and the manifest checker of `cairnctl validate`.

use std::sync::Arc;

use cairn_api::validate::Problem;
use cairn_api::validate::manifest::{Checker, UnknownFields};
use tonic::{Request, Status};

use super::authn::Authenticator;
use super::authz::{Access, Authorizer};
use super::caller::Caller;
use super::status::required;

/// The shared state of the API's services.
#[derive(Clone)]
pub struct ApiState {
    /// The control plane's client (its own identity: requests are authorised before it is used).
    pub client: kube::Client,
    authn: Authenticator,
    authz: Authorizer,
    checker: Arc<Checker>,
}

impl ApiState {
    /// The state of an API served with `client`.
    pub fn new(client: kube::Client, checker: Arc<Checker>) -> ApiState {
        ApiState {
            authn: Authenticator::new(client.clone()),
            authz: Authorizer::new(client.clone()),
            client,
            checker,
        }
    }

    /// Authenticates the caller of `request`, checks the namespace field (unless the resource
    /// is cluster-scoped) and authorises `verb` on `resource` there.
    pub async fn allow<T>(
        &self,
        request: &Request<T>,
        verb: &'static str,
        resource: &'static str,
        namespace: Option<&str>,
    ) -> Result<Caller, Status> {
        let caller = self.authn.authenticate(request).await?;
        if let Some(namespace) = namespace {
            required("namespace", namespace)?;
        }
        self.authz
            .check(
                &caller,
                &Access::new(verb, resource, namespace.unwrap_or("")),
            )
            .await?;
        Ok(caller)
    }

    /// Authorises one more access for a caller already authenticated.
    pub async fn also_allow(
        &self,
        caller: &Caller,
        verb: &'static str,
        resource: &'static str,
        namespace: &str,
    ) -> Result<(), Status> {
        self.authz
            .check(caller, &Access::new(verb, resource, namespace))
            .await
    }

    /// The checks `cairnctl validate` runs on an object (metadata, unknown fields, the CRD
    /// schema, the semantic checks).
    pub fn check(&self, object: &serde_json::Value) -> Vec<Problem> {
        self.checker.check(object, UnknownFields::Error).problems
    }
}
