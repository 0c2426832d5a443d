//! Patch: merge, JSON, strategic (built-ins only) and apply (SSA-lite), then the same
//! decision as an update.

use super::meta::meta_str;
use super::{Api, Outcome, Target, WriteOptions, Written};
use crate::error::{ApiError, FieldError};
use crate::patch::{
    ListStrategy, MAX_PATCHED_BYTES, PatchError, apply_json_patch, apply_merge, json_size,
    list_strategy, merge_patch, strategic_merge,
};
use crate::resource::ResourceType;
use serde_json::{Value, json};
use std::sync::Arc;

/// The patch media types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    Merge,
    Json,
    Strategic,
    Apply,
}

impl PatchType {
    /// Recognises a `Content-Type` (parameters ignored).
    pub fn from_content_type(content_type: &str) -> Option<PatchType> {
        let media = content_type.split(';').next().unwrap_or_default().trim();
        match media {
            "application/merge-patch+json" => Some(PatchType::Merge),
            "application/json-patch+json" => Some(PatchType::Json),
            "application/strategic-merge-patch+json" => Some(PatchType::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+json" => {
                Some(PatchType::Apply)
            }
            _ => None,
        }
    }
}

const CR_PATCH_TYPES: &str = "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml";

fn parse_body(patch_type: PatchType, body: &[u8]) -> Result<Value, ApiError> {
    let text = std::str::from_utf8(body)
        .map_err(|_| ApiError::bad_request("the patch body is not valid UTF-8"))?;
    match patch_type {
        PatchType::Apply => serde_saphyr::from_str::<Value>(text)
            .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}"))),
        _ => serde_json::from_str(text)
            .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}"))),
    }
}

/// The key fields of a list in a structural schema, following `path` through properties.
fn schema_list_keys(schema: Option<&Value>, path: &[String]) -> Option<Vec<String>> {
    let mut node = schema?;
    for (i, segment) in path.iter().enumerate() {
        node = node.get("properties").and_then(|p| p.get(segment))?;
        if i + 1 < path.len() && node.get("type").and_then(Value::as_str) == Some("array") {
            node = node.get("items")?;
        }
    }
    if node.get("x-kubernetes-list-type").and_then(Value::as_str) != Some("map") {
        return None;
    }
    node.get("x-kubernetes-list-map-keys")
        .and_then(Value::as_array)
        .map(|k| {
            k.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
}

impl Api {
    /// Applies a patch to an object (PATCH).
    #[allow(clippy::too_many_arguments)]
    pub fn patch(
        &self,
        rt: &Arc<ResourceType>,
        namespace: Option<&str>,
        name: &str,
        patch_type: PatchType,
        body: &[u8],
        target: Target,
        opts: &WriteOptions,
    ) -> Result<Written, ApiError> {
        if patch_type == PatchType::Strategic && rt.custom.is_some() {
            return Err(ApiError::unsupported_media_type(CR_PATCH_TYPES));
        }
        let patch = parse_body(patch_type, body)?;
        let ns = if rt.namespaced {
            namespace.unwrap_or_default().to_string()
        } else {
            String::new()
        };
        if patch_type == PatchType::Apply {
            if opts.field_manager.as_deref().unwrap_or_default().is_empty() {
                return Err(ApiError::bad_request(
                    "PATCH, application/apply-patch+yaml requests require a non-empty fieldManager",
                ));
            }
            if !patch.is_object() {
                return Err(ApiError::bad_request(
                    "the applied configuration must be an object",
                ));
            }
            if self.store().get(&rt.storage, &ns, name).is_none() && target == Target::Main {
                let mut object = patch.clone();
                object["metadata"]["name"] = json!(name);
                let mut written = self.create(rt, namespace, object, opts)?;
                written.created = true;
                return Ok(written);
            }
        }
        let mut warnings = Vec::new();
        let outcome = self.guaranteed_update(rt, &ns, name, opts.dry_run, |cur| {
            let cur = cur.ok_or_else(|| ApiError::not_found(&rt.group, &rt.plural, name))?;
            let stored = cur.value();
            let shown = self.present(rt, stored.clone());
            let patched = self.apply_patch(rt, patch_type, &shown, &patch)?;
            let patched_name = meta_str(&patched, "name");
            if patched_name != name {
                return Err(ApiError::invalid(
                    &rt.kind,
                    &rt.group,
                    name,
                    &[FieldError::invalid(
                        "metadata.name",
                        json!(patched_name),
                        "field is immutable",
                    )],
                ));
            }
            let patched_rv = meta_str(&patched, "resourceVersion");
            if !patched_rv.is_empty() && patched_rv != cur.rv.to_string() {
                return Err(ApiError::modified(&rt.group, &rt.plural, name));
            }
            let new = self.accept_body(rt, patched)?;
            warnings.clear();
            self.decide_update(rt, &stored, new, target, opts, &mut warnings)
        })?;
        if let Outcome::Unchanged(None) = outcome {
            return Err(ApiError::not_found(&rt.group, &rt.plural, name));
        }
        Ok(self.written(rt, outcome, warnings))
    }

    fn apply_patch(
        &self,
        rt: &ResourceType,
        patch_type: PatchType,
        doc: &Value,
        patch: &Value,
    ) -> Result<Value, ApiError> {
        let result = match patch_type {
            PatchType::Merge => {
                if !patch.is_object() {
                    return Err(ApiError::bad_request("merge patch must be a JSON object"));
                }
                Ok(merge_patch(doc, patch))
            }
            PatchType::Json => apply_json_patch(doc, patch),
            PatchType::Strategic => strategic_merge(&rt.kind, doc, patch),
            PatchType::Apply => {
                let schema = rt.custom.as_ref().and_then(|c| c.schema.clone());
                let kind = rt.kind.clone();
                let builtin = rt.builtin.is_some();
                let keys = move |path: &[String]| -> Option<Vec<String>> {
                    if builtin {
                        match list_strategy(&kind, path) {
                            ListStrategy::MergeByKey(k) => Some(vec![k.to_string()]),
                            _ => None,
                        }
                    } else {
                        schema_list_keys(schema.as_ref(), path)
                    }
                };
                Ok(apply_merge(doc, patch, &keys))
            }
        };
        // Merge, strategic and apply patches cannot amplify (the result is at most the
        // object plus the body), but together they may still cross the bound.
        let result = result.and_then(|patched| {
            let size = json_size(&patched);
            if size > MAX_PATCHED_BYTES && size > json_size(doc) {
                Err(PatchError::TooLarge(format!(
                    "the patched object would be {size} bytes, larger than {MAX_PATCHED_BYTES} bytes, the most the API server accepts"
                )))
            } else {
                Ok(patched)
            }
        });
        result.map_err(|e| match e {
            PatchError::Malformed(m) => ApiError::bad_request(m),
            PatchError::TooLarge(m) => ApiError::request_entity_too_large(m),
            PatchError::Failed(m) => ApiError::invalid(
                &rt.kind,
                &rt.group,
                meta_str(doc, "name"),
                &[FieldError::rendered("", m, "FieldValueInvalid")],
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types_map_to_patch_types() {
        assert_eq!(
            PatchType::from_content_type("application/merge-patch+json; charset=utf-8"),
            Some(PatchType::Merge)
        );
        assert_eq!(
            PatchType::from_content_type("application/apply-patch+yaml"),
            Some(PatchType::Apply)
        );
        assert_eq!(PatchType::from_content_type("application/json"), None);
    }

    #[test]
    fn list_map_keys_are_found_through_the_schema() {
        let schema = json!({"properties": {"spec": {"properties": {"targets": {
            "type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
            "items": {"type": "object"}}}}}});
        assert_eq!(
            schema_list_keys(Some(&schema), &["spec".into(), "targets".into()]),
            Some(vec!["name".to_string()])
        );
        assert_eq!(schema_list_keys(Some(&schema), &["spec".into()]), None);
    }
}
