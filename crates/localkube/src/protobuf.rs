//! Decoding of Kubernetes protobuf request bodies into JSON, for the kinds kubectl's typed
//! clients create imperatively (`kubectl create configmap|secret|namespace|serviceaccount`
//! send `application/vnd.kubernetes.protobuf`).
//!
//! The envelope is `k8s\0` + `runtime.Unknown{typeMeta, raw}`; `raw` is the object message.
//! Field numbers come from upstream's `generated.proto` (as the `k8s-pb` crate has them). A
//! kind without a table here is refused with 415, which clients report verbatim.

use base64::Engine;
use serde_json::{Map, Value, json};

/// The magic prefix of Kubernetes protobuf payloads.
const MAGIC: &[u8] = b"k8s\0";

#[derive(Clone, Copy)]
enum Field {
    Str,
    Bool,
    Int,
    Time,
    Msg(&'static [(u32, &'static str, Field)]),
    MapStrStr,
    MapStrBytes,
    Repeated(&'static Field),
}

const OWNER_REFERENCE: &[(u32, &str, Field)] = &[
    (5, "apiVersion", Field::Str),
    (1, "kind", Field::Str),
    (3, "name", Field::Str),
    (4, "uid", Field::Str),
    (6, "controller", Field::Bool),
    (7, "blockOwnerDeletion", Field::Bool),
];

const OBJECT_META: &[(u32, &str, Field)] = &[
    (1, "name", Field::Str),
    (2, "generateName", Field::Str),
    (3, "namespace", Field::Str),
    (5, "uid", Field::Str),
    (6, "resourceVersion", Field::Str),
    (7, "generation", Field::Int),
    (8, "creationTimestamp", Field::Time),
    (9, "deletionTimestamp", Field::Time),
    (10, "deletionGracePeriodSeconds", Field::Int),
    (11, "labels", Field::MapStrStr),
    (12, "annotations", Field::MapStrStr),
    (
        13,
        "ownerReferences",
        Field::Repeated(&Field::Msg(OWNER_REFERENCE)),
    ),
    (14, "finalizers", Field::Repeated(&Field::Str)),
];

const OBJECT_REFERENCE: &[(u32, &str, Field)] = &[
    (1, "kind", Field::Str),
    (2, "namespace", Field::Str),
    (3, "name", Field::Str),
    (4, "uid", Field::Str),
    (5, "apiVersion", Field::Str),
    (6, "resourceVersion", Field::Str),
    (7, "fieldPath", Field::Str),
];

const LOCAL_OBJECT_REFERENCE: &[(u32, &str, Field)] = &[(1, "name", Field::Str)];

const CONFIG_MAP: &[(u32, &str, Field)] = &[
    (1, "metadata", Field::Msg(OBJECT_META)),
    (2, "data", Field::MapStrStr),
    (3, "binaryData", Field::MapStrBytes),
    (4, "immutable", Field::Bool),
];

const SECRET: &[(u32, &str, Field)] = &[
    (1, "metadata", Field::Msg(OBJECT_META)),
    (2, "data", Field::MapStrBytes),
    (3, "type", Field::Str),
    (4, "stringData", Field::MapStrStr),
    (5, "immutable", Field::Bool),
];

const NAMESPACE: &[(u32, &str, Field)] = &[
    (1, "metadata", Field::Msg(OBJECT_META)),
    (
        2,
        "spec",
        Field::Msg(&[(1, "finalizers", Field::Repeated(&Field::Str))]),
    ),
];

const SERVICE_ACCOUNT: &[(u32, &str, Field)] = &[
    (1, "metadata", Field::Msg(OBJECT_META)),
    (2, "secrets", Field::Repeated(&Field::Msg(OBJECT_REFERENCE))),
    (
        3,
        "imagePullSecrets",
        Field::Repeated(&Field::Msg(LOCAL_OBJECT_REFERENCE)),
    ),
    (4, "automountServiceAccountToken", Field::Bool),
];

fn schema_for(api_version: &str, kind: &str) -> Option<&'static [(u32, &'static str, Field)]> {
    match (api_version, kind) {
        ("v1", "ConfigMap") => Some(CONFIG_MAP),
        ("v1", "Secret") => Some(SECRET),
        ("v1", "Namespace") => Some(NAMESPACE),
        ("v1", "ServiceAccount") => Some(SERVICE_ACCOUNT),
        _ => None,
    }
}

/// Why a protobuf body could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtobufError {
    #[error("the body is not a Kubernetes protobuf payload (missing the k8s magic prefix)")]
    NoMagic,
    #[error("the protobuf payload is truncated or malformed")]
    Malformed,
    #[error("protobuf request bodies are not supported for {0}; send application/json")]
    Unsupported(String),
}

struct Reader<'a> {
    buf: &'a [u8],
}

enum Wire<'a> {
    Varint(u64),
    Len(&'a [u8]),
    Fixed,
}

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Result<u64, ProtobufError> {
        let mut out = 0u64;
        for shift in (0..64).step_by(7) {
            let (&b, rest) = self.buf.split_first().ok_or(ProtobufError::Malformed)?;
            self.buf = rest;
            out |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(out);
            }
        }
        Err(ProtobufError::Malformed)
    }

    fn next(&mut self) -> Result<Option<(u32, Wire<'a>)>, ProtobufError> {
        if self.buf.is_empty() {
            return Ok(None);
        }
        let key = self.varint()?;
        let tag = u32::try_from(key >> 3).map_err(|_| ProtobufError::Malformed)?;
        let wire = match key & 7 {
            0 => Wire::Varint(self.varint()?),
            2 => {
                let len = usize::try_from(self.varint()?).map_err(|_| ProtobufError::Malformed)?;
                if len > self.buf.len() {
                    return Err(ProtobufError::Malformed);
                }
                let (data, rest) = self.buf.split_at(len);
                self.buf = rest;
                Wire::Len(data)
            }
            1 | 5 => {
                let n = if key & 7 == 1 { 8 } else { 4 };
                if n > self.buf.len() {
                    return Err(ProtobufError::Malformed);
                }
                self.buf = &self.buf[n..];
                Wire::Fixed
            }
            _ => return Err(ProtobufError::Malformed),
        };
        Ok(Some((tag, wire)))
    }
}

fn utf8(b: &[u8]) -> Result<String, ProtobufError> {
    String::from_utf8(b.to_vec()).map_err(|_| ProtobufError::Malformed)
}

fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

fn map_entry(b: &[u8], bytes_value: bool) -> Result<(String, Value), ProtobufError> {
    let mut r = Reader { buf: b };
    let mut key = String::new();
    let mut value = Value::String(String::new());
    while let Some((tag, wire)) = r.next()? {
        if let Wire::Len(d) = wire {
            match tag {
                1 => key = utf8(d)?,
                2 => value = Value::String(if bytes_value { b64(d) } else { utf8(d)? }),
                _ => {}
            }
        }
    }
    Ok((key, value))
}

fn time(b: &[u8]) -> Result<Value, ProtobufError> {
    let mut r = Reader { buf: b };
    let mut seconds = 0i64;
    while let Some((tag, wire)) = r.next()? {
        if let (1, Wire::Varint(v)) = (tag, wire) {
            seconds = v as i64;
        }
    }
    let ts = jiff::Timestamp::from_second(seconds).map_err(|_| ProtobufError::Malformed)?;
    Ok(Value::String(crate::time::format_time(ts)))
}

fn scalar(field: Field, wire: Wire<'_>) -> Result<Option<Value>, ProtobufError> {
    Ok(match (field, wire) {
        (Field::Str, Wire::Len(d)) => Some(Value::String(utf8(d)?)),
        (Field::Bool, Wire::Varint(v)) => Some(Value::Bool(v != 0)),
        (Field::Int, Wire::Varint(v)) => Some(json!(v as i64)),
        (Field::Time, Wire::Len(d)) => Some(time(d)?),
        (Field::Msg(schema), Wire::Len(d)) => Some(message(d, schema)?),
        _ => None,
    })
}

fn message(b: &[u8], schema: &[(u32, &str, Field)]) -> Result<Value, ProtobufError> {
    let mut r = Reader { buf: b };
    let mut out = Map::new();
    while let Some((tag, wire)) = r.next()? {
        let Some((_, name, field)) = schema.iter().find(|(t, _, _)| *t == tag) else {
            continue;
        };
        match field {
            Field::MapStrStr | Field::MapStrBytes => {
                if let Wire::Len(d) = wire {
                    let (k, v) = map_entry(d, matches!(field, Field::MapStrBytes))?;
                    let entry = out.entry(name.to_string()).or_insert_with(|| json!({}));
                    if let Some(m) = entry.as_object_mut() {
                        m.insert(k, v);
                    }
                }
            }
            Field::Repeated(inner) => {
                if let Some(v) = scalar(**inner, wire)? {
                    let entry = out.entry(name.to_string()).or_insert_with(|| json!([]));
                    if let Some(a) = entry.as_array_mut() {
                        a.push(v);
                    }
                }
            }
            other => {
                if let Some(v) = scalar(*other, wire)? {
                    out.insert(name.to_string(), v);
                }
            }
        }
    }
    Ok(Value::Object(out))
}

/// Decodes a `k8s\0`-prefixed protobuf body into the JSON object it encodes.
pub fn decode(body: &[u8]) -> Result<Value, ProtobufError> {
    let rest = body.strip_prefix(MAGIC).ok_or(ProtobufError::NoMagic)?;
    let mut r = Reader { buf: rest };
    let mut api_version = String::new();
    let mut kind = String::new();
    let mut raw: &[u8] = &[];
    while let Some((tag, wire)) = r.next()? {
        match (tag, wire) {
            (1, Wire::Len(tm)) => {
                let mut t = Reader { buf: tm };
                while let Some((tag, wire)) = t.next()? {
                    match (tag, wire) {
                        (1, Wire::Len(d)) => api_version = utf8(d)?,
                        (2, Wire::Len(d)) => kind = utf8(d)?,
                        _ => {}
                    }
                }
            }
            (2, Wire::Len(d)) => raw = d,
            _ => {}
        }
    }
    let schema = schema_for(&api_version, &kind)
        .ok_or_else(|| ProtobufError::Unsupported(format!("{api_version}, Kind={kind}")))?;
    let mut object = message(raw, schema)?;
    object["apiVersion"] = json!(api_version);
    object["kind"] = json!(kind);
    Ok(object)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn varint(mut v: u64, out: &mut Vec<u8>) {
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(b);
                return;
            }
            out.push(b | 0x80);
        }
    }

    fn len_field(tag: u32, data: &[u8], out: &mut Vec<u8>) {
        varint(u64::from(tag) << 3 | 2, out);
        varint(data.len() as u64, out);
        out.extend_from_slice(data);
    }

    fn envelope(api_version: &str, kind: &str, raw: &[u8]) -> Vec<u8> {
        let mut tm = Vec::new();
        len_field(1, api_version.as_bytes(), &mut tm);
        len_field(2, kind.as_bytes(), &mut tm);
        let mut unknown = Vec::new();
        len_field(1, &tm, &mut unknown);
        len_field(2, raw, &mut unknown);
        let mut out = MAGIC.to_vec();
        out.extend(unknown);
        out
    }

    #[test]
    fn a_configmap_decodes_with_metadata_data_and_labels() {
        let mut meta = Vec::new();
        len_field(1, b"c1", &mut meta);
        let mut label = Vec::new();
        len_field(1, b"app", &mut label);
        len_field(2, b"x", &mut label);
        len_field(11, &label, &mut meta);
        let mut entry = Vec::new();
        len_field(1, b"a", &mut entry);
        len_field(2, b"1", &mut entry);
        let mut cm = Vec::new();
        len_field(1, &meta, &mut cm);
        len_field(2, &entry, &mut cm);
        varint(4 << 3, &mut cm);
        varint(1, &mut cm);
        let v = decode(&envelope("v1", "ConfigMap", &cm)).unwrap();
        assert_eq!(
            v,
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c1", "labels": {"app": "x"}},
                   "data": {"a": "1"}, "immutable": true})
        );
    }

    #[test]
    fn secret_bytes_become_base64() {
        let mut entry = Vec::new();
        len_field(1, b"k", &mut entry);
        len_field(2, b"bee", &mut entry);
        let mut s = Vec::new();
        len_field(2, &entry, &mut s);
        len_field(3, b"Opaque", &mut s);
        let v = decode(&envelope("v1", "Secret", &s)).unwrap();
        assert_eq!(v["data"]["k"], "YmVl");
        assert_eq!(v["type"], "Opaque");
    }

    #[test]
    fn unknown_kinds_and_garbage_are_refused() {
        assert!(matches!(
            decode(&envelope("batch/v1", "Job", &[])),
            Err(ProtobufError::Unsupported(_))
        ));
        assert_eq!(decode(b"nope"), Err(ProtobufError::NoMagic));
        assert_eq!(decode(b"k8s\0\x0a\xff"), Err(ProtobufError::Malformed));
    }
}
