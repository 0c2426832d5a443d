//! Get and list: resourceVersion semantics, selectors and paging with continue tokens.

use super::Api;
use super::index::event_v1_field_to_core;
use crate::error::ApiError;
use crate::resource::{Builtin, ResourceType};
use crate::selector::{FieldSelector, LabelSelector};
use crate::store::StoredObject;
use base64::Engine;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

/// List (and watch) query options.
#[derive(Debug, Clone, Default)]
pub struct ListOptions {
    pub label_selector: LabelSelector,
    pub field_selector: FieldSelector,
    /// 0 means no limit.
    pub limit: usize,
    pub continue_token: Option<String>,
    pub resource_version: Option<String>,
    pub resource_version_match: Option<String>,
}

/// A list result: stored objects (the caller renders them) plus list metadata.
#[derive(Debug)]
pub struct ListResult {
    pub resource_version: u64,
    pub items: Vec<Arc<StoredObject>>,
    pub continue_token: Option<String>,
    pub remaining: Option<usize>,
}

/// How long a read waits for a resourceVersion the store has not reached yet.
const TOO_LARGE_WAIT: Duration = Duration::from_secs(3);

fn encode_continue(rv: u64, namespace: &str, name: &str) -> String {
    let token = json!({"rv": rv, "ns": namespace, "name": name});
    base64::engine::general_purpose::STANDARD.encode(token.to_string())
}

fn decode_continue(token: &str) -> Result<(u64, String, String), ApiError> {
    let invalid = || {
        ApiError::bad_request(
            "continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)",
        )
    };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(token)
        .map_err(|_| invalid())?;
    let v: Value = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
    let rv = v.get("rv").and_then(Value::as_u64).ok_or_else(invalid)?;
    let ns = v.get("ns").and_then(Value::as_str).ok_or_else(invalid)?;
    let name = v.get("name").and_then(Value::as_str).ok_or_else(invalid)?;
    Ok((rv, ns.to_string(), name.to_string()))
}

/// Parses a resourceVersion parameter.
pub(crate) fn parse_rv(rv: &str) -> Result<u64, ApiError> {
    rv.parse::<u64>().map_err(|_| {
        ApiError::bad_request(format!(
            "resourceVersion: Invalid value: {rv:?}: must be a valid resource version"
        ))
    })
}

/// The field selector in the store's terms, after checking its fields are supported.
pub(crate) fn effective_field_selector(
    rt: &ResourceType,
    selector: &FieldSelector,
) -> Result<FieldSelector, ApiError> {
    if let Some(bad) = selector.unsupported_field(rt.field_labels()) {
        return Err(ApiError::bad_request(format!(
            "field label not supported: {bad}"
        )));
    }
    if rt.is(Builtin::EventV1) {
        return Ok(selector.map_fields(event_v1_field_to_core));
    }
    Ok(selector.clone())
}

/// Whether a stored object passes both selectors.
pub(crate) fn matches(obj: &StoredObject, labels: &LabelSelector, fields: &FieldSelector) -> bool {
    labels.matches_pairs(&obj.index.labels) && fields.matches_pairs(&obj.index.fields)
}

impl Api {
    /// Reads one object as `rt`'s version shows it.
    pub fn get(
        &self,
        rt: &ResourceType,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Value, ApiError> {
        let ns = if rt.namespaced {
            namespace.unwrap_or_default()
        } else {
            ""
        };
        let stored = self
            .store()
            .get(&rt.storage, ns, name)
            .ok_or_else(|| ApiError::not_found(&rt.group, &rt.plural, name))?;
        Ok(self.present_stored(rt, &stored))
    }

    /// Reads one stored object.
    pub fn get_stored(
        &self,
        rt: &ResourceType,
        namespace: &str,
        name: &str,
    ) -> Option<Arc<StoredObject>> {
        self.store().get(&rt.storage, namespace, name)
    }

    /// Lists objects; `namespace` `None` lists every namespace.
    pub async fn list(
        &self,
        rt: &ResourceType,
        namespace: Option<&str>,
        opts: &ListOptions,
    ) -> Result<ListResult, ApiError> {
        let fields = effective_field_selector(rt, &opts.field_selector)?;
        let namespace = if rt.namespaced { namespace } else { None };
        let (start_rv, after) = match opts.continue_token.as_deref().filter(|t| !t.is_empty()) {
            Some(token) => {
                let (rv, ns, name) = decode_continue(token)?;
                (Some(rv), Some((ns, name)))
            }
            None => {
                self.check_list_rv(opts).await?;
                (None, None)
            }
        };
        let page = self.store().list(
            &rt.storage,
            namespace,
            after.as_ref().map(|(a, b)| (a.as_str(), b.as_str())),
            opts.limit,
            |o| matches(o, &opts.label_selector, &fields),
        );
        let rv = start_rv.unwrap_or(page.rv);
        Ok(ListResult {
            resource_version: rv,
            continue_token: page
                .next
                .as_ref()
                .map(|(ns, name)| encode_continue(rv, ns, name)),
            remaining: page.next.as_ref().map(|_| page.remaining),
            items: page.items,
        })
    }

    /// Applies the list `resourceVersion`/`resourceVersionMatch` rules before reading.
    async fn check_list_rv(&self, opts: &ListOptions) -> Result<(), ApiError> {
        let Some(rv) = opts.resource_version.as_deref().filter(|r| !r.is_empty()) else {
            if opts.resource_version_match.is_some() {
                return Err(ApiError::bad_request(
                    "resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided",
                ));
            }
            return Ok(());
        };
        let wanted = parse_rv(rv)?;
        let current = self.store().current_rv();
        match opts.resource_version_match.as_deref() {
            Some("Exact") => {
                if wanted == 0 {
                    return Err(ApiError::bad_request(
                        "resourceVersionMatch: Forbidden: resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\"",
                    ));
                }
                if wanted < current {
                    return Err(ApiError::too_old(wanted, current));
                }
            }
            None | Some("NotOlderThan") | Some("") => {}
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "resourceVersionMatch: Unsupported value: {other:?}: supported values: \"Exact\", \"NotOlderThan\""
                )));
            }
        }
        if wanted > current && !self.store().wait_for_rv(wanted, TOO_LARGE_WAIT).await {
            return Err(ApiError::timeout(format!(
                "Too large resource version: {wanted}, current: {}",
                self.store().current_rv()
            ))
            .with_details(json!({"causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}], "retryAfterSeconds": 1})));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continue_tokens_round_trip_and_garbage_is_rejected() {
        let t = encode_continue(42, "ns", "name");
        assert_eq!(
            decode_continue(&t).unwrap(),
            (42, "ns".into(), "name".into())
        );
        assert_eq!(decode_continue("garbage").unwrap_err().code, 400);
    }
}
