//! Counts of the API requests served, by client (`User-Agent`), verb and resource, served as
//! JSON at `GET /debug/requests`: how tests measure what a client asks of the API server.

use std::collections::BTreeMap;
use std::sync::Mutex;

use axum::http::Method;
use serde::Serialize;

use super::Query;
use super::request::ResourcePath;

/// Path the counts are served at.
pub const PATH: &str = "/debug/requests";

/// One counted kind of request.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Key {
    /// The client's `User-Agent` header (empty when it sent none).
    pub user_agent: String,
    /// Kubernetes verb: get, list, watch, create, update, patch, delete, deletecollection.
    pub verb: String,
    /// `resource[/subresource]`, prefixed with `group/` outside the core group.
    pub resource: String,
}

/// Request counters.
#[derive(Debug, Default)]
pub struct Counts {
    counts: Mutex<BTreeMap<Key, u64>>,
}

#[derive(Serialize)]
struct Row<'a> {
    #[serde(flatten)]
    key: &'a Key,
    count: u64,
}

impl Counts {
    /// Counts one request.
    pub fn count(&self, user_agent: &str, method: &Method, path: &ResourcePath, query: &Query) {
        let key = Key {
            user_agent: user_agent.to_string(),
            verb: verb(method, path, query).to_string(),
            resource: resource(path),
        };
        *self
            .counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(key)
            .or_default() += 1;
    }

    /// `{"requests": [{"userAgent", "verb", "resource", "count"}, ...]}`.
    pub fn to_json(&self) -> serde_json::Value {
        let counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let rows: Vec<Row<'_>> = counts
            .iter()
            .map(|(key, count)| Row { key, count: *count })
            .collect();
        serde_json::json!({ "requests": rows })
    }
}

/// The Kubernetes verb of a request (what RBAC and audit logs call it).
pub fn verb(method: &Method, path: &ResourcePath, query: &Query) -> &'static str {
    let named = path.name.is_some();
    match *method {
        Method::GET | Method::HEAD if query.flag("watch") => "watch",
        Method::GET | Method::HEAD if named => "get",
        Method::GET | Method::HEAD => "list",
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE if named => "delete",
        Method::DELETE => "deletecollection",
        _ => "other",
    }
}

fn resource(path: &ResourcePath) -> String {
    let mut text = if path.group.is_empty() {
        path.resource.clone()
    } else {
        format!("{}/{}", path.group, path.resource)
    };
    if let Some(sub) = &path.subresource {
        text.push('/');
        text.push_str(sub);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(group: &str, resource: &str, name: Option<&str>, sub: Option<&str>) -> ResourcePath {
        ResourcePath {
            group: group.into(),
            version: "v1".into(),
            namespace: Some("ns".into()),
            resource: resource.into(),
            name: name.map(Into::into),
            subresource: sub.map(Into::into),
        }
    }

    #[test]
    fn requests_are_counted_by_client_verb_and_resource() {
        let counts = Counts::default();
        let none = Query::default();
        let pods = path("", "pods", None, None);
        counts.count("cp", &Method::GET, &pods, &none);
        counts.count("cp", &Method::GET, &pods, &none);
        counts.count("cp", &Method::GET, &pods, &Query::parse(Some("watch=true")));
        counts.count("kubectl", &Method::GET, &pods, &none);
        let status = path("g.io", "backups", Some("b"), Some("status"));
        counts.count("cp", &Method::PATCH, &status, &none);
        let json = counts.to_json();
        let rows = json["requests"].as_array().expect("rows");
        let find = |ua: &str, verb: &str, resource: &str| {
            rows.iter()
                .find(|r| r["userAgent"] == ua && r["verb"] == verb && r["resource"] == resource)
                .map(|r| r["count"].as_u64().unwrap_or(0))
        };
        assert_eq!(find("cp", "list", "pods"), Some(2));
        assert_eq!(find("cp", "watch", "pods"), Some(1));
        assert_eq!(find("kubectl", "list", "pods"), Some(1));
        assert_eq!(find("cp", "patch", "g.io/backups/status"), Some(1));
        assert_eq!(rows.len(), 4);
    }

    #[test]
    fn verbs_follow_kubernetes_names() {
        let none = Query::default();
        let named = path("", "pods", Some("p"), None);
        let all = path("", "pods", None, None);
        assert_eq!(verb(&Method::GET, &named, &none), "get");
        assert_eq!(verb(&Method::POST, &all, &none), "create");
        assert_eq!(verb(&Method::PUT, &named, &none), "update");
        assert_eq!(verb(&Method::DELETE, &named, &none), "delete");
        assert_eq!(verb(&Method::DELETE, &all, &none), "deletecollection");
    }
}
