//! The HTTP API: authentication, routing, discovery, OpenAPI and resource handlers.

pub mod audit;
mod discovery;
mod negotiate;
mod openapi;
mod pod;
mod request;
mod resource;
mod response;
mod scale;

pub use request::{Query, ResourcePath, Route, route};

use crate::error::ApiError;
use crate::rest::Api;
use axum::Router;
use axum::extract::{Request, State};
use axum::http::{Method, header};
use axum::response::Response;
use negotiate::{Format, negotiate};
use openapi::OpenApi;
use serde_json::json;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The version `/version` reports: a 1.32 server, so kubectl 1.31 to 1.33 print no skew warning.
pub const GIT_VERSION: &str = "v1.32.4-localkube";

/// Everything the handlers share.
pub struct AppState {
    pub api: Arc<Api>,
    /// The bearer token clients must present.
    pub token: String,
    /// `host:port` advertised in `/api`.
    pub server_address: String,
    pub shutdown: CancellationToken,
    pub bookmark_interval: Duration,
    /// Serves `pods/log` and `pods/exec` when pods run.
    pub kubelet: Option<Arc<crate::kubelet::Kubelet>>,
    /// Requests served, by client, verb and resource (`GET /debug/requests`).
    pub requests: audit::Counts,
    openapi: Mutex<Option<(u64, Arc<OpenApi>)>>,
}

impl AppState {
    pub fn new(
        api: Arc<Api>,
        token: String,
        server_address: String,
        shutdown: CancellationToken,
        bookmark_interval: Duration,
        kubelet: Option<Arc<crate::kubelet::Kubelet>>,
    ) -> AppState {
        AppState {
            api,
            token,
            server_address,
            shutdown,
            bookmark_interval,
            kubelet,
            requests: audit::Counts::default(),
            openapi: Mutex::new(None),
        }
    }

    fn openapi(&self) -> Arc<OpenApi> {
        let version = *self.api.registry_changes().borrow();
        let mut cache = self.openapi.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((v, doc)) = cache.as_ref()
            && *v == version
        {
            return doc.clone();
        }
        let doc = Arc::new(OpenApi::build(&self.api.registry()));
        *cache = Some((version, doc.clone()));
        doc
    }
}

/// The axum router serving the whole API.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new().fallback(handle).with_state(state)
}

/// The user of a request: the admin token's, or a ServiceAccount token's (`crate::auth`).
fn authenticate(state: &AppState, req: &Request) -> Option<crate::auth::Identity> {
    let token = crate::auth::review::bearer(req.headers())?;
    crate::auth::review::identify(&state.api, &state.token, token).ok()
}

async fn handle(State(state): State<Arc<AppState>>, req: Request) -> Response {
    let path = req.uri().path().to_string();
    let target = route(&path);
    let public = matches!(target, Route::Health | Route::Version);
    let who = match authenticate(&state, &req) {
        Some(who) => match crate::auth::impersonate::impersonate(&state.api, &who, req.headers()) {
            Ok(who) => who,
            Err(e) => return response::error(&e),
        },
        None if public => crate::auth::Identity::admin(),
        None => return response::error(&ApiError::unauthorized()),
    };
    let format = negotiate(
        req.headers()
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok()),
    );
    let query = Query::parse(req.uri().query());
    let method = req.method().clone();
    let reads = method == Method::GET || method == Method::HEAD;
    if path == audit::PATH && method == Method::GET {
        return response::json(200, &state.requests.to_json());
    }
    if let Route::Resource(resource) = &target {
        let user_agent = req
            .headers()
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        state.requests.count(user_agent, &method, resource, &query);
    }
    match target {
        Route::Health => response::text(200, "ok"),
        Route::Version => response::json(
            200,
            &json!({
                "major": "1",
                "minor": "32",
                "gitVersion": GIT_VERSION,
                "gitCommit": "0000000000000000000000000000000000000000",
                "gitTreeState": "clean",
                "buildDate": "2026-01-01T00:00:00Z",
                "goVersion": "go1.23.0",
                "compiler": "gc",
                "platform": format!("linux/{}", go_arch()),
            }),
        ),
        _ if !reads && !matches!(target, Route::Resource(_)) => {
            response::error(&ApiError::method_not_allowed(
                "the server does not allow this method on the requested resource",
            ))
        }
        Route::CoreGroups => discovery::core(&state.api.registry(), format, &state.server_address),
        Route::Groups => discovery::groups(&state.api.registry(), format),
        Route::Group(g) => discovery::group(&state.api.registry(), &g),
        Route::GroupVersion { group, version } => {
            discovery::resource_list(&state.api.registry(), &group, &version)
        }
        Route::OpenApiV3Root => response::json(200, &state.openapi().root()),
        Route::OpenApiV3(p) => match state.openapi().document(&p) {
            Some(doc) => response::json(200, doc),
            None => response::error(&ApiError::route_not_found()),
        },
        Route::OpenApiV2 => response::error(&ApiError::route_not_found()),
        Route::NotFound => response::error(&ApiError::route_not_found()),
        Route::Resource(path) => {
            if method == Method::POST
                && let Some(review) = crate::auth::review::review_of(&path)
            {
                return serve_review(&state, &who, &review, req).await;
            }
            if !who.is_master() {
                let verb = audit::verb(&method, &path, &query);
                let attrs = crate::auth::review::attributes(verb, &path);
                if let Err(e) = crate::auth::review::require(&state.api, &who, &attrs) {
                    return response::error(&e);
                }
            }
            serve_resource(&state, path, query, format, req).await
        }
    }
}

/// TokenRequest and the review APIs (`crate::auth::review`).
async fn serve_review(
    state: &AppState,
    who: &crate::auth::Identity,
    review: &crate::auth::review::Review,
    req: Request,
) -> Response {
    let (parts, body) = req.into_parts();
    let answer = async {
        let body = axum::body::to_bytes(body, 1 << 20)
            .await
            .map_err(|e| ApiError::bad_request(format!("reading the request body: {e}")))?;
        let body = resource::decode_object(&parts.headers, &body)?;
        crate::auth::review::serve(&state.api, &state.token, who, review, body)
    };
    match answer.await {
        Ok(value) => response::json(201, &value),
        Err(e) => response::error(&e),
    }
}

async fn serve_resource(
    state: &Arc<AppState>,
    path: ResourcePath,
    query: Query,
    format: Format,
    req: Request,
) -> Response {
    let rt = match state
        .api
        .resource(&path.group, &path.version, &path.resource)
    {
        Ok(rt) => rt,
        Err(e) => return response::error(&e),
    };
    if path.namespace.is_some() && !rt.namespaced {
        return response::error(&ApiError::route_not_found());
    }
    if rt.is(crate::resource::Builtin::Pod)
        && let (Some(ns), Some(name), Some(sub)) = (
            path.namespace.clone(),
            path.name.clone(),
            path.subresource.clone(),
        )
    {
        match (sub.as_str(), req.method().clone()) {
            ("log", Method::GET) => {
                return pod::log(state, &ns, &name, &query).unwrap_or_else(|e| response::error(&e));
            }
            ("exec", Method::GET | Method::POST) => {
                let (parts, _) = req.into_parts();
                return pod::exec(state, &ns, &name, &query, parts)
                    .await
                    .unwrap_or_else(|e| response::error(&e));
            }
            ("eviction", Method::POST) => {
                let opts = crate::rest::DeleteOptions::default();
                return match state.api.delete(&rt, Some(&ns), &name, &opts) {
                    Ok(_) => response::json(
                        201,
                        &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}),
                    ),
                    Err(e) => response::error(&e),
                };
            }
            ("log" | "exec" | "eviction" | "binding", _) => {
                return response::error(&ApiError::method_not_allowed(
                    "the server does not allow this method on the requested resource",
                ));
            }
            _ => {}
        }
    }
    let (parts, body) = req.into_parts();
    let is_scale = path.subresource.as_deref() == Some("scale")
        && rt.has_subresource(crate::resource::Subresource::Scale);
    let call = resource::Call {
        method: parts.method,
        path,
        query,
        headers: parts.headers,
        body,
        format,
    };
    if is_scale {
        return scale::serve(state, &rt, call)
            .await
            .unwrap_or_else(|e| response::error(&e));
    }
    resource::serve(state, rt, call).await
}

fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

#[allow(dead_code)]
fn assert_send(state: State<Arc<AppState>>, req: Request) {
    fn is_send<T: Send>(_: &T) {}
    let fut = handle(state, req);
    is_send(&fut);
}
