//! Request routing: URL paths to API targets, and query strings (tolerating kube-rs' `?&`).

use std::collections::BTreeMap;

/// Where a resource request points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourcePath {
    pub group: String,
    pub version: String,
    pub namespace: Option<String>,
    pub resource: String,
    pub name: Option<String>,
    pub subresource: Option<String>,
}

/// What a URL path addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Version,
    Health,
    /// `/api`
    CoreGroups,
    /// `/apis`
    Groups,
    /// `/apis/{group}`
    Group(String),
    /// `/api/v1` or `/apis/{group}/{version}`
    GroupVersion {
        group: String,
        version: String,
    },
    OpenApiV3Root,
    OpenApiV3(String),
    OpenApiV2,
    Resource(ResourcePath),
    NotFound,
}

/// Parses a URL path.
pub fn route(path: &str) -> Route {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match segments.as_slice() {
        ["version"] => Route::Version,
        ["healthz"] | ["livez"] | ["readyz"] => Route::Health,
        ["healthz" | "livez" | "readyz", ..] => Route::Health,
        ["api"] => Route::CoreGroups,
        ["apis"] => Route::Groups,
        ["apis", g] => Route::Group(g.to_string()),
        ["openapi", "v3"] => Route::OpenApiV3Root,
        ["openapi", "v3", rest @ ..] => Route::OpenApiV3(rest.join("/")),
        ["openapi", "v2"] | ["swagger.json"] => Route::OpenApiV2,
        ["api", "v1", rest @ ..] => resource_route("", "v1", rest),
        ["apis", g, v, rest @ ..] => resource_route(g, v, rest),
        _ => Route::NotFound,
    }
}

fn resource_route(group: &str, version: &str, rest: &[&str]) -> Route {
    let gv = |namespace: Option<&str>, resource: &str, name: Option<&str>, sub: Option<&str>| {
        Route::Resource(ResourcePath {
            group: group.to_string(),
            version: version.to_string(),
            namespace: namespace.map(str::to_string),
            resource: resource.to_string(),
            name: name.map(str::to_string),
            subresource: sub.map(str::to_string),
        })
    };
    match rest {
        [] => Route::GroupVersion {
            group: group.to_string(),
            version: version.to_string(),
        },
        // The Namespace object itself and its subresources.
        ["namespaces"] => gv(None, "namespaces", None, None),
        ["namespaces", ns] => gv(None, "namespaces", Some(ns), None),
        ["namespaces", ns, sub @ ("status" | "finalize")] if group.is_empty() => {
            gv(None, "namespaces", Some(ns), Some(sub))
        }
        ["namespaces", ns, resource] => gv(Some(ns), resource, None, None),
        ["namespaces", ns, resource, name] => gv(Some(ns), resource, Some(name), None),
        ["namespaces", ns, resource, name, sub] => gv(Some(ns), resource, Some(name), Some(sub)),
        [resource] => gv(None, resource, None, None),
        [resource, name] => gv(None, resource, Some(name), None),
        [resource, name, sub] => gv(None, resource, Some(name), Some(sub)),
        _ => Route::NotFound,
    }
}

/// Query parameters; repeated keys (exec's `command`) keep every value in order.
#[derive(Debug, Clone, Default)]
pub struct Query {
    values: BTreeMap<String, Vec<String>>,
}

impl Query {
    pub fn parse(query: Option<&str>) -> Query {
        let mut values: BTreeMap<String, Vec<String>> = BTreeMap::new();
        if let Some(q) = query {
            for (k, v) in form_urlencoded::parse(q.as_bytes()) {
                if k.is_empty() {
                    continue;
                }
                values
                    .entry(k.into_owned())
                    .or_default()
                    .push(v.into_owned());
            }
        }
        Query { values }
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.values
            .get(key)
            .and_then(|v| v.first())
            .map(String::as_str)
    }

    pub fn all(&self, key: &str) -> &[String] {
        self.values.get(key).map(Vec::as_slice).unwrap_or_default()
    }

    /// A boolean flag: `true`/`1` are true, anything else (or absence) false.
    pub fn flag(&self, key: &str) -> bool {
        matches!(self.get(key), Some("true" | "1" | "True"))
    }

    /// An optional boolean (`sendInitialEvents`).
    pub fn bool_opt(&self, key: &str) -> Option<bool> {
        self.get(key).map(|v| matches!(v, "true" | "1" | "True"))
    }

    pub fn non_empty(&self, key: &str) -> Option<&str> {
        self.get(key).filter(|v| !v.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(route: Route) -> ResourcePath {
        match route {
            Route::Resource(r) => r,
            other => panic!("not a resource route: {other:?}"),
        }
    }

    #[test]
    fn namespace_subresources_are_not_collections() {
        let r = res(route("/api/v1/namespaces/x/status"));
        assert_eq!(r.resource, "namespaces");
        assert_eq!(r.name.as_deref(), Some("x"));
        assert_eq!(r.subresource.as_deref(), Some("status"));
        let r = res(route("/api/v1/namespaces/x/pods"));
        assert_eq!(
            (r.namespace.as_deref(), r.resource.as_str(), r.name),
            (Some("x"), "pods", None)
        );
    }

    #[test]
    fn group_paths_parse_into_their_parts() {
        let r = res(route(
            "/apis/dataprotection.kubeblocks.io/v1alpha1/namespaces/d/backups/b1/status",
        ));
        assert_eq!(r.group, "dataprotection.kubeblocks.io");
        assert_eq!(r.subresource.as_deref(), Some("status"));
        let r = res(route("/apis/apps/v1/deployments"));
        assert_eq!((r.namespace, r.name), (None, None));
        assert_eq!(
            route("/apis/apps/v1"),
            Route::GroupVersion {
                group: "apps".into(),
                version: "v1".into()
            }
        );
        assert_eq!(route("/apis/apps"), Route::Group("apps".into()));
        assert_eq!(route("/api/v1/a/b/c/d"), Route::NotFound);
    }

    #[test]
    fn kube_rs_queries_with_a_leading_ampersand_parse() {
        let q = Query::parse(Some(
            "&watch=true&timeoutSeconds=290&labelSelector=app%3Dx&command=ls&command=-l",
        ));
        assert!(q.flag("watch"));
        assert_eq!(q.get("labelSelector"), Some("app=x"));
        assert_eq!(q.all("command"), ["ls", "-l"]);
    }
}
