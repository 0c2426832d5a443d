//! `pods/log` (plain text, chunked, ending when the container exits when following) and
//! `pods/exec` over WebSocket `v5.channel.k8s.io` / `v4.channel.k8s.io`: channel 0 stdin,
//! 1 stdout, 2 stderr, 3 a final `metav1.Status` carrying the exit code, 255 stdin close (v5).

use super::AppState;
use super::request::Query;
use crate::error::ApiError;
use crate::kubelet::logs::{self, LogOptions};
use crate::kubelet::process::{ProcessSpec, spawn_exec};
use crate::time::parse;
use axum::body::Body;
use axum::extract::FromRequestParts;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::http::{HeaderValue, header, request::Parts};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

fn s<'a>(v: &'a Value, p: &str) -> &'a str {
    v.pointer(p).and_then(Value::as_str).unwrap_or_default()
}

/// The container a request names, or the pod's default one.
fn container_name(pod: &Value, q: &Query) -> Result<String, ApiError> {
    let names: Vec<&str> = ["/spec/containers", "/spec/initContainers"]
        .iter()
        .flat_map(|p| {
            pod.pointer(p)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
        })
        .map(|c| s(c, "/name"))
        .collect();
    let pod_name = s(pod, "/metadata/name");
    let requested = q.non_empty("container").map(str::to_string).or_else(|| {
        pod.pointer("/metadata/annotations/kubectl.kubernetes.io~1default-container")
            .and_then(Value::as_str)
            .map(str::to_string)
    });
    match requested {
        Some(c) if names.contains(&c.as_str()) => Ok(c),
        Some(c) => Err(ApiError::bad_request(format!(
            "container {c} is not valid for pod {pod_name}"
        ))),
        None => {
            let main: Vec<&str> = pod
                .pointer("/spec/containers")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|c| s(c, "/name"))
                .collect();
            match main.as_slice() {
                [one] => Ok(one.to_string()),
                _ => Err(ApiError::bad_request(format!(
                    "a container name must be specified for pod {pod_name}, choose one of: [{}]",
                    main.join(" ")
                ))),
            }
        }
    }
}

fn waiting_reason(pod: &Value, container: &str) -> String {
    ["/status/containerStatuses", "/status/initContainerStatuses"]
        .iter()
        .flat_map(|p| {
            pod.pointer(p)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
        })
        .find(|c| s(c, "/name") == container)
        .map(|c| s(c, "/state/waiting/reason").to_string())
        .filter(|r| !r.is_empty())
        .unwrap_or_else(|| "ContainerCreating".to_string())
}

/// `GET .../pods/{name}/log`.
pub fn log(
    state: &Arc<AppState>,
    namespace: &str,
    name: &str,
    q: &Query,
) -> Result<Response, ApiError> {
    let rt = state.api.resource("", "v1", "pods")?;
    let pod = state.api.get(&rt, Some(namespace), name)?;
    let container = container_name(&pod, q)?;
    let Some(kubelet) = state.kubelet.as_ref() else {
        return Err(ApiError::bad_request(format!(
            "container {container:?} in pod {name:?} is waiting to start: this localkube runs no kubelet"
        )));
    };
    let dir = kubelet
        .pod_dir(s(&pod, "/metadata/uid"))
        .join("logs")
        .join(&container);
    let runs = logs::runs(&dir);
    let previous = q.flag("previous");
    let path = if previous {
        match runs.len() {
            n if n >= 2 => runs[n - 2].1.clone(),
            _ => {
                return Err(ApiError::bad_request(format!(
                    "previous terminated container {container:?} in pod {name:?} not found"
                )));
            }
        }
    } else {
        match runs.last() {
            Some((_, p)) => p.clone(),
            None => {
                return Err(ApiError::bad_request(format!(
                    "container {container:?} in pod {name:?} is waiting to start: {}",
                    waiting_reason(&pod, &container)
                )));
            }
        }
    };
    let num = |k: &str| -> Result<Option<i64>, ApiError> {
        q.non_empty(k)
            .map(|v| {
                v.parse::<i64>()
                    .map_err(|_| ApiError::bad_request(format!("{k}: Invalid value: {v:?}")))
            })
            .transpose()
    };
    let since = match (num("sinceSeconds")?, q.non_empty("sinceTime")) {
        (Some(secs), _) => jiff::Timestamp::now()
            .checked_sub(jiff::SignedDuration::from_secs(secs))
            .ok(),
        (None, Some(t)) => Some(
            parse(t)
                .ok_or_else(|| ApiError::bad_request(format!("sinceTime: Invalid value: {t:?}")))?,
        ),
        (None, None) => None,
    };
    let opts = LogOptions {
        follow: q.flag("follow") && !previous,
        previous,
        timestamps: q.flag("timestamps"),
        tail_lines: num("tailLines")?.map(|n| n.max(0) as usize),
        since,
        limit_bytes: num("limitBytes")?.map(|n| n.max(0) as usize),
    };
    let rx = logs::stream(path, opts);
    let body =
        Body::from_stream(ReceiverStream::new(rx).map(Ok::<Bytes, std::convert::Infallible>));
    let mut resp = Response::new(body);
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    Ok(resp)
}

fn exit_status(code: i32, command: &[String]) -> Value {
    if code == 0 {
        return json!({"metadata": {}, "status": "Success"});
    }
    json!({
        "metadata": {},
        "status": "Failure",
        "message": format!("command terminated with non-zero exit code: error executing command [{}], exit code {code}", command.join(" ")),
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
    })
}

/// `GET|POST .../pods/{name}/exec` with a WebSocket upgrade.
pub async fn exec(
    state: &Arc<AppState>,
    namespace: &str,
    name: &str,
    q: &Query,
    mut parts: Parts,
) -> Result<Response, ApiError> {
    let rt = state.api.resource("", "v1", "pods")?;
    let pod = state.api.get(&rt, Some(namespace), name)?;
    let container = container_name(&pod, q)?;
    let command: Vec<String> = q.all("command").to_vec();
    if command.is_empty() {
        return Err(ApiError::bad_request("you must specify at least 1 command"));
    }
    let template = state
        .kubelet
        .as_ref()
        .and_then(|k| k.template(namespace, name, &container))
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "unable to upgrade connection: container not found ({container:?})"
            ))
        })?;
    let upgrade = WebSocketUpgrade::from_request_parts(&mut parts, &())
        .await
        .map_err(|_| ApiError::bad_request("Upgrade request required"))?
        .protocols(["v5.channel.k8s.io", "v4.channel.k8s.io"]);
    let v5 = upgrade
        .selected_protocol()
        .is_some_and(|p| p.as_bytes() == b"v5.channel.k8s.io");
    if upgrade.selected_protocol().is_none() {
        return Err(ApiError::bad_request(
            "exec requires the v5.channel.k8s.io or v4.channel.k8s.io WebSocket subprotocol",
        ));
    }
    let spec = ProcessSpec {
        argv: command.clone(),
        ..template.spec
    };
    let stdin = q.flag("stdin");
    Ok(upgrade
        .on_upgrade(move |socket| bridge(socket, spec, command, stdin, v5))
        .into_response())
}

async fn bridge(
    socket: WebSocket,
    spec: ProcessSpec,
    command: Vec<String>,
    want_stdin: bool,
    v5: bool,
) {
    let (mut tx, mut rx) = socket.split();
    let frame = |channel: u8, data: &[u8]| {
        let mut v = Vec::with_capacity(data.len() + 1);
        v.push(channel);
        v.extend_from_slice(data);
        Message::Binary(Bytes::from(v))
    };
    let mut child = match spawn_exec(&spec, want_stdin) {
        Ok(c) => c,
        Err(e) => {
            let code = if e.kind() == std::io::ErrorKind::NotFound {
                127
            } else {
                126
            };
            let msg = format!(
                "exec failed: unable to start container process: {}: {e}\n",
                command.first().map(String::as_str).unwrap_or_default()
            );
            let _ = tx.send(frame(2, msg.as_bytes())).await;
            let _ = tx
                .send(frame(3, exit_status(code, &command).to_string().as_bytes()))
                .await;
            let _ = tx.send(normal_close()).await;
            return;
        }
    };
    let (out_tx, mut out_rx) = mpsc::channel::<(u8, Vec<u8>)>(64);
    let mut readers = Vec::new();
    for (channel, pipe) in [
        (
            1u8,
            child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
        ),
        (
            2u8,
            child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
        ),
    ] {
        let Some(mut pipe) = pipe else { continue };
        let out_tx = out_tx.clone();
        readers.push(tokio::spawn(async move {
            let mut buf = vec![0u8; 32 * 1024];
            loop {
                match pipe.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => {
                        if out_tx.send((channel, buf[..n].to_vec())).await.is_err() {
                            return;
                        }
                    }
                }
            }
        }));
    }
    drop(out_tx);
    let mut stdin = child.stdin.take();
    let mut output_open = true;
    let mut input_open = true;
    while output_open {
        tokio::select! {
            chunk = out_rx.recv() => match chunk {
                Some((ch, data)) => {
                    if tx.send(frame(ch, &data)).await.is_err() {
                        let _ = child.kill().await;
                        return;
                    }
                }
                None => output_open = false,
            },
            msg = rx.next(), if input_open => match msg {
                Some(Ok(Message::Binary(data))) => match data.first() {
                    Some(0) => {
                        if let Some(s) = stdin.as_mut()
                            && s.write_all(&data[1..]).await.is_err()
                        {
                            stdin = None;
                        }
                    }
                    Some(255) if v5 && data.get(1) == Some(&0) => stdin = None,
                    _ => {}
                },
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                    input_open = false;
                    stdin = None;
                }
                Some(Ok(_)) => {}
            },
        }
    }
    drop(stdin);
    let code = match child.wait().await {
        Ok(s) => s.code().unwrap_or_else(|| {
            use std::os::unix::process::ExitStatusExt;
            128 + s.signal().unwrap_or(9)
        }),
        Err(_) => 255,
    };
    let _ = tx
        .send(frame(3, exit_status(code, &command).to_string().as_bytes()))
        .await;
    let _ = tx.send(normal_close()).await;
}

/// A close frame with status 1000; client-go treats a close without a status as an error.
fn normal_close() -> Message {
    Message::Close(Some(axum::extract::ws::CloseFrame {
        code: 1000,
        reason: "".into(),
    }))
}
