//! One event store, two APIs: conversion between core/v1 and events.k8s.io/v1 Events.
//!
//! The store keeps the core/v1 shape (what `kubectl describe` reads); events.k8s.io/v1
//! objects (what kube-runtime's `Recorder` writes) are converted on the way in and out.

use serde_json::{Map, Value, json};

const SHARED: &[&str] = &[
    "metadata",
    "eventTime",
    "series",
    "action",
    "reason",
    "type",
    "related",
    "reportingInstance",
];

/// (events.k8s.io/v1 field, core/v1 field)
const RENAMED: &[(&str, &str)] = &[
    ("regarding", "involvedObject"),
    ("note", "message"),
    ("reportingController", "reportingComponent"),
    ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedCount", "count"),
];

fn present(v: Option<&Value>) -> Option<&Value> {
    v.filter(|v| !v.is_null())
}

/// An events.k8s.io/v1 Event as core/v1 (for storage).
pub fn v1_to_core(v1: &Value) -> Value {
    let mut out = Map::new();
    out.insert("kind".into(), json!("Event"));
    out.insert("apiVersion".into(), json!("v1"));
    for f in SHARED {
        if let Some(x) = present(v1.get(*f)) {
            out.insert(f.to_string(), x.clone());
        }
    }
    for (new, old) in RENAMED {
        if let Some(x) = present(v1.get(*new)) {
            out.insert(old.to_string(), x.clone());
        }
    }
    if !out.contains_key("source") {
        let mut source = Map::new();
        if let Some(c) = present(v1.get("reportingController")) {
            source.insert("component".into(), c.clone());
        }
        if let Some(h) = present(v1.get("reportingInstance")) {
            source.insert("host".into(), h.clone());
        }
        out.insert("source".into(), Value::Object(source));
    }
    if !out.contains_key("involvedObject") {
        out.insert("involvedObject".into(), json!({}));
    }
    Value::Object(out)
}

/// A stored core/v1 Event as events.k8s.io/v1.
pub fn core_to_v1(core: &Value) -> Value {
    let mut out = Map::new();
    out.insert("kind".into(), json!("Event"));
    out.insert("apiVersion".into(), json!("events.k8s.io/v1"));
    for f in SHARED {
        if let Some(x) = present(core.get(*f)) {
            out.insert(f.to_string(), x.clone());
        }
    }
    for (new, old) in RENAMED {
        if let Some(x) = present(core.get(*old)) {
            out.insert(new.to_string(), x.clone());
        }
    }
    if !out.contains_key("reportingController")
        && let Some(c) = core.pointer("/source/component").filter(|c| !c.is_null())
    {
        out.insert("reportingController".into(), c.clone());
    }
    if !out.contains_key("eventTime") {
        out.insert("eventTime".into(), Value::Null);
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recorder_event_round_trips_through_the_core_shape() {
        let v1 = json!({
            "apiVersion": "events.k8s.io/v1", "kind": "Event",
            "metadata": {"name": "e1", "namespace": "default"},
            "eventTime": "2026-11-22T01:05:36.123456Z",
            "regarding": {"kind": "Pod", "name": "p1", "namespace": "default", "uid": "u1"},
            "note": "pulled", "reason": "Pulled", "type": "Normal", "action": "Pull",
            "reportingController": "cairn", "reportingInstance": "cairn-0",
            "series": {"count": 2, "lastObservedTime": "2026-11-22T01:06:00.000000Z"}
        });
        let core = v1_to_core(&v1);
        assert_eq!(core["involvedObject"]["name"], "p1");
        assert_eq!(core["message"], "pulled");
        assert_eq!(core["source"]["component"], "cairn");
        assert_eq!(core["reportingComponent"], "cairn");
        let back = core_to_v1(&core);
        for key in [
            "regarding",
            "note",
            "reason",
            "type",
            "action",
            "series",
            "eventTime",
            "reportingController",
            "reportingInstance",
        ] {
            assert_eq!(back[key], v1[key], "{key}");
        }
    }

    #[test]
    fn a_kubectl_style_core_event_gets_a_reporting_controller_from_its_source() {
        let core = json!({"metadata": {"name": "e"}, "involvedObject": {"kind": "Pod"},
                          "source": {"component": "kubelet"}, "message": "m"});
        let v1 = core_to_v1(&core);
        assert_eq!(v1["reportingController"], "kubelet");
        assert_eq!(v1["deprecatedSource"]["component"], "kubelet");
        assert_eq!(v1["note"], "m");
    }
}
