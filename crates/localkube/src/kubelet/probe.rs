//! Probes: exec (in the container's sandbox with its environment), tcpSocket and httpGet
//! against the host's loopback (pods share the host network).

use super::process::{ProcessSpec, spawn_exec};
use serde_json::Value;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The outcome of one probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeResult {
    Success,
    Failure(String),
}

fn port(v: &Value) -> Option<u16> {
    v.as_u64()
        .and_then(|p| u16::try_from(p).ok())
        .or_else(|| v.as_str().and_then(|p| p.parse().ok()))
}

/// Runs `probe` once for a container run as `spec`.
pub async fn probe(probe: &Value, spec: &ProcessSpec) -> ProbeResult {
    let timeout = Duration::from_secs(
        probe
            .get("timeoutSeconds")
            .and_then(Value::as_u64)
            .unwrap_or(1)
            .max(1),
    );
    if let Some(exec) = probe.get("exec") {
        let argv: Vec<String> = exec
            .get("command")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect();
        let spec = ProcessSpec {
            argv,
            ..spec.clone()
        };
        let mut child = match spawn_exec(&spec, false) {
            Ok(c) => c,
            Err(e) => return ProbeResult::Failure(format!("starting the probe: {e}")),
        };
        return match tokio::time::timeout(timeout, child.wait()).await {
            Ok(Ok(s)) if s.success() => ProbeResult::Success,
            Ok(Ok(s)) => ProbeResult::Failure(format!("command exited with {s}")),
            Ok(Err(e)) => ProbeResult::Failure(e.to_string()),
            Err(_) => {
                let _ = child.kill().await;
                ProbeResult::Failure(format!("command timed out after {timeout:?}"))
            }
        };
    }
    if let Some(tcp) = probe.get("tcpSocket") {
        let Some(p) = tcp.get("port").and_then(port) else {
            return ProbeResult::Failure("tcpSocket probe without a numeric port".into());
        };
        return match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(("127.0.0.1", p)))
            .await
        {
            Ok(Ok(_)) => ProbeResult::Success,
            Ok(Err(e)) => ProbeResult::Failure(e.to_string()),
            Err(_) => ProbeResult::Failure("timed out".into()),
        };
    }
    if let Some(http) = probe.get("httpGet") {
        let Some(p) = http.get("port").and_then(port) else {
            return ProbeResult::Failure("httpGet probe without a numeric port".into());
        };
        let path = http.get("path").and_then(Value::as_str).unwrap_or("/");
        let attempt = async {
            let mut conn = tokio::net::TcpStream::connect(("127.0.0.1", p)).await?;
            conn.write_all(
                format!(
                    "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nUser-Agent: kube-probe/1.32\r\n\r\n"
                )
                .as_bytes(),
            )
            .await?;
            let mut head = vec![0u8; 64];
            let n = conn.read(&mut head).await?;
            Ok::<String, std::io::Error>(String::from_utf8_lossy(&head[..n]).into_owned())
        };
        return match tokio::time::timeout(timeout, attempt).await {
            Ok(Ok(head)) => {
                let code: u16 = head
                    .split_whitespace()
                    .nth(1)
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(0);
                if (200..400).contains(&code) {
                    ProbeResult::Success
                } else {
                    ProbeResult::Failure(format!("HTTP probe failed with statuscode: {code}"))
                }
            }
            Ok(Err(e)) => ProbeResult::Failure(e.to_string()),
            Err(_) => ProbeResult::Failure("timed out".into()),
        };
    }
    ProbeResult::Success
}
