//! Response helpers: JSON bodies, `metav1.Status` errors and `Warning` headers.

use crate::error::ApiError;
use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use bytes::Bytes;
use serde_json::Value;

pub const JSON: &str = "application/json";

fn build(status: u16, content_type: &str, body: Body) -> Response {
    let mut resp = Response::new(body);
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if let Ok(v) = HeaderValue::from_str(content_type) {
        resp.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    resp
}

/// A JSON body.
pub fn json(status: u16, body: &Value) -> Response {
    raw_json(
        status,
        Bytes::from(serde_json::to_vec(body).unwrap_or_default()),
    )
}

/// A JSON body that is already serialized.
pub fn raw_json(status: u16, body: Bytes) -> Response {
    build(status, JSON, Body::from(body))
}

/// A JSON body with a specific content type (aggregated discovery).
pub fn json_as(status: u16, content_type: &str, body: &Value) -> Response {
    build(
        status,
        content_type,
        Body::from(serde_json::to_vec(body).unwrap_or_default()),
    )
}

pub fn text(status: u16, body: &'static str) -> Response {
    build(status, "text/plain; charset=utf-8", Body::from(body))
}

/// An error as a `metav1.Status`.
pub fn error(e: &ApiError) -> Response {
    json(e.code, &e.to_status())
}

/// Adds `Warning: 299 - "<message>"` headers.
pub fn with_warnings(mut resp: Response, warnings: &[String]) -> Response {
    for w in warnings {
        if let Ok(v) = HeaderValue::from_str(&format!("299 - {w:?}")) {
            resp.headers_mut().append(header::WARNING, v);
        }
    }
    resp
}
