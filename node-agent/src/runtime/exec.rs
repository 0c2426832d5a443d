//! Exec actions: run a command in a container of the target pod through the `pods/exec`
//! subresource, with a timeout (ARCHITECTURE.md §K2.4; unlike KubeBlocks, `timeout` is
//! honoured and no Job in another namespace is needed).

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, AttachParams};
use tokio::io::{AsyncRead, AsyncReadExt};

use super::tail::Tail;

/// How much of stdout and stderr is kept for the failure reason.
const OUTPUT_TAIL_BYTES: usize = 4096;

/// What an exec action is asked to do.
#[derive(Debug, Clone)]
pub struct ExecRequest {
    pub namespace: String,
    pub pod: String,
    /// Empty: the pod's first container, as KubeBlocks does.
    pub container: String,
    pub command: Vec<String>,
    /// `None`: no timeout.
    pub timeout: Option<Duration>,
}

/// How an exec action ended.
#[derive(Debug, Clone)]
pub struct ExecOutcome {
    pub container: String,
    pub exit_code: i32,
    pub stdout: Tail,
    pub stderr: Tail,
}

impl ExecOutcome {
    /// The failure reason for a non-zero exit: the exit code and the last lines of output.
    pub fn failure_reason(&self) -> String {
        let mut reason = format!(
            "command in container {:?} exited with code {}",
            self.container, self.exit_code
        );
        let stderr = self.stderr.last_lines(10);
        let output = if stderr.is_empty() {
            self.stdout.last_lines(10)
        } else {
            stderr
        };
        if !output.is_empty() {
            reason.push_str(": ");
            reason.push_str(&output);
        }
        reason
    }
}

/// Why an exec action could not be carried out.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The command list was empty.
    #[error("exec action has an empty command")]
    EmptyCommand,
    /// Reading the target pod failed.
    #[error("reading pod {namespace}/{pod}")]
    GetPod {
        namespace: String,
        pod: String,
        #[source]
        source: kube::Error,
    },
    /// The pod has no containers, or not the named one.
    #[error("pod {namespace}/{pod} has no container {container:?}")]
    NoSuchContainer {
        namespace: String,
        pod: String,
        container: String,
    },
    /// The exec request itself failed.
    #[error("starting exec in pod {namespace}/{pod} container {container:?}")]
    Start {
        namespace: String,
        pod: String,
        container: String,
        #[source]
        source: kube::Error,
    },
    /// The command ran longer than its timeout.
    #[error("command in pod {namespace}/{pod} container {container:?} timed out after {timeout:?}")]
    TimedOut {
        namespace: String,
        pod: String,
        container: String,
        timeout: Duration,
    },
    /// The stream ended without an exit status.
    #[error("exec in pod {namespace}/{pod} ended without an exit status")]
    NoStatus { namespace: String, pod: String },
}

/// Runs the command and waits for it, enforcing the timeout.
pub async fn run(client: kube::Client, request: &ExecRequest) -> Result<ExecOutcome, ExecError> {
    if request.command.is_empty() {
        return Err(ExecError::EmptyCommand);
    }
    let pods: Api<Pod> = Api::namespaced(client, &request.namespace);
    let container = resolve_container(&pods, request).await?;
    let params = AttachParams::default()
        .container(container.clone())
        .stdin(false)
        .stdout(true)
        .stderr(true);
    let mut attached = pods
        .exec(&request.pod, request.command.clone(), &params)
        .await
        .map_err(|source| ExecError::Start {
            namespace: request.namespace.clone(),
            pod: request.pod.clone(),
            container: container.clone(),
            source,
        })?;
    let stdout = attached.stdout();
    let stderr = attached.stderr();
    let status = attached.take_status();
    let finish = async move {
        let (stdout, stderr) = tokio::join!(drain(stdout), drain(stderr));
        let status = match status {
            Some(status) => status.await,
            None => None,
        };
        (stdout, stderr, status)
    };
    let (stdout, stderr, status) = match request.timeout {
        Some(timeout) => match tokio::time::timeout(timeout, finish).await {
            Ok(done) => done,
            Err(_) => {
                attached.abort();
                return Err(ExecError::TimedOut {
                    namespace: request.namespace.clone(),
                    pod: request.pod.clone(),
                    container,
                    timeout,
                });
            }
        },
        None => finish.await,
    };
    let status = status.ok_or_else(|| ExecError::NoStatus {
        namespace: request.namespace.clone(),
        pod: request.pod.clone(),
    })?;
    Ok(ExecOutcome {
        container,
        exit_code: exit_code(&status),
        stdout,
        stderr,
    })
}

async fn resolve_container(pods: &Api<Pod>, request: &ExecRequest) -> Result<String, ExecError> {
    let pod = pods
        .get(&request.pod)
        .await
        .map_err(|source| ExecError::GetPod {
            namespace: request.namespace.clone(),
            pod: request.pod.clone(),
            source,
        })?;
    let containers = pod.spec.map(|spec| spec.containers).unwrap_or_default();
    let found = if request.container.is_empty() {
        containers.first().map(|c| c.name.clone())
    } else {
        containers
            .iter()
            .find(|c| c.name == request.container)
            .map(|c| c.name.clone())
    };
    found.ok_or_else(|| ExecError::NoSuchContainer {
        namespace: request.namespace.clone(),
        pod: request.pod.clone(),
        container: request.container.clone(),
    })
}

async fn drain(reader: Option<impl AsyncRead + Unpin>) -> Tail {
    let mut tail = Tail::new(OUTPUT_TAIL_BYTES);
    let Some(mut reader) = reader else {
        return tail;
    };
    let mut buf = vec![0u8; 8192];
    loop {
        match reader.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => tail.push(&buf[..n]),
        }
    }
    tail
}

/// The exit code in a remote-command `Status`: 0 on `Success`, the `ExitCode` cause otherwise,
/// 1 when the failure carries no code (e.g. the command was not found).
pub fn exit_code(status: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Status) -> i32 {
    if status.status.as_deref() == Some("Success") {
        return 0;
    }
    status
        .details
        .as_ref()
        .and_then(|details| details.causes.as_ref())
        .and_then(|causes| {
            causes
                .iter()
                .find(|cause| cause.reason.as_deref() == Some("ExitCode"))
        })
        .and_then(|cause| cause.message.as_deref())
        .and_then(|code| code.parse().ok())
        .unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Status, StatusCause, StatusDetails};

    use super::*;

    fn failure(causes: Vec<StatusCause>) -> Status {
        Status {
            status: Some("Failure".into()),
            details: Some(StatusDetails {
                causes: Some(causes),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn success_status_is_exit_code_zero() {
        let status = Status {
            status: Some("Success".into()),
            ..Default::default()
        };
        assert_eq!(exit_code(&status), 0);
    }

    #[test]
    fn exit_code_cause_is_the_exit_code() {
        let status = failure(vec![StatusCause {
            reason: Some("ExitCode".into()),
            message: Some("42".into()),
            ..Default::default()
        }]);
        assert_eq!(exit_code(&status), 42);
    }

    #[test]
    fn failure_without_code_is_one() {
        assert_eq!(exit_code(&failure(vec![])), 1);
    }

    #[test]
    fn failure_reason_prefers_stderr() {
        let mut stdout = Tail::new(100);
        stdout.push(b"progress\n");
        let mut stderr = Tail::new(100);
        stderr.push(b"psql: connection refused\n");
        let outcome = ExecOutcome {
            container: "postgresql".into(),
            exit_code: 2,
            stdout,
            stderr,
        };
        assert_eq!(
            outcome.failure_reason(),
            "command in container \"postgresql\" exited with code 2: psql: connection refused"
        );
    }
}
