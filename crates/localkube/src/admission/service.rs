//! Services: type, affinity, port and cluster IP defaults (no proxying; storage only).

use super::default_at;
use serde_json::{Value, json};

fn defaults(svc: &mut Value) {
    default_at(svc, &["spec", "type"], json!("ClusterIP"));
    default_at(svc, &["spec", "sessionAffinity"], json!("None"));
    default_at(svc, &["spec", "internalTrafficPolicy"], json!("Cluster"));
    if let Some(ports) = svc.pointer_mut("/spec/ports").and_then(Value::as_array_mut) {
        for p in ports {
            default_at(p, &["protocol"], json!("TCP"));
            let port = p.get("port").cloned().unwrap_or(Value::Null);
            default_at(p, &["targetPort"], port);
        }
    }
    default_at(svc, &["status", "loadBalancer"], json!({}));
}

pub fn on_create(svc: &mut Value) {
    defaults(svc);
    let headless = svc.pointer("/spec/clusterIP").and_then(Value::as_str) == Some("None");
    if !headless
        && svc
            .pointer("/spec/clusterIP")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
    {
        let n: u32 = rand::random::<u32>() % (1 << 20);
        let ip = format!(
            "10.{}.{}.{}",
            96 + (n >> 16),
            (n >> 8) & 0xff,
            (n & 0xff).max(1)
        );
        svc["spec"]["clusterIP"] = json!(ip);
    }
    let ip = svc
        .pointer("/spec/clusterIP")
        .cloned()
        .unwrap_or(Value::Null);
    default_at(svc, &["spec", "clusterIPs"], json!([ip]));
    default_at(svc, &["spec", "ipFamilies"], json!(["IPv4"]));
    default_at(svc, &["spec", "ipFamilyPolicy"], json!("SingleStack"));
}

/// The cluster IP is allocated once and kept.
pub fn on_update(new: &mut Value, old: &Value) {
    defaults(new);
    for f in ["clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"] {
        if let Some(v) = old.pointer(&format!("/spec/{f}")) {
            new["spec"][f] = v.clone();
        }
    }
}
