//! Discovery, aggregated (`apidiscovery.k8s.io/v2`, with its exact content type) and legacy
//! (`APIVersions`, `APIGroupList`, `APIGroup`, `APIResourceList`).

use super::negotiate::Format;
use super::response;
use crate::error::ApiError;
use crate::resource::{Registry, ResourceType, Subresource};
use axum::response::Response;
use serde_json::{Value, json};

pub const AGGREGATED_CONTENT_TYPE: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

const VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

fn sub_verbs(sub: Subresource) -> &'static [&'static str] {
    match sub {
        Subresource::Status => &["get", "patch", "update"],
        Subresource::Log => &["get"],
        Subresource::Exec => &["create", "get"],
        Subresource::Eviction | Subresource::Binding => &["create"],
        Subresource::Finalize => &["update"],
        Subresource::Scale => &["get", "patch", "update"],
    }
}

fn sub_kind(rt: &ResourceType, sub: Subresource) -> Value {
    match sub {
        Subresource::Exec => json!({"group": "", "version": "v1", "kind": "PodExecOptions"}),
        Subresource::Eviction => json!({"group": "policy", "version": "v1", "kind": "Eviction"}),
        Subresource::Binding => json!({"group": "", "version": "v1", "kind": "Binding"}),
        Subresource::Scale => json!({"group": "autoscaling", "version": "v1", "kind": "Scale"}),
        _ => json!({"group": rt.group, "version": rt.version, "kind": rt.kind}),
    }
}

fn aggregated_resource(rt: &ResourceType) -> Value {
    let mut r = json!({
        "resource": rt.plural,
        "responseKind": {"group": rt.group, "version": rt.version, "kind": rt.kind},
        "scope": if rt.namespaced { "Namespaced" } else { "Cluster" },
        "singularResource": rt.singular,
        "verbs": VERBS,
    });
    if !rt.short_names.is_empty() {
        r["shortNames"] = json!(rt.short_names);
    }
    if !rt.categories.is_empty() {
        r["categories"] = json!(rt.categories);
    }
    if !rt.subresources.is_empty() {
        r["subresources"] = Value::Array(
            rt.subresources
                .iter()
                .map(|s| {
                    json!({
                        "subresource": s.name(),
                        "responseKind": sub_kind(rt, *s),
                        "verbs": sub_verbs(*s),
                    })
                })
                .collect(),
        );
    }
    r
}

fn aggregated_group(reg: &Registry, group: &str) -> Value {
    let versions: Vec<Value> = reg
        .group(group)
        .map(|g| g.versions.clone())
        .unwrap_or_default()
        .iter()
        .map(|v| {
            json!({
                "version": v,
                "resources": reg.resources(group, v).iter().map(|r| aggregated_resource(r)).collect::<Vec<_>>(),
                "freshness": "Current",
            })
        })
        .collect();
    json!({"metadata": {"name": group, "creationTimestamp": null}, "versions": versions})
}

fn aggregated_list(items: Vec<Value>) -> Response {
    response::json_as(
        200,
        AGGREGATED_CONTENT_TYPE,
        &json!({
            "kind": "APIGroupDiscoveryList",
            "apiVersion": "apidiscovery.k8s.io/v2",
            "metadata": {},
            "items": items,
        }),
    )
}

/// `GET /api`.
pub fn core(reg: &Registry, format: Format, server_address: &str) -> Response {
    if format == Format::AggregatedDiscovery {
        return aggregated_list(vec![aggregated_group(reg, "")]);
    }
    response::json(
        200,
        &json!({
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
        }),
    )
}

fn api_group(reg: &Registry, group: &str) -> Option<Value> {
    let g = reg.group(group)?;
    let versions: Vec<Value> = g
        .versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v}))
        .collect();
    let preferred = versions.first().cloned().unwrap_or(Value::Null);
    Some(json!({"name": group, "versions": versions, "preferredVersion": preferred}))
}

/// `GET /apis`.
pub fn groups(reg: &Registry, format: Format) -> Response {
    let names: Vec<&str> = reg
        .groups()
        .iter()
        .map(|g| g.group.as_str())
        .filter(|g| !g.is_empty())
        .collect();
    if format == Format::AggregatedDiscovery {
        return aggregated_list(names.iter().map(|g| aggregated_group(reg, g)).collect());
    }
    response::json(
        200,
        &json!({
            "kind": "APIGroupList",
            "apiVersion": "v1",
            "groups": names.iter().filter_map(|g| api_group(reg, g)).collect::<Vec<_>>(),
        }),
    )
}

/// `GET /apis/{group}`.
pub fn group(reg: &Registry, group: &str) -> Response {
    match api_group(reg, group).filter(|_| !group.is_empty()) {
        Some(mut g) => {
            g["kind"] = json!("APIGroup");
            g["apiVersion"] = json!("v1");
            response::json(200, &g)
        }
        None => response::error(&ApiError::route_not_found()),
    }
}

/// `GET /api/v1` or `GET /apis/{group}/{version}`.
pub fn resource_list(reg: &Registry, group: &str, version: &str) -> Response {
    let types = reg.resources(group, version);
    if types.is_empty() {
        return response::error(&ApiError::route_not_found());
    }
    let mut resources = Vec::new();
    for rt in &types {
        let mut r = json!({
            "name": rt.plural,
            "singularName": rt.singular,
            "namespaced": rt.namespaced,
            "kind": rt.kind,
            "verbs": VERBS,
        });
        if !rt.short_names.is_empty() {
            r["shortNames"] = json!(rt.short_names);
        }
        if !rt.categories.is_empty() {
            r["categories"] = json!(rt.categories);
        }
        resources.push(r);
        for sub in &rt.subresources {
            let kind = sub_kind(rt, *sub);
            let mut entry = json!({
                "name": format!("{}/{}", rt.plural, sub.name()),
                "singularName": "",
                "namespaced": rt.namespaced,
                "kind": kind["kind"],
                "verbs": sub_verbs(*sub),
            });
            if kind["group"] != json!(rt.group) {
                entry["group"] = kind["group"].clone();
                entry["version"] = kind["version"].clone();
            }
            resources.push(entry);
        }
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    response::json(
        200,
        &json!({
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": gv,
            "resources": resources,
        }),
    )
}
