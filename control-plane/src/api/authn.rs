//! Authentication: a bearer token verified with a TokenReview, or a client certificate from the
//! configured CA (docs/API.md §3.1).

use std::time::Duration;

use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use kube::api::{Api, PostParams};
use moka::future::Cache;
use tonic::{Request, Status};

use super::caller::Caller;

/// How long a token review is reused.
pub const TOKEN_CACHE_TTL: Duration = Duration::from_secs(10);
/// At most this many token reviews are kept.
pub const TOKEN_CACHE_CAPACITY: u64 = 10_000;

/// The outcome of one token review, cached by the token's hash.
#[derive(Debug, Clone)]
enum Reviewed {
    User(Caller),
    Refused(String),
}

/// Verifies the credentials of requests.
#[derive(Clone)]
pub struct Authenticator {
    client: kube::Client,
    /// By the BLAKE3 hash of the token: the token itself is never kept.
    tokens: Cache<[u8; 32], Reviewed>,
}

impl Authenticator {
    /// An authenticator asking the API server of `client`.
    pub fn new(client: kube::Client) -> Authenticator {
        Authenticator {
            client,
            tokens: Cache::builder()
                .max_capacity(TOKEN_CACHE_CAPACITY)
                .time_to_live(TOKEN_CACHE_TTL)
                .build(),
        }
    }

    /// The caller of `request`: its bearer token's user, else its client certificate's (which
    /// TLS verified against the configured client CA); UNAUTHENTICATED without either.
    pub async fn authenticate<T>(&self, request: &Request<T>) -> Result<Caller, Status> {
        if let Some(value) = request.metadata().get("authorization") {
            let value = value
                .to_str()
                .map_err(|_| Status::unauthenticated("the authorization header is not text"))?;
            let token = value
                .strip_prefix("Bearer ")
                .or_else(|| value.strip_prefix("bearer "))
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .ok_or_else(|| {
                    Status::unauthenticated(
                        "the authorization header is not `Bearer <token>` (the value is not shown)",
                    )
                })?;
            return self.review(token).await;
        }
        if let Some(certs) = request.peer_certs()
            && let Some(leaf) = certs.first()
        {
            return Caller::from_certificate(leaf.as_ref())
                .map_err(|e| Status::unauthenticated(e.to_string()));
        }
        Err(Status::unauthenticated(
            "no credentials: send `authorization: Bearer <token>` or a client certificate",
        ))
    }

    async fn review(&self, token: &str) -> Result<Caller, Status> {
        let key = *blake3::hash(token.as_bytes()).as_bytes();
        let reviewed = match self.tokens.get(&key).await {
            Some(reviewed) => reviewed,
            None => {
                let reviewed = self.ask(token).await?;
                self.tokens.insert(key, reviewed.clone()).await;
                reviewed
            }
        };
        match reviewed {
            Reviewed::User(caller) => Ok(caller),
            Reviewed::Refused(reason) => Err(Status::unauthenticated(reason)),
        }
    }

    async fn ask(&self, token: &str) -> Result<Reviewed, Status> {
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: Some(token.to_owned()),
                audiences: None,
            },
            ..Default::default()
        };
        let api: Api<TokenReview> = Api::all(self.client.clone());
        // The error of a failed review never carries the token (the API server does not echo it).
        let answer = api
            .create(&PostParams::default(), &review)
            .await
            .map_err(|e| Status::unavailable(format!("the token review failed: {e}")))?;
        let status = answer.status.unwrap_or_default();
        if status.authenticated != Some(true) {
            let why = status
                .error
                .filter(|e| !e.is_empty())
                .unwrap_or_else(|| "the token is not valid".into());
            return Ok(Reviewed::Refused(format!(
                "the API server did not authenticate the bearer token: {why}"
            )));
        }
        let user = status.user.unwrap_or_default();
        Ok(Reviewed::User(Caller {
            user: user.username.unwrap_or_default(),
            uid: user.uid.unwrap_or_default(),
            groups: user.groups.unwrap_or_default(),
            extra: user.extra.unwrap_or_default().into_iter().collect(),
        }))
    }
}
