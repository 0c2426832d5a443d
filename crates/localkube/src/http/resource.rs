//! Handlers for resource paths: get, list, watch, create, update, patch, delete and
//! deletecollection, with Table and PartialObjectMetadata renderings.

use super::AppState;
use super::negotiate::Format;
use super::request::{Query, ResourcePath};
use super::response;
use crate::error::ApiError;
use crate::resource::{ResourceType, Subresource};
use crate::rest::{
    DeleteOptions, DeleteOutcome, FieldValidation, ListOptions, ListResult, PatchType, Propagation,
    Target, WatchItem, WatchOptions, WriteOptions,
};
use crate::selector::{FieldSelector, LabelSelector};
use crate::table::{self, IncludeObject};
use axum::body::Body;
use axum::http::{HeaderMap, Method, header};
use axum::response::Response;
use bytes::{BufMut, Bytes, BytesMut};
use futures::StreamExt;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tokio_stream::wrappers::ReceiverStream;

/// Request bodies larger than this are refused, as the apiserver refuses them.
const MAX_BODY: usize = crate::limits::MAX_REQUEST_BYTES;

/// The parts of a request a resource handler needs.
pub struct Call {
    pub method: Method,
    pub path: ResourcePath,
    pub query: Query,
    pub headers: HeaderMap,
    pub body: Body,
    pub format: Format,
}

fn label_selector(q: &Query) -> Result<LabelSelector, ApiError> {
    match q.non_empty("labelSelector") {
        Some(s) => LabelSelector::parse(s).map_err(|e| {
            ApiError::bad_request(format!(
                "unable to parse requirement: {}",
                e.trim_start_matches("unable to parse requirement: ")
            ))
        }),
        None => Ok(LabelSelector::default()),
    }
}

fn field_selector(q: &Query) -> Result<FieldSelector, ApiError> {
    match q.non_empty("fieldSelector") {
        Some(s) => FieldSelector::parse(s).map_err(ApiError::bad_request),
        None => Ok(FieldSelector::default()),
    }
}

fn list_options(q: &Query) -> Result<ListOptions, ApiError> {
    Ok(ListOptions {
        label_selector: label_selector(q)?,
        field_selector: field_selector(q)?,
        limit: match q.non_empty("limit") {
            Some(l) => l
                .parse::<i64>()
                .map_err(|_| ApiError::bad_request(format!("limit: Invalid value: {l:?}")))?
                .max(0) as usize,
            None => 0,
        },
        continue_token: q.non_empty("continue").map(str::to_string),
        resource_version: q.non_empty("resourceVersion").map(str::to_string),
        resource_version_match: q.non_empty("resourceVersionMatch").map(str::to_string),
    })
}

fn write_options(q: &Query) -> Result<WriteOptions, ApiError> {
    let dry_run = match q.all("dryRun") {
        [] => false,
        values if values.iter().all(|v| v == "All") => true,
        values => {
            return Err(ApiError::bad_request(format!(
                "dryRun: Unsupported value: {:?}: supported values: \"All\"",
                values.join(",")
            )));
        }
    };
    Ok(WriteOptions {
        dry_run,
        field_validation: FieldValidation::parse(q.get("fieldValidation").unwrap_or_default())?,
        field_manager: q.non_empty("fieldManager").map(str::to_string),
    })
}

async fn read_body(body: Body) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(body, MAX_BODY).await.map_err(|e| {
        ApiError::request_entity_too_large(format!(
            "Request entity too large: limit is {MAX_BODY}: reading the request body: {e}"
        ))
    })
}

/// Decodes a JSON, YAML or Kubernetes protobuf object body; other media types are 415.
pub(crate) fn decode_object(headers: &HeaderMap, body: &[u8]) -> Result<Value, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    let media = content_type.split(';').next().unwrap_or_default().trim();
    match media {
        "application/json" | "" | "*/*" => serde_json::from_slice(body).map_err(|e| {
            ApiError::bad_request(format!(
                "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml: {e}"
            ))
        }),
        "application/vnd.kubernetes.protobuf" => {
            crate::protobuf::decode(body).map_err(|e| match e {
                crate::protobuf::ProtobufError::Unsupported(_)
                | crate::protobuf::ProtobufError::Encoding(_) => {
                    ApiError::unsupported_media_type(format!(
                        "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml: {e}"
                    ))
                }
                _ => ApiError::bad_request(format!("decoding the protobuf request body: {e}")),
            })
        }
        "application/yaml" | "application/x-yaml" => {
            let text = std::str::from_utf8(body)
                .map_err(|_| ApiError::bad_request("the request body is not valid UTF-8"))?;
            serde_saphyr::from_str::<Value>(text)
                .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))
        }
        other => Err(ApiError::unsupported_media_type(format!(
            "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml; got {other}"
        ))),
    }
}

fn target_of(rt: &ResourceType, sub: Option<&str>) -> Result<Target, ApiError> {
    match sub {
        None => Ok(Target::Main),
        Some("status") if rt.has_status() => Ok(Target::Status),
        Some("finalize") if rt.has_subresource(Subresource::Finalize) => Ok(Target::Finalize),
        Some(_) => Err(ApiError::route_not_found()),
    }
}

fn include_object(q: &Query) -> IncludeObject {
    IncludeObject::parse(q.get("includeObject").unwrap_or_default())
}

/// Renders one object in the negotiated format.
fn render_one(rt: &ResourceType, object: &Value, format: Format, q: &Query, rv: &str) -> Value {
    match format {
        Format::Table => table::table(
            rt,
            std::slice::from_ref(object),
            rv,
            None,
            include_object(q),
        ),
        Format::Metadata => table::partial_metadata(object),
        _ => object.clone(),
    }
}

/// Serves a resource request.
pub async fn serve(state: &Arc<AppState>, rt: Arc<ResourceType>, call: Call) -> Response {
    let result = match (call.method.clone(), call.path.name.is_some()) {
        (Method::GET, false) if call.query.flag("watch") => return watch(state, &rt, &call),
        (Method::GET, false) => {
            list(
                state,
                &rt,
                call.path.namespace.clone(),
                call.query,
                call.format,
            )
            .await
        }
        (Method::GET, true) => get(state, &rt, &call),
        (Method::POST, false) => create(state, &rt, call).await,
        (Method::PUT, true) => update(state, &rt, call).await,
        (Method::PATCH, true) => patch(state, &rt, call).await,
        (Method::DELETE, true) => delete(state, &rt, call).await,
        (Method::DELETE, false) => delete_collection(state, &rt, call).await,
        (m, _) => Err(ApiError::method_not_allowed(format!(
            "the server does not allow this method on the requested resource ({m})"
        ))),
    };
    result.unwrap_or_else(|e| response::error(&e))
}

fn namespace(call: &Call) -> Option<&str> {
    call.path.namespace.as_deref()
}

fn get(state: &Arc<AppState>, rt: &Arc<ResourceType>, call: &Call) -> Result<Response, ApiError> {
    let name = call.path.name.as_deref().unwrap_or_default();
    target_of(rt, call.path.subresource.as_deref())?;
    let object = state.api.get(rt, namespace(call), name)?;
    let rv = object
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    Ok(response::json(
        200,
        &render_one(rt, &object, call.format, &call.query, &rv),
    ))
}

async fn list(
    state: &Arc<AppState>,
    rt: &Arc<ResourceType>,
    namespace: Option<String>,
    query: Query,
    format: Format,
) -> Result<Response, ApiError> {
    let opts = list_options(&query)?;
    let result = state.api.list(rt, namespace.as_deref(), &opts).await?;
    Ok(render_list(state, rt, result, format, &query))
}

fn list_metadata(result: &ListResult) -> Value {
    let mut meta = json!({"resourceVersion": result.resource_version.to_string()});
    if let Some(c) = &result.continue_token {
        meta["continue"] = json!(c);
    }
    if let Some(r) = result.remaining {
        meta["remainingItemCount"] = json!(r);
    }
    meta
}

fn render_list(
    state: &Arc<AppState>,
    rt: &ResourceType,
    result: ListResult,
    format: Format,
    q: &Query,
) -> Response {
    match format {
        Format::Table => {
            let objects: Vec<Value> = result
                .items
                .iter()
                .map(|o| state.api.present_stored(rt, o))
                .collect();
            response::json(
                200,
                &table::table(
                    rt,
                    &objects,
                    &result.resource_version.to_string(),
                    result.continue_token.as_deref(),
                    include_object(q),
                ),
            )
        }
        Format::Metadata => {
            let items: Vec<Value> = result
                .items
                .iter()
                .map(|o| table::partial_metadata(&o.value()))
                .collect();
            response::json(
                200,
                &json!({
                    "kind": "PartialObjectMetadataList",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": list_metadata(&result),
                    "items": items,
                }),
            )
        }
        _ => {
            // Fast path: concatenate the stored JSON of every item.
            let head = json!({
                "kind": rt.list_kind,
                "apiVersion": rt.api_version(),
                "metadata": list_metadata(&result),
            })
            .to_string();
            let mut buf = BytesMut::with_capacity(
                head.len() + 16 + result.items.iter().map(|i| i.json.len() + 1).sum::<usize>(),
            );
            buf.put_slice(&head.as_bytes()[..head.len() - 1]);
            buf.put_slice(b",\"items\":[");
            for (i, item) in result.items.iter().enumerate() {
                if i > 0 {
                    buf.put_u8(b',');
                }
                if rt.needs_conversion() {
                    let v = state.api.present_stored(rt, item);
                    buf.put_slice(&serde_json::to_vec(&v).unwrap_or_default());
                } else {
                    buf.put_slice(&item.json);
                }
            }
            buf.put_slice(b"]}");
            response::raw_json(200, buf.freeze())
        }
    }
}

fn watch(state: &Arc<AppState>, rt: &Arc<ResourceType>, call: &Call) -> Response {
    match start_watch(state, rt, call) {
        Ok(r) => r,
        Err(e) => response::error(&e),
    }
}

fn start_watch(
    state: &Arc<AppState>,
    rt: &Arc<ResourceType>,
    call: &Call,
) -> Result<Response, ApiError> {
    let q = &call.query;
    let timeout =
        match q.non_empty("timeoutSeconds") {
            Some(t) => Duration::from_secs(t.parse::<u64>().map_err(|_| {
                ApiError::bad_request(format!("timeoutSeconds: Invalid value: {t:?}"))
            })?),
            None => Duration::from_secs(1800 + rand::random::<u64>() % 1800),
        };
    let send_initial = q.bool_opt("sendInitialEvents");
    if send_initial == Some(true) && q.get("resourceVersionMatch") != Some("NotOlderThan") {
        return Err(ApiError::invalid(
            "ListOptions",
            "meta.k8s.io",
            "",
            &[crate::error::FieldError::forbidden(
                "resourceVersionMatch",
                "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
            )],
        ));
    }
    let opts = WatchOptions {
        label_selector: label_selector(q)?,
        field_selector: field_selector(q)?,
        resource_version: q.non_empty("resourceVersion").map(str::to_string),
        send_initial_events: send_initial,
        allow_bookmarks: q.flag("allowWatchBookmarks"),
        timeout,
        bookmark_interval: state.bookmark_interval,
    };
    let rx = state
        .api
        .watch(rt, namespace(call), opts, state.shutdown.clone())?;
    let format = call.format;
    let include = include_object(q);
    let rt = rt.clone();
    let api = state.api.clone();
    let stream = ReceiverStream::new(rx).map(move |item| {
        let event = match item {
            WatchItem::Event { kind, object } => {
                let obj_json: Value;
                let rendered: Option<Bytes> = match format {
                    Format::Table => {
                        let v = api.present_stored(&rt, &object);
                        let mut t = table::table(&rt, std::slice::from_ref(&v), &object.rv.to_string(), None, include);
                        t["metadata"] = json!({"resourceVersion": object.rv.to_string()});
                        obj_json = t;
                        None
                    }
                    Format::Metadata => {
                        obj_json = table::partial_metadata(&object.value());
                        None
                    }
                    _ if rt.needs_conversion() => {
                        obj_json = api.present_stored(&rt, &object);
                        None
                    }
                    _ => {
                        obj_json = Value::Null;
                        Some(object.json.clone())
                    }
                };
                let mut line = BytesMut::new();
                line.put_slice(format!("{{\"type\":\"{}\",\"object\":", kind.as_str()).as_bytes());
                match rendered {
                    Some(raw) => line.put_slice(&raw),
                    None => line.put_slice(&serde_json::to_vec(&obj_json).unwrap_or_default()),
                }
                line.put_slice(b"}\n");
                return Ok::<Bytes, std::convert::Infallible>(line.freeze());
            }
            WatchItem::Bookmark { rv, initial_events_end } => {
                let mut meta = json!({"resourceVersion": rv.to_string()});
                if initial_events_end {
                    meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
                }
                json!({"type": "BOOKMARK", "object": {"kind": rt.kind, "apiVersion": rt.api_version(), "metadata": meta}})
            }
            WatchItem::Error(e) => json!({"type": "ERROR", "object": e.to_status()}),
        };
        let mut line = serde_json::to_vec(&event).unwrap_or_default();
        line.push(b'\n');
        Ok(Bytes::from(line))
    });
    let mut resp = Response::new(Body::from_stream(stream));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(response::JSON),
    );
    Ok(resp)
}

async fn create(
    state: &Arc<AppState>,
    rt: &Arc<ResourceType>,
    call: Call,
) -> Result<Response, ApiError> {
    if call.path.subresource.is_some() {
        return Err(ApiError::route_not_found());
    }
    let opts = write_options(&call.query)?;
    let body = read_body(call.body).await?;
    let object = decode_object(&call.headers, &body)?;
    let written = state
        .api
        .create(rt, call.path.namespace.as_deref(), object, &opts)?;
    Ok(response::with_warnings(
        response::json(201, &written.object),
        &written.warnings,
    ))
}

async fn update(
    state: &Arc<AppState>,
    rt: &Arc<ResourceType>,
    call: Call,
) -> Result<Response, ApiError> {
    let target = target_of(rt, call.path.subresource.as_deref())?;
    let opts = write_options(&call.query)?;
    let body = read_body(call.body).await?;
    let object = decode_object(&call.headers, &body)?;
    let name = call.path.name.as_deref().unwrap_or_default();
    let written = state.api.update(
        rt,
        call.path.namespace.as_deref(),
        name,
        object,
        target,
        &opts,
    )?;
    Ok(response::with_warnings(
        response::json(200, &written.object),
        &written.warnings,
    ))
}

async fn patch(
    state: &Arc<AppState>,
    rt: &Arc<ResourceType>,
    call: Call,
) -> Result<Response, ApiError> {
    let target = target_of(rt, call.path.subresource.as_deref())?;
    let opts = write_options(&call.query)?;
    let content_type = call
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let patch_type = PatchType::from_content_type(&content_type).ok_or_else(|| {
        ApiError::unsupported_media_type(format!(
            "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json; got {content_type:?}"
        ))
    })?;
    let body = read_body(call.body).await?;
    let name = call.path.name.as_deref().unwrap_or_default();
    let written = state.api.patch(
        rt,
        call.path.namespace.as_deref(),
        name,
        patch_type,
        &body,
        target,
        &opts,
    )?;
    let status = if written.created { 201 } else { 200 };
    Ok(response::with_warnings(
        response::json(status, &written.object),
        &written.warnings,
    ))
}

async fn delete_options(call: Call) -> Result<(DeleteOptions, Query), ApiError> {
    let q = call.query;
    let body = read_body(call.body).await?;
    let mut opts = DeleteOptions {
        dry_run: q.all("dryRun").iter().any(|v| v == "All"),
        ..Default::default()
    };
    if let Some(p) = q.non_empty("propagationPolicy") {
        opts.propagation = Some(Propagation::parse(p)?);
    }
    if let Some(g) = q.non_empty("gracePeriodSeconds") {
        opts.grace_period = Some(g.parse().map_err(|_| {
            ApiError::bad_request(format!("gracePeriodSeconds: Invalid value: {g:?}"))
        })?);
    }
    if let Some(o) = q.non_empty("orphanDependents") {
        opts.orphan_dependents = Some(o == "true");
    }
    if !body.trim_ascii().is_empty() {
        let v = decode_object(&call.headers, &body)?;
        if let Some(p) = v.get("propagationPolicy").and_then(Value::as_str) {
            opts.propagation = Some(Propagation::parse(p)?);
        }
        if let Some(g) = v.get("gracePeriodSeconds").and_then(Value::as_i64) {
            opts.grace_period = Some(g);
        }
        if let Some(o) = v.get("orphanDependents").and_then(Value::as_bool) {
            opts.orphan_dependents = Some(o);
        }
        if let Some(uid) = v.pointer("/preconditions/uid").and_then(Value::as_str) {
            opts.precondition_uid = Some(uid.to_string());
        }
        if let Some(rv) = v
            .pointer("/preconditions/resourceVersion")
            .and_then(Value::as_str)
        {
            opts.precondition_rv = Some(rv.to_string());
        }
        if let Some(d) = v.get("dryRun").and_then(Value::as_array) {
            opts.dry_run = d.iter().any(|x| x == "All");
        }
    }
    Ok((opts, q))
}

async fn delete(
    state: &Arc<AppState>,
    rt: &Arc<ResourceType>,
    call: Call,
) -> Result<Response, ApiError> {
    if call.path.subresource.is_some() {
        return Err(ApiError::method_not_allowed(
            "the server does not allow this method on the requested resource",
        ));
    }
    let ns = call.path.namespace.clone();
    let name = call.path.name.clone().unwrap_or_default();
    let (opts, _) = delete_options(call).await?;
    let accepted = opts.orphan_dependents == Some(false);
    match state.api.delete(rt, ns.as_deref(), &name, &opts)? {
        DeleteOutcome::Pending(object) => {
            Ok(response::json(if accepted { 202 } else { 200 }, &object))
        }
        DeleteOutcome::Gone(object) => {
            if rt.returns_deleted_object() {
                return Ok(response::json(200, &object));
            }
            let uid = object
                .pointer("/metadata/uid")
                .cloned()
                .unwrap_or(Value::Null);
            let mut details = json!({"name": name, "kind": rt.plural, "uid": uid});
            if !rt.group.is_empty() {
                details["group"] = json!(rt.group);
            }
            Ok(response::json(
                200,
                &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details}),
            ))
        }
    }
}

async fn delete_collection(
    state: &Arc<AppState>,
    rt: &Arc<ResourceType>,
    call: Call,
) -> Result<Response, ApiError> {
    let ns = call.path.namespace.clone();
    let list = list_options(&call.query)?;
    let (opts, _) = delete_options(call).await?;
    let items = state
        .api
        .delete_collection(rt, ns.as_deref(), &list, &opts)
        .await?;
    Ok(response::json(
        200,
        &json!({
            "kind": rt.list_kind,
            "apiVersion": rt.api_version(),
            "metadata": {"resourceVersion": state.api.store().current_rv().to_string()},
            "items": items,
        }),
    ))
}
