//! The OpenAPI v3 that `kubectl apply/create/edit/explain` need: a root listing every served
//! group-version, and per group-version a document whose PATCH operations carry the
//! `fieldValidation` parameter and the kind, with schemas (CRD schemas for custom resources).

use crate::resource::{Registry, ResourceType};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::hash::{DefaultHasher, Hash, Hasher};

const OBJECT_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";

/// The OpenAPI documents of one registry snapshot.
#[derive(Debug, Clone)]
pub struct OpenApi {
    /// `api/v1` or `apis/{group}/{version}` -> (hash, document)
    docs: BTreeMap<String, (String, Value)>,
}

fn schema_name(rt: &ResourceType) -> String {
    if rt.custom.is_some() {
        let reversed: Vec<&str> = rt.group.split('.').rev().collect();
        return format!("{}.{}.{}", reversed.join("."), rt.version, rt.kind);
    }
    let group = match rt.group.as_str() {
        "" => "core",
        "apiextensions.k8s.io" => {
            return format!(
                "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.{}.{}",
                rt.version, rt.kind
            );
        }
        g => g.split('.').next().unwrap_or(g),
    };
    format!("io.k8s.api.{group}.{}.{}", rt.version, rt.kind)
}

fn object_meta_schema() -> Value {
    json!({
        "description": "ObjectMeta is metadata that all persisted resources must have, which includes all objects users must create.",
        "type": "object",
        "properties": {
            "name": {"type": "string", "description": "Name must be unique within a namespace."},
            "generateName": {"type": "string", "description": "GenerateName is an optional prefix, used by the server, to generate a unique name ONLY IF the Name field has not been provided."},
            "namespace": {"type": "string", "description": "Namespace defines the space within which each name must be unique."},
            "uid": {"type": "string", "description": "UID is the unique in time and space value for this object."},
            "resourceVersion": {"type": "string", "description": "An opaque value that represents the internal version of this object."},
            "generation": {"type": "integer", "format": "int64", "description": "A sequence number representing a specific generation of the desired state."},
            "creationTimestamp": {"type": "string", "format": "date-time", "description": "CreationTimestamp is a timestamp representing the server time when this object was created."},
            "deletionTimestamp": {"type": "string", "format": "date-time", "description": "DeletionTimestamp is RFC 3339 date and time at which this resource will be deleted."},
            "labels": {"type": "object", "additionalProperties": {"type": "string", "default": ""}, "description": "Map of string keys and values that can be used to organize and categorize (scope and select) objects."},
            "annotations": {"type": "object", "additionalProperties": {"type": "string", "default": ""}, "description": "Annotations is an unstructured key value map stored with a resource."},
            "finalizers": {"type": "array", "items": {"type": "string", "default": ""}, "description": "Must be empty before the object is deleted from the registry."},
            "ownerReferences": {"type": "array", "items": {"type": "object"}, "description": "List of objects depended by this object."}
        }
    })
}

fn kind_schema(rt: &ResourceType) -> Value {
    let mut schema = rt
        .custom
        .as_ref()
        .and_then(|c| c.schema.clone())
        .unwrap_or_else(|| json!({"type": "object"}));
    if !schema.get("properties").is_some_and(Value::is_object) {
        schema["properties"] = json!({});
    }
    let props = &mut schema["properties"];
    props["apiVersion"] = json!({"type": "string", "description": "APIVersion defines the versioned schema of this representation of an object."});
    props["kind"] = json!({"type": "string", "description": "Kind is a string value representing the REST resource this object represents."});
    props["metadata"] =
        json!({"allOf": [{"$ref": format!("#/components/schemas/{OBJECT_META}")}], "default": {}});
    schema["type"] = json!("object");
    schema["x-kubernetes-group-version-kind"] =
        json!([{"group": rt.group, "version": rt.version, "kind": rt.kind}]);
    schema
}

fn document(types: &[std::sync::Arc<ResourceType>]) -> Value {
    let mut paths = Map::new();
    let mut schemas = Map::new();
    schemas.insert(OBJECT_META.into(), object_meta_schema());
    for rt in types {
        let name = schema_name(rt);
        let gvk = json!({"group": rt.group, "version": rt.version, "kind": rt.kind});
        let item_path = if rt.namespaced {
            format!("{}/{{name}}", rt.collection_path(Some("{namespace}")))
        } else {
            format!("{}/{{name}}", rt.collection_path(None))
        };
        let schema_ref = json!({"$ref": format!("#/components/schemas/{name}")});
        let op = |action: &str| {
            json!({
                "x-kubernetes-group-version-kind": gvk,
                "x-kubernetes-action": action,
                "parameters": [
                    {"name": "dryRun", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
                    {"name": "fieldManager", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
                    {"name": "fieldValidation", "in": "query", "schema": {"type": "string", "uniqueItems": true}}
                ],
                "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": schema_ref}}}}
            })
        };
        paths.insert(
            item_path,
            json!({
                "get": {"x-kubernetes-group-version-kind": gvk, "x-kubernetes-action": "get",
                        "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": schema_ref}}}}},
                "put": op("put"),
                "patch": op("patch"),
            }),
        );
        paths.insert(
            rt.collection_path(if rt.namespaced {
                Some("{namespace}")
            } else {
                None
            }),
            json!({"post": op("post")}),
        );
        schemas.insert(name, kind_schema(rt));
    }
    json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.32.0"},
        "paths": paths,
        "components": {"schemas": schemas},
    })
}

fn content_hash(doc: &Value) -> String {
    let mut h = DefaultHasher::new();
    doc.to_string().hash(&mut h);
    format!("{:016X}", h.finish())
}

impl OpenApi {
    pub fn build(reg: &Registry) -> OpenApi {
        let mut docs = BTreeMap::new();
        for g in reg.groups() {
            for v in &g.versions {
                let key = if g.group.is_empty() {
                    format!("api/{v}")
                } else {
                    format!("apis/{}/{v}", g.group)
                };
                let doc = document(&reg.resources(&g.group, v));
                docs.insert(key, (content_hash(&doc), doc));
            }
        }
        OpenApi { docs }
    }

    /// `GET /openapi/v3`.
    pub fn root(&self) -> Value {
        let paths: Map<String, Value> = self
            .docs
            .iter()
            .map(|(k, (hash, _))| {
                (
                    k.clone(),
                    json!({"serverRelativeURL": format!("/openapi/v3/{k}?hash={hash}")}),
                )
            })
            .collect();
        json!({ "paths": paths })
    }

    /// `GET /openapi/v3/{path}`.
    pub fn document(&self, path: &str) -> Option<&Value> {
        self.docs.get(path).map(|(_, d)| d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_group_version_is_listed_with_patch_operations_carrying_field_validation() {
        let api = OpenApi::build(&Registry::new(&[]));
        let root = api.root();
        assert!(
            root["paths"]["api/v1"]["serverRelativeURL"]
                .as_str()
                .unwrap()
                .starts_with("/openapi/v3/api/v1?hash=")
        );
        assert!(root["paths"]["apis/batch/v1"].is_object());
        let doc = api.document("apis/batch/v1").unwrap();
        let patch = &doc["paths"]["/apis/batch/v1/namespaces/{namespace}/jobs/{name}"]["patch"];
        assert_eq!(patch["x-kubernetes-group-version-kind"]["kind"], "Job");
        assert!(
            patch["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["name"] == "fieldValidation")
        );
        assert_eq!(
            doc["components"]["schemas"]["io.k8s.api.batch.v1.Job"]["x-kubernetes-group-version-kind"]
                [0]["kind"],
            "Job"
        );
    }

    #[test]
    fn hashes_are_stable_for_the_same_registry() {
        let a = OpenApi::build(&Registry::new(&[]));
        let b = OpenApi::build(&Registry::new(&[]));
        assert_eq!(a.root(), b.root());
    }
}
